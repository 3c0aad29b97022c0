"""Tests for the padded-graph utilities (geomjax.equivariant._graph) against numpy brute force.

Segment reductions are compared with explicit Python loops over rows; graphs with
``itertools``/sorting over all pairs. Masked rows, out-of-range padding ids and empty segments
are covered, and gradients are checked finite with ``jax_debug_nans`` on (conftest).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.equivariant._graph import (
    GraphBatch,
    batch_graphs,
    fully_connected_graph,
    radius_graph,
    segment_max,
    segment_mean,
    segment_softmax,
    segment_sum,
)
from geomjax.testing import (
    assert_allclose_dtype,
    check_grads_finite,
    rounding_tolerance,
)

N_SEG = 6


def _problem(dtype, trailing=(3,), seed=0):
    """Rows with ids in [0, 5) (segment 5 empty), one row with an out-of-range id, random mask."""
    rng = np.random.default_rng(seed)
    e = 17
    ids = rng.integers(0, 5, size=e)
    ids[3] = N_SEG + 2  # padding id outside [0, N): dropped
    mask = rng.random(e) > 0.3
    mask[ids == 4] = False  # segment 4 has rows, all masked: empty
    data = rng.normal(size=(e,) + trailing) * 3.0
    return jnp.asarray(data, dtype), jnp.asarray(ids, jnp.int32), jnp.asarray(mask), data, ids, mask


def _brute(reduce, data, ids, mask):
    out = np.zeros((N_SEG,) + data.shape[1:])
    for k in range(N_SEG):
        rows = [data[e] for e in range(len(ids)) if ids[e] == k and mask[e]]
        if rows:
            out[k] = reduce(np.stack(rows))
    return out


@pytest.mark.parametrize(
    "op, reduce",
    [
        (segment_sum, lambda r: r.sum(0)),
        (segment_mean, lambda r: r.mean(0)),
        (segment_max, lambda r: r.max(0)),
    ],
    ids=["sum", "mean", "max"],
)
def test_segment_reductions_match_brute_force(op, reduce, dtype):
    data, ids, mask, d_np, i_np, m_np = _problem(dtype)
    got = op(data, ids, N_SEG, mask=mask)
    want = _brute(reduce, d_np, i_np, m_np)
    assert got.shape == (N_SEG, 3) and got.dtype == dtype
    assert_allclose_dtype(got, want)
    assert np.all(np.asarray(got)[[4, 5]] == 0)  # empty segments give 0
    # Without a mask every row with an in-range id counts.
    want_all = _brute(reduce, d_np, i_np, np.ones_like(m_np))
    assert_allclose_dtype(op(data, ids, N_SEG), want_all)


def test_segment_softmax_matches_brute_force(dtype):
    data, ids, mask, d_np, i_np, m_np = _problem(dtype, trailing=(2,))
    got = np.asarray(segment_softmax(data, ids, N_SEG, mask=mask))
    want = np.zeros_like(d_np)
    for k in range(N_SEG):
        rows = [e for e in range(len(i_np)) if i_np[e] == k and m_np[e]]
        if rows:
            z = np.exp(d_np[rows])
            want[rows] = z / z.sum(0)
    assert_allclose_dtype(got, want)
    assert np.all(got[~m_np] == 0)


def test_segment_softmax_is_stable_and_nan_free():
    logits = jnp.array([1e4, 1e4 - 1.0, -1e4, 3.0, 0.0])
    ids = jnp.array([0, 0, 0, 1, 3])
    mask = jnp.array([True, True, True, True, False])
    w = segment_softmax(logits, ids, 4, mask=mask)
    e = np.exp(-1.0)
    np.testing.assert_allclose(np.asarray(w), [1 / (1 + e), e / (1 + e), 0.0, 1.0, 0.0], rtol=1e-6)

    @jax.jit
    def loss(z):
        return jnp.sum(segment_softmax(z, ids, 4, mask=mask) * jnp.arange(5.0))

    check_grads_finite(loss, (logits,), order=2, hessian="hvp")


def test_segment_gradients_float64(x64):
    data, ids, mask, *_ = _problem(jnp.float64, seed=3)
    for op, order in ((segment_sum, 1), (segment_mean, 1), (segment_max, 1), (segment_softmax, 2)):
        f = jax.jit(lambda d, op=op: op(d, ids, N_SEG, mask=mask))
        check_grads(f, (data,), order=order, modes=["rev"])

    @jax.jit
    def loss(d):
        return jnp.sum(segment_max(d, ids, N_SEG, mask=mask) ** 2) + jnp.sum(
            segment_mean(d, ids, N_SEG, mask=mask) ** 2
        )

    check_grads_finite(loss, (data,), order=1)


def test_segment_validation():
    data = jnp.ones((4, 2))
    ids = jnp.array([0, 1, 1, 2])
    with pytest.raises(ValueError, match="segment_ids"):
        segment_sum(data, ids.astype(jnp.float32), 3)
    with pytest.raises(ValueError, match="data"):
        segment_mean(jnp.ones((5, 2)), ids, 3)
    with pytest.raises(ValueError, match="mask"):
        segment_max(data, ids, 3, mask=jnp.ones(4))
    with pytest.raises(TypeError, match="num_segments"):
        segment_softmax(data, ids, 3.0)
    with pytest.raises(TypeError, match="data"):
        segment_mean(jnp.ones((4,), jnp.int32), ids, 3)


@pytest.mark.parametrize("self_loops", [False, True])
def test_fully_connected_graph(self_loops):
    n = 5
    s, r = fully_connected_graph(n, self_loops=self_loops)
    assert s.dtype == jnp.int32 and r.dtype == jnp.int32
    pairs = [(j, i) for i in range(n) for j in range(n) if self_loops or i != j]
    assert list(zip(s.tolist(), r.tolist())) == pairs
    assert len(pairs) == (n * n if self_loops else n * (n - 1))
    with pytest.raises(ValueError, match="n_nodes"):
        fully_connected_graph(0)


def _radius_brute(x, r, k, node_mask):
    """Per receiver: senders within r (j != i, both real), nearest first, at most k."""
    n = len(x)
    out = []
    for i in range(n):
        cand = []
        if node_mask[i]:
            for j in range(n):
                d = np.linalg.norm(x[i] - x[j])
                if j != i and node_mask[j] and d <= r:
                    cand.append((d, j))
        out.append([j for _, j in sorted(cand)[:k]])
    return out


@pytest.mark.parametrize("k", [3, 12])
def test_radius_graph_matches_brute_force(k):
    rng = np.random.default_rng(1)
    n, r = 10, 1.2
    x = rng.normal(size=(n, 3))
    node_mask = np.ones(n, bool)
    node_mask[7] = False
    s, rcv, m = jax.jit(radius_graph, static_argnums=2)(
        jnp.asarray(x), r, k, jnp.asarray(node_mask)
    )
    assert s.shape == rcv.shape == m.shape == (n * k,)
    s, rcv, m = np.asarray(s), np.asarray(rcv), np.asarray(m)
    want = _radius_brute(x, r, k, node_mask)
    assert max(len(w) for w in want) >= min(k, 3)  # the cap is exercised
    for i in range(n):
        slots = slice(i * k, (i + 1) * k)
        assert np.all(rcv[slots] == i)
        assert s[slots][m[slots]].tolist() == want[i]  # nearest first
        assert np.all(m[slots][: len(want[i])]) and not np.any(m[slots][len(want[i]) :])
        assert np.all(s[slots][~m[slots]] == i)  # padding slots point at the receiver


def test_radius_graph_validation():
    x = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match="`x`"):
        radius_graph(jnp.zeros((4,)), 1.0, 2)
    with pytest.raises(ValueError, match="max_neighbors"):
        radius_graph(x, 1.0, 0)
    with pytest.raises(ValueError, match="node_mask"):
        radius_graph(x, 1.0, 2, node_mask=jnp.ones(3, bool))
    with pytest.raises(ValueError, match="`r`"):
        radius_graph(x, jnp.ones(2), 2)


def test_batch_graphs_lists_of_different_sizes():
    s0, r0 = fully_connected_graph(3)
    s1, r1, m1 = radius_graph(jnp.array([[0.0, 0.0], [0.5, 0.0], [5.0, 5.0], [9.0, 9.0]]), 1.0, 2)
    nm1 = jnp.array([True, True, True, False])
    g = batch_graphs(
        [s0, s1],
        [r0, r1],
        [3, 4],
        edge_mask=[jnp.ones(6, bool), m1],
        node_mask=[jnp.ones(3, bool), nm1],
    )
    assert isinstance(g, GraphBatch)
    np.testing.assert_array_equal(g.senders, np.concatenate([s0, np.asarray(s1) + 3]))
    np.testing.assert_array_equal(g.receivers, np.concatenate([r0, np.asarray(r1) + 3]))
    np.testing.assert_array_equal(g.edge_mask, np.concatenate([np.ones(6, bool), m1]))
    np.testing.assert_array_equal(g.node_mask, [True] * 6 + [False])
    np.testing.assert_array_equal(g.node_graph, [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(g.edge_graph, [0] * 6 + [1] * 8)
    # Per-graph pooling over real nodes equals the per-graph means.
    h = jnp.arange(7.0)[:, None] ** 2
    pooled = segment_mean(h, g.node_graph, 2, mask=g.node_mask)
    want = [np.mean([0, 1, 4]), np.mean([9, 16, 25])]  # float32 means of 3 integers
    tol = rounding_tolerance(jnp.float32, n_ops=3)
    np.testing.assert_allclose(np.asarray(pooled)[:, 0], want, rtol=tol)


def test_batch_graphs_stacked_equals_per_graph_aggregation():
    b, n = 4, 5
    s, r = fully_connected_graph(n)
    g = batch_graphs(jnp.stack([s] * b), jnp.stack([r] * b), n)
    assert g.senders.shape == (b * n * (n - 1),)
    h = jax.random.normal(jax.random.key(0), (b, n, 2))
    batched = segment_sum(h.reshape(b * n, 2)[g.senders], g.receivers, b * n)
    per_graph = jax.vmap(lambda hh: segment_sum(hh[s], r, n))(h)
    np.testing.assert_allclose(batched, per_graph.reshape(b * n, 2), rtol=1e-6)
    # Every edge stays inside its own graph.
    assert np.all(np.asarray(g.node_graph)[g.senders] == np.asarray(g.edge_graph))
    assert np.all(np.asarray(g.node_graph)[g.receivers] == np.asarray(g.edge_graph))


def test_batch_graphs_validation():
    s, r = fully_connected_graph(3)
    with pytest.raises(ValueError, match="n_nodes"):
        batch_graphs([s, s], [r, r], [3])
    with pytest.raises(ValueError, match="receivers"):
        batch_graphs([s, s], [r], 3)
    with pytest.raises(ValueError, match="node_mask"):
        batch_graphs([s], [r], 3, node_mask=[jnp.ones(2, bool)])
    with pytest.raises(ValueError, match="senders"):
        batch_graphs(jnp.ones((2, 3, 4), jnp.int32), jnp.ones((2, 3, 4), jnp.int32), 3)


def test_no_retracing_under_jit():
    traces = []

    @jax.jit
    def f(d, i, m):
        traces.append(1)
        return segment_softmax(d, i, N_SEG, mask=m)

    for seed in range(3):
        data, ids, mask, *_ = _problem(jnp.float32, seed=seed)
        f(data, ids, mask)
    assert len(traces) == 1
