r"""Wigner-D matrices of :math:`O(3)` in e3nn's real basis: from a matrix, angles or a quaternion.

From a matrix (:func:`wigner_d`). The real spherical harmonics satisfy
:math:`Y_l(R\mathbf x) = D^l(R)\, Y_l(\mathbf x)`, and are orthonormal under a quadrature
:math:`\{(\mathbf x_k, w_k)\}` exact for polynomials of degree :math:`2l` on the sphere
(Gauss-Legendre in :math:`y = \cos\theta` times equispaced :math:`\varphi`), so

.. math::

    D^l(R) = \sum_k w_k\, Y_l(R \mathbf x_k)\, Y_l(\mathbf x_k)^\top

exactly. The constants :math:`w_k Y_l(\mathbf x_k)` are computed once per degree in float64;
each call evaluates the harmonics (a stable recursion, see
:func:`~geomjax.equivariant.spherical_harmonics`) at the :math:`(l+1)(2l+1)` rotated nodes and
makes one product at full precision. The result is a polynomial of degree :math:`l` in the
entries of :math:`R`: no angles, no branch, no singular point, differentiable everywhere, and
round-off is averaged over the nodes. A float32 rotation matrix is itself orthogonal only to
about :math:`\varepsilon`, which the degree-:math:`l` polynomial amplifies :math:`l`-fold; one
Newton-Schulz step :math:`D \leftarrow D (3I - D^\top D)/2` removes that to first order
(float32 orthogonality :math:`\|D D^\top - I\|_{\max}` measured :math:`1.6 \cdot 10^{-7}` at
:math:`l = 16`, :math:`1.5 \cdot 10^{-6}` without the step; float64 :math:`4 \cdot
10^{-16}`). For :math:`\det R = -1` the polynomial gives the
harmonics' parity :math:`(-1)^l`; an irrep of parity :math:`p` gets the extra sign
:math:`p\,(-1)^l`, i.e. :math:`D_{l,p}(R) = p^{k} D^l(\det(R) R)` with :math:`k = 1` for
:math:`\det R = -1` (e3nn's convention).

From angles (:func:`wigner_d_from_angles`): e3nn's :math:`Y X Y` Euler angles,
:math:`R = R_y(\alpha) R_x(\beta) R_y(\gamma)`, built as :math:`D_y(\alpha)\, J\, D_y(\beta)\,
J^\top D_y(\gamma)` with the closed-form rotation about the polar axis :math:`D_y` (2x2 blocks
of :math:`\cos m\theta, \sin m\theta`) and the constant :math:`J = D^l(R_z(-\pi/2))` (which
maps :math:`y` to :math:`x`): an independent route used to cross-check :func:`wigner_d`.

References:
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
  D. A. Varshalovich, A. N. Moskalev, V. K. Khersonskii, "Quantum Theory of Angular Momentum",
  World Scientific (1988), Ch. 4.
"""

# ruff: noqa: E741 (`l` is the degree of an irrep, the notation of the field and of e3nn)
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._spherical_harmonics import _sh_jax, _sh_numpy

__all__ = [
    "wigner_d",
    "wigner_d_from_angles",
    "wigner_d_from_quaternion",
]

_HIGHEST = jax.lax.Precision.HIGHEST


def _as_irrep(fn: str, irrep) -> Irrep:
    """An int ``l`` is the irrep of the spherical harmonics, parity ``(-1)^l``."""
    if isinstance(irrep, bool):
        raise TypeError(
            f"{fn}: argument `irrep` must be an int l, an irrep string or an Irrep; got {irrep!r}"
        )
    if isinstance(irrep, (int, np.integer)):
        if irrep < 0:
            raise ValueError(f"{fn}: argument `irrep` must be a non-negative degree; got {irrep}")
        return Irrep(int(irrep), (-1) ** int(irrep))
    try:
        return Irrep(irrep)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"{fn}: argument `irrep` must be an int l, an irrep string like '2e' or an Irrep; "
            f"got {irrep!r}"
        ) from err


def _check_matrix(fn: str, R) -> Array:
    R = jnp.asarray(R)
    if not jnp.issubdtype(R.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `R` must have a real floating dtype (float32 or float64); got {R.dtype}"
        )
    if R.shape != (3, 3):
        raise ValueError(
            f"{fn}: argument `R` must have shape (3, 3) (use jax.vmap for a batch); got shape "
            f"{R.shape}"
        )
    return R


