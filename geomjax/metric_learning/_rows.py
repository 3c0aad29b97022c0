r"""The engine behind every batch loss: per-anchor rows, chunked and sharded.

Every loss of this package is a sum over anchors (the rows of the query-reference distance
matrix) of terms that depend only on that row and on the label masks. A loss is written once
as a *row function* ``row_fn(d_row, pos_row, neg_row) -> RowStats`` (``d_row`` the anchor's
distances or similarities to all references, ``pos_row``/``neg_row`` its positive and negative
masks); this module evaluates it

* densely: all rows at once (``chunk_size=None``), memory ``O(B R)``;
* row-chunked: ``lax.scan`` over chunks of ``chunk_size`` rows, each under
  ``jax.checkpoint`` so the backward pass recomputes the chunk instead of storing it: the same
  value and gradient with memory ``O(chunk R)``;
* across devices (``axis_name`` inside ``jax.shard_map``): the references are the
  ``all_gather`` of every device's embeddings (its transpose sums the reference cotangents
  back onto each shard), the rows are the local embeddings, and the statistics are summed with
  ``psum``: equal to the single-device loss on the concatenated batch.

Masks follow pytorch-metric-learning: positives share the label and are not the anchor itself
(same global index), negatives have another label. With explicit ``ref_embeddings`` no pair is
excluded (PML's ``ref_emb`` semantics).

Reductions (``reduction``), per sub-loss ``k`` over its terms (pairs, triplets or anchors):
``"mean"`` (sum / number of valid terms), ``"avg_nonzero"`` (sum / number of terms > 0: PML's
``AvgNonZeroReducer``), ``"sum"``, and ``"none"`` (one value per anchor: the mean over its
terms); sub-losses are added, and a sub-loss without any term contributes 0 (PML's zero loss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import Array, all_gather_invariant, psum_if
from geomjax.metric_learning._distances import check_embeddings, is_similarity, pairwise_distances

REDUCTIONS = ("mean", "avg_nonzero", "sum", "none")


class RowStats(NamedTuple):
    """One anchor's contribution to each of ``k`` sub-losses: the sum of its terms, the number
    of its valid terms and of its terms > 0 (all shape ``(k,)``)."""

    sums: Array
    counts: Array
    nonzero: Array


def terms(values: Array, valid: Array) -> tuple[Array, Array, Array]:
    """Sum, count and nonzero count of the ``valid`` entries of ``values`` (any shape)."""
    v = jnp.where(valid, values, 0.0)
    return jnp.sum(v), jnp.sum(valid), jnp.sum(valid & (values > 0))


def stats(*parts: tuple[Array, Array, Array]) -> RowStats:
    s, c, n = zip(*parts)
    return RowStats(jnp.stack(s), jnp.stack(c).astype(s[0].dtype), jnp.stack(n).astype(s[0].dtype))


def check_labels(fn: str, name: str, labels, n: int) -> Array:
    labels = jnp.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{fn}: argument `{name}` must have shape ({n},); got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: argument `{name}` must be integer; got {labels.dtype}")
    return labels


def check_options(fn: str, reduction: str, chunk_size) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{fn}: argument `reduction` must be one of {REDUCTIONS}; got {reduction!r}"
        )
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(
            f"{fn}: argument `chunk_size` must be None or an int >= 1; got {chunk_size!r}"
        )


def batch_loss(
    fn: str,
    row_fn: Callable[[Array, Array, Array], RowStats],
    embeddings,
    labels,
    *,
    ref_embeddings=None,
    ref_labels=None,
    metric: str,
    p: float = 2.0,
    normalize: bool = False,
    reduction: str,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    extra_ref: Callable[[Array], Array] | None = None,
    miner=None,
    miner_kind: str = "pair",
    needs_both: bool = False,
) -> Array:
    """Evaluate ``row_fn`` over all anchors and reduce (module docstring).

    ``extra_ref``, when given, maps the reference embeddings to an array passed to
    ``row_fn`` as a fourth argument (e.g. the reference-reference distances for the triplet
    loss's ``swap``). ``miner``: a :class:`~geomjax.metric_learning.Miner` of ``miner_kind``;
    a pair miner replaces the masks before ``row_fn``, a triplet miner is passed to it as the
    keyword ``triplets`` (its rule with the similarity flag bound). ``needs_both``: the loss is
    0 unless the (mined) batch has a positive and a negative pair somewhere (PML's zero loss
    for NT-Xent and SupCon)."""
    check_options(fn, reduction, chunk_size)
    if miner is not None and getattr(miner, "kind", None) != miner_kind:
        raise ValueError(
            f"{fn}: argument `miner` must be a {miner_kind} miner (geomjax.metric_learning "
            f"miners); got {miner!r}"
        )
    similarity = is_similarity(metric)
    x = check_embeddings(fn, "embeddings", embeddings)
    b = x.shape[0]
    labels = check_labels(fn, "labels", labels, b)
    if ref_embeddings is None:
        if ref_labels is not None:
            raise ValueError(f"{fn}: argument `ref_labels` needs `ref_embeddings`")
        ref, ref_lab = x, labels
        offset = 0
        if axis_name is not None:
            ref = all_gather_invariant(x, axis_name, tiled=True)
            ref_lab = all_gather_invariant(labels, axis_name, tiled=True)
            offset = jax.lax.axis_index(axis_name) * b
        ids, ref_ids = offset + jnp.arange(b), jnp.arange(ref.shape[0])
    else:
        ref = check_embeddings(fn, "ref_embeddings", ref_embeddings)
        ref_lab = check_labels(fn, "ref_labels", ref_labels, ref.shape[0])
        if axis_name is not None:
            ref = all_gather_invariant(ref, axis_name, tiled=True)
            ref_lab = all_gather_invariant(ref_lab, axis_name, tiled=True)
        ids = ref_ids = None
    extra = extra_ref(ref) if extra_ref is not None else None

    def rows(xc, lc, ic):
        d = pairwise_distances(xc, ref, metric=metric, p=p, normalize=normalize)
        same = lc[:, None] == ref_lab[None, :]
        pos = same if ic is None else same & (ic[:, None] != ref_ids[None, :])
        neg = ~same
        kw = {}
        if miner is not None and miner_kind == "pair":
            pos, neg = jax.vmap(lambda a, b_, c: miner.rule(a, b_, c, similarity))(d, pos, neg)
        elif miner is not None:
            kw["triplets"] = lambda a, b_, c: miner.rule(a, b_, c, similarity)
        if extra is not None:
            kw["d_ref"] = extra
        st = jax.vmap(lambda a, b_, c: row_fn(a, b_, c, **kw))(d, pos, neg)
        return st, jnp.stack([jnp.sum(pos, 1), jnp.sum(neg, 1)], 1)

    if chunk_size is None or chunk_size >= b:
        st, pairs = rows(x, labels, ids)
        valid_rows = jnp.ones((b,), bool)
    else:
        n_chunks = -(-b // chunk_size)
        pad = n_chunks * chunk_size - b
        xp = jnp.pad(x, ((0, pad), (0, 0)))
        lp = jnp.pad(labels, (0, pad))
        ip = None if ids is None else jnp.pad(ids, (0, pad), constant_values=-1)
        valid_rows = jnp.arange(n_chunks * chunk_size) < b
        step = jax.checkpoint(rows)
        xs = (
            xp.reshape(n_chunks, chunk_size, -1),
            lp.reshape(n_chunks, chunk_size),
            None if ip is None else ip.reshape(n_chunks, chunk_size),
        )

        def body(_, inp):
            xc, lc, ic = inp
            return None, step(xc, lc, ic)

        _, (st, pairs) = jax.lax.scan(body, None, xs)
        st, pairs = jax.tree.map(
            lambda a: a.reshape((n_chunks * chunk_size,) + a.shape[2:]), (st, pairs)
        )
    mask = valid_rows[:, None]
    sums = jnp.where(mask, st.sums, 0.0)
    counts = jnp.where(mask, st.counts, 0.0)
    nonzero = jnp.where(mask, st.nonzero, 0.0)
    both = jnp.ones((), bool)
    if needs_both:
        n_pairs = psum_if(jnp.sum(jnp.where(valid_rows[:, None], pairs, 0), 0), axis_name)
        both = (n_pairs[0] > 0) & (n_pairs[1] > 0)
    if reduction == "none":
        per_row = jnp.sum(sums / jnp.maximum(counts, 1.0), axis=-1)
        return jnp.where(both, per_row[:b], 0.0)
    total_s = psum_if(jnp.sum(sums, 0), axis_name)
    if reduction == "sum":
        return jnp.where(both, jnp.sum(total_s), 0.0)
    denom = jnp.sum(counts if reduction == "mean" else nonzero, 0)
    denom = psum_if(denom, axis_name)
    value = jnp.sum(jnp.where(denom > 0, total_s / jnp.maximum(denom, 1.0), 0.0))
    return jnp.where(both, value, 0.0)
