"""Tests for the closed-form Gaussian W2 / Bures-Wasserstein distances and gaussian_fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

from geomjax.ot._gaussian import bures_wasserstein, gaussian_fit, gaussian_wasserstein
from geomjax.testing import assert_allclose_dtype, matmul_eps, rounding_tolerance


def _pot(module="ot"):
    """POT (or one of its submodules), skipping when absent or shadowed by the `tests/ot` package
    (pytest's prepend import mode puts `tests/` on sys.path; `tests/ot/__init__.py` then wins)."""
    pot = pytest.importorskip(module)
    if not hasattr(pytest.importorskip("ot"), "emd2"):
        pytest.skip("`import ot` does not give POT (shadowed by the tests/ot package)")
    return pot


def _spd(rng, d, cond=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.exp(rng.uniform(0.0, np.log(cond), d))
    return (q * lam) @ q.T


def _w2_sq_ref(m1, c1, m2, c2):
    """Dense float64 closed form with scipy's Schur-based sqrtm (independent of eigh)."""
    r1 = scipy.linalg.sqrtm(c1)
    cross = scipy.linalg.sqrtm(r1 @ c2 @ r1)
    bw2 = np.trace(c1) + np.trace(c2) - 2.0 * np.trace(np.real(cross))
    return float(np.sum((m1 - m2) ** 2) + bw2), float(bw2)


@pytest.mark.parametrize("d", [1, 3, 5])
def test_matches_scipy_closed_form(x64, d):
    rng = np.random.default_rng(d)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    c1, c2 = _spd(rng, d), _spd(rng, d)
    w2_sq, bw2 = _w2_sq_ref(m1, c1, m2, c2)
    f = jax.jit(
        lambda *a: (
            gaussian_wasserstein(*a),
            gaussian_wasserstein(*a, squared=True),
            bures_wasserstein(a[1], a[3]),
            bures_wasserstein(a[1], a[3], squared=True),
        )
    )
    w, w_sq, bw, bw_sq = f(m1, c1, m2, c2)
    # float64 eigh-based vs scipy's Schur sqrtm: the float64 default
    assert_allclose_dtype(w_sq, w2_sq)
    assert_allclose_dtype(w, np.sqrt(w2_sq))
    assert_allclose_dtype(bw_sq, bw2)
    assert_allclose_dtype(bw, np.sqrt(bw2))


def test_float32_against_float64_reference():
    rng = np.random.default_rng(0)
    m1, m2 = rng.standard_normal(4), rng.standard_normal(4)
    c1, c2 = _spd(rng, 4), _spd(rng, 4)
    w2_sq, _ = _w2_sq_ref(m1, c1, m2, c2)
    args = [jnp.asarray(t, jnp.float32) for t in (m1, c1, m2, c2)]
    w = gaussian_wasserstein(*args)
    assert w.dtype == jnp.float32
    # W^2 = |dm|^2 + tr C1 + tr C2 - 2 tr (C1^1/2 C2 C1^1/2)^1/2 cancels by cond (7 here);
    # eigh of 4x4 matrices (linear growth) and products at the matmul precision
    cond = (np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2)) / w2_sq
    tol = rounding_tolerance(
        np.float32, n_ops=4, cond=cond, growth="linear", eps=matmul_eps(np.float32)
    )
    assert_allclose_dtype(w, np.float32(np.sqrt(w2_sq)), rtol=tol)


def test_pot_oracle(x64):
    pot_gaussian = _pot("ot.gaussian")
    if not hasattr(pot_gaussian, "bures_wasserstein_distance"):
        pytest.skip("POT without ot.gaussian.bures_wasserstein_distance")
    rng = np.random.default_rng(1)
    m1, m2 = rng.standard_normal(3), rng.standard_normal(3)
    c1, c2 = _spd(rng, 3), _spd(rng, 3)
    ref = float(pot_gaussian.bures_wasserstein_distance(m1, m2, c1, c2))
    assert_allclose_dtype(gaussian_wasserstein(m1, c1, m2, c2), ref)
    if hasattr(pot_gaussian, "bures_distance"):
        assert_allclose_dtype(bures_wasserstein(c1, c2), float(pot_gaussian.bures_distance(c1, c2)))


def test_empirical_w2_of_samples(x64):
    """Exact W2 (LP, POT) between large Gaussian samples approaches the closed form.

    The samples are whitened so that their empirical moments are exactly the Gaussians'
    (otherwise moment fluctuations of O(n^-1/2) dominate, ~10% at n = 2000). Then the closed
    form is a lower bound (Gelbrich) and the gap is the non-Gaussianity of the samples.
    """
    ot = _pot()
    rng = np.random.default_rng(2)
    n = 2000
    m1, m2 = np.zeros(2), np.array([1.0, -0.5])
    c1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    c2 = np.array([[2.0, -0.4], [-0.4, 1.0]])

    def sample(m, c):
        z = rng.standard_normal((n, 2))
        z -= z.mean(0)
        z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T  # exactly mean 0, cov I
        return m + z @ np.linalg.cholesky(c).T

    x, y = sample(m1, c1), sample(m2, c2)
    u = np.full(n, 1.0 / n)
    emp = ot.emd2(u, u, ot.dist(x, y), numItermax=10**7)
    closed = float(gaussian_wasserstein(m1, c1, m2, c2, squared=True))
    fitted = float(gaussian_wasserstein(*gaussian_fit(x), *gaussian_fit(y), squared=True))
    assert abs(fitted - closed) <= 1e-10 * closed  # float64 default (moments exact by design)
    assert closed <= emp * (1 + 1e-10)  # Gelbrich's lower bound, up to the float64 default
    assert emp <= 1.05 * closed, (emp, closed)  # measured gap ~1% at n = 2000


def test_zero_and_finite_gradients_at_equal_gaussians(dtype):
    """Values exactly 0 and gradients finite (zero) at identical Gaussians; first derivatives
    finite at equal means or equal covariances; second derivatives of the square finite."""
    rng = np.random.default_rng(3)
    m = jnp.asarray(rng.standard_normal(3), dtype)
    c = jnp.asarray(_spd(rng, 3), dtype)
    argnums = (0, 1, 2, 3)

    @jax.jit
    def derivatives(m, c):
        w = lambda *a: gaussian_wasserstein(*a)
        w_sq = lambda *a: gaussian_wasserstein(*a, squared=True)
        c2 = c + jnp.eye(3, dtype=c.dtype)
        hvp_dirs = (
            jnp.ones_like(m),
            jnp.ones_like(c),
            -jnp.ones_like(m),
            jnp.eye(3, dtype=c.dtype),
        )
        return {
            "values": (w(m, c, m, c), bures_wasserstein(c, c)),
            "zero": (
                jax.grad(w, argnums)(m, c, m, c),
                jax.grad(w_sq, argnums)(m, c, m, c),
                jax.grad(bures_wasserstein, (0, 1))(c, c),
            ),
            "finite": (
                jax.grad(w, argnums)(m, c, m, c2),
                jax.grad(w, argnums)(m, c, m + 1.0, c),
                jax.jvp(lambda *a: jax.grad(w_sq, argnums)(*a), (m, c, m, c), hvp_dirs)[1],
            ),
        }

    out = derivatives(m, c)
    assert all(float(v) == 0.0 for v in out["values"])
    atol = 1e-5 if dtype == jnp.float32 else 1e-12
    for leaf in jax.tree.leaves(out["zero"]):
        np.testing.assert_allclose(np.asarray(leaf), 0.0, rtol=0, atol=atol)
    for leaf in jax.tree.leaves(out["finite"]):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_check_grads_generic(x64):
    rng = np.random.default_rng(4)
    m1, m2 = rng.standard_normal(3), rng.standard_normal(3)
    l1, l2 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))

    def f(m1, l1, m2, l2):  # unconstrained parametrization, SPD covariances
        c1 = l1 @ l1.T + 0.5 * jnp.eye(3)
        c2 = l2 @ l2.T + 0.5 * jnp.eye(3)
        return gaussian_wasserstein(m1, c1, m2, c2)

    check_grads(jax.jit(f), (m1, l1, m2, l2), order=1, modes=("fwd", "rev"))


