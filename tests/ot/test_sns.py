"""Tests for sinkhorn_newton_sparse (Sinkhorn-Newton-Sparse) against ott-jax, POT and dense
float64 linear algebra."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import pointcloud
from ott.solvers import linear as ott_linear

from geomjax.manifolds import Sphere
from geomjax.ot import ManifoldCost, SinkhornNewtonSparseOutput, sinkhorn_newton_sparse
from geomjax.ot._sns_sparse import (
    _top_k_rows,
    conjugate_gradient,
    matvec,
    project_gauge,
    sparsify,
)

TIGHT = 1e-11  # marginal error both solvers run to in float64 (round-off level for n ~ 30)


def _pot():
    """POT, skipping when absent or shadowed by the `tests/ot` package."""
    pot = pytest.importorskip("ot")
    if not hasattr(pot, "emd2"):
        pytest.skip("`import ot` does not give POT (shadowed by the tests/ot package)")
    return pot


def _clouds(seed, n=30, m=25, d=2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d))
    y = rng.uniform(size=(m, d)) + 0.2
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, m)
    return x, y, a / a.sum(), b / b.sum()


@jax.jit
def _ott_cost(x, y, a, b, eps):
    """ott-jax's converged Sinkhorn (implicit differentiation), jitted once per shape."""
    g = pointcloud.PointCloud(x, y, epsilon=eps)
    return ott_linear.solve(g, a, b, threshold=TIGHT, max_iterations=200_000).reg_ot_cost


@jax.jit
def _ott_plan(x, y, a, b, eps):
    g = pointcloud.PointCloud(x, y, epsilon=eps)
    return ott_linear.solve(g, a, b, threshold=TIGHT, max_iterations=200_000).matrix


@jax.jit
def _sns(c, a, b, eps, tol):
    """Default static configuration, jitted once per shape (compiling takes seconds)."""
    return sinkhorn_newton_sparse(c, a, b, epsilon=eps, tol=tol, return_plan=True)


def _rel(u, v):
    return abs(float(u) - float(v)) / abs(float(v))


@pytest.mark.parametrize("eps_rel", [1e-1, pytest.param(1e-2, marks=pytest.mark.slow)])
def test_cost_matches_ott(x64, eps_rel):
    """Both solvers converge to marginal error 1e-11; the dual value then differs by at most
    about max|f, g| * 1e-11 (first order in the marginal violation), far below 1e-6 relative."""
    x, y, a, b = (jnp.asarray(v) for v in _clouds(0))
    geom = pointcloud.PointCloud(x, y)
    eps = eps_rel * float(jnp.mean(geom.cost_matrix))
    ours = _sns(geom.cost_matrix, a, b, eps, TIGHT)
    assert bool(ours.converged) and float(ours.marginal_error) <= TIGHT
    assert _rel(ours.cost, _ott_cost(x, y, a, b, eps)) < 1e-6
    # The plan is the same too: entries agree to first order in the marginal errors.
    plan = jnp.exp((ours.f[:, None] + ours.g[None, :] - geom.cost_matrix) / eps)
    np.testing.assert_allclose(plan, ours.plan, rtol=1e-12)
    np.testing.assert_allclose(plan, _ott_plan(x, y, a, b, eps), atol=1e-8)


@pytest.mark.slow
def test_dense_matrix_equals_geometry_and_sparsity_modes(x64):
    """A dense cost matrix and the PointCloud give the same problem; the top-k, thresholded
    and exact Hessians are different Newton paths to the same optimum (1e-6 relative)."""
    x, y, a, b = (jnp.asarray(v) for v in _clouds(1))
    geom = pointcloud.PointCloud(x, y)
    eps = 0.02 * float(jnp.mean(geom.cost_matrix))
    costs = []
    for src, sparsity in ((geom, 4), (geom.cost_matrix, 4), (geom, 0.01), (geom, None)):
        out = sinkhorn_newton_sparse(src, a, b, epsilon=eps, sparsity=sparsity, tol=TIGHT)
        assert bool(out.converged)
        costs.append(float(out.cost))
    assert costs[0] == costs[1]
    for c in costs[2:]:
        assert _rel(c, costs[0]) < 1e-6


