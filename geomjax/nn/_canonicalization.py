"""NNX wrapper of the learned canonicalization network (an equivariant frame predictor)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.equivariant._canonicalization import canonicalizer_frame, init_canonicalizer

__all__ = ["Canonicalizer"]


class Canonicalizer(nnx.Module):
    r"""Learned equivariant frame :math:`(R, t)` of a 3-D point cloud, for canonicalization.

    Holds the parameters of :func:`geomjax.equivariant.canonicalizer_frame`
    as ``nnx.Param`` and makes one call into it: two (``SO(3)``) or three (``O(3)``) vectors
    predicted as invariant-weighted sums of centred points, orthonormalized by Gram-Schmidt.
    Pass it to :func:`geomjax.equivariant.canonicalized_apply` to make any
    backbone equivariant; train it together with the backbone.

    Args:
      in_features: invariant node features ``h`` it may use (0 for none).
      hidden: width of its MLPs.
      num_vectors: 2 (rotations, det +1) or 3 (rotations and reflections).
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: dtype of the parameters.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.equivariant._canonicalization import canonicalized_apply
      >>> from geomjax.nn._canonicalization import Canonicalizer
      >>> canon = Canonicalizer(hidden=8, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (6, 3))
      >>> rot, t = canon(x)
      >>> rot.shape, t.shape
      ((3, 3), (3,))
      >>> canonicalized_apply(lambda y: y[:, 0].sum(), canon, x).shape
      ()

    References:
      S.-O. Kaba, A. K. Mondal, Y. Zhang, Y. Bengio, S. Ravanbakhsh, "Equivariance with
      Learned Canonicalization Functions", ICML 2023, arXiv:2211.06489.
    """

    def __init__(
        self,
        in_features: int = 0,
        hidden: int = 32,
        num_vectors: int = 2,
        *,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        params = init_canonicalizer(rngs.params(), in_features, hidden, num_vectors, param_dtype)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def __call__(
        self, x: ArrayLike, h: ArrayLike | None = None, node_mask: ArrayLike | None = None
    ) -> tuple[Array, Array]:
        """Frame of one point cloud ``x (N, 3)``: ``(rotation (3, 3), translation (3,))``."""
        params = jax.tree.map(
            lambda v: v[...], self.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
        )
        return canonicalizer_frame(params, x, h, node_mask)