def test_gaussian_fit_matches_numpy(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 3)) + 2.0
    a = rng.uniform(0.5, 1.5, 50)
    a /= a.sum()
    for w in (None, a):
        mean, cov = gaussian_fit(
            jnp.asarray(x, dtype), None if w is None else jnp.asarray(w, dtype)
        )
        ref_mean = np.average(x, axis=0, weights=w)
        ref_cov = np.cov(x.T, aweights=w, bias=True)
        assert mean.dtype == dtype and cov.dtype == dtype
        # means of 50 points; the covariance cancels by E|x|^2 / tr(cov) (the data sit at 2.0)
        cond = np.mean(np.sum(x**2, axis=1)) / np.trace(ref_cov)
        assert_allclose_dtype(mean, ref_mean, rtol=rounding_tolerance(dtype, n_ops=50))
        assert_allclose_dtype(cov, ref_cov, rtol=rounding_tolerance(dtype, n_ops=50, cond=cond))
        np.testing.assert_array_equal(np.asarray(cov), np.asarray(cov).T)


def test_jit_and_vmap(x64):
    rng = np.random.default_rng(6)
    ms = rng.standard_normal((4, 2))
    cs = np.stack([_spd(rng, 2) for _ in range(4)])
    batched = jax.jit(jax.vmap(gaussian_wasserstein, in_axes=(0, 0, None, None)))(
        ms, cs, ms[0], cs[0]
    )
    loop = np.array([float(gaussian_wasserstein(ms[i], cs[i], ms[0], cs[0])) for i in range(4)])
    assert_allclose_dtype(batched, loop)
    assert float(batched[0]) == 0.0


def test_validation_errors():
    eye = jnp.eye(2)
    with pytest.raises(ValueError, match="`m2`"):
        gaussian_wasserstein(jnp.zeros(2), eye, jnp.zeros(3), eye)
    with pytest.raises(ValueError, match="`cov1` and `cov2`"):
        gaussian_wasserstein(jnp.zeros(2), eye, jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match="`cov1`"):
        bures_wasserstein(jnp.ones((2, 3)), eye)
    with pytest.raises(TypeError, match="`m1`"):
        gaussian_wasserstein(jnp.zeros(2, jnp.int32), eye, jnp.zeros(2), eye)
    with pytest.raises(ValueError, match="`x`"):
        gaussian_fit(jnp.zeros(3))
    with pytest.raises(ValueError, match="`a`"):
        gaussian_fit(jnp.zeros((3, 2)), jnp.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="`a`"):
        gaussian_fit(jnp.zeros((3, 2)), jnp.array([0.5, 0.5]))
