"""The affine-invariant (Karcher) mean by Riemannian Newton steps: value, iteration count, derivatives.

References, written here in numpy/scipy (never from geomjax output):
- the Karcher optimality condition ``sum_i w_i logm(M^-1/2 X_i M^-1/2) = 0`` with scipy's
  Schur-based ``logm`` (accurate to ~1e-13 for these condition numbers), checked to 1e-10;
- the Karcher flow ``M <- M^1/2 exp(sum_i w_i log(M^-1/2 X_i M^-1/2)) M^1/2`` in numpy (the
  previous implementation's algorithm) run to a gradient norm of 1e-13: since the Frechet function
  is 1-strongly geodesically convex, both sides are within their gradient norms (<= 1e-12) of the
  true mean, so they agree to 1e-10 relative;
- derivatives: central finite differences of that numpy reference (step 1e-5: truncation ~1e-10,
  round-off ~1e-11/1e-5 = 1e-6 of a unit-size quantity at worst), compared at 1e-6 relative; at
  coincident points the closed form ``d mean = sum_i w_i dX_i``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from _spd import random_spd as shared_random_spd

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.testing import assert_allclose_dtype

N = 4


def random_spd(rng, n=N, spread=1.0):
    return shared_random_spd(rng, n, spread)


def random_sym(rng, n=N):
    a = rng.normal(size=(n, n))
    return 0.5 * (a + a.T)


def _eig_fn(a, f):
    lam, q = np.linalg.eigh(0.5 * (a + a.T))
    return (q * f(lam)) @ q.T


def karcher_gradient(m, pts, w):
    """``sum_i w_i logm(M^-1/2 X_i M^-1/2)`` with scipy (weights normalized)."""
    isq = _eig_fn(m, lambda t: 1.0 / np.sqrt(t))
    w = np.asarray(w, np.float64) / np.sum(w)
    return sum(wi * np.real(sla.logm(isq @ p @ isq)) for wi, p in zip(w, pts))


def numpy_karcher_flow(pts, w, tol=1e-13, max_iter=500):
    """Karcher flow from the arithmetic mean, step halved when the gradient norm does not decrease."""
    pts = np.asarray(pts, np.float64)
    w = np.asarray(w, np.float64) / np.sum(w)

    def grad(m):
        isq = _eig_fn(m, lambda t: 1.0 / np.sqrt(t))
        return sum(wi * _eig_fn(isq @ p @ isq, np.log) for wi, p in zip(w, pts))

    m = np.tensordot(w, pts, axes=1)
    g = grad(m)
    t = 1.0
    for _ in range(max_iter):
        if np.linalg.norm(g) <= tol:
            return m
        sq = _eig_fn(m, np.sqrt)
        m_new = sq @ _eig_fn(t * g, np.exp) @ sq
        m_new = 0.5 * (m_new + m_new.T)
        g_new = grad(m_new)
        if np.linalg.norm(g_new) < np.linalg.norm(g):
            m, g = m_new, g_new
        else:
            t *= 0.5
    raise AssertionError(f"numpy Karcher flow did not converge: {np.linalg.norm(g)}")


@pytest.fixture
def stack():
    rng = np.random.default_rng(3)
    pts = np.stack([random_spd(rng) for _ in range(7)])
    w = rng.uniform(0.2, 1.0, size=7)
    return pts, w


def test_mean_matches_optimality_and_numpy_karcher_flow(x64, stack):
    pts, w = stack
    res = jax.jit(SPDAffineInvariant(N).mean)(jnp.asarray(pts), jnp.asarray(w))
    assert bool(res.converged) and float(res.grad_norm) <= 1e-12, res
    assert 1 <= int(res.n_iters) <= 5, int(res.n_iters)
    m = np.asarray(res.mean)
    assert np.linalg.norm(karcher_gradient(m, pts, w)) <= 1e-10
    ref = numpy_karcher_flow(pts, w)
    assert np.linalg.norm(m - ref) <= 1e-10 * np.linalg.norm(ref)
    # The reported gradient norm is |sum_i w_i log W_i|_F at the returned mean (~round-off here).
    assert float(res.grad_norm) <= 1e-12


def test_few_newton_steps_on_many_points(x64):
    """Quadratic convergence: at most 6 Newton steps (batched eigendecompositions: n_iters + 1)
    to a gradient norm of 1e-10 on 50 random 6x6 points."""
    rng = np.random.default_rng(5)
    pts = np.stack([random_spd(rng, 6) for _ in range(50)])
    res = jax.jit(lambda p: SPDAffineInvariant(6).mean(p, tol=1e-10))(jnp.asarray(pts))
    assert bool(res.converged) and 1 <= int(res.n_iters) <= 6, res
    assert np.linalg.norm(karcher_gradient(np.asarray(res.mean), pts, np.ones(50))) <= 1e-10


def test_spread_out_points_converge(x64):
    """Points with log-spectra spread over 3 decades (the unit Karcher step oscillates here); the
    Newton iteration with step halving converges in a few steps."""
    rng = np.random.default_rng(0)
    pts = []
    for _ in range(5):
        q, _ = np.linalg.qr(rng.normal(size=(N, N)))
        pts.append((q * np.logspace(0.0, -3.0, N)) @ q.T)
    pts = np.stack(pts)
    res = jax.jit(SPDAffineInvariant(N).mean)(jnp.asarray(pts))
    assert bool(res.converged) and int(res.n_iters) <= 10, res
    assert np.linalg.norm(karcher_gradient(np.asarray(res.mean), pts, np.ones(5))) <= 1e-9
    ref = numpy_karcher_flow(pts, np.ones(5))
    assert np.linalg.norm(np.asarray(res.mean) - ref) <= 1e-10 * np.linalg.norm(ref)


def test_derivatives_match_finite_differences_of_numpy_reference(x64, stack):
    """d/dt <C, mean(P + t E, w + t v)>: jax.grad, jax.jvp and central differences of the numpy
    Karcher flow (an independent reference) agree to 1e-6 relative."""
    pts, w = stack
    rng = np.random.default_rng(11)
    c = random_sym(rng)
    e = np.stack([random_sym(rng) for _ in pts])
    v = rng.normal(size=w.shape)
    m = SPDAffineInvariant(N)

    @jax.jit
    def f(points, weights):
        return jnp.sum(jnp.asarray(c) * m.mean(points, weights).mean)

    p_, w_ = jnp.asarray(pts), jnp.asarray(w)
    gp, gw = jax.grad(f, argnums=(0, 1))(p_, w_)
    assert np.all(np.isfinite(gp)) and np.all(np.isfinite(gw))
    rev = float(jnp.sum(gp * e) + jnp.sum(gw * v))
    fwd = float(jax.jvp(f, (p_, w_), (jnp.asarray(e), jnp.asarray(v)))[1])
    h = 1e-5
    ref = lambda s: float(np.sum(c * numpy_karcher_flow(pts + s * e, w + s * v)))  # noqa: E731
    fd = (ref(h) - ref(-h)) / (2 * h)
    assert abs(rev - fd) <= 1e-6 * max(abs(fd), 1.0), (rev, fd)
    assert abs(fwd - fd) <= 1e-6 * max(abs(fd), 1.0), (fwd, fd)
    assert abs(rev - fwd) <= 1e-10 * max(abs(fd), 1.0), (rev, fwd)


@pytest.mark.parametrize("case", ["identity", "repeated"])
def test_derivatives_at_coincident_points(x64, case):
    """All points equal to P (the identity, or a matrix with repeated eigenvalues): the whitened
    points are the identity, every eigenvalue repeats, and the derivative is the closed form
    ``d mean = sum_i w_i dX_i``. Finite (jax_debug_nans is on) and exact in both modes."""
    rng = np.random.default_rng(4)
    k = 3
    if case == "identity":
        p = np.eye(N)
    else:
        q, _ = np.linalg.qr(rng.normal(size=(N, N)))
        p = (q * np.array([1.0, 1.0, 3.0, 3.0])) @ q.T
    pts = jnp.asarray(np.stack([p] * k))
    w = np.array([0.2, 0.3, 0.5])
    c = random_sym(rng)
    e = np.stack([random_sym(rng) for _ in range(k)])
    m = SPDAffineInvariant(N)

    @jax.jit
    def f(points):
        return jnp.sum(jnp.asarray(c) * m.mean(points, jnp.asarray(w)).mean)

    g = jax.grad(f)(pts)
    assert np.all(np.isfinite(g))
    expected = float(np.sum(c * np.tensordot(w, e, axes=1)))
    assert abs(float(jnp.sum(g * e)) - expected) <= 1e-10 * max(abs(expected), 1.0)
    tangent = float(jax.jvp(f, (pts,), (jnp.asarray(e),))[1])
    assert abs(tangent - expected) <= 1e-10 * max(abs(expected), 1.0)
    np.testing.assert_allclose(jax.jit(m.mean)(pts, jnp.asarray(w)).mean, p, rtol=0, atol=1e-13)


def test_gradient_with_repeated_eigenvalues_at_the_mean(x64):
    """Commuting points with repeated eigenvalues whose mean is a multiple of the identity:
    finite gradient that matches central differences of the numpy reference."""
    pts = np.stack([np.diag([1.0, 1.0, 2.0, 2.0]), np.diag([2.0, 2.0, 1.0, 1.0])])
    w = np.array([1.0, 1.0])
    rng = np.random.default_rng(8)
    c = random_sym(rng)
    e = np.stack([random_sym(rng) for _ in pts])
    m = SPDAffineInvariant(N)
    f = jax.jit(lambda p: jnp.sum(jnp.asarray(c) * m.mean(p).mean))
    res = jax.jit(m.mean)(jnp.asarray(pts))
    np.testing.assert_allclose(res.mean, np.sqrt(2.0) * np.eye(N), rtol=1e-13)
    g = jax.grad(f)(jnp.asarray(pts))
    assert np.all(np.isfinite(g))
    h = 1e-5
    ref = lambda s: float(np.sum(c * numpy_karcher_flow(pts + s * e, w)))  # noqa: E731
    fd = (ref(h) - ref(-h)) / (2 * h)
    assert abs(float(jnp.sum(g * e)) - fd) <= 1e-6 * max(abs(fd), 1.0)


def test_float32_matches_float64_reference_without_nan():
    rng = np.random.default_rng(6)
    pts = np.stack([random_spd(rng, spread=1.5) for _ in range(20)])
    m = SPDAffineInvariant(N)
    res = jax.jit(m.mean)(jnp.asarray(pts, jnp.float32))
    assert res.mean.dtype == jnp.float32 and bool(res.converged), res
    # float32 ~1e-5 relative (scale 10: 20 whitened logarithms per residual).
    assert_allclose_dtype(res.mean, numpy_karcher_flow(pts, np.ones(20)), scale=10.0)
    c = jnp.asarray(random_sym(rng), jnp.float32)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(c * m.mean(p).mean)))
    g = grad(jnp.asarray(pts, jnp.float32))
    assert bool(jnp.all(jnp.isfinite(g)))
    same = jnp.stack([jnp.eye(N, dtype=jnp.float32)] * 20)
    g = grad(same)
    np.testing.assert_allclose(g, np.stack([np.asarray(c) / 20] * 20), rtol=1e-5, atol=1e-7)


def test_vmap_over_weights_matches_single_means(x64, stack):
    """MDM maps the mean over per-class weight vectors (zeros outside the class)."""
    pts, w = stack
    ws = np.stack([w, np.where(np.arange(len(w)) < 3, 1.0, 0.0)])
    m = SPDAffineInvariant(N)
    batched = jax.jit(jax.vmap(lambda wi: m.mean(jnp.asarray(pts), wi)))(jnp.asarray(ws))
    single_fn = jax.jit(m.mean)
    for i, wi in enumerate(ws):
        single = single_fn(jnp.asarray(pts), jnp.asarray(wi))
        np.testing.assert_allclose(batched.mean[i], single.mean, rtol=1e-12, atol=1e-13)
        assert bool(batched.converged[i])
    sub = numpy_karcher_flow(pts[:3], np.ones(3))
    np.testing.assert_allclose(batched.mean[1], sub, rtol=1e-10)


def test_max_iter_bounds_the_newton_steps(x64, stack):
    pts, w = stack
    fn = jax.jit(lambda p, w: SPDAffineInvariant(N).mean(p, w, max_iter=1, tol=0.0))
    res = fn(jnp.asarray(pts), jnp.asarray(w))
    assert int(res.n_iters) == 1 and not bool(res.converged)
    assert np.isfinite(float(res.grad_norm)) and float(res.grad_norm) > 0.0
