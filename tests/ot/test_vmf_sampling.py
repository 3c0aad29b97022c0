"""Tests for the von Mises-Fisher sampler (geomjax.ot._vmf_sampling).

Oracles: the mean resultant length A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) and the second
moment E[x x^T] = (A/kappa) I + (1 - d A/kappa) mu mu^T from scipy.special.ive (closed forms),
and the closed-form derivative of E[(v^T x)^2] in mu for the reparameterized gradients.
Statistical checks use z-scores against the empirical standard error (|z| < 3 per scalar,
a little more where many entries are tested at once); keys are fixed so runs are deterministic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.ot._vmf_sampling import sample_von_mises_fisher
from geomjax.testing import rounding_tolerance

scipy_special = pytest.importorskip("scipy.special")
scipy_stats = pytest.importorskip("scipy.stats")


def _A(d: int, kappa: float) -> float:
    """Mean resultant length A_d(kappa) (scaled Bessel functions: no overflow at large kappa)."""
    return float(scipy_special.ive(d / 2, kappa) / scipy_special.ive(d / 2 - 1, kappa))


def _z(samples: np.ndarray, expected) -> np.ndarray:
    """z-scores of the sample means (over axis 0) against ``expected``."""
    samples = np.asarray(samples, np.float64)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    diff = samples.mean(axis=0) - expected
    return np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf))


def _random_unit(seed: int, d: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize(
    "d,kappa",
    [(1, 0.7), (2, 0.5), (3, 1e4), (10, 100.0), (300, 50.0)],
)
def test_mean_resultant_length(d, kappa):
    mu = jnp.asarray(_random_unit(d, d), jnp.float32)
    x = sample_von_mises_fisher(jax.random.key(d), mu, kappa, (20000,))
    assert x.shape == (20000, d) and x.dtype == jnp.float32
    w = np.asarray(x, np.float64) @ np.asarray(mu, np.float64)
    assert abs(_z(w, _A(d, kappa))) < 3.0
    if kappa >= 1e3:
        # the concentrated regime: compare 1 - w with 1 - A (relative accuracy of the tail)
        one_minus = 1.0 - w
        assert abs(_z(one_minus, 1.0 - _A(d, kappa))) < 3.0


@pytest.mark.parametrize("kappa", [1e-3, 1.0, 1e4, 1e8])
def test_unit_norm(dtype, kappa):
    mu = jnp.asarray([0.3, -1.2, 0.5, 2.0], dtype)
    x = sample_von_mises_fisher(jax.random.key(1), mu, kappa, (500,))
    assert x.dtype == dtype
    tol = rounding_tolerance(dtype, n_ops=4, growth="linear")  # a normalized 4-vector
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(x, np.float64), axis=-1), 1.0, rtol=0, atol=tol
    )
    if kappa == 1e8:
        # point mass limit: every sample within a few sqrt(d / kappa) of mu / |mu|
        m = np.asarray(mu, np.float64) / np.linalg.norm(np.asarray(mu, np.float64))
        assert np.max(np.linalg.norm(np.asarray(x, np.float64) - m, axis=-1)) < 1e-3


def test_moments_rotation_equivariant(x64):
    """vMF(Q mu) has the closed-form first and second moments of a rotated vMF(mu), for random
    rotations Q, including mu = +-e_1 (the special points of the Householder frame)."""
    d, kappa, n = 4, 3.0, 40000
    A = _A(d, kappa)
    rng = np.random.default_rng(0)
    mus = [np.eye(d)[0], -np.eye(d)[0]]
    for _ in range(2):
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        mus.append(q @ _random_unit(7, d))
    for i, mu in enumerate(mus):
        x = sample_von_mises_fisher(jax.random.key(10 + i), jnp.asarray(mu), kappa, (n,))
        x = np.asarray(x)
        assert np.max(np.abs(_z(x, A * mu))) < 3.5
        second = np.einsum("ni,nj->nij", x, x).reshape(n, d * d)
        expected = (A / kappa) * np.eye(d) + (1 - d * A / kappa) * np.outer(mu, mu)
        assert np.max(np.abs(_z(second, expected.reshape(-1)))) < 4.0


def test_small_kappa_is_uniform():
    """d = 3: w = mu^T x is uniform on [-1, 1] for the uniform distribution (Archimedes)."""
    mu = jnp.array([0.0, 1.0, 0.0])
    x = np.asarray(sample_von_mises_fisher(jax.random.key(3), mu, 1e-8, (5000,)), np.float64)
    assert scipy_stats.kstest(x @ np.asarray(mu), scipy_stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert np.max(np.abs(_z(x, 0.0))) < 3.5


@pytest.mark.parametrize("which", ["e1", "minus_e1", "generic"])
def test_reparameterized_gradient_matches_closed_form(x64, which):
    """d/dmu E[(v^T x)^2] = 2 (1 - d A/kappa) (mu.v) P_mu v for unit mu: per-sample pathwise
    derivatives (forward mode, one column per input coordinate) average to it."""
    d, kappa, n = 3, 2.0, 20000
    mu = {"e1": np.eye(d)[0], "minus_e1": -np.eye(d)[0], "generic": _random_unit(4, d)}[which]
    v = np.array([0.8, -0.5, 0.3])

    def per_sample(m):
        return (sample_von_mises_fisher(jax.random.key(5), m, kappa, (n,)) @ jnp.asarray(v)) ** 2

    jac = np.asarray(jax.jacfwd(per_sample)(jnp.asarray(mu)))  # (n, d)
    A = _A(d, kappa)
    expected = 2 * (1 - d * A / kappa) * (mu @ v) * (v - (mu @ v) * mu)
    assert np.all(np.isfinite(jac))
    # tangent (mu is normalized inside), up to float64 round-off of entries of size ~kappa
    np.testing.assert_allclose(jac @ mu, 0.0, rtol=0, atol=1e-10)
    assert np.max(np.abs(_z(jac, expected))) < 3.5


def test_gradient_finite_at_special_points():
    def f(m):
        return jnp.sum(sample_von_mises_fisher(jax.random.key(0), m, 5.0, (16,))[:, 0] ** 3)

    mus = jnp.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    g, h = jax.jit(jax.vmap(lambda m: (jax.grad(f)(m), jax.hessian(f)(m))))(mus)
    assert bool(jnp.all(jnp.isfinite(g))) and bool(jnp.all(jnp.isfinite(h)))
    # a tiny (but nonzero) mu is a valid direction: no underflow in the normalization (its
    # derivatives are genuinely of size 1/|mu| and 1/|mu|^2, so only the value is checked)
    x = sample_von_mises_fisher(jax.random.key(0), jnp.array([0.0, 0.0, 1e-30]), 1e4, (8,))
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, rtol=0, atol=1e-6)  # float32: 8 eps
    assert float(jnp.min(x[:, 2])) > 0.99


def test_jit_vmap_and_shapes():
    mus = jax.random.normal(jax.random.key(0), (3, 4))
    keys = jax.random.split(jax.random.key(1), 3)
    batched = jax.jit(jax.vmap(lambda k, m: sample_von_mises_fisher(k, m, 2.0, (2, 5))))(keys, mus)
    assert batched.shape == (3, 2, 5, 4)
    for i in range(3):
        np.testing.assert_allclose(
            batched[i], sample_von_mises_fisher(keys[i], mus[i], 2.0, (2, 5)), rtol=1e-5, atol=1e-6
        )  # the same float32 draws batched or not: the float32 default
    assert sample_von_mises_fisher(keys[0], mus[0], 2.0).shape == (4,)
    # traced kappa
    out = jax.jit(lambda k: sample_von_mises_fisher(keys[0], mus[0], k, (3,)))(jnp.float32(4.0))
    assert out.shape == (3, 4)


def test_validation_errors():
    k = jax.random.key(0)
    mu = jnp.array([1.0, 0.0])
    with pytest.raises(ValueError, match="kappa"):
        sample_von_mises_fisher(k, mu, 0.0)
    with pytest.raises(ValueError, match="kappa"):
        sample_von_mises_fisher(k, mu, -1.0)
    with pytest.raises(ValueError, match="kappa"):
        sample_von_mises_fisher(k, mu, jnp.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="kappa"):
        sample_von_mises_fisher(k, mu, float("inf"))
    with pytest.raises(ValueError, match="mu"):
        sample_von_mises_fisher(k, jnp.zeros(3), 1.0)
    with pytest.raises(ValueError, match="mu"):
        sample_von_mises_fisher(k, jnp.ones((2, 3)), 1.0)
    with pytest.raises(TypeError, match="mu"):
        sample_von_mises_fisher(k, jnp.array([1, 0]), 1.0)
    with pytest.raises(ValueError, match="shape"):
        sample_von_mises_fisher(k, mu, 1.0, (-1,))