def test_reported_error_and_history(x64):
    """marginal_error is the L1 marginal violation of the plan, recomputed here from the plan;
    the history has one entry per iteration run and -1 after."""
    x, y, a, b = (jnp.asarray(v) for v in _clouds(2))
    out = _sns(pointcloud.PointCloud(x, y).cost_matrix, a, b, 0.01, 1e-9)
    err = jnp.sum(jnp.abs(out.plan.sum(1) - a)) + jnp.sum(jnp.abs(out.plan.sum(0) - b))
    np.testing.assert_allclose(out.marginal_error, err, rtol=1e-6, atol=1e-14)
    assert bool(out.converged) and float(out.marginal_error) <= 1e-9
    assert int(out.n_newton) >= 1  # 50 Sinkhorn sweeps do not reach 1e-9 at this epsilon
    k = int(out.n_sinkhorn) + int(out.n_newton)
    hist = np.asarray(out.errors)
    assert hist.shape == (1 + 50 + 50,)
    assert np.all(hist[: k + 1] >= 0) and np.all(hist[k + 1 :] == -1)
    assert hist[k] == float(out.marginal_error)
    assert int(out.n_matvecs) >= int(out.n_newton)


@pytest.mark.slow
def test_approaches_emd_as_epsilon_shrinks(x64):
    """0 <= OT_eps - OT_0 <= eps KL(P_0 | a b^T) <= eps log(n) for both SNS and ott (the KL of
    a feasible plan to a b^T is at most min(H(a), H(b)) <= log n), so both tend to POT's exact
    LP value; the bound is checked at each epsilon of a decreasing sequence."""
    pot = _pot()
    x, y, a, b = _clouds(3, n=12, m=12)
    c = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y)).cost_matrix
    exact = pot.emd2(a, b, np.asarray(c))
    bound = np.log(12)
    scale = float(jnp.mean(c))
    gaps = []
    for eps_rel in (1e-1, 3e-2, 1e-2):
        eps = eps_rel * scale
        ours = sinkhorn_newton_sparse(c, jnp.asarray(a), jnp.asarray(b), epsilon=eps, tol=1e-10)
        g = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=eps)
        ref = ott_linear.solve(
            g, jnp.asarray(a), jnp.asarray(b), threshold=1e-10, max_iterations=200_000
        )
        assert bool(ours.converged)
        for val in (float(ours.cost), float(ref.reg_ot_cost)):
            assert -1e-10 <= val - exact <= eps * bound + 1e-10
        gaps.append(float(ours.cost) - exact)
    assert gaps[0] > gaps[1] > gaps[2]


@pytest.mark.slow
def test_gradient_wrt_points_matches_ott(x64):
    """d OT_eps / d x through the cost matrix (envelope theorem) against ott's implicit
    differentiation of its converged Sinkhorn; both at marginal error 1e-11, so they agree to
    first order in it: 1e-4 relative leaves many orders of margin."""
    x, y, a, b = (jnp.asarray(v) for v in _clouds(4))
    eps = 0.01

    def ours(x, y):
        return _sns(pointcloud.PointCloud(x, y).cost_matrix, a, b, eps, TIGHT).cost

    def ref(x, y):
        return _ott_cost(x, y, a, b, eps)

    gx, gy = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, y)
    rx, ry = jax.jit(jax.grad(ref, argnums=(0, 1)))(x, y)
    for g, r in ((gx, rx), (gy, ry)):
        assert float(jnp.linalg.norm(g - r) / jnp.linalg.norm(r)) < 1e-4


@pytest.mark.slow
def test_gradient_wrt_cost_matrix_is_plan_and_weights_are_potentials(x64):
    """Envelope theorem: dOT/dC = P, dOT/da = f - eps log a (up to a constant on the simplex);
    the weight gradient is checked against a central finite difference along a simplex
    direction (zero sum), step 1e-5: truncation O(h^2) ~ 1e-10 on an O(1) curvature."""
    x, y, a, b = (jnp.asarray(v) for v in _clouds(5, n=10, m=9))
    c = pointcloud.PointCloud(x, y).cost_matrix
    eps = 0.05

    def cost(c, a):
        return sinkhorn_newton_sparse(c, a, b, epsilon=eps, tol=TIGHT).cost

    gc, ga = jax.grad(cost, argnums=(0, 1))(c, a)
    out = sinkhorn_newton_sparse(c, a, b, epsilon=eps, tol=TIGHT, return_plan=True)
    np.testing.assert_allclose(gc, out.plan, rtol=1e-12, atol=1e-15)
    direction = jnp.asarray(np.random.default_rng(0).standard_normal(10))
    direction = direction - direction.mean()
    h = 1e-5
    fd = (cost(c, a + h * direction) - cost(c, a - h * direction)) / (2 * h)
    assert abs(float(jnp.vdot(ga, direction)) - float(fd)) < 1e-7 * abs(float(fd)) + 1e-9


