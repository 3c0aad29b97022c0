"""Tests for the unit sphere: axioms, closed-form and ODE references, NaN-free derivatives.

``jax_debug_nans`` is on for every test (tests/conftest.py), so a NaN produced anywhere,
including in a discarded ``jnp.where`` branch of a derivative, fails the test.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.manifolds._sphere import Sphere
from geomjax.testing import check_grads_finite, rounding_tolerance

DIM = 4
N = 16
M = Sphere(DIM)


def _tol(dtype, scale=1.0):
    # round-off of O(1) quantities after ~16 flops (4 eps sqrt(16) = 16 eps: 1.9e-6 in
    # float32, 3.6e-15 in float64), times `scale` for longer chains or amplification
    return rounding_tolerance(dtype, n_ops=16) * scale


def _points(dtype, n=N, seed=0):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.vmap(lambda k: M.random_point(k, dtype))(keys)


def _tangents(xs, seed=1):
    keys = jax.random.split(jax.random.key(seed), xs.shape[0])
    return jax.vmap(M.random_tangent)(keys, xs)


def _batch_quantities(m, xs, ys, zs, us, vs):
    V = jax.vmap
    logs = V(m.log)(xs, ys)
    tu, tv = V(m.transp)(xs, ys, us), V(m.transp)(xs, ys, vs)
    return dict(
        check_x=V(m.check_point)(xs),
        check_u=V(m.check_tangent)(xs, us),
        check_exp=V(m.check_point)(V(m.exp)(xs, 3.0 * us)),
        check_retr=V(m.check_point)(V(m.retr)(xs, 3.0 * us)),
        check_log=V(m.check_tangent)(xs, logs),
        check_transp=V(m.check_tangent)(ys, tu),
        exp_log=V(m.exp)(xs, logs),
        norm_log=V(m.norm)(xs, logs),
        d_xy=V(m.dist)(xs, ys),
        d_yx=V(m.dist)(ys, xs),
        d_yz=V(m.dist)(ys, zs),
        d_xz=V(m.dist)(xs, zs),
        d_xx=V(m.dist)(xs, xs),
        inner_before=V(m.inner)(xs, us, vs),
        inner_after=V(m.inner)(ys, tu, tv),
        transp_log=V(m.transp)(xs, ys, logs),
        minus_log_yx=-V(m.log)(ys, xs),
        log_single=logs,
    )


@functools.cache
def _data(dtype_name):
    dtype = jnp.dtype(dtype_name)
    xs, ys, zs = _points(dtype), _points(dtype, seed=2), _points(dtype, seed=3)
    us, vs = _tangents(xs), _tangents(xs, seed=7)
    q = _batch_quantities(M, xs, ys, zs, us, vs)
    return dict(xs=xs, ys=ys, us=us), jax.tree.map(np.asarray, q)


def _assert_finite_derivatives(f, args):
    """Value, gradient and a forward-over-reverse Hessian-vector product of scalar ``f`` are
    finite (eager: op-by-op dispatch reuses compilations across tests)."""
    check_grads_finite(f, tuple(args), order=2, hessian="hvp")


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dim, err", [(0, ValueError), (-2, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_bad_dim_raises(dim, err):
    with pytest.raises(err, match="dim"):
        Sphere(dim)


def test_pytree_and_shapes():
    s = Sphere(3)
    assert s.point_shape == (4,) and s.dim == 3
    assert jax.tree.leaves(s) == []
    out = jax.jit(lambda m, x, y: m.dist(x, y))(s, jnp.eye(4)[0], jnp.eye(4)[1])
    np.testing.assert_allclose(out, np.pi / 2, rtol=1e-6)


# -- staying on the manifold; axioms ---------------------------------------------------------


def test_points_and_tangents_stay_on_manifold(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    assert pts["xs"].dtype == dtype and pts["xs"].shape == (N, DIM + 1)
    assert q["exp_log"].dtype == dtype
    tol = _tol(dtype, 4)
    for name in ("check_x", "check_u", "check_exp", "check_retr"):
        assert q[name].max() < tol, name
    assert q["check_log"].max() < 4 * tol and q["check_transp"].max() < 4 * tol


def test_exp_log_dist_axioms(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    # exp(log) is conditioned like 1 / sin(theta) near the antipode; random points on S^4
    # stay well away from it, so a small factor covers it.
    np.testing.assert_allclose(q["exp_log"], pts["ys"], rtol=0, atol=_tol(dtype, 10))
    np.testing.assert_allclose(q["norm_log"], q["d_xy"], rtol=_tol(dtype, 4))
    np.testing.assert_allclose(q["d_yx"], q["d_xy"], rtol=_tol(dtype, 4))
    assert np.all(q["d_xz"] <= q["d_xy"] + q["d_yz"] + _tol(dtype, 10))
    assert np.all(q["d_xy"] <= np.pi + _tol(dtype, 4)) and np.all(q["d_xy"] >= 0)
    assert np.abs(q["d_xx"]).max() <= _tol(dtype)


def test_transport_isometry_and_log_reversal(dtype):
    _, q = _data(jnp.dtype(dtype).name)
    np.testing.assert_allclose(q["inner_after"], q["inner_before"], rtol=0, atol=_tol(dtype, 20))
    np.testing.assert_allclose(q["transp_log"], q["minus_log_yx"], rtol=0, atol=_tol(dtype, 20))


def test_vmap_and_jit_consistency(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    single = np.stack([np.asarray(M.log(x, y)) for x, y in zip(pts["xs"][:3], pts["ys"][:3])])
    np.testing.assert_allclose(q["log_single"][:3], single, rtol=0, atol=_tol(dtype))


# -- independent references ------------------------------------------------------------------


def test_dist_matches_arccos_reference(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    x64, y64 = np.array(pts["xs"], np.float64), np.array(pts["ys"], np.float64)
    x64 /= np.linalg.norm(x64, axis=1, keepdims=True)
    y64 /= np.linalg.norm(y64, axis=1, keepdims=True)
    ref = np.arccos(np.clip(np.sum(x64 * y64, axis=1), -1, 1))  # accurate away from 0 and pi
    np.testing.assert_allclose(q["d_xy"], ref, rtol=_tol(dtype, 10))


def test_dist_and_log_accurate_near_zero_and_pi(x64):
    # arccos(<x, y>) would lose half the digits here; the exact angle is known by construction.
    for theta in [1e-12, 1e-7, 1e-3, np.pi - 1e-7, np.pi - 1e-12]:
        x = jnp.array([1.0, 0.0, 0.0, 0.0, 0.0])
        y = jnp.array([np.cos(theta), np.sin(theta), 0.0, 0.0, 0.0])
        np.testing.assert_allclose(M.dist(x, y), theta, rtol=1e-9)
        if theta < 1:
            np.testing.assert_allclose(M.log(x, y), [0.0, theta, 0, 0, 0], rtol=1e-9, atol=1e-300)


def _rk4(f, state, t1=1.0, steps=400):
    h = t1 / steps
    for _ in range(steps):
        k1 = f(state)
        k2 = f(state + 0.5 * h * k1)
        k3 = f(state + 0.5 * h * k2)
        k4 = f(state + h * k3)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state


def test_exp_and_transport_match_geodesic_ode(x64):
    """exp, transp against RK4 of gamma'' = -|gamma'|^2 gamma and V' = -<V, gamma'> gamma."""
    n = DIM + 1
    x = np.asarray(_points(jnp.float64, 1)[0])
    u, w = (np.asarray(t) for t in _tangents(jnp.stack([x, x]), seed=5))
    u = 1.7 * u / np.linalg.norm(u)

    def f(s):
        g, dg, v = s[:n], s[n : 2 * n], s[2 * n :]
        return np.concatenate([dg, -np.dot(dg, dg) * g, -np.dot(v, dg) * g])

    out = _rk4(f, np.concatenate([x, u, w]))
    y = M.exp(x, u)
    np.testing.assert_allclose(y, out[:n], rtol=0, atol=1e-9)  # RK4 global error ~ h^4 ~ 4e-11
    np.testing.assert_allclose(M.transp(x, y, w), out[2 * n :], rtol=0, atol=1e-9)


