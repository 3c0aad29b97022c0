r"""Retrieval metrics from exact k-nearest neighbours, as pytorch-metric-learning's
``AccuracyCalculator``.

For each query :math:`q` with label :math:`y_q`, its ``k`` nearest references (exact, by
``lax.top_k`` on the distance row; the query itself excluded when the references are the
queries) with labels :math:`y_{(1)}, \dots, y_{(k)}`, and :math:`R_q` the number of references
with label :math:`y_q` (the query itself not counted):

.. math::

    \text{P@1} = [y_{(1)} = y_q], \quad
    \text{Recall@}k = [\exists i \le k: y_{(i)} = y_q], \quad
    \text{R-precision} = \frac{1}{\min(R_q, k)} \sum_{i \le \min(R_q, k)} [y_{(i)} = y_q],

.. math::

    \text{MAP@R} = \frac{1}{R_q} \sum_{i \le \min(R_q, k)} \text{P@}i\,[y_{(i)} = y_q], \quad
    \text{MRR} = 1 / \min\{i \le k: y_{(i)} = y_q\} \ (0 \text{ if none}),

each averaged over the queries with :math:`R_q > 0` (PML leaves out "lone" queries). With
``k = max_bin_count(reference_labels)`` (minus 1 when the references are the queries) R-precision
and MAP@R are exact (Musgrave et al.). Rows are processed in chunks of ``chunk_size`` queries
(memory ``O(chunk R)``), and with ``axis_name`` the references are gathered from all devices
and the sums reduced with ``psum``.

References:
  K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check", ECCV 2020,
  arXiv:2003.08505.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, all_gather_invariant, psum_if
from geomjax.metric_learning._distances import check_embeddings, is_similarity, pairwise_distances
from geomjax.metric_learning._rows import check_labels

__all__ = ["RetrievalMetrics", "max_bin_count", "retrieval_metrics"]


class RetrievalMetrics(NamedTuple):
    """Averages over the queries that have at least one relevant reference.

    Attributes:
      precision_at_1, recall_at_k, r_precision, map_at_r, mrr: scalars.
      n_queries: the number of queries averaged (those with a relevant reference).
    """

    precision_at_1: Array
    recall_at_k: Array
    r_precision: Array
    map_at_r: Array
    mrr: Array
    n_queries: Array


def max_bin_count(labels: ArrayLike) -> int:
    """The largest class size in ``labels`` (host-side, NumPy): with ``k = max_bin_count - 1``
    (references = queries) R-precision and MAP@R are exact.

    Examples:
      >>> from geomjax.metric_learning import max_bin_count
      >>> max_bin_count([0, 1, 1, 2, 1])
      3
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return int(counts.max())


