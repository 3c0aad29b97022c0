"""Grassmann(n, p): closed forms against SVD formulas in numpy, scipy principal angles, axioms.

tests/conftest.py turns ``jax_debug_nans`` on for every test, so each test below also checks
that no NaN is produced (values and derivatives) at the points it visits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from jax.test_util import check_grads

from geomjax.manifolds._grassmann import Grassmann
from geomjax.testing import rounding_tolerance

N, P = 6, 2
# float32: about 1e-5 relative for single formulas; 1e-4 where a result goes through two
# spectral functions and a solve (log then exp), each ~10 eps. float64: 1e-10 (1e-12 typical).
TOL = {jnp.float32: 1e-4, jnp.float64: 1e-10}


def points(dtype, k, seed=0, n=N, p=P):
    gr = Grassmann(n, p)
    keys = jax.random.split(jax.random.key(seed), k)
    return jax.vmap(lambda kk: gr.random_point(kk, dtype))(keys)


def np_orth(rng, n, p):
    q, _ = np.linalg.qr(rng.normal(size=(n, p)))
    return q


def subspace_with_angles(rng, n, angles):
    """(x, y) whose principal angles are exactly ``angles`` (up to rounding), randomly rotated."""
    p = len(angles)
    assert n >= 2 * p
    x = np.zeros((n, p))
    y = np.zeros((n, p))
    for i, a in enumerate(angles):
        x[i, i] = 1.0
        y[i, i] = np.cos(a)
        y[p + i, i] = np.sin(a)
    r = np_orth(rng, n, n)
    return r @ x, r @ y @ np_orth(rng, p, p)


def projector_gap(a, b):
    return float(jnp.max(jnp.abs(a @ a.T - b @ b.T)))


# -- construction and validation ---------------------------------------------------------------


@pytest.mark.parametrize("n,p", [(3, 4), (3, 0), (2.5, 1), (True, 1), (4, "2")])
def test_bad_sizes_raise(n, p):
    with pytest.raises(ValueError):
        Grassmann(n, p)


def test_dim_shape_and_bad_inputs():
    gr = Grassmann(5, 2)
    assert gr.dim == 6 and gr.point_shape == (5, 2) and Grassmann(4, 4).dim == 0
    x = gr.random_point(jax.random.key(0))
    with pytest.raises(ValueError, match="`y`"):
        gr.dist(x, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="`u`"):
        gr.exp(x, jnp.zeros((2, 5)))
    with pytest.raises(TypeError, match="`x`"):
        gr.proj(jnp.zeros((5, 2), jnp.int32), x)


# -- points and tangent vectors ----------------------------------------------------------------


def test_points_and_tangents_stay_on_manifold(dtype):
    gr = Grassmann(N, P)
    tol = TOL[dtype]
    xs, ys = points(dtype, 8, 0), points(dtype, 8, 1)
    us = jax.vmap(gr.random_tangent)(jax.random.split(jax.random.key(2), 8), xs)

    @jax.jit
    def run(x, y, u):
        return (
            gr.check_point(x),
            gr.check_point(gr.exp(x, u)),
            gr.check_point(gr.retr(x, u)),
            gr.check_point(gr.projx(x + 0.1 * u)),
            jnp.max(jnp.abs(x.T @ u)),
            jnp.max(jnp.abs(x.T @ gr.log(x, y))),
            jnp.max(jnp.abs(y.T @ gr.transp(x, y, u))),
            gr.check_tangent(x, gr.proj(x, y)),
        )

    for i, r in enumerate(jax.vmap(run)(xs, ys, us)):
        assert float(jnp.max(r)) < tol, i


# -- exponential and logarithm -----------------------------------------------------------------


def test_exp_matches_svd_formula_in_numpy(x64):
    # Independent reference: Edelman et al. (2.65), y = x V cos(S) V^T + W sin(S) V^T, with
    # numpy's SVD.
    gr = Grassmann(7, 3)
    rng = np.random.default_rng(0)
    for scale in (1e-3, 0.5, 2.0):
        x = np_orth(rng, 7, 3)
        u = rng.normal(size=(7, 3))
        u = scale * (u - x @ (x.T @ u))
        w, s, vt = np.linalg.svd(u, full_matrices=False)
        ref = x @ vt.T @ np.diag(np.cos(s)) @ vt + w @ np.diag(np.sin(s)) @ vt
        np.testing.assert_allclose(gr.exp(jnp.asarray(x), jnp.asarray(u)), ref, rtol=0, atol=1e-13)


def test_exp_log_roundtrip(dtype):
    gr = Grassmann(N, P)
    tol = TOL[dtype]
    xs, ys = points(dtype, 10, 3), points(dtype, 10, 4)

    @jax.jit
    def run(x, y):
        v = gr.log(x, y)
        z = gr.exp(x, v)
        # log(x, exp(x, u)) = u for |u|_2 < pi / 2 (inside the injectivity radius).
        u = gr.random_tangent(jax.random.key(5), x)
        u = 1.2 * u / jnp.linalg.norm(u, 2)
        return z @ z.T - y @ y.T, gr.log(x, gr.exp(x, u)) - u, gr.norm(x, v) - gr.dist(x, y)

    gap, back, dnorm = jax.vmap(run)(xs, ys)
    assert float(jnp.max(jnp.abs(gap))) < tol
    assert float(jnp.max(jnp.abs(back))) < tol
    assert float(jnp.max(jnp.abs(dnorm))) < tol


def log_bza_numpy(x, y):
    """Bendokat-Zimmermann-Absil, Algorithm 5.3, in numpy (independent reference)."""
    a, _, bt = np.linalg.svd(y.T @ x)
    ys = y @ a @ bt
    w, s, vt = np.linalg.svd(ys - x @ (x.T @ ys), full_matrices=False)
    return w @ np.diag(np.arcsin(np.clip(s, 0, 1))) @ vt


def test_log_matches_bza_and_is_basis_invariant(x64):
    gr = Grassmann(7, 3)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, y = np_orth(rng, 7, 3), np_orth(rng, 7, 3)
        q = np_orth(rng, 3, 3)
        v = gr.log(jnp.asarray(x), jnp.asarray(y))
        np.testing.assert_allclose(v, log_bza_numpy(x, y), rtol=0, atol=1e-11)
        # Another basis of the same subspace gives the same tangent vector.
        np.testing.assert_allclose(
            gr.log(jnp.asarray(x), jnp.asarray(y @ q)), v, rtol=0, atol=1e-11
        )
        # ... and another basis of x gives the lift v Q at x Q.
        np.testing.assert_allclose(
            gr.log(jnp.asarray(x @ q), jnp.asarray(y)), v @ q, rtol=0, atol=1e-11
        )


def test_log_at_cut_locus(dtype):
    # One principal angle is exactly pi/2: x^T y is singular, the log is not unique; any
    # minimal one must have norm = dist and reach y.
    gr = Grassmann(N, P)
    rng = np.random.default_rng(2)
    x, y = subspace_with_angles(rng, N, [0.3, np.pi / 2])
    x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    @jax.jit
    def run(a, b):
        v = gr.log(a, b)
        # Derivatives are not defined at the cut locus; they must still be finite.
        grads = jax.grad(lambda a, b: gr.dist(a, b) + jnp.sum(gr.log(a, b)), argnums=(0, 1))(a, b)
        return v, gr.norm(a, v), gr.exp(a, v), gr.dist(a, b), grads

    v, vnorm, z, d, grads = run(x, y)
    ref = np.hypot(0.3, np.pi / 2)
    np.testing.assert_allclose(vnorm, ref, rtol=TOL[dtype])
    assert projector_gap(z, y) < TOL[dtype]
    # dist at the cut locus: the angle pi/2 is computed from sin^2 ~ 1, so about sqrt(eps).
    np.testing.assert_allclose(d, ref, rtol=10 * float(jnp.finfo(dtype).eps) ** 0.5)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


# -- distance ----------------------------------------------------------------------------------


def test_dist_against_scipy_subspace_angles(x64):
    gr = Grassmann(7, 3)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, y = np_orth(rng, 7, 3), np_orth(rng, 7, 3)
        ang = np.sort(sla.subspace_angles(x, y))
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        np.testing.assert_allclose(gr.dist(xj, yj), np.linalg.norm(ang), rtol=1e-12)
        np.testing.assert_allclose(gr.principal_angles(xj, yj), ang, rtol=0, atol=1e-13)


@pytest.mark.parametrize("angles", [[1e-9, 2e-9], [1e-6, 0.7], [0.2, 1.5], [0.0, 0.0]])
def test_dist_known_angles(x64, angles):
    # Closed form: the constructed pair has exactly these principal angles.
    gr = Grassmann(6, 2)
    x, y = subspace_with_angles(np.random.default_rng(4), 6, angles)
    d = gr.dist(jnp.asarray(x), jnp.asarray(y))
    ref = np.linalg.norm(angles)
    if ref == 0:
        assert float(d) == 0.0
    else:
        # Absolute accuracy ~ eps (no arccos of a number near 1), i.e. relative 1e-7 at 1e-9.
        np.testing.assert_allclose(d, ref, rtol=1e-6 if ref < 1e-8 else 1e-12)
    ang = gr.principal_angles(jnp.asarray(x), jnp.asarray(y))
    # absolute accuracy of a 6x2 SVD-based angle: round-off of 6-term products (linear)
    atol = rounding_tolerance(np.float64, n_ops=6, growth="linear") + 1e-12 * np.max(angles)
    np.testing.assert_allclose(ang, np.sort(angles), rtol=0, atol=atol)


def test_dist_symmetry_basis_invariance_triangle(dtype):
    gr = Grassmann(N, P)
    k = 20
    xs, ys, zs = points(dtype, k, 5), points(dtype, k, 6), points(dtype, k, 7)
    qkeys = jax.random.split(jax.random.key(8), k)
    qs = jax.vmap(lambda kk: Grassmann(P, P).random_point(kk, dtype))(qkeys)

    @jax.jit
    def run(x, y, z, q):
        dxy, dyx = gr.dist(x, y), gr.dist(y, x)
        return dxy, dyx, gr.dist(x @ q, y @ q.T), gr.dist(x, z), gr.dist(z, y)

    dxy, dyx, drot, dxz, dzy = jax.vmap(run)(xs, ys, zs, qs)
    tol = TOL[dtype]
    np.testing.assert_allclose(dxy, dyx, rtol=0, atol=tol)
    np.testing.assert_allclose(dxy, drot, rtol=0, atol=tol)
    assert bool(jnp.all(dxy <= dxz + dzy + tol))
    assert bool(jnp.all(dxy <= np.sqrt(P) * np.pi / 2 + tol))


# -- retraction and transport ------------------------------------------------------------------


def test_retraction_agrees_with_exp_to_first_order(x64):
    gr = Grassmann(N, P)
    x = gr.random_point(jax.random.key(9), jnp.float64)
    u = gr.random_tangent(jax.random.key(10), x)
    errs = [projector_gap(gr.retr(x, t * u), gr.exp(x, t * u)) for t in (1e-2, 1e-3)]
    # Second-order agreement: the gap scales like t^2 (ratio 100 for t / 10).
    assert errs[1] < 1e-5 and errs[0] / errs[1] > 50
    # QR of x itself: x up to the factorization's round-off (linear growth in N)
    qr_tol = rounding_tolerance(np.float64, n_ops=N, growth="linear")
    np.testing.assert_allclose(gr.retr(x, 0 * u), x, rtol=0, atol=qr_tol)


def transport_edelman_numpy(x, y, u):
    """Edelman et al. (2.68) along H = log_x(y) (via BZA), as the lift at the basis y."""
    h = log_bza_numpy(x, y)
    w, s, vt = np.linalg.svd(h, full_matrices=False)
    rot = -x @ vt.T @ np.diag(np.sin(s)) @ w.T + w @ np.diag(np.cos(s)) @ w.T
    tau = (rot + np.eye(len(x)) - w @ w.T) @ u
    z = x @ vt.T @ np.diag(np.cos(s)) @ vt + w @ np.diag(np.sin(s)) @ vt
    return tau @ (z.T @ y)


def test_parallel_transport_against_edelman_formula(x64):
    gr = Grassmann(7, 3)
    rng = np.random.default_rng(11)
    x, y = np_orth(rng, 7, 3), np_orth(rng, 7, 3)
    u = rng.normal(size=(7, 3))
    u -= x @ (x.T @ u)
    out = gr.transp(jnp.asarray(x), jnp.asarray(y), jnp.asarray(u))
    np.testing.assert_allclose(out, transport_edelman_numpy(x, y, u), rtol=0, atol=1e-11)


def test_parallel_transport_isometry_and_velocity(dtype):
    gr = Grassmann(N, P)
    tol = TOL[dtype]
    xs, ys = points(dtype, 8, 12), points(dtype, 8, 13)
    k1, k2 = jax.random.split(jax.random.key(14))
    us = jax.vmap(gr.random_tangent)(jax.random.split(k1, 8), xs)
    ws = jax.vmap(gr.random_tangent)(jax.random.split(k2, 8), xs)
    q = Grassmann(P, P).random_point(jax.random.key(15), dtype)

    @jax.jit
    def run(x, y, u, w):
        tu, tw = gr.transp(x, y, u), gr.transp(x, y, w)
        return (
            gr.inner(y, tu, tw) - gr.inner(x, u, w),
            gr.norm(y, tu) - gr.norm(x, u),
            # The geodesic's velocity is transported to the velocity at the end: -log_y(x).
            gr.transp(x, y, gr.log(x, y)) + gr.log(y, x),
            # Lift at another basis of y: multiplied by Q.
            gr.transp(x, y @ q, u) - tu @ q,
        )

    for i, r in enumerate(jax.vmap(run)(xs, ys, us, ws)):
        assert float(jnp.max(jnp.abs(r))) < tol, i


# -- derivatives -------------------------------------------------------------------------------


def test_finite_derivatives_at_coincident_points(dtype):
    # dist^2 (sqdist), log, exp at a zero tangent and transp are smooth at x = y (also for a
    # different basis x Q of the same subspace): their derivatives must be finite (first and
    # second for sqdist; second order of the others is in test_check_grads_second_order).
    gr = Grassmann(N, P)
    x = gr.random_point(jax.random.key(16), dtype)
    q = Grassmann(P, P).random_point(jax.random.key(17), dtype)
    u = gr.random_tangent(jax.random.key(18), x)

    def f(a, b):
        v = gr.log(a, b)  # zero here, so exp and the transport use a zero tangent
        return jnp.sum(gr.exp(a, v)) + jnp.sum(gr.transp(a, b, u))

    def sq_along_u(t):
        return gr.sqdist(x, gr.exp(x, t * u))

    @jax.jit
    def derivs(a, b):
        return (
            jax.vmap(jax.grad(f, argnums=(0, 1)))(a, b),
            jax.vmap(jax.hessian(gr.sqdist, argnums=(0, 1)))(a, b),
            jax.vmap(jax.grad(gr.dist, argnums=(0, 1)))(a, b),
            jax.vmap(gr.dist)(a, b),
            jax.jacfwd(jax.grad(sq_along_u))(jnp.zeros((), dtype)),
        )

    g, h, gdist, d, h_u = derivs(jnp.stack([x, x]), jnp.stack([x, x @ q]))
    for leaf in jax.tree.leaves((g, h)):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    assert all(float(jnp.max(jnp.abs(gg))) == 0.0 for gg in gdist)  # documented zero gradient
    assert float(jnp.max(d)) == 0.0
    # Hessian of dist^2 in y at y = x, along a horizontal direction u: d^2/dt^2 |t u|^2 = 2|u|^2.
    np.testing.assert_allclose(h_u, 2 * gr.inner(x, u, u), rtol=TOL[dtype])


def test_check_grads_generic_points(x64):
    gr = Grassmann(5, 2)
    x = gr.random_point(jax.random.key(19), jnp.float64)
    y = gr.random_point(jax.random.key(20), jnp.float64)
    u = gr.random_tangent(jax.random.key(21), x)
    check_grads(gr.dist, (x, y), order=1, modes=("rev",))
    check_grads(gr.log, (x, y), order=1, modes=("rev",))
    check_grads(gr.exp, (x, u), order=1, modes=("rev",))
    check_grads(gr.transp, (x, y, u), order=1, modes=("rev",))
    check_grads(gr.sqdist, (x, x), order=2, modes=("rev",))  # smooth at x = y


@pytest.mark.slow
def test_check_grads_second_order(x64):
    gr = Grassmann(5, 2)
    x = gr.random_point(jax.random.key(19), jnp.float64)
    y = gr.random_point(jax.random.key(20), jnp.float64)
    u = gr.random_tangent(jax.random.key(21), x)
    check_grads(gr.dist, (x, y), order=2, modes=("fwd", "rev"))
    check_grads(gr.log, (x, y), order=2, modes=("fwd", "rev"))
    check_grads(gr.exp, (x, u), order=2, modes=("fwd", "rev"))
    check_grads(gr.transp, (x, y, u), order=2, modes=("rev",))


def test_riemannian_gradient_of_squared_distance(x64):
    # grad_y (1/2) d(x, y)^2 = -log_y(x) (a property of any Riemannian distance).
    gr = Grassmann(6, 2)
    x = gr.random_point(jax.random.key(22), jnp.float64)
    y = gr.random_point(jax.random.key(23), jnp.float64)
    g = jax.grad(lambda b: 0.5 * gr.dist(x, b) ** 2)(y)
    np.testing.assert_allclose(gr.egrad_to_rgrad(y, g), -gr.log(y, x), rtol=0, atol=1e-10)
