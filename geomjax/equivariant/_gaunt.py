r"""Gaunt tensor products: pointwise products of spherical functions, on an exact sphere grid.

**Gaunt coefficients.** With :math:`Y_{l,m}` the real spherical harmonics of
:func:`~geomjax.equivariant.spherical_harmonics` orthonormal on :math:`S^2` (``"integral"``
normalization; e3nn's basis, polar axis :math:`y`, components ordered :math:`m = -l..l`),

.. math::

    G^{l_1 l_2 l_3}_{m_1 m_2 m_3} = \int_{S^2} Y_{l_1 m_1}(\hat u)\, Y_{l_2 m_2}(\hat u)\,
    Y_{l_3 m_3}(\hat u)\, d\Omega
    = \sqrt{\tfrac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}
      \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix} \cdot (\pm C^{l_1 l_2 l_3}),

the Clebsch-Gordan tensor times a path constant that vanishes whenever :math:`l_1 + l_2 +
l_3` is odd. These equal ``sympy.physics.wigner.real_gaunt(l1, l2, l3, m1, m2, m3)`` in the
same index order (e3nn's real harmonics are the textbook ones, without Condon-Shortley phase,
evaluated at :math:`(y, z, x)`: a rotation of the sphere, which leaves the integral alone).

**The Gaunt tensor product** reads each input as a function on the sphere,
:math:`f_1 = \sum_{lm} x_{1,lm} \tilde Y_{lm}` and :math:`f_2 = \sum_{lm} x_{2,lm} \tilde
Y_{lm}` with :math:`\tilde Y_l = c_l Y_l` in the chosen ``normalization``
(``"component"``: :math:`c_l = \sqrt{4\pi}`, the harmonics with :math:`\tilde Y_0 = 1`;
``"norm"``: :math:`c_l = \sqrt{4\pi/(2l+1)}`; ``"integral"``: :math:`c_l = 1`), and returns
the coefficients of their product :math:`f_1 f_2` in the same basis:

.. math::

    z_{l_3 m_3} = \sum_{l_1 m_1 l_2 m_2} \frac{c_{l_1} c_{l_2}}{c_{l_3}}\,
    G^{l_1 l_2 l_3}_{m_1 m_2 m_3}\, x_{1, l_1 m_1}\, x_{2, l_2 m_2}.

So a ``0e`` input multiplies (``"component"``: :math:`z = x_{1,0}\, x_2`), and ``1o x 1o ->
0e`` is the dot product. It is a different operation from the Clebsch-Gordan product: one
fixed weight per path, and only the paths with :math:`l_1 + l_2 + l_3` even, so no
antisymmetric path (no cross product ``1o x 1o -> 1e``) and no way to tell a shape from its
mirror image. ``odd_paths="cg"`` adds the Clebsch-Gordan paths with :math:`l_1 + l_2 + l_3`
odd (component-normalized, :math:`\sqrt{2l_3+1}\, C`, as
:func:`~geomjax.equivariant.full_tensor_product`), which restores them, at the cost of a
dense evaluation of those paths. ``odd_paths="grid"`` restores them on the same grid instead,
with the *Poisson bracket* of the two functions (a vector-Gaunt product: the product of
their tangential gradients),

.. math::

    \{f_1, f_2\}(\hat u) = \hat u \cdot \big(\nabla f_1(\hat u) \times \nabla f_2(\hat u)\big),

a pseudo-function band-limited to :math:`L_1 + L_2 - 1` (:math:`\{x, y\} = z`: the cross
product). Its coefficients on :math:`Y_{l_3}` are nonzero exactly for the paths with
:math:`l_1 + l_2 + l_3` odd (by Wigner-Eckart each is a nonzero multiple of the CG path:
checked for all :math:`l \le 4`), so both completions have the same paths with different
constants (``1o x 1o -> 1e``: :math:`\sqrt3\, a \times b` for the bracket,
:math:`a \times b / \sqrt2` for CG, component normalization). The gradients of the harmonics
on the grid, along the two tangent directions, are one more set of NumPy constants (two more
matrix products per input); the grid bound is unchanged (the bracket's integrand has degree
:math:`L_1 + L_2 + L_3 - 1`).

**Parity.** An input irrep :math:`(l, p)` has *twist* :math:`s = p\,(-1)^l` (``1o``, ``2e``:
:math:`s = +1`, ordinary functions; ``1e``, ``0o``: :math:`s = -1`, pseudo-functions). A Gaunt
path gives :math:`(l_3, p_1 p_2)`, of twist :math:`s_1 s_2`, so each input is split into its
two twist classes, and the output of twist :math:`s_3` is the projection of
:math:`\sum_{s_1 s_2 = s_3} f_1^{(s_1)} f_2^{(s_2)}`: the odd paths are never computed (their
outputs are exact zeros, not round-off), and an irrep only odd paths reach is not in the
output of the Gaunt-only product.

**Exact sphere grid** (``method="grid"``). With :math:`L_1, L_2` the largest input degrees and
:math:`L_3` the largest output degree, the integrand :math:`f_1 f_2 Y_{l_3 m_3}` is a
polynomial of degree :math:`\le L_1 + L_2 + L_3` on the sphere: its longitude frequencies are
at most :math:`L_1 + L_2 + L_3`, integrated exactly by :math:`n_\varphi \ge L_1 + L_2 + L_3 +
1` equispaced longitudes, and after the longitude sum what is left is a polynomial of degree
:math:`\le L_1 + L_2 + L_3` in :math:`\cos\theta` (odd powers of :math:`\sin\theta` cancel),
integrated exactly by :math:`n_\theta \ge \lceil (L_1 + L_2 + L_3 + 1)/2 \rceil`
Gauss-Legendre latitudes (exact to degree :math:`2 n_\theta - 1`). One fewer in either gives
errors of order one (tested). (Issue 17 states :math:`n_\theta \ge L_1 + L_2 + 1`: sufficient,
since :math:`L_3 \le L_1 + L_2`, but not tight.) So

.. math::

    z_{s_3} = \Big(\sum_{s_1 s_2 = s_3} (x_1^{(s_1)} A_1^{(s_1)}) \odot
    (x_2^{(s_2)} A_2^{(s_2)})\Big)\, B^{(s_3)},

with :math:`A` the harmonics (times :math:`c_l`) on the :math:`n_\theta n_\varphi` grid points
and :math:`B` the harmonics times the quadrature weights (divided by :math:`c_{l_3}`), NumPy
float64 constants built once per configuration (``functools.cache``) and never traced: three
matrix products and one elementwise product, :math:`O(L^2 \cdot L^2)` per channel against
:math:`O(L^6)` for the dense sum over paths. Grids of at least 7 latitudes use the
north-south symmetry :math:`Y_{lm}(\pi - \theta, \varphi) = (-1)^{l+|m|} Y_{lm}(\theta,
\varphi)` of the Gauss-Legendre rows: the even and odd components are evaluated on the
northern rows only (and the equator), halving the products (CPU, ``sh(8) x sh(8)``: forward
0.58 -> 0.37 ms at B = 256; the grid code is in ``_sphere_grid.py``). (Separable
alternatives measured slower on the CPU: the per-:math:`m` Legendre sums followed by a
longitude DFT as a matrix product took 1.3-2.5x the time of the dense grid matrices at
:math:`L \le 6`, and e3nn-jax's own recipe on the same grid is slower with its FFT than
without; see ``benchmarks/bench_fast_tp.py``.) ``method="dense"`` sums the stacked
coefficient tensor directly (one contraction per pair of twist classes), the reference
structure for small :math:`L`.

**Channels.** Multiplicities are channels: after regrouping, channel :math:`c` of an input
is the function built from copy :math:`c` of each of its irreps (zero where an irrep has
fewer copies), so ``C x (0e + 1o + ... )`` is :math:`C` functions. The product is
channelwise, and a single-channel input (every multiplicity 1) broadcasts against a
:math:`C`-channel one, e.g. features times the spherical harmonics of an edge. Other channel
counts raise. An output irrep keeps the channels some pair of inputs reaches. For all pairs
of channels, put them on leading axes instead (leading axes broadcast).

References:
  S. Luo, T. Chen, A. S. Krishnapriyan, "Enabling Efficient Equivariant Operations in the
  Fourier Basis via Gaunt Tensor Products", ICLR 2024, arXiv:2401.10216.
  Y. Xie, A. Daigavane, M. Kotak, T. Smidt, "The Price of Freedom: Exploring Expressivity
  and Runtime Tradeoffs in Equivariant Tensor Products", ICML 2025, arXiv:2506.13523.
  J. R. Driscoll, D. M. Healy, "Computing Fourier transforms and convolutions on the
  2-sphere", Adv. Appl. Math. 15, 202 (1994) (exact quadrature of band-limited products).
  H. H. H. Homeier, E. O. Steinborn, "Some properties of the coupling coefficients of real
  spherical harmonics and their relation to Gaunt coefficients", J. Mol. Struct. THEOCHEM
  368, 31 (1996) (real Gaunt coefficients).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep)
from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, check_option
from geomjax.equivariant._clebsch_gordan import _check_degree, clebsch_gordan
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._sphere_grid import (
    _analysis,
    _exact_resolution,
    _grid,
    _matmul_2,
    _sh_grad_numpy,
    _split_analysis,
    _split_synthesis,
    _synthesis,
)
from geomjax.equivariant._spherical_harmonics import _sh_numpy
from geomjax.equivariant._tensor_product import (
    _check_irreps_array,
    _check_same_lead,
    _filter_key,
)

__all__ = ["gaunt_coefficients", "gaunt_tensor_product"]

_NORMALIZATIONS = ("component", "norm", "integral")
_METHODS = ("grid", "dense")
_ODD_PATHS = (None, "cg", "grid")
_TWISTS = (1, -1)
# Grids with at least this many latitudes use the north-south split (measured on the CPU:
# 1.2-1.6x faster forward at L >= 6 for sh(L) x sh(L); the extra gathers make it about 2x
# slower at L = 2, grid (4, 7), and equal at L = 4, grid (7, 13)).
_SPLIT_MIN_LAT = 7


# -- Gaunt coefficients (NumPy float64, cached) ------------------------------------------------


def _selection_mask(l1: int, l2: int, l3: int) -> np.ndarray:
    """Entries that the real-harmonic selection rules allow: :math:`|m_3| = |m_1| + |m_2|` or
    :math:`||m_1| - |m_2||`, and an even number of sine-type (:math:`m < 0`) factors."""
    m1 = np.arange(-l1, l1 + 1)[:, None, None]
    m2 = np.arange(-l2, l2 + 1)[None, :, None]
    m3 = np.arange(-l3, l3 + 1)[None, None, :]
    a1, a2, a3 = np.abs(m1), np.abs(m2), np.abs(m3)
    absolute = (a3 == a1 + a2) | (a3 == np.abs(a1 - a2))
    sines = (m1 < 0).astype(int) + (m2 < 0) + (m3 < 0)
    return absolute & (sines % 2 == 0)


@functools.cache
def _gaunt(l1: int, l2: int, l3: int) -> np.ndarray:
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    s = l1 + l2 + l3
    if s % 2 == 0 and abs(l1 - l2) <= l3 <= l1 + l2:
        xyz, w = _grid(s // 2 + 1, s + 1)  # the exact grid for a degree-s integrand
        y = _sh_numpy(max(l1, l2, l3), xyz, "integral")
        g = np.einsum("g,gi,gj,gk->ijk", w, y[l1], y[l2], y[l3])
        out = np.where(_selection_mask(l1, l2, l3), g, 0.0)
    out.setflags(write=False)
    return out


def gaunt_coefficients(l1: int, l2: int, l3: int) -> np.ndarray:
    r"""Real Gaunt coefficients :math:`G^{l_1 l_2 l_3}_{m_1 m_2 m_3} = \int_{S^2} Y_{l_1 m_1}
    Y_{l_2 m_2} Y_{l_3 m_3}\, d\Omega` in e3nn's real basis (orthonormal harmonics).

    .. math::

        G^{l_1 l_2 l_3}_{m_1 m_2 m_3} = \int_{S^2} Y_{l_1 m_1}(\hat u)\, Y_{l_2 m_2}(\hat u)\,
        Y_{l_3 m_3}(\hat u)\, d\Omega ,

    zero unless :math:`|l_1 - l_2| \le l_3 \le l_1 + l_2` and :math:`l_1 + l_2 + l_3` is even
    (those blocks are exact zeros, as are the entries the :math:`m` selection rules forbid).
    Equal to ``sympy.physics.wigner.real_gaunt(l1, l2, l3, m1, m2, m3)`` at index
    ``[l1 + m1, l2 + m2, l3 + m3]``. Computed once per triple in float64 NumPy by the exact
    Gauss-Legendre quadrature (see the module docstring) and cached: a constant, never part
    of a trace. The array is read-only (copy it to modify).

    Args:
      l1, l2, l3: non-negative int degrees.

    Returns:
      float64 NumPy array of shape ``(2 l1 + 1, 2 l2 + 1, 2 l3 + 1)``.

    Raises:
      ValueError: naming ``l1``, ``l2`` or ``l3`` for a negative or non-integer degree.

    Examples:
      >>> import math
      >>> from geomjax.equivariant import gaunt_coefficients
      >>> g = gaunt_coefficients(1, 1, 2)
      >>> g.shape
      (3, 3, 5)
      >>> bool(abs(g[0, 2, 0] - math.sqrt(15) / (10 * math.sqrt(math.pi))) < 1e-15)
      True
      >>> float(abs(gaunt_coefficients(1, 1, 1)).max())
      0.0

    References:
      S. Luo, T. Chen, A. S. Krishnapriyan, "Enabling Efficient Equivariant Operations in the
      Fourier Basis via Gaunt Tensor Products", ICLR 2024, arXiv:2401.10216.
      H. H. H. Homeier, E. O. Steinborn, J. Mol. Struct. THEOCHEM 368, 31 (1996).
    """
    fn = "gaunt_coefficients"
    l1 = _check_degree(fn, "l1", l1)
    l2 = _check_degree(fn, "l2", l2)
    l3 = _check_degree(fn, "l3", l3)
    return _gaunt(l1, l2, l3)


# -- plan: twist classes, output irreps, grid matrices -----------------------------------------


def _c(l: int, normalization: str) -> float:
    if normalization == "component":
        return math.sqrt(4.0 * math.pi)
    if normalization == "norm":
        return math.sqrt(4.0 * math.pi / (2 * l + 1))
    return 1.0


def _twist(ir: Irrep) -> int:
    return ir.p * (-1) ** ir.l


class _Side(NamedTuple):
    channels: int  # C (max multiplicity)
    ls: dict  # twist -> tuple of degrees present, ascending
    entries: dict  # twist -> tuple of (entry index, mul) per degree
    offsets: dict  # twist -> {l: offset in the stacked coefficient axis}


def _side(irreps: Irreps) -> _Side:
    ls, entries, offsets = {}, {}, {}
    for s in _TWISTS:
        idx = [(i, mul, ir.l) for i, (mul, ir) in enumerate(irreps) if mul > 0 and _twist(ir) == s]
        idx.sort(key=lambda e: e[2])
        ls[s] = tuple(l for _, _, l in idx)
        entries[s] = tuple((i, mul) for i, mul, _ in idx)
        offsets[s] = dict(zip(ls[s], np.cumsum([0] + [2 * l + 1 for l in ls[s]])[:-1].tolist()))
    channels = max([mul for mul, _ in irreps if mul > 0], default=0)
    return _Side(channels, ls, entries, offsets)


class _Out(NamedTuple):
    ir: Irrep
    mul: int
    gaunt: int | None  # offset in the Gaunt output of its twist class, or None
    odd: int | None  # offset in the odd-path output of its twist class, or None


class _Plan(NamedTuple):
    side1: _Side
    side2: _Side
    channels: int
    irreps_out: Irreps
    outs: tuple  # _Out in output order
    ls3: dict  # twist -> degrees of the Gaunt output, ascending
    ls3_odd: dict  # twist -> degrees of the odd-path output, ascending
    resolution: tuple[int, int] | None
    a1: dict  # twist -> (n1, G) harmonics on the grid, or their _HalfSynthesis
    a2: dict
    b3: dict  # twist -> (G, n3) weighted harmonics, or their _HalfAnalysis
    d1: dict  # twist -> (n1, 2 G) (d_theta, d_phi) on the grid (odd_paths="grid")
    r2: dict  # twist -> (n2, 2 G) (d_phi, -d_theta) on the grid (odd_paths="grid")
    b3_odd: dict  # twist -> (G, n3odd) (odd_paths="grid")
    dense: dict  # (s1, s2) -> (n1, n2, n3) Gaunt tensor (dense) ...
    odd: dict  # (s1, s2) -> (n1, n2, n3odd) tensor of the odd paths (CG; bracket if dense)


def _eff(m1: int, m2: int, c1: int, c2: int) -> int:
    """Channels a pair of entries reaches (a single-channel side broadcasts)."""
    if c2 == 1:
        return m1
    if c1 == 1:
        return m2
    return min(m1, m2)


@functools.cache
def _plan(irreps1, irreps2, keep, lmax_out, normalization, method, resolution, odd_paths):
    fn = "gaunt_tensor_product"
    side1, side2 = _side(irreps1), _side(irreps2)
    c1, c2 = side1.channels, side2.channels
    if c1 != c2 and c1 > 1 and c2 > 1:
        raise ValueError(
            f"{fn}: arguments `x1` and `x2` must have the same number of channels (largest "
            f"multiplicity) or one of them 1 (broadcast); got {c1} ({irreps1!r}) and {c2} "
            f"({irreps2!r})"
        )
    channels = max(c1, c2)

    def kept(ir: Irrep) -> bool:
        return (keep is None or ir in keep) and (lmax_out is None or ir.l <= lmax_out)

    # output irreps: (l3, twist) -> channels reached, from Gaunt and (optionally) odd paths
    gaunt_mul: dict = {}
    odd_mul: dict = {}
    for s1 in _TWISTS:
        for s2 in _TWISTS:
            for l1, (_, m1) in zip(side1.ls[s1], side1.entries[s1]):
                for l2, (_, m2) in zip(side2.ls[s2], side2.entries[s2]):
                    for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                        even = (l1 + l2 + l3) % 2 == 0
                        s3 = s1 * s2 if even else -s1 * s2
                        ir = Irrep(l3, s3 * (-1) ** l3)
                        if not kept(ir):
                            continue
                        target = gaunt_mul if even else odd_mul
                        if not even and odd_paths is None:
                            continue
                        eff = _eff(m1, m2, c1, c2)
                        target[(l3, s3)] = max(target.get((l3, s3), 0), eff)
    ls3 = {s: tuple(sorted(l for l, t in gaunt_mul if t == s)) for s in _TWISTS}
    ls3_odd = {s: tuple(sorted(l for l, t in odd_mul if t == s)) for s in _TWISTS}
    off3 = {
        s: dict(zip(ls3[s], np.cumsum([0] + [2 * l + 1 for l in ls3[s]])[:-1].tolist()))
        for s in _TWISTS
    }
    off3_odd = {
        s: dict(zip(ls3_odd[s], np.cumsum([0] + [2 * l + 1 for l in ls3_odd[s]])[:-1].tolist()))
        for s in _TWISTS
    }
    outs = []
    for l3, s3 in set(gaunt_mul) | set(odd_mul):
        mul = max(gaunt_mul.get((l3, s3), 0), odd_mul.get((l3, s3), 0))
        outs.append(
            _Out(
                Irrep(l3, s3 * (-1) ** l3),
                mul,
                off3[s3].get(l3) if (l3, s3) in gaunt_mul else None,
                off3_odd[s3].get(l3) if (l3, s3) in odd_mul else None,
            )
        )
    outs.sort(key=lambda o: o.ir._key())
    irreps_out = Irreps([(o.mul, o.ir) for o in outs])

    l1max = max(irreps1.ls, default=0)
    l2max = max(irreps2.ls, default=0)
    grid_odd = odd_paths == "grid" and method == "grid"
    l3s = [l for s in _TWISTS for l in ls3[s] + (ls3_odd[s] if grid_odd else ())]
    l3max = max(l3s, default=0)
    a1, a2, b3, d1, r2, b3_odd, dense, odd = {}, {}, {}, {}, {}, {}, {}, {}
    res = None
    if method == "grid" and l3s:
        bound = _exact_resolution(l1max, l2max, l3max)
        res = bound if resolution is None else resolution
        if res[0] < bound[0] or res[1] < bound[1]:
            raise ValueError(
                f"{fn}: argument `resolution` {res} is below the exact grid {bound} (n_lat >= "
                f"ceil((L1 + L2 + L3 + 1) / 2), n_lon >= L1 + L2 + L3 + 1 for input degrees "
                f"L1 = {l1max}, L2 = {l2max} and output degree L3 = {l3max}): the product "
                "would be wrong by O(1)"
            )
        xyz, w = _grid(*res)
        ymax = max(l1max, l2max, l3max)
        y = _sh_numpy(ymax, xyz, "integral")
        for side, target in ((side1, a1), (side2, a2)):
            for s in _TWISTS:
                if side.ls[s]:
                    m = np.concatenate([_c(l, normalization) * y[l] for l in side.ls[s]], -1).T
                    m.setflags(write=False)
                    target[s] = m
        for s in _TWISTS:
            for ls, target in ((ls3[s], b3), (ls3_odd[s] if grid_odd else (), b3_odd)):
                if ls:
                    m = np.concatenate([w[:, None] * y[l] / _c(l, normalization) for l in ls], -1)
                    m.setflags(write=False)
                    target[s] = m
        if res[0] >= _SPLIT_MIN_LAT:  # north-south symmetry: half the grid products
            for side, src in ((side1, a1), (side2, a2)):
                for t in list(src):
                    src[t] = _split_synthesis(src[t], side.ls[t], res)
            for t in list(b3):
                b3[t] = _split_analysis(b3[t], ls3[t], res)
        if grid_odd:
            grads = _sh_grad_numpy(ymax, xyz)  # {l: (G, 3, 2l + 1)}, orthonormal harmonics
            # tangent frame (e_theta, e_phi, u right-handed; no grid point is a pole):
            # u . (grad f1 x grad f2) = f1_theta f2_phi - f1_phi f2_theta
            sin_t = np.sqrt(xyz[:, 0] ** 2 + xyz[:, 2] ** 2)
            e_phi = np.stack([xyz[:, 2], np.zeros_like(sin_t), -xyz[:, 0]], -1) / sin_t[:, None]
            e_theta = np.cross(e_phi, xyz)
            frames = {
                False: np.stack([e_theta, e_phi], 1),  # (G, 2, 3): (f_theta, f_phi)
                True: np.stack([e_phi, -e_theta], 1),  # (f_phi, -f_theta)
            }
            for side, target, second in ((side1, d1, False), (side2, r2, True)):
                for s in _TWISTS:
                    if not side.ls[s]:
                        continue
                    blocks = []
                    for l in side.ls[s]:
                        g = np.einsum("gka,gai->gki", frames[second], grads[l])
                        g = _c(l, normalization) * g
                        blocks.append(g.transpose(2, 1, 0).reshape(2 * l + 1, -1))  # (i, 2 G)
                    m = np.concatenate(blocks, 0)
                    m.setflags(write=False)
                    target[s] = m
    for s1 in _TWISTS:
        for s2 in _TWISTS:
            n1, n2 = side1.ls[s1], side2.ls[s2]
            if not n1 or not n2:
                continue
            s3 = s1 * s2
            if method == "dense" and ls3[s3]:
                t = _stack(n1, n2, ls3[s3], lambda a, b, c: _gaunt_scaled(a, b, c, normalization))
                if np.any(t):
                    dense[(s1, s2)] = t
            if ls3_odd[-s3] and not grid_odd:
                if odd_paths == "cg":
                    t = _stack(n1, n2, ls3_odd[-s3], _cg_odd)
                else:
                    t = _stack(
                        n1,
                        n2,
                        ls3_odd[-s3],
                        lambda a, b, c: _bracket_scaled(a, b, c, normalization),
                    )
                if np.any(t):
                    odd[(s1, s2)] = t
    return _Plan(
        side1,
        side2,
        channels,
        irreps_out,
        tuple(outs),
        ls3,
        ls3_odd,
        res,
        a1,
        a2,
        b3,
        d1,
        r2,
        b3_odd,
        dense,
        odd,
    )


def _gaunt_scaled(l1: int, l2: int, l3: int, normalization: str) -> np.ndarray:
    c = _c(l1, normalization) * _c(l2, normalization) / _c(l3, normalization)
    return c * _gaunt(l1, l2, l3)


@functools.cache
def _bracket(l1: int, l2: int, l3: int) -> np.ndarray:
    r""":math:`\int_{S^2} \hat u \cdot (\nabla Y_{l_1 m_1} \times \nabla Y_{l_2 m_2})\,
    Y_{l_3 m_3}\, d\Omega`, the Poisson-bracket coefficients (orthonormal harmonics), by
    the exact quadrature; zero unless :math:`l_1 + l_2 + l_3` is odd (and the triangle)."""
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    s = l1 + l2 + l3
    if s % 2 == 1 and abs(l1 - l2) <= l3 <= l1 + l2:
        xyz, w = _grid(*_exact_resolution(l1, l2, l3))
        y = _sh_numpy(l3, xyz, "integral")[l3]
        g = _sh_grad_numpy(max(l1, l2), xyz)
        h = np.einsum(
            "ga,gaij->gij", xyz, np.cross(g[l1][:, :, :, None], g[l2][:, :, None, :], axis=1)
        )
        out = np.einsum("g,gij,gk->ijk", w, h, y)
        scale = np.max(np.abs(out))
        out = np.where(np.abs(out) > 1e-13 * scale, out, 0.0)
    out.setflags(write=False)
    return out


def _bracket_scaled(l1: int, l2: int, l3: int, normalization: str) -> np.ndarray:
    c = _c(l1, normalization) * _c(l2, normalization) / _c(l3, normalization)
    return c * _bracket(l1, l2, l3)


def _cg_odd(l1: int, l2: int, l3: int) -> np.ndarray:
    """The component-normalized CG path, for :math:`l_1 + l_2 + l_3` odd only."""
    d = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    if (l1 + l2 + l3) % 2 == 0 or not abs(l1 - l2) <= l3 <= l1 + l2:
        return np.zeros(d)
    return math.sqrt(2 * l3 + 1) * np.asarray(clebsch_gordan(l1, l2, l3), np.float64)


def _stack(ls1, ls2, ls3, block) -> np.ndarray:
    rows = []
    for l1 in ls1:
        cols = []
        for l2 in ls2:
            cols.append(np.concatenate([block(l1, l2, l3) for l3 in ls3], axis=-1))
        rows.append(np.concatenate(cols, axis=1))
    t = np.concatenate(rows, axis=0)
    t.setflags(write=False)
    return t


# -- evaluation --------------------------------------------------------------------------------


def _embed(x: IrrepsArray, side: _Side, s: int, dtype) -> Array:
    """The twist-``s`` functions of ``x``: ``(..., C, n_s)``, copy ``c`` of each irrep in channel
    ``c`` (zero-padded to ``C`` channels)."""
    chunks = x.chunks
    lead = x.shape[:-1]
    parts = []
    for i, mul in side.entries[s]:
        ch = chunks[i].astype(dtype)
        if mul < side.channels:
            ch = jnp.concatenate(
                [ch, jnp.zeros(lead + (side.channels - mul, ch.shape[-1]), dtype)], axis=-2
            )
        parts.append(ch)
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def _resolution_key(fn: str, resolution):
    if resolution is None:
        return None
    if isinstance(resolution, numbers.Integral) and not isinstance(resolution, bool):
        resolution = (resolution, resolution)
    try:
        res = tuple(resolution)
    except TypeError:
        res = ()
    if len(res) != 2 or any(
        isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1 for r in res
    ):
        raise ValueError(
            f"{fn}: argument `resolution` must be None or (n_lat, n_lon), two positive ints; "
            f"got {resolution!r}"
        )
    return (int(res[0]), int(res[1]))


def gaunt_tensor_product(
    x1: IrrepsArray,
    x2: IrrepsArray,
    *,
    filter_ir_out=None,
    lmax_out: int | None = None,
    normalization: str = "component",
    method: str = "grid",
    resolution=None,
    odd_paths: str | None = None,
) -> IrrepsArray:
    r"""Gaunt tensor product: the coefficients of the product of two spherical functions.

    Channel by channel (see the module docstring for channels, parity and the grid),

    .. math::

        z_{l_3 m_3} = \sum_{l_1 m_1 l_2 m_2} \frac{c_{l_1} c_{l_2}}{c_{l_3}}\,
        G^{l_1 l_2 l_3}_{m_1 m_2 m_3}\, x_{1, l_1 m_1}\, x_{2, l_2 m_2}
        \ \Big(+ \sum_{l_1 + l_2 + l_3 \text{ odd}} \sqrt{2 l_3 + 1}\,
        C^{l_1 l_2 l_3}_{m_1 m_2 m_3}\, x_{1, l_1 m_1}\, x_{2, l_2 m_2}
        \text{ with ``odd_paths="cg"``}\Big),

    or, with ``odd_paths="grid"``, plus the coefficients of the Poisson bracket
    :math:`\hat u \cdot (\nabla f_1 \times \nabla f_2)` (see the module docstring),

    with :math:`G` from :func:`gaunt_coefficients` (paths with :math:`l_1 + l_2 + l_3` even
    only, output parity :math:`p_1 p_2`) and :math:`c_l` the ``normalization`` of the
    harmonics. Paths of each variant, for :math:`|l_1 - l_2| \le l_3 \le l_1 + l_2`:

    - ``odd_paths=None`` (Gaunt only): :math:`l_1 + l_2 + l_3` even; symmetric under
      swapping the inputs; cannot tell mirror images apart (no ``1o x 1o -> 1e``).
    - ``odd_paths="cg"``: also every :math:`l_1 + l_2 + l_3` odd path, with the
      Clebsch-Gordan coefficients of :func:`~geomjax.equivariant.full_tensor_product`
      (component normalization), evaluated densely: their cost is that of the dense CG
      product restricted to those paths.
    - ``odd_paths="grid"``: the same paths as ``"cg"``, the odd ones with the Poisson
      bracket's constants, evaluated on the grid (``method="dense"``: summed from the
      bracket's coefficient tensor).

    The matrix products follow ``jax_default_matmul_precision`` like the CG products (on
    NVIDIA GPUs float32 runs as TF32 unless it is ``"highest"``: about ``1e-3`` relative).

    Args:
      x1, x2: ``IrrepsArray`` s, shapes ``(..., irreps1.dim)`` and ``(..., irreps2.dim)``,
        leading shapes broadcastable. Multiplicities are channels: equal channel counts, or
        one side with all multiplicities 1 (broadcast).
      filter_ir_out: output irreps to keep (e.g. ``"0e + 1o"``; multiplicities ignored), or
        ``None``.
      lmax_out: keep output degrees up to this, or ``None`` (all, up to
        :math:`L_1 + L_2`). Both filters apply.
      normalization: ``"component"`` (default), ``"norm"`` or ``"integral"``: the
        harmonics :math:`c_l Y_l` the coefficients refer to, as in
        :func:`~geomjax.equivariant.spherical_harmonics`.
      method: ``"grid"`` (default; the exact sphere grid) or ``"dense"`` (sum over the
        stacked Gaunt tensor; for small degrees).
      resolution: ``None`` (the exact grid, :math:`(\lceil (L_1 + L_2 + L_3 + 1)/2 \rceil,
        L_1 + L_2 + L_3 + 1)`), or ``(n_lat, n_lon)`` (one int: both) at least that (a finer
        grid is exact too; a coarser one raises a ``ValueError``: below the bound the product
        is wrong by O(1), never silently approximate). Ignored by ``method="dense"``.
      odd_paths: ``None`` (Gaunt only), ``"cg"`` (adds the odd CG paths) or ``"grid"``
        (adds them from the Poisson bracket on the grid).

    Returns:
      ``IrrepsArray`` of the sorted output irreps (one entry per irrep, multiplicity the
      channels reached), shape ``(..., irreps_out.dim)``.

    Raises:
      TypeError: naming ``x1``/``x2`` for non-IrrepsArrays.
      ValueError: naming ``resolution`` (below the exact grid or malformed),
        ``filter_ir_out``, ``lmax_out``, ``normalization``, ``method``, ``odd_paths``, the
        channel counts or the leading shapes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray, gaunt_tensor_product
      >>> x = IrrepsArray("1o", jnp.array([1.0, 2.0, 3.0]))
      >>> y = IrrepsArray("1o", jnp.array([0.0, 1.0, 0.0]))
      >>> z = gaunt_tensor_product(x, y)
      >>> z.irreps
      1x0e+1x2e
      >>> z.filter(keep="0e").array.round(5)  # the dot product
      Array([2.], dtype=float32)
      >>> gaunt_tensor_product(x, y, odd_paths="cg").irreps
      1x0e+1x1e+1x2e
      >>> gaunt_tensor_product(x, y, odd_paths="grid").filter(keep="1e").array.round(4)
      Array([-5.1962,  0.    ,  1.7321], dtype=float32)
      >>> s = IrrepsArray("0e", jnp.array([2.0]))
      >>> gaunt_tensor_product(s, x).array.round(5)  # a 0e input multiplies
      Array([2., 4., 6.], dtype=float32)

    References:
      S. Luo, T. Chen, A. S. Krishnapriyan, "Enabling Efficient Equivariant Operations in the
      Fourier Basis via Gaunt Tensor Products", ICLR 2024, arXiv:2401.10216.
      Y. Xie et al., "The Price of Freedom", ICML 2025, arXiv:2506.13523.
    """
    fn = "gaunt_tensor_product"
    x1 = _check_irreps_array(fn, "x1", x1)
    x2 = _check_irreps_array(fn, "x2", x2)
    check_option(fn, "normalization", normalization, _NORMALIZATIONS)
    check_option(fn, "method", method, _METHODS)
    check_option(fn, "odd_paths", odd_paths, _ODD_PATHS)
    keep = _filter_key(fn, filter_ir_out)
    if lmax_out is not None and (
        isinstance(lmax_out, bool) or not isinstance(lmax_out, numbers.Integral) or lmax_out < 0
    ):
        raise ValueError(f"{fn}: argument `lmax_out` must be None or an int >= 0; got {lmax_out!r}")
    res = _resolution_key(fn, resolution)
    lead = _check_same_lead(fn, x1, x2)
    dtype = jnp.result_type(x1.dtype, x2.dtype)
    x1, x2 = x1.regroup(), x2.regroup()
    plan = _plan(
        x1.irreps,
        x2.irreps,
        keep,
        None if lmax_out is None else int(lmax_out),
        normalization,
        method,
        res,
        odd_paths,
    )
    if not plan.outs:
        return IrrepsArray._unchecked(plan.irreps_out, jnp.zeros(lead + (0,), dtype))
    e1 = {s: _embed(x1, plan.side1, s, dtype) for s in _TWISTS if plan.side1.ls[s]}
    e2 = {s: _embed(x2, plan.side2, s, dtype) for s in _TWISTS if plan.side2.ls[s]}

    gaunt = {}
    if method == "grid" and plan.b3:
        f1 = {s: _synthesis(e, plan.a1[s], dtype) for s, e in e1.items()}
        f2 = {s: _synthesis(e, plan.a2[s], dtype) for s, e in e2.items()}
        for s3 in _TWISTS:
            if not plan.ls3[s3]:
                continue
            pairs = [(f1[s1], f2[s1 * s3]) for s1 in f1 if s1 * s3 in f2]
            gaunt[s3] = _analysis(pairs, plan.b3[s3], dtype)  # (..., C, n3)
    else:
        for (s1, s2), t in plan.dense.items():
            term = jnp.einsum("...i,...j,ijk->...k", e1[s1], e2[s2], jnp.asarray(t, dtype))
            s3 = s1 * s2
            gaunt[s3] = term if s3 not in gaunt else gaunt[s3] + term
    odd = {}
    if plan.b3_odd:  # Poisson bracket u . (grad f1 x grad f2) = f1_t f2_p - f1_p f2_t
        g1 = {s: _matmul_2(e, plan.d1[s], dtype) for s, e in e1.items()}  # (..., C, 2, G)
        r2 = {s: _matmul_2(e, plan.r2[s], dtype) for s, e in e2.items()}
        for s3 in plan.b3_odd:
            prod = None
            for s1 in g1:
                s2 = -s1 * s3
                if s2 in r2:
                    term = jnp.sum(g1[s1] * r2[s2], axis=-2)
                    prod = term if prod is None else prod + term
            odd[s3] = prod @ jnp.asarray(plan.b3_odd[s3], dtype)
    for (s1, s2), t in plan.odd.items():
        term = jnp.einsum("...i,...j,ijk->...k", e1[s1], e2[s2], jnp.asarray(t, dtype))
        s3 = -s1 * s2
        odd[s3] = term if s3 not in odd else odd[s3] + term

    parts = []
    for o in plan.outs:
        s3 = _twist(o.ir)
        d = o.ir.dim
        piece = None
        if o.gaunt is not None and s3 in gaunt:
            piece = gaunt[s3][..., : o.mul, o.gaunt : o.gaunt + d]
        if o.odd is not None and s3 in odd:
            q = odd[s3][..., : o.mul, o.odd : o.odd + d]
            piece = q if piece is None else piece + q
        if piece is None:  # every path's tensor vanished
            piece = jnp.zeros(lead + (o.mul, d), dtype)
        piece = jnp.broadcast_to(piece, lead + piece.shape[-2:])
        parts.append(piece.reshape(lead + (o.mul * d,)))
    flat = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
    return IrrepsArray._unchecked(plan.irreps_out, flat)
