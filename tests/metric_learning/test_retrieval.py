"""Retrieval metrics against pytorch-metric-learning's AccuracyCalculator (optional oracle;
faiss exact L2 kNN, k = "max_bin_count"), with and without separate references; chunked and
unchunked agree exactly (the same per-query values, summed in another grouping: float32
rounding of a mean of <= 500 values in [0, 1], 1e-6)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.metric_learning import max_bin_count, retrieval_metrics

KEYS = {
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
    "map_at_r": "mean_average_precision_at_r",
    "mrr": "mean_reciprocal_rank",
}


def _data(n, d, n_cls, seed, noise=1.0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_cls, d)) * 2
    y = rng.integers(0, n_cls, n)
    y[0] = n_cls + 3  # a lone query (no other sample of its class)
    x = np.concatenate([centers, np.zeros((4, d))])[y] + noise * rng.standard_normal((n, d))
    return x.astype(np.float32), y


def _pml(x, y, ref=None, ref_y=None, k="max_bin_count"):
    pytest.importorskip("faiss")
    acc = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    calc = acc.AccuracyCalculator(include=tuple(KEYS.values()), k=k)
    if ref is None:
        return calc.get_accuracy(x, y)
    return calc.get_accuracy(x, y, ref, ref_y, ref_includes_query=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_retrieval_matches_pml(seed):
    x, y = _data(300, 8, 12, seed)
    want = _pml(x, y)
    k = max_bin_count(y) - 1
    for chunk in (None, 64):
        got = retrieval_metrics(jnp.asarray(x), jnp.asarray(y), k=k, chunk_size=chunk)
        for ours, theirs in KEYS.items():
            np.testing.assert_allclose(
                float(getattr(got, ours)), want[theirs], rtol=1e-6, err_msg=ours
            )
        assert int(got.n_queries) == 299  # the lone query is left out


def test_query_reference_retrieval_matches_pml():
    x, y = _data(200, 6, 8, 5)
    r, ry = _data(400, 6, 8, 5)
    want = _pml(x, y, r, ry)
    got = retrieval_metrics(
        jnp.asarray(x),
        jnp.asarray(y),
        jnp.asarray(r),
        jnp.asarray(ry),
        k=max_bin_count(ry),
        chunk_size=50,
    )
    for ours, theirs in KEYS.items():
        np.testing.assert_allclose(float(getattr(got, ours)), want[theirs], rtol=1e-6)


def test_recall_at_k_against_a_numpy_loop():
    x, y = _data(120, 4, 6, 9)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")
    for k in (1, 5):
        hits = [np.any(y[order[i, :k]] == y[i]) for i in range(120) if np.sum(y == y[i]) > 1]
        got = retrieval_metrics(jnp.asarray(x), jnp.asarray(y), k=k)
        np.testing.assert_allclose(float(got.recall_at_k), np.mean(hits), rtol=1e-6)


def test_errors_name_the_argument():
    x = jnp.ones((5, 2))
    with pytest.raises(ValueError, match="`k`"):
        retrieval_metrics(x, jnp.zeros(5, int), k=5)
    with pytest.raises(ValueError, match="`query_labels`"):
        retrieval_metrics(x, jnp.zeros(4, int), k=1)
