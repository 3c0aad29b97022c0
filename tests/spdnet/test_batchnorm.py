"""Riemannian batch normalization: the affine-invariant closed form, the normalized statistics
under every metric, running statistics, and exact derivatives (also at the identity)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax import manifolds as M
from geomjax.spdnet import batch_frechet_stats, rbn_init, riemannian_batch_norm

from . import _reference as ref

N = 3


def _batch(seed, k=6, n=N, spread=0.7):
    rng = np.random.default_rng(seed)
    return np.stack([ref.random_spd(rng, n, spread) for _ in range(k)])


def _metrics(n=N):
    m = np.diag([1.0, 2.0, 3.0])[:n, :n]
    return {
        "aim": M.SPDAffineInvariant(n),
        "le": M.SPDLogEuclidean(n),
        "lc": M.SPDLogCholesky(n),
        "bw": M.SPDBuresWasserstein(n),
        "gbw": M.SPDGeneralizedBuresWasserstein(jnp.asarray(m)),
        "pow_gbw": M.PowerDeformed(M.SPDGeneralizedBuresWasserstein(jnp.asarray(m)), 0.5),
    }


def test_aim_matches_closed_form(x64):
    """Y_i = B^1/2 (G^-1/2 X_i G^-1/2)^(s / sigma) B^1/2 with a numpy Karcher mean G."""
    x = _batch(0)
    rng = np.random.default_rng(5)
    bias, s, eps = ref.random_spd(rng, N), 0.8, 1e-5
    g = ref.aim_mean(x)
    var = np.mean([ref.aim_dist(g, xi) ** 2 for xi in x])
    ig, rb = ref.invsqrtm(g), ref.sqrtm(bias)
    want = np.stack([rb @ ref.powm(ig @ xi @ ig, s / np.sqrt(var + eps)) @ rb for xi in x])
    y, state = riemannian_batch_norm(
        x,
        rbn_init(N, jnp.float64),
        M.SPDAffineInvariant(N),
        bias=bias,
        scale=s,
        eps=eps,
        training=True,
        mean_iter=30,
    )
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-9)
    # running statistics: geodesic from I toward G by the momentum, and the variance EMA
    np.testing.assert_allclose(state.running_mean, ref.powm(g, 0.1), rtol=0, atol=1e-9)
    np.testing.assert_allclose(state.running_var, 0.9 + 0.1 * var, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", list(_metrics()))
def test_output_statistics(name, x64):
    """The output batch has Frechet mean = bias and dispersion = scale^2 (up to eps)."""
    metric = _metrics()[name]
    x = _batch(1)
    bias = metric.exp(metric.base_point(jnp.float64), 0.3 * jnp.asarray(np.diag([1.0, -1.0, 0.5])))
    scale = 0.4  # keeps exp at the base point inside the injectivity domain for the BW metrics
    y, _ = riemannian_batch_norm(
        x,
        rbn_init(N, jnp.float64),
        metric,
        bias=bias,
        scale=scale,
        eps=0.0,
        training=True,
        mean_iter=40,
    )
    res = metric.mean(y, max_iter=60)
    assert bool(res.converged)
    np.testing.assert_allclose(metric.dist(res.mean, bias), 0.0, rtol=0, atol=1e-8)
    var = np.mean(jax.vmap(lambda p: metric.dist(res.mean, p) ** 2)(y))
    np.testing.assert_allclose(var, scale**2, rtol=1e-8)


def test_eval_mode_uses_running_statistics(x64):
    metric = M.SPDAffineInvariant(N)
    x = _batch(2)
    rng = np.random.default_rng(3)
    run = ref.random_spd(rng, N)
    state = rbn_init(N, jnp.float64)._replace(
        running_mean=jnp.asarray(run), running_var=jnp.asarray(2.0)
    )
    y, new = riemannian_batch_norm(x, state, metric, training=False, eps=0.0)
    ir = ref.invsqrtm(run)
    want = np.stack([ref.powm(ir @ xi @ ir, 1 / np.sqrt(2.0)) for xi in x])
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-10)
    assert new is state


def test_batch_stats_match_numpy_karcher_mean(x64):
    x = _batch(4)
    mean, var, res = batch_frechet_stats(jnp.asarray(x), M.SPDAffineInvariant(N), mean_iter=30)
    g = ref.aim_mean(x)
    np.testing.assert_allclose(mean, g, rtol=0, atol=1e-10)
    np.testing.assert_allclose(var, np.mean([ref.aim_dist(g, xi) ** 2 for xi in x]), rtol=1e-10)
    assert bool(res.converged)


@pytest.mark.parametrize("name", ["aim", "bw", pytest.param("pow_gbw", marks=pytest.mark.slow)])
def test_grads_in_input_and_bias(name, x64):
    metric = _metrics()[name]
    x = jnp.asarray(_batch(6, k=3))
    bias = jnp.eye(N)  # repeated eigenvalues: the initial bias of the layer

    def f(x, bias, scale):
        y, _ = riemannian_batch_norm(
            x, rbn_init(N, jnp.float64), metric, bias=bias, scale=scale, training=True, mean_iter=4
        )
        return jnp.sum(y[:, 0, :] ** 2) + jnp.sum(y[1] * y[2])

    check_grads(
        jax.jit(f), (x, bias, jnp.asarray(0.4)), order=1, modes=("rev",), atol=1e-5, rtol=1e-5
    )


def test_grads_of_gbw_metric_matrix_at_identity(x64):
    """GBWBN learns M: derivatives through the layer at M = I (repeated eigenvalues)."""
    x = jnp.asarray(_batch(7, k=3))

    def f(m):
        metric = M.SPDGeneralizedBuresWasserstein(m)
        y, _ = riemannian_batch_norm(
            x, rbn_init(N, jnp.float64), metric, scale=0.4, training=True, mean_iter=3
        )
        return jnp.sum(y[:, :, 0] ** 2)

    check_grads(jax.jit(f), (jnp.eye(N),), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_grads_of_power_deformed_gbw_parameters(x64):
    """GBWBN with the power deformation: derivatives in M (at I) and theta together."""
    x = jnp.asarray(_batch(7, k=3))

    def f(m, theta):
        metric = M.PowerDeformed(M.SPDGeneralizedBuresWasserstein(m), theta)
        y, _ = riemannian_batch_norm(
            x, rbn_init(N, jnp.float64), metric, scale=0.4, training=True, mean_iter=3
        )
        return jnp.sum(y[:, :, 0] ** 2)

    check_grads(
        jax.jit(f), (jnp.eye(N), jnp.asarray(0.5)), order=1, modes=("rev",), atol=1e-5, rtol=1e-5
    )


def test_second_order_grads_aim(x64):
    x = jnp.asarray(_batch(8, k=3))

    def f(bias):
        y, _ = riemannian_batch_norm(
            x,
            rbn_init(N, jnp.float64),
            M.SPDAffineInvariant(N),
            bias=bias,
            training=True,
            mean_iter=4,
        )
        return jnp.sum(y**2)

    check_grads(jax.jit(f), (jnp.eye(N),), order=2, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_validation_errors():
    metric = M.SPDAffineInvariant(2)
    x = jnp.stack([jnp.eye(2)] * 2)
    with pytest.raises(ValueError, match="`x`"):
        riemannian_batch_norm(jnp.eye(2), rbn_init(2), metric, training=True)
    with pytest.raises(TypeError, match="`training`"):
        riemannian_batch_norm(x, rbn_init(2), metric, training=1)
    with pytest.raises(ValueError, match="`momentum`"):
        riemannian_batch_norm(x, rbn_init(2), metric, training=True, momentum=2.0)
    with pytest.raises(TypeError, match="`metric`"):
        riemannian_batch_norm(x, rbn_init(2), M.Sphere(2), training=True)
    with pytest.raises(ValueError, match="`state`"):
        riemannian_batch_norm(x, rbn_init(3), metric, training=True)
