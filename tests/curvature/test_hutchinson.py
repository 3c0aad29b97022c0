"""Hutchinson diagonal / trace estimators against the dense float64 Hessian."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.curvature._hutchinson import hutchinson_diag, hutchinson_trace


def _estimates(m, key, n_reps, n_samples):
    """(n_reps, d) independent estimates with ``n_samples`` probes each (vmapped over keys)."""
    keys = jax.random.split(key, n_reps)
    est = jax.jit(jax.vmap(lambda k: hutchinson_diag(m.loss, m.params, k, n_samples).diag))(keys)
    return np.asarray(jax.vmap(lambda t: jax.flatten_util.ravel_pytree(t)[0])(est))


def _offdiag_sq(h):
    """sum_{j != i} H_ij^2 for every i: the exact per-probe variance of the estimator."""
    return np.sum(h**2, axis=1) - np.diag(h) ** 2


def test_exact_with_one_probe_on_diagonal_quadratic(x64):
    c = {"a": jnp.array([1.0, -2.0, 3.5]), "b": jnp.array([[0.5, 4.0], [7.0, -1.0]])}
    f = lambda p, s: 0.5 * s * sum(jnp.sum(ci * p[n] ** 2) for n, ci in c.items())  # noqa: E731
    p = {"a": jnp.array([0.3, 1.0, -2.0]), "b": jnp.ones((2, 2))}
    both = jax.jit(
        lambda k: (
            hutchinson_diag(f, p, k, 1, 2.0),  # extra positional arg of f
            hutchinson_trace(f, p, k, 3, 2.0),
        )
    )
    res, tr = both(jax.random.key(3))
    for n in c:
        np.testing.assert_allclose(res.diag[n], 2.0 * c[n], rtol=0, atol=1e-15)
        np.testing.assert_allclose(res.grad[n], 2.0 * c[n] * p[n], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        tr.trace, 2.0 * sum(float(jnp.sum(ci)) for ci in c.values()), atol=1e-14
    )


def test_keys_differ_per_leaf_and_per_sample(x64):
    # f(a, b) = <a, b>: H has only the off-diagonal blocks I, so the estimate of diag_a is
    # z_a * z_b. With one key reused for the two (equal-shape) leaves it would be exactly 1.
    f = lambda p: jnp.sum(p["a"] * p["b"])  # noqa: E731
    p = {"a": jnp.zeros(64), "b": jnp.zeros(64)}
    one = hutchinson_diag(f, p, jax.random.key(0), 1).diag
    assert set(np.unique(one["a"])) == {-1.0, 1.0}
    np.testing.assert_array_equal(one["a"], one["b"])  # z_a z_b, symmetric
    # Two samples: (z_a1 z_b1 + z_a2 z_b2) / 2 has zeros where they disagree; a key reused
    # across samples would give +-1 only.
    two = hutchinson_diag(f, p, jax.random.key(0), 2).diag
    assert 0.0 in set(np.unique(two["a"]))
    # Unbiased: the true diagonal is 0; the mean of 64 * 256 independent +-1 is near 0.
    many = hutchinson_diag(f, p, jax.random.key(1), 256).diag
    assert abs(float(jnp.mean(many["a"]))) < 5.0 / np.sqrt(64 * 256)


def test_gradient_is_returned(mlp64):
    both = jax.jit(
        lambda k: (
            hutchinson_diag(mlp64.loss, mlp64.params, k, 3),
            hutchinson_trace(mlp64.loss, mlp64.params, k, 3),
        )
    )
    res, tr = both(jax.random.key(0))
    g_ref = jax.grad(mlp64.loss)(mlp64.params)
    np.testing.assert_allclose(mlp64.to_flat(res.grad), mlp64.to_flat(g_ref), rtol=0, atol=1e-14)
    np.testing.assert_allclose(tr.trace, np.sum(mlp64.to_flat(res.diag)), rtol=0, atol=1e-13)


def test_variance_matches_offdiagonal_sum_and_error_falls_as_one_over_sqrt_samples(mlp64):
    h = mlp64.hess
    exact_var = _offdiag_sq(h)  # per-probe variance of each coordinate
    est1 = _estimates(mlp64, jax.random.key(11), 4000, 1)
    # Unbiased: every coordinate within 5 standard errors of diag(H).
    se = np.sqrt(exact_var / est1.shape[0])
    assert np.all(np.abs(est1.mean(0) - np.diag(h)) <= 5 * se + 1e-12)
    # Per-coordinate variance: relative sd of a sample variance from 4000 draws is about
    # sqrt((kurtosis - 1) / 4000) <= 0.03; 0.15 is 5 of those.
    np.testing.assert_allclose(est1.var(0), exact_var, rtol=0.15, atol=1e-3 * exact_var.max())
    np.testing.assert_allclose(est1.var(0).sum(), exact_var.sum(), rtol=0.05)
    # With S probes: E ||est_S - diag H||^2 = sum_i exact_var_i / S. Over 30 other seeds, 32
    # repetitions of S = 16 gave ratios to that value in [0.88, 1.13] and RMS ratios in
    # [3.75, 4.25] (and the variance check above a worst relative error of 0.07).
    total = exact_var.sum()
    est16 = _estimates(mlp64, jax.random.key(22), 32, 16)
    mse = {s: np.mean(np.sum((e - np.diag(h)) ** 2, axis=1)) for s, e in [(1, est1), (16, est16)]}
    for s in mse:
        assert 0.6 < mse[s] / (total / s) < 1.6, (s, mse[s], total / s)
    ratio = np.sqrt(mse[1] / mse[16])  # RMS error ratio: sqrt(16 / 1) = 4 in expectation
    assert 3.0 < ratio < 5.3, ratio


def test_validation_errors(mlp64):
    with pytest.raises(ValueError, match="`n_samples`"):
        hutchinson_diag(mlp64.loss, mlp64.params, jax.random.key(0), 0)
    with pytest.raises(TypeError, match="`n_samples`"):
        hutchinson_trace(mlp64.loss, mlp64.params, jax.random.key(0), 2.5)
    with pytest.raises(TypeError, match="`params`"):
        hutchinson_diag(lambda p: jnp.sum(p), jnp.arange(3), jax.random.key(0))
