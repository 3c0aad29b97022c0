"""Tests for frechet_mean: closed forms, brute-force minimization, convergence report, validation.

The multi-device (``axis_name``) version is tested in tests/test_sharding.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.manifolds._euclidean import Euclidean
from geomjax.manifolds._mean import FrechetMeanResult, frechet_mean
from geomjax.manifolds._product import Product
from geomjax.manifolds._sphere import Sphere

scipy_optimize = pytest.importorskip("scipy.optimize")

N = 12


def _cluster(n, seed, dtype=np.float64, spread=0.6):
    """Points of S^2 near the north pole (inside a geodesic ball of radius < pi/4)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3)) * np.array([spread / 2, spread / 2, 0.0])
    pole = np.array([0.0, 0.0, 1.0])
    # exp at the pole of the tangent vectors v (third component 0).
    r = np.linalg.norm(v, axis=-1, keepdims=True)
    pts = np.cos(r) * pole + np.sin(r) * v / r
    return pts.astype(dtype), rng.uniform(0.1, 1.0, size=n).astype(dtype)


def _sphere_mean_bruteforce(pts, w):
    """argmin_v sum_i w_i arccos(<v/|v|, p_i>)^2 by BFGS over R^3 (scale-invariant objective)."""
    w = w / w.sum()

    def f(v):
        c = np.clip(pts @ (v / np.linalg.norm(v)), -1.0, 1.0)
        return float(np.sum(w * np.arccos(c) ** 2))

    start = (w @ pts) / np.linalg.norm(w @ pts)
    res = scipy_optimize.minimize(f, start, method="BFGS", options=dict(gtol=1e-12, xrtol=1e-14))
    return res.x / np.linalg.norm(res.x)


def test_result_type_is_solution_compatible():
    res = frechet_mean(Euclidean(2), jnp.array([[0.0, 0.0], [2.0, 4.0]]))
    assert isinstance(res, FrechetMeanResult)
    assert res.value is res.mean and res.error is res.grad_norm
    np.testing.assert_allclose(res.mean, [1.0, 2.0], rtol=1e-6)
    assert res.n_iters.dtype == jnp.int32 and res.converged.dtype == jnp.bool_


def test_euclidean_weighted_average_float64(x64):
    rng = np.random.default_rng(0)
    pts, w = rng.normal(size=(N, 2, 3)), rng.uniform(0.0, 2.0, size=N)
    res = frechet_mean(Euclidean((2, 3)), jnp.asarray(pts), jnp.asarray(w), tol=1e-12)
    ref = np.tensordot(w / w.sum(), pts, axes=1)
    np.testing.assert_allclose(res.mean, ref, rtol=1e-13, atol=1e-14)
    # One Karcher step with step_size 1 is exact in flat space; a second only to confirm.
    assert bool(res.converged) and 1 <= int(res.n_iters) <= 2
    assert float(res.grad_norm) <= 1e-12


def test_sphere_matches_bruteforce_float64(x64):
    pts, w = _cluster(N, 1)
    ref = _sphere_mean_bruteforce(pts, w)
    res = frechet_mean(Sphere(2), jnp.asarray(pts), jnp.asarray(w), tol=1e-12)
    assert bool(res.converged) and float(res.grad_norm) <= 1e-12
    assert int(res.n_iters) < 100
    # BFGS with finite-difference gradients pins the argmin to ~1e-8 only; geomjax's own answer
    # satisfies the first-order condition to 1e-12 (checked above).
    np.testing.assert_allclose(res.mean, ref, rtol=0, atol=1e-6)
    assert abs(float(np.linalg.norm(res.mean)) - 1.0) < 1e-14


def test_sphere_float32_agrees_with_float64():
    pts, w = _cluster(N, 2)
    res32 = frechet_mean(
        Sphere(2), jnp.asarray(pts, jnp.float32), jnp.asarray(w, jnp.float32), tol=1e-5
    )
    assert res32.mean.dtype == jnp.float32
    assert bool(res32.converged) and float(res32.grad_norm) <= 1e-5
    ref = _sphere_mean_bruteforce(pts, w)
    # The float32 gradient-norm stop at 1e-5 bounds the distance to the minimizer by ~1e-5
    # (the variance is ~1-strongly convex here), plus float32 round-off.
    np.testing.assert_allclose(res32.mean, ref, rtol=0, atol=3e-5)


def test_product_mean_is_factorwise(x64):
    pts, w = _cluster(N, 3)
    eucl = np.random.default_rng(3).normal(size=(N, 2))
    m = Product((Sphere(2), Euclidean(2)))
    res = frechet_mean(m, (jnp.asarray(pts), jnp.asarray(eucl)), jnp.asarray(w), tol=1e-12)
    assert isinstance(res.mean, tuple) and bool(res.converged)
    np.testing.assert_allclose(res.mean[0], _sphere_mean_bruteforce(pts, w), rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.mean[1], (w / w.sum()) @ eucl, rtol=1e-12, atol=1e-13)


def test_product_with_mixed_dtypes_keeps_each_dtype(x64):
    pts, w = _cluster(N, 7)
    m = Product((Sphere(2), Euclidean(2)))
    points = (jnp.asarray(pts, jnp.float32), jnp.asarray(np.arange(2.0 * N).reshape(N, 2)))
    res = frechet_mean(m, points, jnp.asarray(w), tol=1e-5)
    assert res.mean[0].dtype == jnp.float32 and res.mean[1].dtype == jnp.float64
    assert bool(res.converged)
    np.testing.assert_allclose(res.mean[1], (w / w.sum()) @ np.asarray(points[1]), rtol=1e-12)


