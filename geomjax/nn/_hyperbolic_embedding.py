"""``HyperbolicEmbedding``: an embedding table of points in the Poincare ball."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.manifolds._poincare import PoincareBall
from geomjax.nn._manifold_param import ManifoldParam

__all__ = ["HyperbolicEmbedding"]


class HyperbolicEmbedding(nnx.Module):
    r"""Lookup table of ``num_embeddings`` points in the Poincare ball of curvature ``-c``.

    The table is a :class:`ManifoldParam` of shape ``(num_embeddings, dim)`` on
    ``PoincareBall(dim, c)``, initialised uniformly in :math:`[-s, s]^{dim}` with
    :math:`s` = ``init_scale`` (Nickel & Kiela use :math:`s = 10^{-3}`: every point starts near
    the origin). Train it with :func:`geomjax.optim.riemannian_adam` /
    :func:`~geomjax.optim.riemannian_sgd` and ``manifolds=manifold_tree(model)``; each row is an
    independent point with its own Adam second moment.

    .. math::

        d(x_i, x_j) = \frac{2}{\sqrt c}\operatorname{artanh}
            \big(\sqrt c\,\|(-x_i)\oplus_c x_j\|\big)

    Args:
      num_embeddings: number of rows ``N >= 1``.
      dim: ball dimension ``d >= 1``.
      c: curvature magnitude ``c > 0`` (a fixed Python float here).
      rngs: ``nnx.Rngs``; the ``params`` stream initialises the table.
      init_scale: half-width ``s > 0`` of the uniform initialisation (projected into the ball).
      dtype: table dtype.

    Examples:
      >>> from flax import nnx
      >>> from geomjax.nn import HyperbolicEmbedding
      >>> emb = HyperbolicEmbedding(10, 2, rngs=nnx.Rngs(0))
      >>> emb(jnp.array([0, 3])).shape
      (2, 2)
      >>> emb.distance(jnp.array([1, 2]), jnp.array([1, 5])).shape
      (2,)

    References:
      M. Nickel, D. Kiela, "Poincare Embeddings for Learning Hierarchical Representations",
      NeurIPS 2017, arXiv:1705.08039.
    """

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        *,
        c: float = 1.0,
        rngs: nnx.Rngs,
        init_scale: float = 1e-3,
        dtype=jnp.float32,
    ):
        fn = "HyperbolicEmbedding"
        for name, value in (("num_embeddings", num_embeddings), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{fn}: argument `{name}` must be an int >= 1; got {value!r}")
        if not init_scale > 0:
            raise ValueError(f"{fn}: argument `init_scale` must be positive; got {init_scale!r}")
        ball = PoincareBall(dim, c)
        table = jax.random.uniform(
            rngs.params(), (num_embeddings, dim), dtype, minval=-init_scale, maxval=init_scale
        )
        self.embedding = ManifoldParam(jax.vmap(ball.projx)(table), manifold=ball)

    @property
    def ball(self) -> PoincareBall:
        """The Poincare ball the table lives on."""
        return self.embedding.manifold

    def __call__(self, ids: ArrayLike) -> Array:
        """Points for integer ``ids`` of any shape: returns ``ids.shape + (dim,)``."""
        return jnp.take(self.embedding[...], jnp.asarray(ids), axis=0)

    def distance(self, i: ArrayLike, j: ArrayLike) -> Array:
        """Geodesic distance between rows ``i`` and ``j`` (broadcast together); shape of ``i + j``."""
        i, j = jnp.broadcast_arrays(jnp.asarray(i), jnp.asarray(j))
        d = jax.vmap(self.ball.dist)(self(i.reshape(-1)), self(j.reshape(-1)))
        return d.reshape(i.shape)
