"""loki_predict / loki_scores against a brute-force loop, the discrete-metric argmax property, and
label points on a manifold (Sphere) against the equivalent distance matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.manifolds._loki import loki_predict, loki_scores
from geomjax.manifolds._sphere import Sphere


def _brute_force(p, dist):
    """argmin_y sum_i p_i d(y, i)^2 with explicit loops in float64 (first index on ties)."""
    best, best_score = None, np.inf
    for y in range(dist.shape[0]):
        score = sum(float(p[i]) * float(dist[y, i]) ** 2 for i in range(dist.shape[1]))
        if score < best_score:
            best, best_score = y, score
    return best


def _random_metric(rng, m, k, dim=3):
    """Distances between m candidate points and the first k of them (Euclidean in R^dim)."""
    pts = rng.normal(size=(m, dim))
    return np.linalg.norm(pts[:, None, :] - pts[None, :k, :], axis=-1)


def test_matches_brute_force():
    rng = np.random.default_rng(0)
    k, m, batch = 5, 8, 20
    dists = np.stack([_random_metric(rng, m, k) for _ in range(batch)])
    probs = rng.dirichlet(np.ones(k), size=batch)
    pred = jax.jit(jax.vmap(loki_predict))(
        jnp.asarray(probs, jnp.float32), jnp.asarray(dists, jnp.float32)
    )
    scores = jax.vmap(loki_scores)(jnp.asarray(probs, jnp.float32), jnp.asarray(dists, jnp.float32))
    ref_scores = np.einsum("bi,byi->by", probs, dists**2)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
    ref = np.array([_brute_force(p, d) for p, d in zip(probs, dists)])
    margin = np.sort(ref_scores, axis=1)[:, 1] - np.sort(ref_scores, axis=1)[:, 0]
    np.testing.assert_array_equal(np.asarray(pred)[margin > 1e-4], ref[margin > 1e-4])
    assert pred.dtype == jnp.int32 and pred.shape == (batch,)


def test_discrete_metric_is_argmax():
    rng = np.random.default_rng(1)
    k = 7
    discrete = 1.0 - np.eye(k)
    probs = rng.dirichlet(np.ones(k), size=50)
    pred = jax.vmap(loki_predict, in_axes=(0, None))(jnp.asarray(probs), jnp.asarray(discrete))
    np.testing.assert_array_equal(pred, probs.argmax(axis=1))


def test_geometry_changes_the_prediction():
    # Three labels on a line: an uncertain classifier split between the ends predicts the middle.
    d = jnp.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    p = jnp.array([0.45, 0.1, 0.45])
    assert int(loki_predict(p, d)) == 1
    assert int(loki_predict(jnp.array([0.8, 0.1, 0.1]), d)) == 0


def test_points_with_metric_match_distance_matrix(x64):
    sphere = Sphere(2)
    keys = jax.random.split(jax.random.key(0), 9)
    pts = jax.vmap(lambda k: sphere.random_point(k, jnp.float64))(keys)
    labels, extra = pts[:4], pts[4:]
    cands = jnp.concatenate([labels, extra])
    # Independent distance matrix: great-circle distance arccos(<y, l>) in numpy.
    dist = np.arccos(np.clip(np.asarray(cands) @ np.asarray(labels).T, -1.0, 1.0))
    probs = jnp.asarray(np.random.default_rng(2).dirichlet(np.ones(4), size=10))
    ours = jax.vmap(lambda p: loki_scores(p, labels, metric=sphere, candidates=cands))(probs)
    np.testing.assert_allclose(ours, np.asarray(probs) @ (dist**2).T, rtol=1e-10, atol=1e-12)
    pred = jax.vmap(lambda p: loki_predict(p, labels, metric=sphere, candidates=cands))(probs)
    np.testing.assert_array_equal(pred, [_brute_force(np.asarray(p), dist) for p in probs])
    # Default candidates are the labels themselves.
    default = jax.vmap(lambda p: loki_predict(p, labels, metric=sphere))(probs)
    np.testing.assert_array_equal(default, [_brute_force(np.asarray(p), dist[:4]) for p in probs])


def test_errors():
    d = jnp.ones((3, 3))
    with pytest.raises(ValueError, match="probs"):
        loki_predict(jnp.ones((2, 3)), d)
    with pytest.raises(ValueError, match="label_points_or_distances"):
        loki_predict(jnp.ones(4), d)
    with pytest.raises(ValueError, match="candidates"):
        loki_predict(jnp.ones(3), d, candidates=jnp.ones((2, 3)))
    with pytest.raises(TypeError, match="metric"):
        loki_predict(jnp.ones(3), jnp.ones((3, 3)), metric="euclidean")
    with pytest.raises(ValueError, match="candidates"):
        loki_predict(jnp.ones(3), jnp.ones((3, 3)), metric=Sphere(2), candidates=jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="probs"):
        loki_predict(jnp.ones(3, jnp.int32), d)
