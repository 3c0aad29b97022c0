"""The rotation group SO(3): group functions (hat/vee, Rodrigues, stable log, quaternions,
axis-angle) and the manifold ``SO3`` with its bi-invariant metric.

Conventions:

- A rotation vector ``w`` (shape ``(3,)``) has angle ``|w|`` and axis ``w / |w|``;
  ``hat(w) @ p == cross(w, p)``.
- Quaternions are **scalar-first** ``(w, x, y, z)`` (scipy's ``Rotation.as_quat`` is
  scalar-last ``(x, y, z, w)``). ``matrix_to_quat`` returns the representative with ``w >= 0``
  (at angle pi, ``w == 0`` and the sign of the vector part is the one Shepperd's branch gives).
- Tangent vectors at ``R`` are ambient ``3 x 3`` matrices ``u = R hat(a)`` (left
  trivialization); the metric is ``<u, v>_R = tr(u^T v) / 2``, so ``|R hat(a)|_R = |a|`` and the
  distance is the rotation angle of ``R1^T R2``.
- Input domain: the functions check shapes and dtypes at trace time but do not inspect values.
  A NaN entry that is read gives NaN (NaN in, NaN out); an infinite entry gives unspecified,
  possibly finite, values (e.g. an angle from ``atan2`` of an infinite side); a matrix that is not
  a rotation is not detected (``SO3().check_point`` measures it).

References:
  J. Sola, J. Deray, D. Atchuthan, "A micro Lie theory for state estimation in robotics",
  arXiv:1812.01537 (2018).
  S. W. Shepperd, "Quaternion from rotation matrix", J. Guidance and Control 1(3), 1978.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array_of_shape,
    full_precision,
    safe_norm,
    taylor_threshold,
)
from geomjax.manifolds._base import (
    Manifold,
    as_real_scalar_array,
    check_float_dtype,
    check_key,
    check_time,
    svd_or_nan,
)

# -- helpers ---------------------------------------------------------------------------------
_arr = as_float_array_of_shape


def _series_or_closed(t2: Array, coeffs: tuple[float, ...], closed, thr: float) -> Array:
    """``sum_k coeffs[k] t2**k`` where ``sqrt(t2) < thr``, else ``closed(sqrt(t2))``.

    Double-where: ``closed`` sees ``1`` and the series sees ``0`` on the unselected entries, so
    neither values nor gradients of the discarded branch can be NaN. The series is a polynomial
    in ``t2 = theta^2``, which keeps second derivatives exact at ``theta = 0``.
    """
    small = t2 < thr * thr
    t2_small = jnp.where(small, t2, jnp.zeros_like(t2))
    theta_large = jnp.sqrt(jnp.where(small, jnp.ones_like(t2), t2))
    series = jnp.zeros_like(t2)
    for c in reversed(coeffs):
        series = series * t2_small + c
    return jnp.where(small, series, closed(theta_large))


def _thr(dtype) -> float:
    # 4-term series (remainder ~ theta^8) switched at eps^(1/8): series error << eps, and the
    # closed forms' derivative cancellation (~ eps / theta^2) stays ~ eps^(3/4).
    return taylor_threshold(dtype, 8)


def _coef_a(t2: Array) -> Array:
    """``sin(theta) / theta``."""
    return _series_or_closed(
        t2, (1.0, -1 / 6, 1 / 120, -1 / 5040), lambda t: jnp.sin(t) / t, _thr(t2.dtype)
    )


def _coef_b(t2: Array) -> Array:
    """``(1 - cos(theta)) / theta^2``.

    The closed form is evaluated as ``2 sin^2(theta/2) / theta^2``, free of cancellation.
    """
    return _series_or_closed(
        t2,
        (0.5, -1 / 24, 1 / 720, -1 / 40320),
        lambda t: 2.0 * jnp.square(jnp.sin(0.5 * t) / t),
        _thr(t2.dtype),
    )


def _coef_c(t2: Array) -> Array:
    """``(theta - sin(theta)) / theta^3``."""
    return _series_or_closed(
        t2,
        (1 / 6, -1 / 120, 1 / 5040, -1 / 362880),
        lambda t: (t - jnp.sin(t)) / (t * t * t),
        _thr(t2.dtype),
    )


def _coef_d(t2: Array) -> Array:
    """``(1 - (theta/2) cot(theta/2)) / theta^2`` (finite for ``theta < 2 pi``)."""

    def closed(t):
        h = 0.5 * t
        return (1.0 - h * jnp.cos(h) / jnp.sin(h)) / (t * t)

    return _series_or_closed(t2, (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600), closed, _thr(t2.dtype))


# _HAT_BASIS[i, j, k] = -epsilon_ijk, so hat(w) = _HAT_BASIS . w and, for any m,
# sum_ij m_ij _HAT_BASIS[i, j, :] = 2 vee(m) (only the skew part of m contributes).
_HAT_BASIS = -np.array(
    [[[(i - j) * (j - k) * (k - i) / 2 for k in range(3)] for j in range(3)] for i in range(3)]
)


def _skew(a: Array) -> Array:
    return 0.5 * (a - a.T)


def _hat_squared(w: Array, t2: Array) -> Array:
    """``hat(w) @ hat(w) = w w^T - |w|^2 I`` in closed form: exact, and no matrix product (a
    batched float64 3x3 product in the gradient of ``log_se3`` hit an XLA GPU compiler error,
    "Couldn't find output tile sizes", with jax 0.11.2 on an H100)."""
    return w[:, None] * w[None, :] - t2 * jnp.eye(3, dtype=w.dtype)


# -- hat / vee / exp / log ----------------------------------------------------------------------
@full_precision
def hat(w: ArrayLike) -> Array:
    """Skew-symmetric matrix of a 3-vector: ``hat(w) @ p == cross(w, p)``.

    .. math:: \\hat w = \\begin{pmatrix} 0 & -w_3 & w_2 \\\\ w_3 & 0 & -w_1 \\\\ -w_2 & w_1 & 0
       \\end{pmatrix}

    Args:
      w: vector, shape ``(3,)``.

    Returns:
      Skew-symmetric matrix, shape ``(3, 3)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import hat
      >>> hat(jnp.array([1.0, 2.0, 3.0])) @ jnp.array([0.0, 0.0, 1.0])
      Array([ 2., -1.,  0.], dtype=float32)
    """
    w = _arr("hat", "w", w, (3,))
    return jnp.tensordot(jnp.asarray(_HAT_BASIS, w.dtype), w, axes=1)


@full_precision
def vee(m: ArrayLike) -> Array:
    """Inverse of :func:`hat`, applied to the skew-symmetric part ``(m - m^T) / 2``.

    Args:
      m: matrix, shape ``(3, 3)``.

    Returns:
      Vector, shape ``(3,)``; ``vee(hat(w)) == w``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import hat, vee
      >>> vee(hat(jnp.array([1.0, 2.0, 3.0])))
      Array([1., 2., 3.], dtype=float32)
    """
    m = _arr("vee", "m", m, (3, 3))
    return 0.5 * jnp.tensordot(m, jnp.asarray(_HAT_BASIS, m.dtype), axes=2)


@full_precision
def exp_so3(w: ArrayLike) -> Array:
    """Group exponential (Rodrigues' formula) of a rotation vector, with Taylor branches at 0.

    .. math:: \\operatorname{Exp}(w) = I + \\frac{\\sin\\theta}{\\theta}\\hat w
       + \\frac{1 - \\cos\\theta}{\\theta^2}\\hat w^2, \\qquad \\theta = |w|

    Args:
      w: rotation vector, shape ``(3,)``.

    Returns:
      Rotation matrix, shape ``(3, 3)``. Values and all derivatives are finite at ``w = 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import exp_so3
      >>> R = exp_so3(jnp.array([0.0, 0.0, jnp.pi / 2]))
      >>> jnp.round(R @ jnp.array([1.0, 0.0, 0.0]), 6)
      Array([0., 1., 0.], dtype=float32)

    References:
      Sola et al., "A micro Lie theory for state estimation in robotics",
      arXiv:1812.01537, eq. (77).
    """
    w = _arr("exp_so3", "w", w, (3,))
    t2 = jnp.dot(w, w)
    W = hat(w)
    return jnp.eye(3, dtype=w.dtype) + _coef_a(t2) * W + _coef_b(t2) * _hat_squared(w, t2)


def _angle_parts(m: Array) -> tuple[Array, Array, Array]:
    """``s = vee(skew(m))`` (``sin(theta) n``), ``c = (tr m - 1) / 2`` and ``|s|`` (safe)."""
    s = vee(m)
    c = 0.5 * (jnp.trace(m) - 1.0)
    return s, c, safe_norm(s)


@full_precision
def rotation_angle(R: ArrayLike) -> Array:
    """Rotation angle in ``[0, pi]``, computed as ``atan2(|s|, c)`` (accurate at 0 and pi).

    .. math:: \\theta = \\operatorname{atan2}\\left(|\\operatorname{vee}(R - R^T)|/2,\\;
       (\\operatorname{tr} R - 1)/2\\right)

    Args:
      R: rotation matrix, shape ``(3, 3)``.

    Returns:
      Scalar angle. Its gradient is finite (zero) at angle 0 and at angle pi.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import exp_so3, rotation_angle
      >>> round(float(rotation_angle(exp_so3(jnp.array([0.3, 0.0, 0.4])))), 5)
      0.5
    """
    R = _arr("rotation_angle", "R", R, (3, 3))
    _, c, s_norm = _angle_parts(R)
    return jnp.arctan2(s_norm, c)


@full_precision
def log_so3(R: ArrayLike) -> Array:
    """Group logarithm: the rotation vector ``w`` with ``|w| <= pi`` and ``exp_so3(w) == R``.

    With ``s = vee(R - R^T) / 2 = sin(theta) n`` and ``c = (tr R - 1) / 2 = cos(theta)``:

    .. math::
       \\theta = \\operatorname{atan2}(|s|, c), \\qquad
       w = \\begin{cases} \\dfrac{\\theta}{|s|}\\, s & c \\ge 0
       \\quad (\\text{series of } \\operatorname{atan}(|s|/c)/|s| \\text{ near } |s| = 0)\\\\
       \\theta\\, n,\\; n n^T = \\dfrac{(R + R^T)/2 - c I}{1 - c} & c < 0
       \\end{cases}

    In the second branch ``n`` is the column of ``(R + R^T)/2 - cI`` with the largest diagonal
    entry, normalized by ``sqrt((1 - c)(S_kk - c))`` and signed so that ``n . s >= 0``; this is
    accurate up to and including angle pi (where both ``+-pi n`` are valid logarithms).

    Args:
      R: rotation matrix, shape ``(3, 3)``.

    Returns:
      Rotation vector, shape ``(3,)``. Values and gradients are finite at angles 0 and pi.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import exp_so3, log_so3
      >>> w = jnp.array([0.1, -0.2, 0.3])
      >>> bool(jnp.allclose(log_so3(exp_so3(w)), w, atol=1e-6))
      True

    References:
      Sola et al., "A micro Lie theory for state estimation in robotics",
      arXiv:1812.01537, eq. (78).
    """
    R = _arr("log_so3", "R", R, (3, 3))
    dtype = R.dtype
    eye = jnp.eye(3, dtype=dtype)
    near_pi = 0.5 * (jnp.trace(R) - 1.0) < 0
    # Double where: each branch runs on a harmless substitute where it is not selected.
    R_s = jnp.where(near_pi, eye, R)
    R_p = jnp.where(near_pi, R, jnp.diag(jnp.array([1.0, -1.0, -1.0], dtype)))

    # Branch c >= 0: w = s * atan2(|s|, c) / |s|.
    s, c, s_norm = _angle_parts(R_s)
    thr = _thr(dtype)
    s2 = jnp.dot(s, s)
    small = s2 < (thr * thr) * (c * c)  # tan(theta) < thr (c >= 0 here)
    c_small = jnp.where(small, c, jnp.ones_like(c))
    z2 = jnp.where(small, s2, jnp.zeros_like(s2)) / (c_small * c_small)  # tan^2(theta)
    series = (1.0 - z2 / 3 + z2**2 / 5 - z2**3 / 7) / c_small
    s_norm_large = jnp.where(small | (s_norm == 0), jnp.ones_like(s_norm), s_norm)
    closed = jnp.arctan2(s_norm_large, c) / s_norm_large
    w_s = jnp.where(small, series, closed) * s

    # Branch c < 0: axis from the symmetric part, angle from atan2.
    s_p, c_p, s_norm_p = _angle_parts(R_p)
    theta_p = jnp.arctan2(s_norm_p, c_p)
    m = 0.5 * (R_p + R_p.T) - c_p * eye  # = (1 - c) n n^T
    onehot = jax.nn.one_hot(jnp.argmax(jnp.diagonal(m)), 3, dtype=dtype)  # largest diagonal
    n = (m @ onehot) / jnp.sqrt((1.0 - c_p) * jnp.dot(jnp.diagonal(m), onehot))
    n = jnp.where(jnp.dot(n, s_p) < 0, -n, n)
    w_p = theta_p * n

    return jnp.where(near_pi, w_p, w_s)


@full_precision
def left_jacobian_so3(w: ArrayLike) -> Array:
    """Left Jacobian ``J_l(w)`` of SO(3) (the ``V`` matrix of the SE(3) exponential).

    .. math:: J_l(w) = I + \\frac{1 - \\cos\\theta}{\\theta^2}\\hat w
       + \\frac{\\theta - \\sin\\theta}{\\theta^3}\\hat w^2

    Args:
      w: rotation vector, shape ``(3,)``.

    Returns:
      Matrix, shape ``(3, 3)``; Taylor branches keep it smooth at ``w = 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import left_jacobian_so3
      >>> left_jacobian_so3(jnp.zeros(3))
      Array([[1., 0., 0.],
             [0., 1., 0.],
             [0., 0., 1.]], dtype=float32)

    References:
      Sola et al., arXiv:1812.01537, eq. (145).
    """
    w = _arr("left_jacobian_so3", "w", w, (3,))
    t2 = jnp.dot(w, w)
    W = hat(w)
    return jnp.eye(3, dtype=w.dtype) + _coef_b(t2) * W + _coef_c(t2) * _hat_squared(w, t2)


@full_precision
def inv_left_jacobian_so3(w: ArrayLike) -> Array:
    """Inverse of :func:`left_jacobian_so3`, valid for ``|w| < 2 pi``.

    .. math:: J_l^{-1}(w) = I - \\tfrac12\\hat w
       + \\frac{1 - (\\theta/2)\\cot(\\theta/2)}{\\theta^2}\\hat w^2

    Args:
      w: rotation vector, shape ``(3,)``.

    Returns:
      Matrix, shape ``(3, 3)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import left_jacobian_so3, inv_left_jacobian_so3
      >>> w = jnp.array([0.5, -1.0, 2.0])
      >>> bool(jnp.allclose(inv_left_jacobian_so3(w) @ left_jacobian_so3(w), jnp.eye(3), atol=1e-5))
      True

    References:
      Sola et al., arXiv:1812.01537, eq. (146).
    """
    w = _arr("inv_left_jacobian_so3", "w", w, (3,))
    t2 = jnp.dot(w, w)
    W = hat(w)
    return jnp.eye(3, dtype=w.dtype) - 0.5 * W + _coef_d(t2) * _hat_squared(w, t2)


# -- quaternions and axis-angle -------------------------------------------------------------
@full_precision
def quat_to_matrix(q: ArrayLike) -> Array:
    """Rotation matrix of a scalar-first quaternion ``q = (w, x, y, z)`` (normalized inside).

    .. math:: R = I + \\frac{2}{|q|^2}\\left(w\\,\\hat v + \\hat v^2\\right), \\qquad v = (x, y, z)

    Args:
      q: nonzero quaternion, shape ``(4,)``, scalar first; ``q`` and ``-q`` give the same ``R``
        (``q = 0`` gives NaN).

    Returns:
      Rotation matrix, shape ``(3, 3)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import quat_to_matrix
      >>> quat_to_matrix(jnp.array([0.0, 0.0, 0.0, 1.0]))  # pi about z
      Array([[-1.,  0.,  0.],
             [ 0., -1.,  0.],
             [ 0.,  0.,  1.]], dtype=float32)
    """
    q = _arr("quat_to_matrix", "q", q, (4,))
    V = hat(q[1:])
    return jnp.eye(3, dtype=q.dtype) + (2.0 / jnp.dot(q, q)) * (q[0] * V + V @ V)


@full_precision
def matrix_to_quat(R: ArrayLike) -> Array:
    """Unit scalar-first quaternion ``(w, x, y, z)`` of a rotation matrix, by Shepperd's method.

    Row ``i`` of the symmetric matrix ``K`` below equals ``4 q_i q``; the row with the largest
    diagonal entry (``K_ii = 4 q_i^2 >= 1``) is normalized, so no division is ill-conditioned:

    .. math:: K = \\begin{pmatrix}
       1 + R_{00} + R_{11} + R_{22} & R_{21} - R_{12} & R_{02} - R_{20} & R_{10} - R_{01} \\\\
       \\cdot & 1 + R_{00} - R_{11} - R_{22} & R_{01} + R_{10} & R_{02} + R_{20} \\\\
       \\cdot & \\cdot & 1 - R_{00} + R_{11} - R_{22} & R_{12} + R_{21} \\\\
       \\cdot & \\cdot & \\cdot & 1 - R_{00} - R_{11} + R_{22}\\end{pmatrix}

    Args:
      R: rotation matrix, shape ``(3, 3)``.

    Returns:
      Unit quaternion, shape ``(4,)``, scalar first, sign chosen so that ``w >= 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import matrix_to_quat
      >>> matrix_to_quat(jnp.eye(3))
      Array([1., 0., 0., 0.], dtype=float32)

    References:
      S. W. Shepperd, "Quaternion from rotation matrix", J. Guidance and Control 1(3), 1978.
    """
    R = _arr("matrix_to_quat", "R", R, (3, 3))
    r00, r11, r22 = R[0, 0], R[1, 1], R[2, 2]
    a = R[2, 1] - R[1, 2]
    b = R[0, 2] - R[2, 0]
    c = R[1, 0] - R[0, 1]
    d = R[0, 1] + R[1, 0]
    e = R[0, 2] + R[2, 0]
    f = R[1, 2] + R[2, 1]
    K = jnp.stack(
        [
            jnp.stack([1.0 + r00 + r11 + r22, a, b, c]),
            jnp.stack([a, 1.0 + r00 - r11 - r22, d, e]),
            jnp.stack([b, d, 1.0 - r00 + r11 - r22, f]),
            jnp.stack([c, e, f, 1.0 - r00 - r11 + r22]),
        ]
    )
    onehot = jax.nn.one_hot(jnp.argmax(jnp.diagonal(K)), 4, dtype=R.dtype)
    row = onehot @ K  # the row with the largest diagonal: |row| >= K_ii >= 1 for a rotation
    q = row / safe_norm(row)
    return jnp.where(q[0] < 0, -q, q)


@full_precision
def axis_angle_to_matrix(axis: ArrayLike, angle: ArrayLike) -> Array:
    """Rotation by ``angle`` (radians, right-hand rule) about ``axis`` (normalized inside).

    .. math:: R = \\operatorname{Exp}(\\text{angle} \\cdot \\text{axis} / |\\text{axis}|)

    Args:
      axis: nonzero vector, shape ``(3,)`` (a zero axis gives NaN).
      angle: real scalar.

    Returns:
      Rotation matrix, shape ``(3, 3)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import axis_angle_to_matrix
      >>> R = axis_angle_to_matrix(jnp.array([0.0, 0.0, 2.0]), jnp.pi / 2)
      >>> jnp.round(R @ jnp.array([0.0, 1.0, 0.0]), 6)
      Array([-1.,  0.,  0.], dtype=float32)
    """
    axis = _arr("axis_angle_to_matrix", "axis", axis, (3,))
    angle = as_real_scalar_array("axis_angle_to_matrix", "angle", angle)
    if not (jnp.issubdtype(angle.dtype, jnp.floating) or jnp.issubdtype(angle.dtype, jnp.integer)):
        raise TypeError(
            f"axis_angle_to_matrix: argument `angle` must be a real scalar; got dtype {angle.dtype}"
        )
    angle = angle.astype(axis.dtype)
    if angle.shape != ():
        raise ValueError(
            f"axis_angle_to_matrix: argument `angle` must be a scalar; got shape {angle.shape}"
        )
    return exp_so3(angle * axis / safe_norm(axis))


@full_precision
def matrix_to_axis_angle(R: ArrayLike) -> tuple[Array, Array]:
    """Unit axis and angle in ``[0, pi]`` of a rotation matrix.

    .. math:: (\\text{axis}, \\text{angle}) = (w / |w|, |w|), \\qquad
       w = \\operatorname{log\\_so3}(R)

    Args:
      R: rotation matrix, shape ``(3, 3)``.

    Returns:
      ``(axis, angle)``: shape ``(3,)`` and scalar. At angle 0 the axis is undefined and
      ``(1, 0, 0)`` is returned (with finite gradients).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import axis_angle_to_matrix, matrix_to_axis_angle
      >>> axis, angle = matrix_to_axis_angle(axis_angle_to_matrix(jnp.array([0.0, 1.0, 0.0]), 0.5))
      >>> jnp.round(axis, 6), round(float(angle), 6)
      (Array([0., 1., 0.], dtype=float32), 0.5)
    """
    R = _arr("matrix_to_axis_angle", "R", R, (3, 3))
    w = log_so3(R)
    angle = safe_norm(w)
    zero = angle == 0
    axis = jnp.where(zero, jnp.array([1.0, 0.0, 0.0], R.dtype), w / jnp.where(zero, 1.0, angle))
    return axis, angle


# -- the manifold ---------------------------------------------------------------------------
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SO3(Manifold):
    """The rotation group SO(3) with the bi-invariant metric ``<u, v>_R = tr(u^T v) / 2``.

    Points are ``3 x 3`` rotation matrices; tangent vectors at ``R`` are ambient matrices
    ``u = R hat(a)``, and ``|R hat(a)|_R = |a|``. Geodesics are ``R Exp(t a)``, so

    .. math::
       \\exp_R(u) = R \\operatorname{Exp}(R^T u), \\quad
       \\log_{R_1}(R_2) = R_1 \\widehat{\\operatorname{Log}(R_1^T R_2)}, \\quad
       d(R_1, R_2) = \\angle(R_1^T R_2) \\in [0, \\pi].

    Parallel transport along the geodesic from ``R1`` to ``R2 = R1 Exp(w)`` (Levi-Civita
    connection ``nabla_X Y = [X, Y] / 2`` of a bi-invariant metric, so the left-trivialized
    vector obeys ``a' = -[w, a] / 2``):

    .. math:: P(R_1 \\hat a) = R_2 \\,\\widehat{\\operatorname{Exp}(-w/2)\\, a}
       = R_1 \\operatorname{Exp}(w/2)\\, \\hat a\\, \\operatorname{Exp}(w/2).

    ``retr`` is ``exp`` (Rodrigues is already cheap); ``egrad_to_rgrad(R, g) = 2 proj(R, g)``
    (the factor 2 undoes the 1/2 in the metric). Group operations are methods: ``identity``,
    ``compose``, ``inverse``, ``act`` and ``adjoint``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.manifolds._so3 import SO3, exp_so3
      >>> so3 = SO3()
      >>> R = so3.random_point(jax.random.key(0))
      >>> R2 = R @ exp_so3(jnp.array([0.0, 0.6, 0.8]))
      >>> round(float(so3.dist(R, R2)), 5)
      1.0

    References:
      Sola et al., "A micro Lie theory for state estimation in robotics", arXiv:1812.01537.
      J. Milnor, "Curvatures of left invariant metrics on Lie groups", Adv. Math. 21 (1976).
    """

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (3, 3)

    @property
    def dim(self) -> int:
        return 3

    # metric
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return 0.5 * jnp.sum(u * v)

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """``R skew(R^T u)``: orthogonal projection onto the tangent space at ``R``."""
        x, u = self._args("proj", x=x, u=u)
        return x @ _skew(x.T @ u)

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """``2 R skew(R^T g)``: Riemannian gradient for the metric ``tr(u^T v) / 2``."""
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        return 2.0 * self.proj(x, g)

    # geodesics
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        return x @ exp_so3(vee(x.T @ u))

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        return x @ hat(log_so3(x.T @ y))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """Parallel transport along the geodesic.

        ``R2 hat(Exp(-w/2) vee(R1^T u))`` with ``w = Log(R1^T R2)`` (see the class docstring).
        """
        x, y, u = self._args("transp", x=x, y=y, u=u)
        w = log_so3(x.T @ y)
        return y @ hat(exp_so3(-0.5 * w) @ vee(x.T @ u))

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Rotation angle of ``R1^T R2`` by ``atan2`` (finite gradients at 0 and pi)."""
        x, y = self._args("dist", x=x, y=y)
        return rotation_angle(x.T @ y)

    def geodesic(self, x: ArrayLike, y: ArrayLike, t: ArrayLike) -> Array:
        x, y = self._args("geodesic", x=x, y=y)
        t = jnp.asarray(check_time("SO3.geodesic", t), x.dtype)
        return x @ exp_so3(t * log_so3(x.T @ y))

    # sampling, checks
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """Haar-uniform rotation: ``quat_to_matrix`` of a standard Gaussian in R^4."""
        check_key("SO3.random_point", key)
        check_float_dtype("SO3.random_point", dtype)
        return quat_to_matrix(jax.random.normal(key, (4,), dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """``max|R^T R - I| + |det R - 1|``."""
        x = self._args("check_point", x=x)
        return jnp.max(jnp.abs(x.T @ x - jnp.eye(3, dtype=x.dtype))) + jnp.abs(
            jnp.linalg.det(x) - 1.0
        )

    def projx(self, x: ArrayLike) -> Array:
        """Nearest rotation in Frobenius norm: ``U diag(1, 1, det(U V^T)) V^T`` from the SVD."""
        x = self._args("projx", x=x)
        u, _, vt = svd_or_nan(x)  # NaN, not a LAPACK hang, for a non-finite x
        d = jnp.sign(jnp.linalg.det(u @ vt))
        return (u * jnp.stack([jnp.ones_like(d), jnp.ones_like(d), d])) @ vt

    # group structure
    def identity(self, dtype=jnp.float32) -> Array:
        check_float_dtype("SO3.identity", dtype)
        return jnp.eye(3, dtype=dtype)

    def compose(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``x @ y``."""
        x, y = self._args("compose", x=x, y=y)
        return x @ y

    def inverse(self, x: ArrayLike) -> Array:
        """``x^T``."""
        return self._args("inverse", x=x).T

    def act(self, x: ArrayLike, p: ArrayLike) -> Array:
        """Rotate a point: ``R p``, ``p`` of shape ``(3,)``."""
        return self._args("act", x=x) @ _arr("SO3.act", "p", p, (3,))

    def adjoint(self, x: ArrayLike) -> Array:
        """``Ad_R = R`` on rotation vectors: ``R hat(w) R^T = hat(R w)``."""
        return self._args("adjoint", x=x)
