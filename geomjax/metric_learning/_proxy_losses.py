r"""Proxy and large-margin softmax losses: ProxyAnchor, ArcFace and CosFace.

Each class :math:`c` has a learnable vector (ProxyAnchor's proxies ``(C, D)``, the
classifiers' ``weights (D, C)``, laid out as pytorch-metric-learning's parameters so a user can
copy them across); similarities are cosines. Thin NNX modules holding the parameters are in
:mod:`geomjax.nn` (``ProxyAnchorLoss``, ``ArcFaceLoss``, ``CosFaceLoss``).

References:
  S. Kim, D. Kim, M. Cho, S. Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020,
  arXiv:2003.13911.
  J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
  Recognition", CVPR 2019, arXiv:1801.07698.
  H. Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018,
  arXiv:1801.09414.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.metric_learning._distances import check_embeddings, pairwise_distances
from geomjax.metric_learning._losses import _masked_logsumexp
from geomjax.metric_learning._rows import check_labels

__all__ = ["arcface_loss", "cosface_loss", "proxy_anchor_loss"]


def _classes(fn: str, name: str, w: Array, n_classes_axis: int, dim: int) -> Array:
    w = check_embeddings(fn, name, w)
    d_axis = 1 - n_classes_axis
    if w.shape[d_axis] != dim:
        raise ValueError(
            f"{fn}: argument `{name}` must have the embedding dimension {dim} on axis {d_axis}; "
            f"got shape {w.shape}"
        )
    return w


def proxy_anchor_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    margin: float = 0.1,
    alpha: float = 32.0,
) -> Array:
    r"""Proxy-Anchor loss, PML's ``ProxyAnchorLoss`` (``proxies`` its ``loss.proxies``):

    .. math::

        L = \frac{1}{|P^+|} \sum_{c \in P^+} \log\Big(1 + \sum_{i: y_i = c}
            e^{-\alpha (s_{ic} - \delta)}\Big) + \frac{1}{C} \sum_{c} \log\Big(1 +
            \sum_{i: y_i \ne c} e^{\alpha (s_{ic} + \delta)}\Big),

    :math:`s_{ic}` the cosine between embedding :math:`i` and proxy :math:`c`, :math:`P^+` the
    proxies with a positive in the batch.

    Args:
      embeddings: ``(B, D)``. labels: int ``(B,)`` in ``[0, C)``. proxies: ``(C, D)``.
      margin: :math:`\delta`. alpha: :math:`\alpha`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import proxy_anchor_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
      >>> round(float(proxy_anchor_loss(x, jnp.array([0, 0, 1]), jnp.eye(2))), 4)
      12.82

    References:
      S. Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020,
      arXiv:2003.13911.
    """
    fn = "proxy_anchor_loss"
    x = check_embeddings(fn, "embeddings", embeddings)
    y = check_labels(fn, "labels", labels, x.shape[0])
    proxies = _classes(fn, "proxies", proxies, 0, x.shape[1])
    c = proxies.shape[0]
    cos = pairwise_distances(x, proxies, metric="cosine")  # (B, C)
    pos = jax.nn.one_hot(y, c, dtype=bool)
    pos_term = _masked_logsumexp(alpha * (margin - cos), pos, True, axis=0)  # (C,)
    neg_term = _masked_logsumexp(alpha * (cos + margin), ~pos, True, axis=0)
    n_with_pos = jnp.sum(jnp.any(pos, axis=0))
    pos_loss = jnp.where(n_with_pos > 0, jnp.sum(pos_term) / jnp.maximum(n_with_pos, 1), 0.0)
    return pos_loss + jnp.sum(neg_term) / c


def _margin_softmax(fn, embeddings, labels, weights, modify, scale) -> Array:
    x = check_embeddings(fn, "embeddings", embeddings)
    y = check_labels(fn, "labels", labels, x.shape[0])
    w = _classes(fn, "weights", weights, 1, x.shape[1])
    cos = pairwise_distances(x, w.T, metric="cosine")  # (B, C)
    target = jax.nn.one_hot(y, w.shape[1], dtype=bool)
    cos_t = jnp.sum(jnp.where(target, cos, 0.0), axis=1)
    logits = jnp.where(target, modify(cos_t)[:, None], cos) * scale
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(jnp.where(target, logits, 0.0), 1))


def arcface_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: float = 28.6,
    scale: float = 64.0,
) -> Array:
    r"""ArcFace (additive angular margin), PML's ``ArcFaceLoss`` (``weights`` its ``loss.W``,
    ``(D, C)``; ``margin`` in degrees): the target logit :math:`\cos\theta` becomes
    :math:`\cos(\theta + m)` while :math:`\theta \le \pi - m` (else :math:`\cos\theta - m \sin
    m`, keeping it decreasing), all logits times ``scale``, cross entropy averaged over the batch.
    Evaluated without ``arccos`` (:math:`\cos(\theta + m) = \cos\theta\cos m - \sin\theta \sin
    m`), so the gradient stays finite at :math:`\cos\theta = \pm 1`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import arcface_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
      >>> round(float(arcface_loss(x, jnp.array([0, 0, 1]), jnp.eye(2))), 3)
      3.943

    References:
      J. Deng et al., "ArcFace", CVPR 2019, arXiv:1801.07698.
    """
    m = math.radians(margin)

    def modify(c):
        c = jnp.clip(c, -1.0, 1.0)
        s2 = 1.0 - c * c
        pos = s2 > 0
        sin = jnp.where(pos, jnp.sqrt(jnp.where(pos, s2, 1.0)), 0.0)
        plus = c * math.cos(m) - sin * math.sin(m)
        return jnp.where(c >= -math.cos(m), plus, c - m * math.sin(m))

    return _margin_softmax("arcface_loss", embeddings, labels, weights, modify, scale)


def cosface_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
) -> Array:
    r"""CosFace (additive cosine margin), PML's ``CosFaceLoss`` (``weights (D, C)``): the target
    logit :math:`\cos\theta - m`, all logits times ``scale``, cross entropy averaged.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import cosface_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
      >>> round(float(cosface_loss(x, jnp.array([0, 0, 1]), jnp.eye(2))), 3)
      3.2

    References:
      H. Wang et al., "CosFace", CVPR 2018, arXiv:1801.09414.
    """
    return _margin_softmax("cosface_loss", embeddings, labels, weights, lambda c: c - margin, scale)