@pytest.mark.slow
def test_manifold_cost_geometry(x64):
    """A PointCloud with geomjax's ManifoldCost (sphere) gives ott's converged cost."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((15, 3))
    y = rng.standard_normal((12, 3)) + 0.5
    x = jnp.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))
    y = jnp.asarray(y / np.linalg.norm(y, axis=1, keepdims=True))
    cost_fn = ManifoldCost(Sphere(2))
    eps = 0.05
    ours = sinkhorn_newton_sparse(
        pointcloud.PointCloud(x, y, cost_fn=cost_fn), epsilon=eps, tol=TIGHT
    )
    g = pointcloud.PointCloud(x, y, cost_fn=cost_fn, epsilon=eps)
    ref = ott_linear.solve(g, threshold=TIGHT, max_iterations=100_000)
    assert bool(ours.converged)
    assert _rel(ours.cost, ref.reg_ot_cost) < 1e-6


def test_jit_vmap_consistent(x64):
    """vmap over a batch of cost matrices equals the per-problem calls (same iterations)."""
    cs = []
    for seed in (7, 8):
        x, y, _, _ = _clouds(seed, n=12, m=10)
        cs.append(pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y)).cost_matrix)
    batch = jnp.stack(cs)
    fn = jax.jit(jax.vmap(lambda c: sinkhorn_newton_sparse(c, epsilon=0.01, tol=1e-10)))
    outs = fn(batch)
    assert isinstance(outs, SinkhornNewtonSparseOutput)
    for i, c in enumerate(cs):
        one = sinkhorn_newton_sparse(c, epsilon=0.01, tol=1e-10)
        assert bool(outs.converged[i]) and bool(one.converged)
        np.testing.assert_allclose(outs.cost[i], one.cost, rtol=1e-12)


def test_top_k_rows_is_a_prefix_of_sorted_rows(x64):
    """The sorting-free selection keeps, per row, the largest entries (a prefix of lax.top_k's
    order, at least the maximum), never more than k."""
    p = jnp.exp(-40.0 * jax.random.uniform(jax.random.key(1), (30, 40), jnp.float64))
    k = 6
    vals, idx = _top_k_rows(p, k)
    ref_vals, _ = jax.lax.top_k(p, k)
    for i in range(30):
        kept = np.sort(np.asarray(vals[i])[np.asarray(vals[i]) > 0])[::-1]
        assert 1 <= kept.size <= k
        np.testing.assert_array_equal(kept, np.asarray(ref_vals[i, : kept.size]))
        np.testing.assert_array_equal(p[i, idx[i, : kept.size]], vals[i, : kept.size])


def test_sparse_matvec_and_cg_against_dense(x64):
    """M_s products equal the dense block matrix built here; CG solves the gauge-projected
    system to its tolerance (compared with the dense pseudo-inverse solution)."""
    p = jnp.exp(-5.0 * jax.random.uniform(jax.random.key(2), (8, 7), jnp.float64))
    sp = sparsify(p, p.sum(1), p.sum(0), 3)
    ps = np.zeros((8, 7))
    for i in range(8):
        for v, j in zip(np.asarray(sp.vals[i]), np.asarray(sp.idx[i])):
            ps[i, j] += v
    dense = np.block([[np.diag(ps.sum(1)), ps], [ps.T, np.diag(ps.sum(0))]])
    rng = np.random.default_rng(0)
    u, v = jnp.asarray(rng.standard_normal(8)), jnp.asarray(rng.standard_normal(7))
    mu, mv = matvec(sp, u, v)
    np.testing.assert_allclose(
        np.concatenate([mu, mv]), dense @ np.concatenate([u, v]), rtol=1e-13, atol=1e-14
    )
    np.testing.assert_allclose(dense @ np.r_[np.ones(8), -np.ones(7)], 0.0, atol=1e-14)
    rhs = project_gauge(u, v)
    (du, dv), iters = conjugate_gradient(sp, rhs, jnp.asarray(1e-12), 100)
    ref = np.linalg.pinv(dense) @ np.concatenate(rhs)
    np.testing.assert_allclose(np.concatenate([du, dv]), ref, rtol=1e-8, atol=1e-8)
    assert 1 <= int(iters) <= 15  # CG in exact arithmetic: at most rank(M_s) = 14 steps


# ------------------------------------------------------------------------- degenerate inputs


def test_zero_mass_concrete_raises():
    c = jnp.ones((3, 4))
    with pytest.raises(ValueError, match="argument `a` must be positive"):
        sinkhorn_newton_sparse(c, jnp.array([0.5, 0.5, 0.0]), epsilon=0.1)
    with pytest.raises(ValueError, match="argument `b` must be positive"):
        sinkhorn_newton_sparse(c, b=jnp.array([0.5, 0.5, 0.0, 0.0]), epsilon=0.1)


def test_concrete_weights_closed_over_in_jit():
    """Weights that are constants inside the caller's jit are still value-checked (a zero
    raises) and otherwise accepted (regression: the check used jnp, giving a tracer there)."""
    c = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 4)), jnp.float32)
    a = np.array([0.25, 0.25, 0.5], np.float32)
    out = jax.jit(lambda c: sinkhorn_newton_sparse(c, a, epsilon=0.1))(c)
    assert bool(out.converged)
    a0 = np.array([0.5, 0.5, 0.0], np.float32)
    with pytest.raises(ValueError, match="argument `a` must be positive"):
        jax.jit(lambda c: sinkhorn_newton_sparse(c, a0, epsilon=0.1))(c)


def test_zero_mass_or_bad_epsilon_traced_not_converged():
    """Under jit the weight values and epsilon are not seen at trace time: no NaN (the test
    runs with jax_debug_nans), converged=False."""
    c = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 4)), jnp.float32)
    fn = jax.jit(lambda a, eps: sinkhorn_newton_sparse(c, a, epsilon=eps))
    out = fn(jnp.array([0.5, 0.5, 0.0]), 0.1)
    assert not bool(out.converged)
    out = fn(jnp.full((3,), 1 / 3), 0.0)
    assert not bool(out.converged)
    out = fn(jnp.full((3,), 1 / 3), 0.1)
    assert bool(out.converged)


def test_epsilon_too_small_for_float32_not_converged():
    """float32 with C / eps ~ 1e6: potentials of size ~1 carry round-off ~1e-7, i.e. ~0.1 in
    the exponent, so the plan's marginals cannot reach 1e-4; finite output, converged=False."""
    x, y, _, _ = _clouds(9, n=20, m=20)
    c = jnp.asarray(pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y)).cost_matrix, jnp.float32)
    out = sinkhorn_newton_sparse(c, epsilon=1e-6, n_sinkhorn=20, max_newton=20)
    assert not bool(out.converged)
    assert np.isfinite(float(out.marginal_error)) and float(out.marginal_error) > 1e-4


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (dict(geom_or_cost_matrix=jnp.ones((3,))), ValueError, "geom_or_cost_matrix"),
        (dict(geom_or_cost_matrix="cost"), TypeError, "geom_or_cost_matrix"),
        (dict(geom_or_cost_matrix=jnp.ones((3, 4), jnp.int32)), TypeError, "geom_or_cost"),
        (dict(a=jnp.ones(4) / 4), ValueError, "argument `a`"),
        (dict(b=jnp.array([0.5, 0.6, 0.1, 0.1])), ValueError, "argument `b`"),
        (dict(epsilon=0.0), ValueError, "epsilon"),
        (dict(epsilon=float("nan")), ValueError, "epsilon"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(n_sinkhorn=-1), ValueError, "n_sinkhorn"),
        (dict(max_newton=1.5), ValueError, "max_newton"),
        (dict(sparsity=0), ValueError, "sparsity"),
        (dict(sparsity=1.5), ValueError, "sparsity"),
        (dict(max_cg=0), ValueError, "max_cg"),
    ],
)
def test_invalid_arguments(kwargs, err, match):
    args = dict(geom_or_cost_matrix=jnp.ones((3, 4)), epsilon=0.1)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        sinkhorn_newton_sparse(**args)


