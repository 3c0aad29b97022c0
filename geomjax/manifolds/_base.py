"""The manifold interface shared by every geomjax manifold.

Manifolds are frozen dataclasses registered as pytrees (``jax.tree_util.register_dataclass``):
dimensions are static fields (``dataclasses.field(metadata=dict(static=True))``), metric
parameters (curvature, a metric matrix, a power) are array leaves, so they can be learned with
``jax.grad``. Points and tangent vectors are raw arrays. Every method works on a single point
(shape ``point_shape``); batch with ``jax.vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, PRNGKey


class Manifold:
    """Base class: subclasses implement the abstract methods; defaults cover the rest.

    Required in subclasses: ``point_shape`` and ``dim`` (intrinsic dimension), ``inner``,
    ``proj``, ``exp``, ``log``, ``transp``, ``random_point``, ``check_point``.

    Defaults (override when a cheaper or more accurate closed form exists): ``norm`` (NaN-safe
    square root of ``inner``), ``egrad_to_rgrad`` (= ``proj``, right for embedded submanifolds
    with the induced metric), ``retr`` (= ``exp``), ``dist`` (= ``norm(x, log(x, y))``),
    ``geodesic`` (= ``exp(x, t log(x, y))``), ``random_tangent`` (projected Gaussian),
    ``check_tangent`` (distance of ``u`` from ``proj(x, u)``), ``projx`` (identity).
    """

    # -- shape -----------------------------------------------------------------------------
    @property
    def point_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def tangent_shape(self) -> tuple[int, ...]:
        return self.point_shape

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        """Riemannian inner product ``<u, v>_x`` of tangent vectors at ``x``."""
        raise NotImplementedError

    def norm(self, x: ArrayLike, u: ArrayLike) -> Array:
        """``sqrt(<u, u>_x)``, with a zero (not NaN) derivative at ``u = 0``."""
        sq = self.inner(x, u, u)
        is_zero = sq <= 0
        safe = jnp.where(is_zero, jnp.ones_like(sq), sq)
        return jnp.where(is_zero, jnp.zeros_like(sq), jnp.sqrt(safe))

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Projection of an ambient vector ``u`` onto the tangent space at ``x``."""
        raise NotImplementedError

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """Riemannian gradient from the Euclidean gradient ``g`` of an ambient extension."""
        return self.proj(x, g)

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Riemannian exponential map."""
        raise NotImplementedError

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Riemannian logarithm, the inverse of ``exp(x, .)`` (within the injectivity radius)."""
        raise NotImplementedError

    def retr(self, x: ArrayLike, u: ArrayLike) -> Array:
        """A retraction: agrees with ``exp`` to first order."""
        return self.exp(x, u)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """Transport of a tangent vector ``u`` at ``x`` to the tangent space at ``y``."""
        raise NotImplementedError

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Geodesic distance."""
        return self.norm(x, self.log(x, y))

    def geodesic(self, x: ArrayLike, y: ArrayLike, t: ArrayLike) -> Array:
        """Point at time ``t`` on the geodesic from ``x`` (t = 0) to ``y`` (t = 1)."""
        return self.exp(x, jnp.asarray(t) * self.log(x, y))

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """A random point (the distribution is documented per manifold)."""
        raise NotImplementedError

    def random_tangent(self, key: PRNGKey, x: ArrayLike) -> Array:
        """A random tangent vector at ``x``: a standard Gaussian projected to the tangent space."""
        x = jnp.asarray(x)
        return self.proj(x, jax.random.normal(key, self.tangent_shape, x.dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """Residual (>= 0, 0 on the manifold) of the constraints defining a point."""
        raise NotImplementedError

    def check_tangent(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Residual (>= 0) of ``u`` being tangent at ``x``: ``max|u - proj(x, u)|``."""
        u = jnp.asarray(u)
        return jnp.max(jnp.abs(u - self.proj(x, u)))

    def projx(self, x: ArrayLike) -> Array:
        """Nearest point on the manifold to an ambient ``x`` (identity if unconstrained)."""
        return jnp.asarray(x)
