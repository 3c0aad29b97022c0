"""Stiefel(n, p), embedded and canonical metrics: exp against the geodesic ODE and scipy's expm,
log by the exp(log) roundtrip and the convergence report, derivatives by identities.

tests/conftest.py turns ``jax_debug_nans`` on for every test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg as sla
from jax.test_util import check_grads

from geomjax.manifolds._stiefel import Stiefel
from geomjax.testing import rounding_tolerance

N, P = 5, 2
METRICS = ("euclidean", "canonical")
# float32: 1e-5 relative for closed forms; 1e-4 for the iterative log (its default stopping
# tolerance is 100 sqrt(p) eps ~ 2e-5 on the residual). float64: 1e-10 (1e-13 typical).
TOL = {jnp.float32: 1e-4, jnp.float64: 1e-10}


def np_orth(rng, n, p):
    q, _ = np.linalg.qr(rng.normal(size=(n, p)))
    return q


def np_tangent(rng, x, norm, metric="euclidean"):
    u = rng.normal(size=x.shape)
    u = u - x @ (0.5 * (x.T @ u + u.T @ x))
    sq = np.sum(u * u) - (0.5 * np.sum((x.T @ u) ** 2) if metric == "canonical" else 0.0)
    return norm * u / np.sqrt(sq)


# Module-level jitted helpers: the manifold is a pytree argument, so equal manifolds hit the cache.
_exp_batch = jax.jit(lambda st, x, u: jax.vmap(st.exp)(x, u))


def near_pairs(dtype, metric, k, radius, seed):
    """k points x and y = Exp_x(u) with |u|_x = radius (numpy-generated), as jnp arrays."""
    rng = np.random.default_rng(seed)
    st = Stiefel(N, P, metric=metric)
    xs = np.stack([np_orth(rng, N, P) for _ in range(k)])
    us = np.stack([np_tangent(rng, x, radius, metric) for x in xs])
    with jax.enable_x64(True):  # targets in float64, then rounded
        ys = np.asarray(_exp_batch(st, jnp.asarray(xs), jnp.asarray(us)))
    return jnp.asarray(xs, dtype), jnp.asarray(us, dtype), jnp.asarray(ys, dtype)


# -- construction and validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=3, p=4),
        dict(n=3, p=0),
        dict(n=3.0, p=1),
        dict(n=3, p=True),
        dict(n=3, p=2, metric="bures"),
        dict(n=3, p=2, retraction="svd"),
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        Stiefel(**kwargs)


def test_dim_shape_and_bad_inputs():
    st = Stiefel(5, 2)
    assert st.dim == 7 and st.point_shape == (5, 2) and Stiefel(3, 3).dim == 3
    x = st.random_point(jax.random.key(0))
    with pytest.raises(ValueError, match="`y`"):
        st.log(x, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="`method`"):
        st.log_with_info(x, x, method="gauss")
    with pytest.raises(ValueError, match="`max_iter`"):
        st.log_with_info(x, x, max_iter=-1)
    with pytest.raises(ValueError, match="`tol`"):
        st.log_with_info(x, x, tol=0.0)
    with pytest.raises(TypeError, match="`u`"):
        st.exp(x, jnp.zeros((5, 2), jnp.int32))


# -- points and tangent vectors ----------------------------------------------------------------


def test_points_and_tangents_stay_on_manifold(dtype):
    k = 6
    keys = jax.random.split(jax.random.key(1), 3 * k).reshape(3, k)
    combos = (("euclidean", "qr"), ("canonical", "polar"))
    sts = [Stiefel(N, P, metric=m, retraction=r) for m, r in combos]

    @jax.jit
    @jax.vmap
    def run(k1, k2, k3):
        x = sts[0].random_point(k1, dtype)
        y = sts[0].random_point(k2, dtype)
        u = sts[0].random_tangent(k3, x)
        g = jax.random.normal(k3, x.shape, dtype)
        out = [sts[0].check_point(x), sts[0].check_point(sts[0].projx(x + 0.3 * g))]
        for st in sts:
            out += [
                st.check_point(st.exp(x, 2.0 * u)),
                st.check_point(st.retr(x, 2.0 * u)),
                st.check_tangent(x, u),
                st.check_tangent(x, st.egrad_to_rgrad(x, g)),
                st.check_tangent(y, st.transp(x, y, u)),
            ]
        return jnp.stack(out)

    res = run(*keys)
    assert float(jnp.max(res)) < 10 * float(jnp.finfo(dtype).eps) * N, res


def test_random_point_is_haar(x64):
    # E[X X^T] = (p / n) I for the uniform distribution (a random p-frame).
    st = Stiefel(4, 2)
    keys = jax.random.split(jax.random.key(2), 4000)
    xs = jax.vmap(lambda k: st.random_point(k, jnp.float64))(keys)
    second = jnp.mean(jnp.einsum("kip,kjp->kij", xs, xs), axis=0)
    np.testing.assert_allclose(second, 0.5 * np.eye(4), atol=0.03)  # diag ~ U(0, 1): ~6 std. errors


# -- exponential map against independent references ----------------------------------------------


def geodesic_ode_numpy(x, u, metric):
    """Integrate the geodesic equation (Edelman et al. 1998, eqs. 2.7 and 2.41) to t = 1."""
    n, p = x.shape

    def rhs(_, z):
        y, yd = z[: n * p].reshape(n, p), z[n * p :].reshape(n, p)
        if metric == "euclidean":
            ydd = -y @ (yd.T @ yd)
        else:
            a = y.T @ yd
            ydd = -yd @ (yd.T @ y) - y @ (a @ a + yd.T @ yd)
        return np.concatenate([yd.ravel(), ydd.ravel()])

    sol = scipy.integrate.solve_ivp(
        rhs,
        (0.0, 1.0),
        np.concatenate([x.ravel(), u.ravel()]),
        rtol=1e-12,
        atol=1e-13,
        method="DOP853",
    )
    return sol.y[: n * p, -1].reshape(n, p)


def exp_scipy_numpy(x, u, metric):
    """Closed forms with scipy.linalg.expm: Edelman's block formula (embedded) and exp(Omega) X."""
    p = x.shape[1]
    a = x.T @ u
    if metric == "euclidean":
        blk = np.block([[a, -u.T @ u], [np.eye(p), a]])
        return np.hstack([x, u]) @ sla.expm(blk)[:, :p] @ sla.expm(-a)
    omega = u @ x.T - x @ u.T - x @ a @ x.T  # horizontal lift: Omega X = U
    return sla.expm(omega) @ x


