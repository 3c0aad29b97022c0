"""Padded, fixed-capacity graphs: masked segment reductions, fully connected and radius graphs, batching.

A graph is ``senders (E,) int32``, ``receivers (E,) int32``, ``edge_mask (E,) bool`` (padding
edges False) and ``node_mask (N,) bool``; messages flow from senders to receivers and are
aggregated at the receivers with the segment reductions below over ``num_segments = N``.
Shapes are static (capacities), so every function here traces once under ``jax.jit``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, as_float_array

__all__ = [
    "GraphBatch",
    "batch_graphs",
    "fully_connected_graph",
    "radius_graph",
    "segment_max",
    "segment_mean",
    "segment_softmax",
    "segment_sum",
]


def _check_count(fn: str, name: str, value, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: argument `{name}` must be a Python int (static); got {value!r}")
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{fn}: argument `{name}` must be a {kind} int; got {value}")
    return value


def _prepare(
    fn: str, data: ArrayLike, segment_ids: ArrayLike, num_segments, mask, *, floating=True
):
    """Validate; return ``data``, ids with masked entries sent out of range, the mask (or None)."""
    num_segments = _check_count(fn, "num_segments", num_segments)
    if floating:
        data = as_float_array(fn, "data", data)
    else:
        data = jnp.asarray(data)
        if not (
            jnp.issubdtype(data.dtype, jnp.integer) or jnp.issubdtype(data.dtype, jnp.floating)
        ):
            raise TypeError(
                f"{fn}: argument `data` must have an integer or real floating dtype; got {data.dtype}"
            )
    ids = jnp.asarray(segment_ids)
    if ids.ndim != 1 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(
            f"{fn}: argument `segment_ids` must be a 1-D integer array; got shape {ids.shape}, "
            f"dtype {ids.dtype}"
        )
    if data.ndim < 1 or data.shape[0] != ids.shape[0]:
        raise ValueError(
            f"{fn}: argument `data` must have leading dimension {ids.shape[0]} (one row per "
            f"segment id); got shape {data.shape}"
        )
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != ids.shape or mask.dtype != jnp.bool_:
            raise ValueError(
                f"{fn}: argument `mask` must be a boolean array of shape {ids.shape}; got shape "
                f"{mask.shape}, dtype {mask.dtype}"
            )
        # Out-of-range ids are dropped by the scatter: masked rows never contribute.
        ids = jnp.where(mask, ids, num_segments)
    return data, ids.astype(jnp.int32), num_segments, mask


def _expand(m: Array, ndim: int) -> Array:
    return m.reshape(m.shape + (1,) * (ndim - m.ndim))


def _counts(ids: Array, num_segments: int, dtype) -> Array:
    return jax.ops.segment_sum(jnp.ones(ids.shape, dtype), ids, num_segments)


def check_node_mask(fn: str, node_mask: ArrayLike | None, n: int) -> Array | None:
    """``None``, or ``node_mask`` as a boolean ``(n,)`` array: TypeError naming the argument for
    another dtype, ValueError for another shape."""
    if node_mask is None:
        return None
    node_mask = jnp.asarray(node_mask)
    if node_mask.dtype != jnp.bool_:
        raise TypeError(f"{fn}: argument `node_mask` must be boolean; got {node_mask.dtype}")
    if node_mask.shape != (n,):
        raise ValueError(
            f"{fn}: argument `node_mask` must have shape ({n},) to match `x`; got shape {node_mask.shape}"
        )
    return node_mask


def segment_sum(
    data: ArrayLike, segment_ids: ArrayLike, num_segments: int, *, mask: ArrayLike | None = None
) -> Array:
    r"""Masked segment sum :math:`s_k = \sum_{e:\, \mathrm{id}_e = k,\, \mathrm{mask}_e} d_e`.

    Rows whose ``mask`` is False (padding edges) and ids outside ``[0, num_segments)`` do not
    contribute; an empty segment sums to 0. Non-finite entries propagate to their segment (NaN
    in, NaN out).

    Args:
      data: values, shape ``(E, ...)``, integer or real floating.
      segment_ids: segment of each row, integer shape ``(E,)``.
      num_segments: number of segments ``N`` (static).
      mask: optional boolean ``(E,)``, False for rows to leave out.

    Returns:
      Sums, shape ``(N, ...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant._graph import segment_sum
      >>> segment_sum(jnp.array([1.0, 2.0, 3.0]), jnp.array([0, 0, 2]), 3,
      ...             mask=jnp.array([True, False, True]))
      Array([1., 0., 3.], dtype=float32)
    """
    data, ids, n, _ = _prepare("segment_sum", data, segment_ids, num_segments, mask, floating=False)
    return jax.ops.segment_sum(data, ids, n)


def segment_mean(
    data: ArrayLike, segment_ids: ArrayLike, num_segments: int, *, mask: ArrayLike | None = None
) -> Array:
    r"""Masked segment mean :math:`s_k / \max(n_k, 1)`, with :math:`n_k` the number of kept rows.

    An empty segment (no kept rows) gives 0, never NaN. Non-finite entries propagate to their
    segment (NaN in, NaN out).

    Args:
      data: values, shape ``(E, ...)``.
      segment_ids: segment of each row, integer shape ``(E,)``.
      num_segments: number of segments ``N`` (static).
      mask: optional boolean ``(E,)``, False for rows to leave out.

    Returns:
      Means, shape ``(N, ...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant._graph import segment_mean
      >>> segment_mean(jnp.array([1.0, 2.0, 3.0]), jnp.array([0, 0, 2]), 3)
      Array([1.5, 0. , 3. ], dtype=float32)
    """
    data, ids, n, _ = _prepare("segment_mean", data, segment_ids, num_segments, mask)
    total = jax.ops.segment_sum(data, ids, n)
    count = _counts(ids, n, data.dtype)
    return total / _expand(jnp.maximum(count, 1), total.ndim)


def segment_max(
    data: ArrayLike, segment_ids: ArrayLike, num_segments: int, *, mask: ArrayLike | None = None
) -> Array:
    r"""Masked segment maximum :math:`\max_{e:\, \mathrm{id}_e = k,\, \mathrm{mask}_e} d_e`.

    An empty segment gives 0 (not ``-inf``); gradients reach the maximizing rows. A NaN entry
    makes its segment's maximum NaN; infinite entries give a maximum of ``+inf`` or ``-inf``.

    Args:
      data: values, shape ``(E, ...)``, integer or real floating.
      segment_ids: segment of each row, integer shape ``(E,)``.
      num_segments: number of segments ``N`` (static).
      mask: optional boolean ``(E,)``, False for rows to leave out.

    Returns:
      Maxima, shape ``(N, ...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant._graph import segment_max
      >>> segment_max(jnp.array([1.0, -2.0, 3.0]), jnp.array([0, 0, 2]), 3)
      Array([1., 0., 3.], dtype=float32)
    """
    data, ids, n, _ = _prepare("segment_max", data, segment_ids, num_segments, mask, floating=False)
    # The maximum is taken on stop-gradient data (JAX's own segment_max JVP divides 0 / 0 in
    # empty segments); the gradient is routed to the maximizing rows, shared equally by ties.
    sg = jax.lax.stop_gradient(data)
    out = jax.ops.segment_max(sg, ids, n)
    empty = _expand(_counts(ids, n, data.dtype) == 0, out.ndim)
    out = jnp.where(empty, jnp.zeros_like(out), out)
    if not jnp.issubdtype(data.dtype, jnp.inexact):
        return out
    kept = _expand((ids >= 0) & (ids < n), data.ndim)
    hit = kept & (sg == out[jnp.clip(ids, 0, n - 1)])
    ties = jax.ops.segment_sum(hit.astype(data.dtype), ids, n)
    # An infinite maximum has no gradient route (inf - inf would be NaN): it is returned as is.
    route = hit & jnp.isfinite(sg)
    delta = jax.ops.segment_sum(jnp.where(route, data - sg, jnp.zeros_like(data)), ids, n)
    return out + delta / jnp.maximum(ties, 1)


def segment_softmax(
    logits: ArrayLike, segment_ids: ArrayLike, num_segments: int, *, mask: ArrayLike | None = None
) -> Array:
    r"""Softmax of ``logits`` within each segment (attention weights over a node's incoming edges).

    .. math::

        w_e = \frac{\exp(\ell_e - \mu_k)}{\sum_{e':\, \mathrm{id}_{e'} = k} \exp(\ell_{e'} - \mu_k)},
        \qquad k = \mathrm{id}_e,\ \mu_k = \max_{e':\, \mathrm{id}_{e'} = k} \ell_{e'}

    The shift by the (stop-gradient) segment maximum keeps it stable for large logits and does
    not change the value; masked rows get weight 0 and take no part in the normalization, and
    gradients are NaN-free (also for empty segments and masked rows). Input domain: finite logits
    or ``-inf`` (weight 0). A NaN logit makes its segment's weights NaN; a ``+inf`` logit gets a
    NaN weight (the finite rows of its segment get 0); a segment whose kept logits are all
    ``-inf`` gets NaN weights. Leave such rows out with ``mask``.

    Args:
      logits: shape ``(E, ...)`` (trailing axes, e.g. attention heads, are independent).
      segment_ids: segment of each row, integer shape ``(E,)``.
      num_segments: number of segments ``N`` (static).
      mask: optional boolean ``(E,)``, False for rows to leave out.

    Returns:
      Weights, shape ``(E, ...)``, summing to 1 over the kept rows of each non-empty segment.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant._graph import segment_softmax
      >>> segment_softmax(jnp.array([0.0, 0.0, 1e4, 5.0]), jnp.array([0, 0, 1, 1]), 2)
      Array([0.5, 0.5, 1. , 0. ], dtype=float32)
    """
    fn = "segment_softmax"
    logits, ids, n, mask = _prepare(fn, logits, segment_ids, num_segments, mask)
    keep = ids < n  # masked rows and out-of-range ids were sent to n
    keep = _expand(keep & (ids >= 0), logits.ndim)
    safe_ids = jnp.clip(ids, 0, n - 1)
    mu = jax.ops.segment_max(jax.lax.stop_gradient(logits), ids, n)
    mu = jnp.where(jnp.isfinite(mu), mu, jnp.zeros_like(mu))
    shifted = jnp.where(keep, logits - mu[safe_ids], jnp.zeros_like(logits))
    e = jnp.where(keep, jnp.exp(shifted), jnp.zeros_like(shifted))
    denom = jax.ops.segment_sum(e, ids, n)[safe_ids]
    safe_denom = jnp.where(keep, denom, jnp.ones_like(denom))
    return jnp.where(keep, e / safe_denom, jnp.zeros_like(e))


def fully_connected_graph(n_nodes: int, self_loops: bool = False) -> tuple[Array, Array]:
    r"""All ordered pairs ``(j -> i)`` of ``n_nodes`` nodes, receiver-major.

    Edge ``e = i (n - 1) + k`` (without self loops) has receiver ``i`` and the ``k``-th other node
    as sender, the edge order of the official EGNN code.

    Args:
      n_nodes: number of nodes ``n`` (static).
      self_loops: include the ``n`` edges ``i -> i``.

    Returns:
      ``(senders, receivers)``, int32 arrays of shape ``(n (n - 1),)`` (or ``(n^2,)``).

    Examples:
      >>> from geomjax.equivariant._graph import fully_connected_graph
      >>> s, r = fully_connected_graph(3)
      >>> s.tolist(), r.tolist()
      ([1, 2, 0, 2, 0, 1], [0, 0, 1, 1, 2, 2])
    """
    n = _check_count("fully_connected_graph", "n_nodes", n_nodes)
    recv, send = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    recv, send = recv.ravel(), send.ravel()
    if not self_loops:
        keep = recv != send
        recv, send = recv[keep], send[keep]
    return jnp.asarray(send, jnp.int32), jnp.asarray(recv, jnp.int32)


def radius_graph(
    x: ArrayLike, r: ArrayLike, max_neighbors: int, node_mask: ArrayLike | None = None
) -> tuple[Array, Array, Array]:
    r"""Edges ``j -> i`` for ``||x_i - x_j|| <= r``, ``j != i``, at most ``max_neighbors`` per receiver.

    Receiver ``i`` owns the fixed slots ``i K, ..., i K + K - 1`` (``K = max_neighbors``), filled
    with its nearest senders first; unused slots are padding (``edge_mask`` False). Nodes with
    ``node_mask`` False neither send nor receive. The cost is ``O(N^2)`` (dense distances), fine
    for the molecule and particle sizes this is meant for. A node with a non-finite coordinate
    has no edges, and a negative or NaN ``r`` gives no edges at all.

    Args:
      x: positions, shape ``(N, d)``.
      r: cutoff radius (real scalar, may be traced).
      max_neighbors: neighbour cap ``K`` per receiver (static); the capacity is ``N K`` edges.
      node_mask: optional boolean ``(N,)``, False for padding nodes.

    Returns:
      ``(senders, receivers, edge_mask)``, each of shape ``(N K,)`` (int32, int32, bool);
      padding slots have ``senders == receivers``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant._graph import radius_graph
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
      >>> s, r, m = radius_graph(x, 1.5, 2)
      >>> s.tolist(), r.tolist(), m.tolist()
      ([1, 0, 0, 1, 2, 2], [0, 0, 1, 1, 2, 2], [True, False, True, False, False, False])
    """
    fn = "radius_graph"
    x = as_float_array(fn, "x", x)
    if x.ndim != 2:
        raise ValueError(f"{fn}: argument `x` must have shape (N, d); got shape {x.shape}")
    k = _check_count(fn, "max_neighbors", max_neighbors)
    n = x.shape[0]
    if node_mask is None:
        node_mask = jnp.ones((n,), bool)
    node_mask = jnp.asarray(node_mask)
    if node_mask.shape != (n,) or node_mask.dtype != jnp.bool_:
        raise ValueError(
            f"{fn}: argument `node_mask` must be a boolean array of shape ({n},); got shape "
            f"{node_mask.shape}, dtype {node_mask.dtype}"
        )
    r = jnp.asarray(r)
    if not (jnp.issubdtype(r.dtype, jnp.integer) or jnp.issubdtype(r.dtype, jnp.floating)):
        raise TypeError(f"{fn}: argument `r` must be a real number; got dtype {r.dtype}")
    r = r.astype(x.dtype)
    if r.ndim != 0:
        raise ValueError(f"{fn}: argument `r` must be a scalar; got shape {r.shape}")
    diff = x[:, None, :] - x[None, :, :]
    d2 = jnp.sum(diff * diff, axis=-1)
    valid = node_mask[:, None] & node_mask[None, :] & ~jnp.eye(n, dtype=bool)
    valid = valid & (d2 <= r * r) & (r >= 0)
    d2 = jnp.where(valid, d2, jnp.inf)
    kk = min(k, n)
    neg, idx = jax.lax.top_k(-d2, kk)  # nearest first; ties by index
    ok = jnp.isfinite(neg)
    if kk < k:
        idx = jnp.pad(idx, ((0, 0), (0, k - kk)))
        ok = jnp.pad(ok, ((0, 0), (0, k - kk)))
    receivers = jnp.repeat(jnp.arange(n, dtype=jnp.int32), k)
    # Padding slots point at their receiver (a valid index, never a real neighbour).
    senders = jnp.where(ok.reshape(-1), idx.reshape(-1).astype(jnp.int32), receivers)
    return jax.lax.stop_gradient(senders), receivers, jax.lax.stop_gradient(ok.reshape(-1))


class GraphBatch(NamedTuple):
    """Several graphs as one disjoint graph (output of :func:`batch_graphs`).

    Attributes:
      senders, receivers: int32 ``(E_total,)``, node indices offset into the concatenated nodes.
      edge_mask: bool ``(E_total,)``.
      node_mask: bool ``(N_total,)``.
      node_graph: int32 ``(N_total,)``, the graph each node belongs to (segment ids for
        per-graph pooling with ``num_segments = n_graphs``).
      edge_graph: int32 ``(E_total,)``, the graph each edge belongs to.
    """

    senders: Array
    receivers: Array
    edge_mask: Array
    node_mask: Array
    node_graph: Array
    edge_graph: Array


def _as_list(fn, name, value, n_graphs=None, integer=False):
    if isinstance(value, (list, tuple)):
        out = [jnp.asarray(v) for v in value]
    else:
        arr = jnp.asarray(value)
        if arr.ndim != 2:
            raise ValueError(
                f"{fn}: argument `{name}` must be a sequence of 1-D arrays or a stacked 2-D array "
                f"(n_graphs, E); got shape {arr.shape}"
            )
        out = [arr[b] for b in range(arr.shape[0])]
    if integer and any(not jnp.issubdtype(v.dtype, jnp.integer) for v in out):
        raise TypeError(
            f"{fn}: argument `{name}` must hold integer node indices; got dtypes "
            f"{[str(v.dtype) for v in out]}"
        )
    if any(v.ndim != 1 for v in out):
        raise ValueError(f"{fn}: every entry of `{name}` must be 1-D; got {[v.shape for v in out]}")
    if n_graphs is not None and len(out) != n_graphs:
        raise ValueError(f"{fn}: argument `{name}` must hold {n_graphs} graphs; got {len(out)}")
    return out


def batch_graphs(
    senders,
    receivers,
    n_nodes: int | Sequence[int],
    *,
    edge_mask=None,
    node_mask=None,
) -> GraphBatch:
    r"""Concatenate several padded graphs into one disjoint graph, offsetting node indices.

    Graph ``b`` with node capacity ``N_b`` gets the nodes ``o_b, ..., o_b + N_b - 1``,
    :math:`o_b = \sum_{c < b} N_c`; its node features are the ``b``-th block of the concatenated
    (or reshaped ``(B N, F)``) feature arrays. A layer run on the batch equals the layer run on
    each graph, and ``segment_*(..., node_graph, n_graphs, mask=node_mask)`` pools per graph.
    Input domain: every index of graph ``b`` lies in ``[0, N_b)``, padding edges included (mask
    them with ``edge_mask``). Values are not checked (they may be traced): an index out of range
    lands in another graph's block.

    Args:
      senders, receivers: per-graph edge indices: a sequence of ``B`` int arrays ``(E_b,)`` or a
        stacked ``(B, E)`` array.
      n_nodes: node capacity per graph: one int for all graphs or a sequence of ``B`` ints (static).
      edge_mask: optional per-graph boolean masks (same layout as ``senders``); default all True.
      node_mask: optional per-graph boolean node masks (sequence of ``(N_b,)`` or stacked
        ``(B, N)``); default all True.

    Returns:
      A :class:`GraphBatch` with ``E_total = sum E_b`` edges and ``N_total = sum N_b`` nodes.

    Examples:
      >>> from geomjax.equivariant._graph import batch_graphs, fully_connected_graph
      >>> s, r = fully_connected_graph(2)
      >>> g = batch_graphs([s, s], [r, r], 2)
      >>> g.senders.tolist(), g.receivers.tolist(), g.node_graph.tolist()
      ([1, 0, 3, 2], [0, 1, 2, 3], [0, 0, 1, 1])
    """
    fn = "batch_graphs"
    s_list = _as_list(fn, "senders", senders, integer=True)
    b = len(s_list)
    if b == 0:
        raise ValueError(f"{fn}: argument `senders` must hold at least one graph")
    r_list = _as_list(fn, "receivers", receivers, b, integer=True)
    if isinstance(n_nodes, numbers.Integral) and not isinstance(n_nodes, bool):
        sizes = [_check_count(fn, "n_nodes", n_nodes)] * b
    elif not isinstance(n_nodes, Sequence) or isinstance(n_nodes, str):
        raise TypeError(
            f"{fn}: argument `n_nodes` must be an int or a sequence of {b} ints; got {n_nodes!r}"
        )
    else:
        sizes = [_check_count(fn, "n_nodes", v) for v in n_nodes]
        if len(sizes) != b:
            raise ValueError(f"{fn}: argument `n_nodes` must hold {b} ints; got {len(sizes)}")
    for i, (s, r) in enumerate(zip(s_list, r_list)):
        if s.shape != r.shape:
            raise ValueError(
                f"{fn}: graph {i}: `senders` and `receivers` must have the same shape; got "
                f"{s.shape} and {r.shape}"
            )
    if edge_mask is None:
        em_list = [jnp.ones(s.shape, bool) for s in s_list]
    else:
        em_list = _as_list(fn, "edge_mask", edge_mask, b)
    if node_mask is None:
        nm_list = [jnp.ones((n,), bool) for n in sizes]
    else:
        nm_list = _as_list(fn, "node_mask", node_mask, b)
    for i in range(b):
        if em_list[i].shape != s_list[i].shape or em_list[i].dtype != jnp.bool_:
            raise ValueError(
                f"{fn}: graph {i}: `edge_mask` must be boolean of shape {s_list[i].shape}"
            )
        if nm_list[i].shape != (sizes[i],) or nm_list[i].dtype != jnp.bool_:
            raise ValueError(f"{fn}: graph {i}: `node_mask` must be boolean of shape ({sizes[i]},)")
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    return GraphBatch(
        senders=jnp.concatenate([s.astype(jnp.int32) + o for s, o in zip(s_list, offsets)]),
        receivers=jnp.concatenate([r.astype(jnp.int32) + o for r, o in zip(r_list, offsets)]),
        edge_mask=jnp.concatenate(em_list),
        node_mask=jnp.concatenate(nm_list),
        node_graph=jnp.asarray(np.repeat(np.arange(b), sizes), jnp.int32),
        edge_graph=jnp.asarray(np.repeat(np.arange(b), [s.shape[0] for s in s_list]), jnp.int32),
    )
