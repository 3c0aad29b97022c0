"""Affine-invariant, log-Euclidean and log-Cholesky SPD metrics against dense float64 references.

References are written here in numpy/scipy (``scipy.linalg.sqrtm/logm/expm/expm_frechet``,
``numpy.linalg.cholesky``), never from geomjax output. Tolerances: 1e-10 relative (Frobenius) in
float64 for well-conditioned points (condition numbers <= 20, where scipy's Schur-based matrix
functions are accurate to ~1e-13). Also: the Frechet means, gradients through the iterative
means, and the validation errors of the SPD classes (Bures-Wasserstein ones in test_spd_bures.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import SPDBuresWasserstein, SPDGeneralizedBuresWasserstein
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed
from geomjax.testing import assert_allclose_dtype

N = 3


@pytest.fixture(autouse=True)
def _op_by_op():
    """Run op by op: these tests call each function a few times, so compiling whole functions
    costs more than it saves (and jax_debug_nans then checks every intermediate)."""
    with jax.disable_jit():
        yield


def random_spd(rng, n=N, cond=10.0):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.logspace(0.0, np.log10(cond), n) * rng.uniform(0.5, 2.0)
    return (q * lam) @ q.T


def random_sym(rng, n=N, scale=1.0):
    a = rng.normal(size=(n, n))
    return scale * 0.5 * (a + a.T)


def sqrtm(a):
    return np.real(sla.sqrtm(a))


def logm(a):
    return np.real(sla.logm(a))


def close(actual, desired, atol=1e-13, what=""):
    """float64: 1e-10 relative (Frobenius); atol for references that vanish."""
    assert np.asarray(actual).dtype == np.float64, what
    assert_allclose_dtype(actual, desired, scale=1.0, atol=atol, err_msg=what)


@pytest.fixture
def pts(x64):
    rng = np.random.default_rng(7)
    x, y = random_spd(rng), random_spd(rng)
    u, v = random_sym(rng), random_sym(rng)
    return x, y, u, v


# --------------------------------------------------------------------------- affine-invariant


def test_affine_invariant_closed_forms(pts):
    x, y, u, v = pts
    m = SPDAffineInvariant(N)
    rx = sqrtm(x)
    irx = np.linalg.inv(rx)
    w = irx @ y @ irx
    close(m.inner(x, u, v), np.trace(np.linalg.solve(x, u) @ np.linalg.solve(x, v)), what="inner")
    close(m.dist(x, y), np.linalg.norm(logm(w)), what="dist")
    # Second, eigen-free route: generalized eigenvalues of the pencil (Y, X).
    close(m.dist(x, y), np.sqrt(np.sum(np.log(sla.eigvalsh(y, x)) ** 2)), what="dist (pencil)")
    close(m.exp(x, u), rx @ sla.expm(irx @ u @ irx) @ rx, what="exp")
    close(m.log(x, y), rx @ logm(w) @ rx, what="log")
    e = sqrtm(y @ np.linalg.inv(x))  # (Y X^-1)^1/2, a non-symmetric square root
    close(m.transp(x, y, u), e @ u @ e.T, what="transp")
    close(
        m.geodesic(x, y, 0.3), rx @ sla.fractional_matrix_power(w, 0.3).real @ rx, what="geodesic"
    )


def test_affine_invariant_is_affine_invariant(pts):
    x, y, _, _ = pts
    a = np.random.default_rng(3).normal(size=(N, N))  # invertible (almost surely)
    ref = np.sqrt(np.sum(np.log(sla.eigvalsh(y, x)) ** 2))
    close(SPDAffineInvariant(N).dist(a @ x @ a.T, a @ y @ a.T), ref)


# ---------------------------------------------------------------------------- log-Euclidean


def dlog(x, u):
    """Frechet derivative of logm by the block-triangular identity (Higham, Functions of
    Matrices, Thm 3.6): logm([[X, U], [0, X]]) = [[log X, Dlog_X[U]], [0, log X]]."""
    n = x.shape[0]
    big = np.block([[x, u], [np.zeros_like(x), x]])
    return logm(big)[:n, n:]


def dexp(s, v):
    return sla.expm_frechet(s, v, compute_expm=False)


def test_log_euclidean_closed_forms(pts):
    x, y, u, v = pts
    m = SPDLogEuclidean(N)
    lx, ly = logm(x), logm(y)
    close(m.dist(x, y), np.linalg.norm(lx - ly), what="dist")
    close(m.inner(x, u, v), np.sum(dlog(x, u) * dlog(x, v)), what="inner")
    close(m.exp(x, u), sla.expm(lx + dlog(x, u)), what="exp")
    close(m.log(x, y), dexp(lx, ly - lx), what="log")
    close(m.transp(x, y, u), dexp(ly, dlog(x, u)), what="transp")
    close(m.geodesic(x, y, 0.3), sla.expm(0.7 * lx + 0.3 * ly), what="geodesic")


# ----------------------------------------------------------------------------- log-Cholesky
# Z. Lin, SIAM J. Matrix Anal. Appl. 40(4), 2019 (arXiv:1908.09326): with X = L L^T, floor(.) the
# strictly lower part and D(.) the diagonal, the metric on Cholesky factors is
# <A, B>_L = <floor A, floor B> + <D(L)^-1 D(A), D(L)^-1 D(B)>; exp, log and parallel transport
# are those of Prop. 8/Thm. 1 of the paper, pushed to SPD matrices by L -> L L^T.


def _lower(a):
    return np.tril(a, -1)


def _d(a):
    return np.diag(np.diag(a))


def chol_tangent(chol, u):
    """dL for dX = U: L (L^-1 U L^-T)_{1/2} (Lin 2019, Prop. 4)."""
    w = np.linalg.solve(chol, np.linalg.solve(chol, u).T)
    return chol @ (_lower(w) + 0.5 * _d(w))


def test_log_cholesky_tangent_is_the_cholesky_derivative(pts):
    """The reference's dL matches central differences of numpy's Cholesky (checks the reference)."""
    x, _, u, _ = pts
    h = 1e-6
    fd = (np.linalg.cholesky(x + h * u) - np.linalg.cholesky(x - h * u)) / (2 * h)
    np.testing.assert_allclose(chol_tangent(np.linalg.cholesky(x), u), fd, rtol=0, atol=1e-8)


def test_log_cholesky_closed_forms(pts):
    x, y, u, v = pts
    m = SPDLogCholesky(N)
    lx, ly = np.linalg.cholesky(x), np.linalg.cholesky(y)
    dl, dk = np.diag(lx), np.diag(ly)
    a, b = chol_tangent(lx, u), chol_tangent(lx, v)
    inner = np.sum(_lower(a) * _lower(b)) + np.sum(np.diag(a) * np.diag(b) / dl**2)
    close(m.inner(x, u, v), inner, what="inner")
    dist = np.sqrt(np.sum((_lower(lx) - _lower(ly)) ** 2) + np.sum((np.log(dl) - np.log(dk)) ** 2))
    close(m.dist(x, y), dist, what="dist")
    k = _lower(lx) + _lower(a) + np.diag(dl * np.exp(np.diag(a) / dl))
    close(m.exp(x, u), k @ k.T, what="exp")
    t = _lower(ly) - _lower(lx) + np.diag(dl * np.log(dk / dl))
    close(m.log(x, y), lx @ t.T + t @ lx.T, what="log")
    p = _lower(a) + np.diag(dk / dl * np.diag(a))
    close(m.transp(x, y, u), ly @ p.T + p @ ly.T, what="transp")


# ---------------------------------------------------------------- Riemannian gradient (all 5)


@pytest.mark.parametrize("name", ["aim", "le", "lc", "bw", "gbw"])
def test_egrad_to_rgrad_represents_the_differential(name, pts):
    """<rgrad(G), V>_X = <G, V>_F for every tangent V (the defining identity)."""
    x, _, u, v = pts
    m_gbw = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    m = {
        "aim": SPDAffineInvariant(N),
        "le": SPDLogEuclidean(N),
        "lc": SPDLogCholesky(N),
        "bw": SPDBuresWasserstein(N),
        "gbw": SPDGeneralizedBuresWasserstein(jnp.asarray(m_gbw)),
    }[name]
    g = random_sym(np.random.default_rng(11))
    r = m.egrad_to_rgrad(x, g)
    close(m.inner(x, r, u), np.sum(g * u), what="<rgrad, u>")
    close(m.inner(x, r, v), np.sum(g * v), what="<rgrad, v>")


# -------------------------------------------------------------------------------------- means


def _stack(rng, k, n=N, spread=0.3):
    """k points around a random centre (affine-invariant distance ~spread from it)."""
    c = random_spd(rng, n, cond=5.0)
    rc = sqrtm(c)
    return np.stack([rc @ sla.expm(random_sym(rng, n, spread)) @ rc for _ in range(k)])


@pytest.fixture
def stack(x64):
    rng = np.random.default_rng(5)
    return _stack(rng, 6), rng.uniform(0.2, 1.0, size=6)


def test_log_euclidean_mean_closed_form(stack):
    p, w = stack
    res = SPDLogEuclidean(N).mean(jnp.asarray(p), jnp.asarray(w))
    ref = sla.expm(np.tensordot(w / w.sum(), np.stack([logm(a) for a in p]), axes=1))
    close(res.mean, ref, what="mean")
    assert bool(res.converged) and int(res.n_iters) == 0 and float(res.grad_norm) < 1e-12


def test_log_cholesky_mean_closed_form(stack):
    p, w = stack
    res = SPDLogCholesky(N).mean(jnp.asarray(p), jnp.asarray(w))
    w = w / w.sum()
    chols = np.linalg.cholesky(p)
    k = np.tensordot(w, np.tril(chols, -1), axes=1) + np.diag(
        np.exp(np.tensordot(w, np.log(np.diagonal(chols, axis1=1, axis2=2)), axes=1))
    )
    close(res.mean, k @ k.T, what="mean")
    assert bool(res.converged) and int(res.n_iters) == 0 and float(res.grad_norm) < 1e-12


def test_affine_invariant_mean_zeroes_the_karcher_gradient(stack):
    p, w = stack
    res = SPDAffineInvariant(N).mean(jnp.asarray(p), jnp.asarray(w))
    assert bool(res.converged) and 1 <= int(res.n_iters) <= 10, res
    s = np.asarray(res.mean)
    irs = np.linalg.inv(sqrtm(s))
    grad = np.tensordot(w / w.sum(), np.stack([logm(irs @ a @ irs) for a in p]), axes=1)
    assert np.linalg.norm(grad) <= 1e-10, np.linalg.norm(grad)
    assert float(res.grad_norm) <= 1e-12


def test_affine_invariant_mean_of_commuting_points(x64):
    rng = np.random.default_rng(2)
    d = rng.uniform(0.2, 5.0, size=(4, N))
    w = rng.uniform(0.2, 1.0, size=4)
    res = SPDAffineInvariant(N).mean(jnp.asarray(np.stack([np.diag(r) for r in d])), jnp.asarray(w))
    close(res.mean, np.diag(np.exp(w @ np.log(d) / w.sum())), what="geometric mean")


def test_affine_invariant_mean_of_spread_out_points(x64):
    """The unit-step Karcher flow enters a 2-cycle here (grad norm stays ~4.8); the damped
    iteration (halve the step when the gradient norm does not decrease) converges."""
    rng = np.random.default_rng(0)
    pts = []
    for _ in range(5):
        q, _ = np.linalg.qr(rng.normal(size=(N, N)))
        pts.append((q * np.logspace(0.0, -3.0, N)) @ q.T)
    res = SPDAffineInvariant(N).mean(jnp.asarray(np.stack(pts)), max_iter=40)
    assert bool(res.converged), float(res.grad_norm)
    # Independent optimality check: sum_i log(M^-1/2 X_i M^-1/2) = 0 (scipy, float64).
    lam, q = np.linalg.eigh(np.asarray(res.mean))
    isq = (q / np.sqrt(lam)) @ q.T
    grad = sum(sla.logm(isq @ p @ isq).real for p in pts)
    assert np.linalg.norm(grad) < 1e-9


@pytest.mark.parametrize("name", ["aim", "bw"])
def test_reverse_mode_through_iterative_mean_matches_finite_differences(name, stack):
    """d/dt <C, mean(P + t E)> by jax.grad vs central differences (float64)."""
    p, w = stack
    m = SPDAffineInvariant(N) if name == "aim" else SPDBuresWasserstein(N)
    rng = np.random.default_rng(9)
    c = random_sym(rng)
    e = np.stack([random_sym(rng) for _ in p])

    @jax.jit
    def f(points):
        return jnp.sum(c * m.mean(points, jnp.asarray(w), max_iter=40).mean)

    with jax.disable_jit(False):  # compiled: op by op, reverse mode through 40 steps is slower
        g = jax.grad(f)(jnp.asarray(p))
        h = 1e-5
        fd = (float(f(jnp.asarray(p + h * e))) - float(f(jnp.asarray(p - h * e)))) / (2 * h)
    assert np.all(np.isfinite(g))
    ad = float(jnp.sum(g * e))
    # FD truncation ~h^2 and round-off ~eps/h (~1e-10 together); the frozen iterate moves by
    # <= tol (1e-12) when a perturbation changes the iteration count: 1e-7 relative.
    assert abs(ad - fd) <= 1e-7 * max(abs(fd), 1.0), (ad, fd)


# --------------------------------------------------------------------------------- validation


MEANS = {
    "SPDAffineInvariant": SPDAffineInvariant(2),
    "SPDLogEuclidean": SPDLogEuclidean(2),
    "SPDLogCholesky": SPDLogCholesky(2),
    "SPDBuresWasserstein": SPDBuresWasserstein(2),
    "SPDGeneralizedBuresWasserstein": SPDGeneralizedBuresWasserstein(jnp.eye(2)),
    "PowerDeformed": PowerDeformed(SPDBuresWasserstein(2), 0.5),
}


@pytest.mark.parametrize("name", list(MEANS))
def test_mean_validates_points_and_weights(name):
    m = MEANS[name]
    good = jnp.stack([jnp.eye(2), 2.0 * jnp.eye(2)])
    for bad in (jnp.eye(2), jnp.ones((2, 3, 3)), jnp.ones((2, 2, 3)), jnp.ones((0, 2, 2))):
        with pytest.raises(ValueError, match=r"`points`.*shape"):
            m.mean(bad)
    for bad_w in (jnp.ones(3), jnp.ones((2, 1)), 1.0):
        with pytest.raises(ValueError, match=r"`weights`.*shape"):
            m.mean(good, bad_w)


@pytest.mark.parametrize("name", ["SPDAffineInvariant", "SPDBuresWasserstein"])
def test_iterative_mean_validates_options(name):
    good = jnp.stack([jnp.eye(2), 2.0 * jnp.eye(2)])
    with pytest.raises(ValueError, match="`max_iter`"):
        MEANS[name].mean(good, max_iter=0)
    with pytest.raises(ValueError, match="`tol`"):
        MEANS[name].mean(good, tol=-1.0)


def test_power_deformed_validates_theta_and_metric():
    bw = SPDBuresWasserstein(2)
    for zero in (0, 0.0, jnp.asarray(0.0), np.float64(0.0)):
        with pytest.raises(ValueError, match="`theta`"):
            PowerDeformed(bw, zero)
    with pytest.raises(ValueError, match="`theta`.*scalar"):
        PowerDeformed(bw, jnp.ones(2))
    with pytest.raises(TypeError, match="`theta`"):
        PowerDeformed(bw, True)
    with pytest.raises(TypeError, match="`metric`"):
        PowerDeformed("bw", 0.5)


def test_generalized_bw_validates_metric_matrix():
    for bad in (np.ones((2, 3)), jnp.ones(3), jnp.ones((2, 2, 2))):
        with pytest.raises(ValueError, match="`M`"):
            SPDGeneralizedBuresWasserstein(bad)


@pytest.mark.parametrize(
    "cls", [SPDAffineInvariant, SPDLogEuclidean, SPDLogCholesky, SPDBuresWasserstein]
)
def test_size_validation(cls):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`n`"):
            cls(bad)