def exp_canonical_qr_numpy(x, u):
    """Edelman et al. (2.45): QR of (I - X X^T) U and the exponential of a 2p x 2p matrix."""
    p = x.shape[1]
    a = x.T @ u
    q, r = np.linalg.qr(u - x @ a)
    m = sla.expm(np.block([[a, -r.T], [r, np.zeros((p, p))]]))
    return x @ m[:p, :p] + q @ m[p:, :p]


@pytest.mark.parametrize("metric", METRICS)
def test_exp_against_ode_and_scipy(x64, metric):
    st = Stiefel(N, P, metric=metric)
    rng = np.random.default_rng(3)
    exp = jax.jit(st.exp)
    for norm in (1e-3, 0.8, 2.5):
        x = np_orth(rng, N, P)
        u = np_tangent(rng, x, norm, metric)
        y = np.asarray(exp(jnp.asarray(x), jnp.asarray(u)))
        np.testing.assert_allclose(y, exp_scipy_numpy(x, u, metric), rtol=0, atol=1e-12)
        np.testing.assert_allclose(y, geodesic_ode_numpy(x, u, metric), rtol=0, atol=1e-9)
        if metric == "canonical":
            np.testing.assert_allclose(y, exp_canonical_qr_numpy(x, u), rtol=0, atol=1e-12)


def test_exp_at_full_rank_p_equals_n(x64):
    # p = n (the orthogonal group): both metrics give X expm(X^T U) (embedded: a = X^T U skew,
    # and the canonical metric is half the embedded one on O(n)).
    rng = np.random.default_rng(4)
    x = np_orth(rng, 3, 3)
    u = np_tangent(rng, x, 1.3)
    exps = jax.jit(lambda a, b: [Stiefel(3, 3, metric=m).exp(a, b) for m in METRICS])
    for y in exps(jnp.asarray(x), jnp.asarray(u)):
        np.testing.assert_allclose(y, x @ sla.expm(x.T @ u), rtol=0, atol=1e-12)


