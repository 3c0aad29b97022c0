"""The unit sphere S^d in R^(d+1) with the round (induced Euclidean) metric."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    eps,
    safe_div,
    safe_norm,
    series_in_square,
)
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key


def _cos_sq(s: Array) -> Array:
    """``cos(sqrt(s))``."""
    return series_in_square(s, (1.0, -1.0 / 2, 1.0 / 24, -1.0 / 720), jnp.cos)


def _sinc_sq(s: Array) -> Array:
    """``sin(sqrt(s)) / sqrt(s)``."""
    return series_in_square(s, (1.0, -1.0 / 6, 1.0 / 120, -1.0 / 5040), lambda r: jnp.sin(r) / r)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Sphere(Manifold):
    r"""Unit sphere :math:`S^d = \{x \in \mathbb{R}^{d+1} : \|x\| = 1\}` with the round metric.

    Points are unit vectors of shape ``(dim + 1,)``; tangent vectors at ``x`` are the vectors
    ``u`` with ``<x, u> = 0``. With :math:`\theta = d(x, y)`:

    .. math::

        \langle u, v\rangle_x = u^\top v, \qquad
        \operatorname{proj}_x(u) = u - \langle x, u\rangle x, \qquad
        \exp_x(u) = \cos(\|u\|)\, x + \frac{\sin\|u\|}{\|u\|}\, u,

        \log_x(y) = \theta\, \frac{P_x(y - x)}{\|P_x(y - x)\|}, \qquad
        \theta = 2 \operatorname{atan2}(\|x - y\|, \|x + y\|)
               = \arccos\langle x, y\rangle,

        \Gamma_{x \to y}(u) = u - \frac{2\langle y, u\rangle}{\|x + y\|^2}\,(x + y).

    The distance uses the two-argument arctangent (Kahan's form), accurate at both ``x = y``
    and ``x = -y`` where ``arccos`` loses half the digits. ``exp`` uses Taylor branches in
    ``|u|^2``; ``log(x, x) = 0`` with derivative the tangent projection. At the antipode
    ``y = -x`` the logarithm and the minimizing geodesic are not unique: when ``y`` equals
    ``-x`` up to rounding (``|P_x(y - x)| <= 4 eps``), ``log`` returns the zero vector (finite,
    no NaN) while ``dist`` returns pi; ``transp`` returns ``u`` unchanged at ``y = -x``
    (``T_{-x} S = T_x S``). Within a few ulps of the antipode ``log`` has norm about pi in a
    direction set by rounding (any such direction is a valid logarithm). ``transp`` is the
    parallel transport along the minimizing geodesic. ``retr(x, u) = (x + u) / |x + u|`` (the
    metric projection), which agrees with ``exp`` to second order.

    Args:
      dim: intrinsic dimension ``d >= 1``; points have shape ``(d + 1,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import Sphere
      >>> s = Sphere(2)
      >>> x, y = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
      >>> round(float(s.dist(x, y)), 5)
      1.5708
      >>> s.log(x, y)
      Array([0.       , 1.5707964, 0.       ], dtype=float32)
      >>> bool(jnp.allclose(s.exp(x, s.log(x, y)), y, atol=1e-6))
      True

    References:
      P.-A. Absil, R. Mahony, R. Sepulchre, "Optimization Algorithms on Matrix Manifolds",
      Princeton University Press, 2008 (sphere exp, log, retraction; Sec. 5.4).
      W. Kahan, "How futile are mindless assessments of roundoff in floating-point
      computation?", 2006 (the atan2 angle formula).
    """

    dim: int = dataclasses.field(metadata=dict(static=True), default=2)

    def __post_init__(self):
        if isinstance(self.dim, bool) or not isinstance(self.dim, int):
            raise TypeError(f"Sphere: argument `dim` must be an int >= 1; got {self.dim!r}")
        if self.dim < 1:
            raise ValueError(f"Sphere: argument `dim` must be an int >= 1; got {self.dim!r}")

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.dim + 1,)

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return jnp.sum(jnp.asarray(u) * jnp.asarray(v))

    def norm(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("norm", x=x, u=u)
        return safe_norm(u)

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("proj", x=x, u=u)
        return u - jnp.sum(x * u) * x

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """``cos|u| x + sin|u| u / |u|``, exact to all orders at ``u = 0``.

        Args:
          x: point, shape ``(dim + 1,)``.
          u: tangent vector at ``x``, shape ``(dim + 1,)``.

        Returns:
          Point, shape ``(dim + 1,)``.
        """
        x, u = self._args("exp", x=x, u=u)
        s = jnp.sum(u * u)
        return _cos_sq(s) * x + _sinc_sq(s) * u

    def _angle(self, x: Array, y: Array) -> Array:
        return 2.0 * jnp.arctan2(safe_norm(x - y), safe_norm(x + y))

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``theta * P_x(y - x) / |P_x(y - x)|`` (zero at ``y = x`` and at ``y = -x``).

        Args:
          x, y: points, shape ``(dim + 1,)``.

        Returns:
          Tangent vector at ``x``, shape ``(dim + 1,)``, of norm ``dist(x, y)`` (except at the
          exact antipode, where it is zero).
        """
        x, y = self._args("log", x=x, y=y)
        d = y - x
        # P_x(y - x) = P_x(y), but without the cancellation of y - <x, y> x when y ~ x.
        v = d - jnp.sum(x * d) * x
        nv = safe_norm(v)
        theta = self._angle(x, y)
        # theta / |v| -> 1 as y -> x. |v| is also ~0 at y = -x, where the direction of v is
        # rounding noise: there (|v| at rounding level, <x, y> < 0) the factor is 0 and the
        # log is the zero vector (documented). Below 4 eps the ratio is 1 to working precision.
        degenerate = nv <= 4 * eps(x.dtype)
        fill = jnp.where(jnp.sum(x * y) >= 0, 1.0, 0.0).astype(x.dtype)
        factor = jnp.where(degenerate, fill, theta / jnp.where(degenerate, 1.0, nv))
        return factor * v

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``2 atan2(|x - y|, |x + y|)`` (= ``arccos <x, y>``, stable at 0 and pi)."""
        return self._angle(*self._args("dist", x=x, y=y))

    def retr(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Metric-projection retraction ``(x + u) / |x + u|``."""
        x, u = self._args("retr", x=x, u=u)
        return self.projx(x + u)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        r"""Parallel transport along the minimizing geodesic from ``x`` to ``y``.

        .. math::

            \Gamma_{x \to y}(u) = u - \frac{\langle y, u\rangle}{1 + \langle x, y\rangle}(x + y),
            \qquad 1 + \langle x, y\rangle = \tfrac12\|x + y\|^2.

        Returns ``u`` unchanged at the exact antipode ``y = -x``.
        """
        x, y, u = self._args("transp", x=x, y=y, u=u)
        w = x + y
        coef = safe_div(2.0 * jnp.sum(y * u), jnp.sum(w * w))
        return u - coef * w

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """Uniform point on the sphere (a normalized standard Gaussian)."""
        check_key("Sphere.random_point", key)
        check_float_dtype("Sphere.random_point", dtype)
        return self.projx(jax.random.normal(key, self.point_shape, dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """``| |x| - 1 |``."""
        x = self._args("check_point", x=x)
        return jnp.abs(safe_norm(x) - 1.0)

    def projx(self, x: ArrayLike) -> Array:
        """``x / |x|`` (the first basis vector for ``x = 0``)."""
        x = self._args("projx", x=x)
        n = safe_norm(x)
        e0 = jnp.zeros_like(x).at[0].set(1)
        return jnp.where(n == 0, e0, x / jnp.where(n == 0, jnp.ones_like(n), n))
