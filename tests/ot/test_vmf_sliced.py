"""Tests for vMF-sliced Wasserstein and v-DSW (geomjax.ot._vmf_sliced).

Oracles:
- a translation y = x + v projects to translated 1-D measures, so W_2^2 along theta is
  (theta.v)^2 exactly and E_vMF(m, kappa)[(theta.v)^2] = (A/kappa)|v|^2 + (1 - d A/kappa)(m.v)^2
  in closed form (A = A_d(kappa) from scipy.special.ive); its maximum over m is at m = v/|v|;
- the 1-D distance along one direction (dense numpy sorted differences; scipy's weighted
  wasserstein_distance for p = 1) for kappa -> inf;
- a brute-force maximum over a fine grid of directions in d = 2 (max-sliced limit of v-DSW);
- the plain sliced Wasserstein estimate (uniform directions) for kappa -> 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.ot._sliced import sliced_wasserstein_with_error
from geomjax.ot._vmf_sampling import sample_von_mises_fisher
from geomjax.ot._vmf_sliced import distributional_sliced_wasserstein, vmf_sliced_wasserstein
from geomjax.testing import rounding_tolerance

scipy_special = pytest.importorskip("scipy.special")
scipy_stats = pytest.importorskip("scipy.stats")


def _A(d, kappa):
    return float(scipy_special.ive(d / 2, kappa) / scipy_special.ive(d / 2 - 1, kappa))


def _translation_expectation(m, v, kappa):
    d = v.shape[0]
    A = _A(d, kappa)
    m = m / np.linalg.norm(m)
    return (A / kappa) * v @ v + (1 - d * A / kappa) * (m @ v) ** 2


def _w22_along(x, y, theta):
    """W_2^2 of the projections of two uniform clouds of equal size (sorted differences)."""
    return np.mean((np.sort(x @ theta) - np.sort(y @ theta)) ** 2)


@pytest.fixture
def clouds():
    kx, ky = jax.random.split(jax.random.key(42))
    x = np.asarray(jax.random.normal(kx, (40, 3)), np.float64)
    y = np.asarray(jax.random.normal(ky, (40, 3)), np.float64) * np.array([2.0, 0.5, 1.0]) + 0.3
    return x, y


@pytest.mark.parametrize("kappa", [1e-3, 1.0, 30.0])
def test_translation_closed_form(x64, kappa):
    x = np.asarray(jax.random.normal(jax.random.key(0), (30, 3)))
    v = np.array([1.0, -2.0, 0.5])
    loc = np.array([0.3, 0.4, -0.2])
    L = 4000
    key = jax.random.key(7)
    val = vmf_sliced_wasserstein(key, x, x + v, location=loc, kappa=kappa, n_projections=L)
    # The same directions the estimator drew: its value is their exact average ...
    th = np.asarray(sample_von_mises_fisher(key, jnp.asarray(loc), kappa, (L,)))
    per = (th @ v) ** 2
    np.testing.assert_allclose(float(val) ** 2, per.mean(), rtol=1e-10)  # float64 default
    # ... and that average estimates the closed-form expectation (3 standard errors).
    se = per.std(ddof=1) / np.sqrt(L)
    assert abs(per.mean() - _translation_expectation(loc, v, kappa)) < 3 * se


def test_large_kappa_is_sliced_along_location(x64, clouds):
    x, y = clouds
    loc = np.array([0.6, -0.8, 0.0])
    val = vmf_sliced_wasserstein(jax.random.key(1), x, y, location=loc, kappa=1e7, n_projections=16)
    ref = np.sqrt(_w22_along(x, y, loc))
    # kappa = 1e7: directions within ~1/sqrt(kappa) = 3e-4 of loc, W moves to first order
    np.testing.assert_allclose(float(val), ref, rtol=1e-3)


def test_large_kappa_weighted_p1(x64, clouds):
    x, y = clouds
    rng = np.random.default_rng(0)
    a = rng.random(40)
    a /= a.sum()
    b = rng.random(40)
    b /= b.sum()
    loc = np.array([0.0, 0.0, 1.0])
    val = vmf_sliced_wasserstein(
        jax.random.key(2), x, y, a, b, location=loc, kappa=1e7, n_projections=16, p=1
    )
    ref = scipy_stats.wasserstein_distance(x @ loc, y @ loc, a, b)
    np.testing.assert_allclose(float(val), ref, rtol=1e-3)  # as above: 1/sqrt(kappa) spread


def test_small_kappa_matches_sliced(x64, clouds):
    """kappa -> 0: the directions are uniform, so v-SW^2 and SW^2 estimate the same number."""
    x, y = clouds
    L = 4000
    th = np.asarray(sample_von_mises_fisher(jax.random.key(3), jnp.array([1.0, 0, 0]), 1e-8, (L,)))
    per = np.array([_w22_along(x, y, t) for t in th])
    val = vmf_sliced_wasserstein(
        jax.random.key(3), x, y, location=np.array([1.0, 0, 0]), kappa=1e-8, n_projections=L
    )
    np.testing.assert_allclose(float(val) ** 2, per.mean(), rtol=1e-10)  # float64 default
    ref = sliced_wasserstein_with_error(jax.random.key(4), x, y, n_projections=L)
    se = np.hypot(per.std(ddof=1) / np.sqrt(L), float(ref.std_error))
    assert abs(per.mean() - float(ref.pp_value)) < 3 * se


def test_symmetric(clouds):
    x, y = (jnp.asarray(c, jnp.float32) for c in clouds)
    a = jnp.full((40,), 1 / 40, jnp.float32)
    b = jnp.linspace(1.0, 2.0, 40, dtype=jnp.float32)
    b = b / jnp.sum(b)
    loc = jnp.array([1.0, 1.0, 0.0])
    for p in (2, 3):
        kw = dict(location=loc, kappa=5.0, n_projections=64, p=p)
        v_xy = vmf_sliced_wasserstein(jax.random.key(0), x, y, a, b, **kw)
        v_yx = vmf_sliced_wasserstein(jax.random.key(0), y, x, b, a, **kw)
        # the same float32 sums over the merged grid (80 terms) with the roles swapped
        np.testing.assert_allclose(v_xy, v_yx, rtol=rounding_tolerance(jnp.float32, n_ops=80))


def test_zero_at_equal_inputs_with_finite_gradients(clouds):
    x = jnp.asarray(clouds[0], jnp.float32)
    loc = jnp.array([0.0, 1.0, 0.0])

    def f(x1, x2, m):
        return vmf_sliced_wasserstein(
            jax.random.key(0), x1, x2, location=m, kappa=3.0, n_projections=32
        )

    assert float(f(x, x, loc)) == 0.0
    grads = jax.grad(f, argnums=(0, 1, 2))(x, x, loc)
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))


def test_location_gradient_tangent_and_pathwise(x64, clouds):
    """The location gradient is finite, tangent to the sphere at a unit location, and equals
    the pathwise derivative of the average over the reparameterized directions (computed here
    from the sampler and dense numpy-style projections, not through the estimator)."""
    x, y = clouds
    for loc in (np.array([1.0, 0.0, 0.0]), np.array([0.48, -0.6, 0.64])):

        def f(m):
            key = jax.random.key(9)
            return vmf_sliced_wasserstein(key, x, y, location=m, kappa=4.0, n_projections=64) ** 2

        def ref(m):
            th = sample_von_mises_fisher(jax.random.key(9), m, 4.0, (64,))
            px, py = jnp.sort(th @ x.T, axis=1), jnp.sort(th @ y.T, axis=1)
            return jnp.mean((px - py) ** 2)

        g = jax.grad(f)(jnp.asarray(loc))
        assert bool(jnp.all(jnp.isfinite(g)))
        # float64: tangent up to round-off of O(1) entries; two routes through the same sampler
        np.testing.assert_allclose(float(g @ loc), 0.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(g, jax.grad(ref)(jnp.asarray(loc)), rtol=1e-9, atol=1e-12)


def test_jit_vmap():
    x = jax.random.normal(jax.random.key(0), (20, 2))
    y = x + 1.0
    keys = jax.random.split(jax.random.key(1), 3)

    def f(k):
        loc = jnp.array([1.0, 0.0])
        return vmf_sliced_wasserstein(k, x, y, location=loc, kappa=2.0, n_projections=32)

    batched = jax.jit(jax.vmap(f))(keys)
    # the same float32 computation batched or looped: the float32 default
    np.testing.assert_allclose(batched, jnp.stack([f(k) for k in keys]), rtol=1e-5)


def test_validation_errors():
    x = jnp.zeros((5, 3))
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="location"):
        vmf_sliced_wasserstein(k, x, x, location=jnp.ones(2), kappa=1.0)
    with pytest.raises(ValueError, match="location"):
        vmf_sliced_wasserstein(k, x, x, location=jnp.zeros(3), kappa=1.0)
    with pytest.raises(ValueError, match="kappa"):
        vmf_sliced_wasserstein(k, x, x, location=jnp.ones(3), kappa=0.0)
    with pytest.raises(ValueError, match="x"):
        vmf_sliced_wasserstein(k, x, jnp.zeros((5, 2)), location=jnp.ones(3), kappa=1.0)
    with pytest.raises(ValueError, match="n_projections"):
        vmf_sliced_wasserstein(k, x, x, location=jnp.ones(3), kappa=1.0, n_projections=0)
    with pytest.raises(ValueError, match="`a`"):
        vmf_sliced_wasserstein(k, x, x, -jnp.ones(5) / 5, location=jnp.ones(3), kappa=1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        distributional_sliced_wasserstein(k, x, x, kappa=1.0, learning_rate=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        distributional_sliced_wasserstein(k, x, x, kappa=1.0, max_iter=0)
    with pytest.raises(ValueError, match="init"):
        distributional_sliced_wasserstein(k, x, x, kappa=1.0, init=jnp.ones(4))


# ---------------------------------------------------------------- v-DSW


@pytest.mark.parametrize("kappa", [3.0, 1e4])
def test_dsw_translation(x64, kappa):
    """max_m E[(theta.v)^2] = (A/kappa + 1 - d A/kappa)|v|^2 at m = +-v/|v|."""
    x = np.asarray(jax.random.normal(jax.random.key(0), (30, 3)))
    v = np.array([0.4, -2.0, 1.0])
    L = 1024
    res = distributional_sliced_wasserstein(
        jax.random.key(5), x, x + v, kappa=kappa, n_projections=L
    )
    assert bool(res.converged) and int(res.n_iters) >= 1
    v_hat = v / np.linalg.norm(v)
    expected = _translation_expectation(v_hat, v, kappa)
    # Monte-Carlo tolerance: the standard error of the L-sample average at the optimum
    th = np.asarray(sample_von_mises_fisher(jax.random.key(11), jnp.asarray(v_hat), kappa, (L,)))
    se = ((th @ v) ** 2).std(ddof=1) / np.sqrt(L)
    assert abs(float(res.value) ** 2 - expected) < 4 * se + 1e-12
    align_tol = 0.05 if kappa < 100 else 1e-3
    assert abs(abs(float(res.location @ v_hat)) - 1.0) < align_tol
    np.testing.assert_allclose(
        np.linalg.norm(res.location), 1.0, rtol=0, atol=1e-12
    )  # f64 normalized


def test_dsw_large_kappa_is_max_sliced_2d(x64):
    """d = 2: v-DSW with kappa = 1e5 equals the max over a fine grid of directions."""
    kx, ky = jax.random.split(jax.random.key(3))
    x = np.asarray(jax.random.normal(kx, (50, 2)))
    y = np.asarray(jax.random.normal(ky, (50, 2))) @ np.array([[2.0, 0.7], [0.0, 0.5]])
    angles = np.linspace(0.0, np.pi, 20001)
    brute = max(_w22_along(x, y, np.array([np.cos(t), np.sin(t)])) for t in angles)
    res = distributional_sliced_wasserstein(
        jax.random.key(4), x, y, kappa=1e5, n_projections=64, max_iter=200
    )
    # kappa = 1e5: directions spread ~1/sqrt(kappa) = 3e-3 around the maximizer, where W^2
    # falls off to second order; plus the Monte-Carlo average over 64 directions
    np.testing.assert_allclose(float(res.value) ** 2, brute, rtol=2e-3)


def test_dsw_monotone_in_iterations(clouds):
    x, y = (jnp.asarray(c, jnp.float32) for c in clouds)
    kw = dict(kappa=10.0, n_projections=64, init=jnp.array([0.0, 0.0, 1.0]))
    vals = [
        float(distributional_sliced_wasserstein(jax.random.key(0), x, y, max_iter=k, **kw).value)
        for k in (1, 3, 30)
    ]
    # monotone up to the float32 round-off of the objective (64 directions x 80-term sums)
    slack = 1 + rounding_tolerance(jnp.float32, n_ops=64 * 80)
    assert vals[0] <= vals[1] * slack and vals[1] <= vals[2] * slack
    # the ascent gains over the initial location (objective along e_3 is small here)
    v0 = vmf_sliced_wasserstein(
        jax.random.key(0), x, y, location=kw["init"], kappa=10.0, n_projections=64
    )
    assert vals[2] > float(v0)


def test_dsw_zero_and_gradients(clouds):
    x = jnp.asarray(clouds[0], jnp.float32)
    y = jnp.asarray(clouds[1], jnp.float32)

    def f(x1, x2):
        key = jax.random.key(0)
        return distributional_sliced_wasserstein(key, x1, x2, kappa=5.0, n_projections=32).value

    res = distributional_sliced_wasserstein(jax.random.key(0), x, x, kappa=5.0, n_projections=32)
    assert float(res.value) == 0.0 and bool(res.converged)
    for args in ((x, x), (x, y)):
        g = jax.grad(f, argnums=(0, 1))(*args)
        assert all(bool(jnp.all(jnp.isfinite(t))) for t in g)
    assert float(jnp.linalg.norm(jax.grad(f)(x, y))) > 0


def test_dsw_envelope_gradient(x64, clouds):
    """The gradient of the value in x (taken at the returned location, held fixed) equals the
    derivative of the maximized value itself, which re-optimizes the location (checked by
    central finite differences: the location moves with x only at second order)."""
    # Near a translation the sorted couplings do not change, so F is smooth at its maximum
    # (at a kink of the piecewise-smooth F only one-sided derivatives exist).
    x = clouds[0]
    y = x + np.array([0.5, -1.0, 0.8])
    kw = dict(kappa=8.0, n_projections=64, init=np.array([1.0, 0.0, 0.0]), tol=1e-10, max_iter=500)

    def val(x1):
        return distributional_sliced_wasserstein(jax.random.key(0), x1, y, **kw).value

    res = distributional_sliced_wasserstein(jax.random.key(0), x, y, **kw)
    assert bool(res.converged)
    g = jax.grad(val)(jnp.asarray(x))
    u = np.random.default_rng(0).normal(size=x.shape)
    h = 1e-5
    fd = (float(val(x + h * u)) - float(val(x - h * u))) / (2 * h)
    # float64 central differences, h = 1e-5: truncation ~h^2, round-off (and the location's
    # tol = 1e-10) / h ~ 1e-7 relative at most
    np.testing.assert_allclose(float(jnp.sum(g * u)), fd, rtol=1e-5)


def test_dsw_jit_vmap(clouds):
    x, y = (jnp.asarray(c, jnp.float32) for c in clouds)
    keys = jax.random.split(jax.random.key(1), 2)

    def f(k):
        r = distributional_sliced_wasserstein(k, x, y, kappa=5.0, n_projections=32)
        return r.value, r.location, r.n_iters

    vals, locs, iters = jax.jit(jax.vmap(f))(keys)
    for i, k in enumerate(keys):
        v, loc, n = f(k)
        # float32 rounding differs between the batched and the single trace, so the number
        # of ascent steps may differ; the maximized value agrees
        np.testing.assert_allclose(vals[i], v, rtol=1e-4)
        assert abs(float(locs[i] @ loc)) > 0.999