# -- logarithm: roundtrip and convergence report -------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_exp_log_roundtrip(dtype, metric):
    st = Stiefel(N, P, metric=metric)
    xs, us, ys = near_pairs(dtype, metric, 4, 1.0, seed=5)

    @jax.jit
    @jax.vmap
    def run(x, y):
        sols = [st.log_with_info(x, y, method=m) for m in ("newton", "shooting")]
        return sols, [st.exp(x, sol.value) for sol in sols], st.dist(x, y)

    sols, backs, d = run(xs, ys)
    tol = TOL[dtype]
    for sol, back in zip(sols, backs):
        assert bool(jnp.all(sol.converged)) and int(jnp.max(sol.n_iters)) < 100
        assert float(jnp.max(sol.error)) <= 100 * np.sqrt(P) * float(jnp.finfo(dtype).eps)
        np.testing.assert_allclose(back, ys, rtol=0, atol=tol)
        # Inside the injectivity radius the log is the unique preimage of y: the tangent u.
        np.testing.assert_allclose(sol.value, us, rtol=0, atol=tol)
        np.testing.assert_allclose(jax.vmap(st.norm)(xs, sol.value), d, rtol=tol)
    np.testing.assert_allclose(d, 1.0, rtol=tol)


def test_log_reports_non_convergence(x64):
    st = Stiefel(N, P)
    xs, _, ys = near_pairs(jnp.float64, "euclidean", 1, 1.0, seed=6)
    x, y = xs[0], ys[0]
    sol = st.log_with_info(x, y, max_iter=1, method="shooting")
    assert not bool(sol.converged) and int(sol.n_iters) == 1 and float(sol.error) > 1e-6
    # Far apart (distance 3.5, beyond the injectivity radius): whatever is returned is
    # reported honestly; a converged answer must be a genuine preimage.
    rng = np.random.default_rng(7)
    x = np_orth(rng, N, P)
    u = np_tangent(rng, x, 3.5)
    y = np.asarray(_exp_batch(st, jnp.asarray(x)[None], jnp.asarray(u)[None])[0])
    sol = st.log_with_info(jnp.asarray(x), jnp.asarray(y), method="shooting")
    err = float(jnp.linalg.norm(st.exp(jnp.asarray(x), sol.value) - y))
    np.testing.assert_allclose(float(sol.error), err, rtol=1e-6, atol=1e-15)
    assert bool(sol.converged) == (err <= 100 * np.sqrt(P) * np.finfo(np.float64).eps)
    # log(x, x) = 0 without iterating.
    sol = st.log_with_info(jnp.asarray(x), jnp.asarray(x), method="shooting")
    assert bool(sol.converged) and int(sol.n_iters) == 0
    assert float(jnp.max(jnp.abs(sol.value))) < 1e-14


@pytest.mark.parametrize("metric", METRICS)
def test_dist_symmetry_and_triangle(x64, metric):
    # Random triples within 0.5 of a base point: all pairwise logs are in the solver's range.
    st = Stiefel(N, P, metric=metric)
    rng = np.random.default_rng(8)
    base = np_orth(rng, N, P)
    us = np.stack([np_tangent(rng, base, r, metric) for r in rng.uniform(0.1, 0.5, 9)])
    pts = np.asarray(_exp_batch(st, jnp.asarray(np.stack([base] * 9)), jnp.asarray(us)))
    i, j = np.triu_indices(9, 1)
    dist = jax.jit(jax.vmap(st.dist))
    d = np.zeros((9, 9))
    d[i, j] = dist(jnp.asarray(pts[i]), jnp.asarray(pts[j]))
    d[j, i] = dist(jnp.asarray(pts[j]), jnp.asarray(pts[i]))
    np.testing.assert_allclose(d, d.T, rtol=0, atol=1e-12)
    viol = d[:, None, :] - (d[:, :, None] + d[None, :, :])  # d(a, c) - d(a, b) - d(b, c)
    assert viol.max() <= 1e-12


# -- retraction and transport ------------------------------------------------------------------


@pytest.mark.parametrize("retraction", ["qr", "polar"])
def test_retraction_agrees_with_exp_to_first_order(x64, retraction):
    st = Stiefel(N, P, retraction=retraction)
    rng = np.random.default_rng(9)
    x = jnp.asarray(np_orth(rng, N, P))
    u = jnp.asarray(np_tangent(rng, np.asarray(x), 1.0))
    errs = [float(jnp.max(jnp.abs(st.retr(x, t * u) - st.exp(x, t * u)))) for t in (1e-2, 1e-3)]
    assert errs[1] < 1e-5 and errs[0] / errs[1] > 50  # the gap is O(t^2)
    # QR of x itself: x up to the factorization's round-off (linear growth in N)
    qr_tol = rounding_tolerance(np.float64, n_ops=N, growth="linear")
    np.testing.assert_allclose(st.retr(x, 0 * u), x, rtol=0, atol=qr_tol)


