"""Tests for the max-sliced Wasserstein distance (geomjax.ot._max_sliced)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.ot._max_sliced import max_sliced_wasserstein
from geomjax.ot._sliced import sliced_wasserstein
from geomjax.ot._wasserstein_1d import wasserstein_1d
from geomjax.testing import check_grads_finite


@pytest.mark.parametrize("p", [1.0, 1.5])
def test_translated_cloud_closed_form(x64, key, p):
    """y = x + t: W_p(theta) = |<theta, t>|, maximized at t / |t| with value |t|."""
    x = jax.random.normal(jax.random.key(3), (40, 4))
    t = jnp.array([0.5, -1.0, 2.0, 0.0])
    res = max_sliced_wasserstein(key, x, x + t, p=p)
    # float64, exact maximizer t / |t|: the float64 default
    np.testing.assert_allclose(float(res.value), float(jnp.linalg.norm(t)), rtol=1e-10)
    np.testing.assert_allclose(jnp.abs(res.direction @ t) / jnp.linalg.norm(t), 1.0, rtol=1e-10)
    assert bool(res.converged)


def test_gaussians_mean_shift_along_axis(x64, key):
    """N(0, I) vs N(1.5 e_1, I): population W_2(theta) = 1.5 |theta_1|, max 1.5 at e_1."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = rng.normal(size=(2000, 3)) + np.array([1.5, 0.0, 0.0])
    res = max_sliced_wasserstein(key, x, y, n_restarts=2)
    assert abs(float(res.value) - 1.5) < 0.1
    assert abs(float(res.direction[0])) > 0.99
    assert bool(res.converged)


def test_gaussians_scale_along_axis(x64, key):
    """N(0, I) vs N(0, diag(9, 1, 1)): population W_2(theta) maximal (= 2) at e_1.

    Equal means, so the mean-difference start is essentially random: this tests the ascent."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 3))
    y = rng.normal(size=(2000, 3)) * np.array([3.0, 1.0, 1.0])
    res = max_sliced_wasserstein(key, x, y, n_restarts=2)
    assert abs(float(res.value) - 2.0) < 0.15
    assert abs(float(res.direction[0])) > 0.99


def test_vs_brute_force_grid_2d(x64, key):
    """Against the max over 20001 directions in the plane (numpy sorted-sample formula)."""
    rng = np.random.default_rng(2)
    x = rng.exponential(size=(30, 2))
    y = 2.0 * rng.uniform(size=(30, 2)) + rng.normal(size=(30, 2))
    phi = np.linspace(0.0, np.pi, 20001)
    th = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    f = np.mean((np.sort(x @ th.T, axis=0) - np.sort(y @ th.T, axis=0)) ** 2, axis=0)
    ref = np.sqrt(f.max())
    res = max_sliced_wasserstein(key, x, y, n_restarts=8)
    # the grid (spacing pi / 2e4) misses the smooth maximum by ~(spacing / 2)^2 ~ 6e-9
    # relative; 1e-5 is the ascent's stopping accuracy in the value
    np.testing.assert_allclose(float(res.value), ref, rtol=1e-5)
    assert float(res.value) >= ref * (1 - 1e-9)  # the grid can only miss the maximum
    # directions within half a grid step: 1 - cos(7.9e-5) = 3e-9; 1e-6 for the ascent
    np.testing.assert_allclose(abs(float(res.direction @ th[f.argmax()])), 1.0, rtol=0, atol=1e-6)
    # max-sliced >= sliced (a mean over directions is at most their maximum)
    assert float(res.value) >= float(sliced_wasserstein(key, x, y, n_projections=256))


def test_weighted_p1_vs_scipy_grid_2d(x64, key):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(9, 2)) * [2.0, 0.5] + 0.3
    a = rng.random(12) + 0.2
    a /= a.sum()
    b = rng.random(9) + 0.2
    b /= b.sum()
    phi = np.linspace(0.0, np.pi, 3001)
    vals = [
        stats.wasserstein_distance(x @ [np.cos(t), np.sin(t)], y @ [np.cos(t), np.sin(t)], a, b)
        for t in phi
    ]
    ref = max(vals)
    res = max_sliced_wasserstein(key, x, y, a, b, p=1, n_restarts=8)
    assert float(res.value) >= ref * (1 - 1e-9)
    # grid spacing pi / 3000: W_1(theta) has kinks, so the grid misses the maximum to first
    # order, ~(spacing / 2) |slope| / W ~ 1e-3
    np.testing.assert_allclose(float(res.value), ref, rtol=1e-3)


def test_envelope_gradient(x64, key):
    """grad of the value = grad of W_p along the (fixed) returned direction."""
    x = jax.random.normal(jax.random.key(7), (10, 3))
    y = jax.random.normal(jax.random.key(8), (10, 3)) * 2.0 + 0.5
    # eager: the search is jitted inside and compiled once for these shapes
    f = lambda x, y: max_sliced_wasserstein(key, x, y, n_iter=50, n_restarts=2).value  # noqa: E731
    theta = max_sliced_wasserstein(key, x, y, n_iter=50, n_restarts=2).direction
    g = jax.grad(f)(x, y)
    g_ref = jax.grad(lambda x: wasserstein_1d(x @ theta, y @ theta, p=2))(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)  # float64 default
    # identical clouds: value 0, finite (zero) gradient
    assert float(f(x, x)) == 0.0
    check_grads_finite(f, (x, x), order=1)


def test_vmap_and_validation(key):
    xs = jax.random.normal(key, (3, 8, 2))
    res = jax.vmap(lambda x: max_sliced_wasserstein(key, x, x + 1.0, n_iter=20, n_restarts=2))(xs)
    # float32, exact maximizer (1, 1) / sqrt 2: the float32 default
    np.testing.assert_allclose(res.value, np.sqrt(2.0), rtol=1e-5)
    assert res.direction.shape == (3, 2)
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="`n_iter`"):
        max_sliced_wasserstein(key, x, x, n_iter=0)
    with pytest.raises(ValueError, match="`learning_rate`"):
        max_sliced_wasserstein(key, x, x, learning_rate=-1.0)
    with pytest.raises(ValueError, match="`p`"):
        max_sliced_wasserstein(key, x, x, p=0.0)
