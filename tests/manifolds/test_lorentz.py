"""Tests for the Lorentz (hyperboloid) model: axioms, arccosh and geodesic-ODE references,
agreement with the Poincare ball through the isometry, NaN-free derivatives, curvature grads.

``jax_debug_nans`` is on for every test (tests/conftest.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.manifolds._lorentz import (
    Lorentz,
    lorentz_to_poincare,
    minkowski_inner,
    poincare_to_lorentz,
)
from geomjax.manifolds._poincare import PoincareBall
from geomjax.testing import check_grads_finite, rounding_tolerance

DIM = 4
N = 16
C = 0.7
M = Lorentz(DIM, C)
B = PoincareBall(DIM, C)


def _tol(dtype, scale=1.0):
    # round-off of O(1) quantities after ~16 flops (4 eps sqrt(16) = 16 eps: 1.9e-6 in
    # float32, 3.6e-15 in float64), times `scale` for longer chains or amplification.
    # Hyperboloid coordinates grow like cosh(distance), so checks on coordinates are scaled
    # by their size.
    return rounding_tolerance(dtype, n_ops=16) * scale


def _points(dtype, n=N, seed=0, scale=1.0):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.vmap(lambda k: M.random_point(k, dtype, scale=scale))(keys)


def _tangents(xs, seed=1):
    keys = jax.random.split(jax.random.key(seed), xs.shape[0])
    return jax.vmap(M.random_tangent)(keys, xs)


def _np_mink(u, v):
    return -u[..., 0] * v[..., 0] + np.sum(u[..., 1:] * v[..., 1:], axis=-1)


def _batch_quantities(m, xs, ys, zs, us, vs):
    V = jax.vmap
    logs = V(m.log)(xs, ys)
    tu, tv = V(m.transp)(xs, ys, us), V(m.transp)(xs, ys, vs)
    c = m.c
    ps, qs = V(lambda x: lorentz_to_poincare(x, c))(xs), V(lambda x: lorentz_to_poincare(x, c))(ys)
    ball = PoincareBall(m.dim, c)
    return dict(
        check_x=V(m.check_point)(xs),
        check_u=V(m.check_tangent)(xs, us),
        check_exp=V(m.check_point)(V(m.exp)(xs, 0.5 * us)),
        exp_x0=V(m.exp)(xs, 0.5 * us)[:, 0],
        check_log=V(m.check_tangent)(xs, logs),
        check_transp=V(m.check_tangent)(ys, tu),
        exp_log=V(m.exp)(xs, logs),
        log=logs,
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
        ball_dist=V(ball.dist)(ps, qs),
        roundtrip=V(lambda p: poincare_to_lorentz(p, c))(ps),
    )


@functools.cache
def _data(dtype_name):
    dtype = jnp.dtype(dtype_name)
    xs, ys, zs = (_points(dtype, seed=s) for s in (0, 2, 3))
    us, vs = _tangents(xs), _tangents(xs, seed=7)
    q = _batch_quantities(M, xs, ys, zs, us, vs)
    return jax.tree.map(np.asarray, dict(xs=xs, ys=ys, us=us)), jax.tree.map(np.asarray, q)


def _assert_finite_derivatives(f, args):
    """Value, gradient and a forward-over-reverse Hessian-vector product of scalar ``f`` are
    finite (eager: op-by-op dispatch reuses compilations across tests)."""
    check_grads_finite(f, tuple(args), order=2, hessian="hvp")


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, err, name",
    [
        (dict(dim=0), ValueError, "dim"),
        (dict(dim="3"), TypeError, "dim"),
        (dict(dim=3, c=-1.0), ValueError, "`c`"),
        (dict(dim=3, c=0), ValueError, "`c`"),
        (dict(dim=3, c=False), TypeError, "`c`"),
    ],
)
def test_bad_arguments_raise(kwargs, err, name):
    with pytest.raises(err, match=name):
        Lorentz(**kwargs)


def test_pytree_and_shapes():
    m = Lorentz(3, 2.0)
    assert m.point_shape == (4,) and m.dim == 3 and len(jax.tree.leaves(m)) == 1
    o = m.origin()
    np.testing.assert_allclose(o, [1 / np.sqrt(2), 0, 0, 0], rtol=1e-6)
    y = jax.jit(lambda m, o: m.exp(o, jnp.array([0.0, 1.0, 0.0, 0.0])))(m, o)
    np.testing.assert_allclose(m.dist(o, y), 1.0, rtol=1e-6)


# -- staying on the manifold; axioms ---------------------------------------------------------


def test_points_and_tangents_stay_on_manifold(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    assert pts["xs"].dtype == dtype and pts["xs"].shape == (N, DIM + 1)
    assert q["exp_log"].dtype == dtype
    x0max = float(np.max(pts["xs"][:, 0] ** 2))  # |c<x,x>_L + 1| rounds like eps * x0^2
    assert q["check_x"].max() < _tol(dtype, 4) * x0max
    assert q["check_exp"].max() < _tol(dtype, 4) * float(np.max(q["exp_x0"] ** 2))
    scale = x0max * np.abs(pts["us"]).max()
    assert q["check_u"].max() < _tol(dtype, 10) * scale
    assert q["check_log"].max() < _tol(dtype, 10) * scale
    assert q["check_transp"].max() < _tol(dtype, 20) * scale


def test_exp_log_dist_axioms(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    mag = np.abs(pts["ys"]).max()
    np.testing.assert_allclose(q["exp_log"], pts["ys"], atol=_tol(dtype, 20) * mag**2)
    np.testing.assert_allclose(q["norm_log"], q["d_xy"], rtol=_tol(dtype, 20))
    np.testing.assert_allclose(q["d_yx"], q["d_xy"], rtol=_tol(dtype, 4))
    assert np.all(q["d_xz"] <= q["d_xy"] + q["d_yz"] + _tol(dtype, 20))
    assert np.all(q["d_xx"] == 0)


def test_transport_isometry_and_log_reversal(dtype):
    _, q = _data(jnp.dtype(dtype).name)
    scale = np.abs(q["inner_before"]).max()
    np.testing.assert_allclose(
        q["inner_after"], q["inner_before"], rtol=0, atol=_tol(dtype, 100) * scale
    )
    np.testing.assert_allclose(
        q["transp_log"], q["minus_log_yx"], atol=_tol(dtype, 100) * np.abs(q["log"]).max()
    )


def test_vmap_and_jit_consistency(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    single = np.stack([np.asarray(M.log(x, y)) for x, y in zip(pts["xs"][:3], pts["ys"][:3])])
    np.testing.assert_allclose(q["log"][:3], single, rtol=_tol(dtype), atol=_tol(dtype))
    cs = jnp.array([0.3, 1.0, 2.5], dtype)  # a batch of manifolds under vmap
    ps = jnp.asarray(pts["xs"][:3, 1:] * 0.1)
    xs = jax.vmap(poincare_to_lorentz)(ps, cs)
    ys = jax.vmap(poincare_to_lorentz)(-ps, cs)
    batched = jax.vmap(lambda m, x, y: m.dist(x, y))(Lorentz(DIM, cs), xs, ys)
    loop = [Lorentz(DIM, float(c)).dist(x, y) for c, x, y in zip(cs, xs, ys)]
    np.testing.assert_allclose(batched, np.stack(loop), rtol=_tol(dtype))


# -- independent references ------------------------------------------------------------------


def test_dist_matches_arccosh_reference(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    xs, ys = (pts[k].astype(np.float64) for k in ("xs", "ys"))
    # re-project the rounded float32 points onto the float64 hyperboloid first
    for a in (xs, ys):
        a[:, 0] = np.sqrt(1 / C + np.sum(a[:, 1:] ** 2, axis=1))
    ref = np.arccosh(-C * _np_mink(xs, ys)) / np.sqrt(C)  # fine away from x = y
    # float32: coordinates ~cosh(d) carry relative rounding eps, and the distance is
    # conditioned like cosh(d_x) cosh(d_y) / sinh(d) in them.
    np.testing.assert_allclose(q["d_xy"], ref, rtol=_tol(dtype, 50))


def test_matches_poincare_ball_through_the_isometry(dtype):
    pts, q = _data(jnp.dtype(dtype).name)
    np.testing.assert_allclose(q["ball_dist"], q["d_xy"], rtol=_tol(dtype, 50))
    mag = np.abs(pts["xs"]).max()
    np.testing.assert_allclose(q["roundtrip"], pts["xs"], rtol=0, atol=_tol(dtype, 20) * mag**2)


def test_log_and_transport_push_forward_from_the_ball(x64):
    """d phi (log^B_p q) = log^L_{phi p}(phi q) and d phi (P^B u) = P^L(d phi u), phi the
    Poincare -> Lorentz isometry: two models, two independent formulas."""
    p, r = (B.random_point(jax.random.key(s), jnp.float64) for s in (4, 5))
    u = jax.random.normal(jax.random.key(6), (DIM,), jnp.float64)
    phi = lambda a: poincare_to_lorentz(a, C)
    x, y = phi(p), phi(r)
    _, push_log = jax.jvp(phi, (p,), (B.log(p, r),))
    np.testing.assert_allclose(M.log(x, y), push_log, rtol=1e-10, atol=1e-12)
    _, du = jax.jvp(phi, (p,), (u,))
    _, push_tr = jax.jvp(phi, (r,), (B.transp(p, r, u),))
    np.testing.assert_allclose(M.transp(x, y, du), push_tr, rtol=1e-10, atol=1e-12)
    _, push_exp = jax.jvp(phi, (p,), (u,))
    np.testing.assert_allclose(M.exp(x, push_exp), phi(B.exp(p, u)), rtol=1e-10, atol=1e-12)


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
    """RK4 of gamma'' = c <gamma', gamma'>_L gamma and V' = c <V, gamma'>_L gamma."""
    n = DIM + 1
    x = np.asarray(_points(jnp.float64, 1, seed=8)[0])
    u, w = (np.asarray(t) for t in _tangents(jnp.stack([x, x]), seed=9))
    u = 1.3 * u / np.sqrt(_np_mink(u, u))

    def f(s):
        g, dg, v = s[:n], s[n : 2 * n], s[2 * n :]
        return np.concatenate([dg, C * _np_mink(dg, dg) * g, C * _np_mink(v, dg) * g])

    out = _rk4(f, np.concatenate([x, u, w]))
    y = M.exp(x, u)
    np.testing.assert_allclose(y, out[:n], rtol=1e-9)  # RK4 global error ~ h^4
    np.testing.assert_allclose(M.transp(x, y, w), out[2 * n :], rtol=1e-9, atol=1e-9)


def test_random_point_matches_poincare(dtype):
    key = jax.random.key(12)
    for scale in (0.3, 1.0, 2.0):
        p = lorentz_to_poincare(M.random_point(key, dtype, scale=scale), C)
        np.testing.assert_allclose(
            p, B.random_point(key, dtype, scale=scale), rtol=0, atol=_tol(dtype, 4)
        )


def test_retraction_agrees_to_first_order(x64):
    x = _points(jnp.float64, 1)[0]
    u = _tangents(x[None])[0]
    ts = (1e-1, 1e-2, 1e-3)
    errs = [float(jnp.linalg.norm(M.retr(x, t * u) - M.exp(x, t * u))) for t in ts]
    for t, e in zip(ts, errs):
        assert e <= 10 * t**2 * float(jnp.sum(u * u))


def test_egrad_to_rgrad(x64):
    """<rgrad f, v>_L equals the directional derivative of f along a tangent v."""
    x = _points(jnp.float64, 1)[0]
    a = jnp.arange(1.0, DIM + 2)
    f = lambda p: jnp.sum(a * jnp.sin(p))
    v = _tangents(x[None])[0]
    rg = M.egrad_to_rgrad(x, jax.grad(f)(x))
    _, dfv = jax.jvp(f, (x,), (v,))
    np.testing.assert_allclose(M.inner(x, rg, v), dfv, rtol=1e-12)
    assert abs(float(minkowski_inner(x, rg))) < 1e-12


def test_curvature_gradient_matches_reference(x64):
    """d/dc of dist(phi_c(p), phi_c(q)) equals d/dc of the float64 arcosh formula in the ball."""
    p, r = (np.asarray(B.random_point(jax.random.key(s), jnp.float64, scale=0.5)) for s in (1, 2))

    def f(c):
        return Lorentz(DIM, c).dist(poincare_to_lorentz(p, c), poincare_to_lorentz(r, c))

    def ref(c):
        num = 2 * c * np.sum((p - r) ** 2)
        return np.arccosh(1 + num / ((1 - c * p @ p) * (1 - c * r @ r))) / np.sqrt(c)

    h = 1e-6
    np.testing.assert_allclose(jax.grad(f)(C), (ref(C + h) - ref(C - h)) / (2 * h), rtol=1e-7)


# -- NaN-free derivatives at singular points -------------------------------------------------


def _maps_sum(a, b, u, c):
    m = Lorentz(DIM, c)
    return (
        m.dist(a, b)
        + jnp.sum(m.log(a, b))
        + jnp.sum(m.exp(a, u))
        + jnp.sum(m.transp(a, b, u))
        + m.norm(a, u)
        + jnp.sum(lorentz_to_poincare(a, c))
        + jnp.sum(poincare_to_lorentz(u[1:], c))
    )


def test_derivatives_at_coincident_points(dtype):
    x = _points(dtype, 1)[0]
    v = _tangents(x[None])[0]
    mag = float(np.abs(x).max())
    # The derivative of log_x at y = x and of exp_x at u = 0 is the identity on tangents.
    _, dlog = jax.jvp(lambda y: M.log(x, y), (x,), (v,))
    np.testing.assert_allclose(dlog, v, rtol=0, atol=_tol(dtype, 10) * mag**2)
    _, dexp = jax.jvp(lambda u: M.exp(x, u), (jnp.zeros_like(x),), (v,))
    np.testing.assert_allclose(dexp, v, rtol=0, atol=_tol(dtype, 10) * mag**2)
    np.testing.assert_array_equal(M.log(x, x), 0.0)
    assert float(M.dist(x, x)) == 0.0
    zero = jnp.zeros_like(x)
    _assert_finite_derivatives(_maps_sum, (x, x, zero, jnp.asarray(C, dtype)))
    o = M.origin(dtype)  # the origin: zero spatial part everywhere
    _assert_finite_derivatives(_maps_sum, (o, o, zero, jnp.asarray(C, dtype)))


def test_far_points_are_finite(dtype):
    # distance ~ 2 * 12 (float64) or 2 * 6 (float32) apart, through the origin
    r = 12.0 if dtype == jnp.float64 else 6.0
    key = jax.random.key(3)
    g = jax.random.normal(key, (DIM,), dtype)
    g = g / jnp.linalg.norm(g)
    o = M.origin(dtype)
    x = M.exp(o, jnp.concatenate([jnp.zeros(1, dtype), r * g]))
    y = M.exp(o, jnp.concatenate([jnp.zeros(1, dtype), -r * g]))
    np.testing.assert_allclose(M.dist(x, y), 2 * r, rtol=_tol(dtype, 10))
    u = M.random_tangent(key, x)
    u = u / M.norm(x, u)  # unit speed (a Gaussian projected here has a huge norm)
    _assert_finite_derivatives(_maps_sum, (x, y, u, jnp.asarray(C, dtype)))
    _assert_finite_derivatives(_maps_sum, (x, x, u, jnp.asarray(C, dtype)))


# -- derivatives against finite differences --------------------------------------------------


def _all_maps(x, y, u, c):
    m = Lorentz(DIM, c)
    return jnp.concatenate(
        [
            m.exp(x, u),
            m.log(x, y),
            m.dist(x, y)[None],
            m.transp(x, y, u),
            m.proj(x, y),
            lorentz_to_poincare(x, c),
            poincare_to_lorentz(0.3 * u[1:], c),
        ]
    )


def test_check_grads_generic(x64):
    """All maps against finite differences to second order (reverse), including d/dc."""
    x, y = _points(jnp.float64, 2, scale=0.7)
    u = 0.5 * _tangents(x[None])[0]
    check_grads(_all_maps, (x, y, u, jnp.asarray(C)), order=2, modes=["rev"])


@pytest.mark.slow
def test_check_grads_generic_fwd_and_rev(x64):
    x, y = _points(jnp.float64, 2, scale=0.7)
    u = 0.5 * _tangents(x[None])[0]
    check_grads(_all_maps, (x, y, u, jnp.asarray(C)), order=2, modes=["fwd", "rev"])
