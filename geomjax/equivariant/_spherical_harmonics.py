r"""Real spherical harmonics in e3nn's basis, by a stable recursion in Cartesian form.

Basis (e3nn-jax's, exactly). The polar axis is :math:`y`: with :math:`\theta = \arccos(y/r)` and
:math:`\varphi = \operatorname{atan2}(x, z)`, the component :math:`m \in \{-l, \dots, l\}` of
degree :math:`l` is

.. math::

    Y_l^m(\mathbf r) = c_l\, \bar P_l^{|m|}(\cos\theta)\, r^l \cdot
    \begin{cases} \sqrt2 \cos(m\varphi) & m > 0 \\ 1 & m = 0 \\
                  \sqrt2 \sin(|m|\varphi) & m < 0 \end{cases}

with :math:`\bar P_l^m = \sqrt{\tfrac{2l+1}{4\pi}\tfrac{(l-m)!}{(l+m)!}}\, P_l^m` and
:math:`P_l^m` the associated Legendre functions without the Condon-Shortley phase: the
Wikipedia table of real spherical harmonics evaluated at :math:`(y, z, x)`. The constant
:math:`c_l` is the normalization: ``"integral"`` (:math:`c_l = 1`, orthonormal on
:math:`S^2`), ``"component"`` (:math:`c_l = \sqrt{4\pi}`, :math:`\|Y_l(\hat r)\|^2 = 2l + 1`,
each component of unit mean square; :math:`Y_0 = 1` and :math:`Y_1 = \sqrt 3\, (x, y, z)`),
``"norm"`` (:math:`c_l = \sqrt{4\pi / (2l + 1)}`, :math:`\|Y_l(\hat r)\| = 1`).
Under a rotation :math:`Y_l(R\mathbf r) = D^l(R)\, Y_l(\mathbf r)` with the Wigner matrices of
:func:`~geomjax.equivariant.wigner_d`; under inversion :math:`Y_l(-\mathbf r) = (-1)^l
Y_l(\mathbf r)`.

Algorithm. The harmonics of degree :math:`l + 1` are the degree-:math:`(l+1)` part of the
products of those of degree :math:`l` with the coordinates, taken with the real
Clebsch-Gordan coefficients of :func:`~geomjax.equivariant.clebsch_gordan` (the idea of
e3nn-jax's recursive algorithm):

.. math::

    Y_{l+1,i}(\mathbf r) = \frac{2l + 3}{\sqrt{l + 1}} \sum_{j,k} C^{l,1,l+1}_{jki}\,
    Y_{l,j}(\mathbf r)\, r_k \qquad (\text{component normalization}),

a polynomial identity, so each :math:`Y_l` is a homogeneous polynomial of degree :math:`l`
whose values and derivatives of every order are finite everywhere (the polar axis and the
origin included: no angles, no division). Each step is one product of the :math:`3(2l+1)`
products :math:`Y_{l,j} r_k` with a float64 constant matrix (at most five nonzeros per
column), at full float precision: one fusion boundary per degree, so compile time grows
linearly in :math:`l_{\max}` (an unrolled per-component graph compiles in minutes at
:math:`l = 16`). The map
:math:`(Y_l, \hat{\mathbf r}) \mapsto Y_{l+1}` is norm-preserving on the sphere, so round-off
grows only linearly in :math:`l`: on unit vectors in float32 the largest error at
:math:`l = 11` is :math:`2.5 \cdot 10^{-6}` (components up to 4.7; rms :math:`1.5 \cdot
10^{-7}`), where the three-term Legendre recursion in :math:`\cos\theta` loses
:math:`l^2`-fold accuracy near the poles (:math:`1.9 \cdot 10^{-5}` measured).

References:
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
  F. Bigi, G. Fraux, N. J. Browning, M. Ceriotti, "Fast evaluation of spherical harmonics with
  sphericart", J. Chem. Phys. 159, 064802 (2023). arXiv:2302.08381 (the Cartesian Legendre
  recursion compared above).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep, the notation of the field and of e3nn)
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import ArrayLike, check_option
from geomjax.equivariant._clebsch_gordan import clebsch_gordan
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray

__all__ = ["spherical_harmonics"]

_NORMALIZATIONS = ("component", "norm", "integral")


@functools.cache
def _recursion_matrix(l: int) -> np.ndarray:
    """``M`` of shape ``(3 (2l + 1), 2l + 3)`` with ``Y_{l+1} = (Y_l outer r).ravel() @ M``:
    ``M[3 j + k, i] = (2l + 3) / sqrt(l + 1) * C^{l,1,l+1}_{jki}`` in float64 (component
    normalization; the factor makes ``Y_{l+1}(e_y) = sqrt(2l + 3) e_0``). At most 5 nonzeros
    per column; entries below 1e-12 of the largest (round-off of exact zeros) are set to 0."""
    cg = clebsch_gordan(l, 1, l + 1) * ((2 * l + 3) / math.sqrt(l + 1))
    cg = np.where(np.abs(cg) > 1e-12 * np.max(np.abs(cg)), cg, 0.0)
    return cg.reshape(3 * (2 * l + 1), 2 * l + 3)


def _norm_factor(l: int, normalization: str) -> float:
    if normalization == "component":
        return 1.0
    if normalization == "norm":
        return 1.0 / math.sqrt(2 * l + 1)
    return 1.0 / math.sqrt(4 * math.pi)


def _sh_numpy(lmax: int, xyz: np.ndarray, normalization: str = "component") -> dict:
    """float64 NumPy evaluation (constants, no normalization of ``xyz``): ``{l: (..., 2l+1)}``."""
    xyz = np.asarray(xyz, np.float64)
    ys = {0: np.ones(xyz.shape[:-1] + (1,))}
    for l in range(lmax):
        outer = (ys[l][..., :, None] * xyz[..., None, :]).reshape(xyz.shape[:-1] + (-1,))
        ys[l + 1] = outer @ _recursion_matrix(l)
    return {l: _norm_factor(l, normalization) * y for l, y in ys.items()}


def _sh_jax(lmax: int, xyz, normalization: str) -> dict:
    """``{l: Y_l(xyz)}`` for ``l = 0..lmax``, shapes ``(..., 2l + 1)``: one product per degree
    (a fusion boundary: the recursion compiles in time linear in ``lmax``), at full precision
    of the dtype whatever ``jax_default_matmul_precision`` says."""
    lead = xyz.shape[:-1]
    ys = {0: jnp.ones(lead + (1,), xyz.dtype)}
    for l in range(lmax):
        outer = (ys[l][..., :, None] * xyz[..., None, :]).reshape(lead + (3 * (2 * l + 1),))
        m = jnp.asarray(_recursion_matrix(l), xyz.dtype)
        ys[l + 1] = jnp.matmul(outer, m, precision=jax.lax.Precision.HIGHEST)
    out = {}
    for l, y in ys.items():
        c = _norm_factor(l, normalization)
        out[l] = y if c == 1.0 else c * y
    return out


def _normalize_direction(x):
    """``x / |x|``, and the zero vector at ``x = 0``.

    Vectors whose squared norm would under- or overflow (largest entry beyond ``2^{+-60}``) are
    first multiplied by ``2^{-+70}`` (exact: a power of two; held constant under
    differentiation, the direction does not depend on it), so tiny and huge vectors keep
    their direction in float32. At ``x = 0`` the result is 0 and its derivative the identity
    (the derivative of the unnormalized input), as in e3nn-jax. (XLA flushes subnormal float32
    inputs, below 1.2e-38, to zero: such a vector is the zero vector.)
    """
    big = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1, keepdims=True))
    one = jnp.ones_like(big)
    pre = jnp.where(big > 2.0**60, one * 2.0**-70, jnp.where(big < 2.0**-60, one * 2.0**70, one))
    pre = jnp.where(big == 0, one, pre)
    y = x * pre
    r2 = jnp.sum(y * y, axis=-1, keepdims=True)
    r2 = jnp.where(r2 == 0, jnp.ones_like(r2), r2)
    return y / jnp.sqrt(r2)


def _irreps_out(fn: str, irreps_out, p_in: int) -> Irreps:
    """Output irreps from an int, a sequence of ints or irreps; parities checked against the
    input's parity ``p_in`` (``Y_l`` of a vector of parity ``p`` has parity ``p^l``)."""
    if isinstance(irreps_out, range):
        irreps_out = list(irreps_out)
    if isinstance(irreps_out, numbers.Integral) and not isinstance(irreps_out, bool):
        irreps_out = [irreps_out]
    if isinstance(irreps_out, (list, tuple)) and all(
        isinstance(l, numbers.Integral) and not isinstance(l, bool) for l in irreps_out
    ):
        if any(l < 0 for l in irreps_out):
            raise ValueError(
                f"{fn}: argument `irreps_out` must list non-negative degrees; got {irreps_out!r}"
            )
        return Irreps([(1, Irrep(int(l), p_in**l)) for l in irreps_out])
    try:
        irreps = Irreps(irreps_out)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{fn}: argument `irreps_out` must be a degree, a list of degrees or irreps like "
            f"'0e + 1o + 2e'; got {irreps_out!r}"
        ) from err
    for _, ir in irreps:
        if ir.p != p_in**ir.l:
            raise ValueError(
                f"{fn}: argument `irreps_out` has {ir}, but the spherical harmonics of degree "
                f"{ir.l} of a {'polar' if p_in == -1 else 'pseudo'}vector ({'1o' if p_in == -1 else '1e'}) "
                f"have parity {'e' if p_in**ir.l == 1 else 'o'}"
            )
    return irreps


