"""Tests for the ott-jax Sinkhorn facades: sinkhorn, sinkhorn_divergence, ManifoldCost."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from ott.geometry import geometry as ott_geometry
from ott.geometry import pointcloud
from ott.solvers import linear as ott_linear
from ott.tools import sinkhorn_divergence as ott_sd
from scipy.special import logsumexp

from geomjax.manifolds import Grassmann, PoincareBall, Sphere
from geomjax.ot._sinkhorn import ManifoldCost, sinkhorn, sinkhorn_divergence
from geomjax.testing import assert_allclose_dtype, rounding_tolerance

TIGHT = dict(threshold=1e-12, max_iterations=20000)  # float64 runs to round-off


def _pot():
    """POT, skipping when absent or shadowed by the `tests/ot` package (pytest's prepend import
    mode puts `tests/` on sys.path, where `tests/ot/__init__.py` then wins over POT)."""
    pot = pytest.importorskip("ot")
    if not hasattr(pot, "sinkhorn"):
        pytest.skip("`import ot` does not give POT (shadowed by the tests/ot package)")
    return pot


def _clouds(seed, n=7, m=5, d=2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + np.array([1.0] + [0.0] * (d - 1))
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, m)
    return (
        x.astype(dtype),
        y.astype(dtype),
        (a / a.sum()).astype(dtype),
        (b / b.sum()).astype(dtype),
    )


def _np_entropic_ot(c, a, b, eps, iters=100000, tol=1e-12):
    """Independent float64 log-domain Sinkhorn; returns the primal value
    <P, C> + eps KL(P | a b^T) and the plan."""
    f, g = np.zeros(len(a)), np.zeros(len(b))
    la, lb = np.log(a), np.log(b)
    for _ in range(iters):
        g = -eps * logsumexp((f[:, None] - c) / eps + la[:, None], axis=0)
        f = -eps * logsumexp((g[None, :] - c) / eps + lb[None, :], axis=1)
        plan = np.exp((f[:, None] + g[None, :] - c) / eps + la[:, None] + lb[None, :])
        if np.abs(plan.sum(0) - b).sum() < tol:
            break
    kl = np.sum(plan * (np.log(plan) - la[:, None] - lb[None, :])) - plan.sum() + 1.0
    return float(np.sum(plan * c) + eps * kl), plan


def _sqeuclid(x, y):
    return np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def test_matches_direct_ott_run(dtype):
    """The facade returns exactly what ott returns for the same problem and settings."""
    x, y, a, b = (jnp.asarray(t, dtype) for t in _clouds(0))
    eps = 0.3

    @jax.jit
    def both(x, y, a, b):
        ours = sinkhorn(x, y, a, b, epsilon=eps, return_plan=True, return_potentials=True)
        ref = ott_linear.solve(pointcloud.PointCloud(x, y, epsilon=eps), a, b)
        return ours, (ref.reg_ot_cost, ref.matrix, ref.f, ref.g, ref.converged, ref.n_iters)

    ours, ref = both(x, y, a, b)
    for got, want in zip((ours.cost, ours.plan, ours.f, ours.g, ours.converged, ours.n_iters), ref):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert ours.cost.dtype == dtype
    assert bool(ours.converged) and 0.0 <= float(ours.marginal_error) < 1e-3


def test_matches_numpy_reference(x64):
    x, y, a, b = _clouds(1)
    eps = 0.2
    out = jax.jit(lambda *t: sinkhorn(*t, epsilon=eps, return_plan=True, **TIGHT))(x, y, a, b)
    ref_cost, ref_plan = _np_entropic_ot(_sqeuclid(x, y), a, b, eps)
    assert bool(out.converged)
    # both float64 Sinkhorns stop at marginal errors 1e-12: values agree to the float64
    # default; plan entries (down to ~1e-3 of the largest) to 10x that
    assert_allclose_dtype(out.cost, ref_cost)
    assert_allclose_dtype(out.plan, ref_plan, scale=10.0)
    np.testing.assert_allclose(np.asarray(out.plan).sum(1), a, rtol=0, atol=1e-12)  # the threshold


def test_plan_matches_pot(x64):
    pot = _pot()
    x, y, a, b = _clouds(2)
    eps = 0.5
    plan = jax.jit(lambda *t: sinkhorn(*t, epsilon=eps, return_plan=True, **TIGHT).plan)(x, y, a, b)
    ref = pot.sinkhorn(
        a, b, _sqeuclid(x, y), eps, method="sinkhorn_log", stopThr=1e-14, numItermax=100000
    )
    assert_allclose_dtype(plan, ref, scale=10.0)  # float64 plans at threshold 1e-12, as above


@pytest.mark.parametrize(
    "manifold", [Sphere(2), Grassmann(3, 2)], ids=["sphere-dist", "grassmann-sqdist"]
)
def test_manifold_cost_matches_dense_geometry(x64, manifold):
    keys = jax.random.split(jax.random.key(3), 11)
    x = jnp.stack([manifold.random_point(k, jnp.float64) for k in keys[:6]])
    y = jnp.stack([manifold.random_point(k, jnp.float64) for k in keys[6:]])
    eps = 0.1

    @jax.jit
    def both(x, y):
        ours = sinkhorn(x, y, epsilon=eps, cost=manifold, return_plan=True)
        sq = jax.vmap(jax.vmap(lambda p, q: manifold.dist(p, q) ** 2, (None, 0)), (0, None))(x, y)
        ref = ott_linear.solve(ott_geometry.Geometry(cost_matrix=sq, epsilon=eps))
        return ours, ref.reg_ot_cost, ref.matrix

    ours, ref_cost, ref_plan = both(x, y)
    assert bool(ours.converged)
    assert_allclose_dtype(ours.cost, ref_cost)
    assert_allclose_dtype(ours.plan, ref_plan)


def test_sinkhorn_divergence_identical_is_zero(dtype):
    x, y, _, _ = (jnp.asarray(t, dtype) for t in _clouds(4, n=8, m=6))
    f = jax.jit(
        lambda x, y: (
            sinkhorn_divergence(x, x, epsilon=0.1),
            sinkhorn_divergence(x, y, epsilon=0.1),
        )
    )
    same, diff = f(x, y)
    scale = float(np.mean(_sqeuclid(np.asarray(x, np.float64), np.asarray(x, np.float64))))
    assert bool(same.converged) and bool(diff.converged)
    assert abs(float(same.divergence)) <= 1e-6 * scale
    assert float(diff.divergence) > 0.1


def test_sinkhorn_divergence_matches_reference(x64):
    x, y, a, b = _clouds(5)
    eps = 1.0  # the plain (non-symmetrized) reference converges slowly on x-x at small eps

    @jax.jit
    def both(x, y, a, b):
        ott_div, _ = ott_sd.sinkdiv(x, y, a=a, b=b, epsilon=eps, solve_kwargs=TIGHT)
        return sinkhorn_divergence(x, y, a, b, epsilon=eps, **TIGHT), ott_div

    out, ott_div = both(x, y, a, b)
    ref = (
        _np_entropic_ot(_sqeuclid(x, y), a, b, eps)[0]
        - 0.5 * _np_entropic_ot(_sqeuclid(x, x), a, a, eps)[0]
        - 0.5 * _np_entropic_ot(_sqeuclid(y, y), b, b, eps)[0]
    )
    assert bool(out.converged) and float(out.marginal_error) < 1e-12
    # three float64 entropic costs to threshold 1e-12, combined with cancellation: 10x default
    assert_allclose_dtype(out.divergence, ref, scale=10.0)
    assert ref > 0
    np.testing.assert_array_equal(
        np.asarray(out.divergence), np.asarray(ott_div)
    )  # ott's entry point


def test_check_grads(x64):
    """Gradients (implicit differentiation + Danskin) against finite differences."""
    x, y, a, _ = _clouds(6, n=5, m=4)
    f = jax.jit(lambda x, y, a: sinkhorn(x, y, a / jnp.sum(a), epsilon=0.5, **TIGHT).cost)
    check_grads(f, (x, y, a), order=1, modes=("rev",))
    fd = jax.jit(lambda x: sinkhorn_divergence(x, y, epsilon=0.5, **TIGHT).divergence)
    check_grads(fd, (x,), order=1, modes=("rev",))


def test_check_grads_manifold_and_curvature(x64):
    """Through ManifoldCost: w.r.t. points on the sphere and the Poincare ball's curvature."""
    sphere = Sphere(2)
    keys = jax.random.split(jax.random.key(7), 9)
    xs = jnp.stack([sphere.random_point(k, jnp.float64) for k in keys[:5]])
    ys = jnp.stack([sphere.random_point(k, jnp.float64) for k in keys[5:]])
    check_grads(
        jax.jit(lambda x: sinkhorn(x, ys, epsilon=0.3, cost=sphere, **TIGHT).cost),
        (xs,),
        order=1,
        modes=("rev",),
    )
    x, y, _, _ = _clouds(8, n=5, m=4)
    x, y = 0.2 * x, 0.2 * y
    fc = jax.jit(lambda c: sinkhorn(x, y, epsilon=0.1, cost=PoincareBall(2, c), **TIGHT).cost)
    check_grads(fc, (1.0,), order=1, modes=("rev",))


