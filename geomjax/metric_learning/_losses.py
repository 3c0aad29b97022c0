r"""Batch metric-learning losses with pytorch-metric-learning's semantics and defaults.

Each loss takes a batch ``embeddings (B, D)`` with integer ``labels (B,)``, forms every
anchor-positive and anchor-negative pair (or triplet) of the batch as fixed-shape masks (no
index lists, no host synchronization; ``jit``/``vmap``-able), and reduces as PML's default
reducer for that loss does. All share the options of the row engine
(:mod:`geomjax.metric_learning._rows`): ``ref_embeddings``/``ref_labels``, ``reduction``,
``chunk_size`` (row-chunked evaluation with ``O(chunk x B)`` memory) and ``axis_name``
(cross-device negatives inside ``jax.shard_map``).

Distances: ``metric="euclidean"`` with ``normalize=True`` is PML's default ``LpDistance``;
``metric="cosine"`` its ``CosineSimilarity`` (a similarity: margins flip, as PML's
``distance.margin``).

References:
  K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check", ECCV 2020,
  arXiv:2003.08505.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.metric_learning._distances import is_similarity
from geomjax.metric_learning._rows import batch_loss, stats, terms

__all__ = [
    "contrastive_loss",
    "multi_similarity_loss",
    "ntxent_loss",
    "supcon_loss",
    "triplet_margin_loss",
]


def _margin(metric: str, x, y):
    """PML's ``distance.margin(x, y)``: ``x - y`` for distances, ``y - x`` for similarities."""
    return y - x if is_similarity(metric) else x - y


def _masked_logsumexp(x: Array, keep: Array, add_one: bool, axis: int = -1) -> Array:
    """PML's ``lmu.logsumexp`` along ``axis``: log(sum over kept entries of exp (+ 1 with
    ``add_one``)), 0 where nothing is kept; finite gradients (masked entries get weight 0)."""
    x = jnp.where(keep, x, jnp.finfo(x.dtype).min)
    m = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    if add_one:
        m = jnp.maximum(m, 0.0)
    total = jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True)
    if add_one:
        total = total + jnp.exp(-m)
    out = jnp.squeeze(m + jnp.log(total), axis)
    return jnp.where(jnp.any(keep, axis=axis), out, 0.0)


