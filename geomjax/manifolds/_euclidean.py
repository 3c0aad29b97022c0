"""Euclidean space R^shape with the standard inner product."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, PRNGKey
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Euclidean(Manifold):
    """Flat space of arrays of shape ``shape``: ``exp(x, u) = x + u``, ``log(x, y) = y - x``.

    Args:
      shape: point shape (an int ``d`` means ``(d,)``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import Euclidean
      >>> float(Euclidean(2).dist(jnp.zeros(2), jnp.array([3.0, 4.0])))
      5.0
    """

    shape: tuple[int, ...] = dataclasses.field(metadata=dict(static=True), default=(1,))

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)):
            raise TypeError(
                f"Euclidean: argument `shape` must be an int or a tuple of ints; got {self.shape!r}"
            )
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ValueError(
                f"Euclidean: argument `shape` must hold positive ints; got {self.shape!r}"
            )
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))

    @property
    def point_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return jnp.sum(jnp.asarray(u) * jnp.asarray(v))

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("proj", x=x, u=u)
        return jnp.asarray(u)

    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        return jnp.asarray(x) + jnp.asarray(u)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        return jnp.asarray(y) - jnp.asarray(x)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        x, y, u = self._args("transp", x=x, y=y, u=u)
        return jnp.asarray(u)

    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """Standard Gaussian point."""
        check_key("Euclidean.random_point", key)
        check_float_dtype("Euclidean.random_point", dtype)
        return jax.random.normal(key, self.shape, dtype)

    def check_point(self, x: ArrayLike) -> Array:
        """0 for a finite ``x``; ``inf`` if an entry is NaN or infinite (not a point of R^n)."""
        x = self._args("check_point", x=x)
        return jnp.where(jnp.all(jnp.isfinite(x)), 0.0, jnp.inf).astype(x.dtype)