def test_projection_transport_is_projection(x64):
    st = Stiefel(N, P)
    rng = np.random.default_rng(10)
    x, y = np_orth(rng, N, P), np_orth(rng, N, P)
    u = np_tangent(rng, x, 1.0)
    ref = u - y @ (0.5 * (y.T @ u + u.T @ y))
    out = st.transp(jnp.asarray(x), jnp.asarray(y), jnp.asarray(u))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)


# -- metric-dependent gradients ---------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_egrad_to_rgrad_represents_the_differential(x64, metric):
    # <rgrad, v>_x = tr(G^T v) for every tangent v (definition of the Riemannian gradient).
    st = Stiefel(N, P, metric=metric)
    rng = np.random.default_rng(11)
    x = jnp.asarray(np_orth(rng, N, P))
    g = jnp.asarray(rng.normal(size=(N, P)))
    r = st.egrad_to_rgrad(x, g)
    for _ in range(3):
        v = jnp.asarray(np_tangent(rng, np.asarray(x), 1.0))
        np.testing.assert_allclose(st.inner(x, r, v), jnp.sum(g * v), rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_gradient_of_squared_distance_is_minus_log(x64, metric):
    # grad_y (1/2) d(x, y)^2 = -log_y(x): checks the implicit derivative of the iterative log
    # against a second, independent log solve.
    st = Stiefel(N, P, metric=metric)
    xs, _, ys = near_pairs(jnp.float64, metric, 1, 0.8, seed=12)
    x, y = xs[0], ys[0]
    g = jax.jit(jax.grad(lambda b: 0.5 * st.sqdist(x, b)))(y)
    np.testing.assert_allclose(st.egrad_to_rgrad(y, g), -st.log(y, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("metric", METRICS)
def test_finite_derivatives_at_coincident_points(dtype, metric):
    st = Stiefel(N, P, metric=metric)
    x = st.random_point(jax.random.key(13), dtype)

    @jax.jit
    def run(a, b):
        return (
            jax.grad(st.dist, argnums=(0, 1))(a, b),
            jax.grad(st.sqdist, argnums=(0, 1))(a, b),
            jax.jacfwd(lambda v: st.exp(a, v))(jnp.zeros_like(a)),
            st.dist(a, b),
        )

    gd, gs, jf, d = run(x, x)
    for leaf in jax.tree.leaves((gd, gs, jf)):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    assert float(d) == 0.0 and all(float(jnp.max(jnp.abs(g))) == 0.0 for g in gd)
    # D Exp_x(0) = identity on tangent vectors.
    u = st.random_tangent(jax.random.key(14), x)
    du = jnp.einsum("ijkl,kl->ij", jf, u)
    # a Jacobian of N x P entries (from exp's matrix functions) contracted with u: NP-term
    # sums, worst-case growth
    tol = rounding_tolerance(dtype, n_ops=du.size, growth="linear")
    np.testing.assert_allclose(du, u, rtol=0, atol=tol * float(jnp.max(jnp.abs(u))))


@pytest.mark.parametrize("metric", METRICS)
def test_check_grads_generic_points(x64, metric):
    # log-based functions are differentiated along the manifold, so they are composed with
    # projx (check_grads perturbs in all ambient directions).
    st = Stiefel(N, P, metric=metric, retraction="polar")
    xs, us, ys = near_pairs(jnp.float64, metric, 1, 0.7, seed=15)
    x, u, y = xs[0], us[0], ys[0]
    check_grads(jax.jit(st.exp), (x, u), order=1, modes=("rev",))
    sq = jax.jit(lambda a, b: st.sqdist(st.projx(a), st.projx(b)))
    check_grads(sq, (x, y), order=1, modes=("rev",))


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
def test_check_grads_second_order(x64, metric):
    st = Stiefel(N, P, metric=metric, retraction="polar")
    xs, us, ys = near_pairs(jnp.float64, metric, 1, 0.7, seed=15)
    x, u, y = xs[0], us[0], ys[0]
    check_grads(st.exp, (x, u), order=2, modes=("fwd", "rev"))
    check_grads(st.retr, (x, u), order=2, modes=("fwd", "rev"))
    log = lambda a, b: st.log(st.projx(a), st.projx(b))  # noqa: E731
    check_grads(log, (x, y), order=2, modes=("fwd", "rev"))