def retrieval_metrics(
    query: ArrayLike,
    query_labels: ArrayLike,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    *,
    k: int,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    axis_name: str | None = None,
) -> RetrievalMetrics:
    r"""Precision@1, Recall@k, R-precision, MAP@R and MRR of exact k-NN retrieval.

    Args:
      query: ``(Q, D)`` embeddings.
      query_labels: int ``(Q,)``.
      reference: ``(R, D)``; ``None`` to retrieve among the queries (each query excluded from
        its own neighbours).
      reference_labels: int ``(R,)`` (with ``reference``).
      k: number of neighbours (static); see :func:`max_bin_count`.
      metric: as :func:`~geomjax.metric_learning.pairwise_distances` (similarities rank
        largest first).
      chunk_size: queries per chunk (``None``: all at once).
      axis_name: device axis when the queries (and references) are sharded.

    Returns:
      :class:`RetrievalMetrics`.

    Raises:
      ValueError, TypeError: naming the argument.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import retrieval_metrics
      >>> x = jnp.array([[0.0], [0.1], [1.0], [1.2], [5.0]])
      >>> m = retrieval_metrics(x, jnp.array([0, 0, 1, 1, 2]), k=1)
      >>> float(m.precision_at_1), int(m.n_queries)
      (1.0, 4)

    References:
      K. Musgrave et al., "A Metric Learning Reality Check", ECCV 2020, arXiv:2003.08505.
    """
    fn = "retrieval_metrics"
    q = check_embeddings(fn, "query", query)
    q_lab = check_labels(fn, "query_labels", query_labels, q.shape[0])
    if reference is None:
        if reference_labels is not None:
            raise ValueError(f"{fn}: argument `reference_labels` needs `reference`")
        ref, ref_lab = q, q_lab
        self_retrieval = True
    else:
        ref = check_embeddings(fn, "reference", reference)
        ref_lab = check_labels(fn, "reference_labels", reference_labels, ref.shape[0])
        self_retrieval = False
    offset = 0
    if axis_name is not None:
        ref = all_gather_invariant(ref, axis_name, tiled=True)
        ref_lab = all_gather_invariant(ref_lab, axis_name, tiled=True)
        if self_retrieval:
            offset = jax.lax.axis_index(axis_name) * q.shape[0]
    n_ref = ref.shape[0]
    if (
        isinstance(k, bool)
        or not isinstance(k, (int, np.integer))
        or not 1 <= k <= n_ref - self_retrieval
    ):
        raise ValueError(
            f"{fn}: argument `k` must be an int in [1, {n_ref - self_retrieval}]; got {k!r}"
        )
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(
            f"{fn}: argument `chunk_size` must be None or an int >= 1; got {chunk_size!r}"
        )
    sign = 1.0 if is_similarity(metric) else -1.0
    ranks = jnp.arange(1, k + 1)

    def rows(qc, lc, ic):
        score = sign * pairwise_distances(qc, ref, metric=metric)  # larger = closer
        if self_retrieval:
            score = jnp.where(ic[:, None] == jnp.arange(n_ref)[None, :], -jnp.inf, score)
        _, idx = jax.lax.top_k(score, k)
        match = ref_lab[idx] == lc[:, None]  # (c, k)
        r = jnp.sum(ref_lab[None, :] == lc[:, None], axis=1) - (1 if self_retrieval else 0)
        valid = (r > 0) & (ic >= 0)
        rel = ranks[None, :] <= r[:, None]
        hits = jnp.cumsum(match, axis=1)
        p1 = match[:, 0].astype(q.dtype)
        rec = jnp.any(match, axis=1).astype(q.dtype)
        rp = jnp.sum(match & rel, axis=1) / jnp.maximum(jnp.minimum(r, k), 1)
        ap = jnp.sum(jnp.where(match & rel, hits / ranks[None, :], 0.0), axis=1) / jnp.maximum(r, 1)
        first = jnp.argmax(match, axis=1) + 1
        mrr = jnp.where(jnp.any(match, axis=1), 1.0 / first, 0.0)
        per = jnp.stack([p1, rec, rp.astype(q.dtype), ap.astype(q.dtype), mrr.astype(q.dtype)], 1)
        return jnp.sum(jnp.where(valid[:, None], per, 0.0), axis=0), jnp.sum(valid)

    ids = offset + jnp.arange(q.shape[0])
    if chunk_size is None or chunk_size >= q.shape[0]:
        sums, count = rows(q, q_lab, ids)
    else:
        n_chunks = -(-q.shape[0] // chunk_size)
        pad = n_chunks * chunk_size - q.shape[0]
        xs = (
            jnp.pad(q, ((0, pad), (0, 0))).reshape(n_chunks, chunk_size, -1),
            jnp.pad(q_lab, (0, pad)).reshape(n_chunks, chunk_size),
            jnp.pad(ids, (0, pad), constant_values=-1).reshape(n_chunks, chunk_size),
        )
        per_chunk = jax.lax.map(lambda c: rows(*c), xs)
        sums, count = jnp.sum(per_chunk[0], 0), jnp.sum(per_chunk[1])
    sums, count = psum_if((sums, count), axis_name)
    avg = sums / jnp.maximum(count, 1).astype(sums.dtype)
    avg = jnp.where(count > 0, avg, jnp.nan)
    return RetrievalMetrics(*[avg[i] for i in range(5)], count)