@functools.cache
def _quadrature(level: int) -> np.ndarray:
    """Nodes and weights ``(N, 4)`` (x, y, z, w), exact for spherical polynomials of degree
    ``2 * level``: ``level + 1`` Gauss-Legendre nodes in y, ``2 * level + 1`` angles; weights sum
    to 1 (the mean over the sphere, matching the component normalization)."""
    t, wt = np.polynomial.legendre.leggauss(level + 1)
    n_phi = 2 * level + 1
    phi = 2 * np.pi * (np.arange(n_phi) + 0.5) / n_phi
    s = np.sqrt(np.clip(1 - t * t, 0.0, None))
    x = (s[:, None] * np.sin(phi)[None, :]).ravel()
    y = np.repeat(t, n_phi)
    z = (s[:, None] * np.cos(phi)[None, :]).ravel()
    w = np.repeat(wt / 2.0, n_phi) / n_phi
    return np.stack([x, y, z, w], axis=-1)


@functools.cache
def _projector(l: int, level: int) -> np.ndarray:
    """``w_k Y_l(x_k)``, shape ``(N, 2l + 1)``, float64."""
    q = _quadrature(level)
    return q[:, 3:4] * _sh_numpy(level, q[:, :3])[l]


def _det3(R: Array) -> Array:
    return jnp.dot(R[0], jnp.cross(R[1], R[2]), precision=_HIGHEST)


def _wigner_blocks(ls: tuple[int, ...], R: Array) -> dict[int, Array]:
    """``{l: D^l(R)}`` (harmonics' parity) for the degrees ``ls``, from one evaluation of the
    harmonics at the nodes of the quadrature of level ``max(ls)``."""
    level = max(ls)
    nodes = jnp.asarray(_quadrature(level)[:, :3], R.dtype)
    rotated = jnp.matmul(nodes, R.T, precision=_HIGHEST)
    sh = _sh_jax(level, rotated, "component")
    out = {}
    for l in ls:
        d = jnp.matmul(sh[l].T, jnp.asarray(_projector(l, level), R.dtype), precision=_HIGHEST)
        out[l] = _newton_schulz(d)
    return out


def _newton_schulz(d: Array) -> Array:
    """One step ``D (3 I - D^T D) / 2`` toward the nearest orthogonal matrix.

    A float32 rotation matrix is orthogonal only to about ``eps`` (its entries are rounded),
    and the degree-``l`` polynomial ``D^l(R)`` amplifies that ``l``-fold (1.5e-6 at ``l = 16``).
    The step squares the deviation (``D^T D = I + E`` gives ``I + O(E^2)``), leaving the
    round-off of the step itself (2e-7 at ``l = 16``); for an orthogonal ``R`` in float64 it
    changes ``D`` by ``O(eps^2)``.
    """
    gram = jnp.matmul(d.T, d, precision=_HIGHEST)
    eye = jnp.eye(d.shape[0], dtype=d.dtype)
    return jnp.matmul(d, 1.5 * eye - 0.5 * gram, precision=_HIGHEST)


def _parity_sign(irrep: Irrep, R: Array) -> Array | None:
    """``p (-1)^l`` where ``det R < 0``, else 1 (None when it is 1 everywhere)."""
    extra = irrep.p * (-1) ** irrep.l
    if extra == 1:
        return None
    det = jax.lax.stop_gradient(_det3(R))
    return jnp.where(det < 0, jnp.asarray(-1.0, R.dtype), jnp.asarray(1.0, R.dtype))