def spherical_harmonics(
    irreps_out: Irreps | str | int | Sequence[int],
    x: ArrayLike | IrrepsArray,
    normalize: bool,
    normalization: str = "component",
) -> IrrepsArray:
    r"""Real spherical harmonics :math:`Y_l(\mathbf x)` in e3nn's basis, as an ``IrrepsArray``.

    .. math::

        Y_l^m(\mathbf x) = c_l\, \bar P_l^{|m|}(\cos\theta)\, |\mathbf x|^l
        \{\sqrt2\cos m\varphi,\ 1,\ \sqrt2 \sin |m|\varphi\},\qquad
        \cos\theta = y / |\mathbf x|,\ \varphi = \operatorname{atan2}(x, z),

    for :math:`m > 0,\ m = 0,\ m < 0`, components ordered :math:`m = -l, \dots, l`, with
    :math:`c_l` set by ``normalization`` (see the module docstring and e3nn-jax). Equivariant:
    :math:`Y_l(R\mathbf x) = D^l(R) Y_l(\mathbf x)` for :math:`R \in O(3)` (with parity
    :math:`(-1)^l` for a polar vector). With ``normalize=False`` each :math:`Y_l` is a
    homogeneous polynomial of degree :math:`l` of :math:`\mathbf x`.

    Computed by a Clebsch-Gordan recursion in Cartesian form (no angles; see the module
    docstring): round-off grows linearly in :math:`l` (float32 error at most
    :math:`3 \cdot 10^{-6}` at :math:`l = 11` on unit vectors), values and derivatives of every
    order are finite everywhere, the polar axis included.

    At :math:`\mathbf x = 0` with ``normalize=True`` the direction is undefined; by convention
    (e3nn-jax's) it is taken as the zero vector: :math:`Y_0 = c_0` and :math:`Y_l = 0` for
    :math:`l \ge 1` (the polynomials at the origin), and derivatives there are those of the
    unnormalized polynomials (:math:`\mathbf x / |\mathbf x|` is differentiated as the
    identity), finite at every order. Input domain: a non-finite entry makes the degree
    :math:`l \ge 1` harmonics of its vector non-finite (NaN with ``normalize=True``; NaN or
    :math:`\pm\infty` without), other vectors are unaffected, and :math:`Y_0` stays the
    constant :math:`c_0`.

    Args:
      irreps_out: the degrees to compute: an int, a sequence of ints (parities follow the
        input's) or irreps such as ``"0e + 1o + 2e"`` (each :math:`l` with the parity
        :math:`p^l` of an input of parity :math:`p`; a multiplicity repeats the harmonic).
      x: vectors, shape ``(..., 3)``: a real floating array (a polar vector, ``1o``) or an
        ``IrrepsArray`` of irreps ``1x1o`` or ``1x1e``.
      normalize: ``True`` to evaluate on the direction :math:`\mathbf x / |\mathbf x|`.
      normalization: ``"component"`` (default, :math:`\|Y_l\|^2 = 2l + 1` on the sphere),
        ``"norm"`` (:math:`\|Y_l\| = 1`) or ``"integral"`` (orthonormal on :math:`S^2`).

    Returns:
      ``IrrepsArray`` of the output irreps, shape ``(..., irreps_out.dim)``, dtype of ``x``.

    Raises:
      ValueError: naming ``irreps_out``, ``x`` (last axis not 3, irreps not a single vector) or
        ``normalization``.
      TypeError: naming ``x`` for a non-floating dtype, ``normalize`` for a non-bool.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import spherical_harmonics
      >>> x = jnp.array([0.0, 3.0, 4.0])
      >>> y = spherical_harmonics([0, 1, 2], x, normalize=True)
      >>> y.irreps
      1x0e+1x1o+1x2e
      >>> y.chunks[1] / jnp.sqrt(3.0)
      Array([[0. , 0.6, 0.8]], dtype=float32)
      >>> bool(jnp.allclose(jnp.sum(y.chunks[2] ** 2), 5.0))
      True
      >>> spherical_harmonics("1o", jnp.zeros(3), normalize=True).array
      Array([0., 0., 0.], dtype=float32)

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "spherical_harmonics"
    if isinstance(x, IrrepsArray):
        if x.irreps not in (Irreps("1x1o"), Irreps("1x1e")):
            raise ValueError(
                f"{fn}: argument `x` must be a single vector (irreps 1x1o or 1x1e); got irreps "
                f"{x.irreps!r}"
            )
        p_in = x.irreps[0].ir.p
        data = x.array
    else:
        p_in = -1
        data = jnp.asarray(x)
        if not jnp.issubdtype(data.dtype, jnp.floating):
            raise TypeError(
                f"{fn}: argument `x` must have a real floating dtype (float32 or float64); got "
                f"{data.dtype}"
            )
        if data.ndim < 1 or data.shape[-1] != 3:
            raise ValueError(f"{fn}: argument `x` must have shape (..., 3); got shape {data.shape}")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"{fn}: argument `normalize` must be a bool (static); got {normalize!r}")
    check_option(fn, "normalization", normalization, _NORMALIZATIONS)
    irreps = _irreps_out(fn, irreps_out, p_in)
    lead = data.shape[:-1]
    if irreps.dim == 0:
        return IrrepsArray._unchecked(irreps, jnp.zeros(lead + (0,), data.dtype))
    if normalize:
        data = _normalize_direction(data)
    ls = [ir.l for mul, ir in irreps if mul > 0]
    comps = _sh_jax(max(ls), data, normalization) if ls else {}
    parts = []
    for mul, ir in irreps:
        if mul == 0:
            continue
        y = comps[ir.l]
        parts.append(y if mul == 1 else jnp.tile(y, (1,) * len(lead) + (mul,)))
    out = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
    return IrrepsArray._unchecked(irreps, out)
