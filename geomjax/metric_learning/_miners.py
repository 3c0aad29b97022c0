r"""Miners as fixed-shape, per-anchor masks (pytorch-metric-learning's selection rules).

PML's miners return variable-length index tuples, which needs a host round-trip per batch and
cannot be ``vmap``-ed. Every miner here is a rule on one anchor's row, applied inside the
losses' row engine (``miner=`` of the losses), so mining is part of the same jitted,
chunkable, shardable computation:

* pair miners map ``(d_row, pos_row, neg_row)`` to new positive and negative masks
  (:func:`pair_margin_miner`, :func:`multi_similarity_miner`), for the pair losses
  (contrastive, multi-similarity, NT-Xent, SupCon);
* triplet miners map the row to an ``(R, R)`` mask of (positive, negative) pairs for that
  anchor (:func:`triplet_margin_miner`, :func:`batch_hard_miner`), for
  :func:`~geomjax.metric_learning.triplet_margin_loss`.

A miner uses the distance of the loss it is given to (PML lets them differ; use the same
metric as the miner's PML default to compare: Lp on normalized embeddings for the margin
and batch-hard miners, cosine similarity for the multi-similarity miner).

References:
  K. Musgrave et al., "A Metric Learning Reality Check", ECCV 2020, arXiv:2003.08505.
  A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
  Re-Identification", arXiv:1703.07737 (batch hard).
  X. Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep Metric
  Learning", CVPR 2019, arXiv:1904.06627.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from geomjax._core import Array

__all__ = [
    "Miner",
    "batch_hard_miner",
    "multi_similarity_miner",
    "pair_margin_miner",
    "triplet_margin_miner",
]

_TRIPLET_TYPES = ("all", "hard", "semihard", "easy")


class Miner(NamedTuple):
    """A per-anchor selection rule. ``kind`` is ``"pair"`` (``rule(d, pos, neg, similarity)
    -> (pos, neg)``) or ``"triplet"`` (``rule(d, pos, neg, similarity) -> (R, R) mask``);
    ``similarity`` tells whether larger ``d`` is closer."""

    kind: str
    rule: Callable


def pair_margin_miner(pos_margin: float = 0.2, neg_margin: float = 0.8) -> Miner:
    """PML's ``PairMarginMiner``: positives farther than ``pos_margin``, negatives closer than
    ``neg_margin`` (for a similarity: positives below, negatives above).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import contrastive_loss, pair_margin_miner
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
      >>> y = jnp.array([0, 0, 1, 1])
      >>> round(float(contrastive_loss(x, y, miner=pair_margin_miner(0.1, 0.5))), 4)
      1.3496
    """

    def rule(d, pos, neg, similarity):
        if similarity:
            return pos & (d < pos_margin), neg & (d > neg_margin)
        return pos & (d > pos_margin), neg & (d < neg_margin)

    return Miner("pair", rule)


def multi_similarity_miner(epsilon: float = 0.1) -> Miner:
    r"""PML's ``MultiSimilarityMiner``: for a similarity :math:`s`, the positives with
    :math:`s_{ap} - \epsilon < \max_n s_{an}` and the negatives with
    :math:`s_{an} + \epsilon > \min_p s_{ap}` (mirrored for a distance).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import multi_similarity_loss, multi_similarity_miner
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
      >>> y = jnp.array([0, 0, 1, 1])
      >>> round(float(multi_similarity_loss(x, y, miner=multi_similarity_miner(0.1))), 4)
      0.3394
    """

    def rule(d, pos, neg, similarity):
        big = jnp.asarray(jnp.inf, d.dtype)
        if similarity:
            hardest_neg = jnp.max(jnp.where(neg, d, -big))
            easiest_pos = jnp.min(jnp.where(pos, d, big))
            return pos & (d - epsilon < hardest_neg), neg & (d + epsilon > easiest_pos)
        hardest_neg = jnp.min(jnp.where(neg, d, big))
        easiest_pos = jnp.max(jnp.where(pos, d, -big))
        return pos & (d + epsilon > hardest_neg), neg & (d - epsilon < easiest_pos)

    return Miner("pair", rule)


def triplet_margin_miner(margin: float = 0.2, type_of_triplets: str = "all") -> Miner:
    r"""PML's ``TripletMarginMiner``: with :math:`\mu = d_{an} - d_{ap}` (similarity:
    :math:`s_{ap} - s_{an}`), ``"all"``: :math:`\mu \le m`; ``"hard"``: :math:`\mu \le 0`;
    ``"semihard"``: :math:`0 < \mu \le m`; ``"easy"``: :math:`\mu > m`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import triplet_margin_loss, triplet_margin_miner
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
      >>> y = jnp.array([0, 0, 1, 1])
      >>> miner = triplet_margin_miner(0.5, "semihard")
      >>> round(float(triplet_margin_loss(x, y, margin=0.5, miner=miner)), 4)
      0.238
    """
    if type_of_triplets not in _TRIPLET_TYPES:
        raise ValueError(
            f"triplet_margin_miner: argument `type_of_triplets` must be one of {_TRIPLET_TYPES}; "
            f"got {type_of_triplets!r}"
        )

    def rule(d, pos, neg, similarity):
        mu = d[:, None] - d[None, :] if similarity else d[None, :] - d[:, None]  # (p, n)
        if type_of_triplets == "easy":
            keep = mu > margin
        else:
            keep = mu <= margin
            if type_of_triplets == "hard":
                keep &= mu <= 0
            elif type_of_triplets == "semihard":
                keep &= mu > 0
        return keep & pos[:, None] & neg[None, :]

    return Miner("triplet", rule)


def batch_hard_miner() -> Miner:
    """PML's ``BatchHardMiner``: per anchor, the farthest positive and the closest negative
    (one triplet per anchor that has both; ties: the first index, as ``torch.max``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import batch_hard_miner, triplet_margin_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
      >>> y = jnp.array([0, 0, 1, 1])
      >>> round(float(triplet_margin_loss(x, y, margin=0.5, miner=batch_hard_miner())), 4)
      0.5438
    """

    def rule(d, pos, neg, similarity):
        far = -d if similarity else d
        big = jnp.asarray(jnp.inf, d.dtype)
        p = jnp.argmax(jnp.where(pos, far, -big))
        n = jnp.argmin(jnp.where(neg, far, big))
        r = d.shape[0]
        one = (jnp.arange(r)[:, None] == p) & (jnp.arange(r)[None, :] == n)
        return one & jnp.any(pos) & jnp.any(neg)

    return Miner("triplet", rule)


def apply_pair_miner(miner: Miner | None, d: Array, pos: Array, neg: Array, similarity: bool):
    if miner is None:
        return pos, neg
    return miner.rule(d, pos, neg, similarity)