def test_retraction_agrees_to_first_order(x64):
    x = _points(jnp.float64, 1)[0]
    u = _tangents(x[None])[0]
    ts = (1e-1, 1e-2, 1e-3)
    errs = [float(jnp.linalg.norm(M.retr(x, t * u) - M.exp(x, t * u))) for t in ts]
    for t, e in zip(ts, errs):
        assert e <= 10 * t**2 * float(jnp.sum(u * u))
    assert errs[1] < errs[0] / 50 and errs[2] < errs[1] / 50  # at least quadratic decay


def test_geodesic_endpoints_and_speed(dtype):
    x, y = _points(dtype, 2)
    np.testing.assert_allclose(M.geodesic(x, y, 0.0), x, rtol=0, atol=_tol(dtype))
    np.testing.assert_allclose(M.geodesic(x, y, 1.0), y, rtol=0, atol=_tol(dtype, 10))
    np.testing.assert_allclose(
        M.dist(x, M.geodesic(x, y, 0.3)), 0.3 * M.dist(x, y), rtol=_tol(dtype, 10)
    )


def test_egrad_to_rgrad(x64):
    """<rgrad f, v>_x equals the directional derivative of f along a tangent v."""
    x = _points(jnp.float64, 1)[0]
    a = jnp.arange(1.0, DIM + 2)
    f = lambda p: jnp.sum(a * p**3)
    v = _tangents(x[None])[0]
    rg = M.egrad_to_rgrad(x, jax.grad(f)(x))
    _, dfv = jax.jvp(f, (x,), (v,))
    np.testing.assert_allclose(M.inner(x, rg, v), dfv, rtol=1e-12)
    assert M.check_tangent(x, rg) < 1e-14