def wigner_d(irrep, R: ArrayLike) -> Array:
    r"""Wigner matrix :math:`D_{l,p}(R)` of an :math:`O(3)` matrix in e3nn's real basis.

    .. math::

        Y_l(R\mathbf x) = D^l(R)\, Y_l(\mathbf x), \qquad
        D_{l,p}(R) = p^{k} D^l(\det(R)\, R), \quad k = [\det R < 0],

    with :math:`Y_l` the real spherical harmonics of
    :func:`~geomjax.equivariant.spherical_harmonics`; :math:`D^1(R) = R`. Computed exactly by
    quadrature of the harmonics, then one Newton-Schulz orthogonalization step (see the module
    docstring): a smooth function of the entries of ``R`` (a polynomial of degree :math:`l`
    on :math:`O(3)`), so ``jax.grad``/``jax.jacfwd`` with respect to ``R`` are smooth,
    and ``jit``/``vmap`` apply. Input domain (not checked): ``R`` should be orthogonal; for a
    general matrix the result is that polynomial followed by one Newton-Schulz step toward
    orthogonality. A non-finite entry of ``R`` gives an all-NaN matrix for :math:`l \ge 1`;
    :math:`D^0 = [[1]]` (times :math:`p` for a reflection) whatever ``R``.

    Args:
      irrep: an int :math:`l` (parity :math:`(-1)^l`, the harmonics'), an irrep string such as
        ``"1e"`` or an :class:`~geomjax.equivariant.Irrep`.
      R: orthogonal matrix, shape ``(3, 3)``, real floating (use ``jax.vmap`` for a batch).

    Returns:
      Array of shape ``(2l + 1, 2l + 1)``, dtype of ``R``.

    Raises:
      ValueError: naming ``irrep`` or ``R`` (shape).
      TypeError: naming ``R`` for a non-floating dtype, ``irrep`` for a non-irrep.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import wigner_d
      >>> R = jnp.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
      >>> bool(jnp.allclose(wigner_d(1, R), R, atol=1e-6))
      True
      >>> D = wigner_d(4, R)
      >>> DDt = jnp.matmul(D, D.T, precision="highest")  # not TF32 on GPUs
      >>> bool(jnp.allclose(DDt, jnp.eye(9), atol=1e-6))
      True
      >>> wigner_d("1e", -jnp.eye(3)).round(6) + 0.0  # a pseudovector is inversion-invariant
      Array([[1., 0., 0.],
             [0., 1., 0.],
             [0., 0., 1.]], dtype=float32)

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "wigner_d"
    ir = _as_irrep(fn, irrep)
    R = _check_matrix(fn, R)
    d = _wigner_blocks((ir.l,), R)[ir.l]
    sign = _parity_sign(ir, R)
    return d if sign is None else sign * d


def irreps_wigner_d(irreps, R: ArrayLike) -> Array:
    r"""Block-diagonal representation matrix of :class:`~geomjax.equivariant.Irreps` for an
    :math:`O(3)` matrix: one :func:`wigner_d` block per copy of each irrep (``Irreps.D_from_matrix``).

    Args:
      irreps: the irreps.
      R: orthogonal matrix, shape ``(3, 3)``.

    Returns:
      Array of shape ``(irreps.dim, irreps.dim)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import Irreps
      >>> Irreps("2x0e + 1o").D_from_matrix(-jnp.eye(3)).diagonal().round(6) + 0.0
      Array([ 1.,  1., -1., -1., -1.], dtype=float32)
    """
    fn = "Irreps.D_from_matrix"
    try:
        irreps = Irreps(irreps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `irreps` is not valid irreps: {err}") from err
    R = _check_matrix(fn, R)
    ls = tuple(sorted({ir.l for mul, ir in irreps if mul > 0}))
    if not ls:
        return jnp.zeros((0, 0), R.dtype)
    blocks = _wigner_blocks(ls, R)
    mats = []
    for mul, ir in irreps:
        if mul == 0:
            continue
        sign = _parity_sign(ir, R)
        d = blocks[ir.l] if sign is None else sign * blocks[ir.l]
        mats.extend([d] * mul)
    return jax.scipy.linalg.block_diag(*mats)


def _rotation_y_block(l: int, angle: Array) -> Array:
    """Closed-form :math:`D^l(R_y(\\theta))`: ``cos(m θ)`` on the diagonal, ``sin(m θ)`` at
    ``(l - m, l + m)`` (component ``-m`` of the rotated vector gains ``sin(m θ)`` times ``+m``)."""
    m = jnp.arange(-l, l + 1, dtype=angle.dtype)
    c, s = jnp.cos(m * angle), jnp.sin(m * angle)
    idx = jnp.arange(2 * l + 1)
    out = jnp.zeros((2 * l + 1, 2 * l + 1), angle.dtype)
    out = out.at[idx, idx].set(c)
    return out.at[idx[::-1], idx].add(jnp.where(m == 0, 0.0, s))


@functools.cache
def _y_to_x(l: int) -> np.ndarray:
    """:math:`D^l(R_z(-\\pi/2))` in float64 (``R_z(-\\pi/2)`` maps the y axis to the x axis)."""
    rz = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    q = _quadrature(l)
    sh_rot = _sh_numpy(l, q[:, :3] @ rz.T)[l]
    out = sh_rot.T @ _projector(l, l)
    out[np.abs(out) < 1e-15] = 0.0
    return out


def _check_angle(fn: str, name: str, a) -> Array:
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        if jnp.issubdtype(a.dtype, jnp.integer) and not jnp.issubdtype(a.dtype, jnp.bool_):
            a = a.astype(jnp.result_type(float))
        else:
            raise TypeError(f"{fn}: argument `{name}` must be a real angle; got dtype {a.dtype}")
    if a.shape != ():
        raise ValueError(
            f"{fn}: argument `{name}` must be a scalar angle (use jax.vmap for a batch); got "
            f"shape {a.shape}"
        )
    return a


def wigner_d_from_angles(irrep, alpha: ArrayLike, beta: ArrayLike, gamma: ArrayLike) -> Array:
    r"""Wigner matrix of the rotation :math:`R_y(\alpha) R_x(\beta) R_y(\gamma)` (e3nn's
    :math:`YXY` Euler angles).

    .. math::

        D^l(R_y(\alpha) R_x(\beta) R_y(\gamma)) = D_y(\alpha)\, J\, D_y(\beta)\, J^\top
        D_y(\gamma), \qquad J = D^l(R_z(-\pi/2)),

    with :math:`D_y(\theta)` in closed form (:math:`\cos m\theta` on the diagonal,
    :math:`\sin m\theta` on the anti-diagonal) and :math:`J` a float64 constant. Rotations
    only: the parity of ``irrep`` does not enter.

    Args:
      irrep: an int :math:`l`, an irrep string or an :class:`~geomjax.equivariant.Irrep`.
      alpha, beta, gamma: scalar angles in radians (use ``jax.vmap`` for a batch); a
        non-finite angle gives an all-NaN matrix.

    Returns:
      Array of shape ``(2l + 1, 2l + 1)`` (dtype of the angles, float32 for ints).

    Raises:
      ValueError, TypeError: naming the argument.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import wigner_d_from_angles
      >>> wigner_d_from_angles(1, jnp.pi / 2, 0.0, 0.0).round(6) + 0.0  # R_y(pi/2)
      Array([[ 0.,  0.,  1.],
             [ 0.,  1.,  0.],
             [-1.,  0.,  0.]], dtype=float32)
    """
    fn = "wigner_d_from_angles"
    ir = _as_irrep(fn, irrep)
    angles = [
        _check_angle(fn, n, a) for n, a in (("alpha", alpha), ("beta", beta), ("gamma", gamma))
    ]
    dtype = jnp.result_type(*angles)
    alpha, beta, gamma = (a.astype(dtype) for a in angles)
    j = jnp.asarray(_y_to_x(ir.l), dtype)
    mm = functools.partial(jnp.matmul, precision=_HIGHEST)
    dx = mm(mm(j, _rotation_y_block(ir.l, beta)), j.T)
    return mm(mm(_rotation_y_block(ir.l, alpha), dx), _rotation_y_block(ir.l, gamma))


def _quaternion_matrix(q: Array) -> Array:
    w, x, y, z = q[0], q[1], q[2], q[3]
    n = w * w + x * x + y * y + z * z
    s = 2.0 / n
    return jnp.stack(
        [
            jnp.stack([1 - s * (y * y + z * z), s * (x * y - w * z), s * (x * z + w * y)]),
            jnp.stack([s * (x * y + w * z), 1 - s * (x * x + z * z), s * (y * z - w * x)]),
            jnp.stack([s * (x * z - w * y), s * (y * z + w * x), 1 - s * (x * x + y * y)]),
        ]
    )


def wigner_d_from_quaternion(irrep, q: ArrayLike) -> Array:
    r"""Wigner matrix of the rotation of a scalar-first quaternion :math:`q = (w, x, y, z)`.

    .. math::

        R(q) = I + \frac{2}{|q|^2}\left(w\,[v]_\times + [v]_\times^2\right), \quad v = (x, y, z),
        \qquad D^l(R(q)) \text{ by } \texttt{wigner\_d}.

    ``q`` is normalized inside (``q`` and ``-q`` give the same matrix; ``q = 0`` is not a
    rotation and gives NaN). Rotations only: the parity of ``irrep`` does not enter.

    Args:
      irrep: an int :math:`l`, an irrep string or an :class:`~geomjax.equivariant.Irrep`.
      q: quaternion, shape ``(4,)``, scalar first (use ``jax.vmap`` for a batch).

    Returns:
      Array of shape ``(2l + 1, 2l + 1)``.

    Raises:
      ValueError, TypeError: naming ``irrep`` or ``q``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import wigner_d_from_quaternion
      >>> c = jnp.cos(jnp.pi / 4)  # pi/2 about y
      >>> wigner_d_from_quaternion(1, jnp.array([c, 0.0, c, 0.0])).round(6) + 0.0
      Array([[ 0.,  0.,  1.],
             [ 0.,  1.,  0.],
             [-1.,  0.,  0.]], dtype=float32)
    """
    fn = "wigner_d_from_quaternion"
    ir = _as_irrep(fn, irrep)
    q = jnp.asarray(q)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `q` must have a real floating dtype; got {q.dtype}")
    if q.shape != (4,):
        raise ValueError(
            f"{fn}: argument `q` must have shape (4,) (use jax.vmap for a batch); got shape {q.shape}"
        )
    R = _quaternion_matrix(q)
    return _wigner_blocks((ir.l,), R)[ir.l]
