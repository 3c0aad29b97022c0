"""Bures-Wasserstein, generalized BW and power-deformed SPD metrics against float64 references.

References are numpy/scipy formulas written here: ``scipy.linalg.solve_continuous_lyapunov`` for
``L_X``, a dense Kronecker solve for the generalized ``L_{X,M}``, ``scipy.linalg.sqrtm`` and
``fractional_matrix_power`` for matrix functions, and the trace formula for distances. Tolerance
1e-10 relative (Frobenius) in float64 for well-conditioned points.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import (
    SPDBuresWasserstein,
    SPDGeneralizedBuresWasserstein,
    bures_wasserstein_sqdist,
)
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed
from geomjax.testing import assert_allclose_dtype

N = 3
M_GBW = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])


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
    assert np.asarray(actual).dtype == np.float64, what
    assert_allclose_dtype(actual, desired, scale=1.0, atol=atol, err_msg=what)


# numpy references ---------------------------------------------------------------------------


def bw_inner(x, u, v):
    return 0.5 * np.trace(sla.solve_continuous_lyapunov(x, u) @ v)


def bw_exp(x, u):
    k = sla.solve_continuous_lyapunov(x, u)
    return x + u + k @ x @ k


def bw_log(x, y):
    return sqrtm(x @ y) + sqrtm(y @ x) - 2.0 * x


def bw_sqdist(x, y):
    rx = sqrtm(x)
    return np.trace(x) + np.trace(y) - 2.0 * np.trace(sqrtm(rx @ y @ rx))


def gbw_solve(x, m, u):
    """K with X K M + M K X = U by a dense Kronecker solve.

    Row-major vec: vec(A K B) = (A kron B^T) vec(K)."""
    n = x.shape[0]
    op = np.kron(x, m.T) + np.kron(m, x.T)
    return np.linalg.solve(op, u.reshape(-1)).reshape(n, n)


def gbw_dist(x, y, m=M_GBW):
    mi = np.linalg.inv(m)
    rx = sqrtm(x)
    return np.sqrt(
        np.trace(mi @ x) + np.trace(mi @ y) - 2.0 * np.trace(sqrtm(rx @ mi @ y @ mi @ rx))
    )


def aim_dist(x, y):
    return np.sqrt(np.sum(np.log(sla.eigvalsh(y, x)) ** 2))


def le_dist(x, y):
    return np.linalg.norm(logm(x) - logm(y))


def fpow(a, t):
    return np.real(sla.fractional_matrix_power(a, t))


@pytest.fixture
def pts(x64):
    rng = np.random.default_rng(17)
    return random_spd(rng), random_spd(rng), random_sym(rng), random_sym(rng)


# ----------------------------------------------------------------------------- Bures-Wasserstein


def test_bures_wasserstein_closed_forms(pts):
    x, y, u, v = pts
    m = SPDBuresWasserstein(N)
    close(m.inner(x, u, v), bw_inner(x, u, v), what="inner")
    close(m.exp(x, 0.3 * u), bw_exp(x, 0.3 * u), what="exp")
    close(m.log(x, y), bw_log(x, y), what="log")
    close(m.dist(x, y), np.sqrt(bw_sqdist(x, y)), what="dist")
    close(bures_wasserstein_sqdist(x, y), bw_sqdist(x, y), what="bures_wasserstein_sqdist")


def test_bures_wasserstein_transport_between_commuting_points(pts):
    """Between commuting points the transport is the parallel transport: entry (i, j) in the
    common eigenbasis scales by sqrt((a_i + a_j) / (b_i + b_j)) (Thanwerdas-Pennec 2023)."""
    _, _, u, _ = pts
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(N, N)))
    a, b = np.array([0.5, 1.0, 3.0]), np.array([2.0, 0.7, 1.5])
    x, y = (q * a) @ q.T, (q * b) @ q.T
    ut = q.T @ u @ q
    ref = q @ (ut * np.sqrt(np.add.outer(b, b) / np.add.outer(a, a))) @ q.T
    close(SPDBuresWasserstein(N).transp(x, y, u), ref, what="transp")


def test_bures_sqdist_is_accurate_for_nearby_points(pts):
    """d^2(X, X + h E) / h^2 -> |E|_X^2: the polar form keeps the digits the trace formula loses."""
    x, _, e, _ = pts
    h = 1e-6
    q = bw_inner(x, e, e)
    got = float(bures_wasserstein_sqdist(x, x + h * e)) / h**2
    assert abs(got - q) <= 1e-6 * q, (got, q)  # O(h) truncation, measured ~7e-8
    # The textbook trace formula cancels: tr X + tr Y and 2 tr(...)^1/2 agree to ~1e-12 relative.
    naive = bw_sqdist(x, x + h * e) / h**2
    assert abs(naive - q) > 1e-3 * q
    assert float(bures_wasserstein_sqdist(x, x)) <= 1e-26 * np.trace(x)


# ---------------------------------------------------------------- generalized Bures-Wasserstein


def test_generalized_bw_inner_matches_kronecker_solve(pts):
    x, _, u, v = pts
    m = SPDGeneralizedBuresWasserstein(jnp.asarray(M_GBW))
    k = gbw_solve(x, M_GBW, u)
    np.testing.assert_allclose(
        x @ k @ M_GBW + M_GBW @ k @ x, u, rtol=0, atol=1e-12
    )  # the reference solves
    close(m.inner(x, u, v), 0.5 * np.trace(k @ v), what="inner")


def test_generalized_bw_closed_forms(pts):
    x, y, u, _ = pts
    mm = M_GBW
    m = SPDGeneralizedBuresWasserstein(jnp.asarray(mm))
    mi = np.linalg.inv(mm)
    close(m.dist(x, y), gbw_dist(x, y), what="dist (closed form)")
    k = gbw_solve(x, mm, 0.3 * u)
    close(m.exp(x, 0.3 * u), x + 0.3 * u + mm @ k @ x @ k @ mm, what="exp (closed form)")
    # Han et al. 2023: Log_X(Y) = M (M^-1 X M^-1 Y)^1/2 + (Y M^-1 X M^-1)^1/2 M - 2 X.
    log = mm @ sqrtm(mi @ x @ mi @ y) + sqrtm(y @ mi @ x @ mi) @ mm - 2.0 * x
    close(m.log(x, y), log, what="log (closed form)")


def test_generalized_bw_is_bw_after_change_of_coordinates(pts):
    x, y, u, _ = pts
    mm = M_GBW
    m = SPDGeneralizedBuresWasserstein(jnp.asarray(mm))
    r = np.linalg.inv(sqrtm(mm))
    rinv = sqrtm(mm)

    def phi(a):
        return r @ a @ r

    def phi_inv(a):
        return rinv @ a @ rinv

    close(m.dist(x, y), np.sqrt(bw_sqdist(phi(x), phi(y))), what="dist")
    close(m.exp(x, 0.3 * u), phi_inv(bw_exp(phi(x), phi(0.3 * u))), what="exp")
    close(m.log(x, y), phi_inv(bw_log(phi(x), phi(y))), what="log")


def test_generalized_bw_at_identity_is_bw(pts):
    x, y, u, v = pts
    g, b = SPDGeneralizedBuresWasserstein(jnp.eye(N, dtype=jnp.float64)), SPDBuresWasserstein(N)
    close(g.inner(x, u, v), b.inner(x, u, v), what="inner")
    close(g.dist(x, y), b.dist(x, y), what="dist")
    close(g.exp(x, 0.3 * u), b.exp(x, 0.3 * u), what="exp")
    close(g.log(x, y), b.log(x, y), what="log")
    close(g.transp(x, y, u), b.transp(x, y, u), what="transp")


# ------------------------------------------------------------------------------ power deformation


POWER_BASES = {
    "bw": (lambda: SPDBuresWasserstein(N), lambda a, b: np.sqrt(bw_sqdist(a, b))),
    "gbw": (lambda: SPDGeneralizedBuresWasserstein(jnp.asarray(M_GBW)), gbw_dist),
    "aim": (lambda: SPDAffineInvariant(N), aim_dist),
    "le": (lambda: SPDLogEuclidean(N), le_dist),
}


@pytest.mark.parametrize("theta", [0.5, -0.7])
@pytest.mark.parametrize("base", list(POWER_BASES))
def test_power_deformed_distance(base, theta, pts):
    x, y, _, _ = pts
    make, ref = POWER_BASES[base]
    got = PowerDeformed(make(), theta).dist(x, y)
    close(got, ref(fpow(x, theta), fpow(y, theta)) / abs(theta), what=f"{base} theta={theta}")
    if base == "le":  # log-Euclidean is invariant under powers
        close(got, le_dist(x, y), what="LE invariance")


def test_power_deformed_theta_one_is_the_base_metric(pts):
    x, y, u, v = pts
    for base in (SPDBuresWasserstein(N), SPDAffineInvariant(N)):
        p = PowerDeformed(base, 1.0)
        close(p.dist(x, y), base.dist(x, y), what="dist")
        close(p.inner(x, u, v), base.inner(x, u, v), what="inner")
        close(p.exp(x, 0.3 * u), base.exp(x, 0.3 * u), what="exp")
        close(p.log(x, y), base.log(x, y), what="log")


@pytest.mark.parametrize("base,factor", [("bw", 0.5), ("aim", 1.0)])
def test_power_deformed_small_theta_limit(base, factor, pts):
    """theta -> 0: deformed BW -> LE / 2, deformed AIM -> LE, the error at least linear in theta."""
    x, y, _, _ = pts
    metric = SPDBuresWasserstein(N) if base == "bw" else SPDAffineInvariant(N)
    target = factor * le_dist(x, y)
    thetas = (1e-2, 1e-3, 1e-4)
    errs = [abs(float(PowerDeformed(metric, t).dist(x, y)) - target) for t in thetas]
    for t, e in zip(thetas, errs):
        assert e <= t * target, (thetas, errs)
    for e_big, e_small in zip(errs, errs[1:]):
        # linear: ratio 0.1 (BW, measured 0.0996); AIM is quadratic (symmetric BCH), ratio 0.01
        assert e_small <= 0.11 * e_big + 1e-12, (thetas, errs)


# ------------------------------------------------------------------------------------- means


def _cluster(rng, k, spread=0.3):
    c = random_spd(rng, N, cond=5.0)
    rc = sqrtm(c)
    return np.stack([rc @ sla.expm(random_sym(rng, N, spread)) @ rc for _ in range(k)])


@pytest.fixture
def stack(x64):
    rng = np.random.default_rng(23)
    return _cluster(rng, 6), rng.uniform(0.2, 1.0, size=6)


def test_bw_mean_solves_the_fixed_point_equation(stack):
    p, w = stack
    res = SPDBuresWasserstein(N).mean(jnp.asarray(p), jnp.asarray(w))
    assert bool(res.converged) and 1 <= int(res.n_iters) <= 10, res
    assert float(res.grad_norm) <= 1e-12
    s = np.asarray(res.mean)
    rs = sqrtm(s)
    rhs = np.tensordot(w / w.sum(), np.stack([sqrtm(rs @ a @ rs) for a in p]), axes=1)
    close(s, rhs, what="S = sum w (S^1/2 X S^1/2)^1/2")


def test_bw_mean_of_commuting_points(x64):
    rng = np.random.default_rng(2)
    d = rng.uniform(0.2, 5.0, size=(4, N))
    w = rng.uniform(0.2, 1.0, size=4)
    res = SPDBuresWasserstein(N).mean(
        jnp.asarray(np.stack([np.diag(r) for r in d])), jnp.asarray(w)
    )
    close(res.mean, np.diag((w @ np.sqrt(d) / w.sum()) ** 2), what="(sum w sqrt x)^2")
    assert bool(res.converged) and int(res.n_iters) <= 5


def test_generalized_bw_mean_solves_the_fixed_point_in_coordinates(stack):
    p, w = stack
    res = SPDGeneralizedBuresWasserstein(jnp.asarray(M_GBW)).mean(jnp.asarray(p), jnp.asarray(w))
    assert bool(res.converged)
    r = np.linalg.inv(sqrtm(M_GBW))
    s = r @ np.asarray(res.mean) @ r
    rs = sqrtm(s)
    rhs = np.tensordot(w / w.sum(), np.stack([sqrtm(rs @ r @ a @ r @ rs) for a in p]), axes=1)
    close(s, rhs, what="fixed point in phi_M coordinates")


def test_power_deformed_bw_mean_of_commuting_points(x64):
    """Deformed BW mean of diagonal matrices: ((sum w x^(theta/2))^2)^(1/theta)."""
    rng = np.random.default_rng(8)
    d = rng.uniform(0.2, 5.0, size=(4, N))
    w = rng.uniform(0.2, 1.0, size=4)
    theta = 0.5
    res = PowerDeformed(SPDBuresWasserstein(N), theta).mean(
        jnp.asarray(np.stack([np.diag(r) for r in d])), jnp.asarray(w)
    )
    close(res.mean, np.diag((w @ d ** (theta / 2) / w.sum()) ** (2 / theta)), what="mean")
