"""NNX modules holding the learnable class vectors of the proxy and large-margin losses
(geomjax.metric_learning): each creates its parameter and makes one call into the core."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.metric_learning._proxy_losses import arcface_loss, cosface_loss, proxy_anchor_loss

__all__ = ["ArcFaceLoss", "CosFaceLoss", "ProxyAnchorLoss"]


def _check_sizes(fn: str, n_classes, dim) -> None:
    for name, v in (("num_classes", n_classes), ("embedding_size", dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{fn}: argument `{name}` must be an int >= 1; got {v!r}")


class ProxyAnchorLoss(nnx.Module):
    """Proxy-Anchor loss with learnable proxies ``(num_classes, embedding_size)``
    (:func:`geomjax.metric_learning.proxy_anchor_loss`; proxies start standard normal scaled
    by ``sqrt(2 / num_classes)``, as PML's Kaiming-normal fan-out).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn import ProxyAnchorLoss
      >>> loss = ProxyAnchorLoss(3, 2, rngs=nnx.Rngs(0))
      >>> loss(jnp.ones((4, 2)), jnp.array([0, 1, 2, 0])).shape
      ()
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        margin: float = 0.1,
        alpha: float = 32.0,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        _check_sizes("ProxyAnchorLoss", num_classes, embedding_size)
        w = jax.random.normal(rngs.params(), (num_classes, embedding_size), param_dtype)
        self.proxies = nnx.Param(w * jnp.sqrt(2.0 / num_classes).astype(param_dtype))
        self.margin, self.alpha = margin, alpha

    def __call__(self, embeddings: ArrayLike, labels: ArrayLike) -> Array:
        return proxy_anchor_loss(
            embeddings, labels, self.proxies[...], margin=self.margin, alpha=self.alpha
        )


class _MarginSoftmaxLoss(nnx.Module):
    """Class weights ``(embedding_size, num_classes)``, standard normal, and one call of the
    subclass's core loss (``_core``) with ``margin`` and ``scale``."""

    _core = None

    def __init__(self, num_classes, embedding_size, margin, scale, rngs, param_dtype):
        _check_sizes(type(self).__name__, num_classes, embedding_size)
        self.weights = nnx.Param(
            jax.random.normal(rngs.params(), (embedding_size, num_classes), param_dtype)
        )
        self.margin, self.scale = margin, scale

    def __call__(self, embeddings: ArrayLike, labels: ArrayLike) -> Array:
        core = type(self)._core
        return core(embeddings, labels, self.weights[...], margin=self.margin, scale=self.scale)


class ArcFaceLoss(_MarginSoftmaxLoss):
    """ArcFace with learnable class weights ``(embedding_size, num_classes)``
    (:func:`geomjax.metric_learning.arcface_loss`; ``margin`` in degrees).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn import ArcFaceLoss
      >>> ArcFaceLoss(3, 2, rngs=nnx.Rngs(0))(jnp.ones((4, 2)), jnp.array([0, 1, 2, 0])).shape
      ()
    """

    _core = staticmethod(arcface_loss)

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        margin: float = 28.6,
        scale: float = 64.0,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        super().__init__(num_classes, embedding_size, margin, scale, rngs, param_dtype)


class CosFaceLoss(_MarginSoftmaxLoss):
    """CosFace with learnable class weights ``(embedding_size, num_classes)``
    (:func:`geomjax.metric_learning.cosface_loss`).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn import CosFaceLoss
      >>> CosFaceLoss(3, 2, rngs=nnx.Rngs(0))(jnp.ones((4, 2)), jnp.array([0, 1, 2, 0])).shape
      ()
    """

    _core = staticmethod(cosface_loss)

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        margin: float = 0.35,
        scale: float = 64.0,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        super().__init__(num_classes, embedding_size, margin, scale, rngs, param_dtype)