def test_random_point_is_roughly_uniform():
    xs = jax.jit(_points, static_argnums=(0, 1, 2))(jnp.float32, 4000, 11)
    assert float(jnp.max(jnp.abs(jnp.mean(xs, axis=0)))) < 0.06  # 4 sigma of 1/sqrt(5 * 4000)


# -- NaN-free derivatives at singular points -------------------------------------------------


def test_derivatives_at_coincident_points(dtype):
    x = _points(dtype, 1)[0]
    v = _tangents(x[None], seed=4)[0] + 0.3 * x  # a tangent part and a normal part
    # d log_x(y)/dy at y = x is the tangent projection; d exp_x(u)/du at u = 0 the identity.
    _, dlog = jax.jvp(lambda y: M.log(x, y), (x,), (v,))
    np.testing.assert_allclose(dlog, v - jnp.dot(x, v) * x, rtol=0, atol=_tol(dtype, 10))
    _, dexp = jax.jvp(lambda u: M.exp(x, u), (jnp.zeros_like(x),), (v,))
    np.testing.assert_allclose(dexp, v, rtol=0, atol=_tol(dtype))
    np.testing.assert_array_equal(M.log(x, x), 0.0)
    assert float(M.dist(x, x)) == 0.0

    _assert_finite_derivatives(_coincident_maps, (x, x, jnp.zeros_like(x)))


def _coincident_maps(a, b, u):  # every map at a coincident pair / zero tangent
    return (
        M.dist(a, b)
        + jnp.sum(M.log(a, b))
        + jnp.sum(M.exp(a, u))
        + jnp.sum(M.transp(a, b, b - a + u))
        + jnp.sum(M.projx(u))  # projx at the origin of R^(d+1)
    )


def _antipodal_maps(a, b, w):
    return M.dist(a, b) + jnp.sum(M.log(a, b)) + jnp.sum(M.transp(a, b, w))


@pytest.mark.parametrize("gap", [0.0, 1e-6, 1e-3])
def test_near_antipodal_points_are_finite(dtype, gap):
    x = _points(dtype, 1)[0]
    w = _tangents(x[None], seed=3)[0]
    # gap = 0: the exact antipode -x (projx(-x) could differ from -x by rounding).
    y = -x if gap == 0.0 else M.projx(-x + gap * w / jnp.linalg.norm(w))
    d = M.dist(x, y)
    assert abs(float(d) - (np.pi - gap)) < 1e-5 + _tol(dtype, 10)
    lg = M.log(x, y)
    if gap == 0.0:
        np.testing.assert_array_equal(lg, 0.0)  # documented: non-unique log -> zero vector
        np.testing.assert_allclose(M.transp(x, y, w), w, rtol=0, atol=_tol(dtype))
    else:
        np.testing.assert_allclose(M.norm(x, lg), d, rtol=_tol(dtype, 10))
    _assert_finite_derivatives(_antipodal_maps, (x, y, w))


# -- derivatives against finite differences --------------------------------------------------


def _all_maps(x, y, u):
    return jnp.concatenate(
        [M.exp(x, u), M.log(x, y), M.dist(x, y)[None], M.transp(x, y, u), M.retr(x, u)]
    )


def test_check_grads_generic(x64):
    """exp, log, dist, transp, retr against finite differences to second order (reverse)."""
    x, y = _points(jnp.float64, 2)
    u = _tangents(x[None])[0]
    check_grads(_all_maps, (x, y, u), order=2, modes=["rev"])


@pytest.mark.slow
def test_check_grads_generic_fwd_and_rev(x64):
    x, y = _points(jnp.float64, 2)
    u = _tangents(x[None])[0]
    check_grads(_all_maps, (x, y, u), order=2, modes=["fwd", "rev"])