@pytest.mark.parametrize(
    "cost", [None, Sphere(1), PoincareBall(2)], ids=["sqeuclid", "sphere", "poincare"]
)
def test_gradients_finite_at_identical_inputs(cost):
    """Coincident points (x == y, and the x-x term of the divergence): finite gradients."""
    x, _, a, _ = (jnp.asarray(t, jnp.float32) for t in _clouds(9, n=6, m=6))
    if cost is not None:
        x = 0.5 * x / jnp.linalg.norm(x, axis=1, keepdims=True)
        if isinstance(cost, Sphere):
            x = 2.0 * x

    thr = 1e-5  # float32 Sinkhorn converges well below this for 6 points

    @jax.jit
    def grads(x, a):
        kw = dict(epsilon=0.1, cost=cost, threshold=thr)
        div = lambda x, y, a: sinkhorn_divergence(x, y, a, a, **kw).divergence
        ot = lambda x, y, a: sinkhorn(x, y, a, a, **kw).cost
        return jax.grad(div, (0, 1, 2))(x, x, a), jax.grad(ot, (0, 1, 2))(x, x, a)

    g_div, g_ot = grads(x, a)
    for leaf in jax.tree.leaves((g_div, g_ot)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # S(x, x) is a minimum in the first argument: zero gradient, up to the solves' errors. A
    # plan error of L1 size e moves sum_j P_ij grad c(x_i, x_j) by <= e max |grad c| =
    # e 2 max d(x_i, x_j) (c = d^2): e = the threshold plus the float32 round-off of the 6x6
    # plan over the iterations (worst-case linear growth). With the default threshold 1e-3 the
    # squared-Euclidean gradient was 8e-5, at 1e-5 it is 5e-6.
    dist = (lambda p, q: jnp.linalg.norm(p - q)) if cost is None else cost.dist
    dmax = float(jnp.max(jax.vmap(lambda p: jax.vmap(lambda q: dist(p, q))(x))(x)))
    e = thr + rounding_tolerance(jnp.float32, n_ops=36, growth="linear")
    np.testing.assert_allclose(np.asarray(g_div[0]), 0.0, rtol=0, atol=e * 2 * dmax)


def test_jit_and_vmap():
    x, y, _, _ = _clouds(10, dtype=np.float32)
    xs = jnp.stack([jnp.asarray(x), jnp.asarray(x) + 0.5, jnp.asarray(x) * 2.0])
    f = lambda x: sinkhorn(x, y, epsilon=0.2)
    batched = jax.jit(jax.vmap(f))(xs)
    single = jax.jit(f)
    for i in range(3):
        out = single(xs[i])
        # the same float32 iterations batched: round-off accumulated over the iterations (10x)
        assert_allclose_dtype(batched.cost[i], out.cost, scale=10.0)
        assert int(batched.n_iters[i]) == int(out.n_iters)


def test_status_when_not_converged():
    x, y, _, _ = _clouds(11, dtype=np.float32)
    out = jax.jit(lambda x, y: sinkhorn(x, y, epsilon=0.01, max_iterations=20, threshold=1e-9))(
        x, y
    )
    assert not bool(out.converged)
    assert int(out.n_iters) == 20
    assert float(out.marginal_error) > 1e-9
    assert out.plan is None and out.f is None and out.g is None


def test_zero_weights_drop_points(x64):
    """A zero-mass point does not change the value (same as removing it). Documented limitation:
    ott computes masked-out NaN intermediates there, so this runs with jax_debug_nans off."""
    x, y, a, b = _clouds(12)
    a0 = np.concatenate([a, [0.0]])
    x0 = np.concatenate([x, [[5.0, 5.0]]])
    with jax.debug_nans(False):
        full = jax.jit(lambda *t: sinkhorn(*t, epsilon=0.3, **TIGHT).cost)(x0, y, a0, b)
    ref, _ = _np_entropic_ot(_sqeuclid(x, y), a, b, 0.3)
    assert_allclose_dtype(full, ref)


def test_manifold_cost_pytree_and_call(x64):
    ball = PoincareBall(2, 0.5)
    cost = ManifoldCost(ball)
    leaves, treedef = jax.tree.flatten(cost)
    assert len(leaves) == 1  # the curvature
    rebuilt = jax.tree.unflatten(treedef, leaves)
    p, q = jnp.array([0.1, 0.2]), jnp.array([-0.3, 0.4])
    want = float(ball.dist(p, q)) ** 2
    assert_allclose_dtype(jax.jit(lambda c, p, q: c(p, q))(rebuilt, p, q), want)
    grassmann = Grassmann(3, 2)  # has sqdist; 2-D points arrive flattened
    u, v = (grassmann.random_point(jax.random.key(i), jnp.float64) for i in (0, 1))
    assert_allclose_dtype(ManifoldCost(grassmann)(u.ravel(), v.ravel()), grassmann.sqdist(u, v))


def test_validation_errors():
    x, y, a, b = (jnp.asarray(t) for t in _clouds(13, dtype=np.float32))
    for fn in (sinkhorn, sinkhorn_divergence):
        with pytest.raises(ValueError, match="`x` and `y`"):
            fn(x, jnp.ones((5, 3)), epsilon=0.1)
        with pytest.raises(ValueError, match="`x`"):
            fn(x[0], y, epsilon=0.1)
        with pytest.raises(ValueError, match="`a`"):
            fn(x, y, a[:-1], epsilon=0.1)
        with pytest.raises(ValueError, match="`a`"):
            fn(x, y, 2.0 * a, epsilon=0.1)
        with pytest.raises(ValueError, match="`b`"):
            fn(x, y, a, b.at[0].set(-0.1).at[1].add(0.1), epsilon=0.1)
        with pytest.raises(ValueError, match="`epsilon`"):
            fn(x, y, epsilon=0.0)
        with pytest.raises(TypeError, match="`cost`"):
            fn(x, y, epsilon=0.1, cost="sqeuclidean")
        with pytest.raises(ValueError, match="`x`"):
            fn(x, y, epsilon=0.1, cost=Sphere(2))  # points of shape (2,), sphere needs (3,)
        with pytest.raises(ValueError, match="`rank`"):
            fn(x, y, epsilon=0.1, rank=2)
    with pytest.raises(TypeError, match="`manifold`"):
        ManifoldCost(object())