def test_nonconvergence_is_reported(x64):
    pts, _ = _cluster(N, 4, spread=1.0)
    res = frechet_mean(Sphere(2), jnp.asarray(pts), max_iter=1, tol=1e-14)
    assert not bool(res.converged)
    assert int(res.n_iters) == 1
    assert float(res.grad_norm) > 1e-14
    # The reported error is the gradient norm at the returned point.
    logs = jax.vmap(Sphere(2).log, in_axes=(None, 0))(res.mean, jnp.asarray(pts))
    np.testing.assert_allclose(res.grad_norm, np.linalg.norm(np.mean(logs, 0)), rtol=1e-10)


def test_coincident_points_nan_free_zero_iterations():
    # jax_debug_nans is on (tests/conftest.py): log(x, x) must be NaN-free.
    x = jnp.array([0.0, 0.6, 0.8])
    res = frechet_mean(Sphere(2), jnp.stack([x, x, x]))
    assert bool(res.converged) and int(res.n_iters) == 0 and float(res.grad_norm) == 0.0
    np.testing.assert_array_equal(res.mean, x)


def test_zero_weights_ignore_points(x64):
    pts, w = _cluster(N, 5)
    w[N // 2 :] = 0.0
    res = frechet_mean(Sphere(2), jnp.asarray(pts), jnp.asarray(w), tol=1e-12)
    sub = frechet_mean(Sphere(2), jnp.asarray(pts[: N // 2]), jnp.asarray(w[: N // 2]), tol=1e-12)
    np.testing.assert_allclose(res.mean, sub.mean, rtol=0, atol=1e-12)


def test_init_and_step_size_reach_the_same_mean(x64):
    pts, w = _cluster(N, 6)
    base = frechet_mean(Sphere(2), jnp.asarray(pts), jnp.asarray(w), tol=1e-12)
    other = frechet_mean(
        Sphere(2),
        jnp.asarray(pts),
        jnp.asarray(w),
        tol=1e-12,
        step_size=0.5,
        init=jnp.asarray(pts[-1]),
        max_iter=200,
    )
    assert bool(other.converged) and int(other.n_iters) > int(base.n_iters)
    np.testing.assert_allclose(other.mean, base.mean, rtol=0, atol=1e-11)


def test_jit_and_vmap_over_clouds():
    clouds = jnp.stack([jnp.asarray(_cluster(N, s, np.float32)[0]) for s in range(3)])
    fn = jax.jit(functools.partial(frechet_mean, Sphere(2), tol=1e-5))
    batched = jax.vmap(fn)(clouds)
    assert batched.mean.shape == (3, 3) and bool(jnp.all(batched.converged))
    for i in range(3):
        np.testing.assert_allclose(batched.mean[i], fn(clouds[i]).mean, rtol=0, atol=1e-6)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_iter", [0, -1, 2.0, True])
def test_bad_max_iter_raises(max_iter):
    with pytest.raises(ValueError, match="max_iter"):
        frechet_mean(Euclidean(2), jnp.zeros((3, 2)), max_iter=max_iter)


def test_bad_arguments_raise():
    m = Sphere(2)
    pts = jnp.asarray(_cluster(4, 0, np.float32)[0])
    with pytest.raises(ValueError, match=r"`weights` must have shape \(4,\)"):
        frechet_mean(m, pts, jnp.ones(5))
    with pytest.raises(ValueError, match=r"`points`.*\(n, 3\)"):
        frechet_mean(m, pts[:, :2])
    with pytest.raises(ValueError, match="`points`"):
        frechet_mean(m, pts[0])
    with pytest.raises(ValueError, match="at least one point"):
        frechet_mean(m, pts[:0])
    with pytest.raises(TypeError, match="`points`.*floating"):
        frechet_mean(m, jnp.ones((4, 3), jnp.int32))
    with pytest.raises(TypeError, match="`weights`.*floating"):
        frechet_mean(m, pts, jnp.ones(4, jnp.int32))
    with pytest.raises(ValueError, match="`tol`"):
        frechet_mean(m, pts, tol=-1.0)
    with pytest.raises(ValueError, match="`step_size`"):
        frechet_mean(m, pts, step_size=0.0)
    with pytest.raises(ValueError, match="`init`"):
        frechet_mean(m, pts, init=jnp.ones(4))
    with pytest.raises(TypeError, match="`manifold`"):
        frechet_mean("sphere", pts)


def test_bad_product_points_raise():
    m = Product((Sphere(2), Euclidean(2)))
    pts = jnp.asarray(_cluster(4, 0, np.float32)[0])
    with pytest.raises(ValueError, match="tuple of 2 stacks"):
        frechet_mean(m, pts)
    with pytest.raises(ValueError, match="same leading dimension"):
        frechet_mean(m, (pts, jnp.zeros((5, 2))))
    with pytest.raises(ValueError, match=r"`points\[1\]`"):
        frechet_mean(m, (pts, jnp.zeros((4, 3))))
    with pytest.raises(ValueError, match="`init`"):
        frechet_mean(m, (pts, jnp.zeros((4, 2))), init=pts[0])
