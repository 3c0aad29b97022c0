"""covariance / ledoit_wolf_shrinkage / delay_embedding / augmented_covariance against float64
numpy formulas, scikit-learn and pyriemann (optional oracles), and the moabb pipeline of the
augmented-covariance paper (re-implemented here in numpy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.spdnet._covariance import (
    augmented_covariance,
    covariance,
    delay_embedding,
    ledoit_wolf_shrinkage,
)
from geomjax.testing import assert_allclose_dtype, check_grads_finite, rounding_tolerance


def _signal(seed=0, channels=4, times=40):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(channels, channels))
    # Heavy-ish tails and unequal scales so the Ledoit-Wolf coefficient is far from 0 and 1.
    return mix @ rng.standard_t(5, size=(channels, times)) + rng.normal(size=(channels, 1))


def _np_lw(x):
    """Ledoit-Wolf in float64 from its definition: beta = sum_t ||x_t x_t^T - S||_F^2 / (p T^2)."""
    x = np.asarray(x, np.float64)
    p, t = x.shape
    xc = x - x.mean(axis=1, keepdims=True)
    s = xc @ xc.T / t
    mu = np.trace(s) / p
    delta = np.sum((s - mu * np.eye(p)) ** 2) / p
    beta = sum(np.sum((np.outer(xc[:, i], xc[:, i]) - s) ** 2) for i in range(t)) / (p * t * t)
    shrink = 0.0 if delta == 0 else min(beta, delta) / delta
    return shrink, (1 - shrink) * s + shrink * mu * np.eye(p)


def test_sample_covariance_matches_numpy(dtype):
    x = _signal()
    ours = covariance(jnp.asarray(x, dtype))
    assert ours.dtype == dtype
    # sums over 40 samples; centring cancels at most ~2x (offsets ~1, spread ~2)
    tol = rounding_tolerance(dtype, n_ops=40, cond=2)
    assert_allclose_dtype(ours, np.cov(x, bias=True), rtol=tol)
    centered = covariance(jnp.asarray(x, dtype), assume_centered=True)
    assert_allclose_dtype(centered, x @ x.T / x.shape[1], rtol=tol)


def test_ledoit_wolf_matches_float64_formula(dtype):
    x = _signal(1)
    shrink, ref = _np_lw(x)
    assert 0.05 < shrink < 0.95
    # beta sums 40 squared Frobenius deviations of 4x4 outer products (16 entries each) from
    # S, which cancel against it (~4x)
    tol = rounding_tolerance(dtype, n_ops=40 * 16, cond=4)
    assert_allclose_dtype(
        ledoit_wolf_shrinkage(jnp.asarray(x, dtype)), np.asarray(shrink), rtol=tol
    )
    assert_allclose_dtype(covariance(jnp.asarray(x, dtype), shrinkage="ledoit_wolf"), ref, rtol=tol)


def test_ledoit_wolf_matches_sklearn_and_pyriemann(x64):
    sk = pytest.importorskip("sklearn.covariance")
    xs = np.stack([_signal(s, channels=5, times=30) for s in range(3)])
    for x in xs:
        ref_cov, ref_shrink = sk.ledoit_wolf(x.T)
        np.testing.assert_allclose(float(ledoit_wolf_shrinkage(x)), ref_shrink, rtol=1e-10)
        np.testing.assert_allclose(
            covariance(x, shrinkage="ledoit_wolf"), ref_cov, rtol=1e-10, atol=1e-12
        )
        centered = sk.ledoit_wolf(x.T, assume_centered=True)[0]
        np.testing.assert_allclose(
            covariance(x, shrinkage="ledoit_wolf", assume_centered=True),
            centered,
            rtol=1e-10,
            atol=1e-12,
        )
        shrunk = sk.shrunk_covariance(sk.empirical_covariance(x.T), shrinkage=0.3)
        np.testing.assert_allclose(covariance(x, shrinkage=0.3), shrunk, rtol=1e-10, atol=1e-12)
    try:
        from pyriemann.estimation import Covariances
    except ImportError:
        return
    ours = jax.vmap(lambda x: covariance(x, shrinkage="ledoit_wolf"))(xs)
    np.testing.assert_allclose(ours, Covariances("lwf").transform(xs), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        jax.vmap(covariance)(xs), Covariances("scm").transform(xs), rtol=1e-10, atol=1e-12
    )


def test_ledoit_wolf_degenerate_cases(x64):
    # S = I exactly (orthogonal rows of equal norm): delta = 0, shrinkage must be 0, not NaN.
    x = jnp.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    assert float(ledoit_wolf_shrinkage(x, assume_centered=True)) == 0.0
    np.testing.assert_allclose(
        covariance(x, shrinkage="ledoit_wolf", assume_centered=True), np.eye(2), atol=1e-15
    )
    check_grads_finite(
        jax.jit(
            lambda x: jnp.sum(covariance(x, shrinkage="ledoit_wolf", assume_centered=True) ** 2)
        ),
        (x,),
        hessian="hvp",
    )
    # One channel: sklearn returns the variance unshrunk.
    one = jnp.asarray(_signal(2)[:1])
    assert float(ledoit_wolf_shrinkage(one)) == 0.0
    np.testing.assert_allclose(
        covariance(one, shrinkage="ledoit_wolf"), [[np.var(np.asarray(one))]], rtol=1e-12
    )


def test_ledoit_wolf_gradients(x64):
    x = jnp.asarray(_signal(3, channels=3, times=12))
    weights = jnp.arange(9.0).reshape(3, 3)

    def loss(x, s):
        return jnp.sum(weights * covariance(x, shrinkage="ledoit_wolf")) + jnp.sum(
            covariance(x, shrinkage=s)
        )

    check_grads_finite(jax.jit(loss), (x, jnp.asarray(0.4)), order=2, hessian="hvp")
    check_grads(
        jax.jit(lambda x: jnp.sum(weights * covariance(x, shrinkage="ledoit_wolf"))),
        (x,),
        order=1,
        modes=("fwd", "rev"),
        atol=1e-6,
        rtol=1e-6,
    )
    check_grads(
        jax.jit(lambda s: jnp.sum(weights * covariance(x, shrinkage=s))),
        (jnp.asarray(0.4),),
        order=1,
        modes=("rev",),
    )


def test_vmap_and_jit_consistency():
    xs = jnp.asarray(np.stack([_signal(s) for s in range(3)]), jnp.float32)
    batched = jax.jit(jax.vmap(lambda x: covariance(x, shrinkage="ledoit_wolf")))(xs)
    for i in range(3):
        # the same float32 sums batched or not (as in the Ledoit-Wolf test)
        assert_allclose_dtype(
            batched[i],
            np.asarray(covariance(xs[i], shrinkage="ledoit_wolf")),
            rtol=rounding_tolerance(jnp.float32, n_ops=40 * 16, cond=4),
        )


def _np_embed(x, order, lag):
    t_out = x.shape[1] - (order - 1) * lag
    return np.concatenate([x[:, p * lag : p * lag + t_out] for p in range(order)], axis=0)


def _moabb_augmented(x, order, lag):
    """moabb.pipelines.features.AugmentedDataset.transform for one trial (order >= 2)."""
    blocks = [x[:, : -order * lag]] + [x[:, p * lag : -(order - p) * lag] for p in range(1, order)]
    return np.concatenate(blocks, axis=0)


def test_delay_embedding_and_augmented_covariance(dtype):
    x = _signal(4, channels=3, times=50)
    for order, lag in ((1, 3), (3, 1), (4, 2)):
        emb = delay_embedding(jnp.asarray(x, dtype), order=order, lag=lag)
        np.testing.assert_array_equal(np.asarray(emb), _np_embed(x, order, lag).astype(dtype))
        ours = augmented_covariance(jnp.asarray(x, dtype), order=order, lag=lag)
        assert ours.shape == (3 * order, 3 * order)
        ref = np.cov(_np_embed(x, order, lag), bias=True)  # sums over <= 50 samples, as above
        assert_allclose_dtype(ours, ref, rtol=rounding_tolerance(dtype, n_ops=50, cond=2))
    # order 1 is the plain covariance.
    np.testing.assert_array_equal(
        augmented_covariance(jnp.asarray(x, dtype), order=1, lag=5, shrinkage="ledoit_wolf"),
        covariance(jnp.asarray(x, dtype), shrinkage="ledoit_wolf"),
    )


def test_augmented_covariance_matches_paper_pipeline(x64):
    """moabb's AugmentedDataset + pyriemann Covariances('lwf') equals ours on x[:, :-lag]."""
    xs = np.stack([_signal(s, channels=3, times=60) for s in range(2)])
    order, lag = 3, 2
    moabb = np.stack([_moabb_augmented(x, order, lag) for x in xs])
    ours = np.stack(
        [
            augmented_covariance(x[:, :-lag], order=order, lag=lag, shrinkage="ledoit_wolf")
            for x in xs
        ]
    )
    ref = np.stack([_np_lw(m)[1] for m in moabb])
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    try:
        from pyriemann.estimation import Covariances
    except ImportError:
        return
    np.testing.assert_allclose(ours, Covariances("lwf").transform(moabb), rtol=1e-10, atol=1e-12)


def test_errors():
    x = jnp.ones((3, 10))
    with pytest.raises(ValueError, match="shrinkage"):
        covariance(x, shrinkage="oas")
    with pytest.raises(ValueError, match="shrinkage"):
        covariance(x, shrinkage=1.5)
    with pytest.raises(TypeError, match="shrinkage"):
        covariance(x, shrinkage=True)
    with pytest.raises(ValueError, match="`x`"):
        covariance(jnp.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="`x`"):
        covariance(jnp.ones((3, 10), jnp.int32))
    with pytest.raises(ValueError, match="order"):
        augmented_covariance(x, order=0, lag=1)
    with pytest.raises(ValueError, match="lag"):
        augmented_covariance(x, order=2, lag=1.5)
    with pytest.raises(ValueError, match="samples"):
        augmented_covariance(x, order=4, lag=4)