def contrastive_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    pos_margin: float = 0.0,
    neg_margin: float = 1.0,
    metric: str = "euclidean",
    normalize: bool = True,
    p: float = 2.0,
    reduction: str = "avg_nonzero",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
) -> Array:
    r"""Contrastive loss (Hadsell et al.), PML's ``ContrastiveLoss``:

    .. math::

        L = \operatorname{red}_{(a,p)} [d_{ap} - m_+]_+ \;+\;
            \operatorname{red}_{(a,n)} [m_- - d_{an}]_+

    over all positive and all negative pairs, each sub-loss reduced on its own
    (``"avg_nonzero"``: the mean over the pairs with a positive loss, PML's default).

    Args:
      embeddings: ``(B, D)``.
      labels: int ``(B,)``.
      pos_margin, neg_margin: :math:`m_+`, :math:`m_-`.
      metric, normalize, p: the distance (PML default: L2 of normalized embeddings).
      reduction: ``"avg_nonzero"``, ``"mean"``, ``"sum"`` or ``"none"`` (per anchor).
      ref_embeddings, ref_labels: optional references ``(R, D)``, ``(R,)``.
      chunk_size: rows per chunk (``None``: dense).
      axis_name: device axis of a sharded batch (inside ``jax.shard_map``).
      miner: a pair miner (:func:`pair_margin_miner`, :func:`multi_similarity_miner`) that
        selects the pairs, or ``None`` for all pairs.

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.metric_learning import contrastive_loss
      >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
      >>> round(float(contrastive_loss(x, jnp.array([0, 0, 1]))), 4)
      0.1106

    References:
      R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an Invariant
      Mapping", CVPR 2006.
    """

    def row(d, pos, neg):
        return stats(
            terms(jax.nn.relu(_margin(metric, d, pos_margin)), pos),
            terms(jax.nn.relu(_margin(metric, neg_margin, d)), neg),
        )

    return batch_loss(
        "contrastive_loss",
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


def triplet_margin_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.05,
    swap: bool = False,
    smooth_loss: bool = False,
    metric: str = "euclidean",
    normalize: bool = True,
    p: float = 2.0,
    reduction: str = "avg_nonzero",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
    max_positives: int | None = None,
) -> Array:
    r"""Triplet margin loss over all triplets of the batch, PML's ``TripletMarginLoss``:

    .. math::

        L = \operatorname{red}_{(a,p,n)} \big[d_{ap} - d_{an} + m\big]_+

    (``smooth_loss``: softplus instead of the hinge; ``swap``: :math:`d_{an}` replaced by
    :math:`\min(d_{an}, d_{pn})`). Evaluated anchor by anchor: each row forms its
    ``(R, R)`` positive x negative grid, so memory is ``O(chunk R^2)``; without ``chunk_size``
    the chunk is chosen so that the grid has at most ``2^24`` entries.

    Args:
      embeddings, labels, metric, normalize, p, reduction, ref_embeddings, ref_labels: as
        :func:`contrastive_loss`.
      chunk_size, axis_name: as :func:`contrastive_loss`.
      margin: :math:`m`.
      swap: use the positive-negative distance when smaller.
      smooth_loss: softplus of the violation.
      miner: a triplet miner (:func:`triplet_margin_miner`, :func:`batch_hard_miner`), or
        ``None`` for all triplets.
      max_positives: static bound on the positives of one anchor (e.g. the largest class size
        minus 1; :func:`max_bin_count` gives the class size): each row then forms a
        ``(max_positives, R)`` grid instead of ``(R, R)``, ``R / max_positives`` times less
        work (PML-style batches of a few samples per class). ``None``: no bound. An anchor with
        more positives than the bound makes the loss NaN (never a silently partial sum).

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import triplet_margin_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
      >>> round(float(triplet_margin_loss(x, jnp.array([0, 0, 1]), margin=0.5)), 4)
      0.5438

    References:
      F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
      Recognition and Clustering", CVPR 2015, arXiv:1503.03832.
    """
    fn = "triplet_margin_loss"

    def hinge(v):
        return jax.nn.softplus(v) if smooth_loss else jax.nn.relu(v)

    if max_positives is not None and (
        isinstance(max_positives, bool) or not isinstance(max_positives, int) or max_positives < 1
    ):
        raise ValueError(
            f"{fn}: argument `max_positives` must be None or an int >= 1; got {max_positives!r}"
        )

    def row(d, pos, neg, d_ref=None, triplets=None):
        r = d.shape[0]
        if max_positives is None or max_positives >= r:
            idx, valid, overflow = jnp.arange(r), pos, False
        else:  # the (first) max_positives positives of this anchor
            _, idx = jax.lax.top_k(pos.astype(jnp.int32), max_positives)
            valid, overflow = pos[idx], jnp.sum(pos) > max_positives
        d_an = jnp.broadcast_to(d[None, :], (idx.shape[0], r))
        if swap:
            near = jnp.minimum if not is_similarity(metric) else jnp.maximum
            d_an = near(d_an, d_ref[idx])  # d_ref[p, n]: positive-negative distances
        v = hinge(_margin(metric, d[idx][:, None], d_an) + margin)
        if triplets is None:
            grid = valid[:, None] & neg[None, :]
        else:
            grid = triplets(d, pos, neg)[idx] & valid[:, None]
        st = stats(terms(v, grid))
        return st._replace(sums=jnp.where(overflow, jnp.nan, st.sums))

    n = jnp.shape(embeddings)[0] if ref_embeddings is None else jnp.shape(ref_embeddings)[0]
    rows_per_anchor = n if max_positives is None else min(n, max_positives)
    if chunk_size is None:
        chunk_size = max(1, min(jnp.shape(embeddings)[0], 2**24 // max(rows_per_anchor * n, 1)))

    def ref_dists(ref):
        from geomjax.metric_learning._distances import pairwise_distances

        return pairwise_distances(ref, metric=metric, p=p, normalize=normalize)

    return batch_loss(
        fn,
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
        extra_ref=ref_dists if swap else None,
        miner=miner,
        miner_kind="triplet",
    )


def multi_similarity_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    metric: str = "cosine",
    normalize: bool = False,
    p: float = 2.0,
    reduction: str = "mean",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
) -> Array:
    r"""Multi-similarity loss (Wang et al.), PML's ``MultiSimilarityLoss`` (cosine similarity):

    .. math::

        L_a = \frac1\alpha \log\Big(1 + \sum_{p} e^{-\alpha (s_{ap} - \lambda)}\Big)
            + \frac1\beta \log\Big(1 + \sum_{n} e^{\beta (s_{an} - \lambda)}\Big),

    averaged over the anchors (each log-term 0 when the anchor has no such pair).

    Args:
      alpha, beta, base: :math:`\alpha`, :math:`\beta`, :math:`\lambda`.
      Others: as :func:`contrastive_loss` (default reduction ``"mean"`` over anchors).

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import multi_similarity_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
      >>> round(float(multi_similarity_loss(x, jnp.array([0, 0, 1]))), 4)
      0.4859

    References:
      X. Wang, X. Han, W. Huang, D. Dong, M. R. Scott, "Multi-Similarity Loss with General
      Pair Weighting for Deep Metric Learning", CVPR 2019, arXiv:1904.06627.
    """

    def row(s, pos, neg):
        pos_l = _masked_logsumexp(alpha * _margin(metric, s, base), pos, True) / alpha
        neg_l = _masked_logsumexp(beta * _margin(metric, base, s), neg, True) / beta
        loss = pos_l + neg_l
        return stats((loss, jnp.ones((), bool), loss > 0))

    return batch_loss(
        "multi_similarity_loss",
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


def ntxent_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.07,
    metric: str = "cosine",
    normalize: bool = False,
    p: float = 2.0,
    reduction: str = "mean",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
) -> Array:
    r"""NT-Xent (normalized temperature-scaled cross entropy, SimCLR's InfoNCE), PML's
    ``NTXentLoss``: for every positive pair :math:`(a, p)`,

    .. math::

        \ell_{ap} = -\log \frac{e^{s_{ap}/\tau}}{e^{s_{ap}/\tau} + \sum_{n} e^{s_{an}/\tau}},

    averaged over the positive pairs (0 when the batch has no positive or no negative pair).
    With two views per sample as the labels this is optax's ``ntxent``.

    Args:
      temperature: :math:`\tau`.
      Others: as :func:`contrastive_loss` (default reduction ``"mean"`` over positive pairs).

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import ntxent_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
      >>> round(float(ntxent_loss(x, jnp.array([0, 0, 1]), temperature=0.5)), 4)
      0.6895

    References:
      T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for Contrastive
      Learning of Visual Representations", ICML 2020, arXiv:2002.05709.
    """
    sim = is_similarity(metric)

    def row(s, pos, neg):
        z = (s if sim else -s) / temperature
        neg_lse = _masked_logsumexp(z, neg, False)
        has_neg = jnp.any(neg)
        # log(e^z_p + sum_n e^z_n) per positive, stable; no negatives: log(e^z_p)
        denom = jnp.where(has_neg, jnp.logaddexp(z, neg_lse), z)
        # PML adds the smallest normal number inside the log: -log(exp(z - denom) + tiny)
        eps = jnp.finfo(z.dtype).tiny
        loss = -jnp.log(jnp.exp(z - denom) + eps)
        return stats(terms(loss, pos))

    return batch_loss(
        "ntxent_loss",
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
        needs_both=True,
    )


def supcon_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.1,
    metric: str = "cosine",
    normalize: bool = False,
    p: float = 2.0,
    reduction: str = "avg_nonzero",
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    miner=None,
) -> Array:
    r"""Supervised contrastive loss (Khosla et al.), PML's ``SupConLoss``: per anchor,

    .. math::

        L_a = -\frac{1}{|P(a)|} \sum_{p \in P(a)} \Big( s_{ap}/\tau - \log \sum_{j \in P(a)
            \cup N(a)} e^{s_{aj}/\tau} \Big),

    reduced over the anchors (default ``"avg_nonzero"``; 0 when the batch has no positive or
    no negative pair).

    Args:
      temperature: :math:`\tau`.
      Others: as :func:`contrastive_loss`.

    Returns:
      Scalar loss (``(B,)`` for ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import supcon_loss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
      >>> round(float(supcon_loss(x, jnp.array([0, 0, 1]))), 4)
      0.9554

    References:
      P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, arXiv:2004.11362.
    """
    sim = is_similarity(metric)

    def row(s, pos, neg):
        z = (s if sim else -s) / temperature
        z = z - jax.lax.stop_gradient(jnp.max(z))  # PML subtracts the row max (detached)
        denom = _masked_logsumexp(z, pos | neg, False)
        log_prob = z - denom
        n_pos = jnp.sum(pos)
        mean_pos = jnp.sum(jnp.where(pos, log_prob, 0.0)) / (n_pos + jnp.finfo(z.dtype).tiny)
        loss = -mean_pos
        return stats((loss, jnp.ones((), bool), loss > 0))

    return batch_loss(
        "supcon_loss",
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
        needs_both=True,
    )
