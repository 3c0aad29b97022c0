"""Tests for the control-variate sliced Wasserstein estimator (geomjax.ot._sliced_cv)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.ot._sliced import projected_wpp, random_projections, sliced_wasserstein_with_error
from geomjax.ot._sliced_cv import control_variate_terms, sliced_wasserstein_cv
from geomjax.testing import check_grads_finite

N_SEEDS = 2000
L_SEEDS = 16


def _weights(rng, n):
    w = rng.random(n) + 0.1
    return w / w.sum()


def _dense_A(x, y, a, b, kind):
    """A with C(theta) = theta^T A theta, from numpy float64 weighted moments."""
    mx, my = a @ x, b @ y
    delta = mx - my
    A = np.outer(delta, delta)
    if kind == "upper":
        A = A + (x - mx).T @ np.diag(a) @ (x - mx) + (y - my).T @ np.diag(b) @ (y - my)
    return A


@pytest.mark.parametrize("kind", ["lower", "upper"])
def test_terms_vs_dense_formula(x64, key, kind):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(7, 4)) * 1.5 + 0.3
    a, b = _weights(rng, 9), _weights(rng, 7)
    th = random_projections(key, 20, 4, jnp.float64)
    xj, yj, aj, bj = map(jnp.asarray, (x, y, a, b))
    w, c, ec = control_variate_terms(xj, yj, aj, bj, th, kind, None, aj, bj)
    A = _dense_A(x, y, a, b, kind)
    th_np = np.asarray(th)
    # float64 quadratic forms / sums of <= 16 terms of O(1) values: 1e-12 = 4500 eps64
    np.testing.assert_allclose(c, np.einsum("li,ij,lj->l", th_np, A, th_np), rtol=1e-12)
    np.testing.assert_allclose(float(ec), np.trace(A) / 4, rtol=1e-12)
    np.testing.assert_allclose(w, projected_wpp(xj, yj, aj, bj, th, 2.0), rtol=1e-13)


@pytest.mark.parametrize("kind", ["lower", "upper"])
def test_expectation_exact_on_designs(x64, kind):
    """E[theta theta^T] = I/d holds exactly for {+-e_i} and for any orthonormal basis."""
    rng = np.random.default_rng(1)
    d = 5
    x, y = rng.normal(size=(8, d)), rng.standard_t(3, size=(6, d)) + 1.0
    a, b = _weights(rng, 8), _weights(rng, 6)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    for design in (np.concatenate([np.eye(d), -np.eye(d)]), q.T):
        xj, yj, aj, bj = map(jnp.asarray, (x, y, a, b))
        th = jnp.asarray(design)
        _, c, ec = control_variate_terms(xj, yj, aj, bj, th, kind, None, None, None)
        # exact designs in float64: round-off of 10-term means only (1e-12 = 4500 eps64)
        np.testing.assert_allclose(float(jnp.mean(c)), float(ec), rtol=1e-12)
        np.testing.assert_allclose(float(ec), np.trace(_dense_A(x, y, a, b, kind)) / d, rtol=1e-12)


@pytest.mark.parametrize("kind", ["lower", "upper"])
def test_expectation_monte_carlo_1e6(x64, kind):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)) * [1, 2, 3], rng.exponential(size=(6, 3))
    x, y = jnp.asarray(x), jnp.asarray(y)
    th = random_projections(jax.random.key(5), 10**6, 3, jnp.float64)
    u = jnp.full(6, 1 / 6)
    _, c, ec = control_variate_terms(x, y, u, u, th, kind, None, None, None)
    se = float(jnp.std(c)) / 1e3
    assert abs(float(jnp.mean(c)) - float(ec)) < 4 * se, (float(jnp.mean(c)), float(ec), se)


@pytest.mark.parametrize("coefficient", ["pooled", "leave_one_out"])
def test_vs_numpy_reference(x64, key, coefficient):
    """Whole estimator against numpy with POT's per-direction W_2^2 (same directions)."""
    ot = pytest.importorskip("ot")
    assert hasattr(ot, "sliced_wasserstein_distance"), "`ot` resolved to a non-POT package"
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(12, 3)) * 0.7 + 0.5
    a, b = _weights(rng, 10), _weights(rng, 12)
    th = np.asarray(random_projections(key, 30, 3, jnp.float64))
    _, log = ot.sliced_wasserstein_distance(x, y, a, b, projections=th.T, p=2, log=True)
    w = log["projected_emds"]
    for kind in ("lower", "upper"):
        A = _dense_A(x, y, a, b, kind)
        c = np.einsum("li,ij,lj->l", th, A, th)
        ec = np.trace(A) / 3
        L = len(w)
        if coefficient == "pooled":
            gamma = np.cov(w, c)[0, 1] / np.var(c, ddof=1)
            terms = w - gamma * (c - ec)
        else:
            g = np.array(
                [
                    np.cov(np.delete(w, j), np.delete(c, j))[0, 1] / np.var(np.delete(c, j), ddof=1)
                    for j in range(L)
                ]
            )
            terms = w - g * (c - ec)
            gamma = g.mean()
        res = sliced_wasserstein_cv(
            None, x, y, a, b, projections=th, control_variate=kind, coefficient=coefficient
        )
        # float64 vs numpy + POT: the float64 default; the regression coefficient and its
        # standard error divide by var(c), one cancellation more (10x)
        np.testing.assert_allclose(float(res.sq_value), terms.mean(), rtol=1e-10)
        np.testing.assert_allclose(float(res.coefficient), gamma, rtol=1e-9)
        np.testing.assert_allclose(float(res.std_error), terms.std(ddof=1) / np.sqrt(L), rtol=1e-9)
        np.testing.assert_allclose(float(res.value), np.sqrt(max(terms.mean(), 0.0)), rtol=1e-10)