# ------------------------------------------------------------------------------ slow checks


@pytest.mark.slow
def test_small_epsilon_larger_problem_matches_ott(x64):
    """n = 300 uniform clouds at epsilon = 1e-3 mean(C): SNS converges with far fewer iterations
    than ott's Sinkhorn (at least 10x) and to the same cost (1e-6 relative). (At 1e-4 mean(C)
    neither converges within these budgets: 50 + 100 SNS iterations, 500k Sinkhorn ones.)"""
    eps_rel = 1e-3
    rng = np.random.default_rng(10)
    x, y = jnp.asarray(rng.uniform(size=(300, 2))), jnp.asarray(rng.uniform(size=(300, 2)))
    geom = pointcloud.PointCloud(x, y)
    eps = eps_rel * float(jnp.mean(geom.cost_matrix))
    ours = jax.jit(lambda g: sinkhorn_newton_sparse(g, epsilon=eps, tol=1e-8, max_newton=100))(geom)
    g = pointcloud.PointCloud(x, y, epsilon=eps)
    ref = jax.jit(lambda g: ott_linear.solve(g, threshold=1e-8, max_iterations=500_000))(g)
    assert bool(ours.converged) and bool(ref.converged)
    assert _rel(ours.cost, ref.reg_ot_cost) < 1e-6
    assert 10 * (int(ours.n_sinkhorn) + int(ours.n_newton)) <= int(ref.n_iters)
