"""The rigid-motion group SE(3): twist exponential/logarithm and the manifold ``SE3``.

Conventions:

- Points are ``4 x 4`` homogeneous matrices ``T = [[R, t], [0, 1]]``.
- Twists are ``xi = (w, v)`` of shape ``(6,)``, **rotation first** (Sola et al. order
  translation first), with ``hat_se3(xi) = [[hat(w), v], [0, 0]]``.
- The manifold ``SE3`` carries the product metric of ``SO3`` (``tr(u^T v) / 2``) and R^3 on the
  ``(R, t)`` parametrisation, so its ``exp``/``log``/``dist``/``transp`` are the product ones
  (rotation and translation move independently). This metric is left-invariant but, unlike on
  SO(3), its geodesics are *not* the one-parameter subgroups ``T exp_se3(s xi)``; the group
  exponential is provided separately as :func:`exp_se3` / :func:`log_se3`.
- Input domain: the functions check shapes and dtypes at trace time but do not inspect values.
  A NaN entry that is read gives NaN (NaN in, NaN out); an infinite entry gives unspecified,
  possibly finite, values (e.g. an angle from ``atan2`` of an infinite side); a matrix that is not
  a rigid motion is not detected (``SE3().check_point`` measures it).

References:
  J. Sola, J. Deray, D. Atchuthan, "A micro Lie theory for state estimation in robotics",
  arXiv:1812.01537 (2018).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, PRNGKey, full_precision, safe_norm
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key, check_time
from geomjax.manifolds._so3 import (
    SO3,
    _arr,
    exp_so3,
    hat,
    inv_left_jacobian_so3,
    left_jacobian_so3,
    log_so3,
    rotation_angle,
    vee,
)

_SO3 = SO3()


def _assemble(R: Array, t: Array) -> Array:
    """``[[R, t], [0, 0, 0, 1]]``."""
    bottom = jnp.zeros((1, 4), R.dtype).at[0, 3].set(1.0)
    return jnp.concatenate([jnp.concatenate([R, t[:, None]], axis=1), bottom], axis=0)


def _tangent(A: Array, b: Array) -> Array:
    """``[[A, b], [0, 0, 0, 0]]``."""
    top = jnp.concatenate([A, b[:, None]], axis=1)
    return jnp.concatenate([top, jnp.zeros((1, 4), A.dtype)], axis=0)


@full_precision
def hat_se3(xi: ArrayLike) -> Array:
    """``4 x 4`` matrix of a twist ``xi = (w, v)``: ``[[hat(w), v], [0, 0]]``.

    Args:
      xi: twist, shape ``(6,)``, rotation part first.

    Returns:
      Matrix, shape ``(4, 4)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._se3 import hat_se3
      >>> hat_se3(jnp.array([0.0, 0.0, 1.0, 4.0, 5.0, 6.0]))[:, 3]
      Array([4., 5., 6., 0.], dtype=float32)
    """
    xi = _arr("hat_se3", "xi", xi, (6,))
    return _tangent(hat(xi[:3]), xi[3:])


@full_precision
def vee_se3(m: ArrayLike) -> Array:
    """Inverse of :func:`hat_se3`: ``(vee(m[:3, :3]), m[:3, 3])``.

    Args:
      m: matrix, shape ``(4, 4)``.

    Returns:
      Twist, shape ``(6,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._se3 import hat_se3, vee_se3
      >>> vee_se3(hat_se3(jnp.arange(6.0)))
      Array([0., 1., 2., 3., 4., 5.], dtype=float32)
    """
    m = _arr("vee_se3", "m", m, (4, 4))
    return jnp.concatenate([vee(m[:3, :3]), m[:3, 3]])


@full_precision
def exp_se3(xi: ArrayLike) -> Array:
    """Group exponential of a twist ``xi = (w, v)``: the matrix exponential of ``hat_se3(xi)``.

    .. math:: \\exp(\\hat\\xi) = \\begin{pmatrix} \\operatorname{Exp}(w) & V(w)\\, v \\\\
       0 & 1 \\end{pmatrix}, \\quad V(w) = I + \\frac{1 - \\cos\\theta}{\\theta^2}\\hat w
       + \\frac{\\theta - \\sin\\theta}{\\theta^3}\\hat w^2

    Args:
      xi: twist, shape ``(6,)``, rotation part first.

    Returns:
      Homogeneous matrix, shape ``(4, 4)``; Taylor branches keep it smooth at ``w = 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._se3 import exp_se3
      >>> exp_se3(jnp.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0]))[:3, 3]
      Array([1., 2., 3.], dtype=float32)

    References:
      Sola et al., arXiv:1812.01537, eqs. (172), (174).
    """
    xi = _arr("exp_se3", "xi", xi, (6,))
    w, v = xi[:3], xi[3:]
    return _assemble(exp_so3(w), left_jacobian_so3(w) @ v)


@full_precision
def log_se3(T: ArrayLike) -> Array:
    """Group logarithm: the twist ``(w, V(w)^{-1} t)`` with ``w = log_so3(R)``, ``|w| <= pi``.

    .. math:: \\log(T) = \\bigl(w,\\; V^{-1}(w)\\, t\\bigr), \\quad V^{-1}(w) = I - \\tfrac12\\hat w
       + \\frac{1 - (\\theta/2)\\cot(\\theta/2)}{\\theta^2}\\hat w^2

    Args:
      T: homogeneous matrix, shape ``(4, 4)`` (the bottom row is not read).

    Returns:
      Twist, shape ``(6,)``, rotation part first. Finite values and gradients at the identity
      and at rotation angle pi.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._se3 import exp_se3, log_se3
      >>> xi = jnp.array([0.1, -0.2, 0.3, 1.0, 2.0, 3.0])
      >>> bool(jnp.allclose(log_se3(exp_se3(xi)), xi, atol=1e-5))
      True

    References:
      Sola et al., arXiv:1812.01537, eqs. (173), (175).
    """
    T = _arr("log_se3", "T", T, (4, 4))
    w = log_so3(T[:3, :3])
    return jnp.concatenate([w, inv_left_jacobian_so3(w) @ T[:3, 3]])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SE3(Manifold):
    """Rigid motions SE(3) as ``4 x 4`` matrices with the product metric of SO(3) x R^3.

    A tangent vector at ``T = [[R, t], [0, 1]]`` is an ambient ``4 x 4`` matrix
    ``U = [[R hat(a), b], [0, 0]]``; with ``U_R`` its rotation block and ``u_t`` its last column,

    .. math::
       \\langle U, V\\rangle_T = \\tfrac12 \\operatorname{tr}(U_R^T V_R) + u_t \\cdot v_t, \\qquad
       d(T_1, T_2)^2 = \\angle(R_1^T R_2)^2 + |t_2 - t_1|^2 .

    ``exp``, ``log``, ``transp`` (SO(3) parallel transport on the rotation block, identity on the
    translation) and ``geodesic`` act blockwise. In twist coordinates ``U = T hat_se3(a, R^T b)``
    the metric is the Euclidean one on ``(a, R^T b)``, so it is left-invariant. Group operations
    (``identity``, ``compose``, ``inverse``, ``act``, ``adjoint``) are methods; the group
    exponential is :func:`exp_se3`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._se3 import SE3, exp_se3
      >>> T1 = jnp.eye(4)
      >>> T2 = exp_se3(jnp.array([0.0, 0.0, 0.0, 3.0, 4.0, 0.0]))
      >>> float(SE3().dist(T1, T2))
      5.0

    References:
      Sola et al., "A micro Lie theory for state estimation in robotics", arXiv:1812.01537.
    """

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (4, 4)

    @property
    def dim(self) -> int:
        return 6

    # metric
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return 0.5 * jnp.sum(u[:3, :3] * v[:3, :3]) + jnp.dot(u[:3, 3], v[:3, 3])

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """``[[R skew(R^T u_R), u_t], [0, 0]]``: orthogonal projection onto the tangent space."""
        x, u = self._args("proj", x=x, u=u)
        return _tangent(_SO3.proj(x[:3, :3], u[:3, :3]), u[:3, 3])

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """``[[2 R skew(R^T g_R), g_t], [0, 0]]`` (the 2 undoes the 1/2 in the rotation metric)."""
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        return _tangent(_SO3.egrad_to_rgrad(x[:3, :3], g[:3, :3]), g[:3, 3])

    # geodesics
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        return _assemble(_SO3.exp(x[:3, :3], u[:3, :3]), x[:3, 3] + u[:3, 3])

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        return _tangent(_SO3.log(x[:3, :3], y[:3, :3]), y[:3, 3] - x[:3, 3])

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """SO(3) parallel transport on the rotation block; the translation block is unchanged."""
        x, y, u = self._args("transp", x=x, y=y, u=u)
        return _tangent(_SO3.transp(x[:3, :3], y[:3, :3], u[:3, :3]), u[:3, 3])

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``sqrt(angle(R1^T R2)^2 + |t2 - t1|^2)``, with finite gradients at ``x == y``."""
        x, y = self._args("dist", x=x, y=y)
        theta = rotation_angle(x[:3, :3].T @ y[:3, :3])
        return safe_norm(jnp.concatenate([theta[None], y[:3, 3] - x[:3, 3]]))

    def geodesic(self, x: ArrayLike, y: ArrayLike, t: ArrayLike) -> Array:
        x, y = self._args("geodesic", x=x, y=y)
        t = jnp.asarray(check_time("SE3.geodesic", t), x.dtype)
        return _assemble(
            _SO3.geodesic(x[:3, :3], y[:3, :3], t), x[:3, 3] + t * (y[:3, 3] - x[:3, 3])
        )

    # sampling, checks
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """Haar rotation (see ``SO3.random_point``) and a standard Gaussian translation."""
        check_key("SE3.random_point", key)
        check_float_dtype("SE3.random_point", dtype)
        k_r, k_t = jax.random.split(key)
        return _assemble(_SO3.random_point(k_r, dtype), jax.random.normal(k_t, (3,), dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """SO(3) residual of the rotation block plus ``max|bottom row - (0, 0, 0, 1)|`` (NaN if the
        translation has a non-finite entry)."""
        x = self._args("check_point", x=x)
        bottom = jnp.array([0.0, 0.0, 0.0, 1.0], x.dtype)
        t = x[:3, 3]
        nonfinite_t = jnp.max(jnp.abs(t - t))  # 0 for a finite translation, NaN otherwise
        return _SO3.check_point(x[:3, :3]) + jnp.max(jnp.abs(x[3] - bottom)) + nonfinite_t

    def projx(self, x: ArrayLike) -> Array:
        """Nearest rotation for the ``3 x 3`` block (SVD), translation kept, bottom row reset."""
        x = self._args("projx", x=x)
        return _assemble(_SO3.projx(x[:3, :3]), x[:3, 3])

    # group structure
    def identity(self, dtype=jnp.float32) -> Array:
        check_float_dtype("SE3.identity", dtype)
        return jnp.eye(4, dtype=dtype)

    def compose(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``x @ y``."""
        x, y = self._args("compose", x=x, y=y)
        return x @ y

    def inverse(self, x: ArrayLike) -> Array:
        """``[[R^T, -R^T t], [0, 1]]``."""
        x = self._args("inverse", x=x)
        rt = x[:3, :3].T
        return _assemble(rt, -rt @ x[:3, 3])

    def act(self, x: ArrayLike, p: ArrayLike) -> Array:
        """Transform a point: ``R p + t``, ``p`` of shape ``(3,)``."""
        x = self._args("act", x=x)
        return x[:3, :3] @ _arr("SE3.act", "p", p, (3,)) + x[:3, 3]

    def adjoint(self, x: ArrayLike) -> Array:
        """``6 x 6`` adjoint on twists ``(w, v)``: ``[[R, 0], [hat(t) R, R]]``.

        .. math:: T \\hat\\xi T^{-1} = (\\operatorname{Ad}_T \\xi)^\\wedge
        """
        x = self._args("adjoint", x=x)
        R, t = x[:3, :3], x[:3, 3]
        top = jnp.concatenate([R, jnp.zeros((3, 3), x.dtype)], axis=1)
        bottom = jnp.concatenate([hat(t) @ R, R], axis=1)
        return jnp.concatenate([top, bottom], axis=0)
