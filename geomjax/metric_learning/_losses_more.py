r"""More batch losses on the same row engine: circle loss and the generalized lifted structure
loss, with pytorch-metric-learning's semantics and defaults (see
:mod:`geomjax.metric_learning._losses` for the shared options).

References:
  Y. Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization",
  CVPR 2020, arXiv:2002.10857.
  A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
  Re-Identification", arXiv:1703.07737 (generalized lifted structure, page 4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.metric_learning._losses import _margin, _masked_logsumexp
from geomjax.metric_learning._rows import batch_loss, stats

__all__ = ["circle_loss", "generalized_lifted_structure_loss"]


def circle_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    m: float = 0.4,
    gamma: float = 80.0,
    reduction: str = "avg_nonzero",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
) -> Array:
    r"""Circle loss (pair form), PML's ``CircleLoss`` (cosine similarity :math:`s`):

    .. math::

        L_a = \operatorname{softplus}\Big(\log \sum_p e^{-\gamma [1 + m - s_{ap}]_+ (s_{ap} - 1 + m)}
              + \log \sum_n e^{\gamma [s_{an} + m]_+ (s_{an} - m)}\Big),

    the weights :math:`[\cdot]_+` held constant in the gradient (PML detaches them); 0 for an
    anchor without a positive or a negative; reduced over anchors (``"avg_nonzero"``).

    Args:
      m: relaxation margin. gamma: scale.
      Others: as :func:`~geomjax.metric_learning.contrastive_loss` (cosine similarity only).

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import circle_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
      >>> round(float(circle_loss(x, jnp.array([0, 0, 1, 1]))), 3)
      28.865

    References:
      Y. Sun et al., "Circle Loss", CVPR 2020, arXiv:2002.10857.
    """

    def row(s, pos, neg):
        sg = jax.lax.stop_gradient(s)
        logit_p = -gamma * jax.nn.relu(1 + m - sg) * (s - (1 - m))
        logit_n = gamma * jax.nn.relu(sg + m) * (s - m)
        lse = _masked_logsumexp(logit_p, pos, False) + _masked_logsumexp(logit_n, neg, False)
        loss = jnp.where(jnp.any(pos) & jnp.any(neg), jax.nn.softplus(lse), 0.0)
        return stats((loss, jnp.ones((), bool), loss > 0))

    return batch_loss(
        "circle_loss",
        row,
        embeddings,
        labels,
        ref_embeddings=ref_embeddings,
        ref_labels=ref_labels,
        metric="cosine",
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        miner=miner,
    )


def generalized_lifted_structure_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    neg_margin: float = 1.0,
    pos_margin: float = 0.0,
    metric: str = "euclidean",
    normalize: bool = True,
    p: float = 2.0,
    reduction: str = "mean",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
) -> Array:
    r"""Generalized lifted structure loss, PML's ``GeneralizedLiftedStructureLoss``:

    .. math::

        L_a = \Big[\log \sum_p e^{d_{ap} - m_+} + \log \sum_n e^{m_- - d_{an}}\Big]_+

    (each log-sum 0 without such pairs), averaged over anchors.

    Args:
      neg_margin, pos_margin: :math:`m_-`, :math:`m_+`.
      Others: as :func:`~geomjax.metric_learning.contrastive_loss`.

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import generalized_lifted_structure_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
      >>> round(float(generalized_lifted_structure_loss(x, jnp.array([0, 0, 1, 1]))), 3)
      1.494

    References:
      A. Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
      arXiv:1703.07737.
    """

    def row(d, pos, neg):
        a = _masked_logsumexp(_margin(metric, d, pos_margin), pos, False)
        b = _masked_logsumexp(_margin(metric, neg_margin, d), neg, False)
        loss = jax.nn.relu(a + b)
        return stats((loss, jnp.ones((), bool), loss > 0))

    return batch_loss(
        "generalized_lifted_structure_loss",
        row,
        embeddings,
        labels,
        ref_embeddings=ref_embeddings,
        ref_labels=ref_labels,
        metric=metric,
        p=p,
        normalize=normalize,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        miner=miner,
    )
