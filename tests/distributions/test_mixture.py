"""vMF mixture EM on samples of a known mixture: recovers weights, directions and kappas within
their sampling error; the sharded version is in test_mixture_sharding.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.distributions import VonMisesFisher, fit_vmf_mixture, vmf_mixture_log_responsibilities

MUS = np.eye(6)[:3]
KAPPAS = (40.0, 120.0, 400.0)
COUNTS = (1500, 1000, 500)


def mixture_samples(key, dtype=jnp.float64):
    keys = jax.random.split(key, 3)
    parts = [
        VonMisesFisher(jnp.asarray(m, dtype), jnp.asarray(k, dtype)).sample(kk, (c,))
        for m, k, c, kk in zip(MUS, KAPPAS, COUNTS, keys)
    ]
    return jnp.concatenate(parts)


def test_mixture_recovers_components(key, x64):
    x = mixture_samples(key)
    fit = fit_vmf_mixture(
        jax.random.key(1), x, 3, init_mu=jnp.asarray(MUS + 0.3) / np.linalg.norm(MUS[0] + 0.3)
    )
    assert bool(fit.converged) and int(fit.n_iters) < 200
    order = np.argmax(np.asarray(fit.mu) @ MUS.T, axis=0)  # component matched to each truth
    assert sorted(order.tolist()) == [0, 1, 2]
    for j, (k, c) in enumerate(zip(KAPPAS, COUNTS)):
        i = order[j]
        assert float(fit.mu[i] @ MUS[j]) > 0.99
        # sd(kappa_hat)/kappa ~ 1/sqrt(n (d-1)/2) for kappa >> d: 4 sd < 0.1 for n >= 500.
        assert abs(float(fit.kappa[i]) / k - 1) < 4 / np.sqrt(c * 2.5)
        p = c / sum(COUNTS)
        assert abs(float(fit.weights[i]) - p) < 4 * np.sqrt(p * (1 - p) / sum(COUNTS))
    resp = np.exp(np.asarray(vmf_mixture_log_responsibilities(fit, x)))
    np.testing.assert_allclose(resp, np.asarray(fit.responsibilities), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(resp.sum(-1), 1.0, rtol=1e-12)


def test_mixture_random_init_and_errors(key):
    x = mixture_samples(key, jnp.float32)
    fit = fit_vmf_mixture(jax.random.key(3), x, 3)
    assert np.all(np.isfinite(np.asarray(fit.kappa)))
    assert float(fit.log_likelihood) > 0  # concentrated components: density >> 1/|S^5|
    with pytest.raises(ValueError, match="`x`"):
        fit_vmf_mixture(key, x[:2], 3)
    with pytest.raises(ValueError, match="`init_mu`"):
        fit_vmf_mixture(key, x, 3, init_mu=jnp.ones((2, 6)))