def _clouds(kind, n=32, d=4, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = rng.normal(size=(n, d))
        y = rng.normal(size=(n, d)) @ np.diag(np.linspace(0.5, 2.0, d)) + np.eye(d)[0]
    else:
        x = rng.exponential(size=(n, d))
        y = 3.0 * rng.uniform(size=(n, d)) + 0.2 * rng.standard_t(2, size=(n, d))
    return jnp.asarray(x), jnp.asarray(y)


_CACHE: dict = {}


def _seed_study(kind):
    """Estimates over N_SEEDS keys (same directions for every estimator) and a 1e6 reference."""
    if kind in _CACHE:
        return _CACHE[kind]
    with jax.enable_x64(True):
        x, y = _clouds(kind)

        def one(k):
            out = {"mc": sliced_wasserstein_with_error(k, x, y, n_projections=L_SEEDS).pp_value}
            for cv in ("lower", "upper"):
                for co in ("pooled", "leave_one_out"):
                    r = sliced_wasserstein_cv(
                        k, x, y, n_projections=L_SEEDS, control_variate=cv, coefficient=co
                    )
                    out[f"{cv}-{co}"] = r.sq_value
            return out

        keys = jax.random.split(jax.random.key(11), N_SEEDS)
        est = jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(keys))
        th = random_projections(jax.random.key(12), 10**6, x.shape[1], jnp.float64)
        ref = np.asarray(projected_wpp(x, y, None, None, th, 2.0))
    _CACHE[kind] = (est, ref.mean(), ref.std() / np.sqrt(ref.size))
    return _CACHE[kind]


@pytest.mark.parametrize(
    "name", ["mc", "lower-leave_one_out", "upper-leave_one_out", "lower-pooled"]
)
def test_unbiased_over_seeds(name):
    """Mean over 2000 seeds within 3 standard errors of a 1e6-direction reference.

    (The pooled coefficient has an O(1/L) bias, visible for the upper bound at L = 16; the
    leave-one-out estimator is exactly unbiased.)"""
    est, ref, ref_se = _seed_study("gaussian")
    v = est[name]
    se = np.hypot(v.std(ddof=1) / np.sqrt(v.size), ref_se)
    assert abs(v.mean() - ref) < 3 * se, (name, v.mean(), ref, se)


@pytest.mark.parametrize("kind", ["gaussian", "non_gaussian"])
def test_variance_reduction(kind):
    est, ref, _ = _seed_study(kind)
    var_mc = est["mc"].var()
    ratios = {k: float(v.var() / var_mc) for k, v in est.items() if k != "mc"}
    print(f"\n[{kind}] SW_2^2 ~ {ref:.4f}; variance ratio CV / MC at L={L_SEEDS}: {ratios}")
    if kind == "gaussian":
        assert ratios["lower-pooled"] < 1.0 and ratios["upper-pooled"] < 1.0, ratios


def test_one_dimensional_is_plain_mc(x64, key):
    """d = 1: C is constant over +-1 directions, coefficient 0, estimate = MC mean."""
    x, y = jnp.linspace(0, 1, 7)[:, None], jnp.linspace(1, 3, 7)[:, None] ** 2
    res = sliced_wasserstein_cv(key, x, y, n_projections=8, control_variate="upper")
    mc = sliced_wasserstein_with_error(key, x, y, n_projections=8)
    assert float(res.coefficient) == 0.0
    # the same float64 mean of 8 terms (coefficient exactly 0): a few roundings, 45 eps64
    np.testing.assert_allclose(float(res.sq_value), float(mc.pp_value), rtol=1e-14)


def test_grads_finite_and_jit_vmap(x64, key):
    x, _ = _clouds("gaussian", n=8, d=3)

    # "upper" exercises every term of "lower" plus the projected variances
    def f(x, y):
        return sliced_wasserstein_cv(key, x, y, n_projections=8, control_variate="upper").value

    f = jax.jit(f)
    assert float(f(x, x)) == 0.0
    check_grads_finite(f, (x, x), order=1)
    xs = jnp.stack([x, 2 * x])
    ys = jnp.stack([x + 1, x - 1])
    batched = jax.vmap(lambda x, y: sliced_wasserstein_cv(key, x, y, n_projections=8))(xs, ys)
    single = sliced_wasserstein_cv(key, xs[1], ys[1], n_projections=8)
    # the same float64 computation batched by vmap: 4500 eps64
    np.testing.assert_allclose(batched.sq_value[1], single.sq_value, rtol=1e-12)


def test_validation(key):
    x, y = jnp.zeros((4, 2)), jnp.ones((4, 2))
    with pytest.raises(ValueError, match="`p`"):
        sliced_wasserstein_cv(key, x, y, p=1)
    with pytest.raises(ValueError, match="`control_variate`"):
        sliced_wasserstein_cv(key, x, y, control_variate="middle")
    with pytest.raises(ValueError, match="`coefficient`"):
        sliced_wasserstein_cv(key, x, y, coefficient="jackknife")
    with pytest.raises(ValueError, match="`key`"):
        sliced_wasserstein_cv(None, x, y)
