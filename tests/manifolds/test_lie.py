"""Tests for SO(3) / SE(3): group functions against scipy (expm, Rotation), group axioms,
manifold axioms, parallel transport against a projection-ladder oracle, and NaN-free gradients
at rotation angles 0 and pi (``jax_debug_nans`` is on for every test via tests/conftest.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.manifolds._se3 import SE3, exp_se3, hat_se3, log_se3, vee_se3
from geomjax.manifolds._so3 import (
    SO3,
    axis_angle_to_matrix,
    exp_so3,
    hat,
    inv_left_jacobian_so3,
    left_jacobian_so3,
    log_so3,
    matrix_to_axis_angle,
    matrix_to_quat,
    quat_to_matrix,
    rotation_angle,
    vee,
)
from geomjax.testing import (
    assert_allclose_dtype,
    check_grads_finite,
    matmul_eps,
    rounding_tolerance,
)

sl = pytest.importorskip("scipy.linalg")
Rotation = pytest.importorskip("scipy.spatial.transform").Rotation

PI = np.pi
# Angles exercising both Taylor branches and both log branches (c >= 0 and c < 0).
ANGLES = [1e-4, 0.05, 0.7, 1.6, 2.5, PI - 1e-4]


def _tol(dtype, n=9):
    """Round-off of 3x3 (n = 9) or 4x4 (n = 16) rotation algebra: every entry a handful of
    rounded products and trigonometric values, worst-case (linear) growth over the n entries
    the computation mixes: 36 eps for SO(3), 64 eps for SE(3)."""
    return rounding_tolerance(dtype, n_ops=n, growth="linear")


def _hat_np(w):
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _unit(rng):
    n = rng.normal(size=3)
    return n / np.linalg.norm(n)


def _rot_pi(n):
    """Rotation by exactly pi about the unit axis n: 2 n n^T - I."""
    return 2.0 * np.outer(n, n) - np.eye(3)


def _se3_np(R, t):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


# ---------------------------------------------------------------- SO(3) group functions
def test_hat_vee(dtype):
    rng = np.random.default_rng(0)
    w, p = rng.normal(size=3), rng.normal(size=3)
    # the test's own product at full precision (float32 products default to TF32 on GPUs)
    wp = jnp.matmul(hat(jnp.asarray(w, dtype)), jnp.asarray(p, dtype), precision="highest")
    assert_allclose_dtype(wp, np.cross(w, p))
    assert_allclose_dtype(vee(hat(jnp.asarray(w, dtype))), w)


def test_exp_so3_vs_expm(dtype):
    """Rodrigues against matrix exponentials of hat(w) over both Taylor branches: mpmath's
    40-digit expm (a few ulps) and scipy's Pade expm (whose own error reaches ~1e-14 at
    |w| = 4, hence the looser bound there)."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(1)
    with mpmath.workdps(40):
        for theta in [0.0, 1e-8, *ANGLES, PI, 4.0]:
            w = theta * _unit(rng)
            R = exp_so3(jnp.asarray(w, dtype))
            assert R.dtype == dtype
            ref = np.array(mpmath.expm(mpmath.matrix(_hat_np(w))).tolist(), dtype=np.float64)
            np.testing.assert_allclose(R, ref, rtol=0, atol=_tol(dtype))
            scipy_tol = max(1e-13, _tol(dtype))
            np.testing.assert_allclose(R, sl.expm(_hat_np(w)), rtol=0, atol=scipy_tol)


def test_log_so3_vs_scipy_rotvec(dtype):
    """log of an independently built rotation (scipy, float64, then cast) recovers the rotvec."""
    rng = np.random.default_rng(2)
    for theta in [0.0, 1e-7, *ANGLES]:
        w = theta * _unit(rng)
        R = Rotation.from_rotvec(w).as_matrix()
        got = log_so3(jnp.asarray(R, dtype))
        # Casting R to float32 perturbs it by ~eps; log is well-conditioned away from pi but
        # the axis error near pi scales like eps / sin(theta) in the skew part, which the
        # symmetric-part branch avoids: a few eps of absolute error everywhere.
        np.testing.assert_allclose(got, w, rtol=0, atol=_tol(dtype))


def test_log_exp_roundtrip(dtype):
    rng = np.random.default_rng(3)
    for theta in ANGLES:
        w = jnp.asarray(theta * _unit(rng), dtype)
        np.testing.assert_allclose(log_so3(exp_so3(w)), w, rtol=0, atol=_tol(dtype))


def test_log_at_exactly_pi(dtype):
    """At angle pi both +-pi n are logarithms: check |w| = pi and w = +-pi n, and exp(w) = R."""
    rng = np.random.default_rng(4)
    axes = [np.eye(3)[0], np.eye(3)[1], np.eye(3)[2], _unit(rng), _unit(rng)]
    for n in axes:
        R = jnp.asarray(_rot_pi(n), dtype)
        w = np.asarray(log_so3(R), np.float64)
        err = min(np.abs(w - PI * n).max(), np.abs(w + PI * n).max())
        assert err < _tol(dtype), err
        np.testing.assert_allclose(exp_so3(jnp.asarray(w, dtype)), R, rtol=0, atol=_tol(dtype))
    np.testing.assert_array_equal(log_so3(jnp.eye(3, dtype=dtype)), np.zeros(3))


def test_rotation_angle_and_dist_vs_trace_formula(dtype):
    """dist against arccos((tr(R1^T R2) - 1) / 2) computed in float64 numpy."""
    so3 = SO3()
    Rs = Rotation.random(12, random_state=5).as_matrix()
    for R1, R2 in zip(Rs[:6], Rs[6:]):
        ref = np.arccos(np.clip((np.trace(R1.T @ R2) - 1) / 2, -1, 1))
        got = so3.dist(jnp.asarray(R1, dtype), jnp.asarray(R2, dtype))
        # generic angles: arccos is well-conditioned there; a few ulps per matrix product.
        np.testing.assert_allclose(got, ref, rtol=0, atol=_tol(dtype))
        np.testing.assert_allclose(
            rotation_angle(jnp.asarray(R1.T @ R2, dtype)), ref, rtol=0, atol=_tol(dtype)
        )


def test_left_jacobian_vs_block_expm(dtype):
    """J_l(w) = sum_k hat(w)^k / (k+1)! is the top-right block of expm([[W, I], [0, 0]])."""
    rng = np.random.default_rng(6)
    for theta in [0.0, 1e-5, 0.05, 1.0, 3.0]:
        w = theta * _unit(rng)
        big = np.zeros((6, 6))
        big[:3, :3], big[:3, 3:] = _hat_np(w), np.eye(3)
        ref = sl.expm(big)[:3, 3:]
        wj = jnp.asarray(w, dtype)
        np.testing.assert_allclose(left_jacobian_so3(wj), ref, rtol=0, atol=_tol(dtype))
        np.testing.assert_allclose(
            inv_left_jacobian_so3(wj), np.linalg.inv(ref), rtol=0, atol=_tol(dtype)
        )


# ---------------------------------------------------------------- quaternions, axis-angle
def _scipy_quat(R):
    """scipy's scalar-last quaternion, reordered to scalar-first with w >= 0."""
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def test_quaternions_vs_scipy(dtype):
    rng = np.random.default_rng(7)
    qs = rng.normal(size=(6, 4))
    for q in qs:
        R = quat_to_matrix(jnp.asarray(q, dtype))
        R_ref = Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()  # scipy: scalar last
        np.testing.assert_allclose(R, R_ref, rtol=0, atol=_tol(dtype))
        qn = q / np.linalg.norm(q) * np.sign(q[0])
        np.testing.assert_allclose(matrix_to_quat(R), qn, rtol=0, atol=_tol(dtype))
    # Every Shepperd branch: largest of (trace, R00, R11, R22).
    mats = [
        Rotation.from_rotvec(v).as_matrix()
        for v in (
            [0.1, 0.2, -0.3],
            [PI - 0.1, 0.05, 0.0],
            [0.0, PI - 0.1, 0.05],
            [0.05, 0.0, PI - 0.1],
        )
    ]
    for R in mats:
        q = matrix_to_quat(jnp.asarray(R, dtype))
        np.testing.assert_allclose(q, _scipy_quat(R), rtol=0, atol=_tol(dtype))
        np.testing.assert_allclose(jnp.linalg.norm(q), 1.0, rtol=0, atol=_tol(dtype, 4))
    # Exactly pi (w = 0): the sign is arbitrary, compare up to sign.
    for n in (np.eye(3)[0], np.eye(3)[2], _unit(rng)):
        q = np.asarray(matrix_to_quat(jnp.asarray(_rot_pi(n), dtype)), np.float64)
        ref = np.concatenate([[0.0], n])
        assert min(np.abs(q - ref).max(), np.abs(q + ref).max()) < _tol(dtype)


def test_axis_angle(dtype):
    rng = np.random.default_rng(8)
    for angle in [0.3, 2.0, PI - 1e-3]:
        axis = 2.5 * _unit(rng)  # not normalized on purpose
        R = axis_angle_to_matrix(jnp.asarray(axis, dtype), angle)
        ref = Rotation.from_rotvec(angle * axis / np.linalg.norm(axis)).as_matrix()
        np.testing.assert_allclose(R, ref, rtol=0, atol=_tol(dtype))
        ax, an = matrix_to_axis_angle(R)
        np.testing.assert_allclose(ax, axis / np.linalg.norm(axis), rtol=0, atol=_tol(dtype))
        np.testing.assert_allclose(an, angle, rtol=0, atol=_tol(dtype))
    ax, an = matrix_to_axis_angle(jnp.eye(3, dtype=dtype))
    np.testing.assert_array_equal(ax, [1.0, 0.0, 0.0])
    assert float(an) == 0.0


# ---------------------------------------------------------------- SE(3) group functions
def test_exp_se3_vs_expm_and_log_roundtrip(dtype):
    rng = np.random.default_rng(9)
    for theta in [0.0, 1e-6, 0.05, 1.0, 2.5, PI - 1e-3]:
        xi = np.concatenate([theta * _unit(rng), rng.normal(size=3)])
        T = exp_se3(jnp.asarray(xi, dtype))
        # scipy's Pade expm carries up to ~1e-14 itself (see test_exp_so3_vs_expm)
        scipy_tol = max(1e-13, _tol(dtype))
        np.testing.assert_allclose(T, sl.expm(np.asarray(hat_se3(xi))), rtol=0, atol=scipy_tol)
        # V^{-1} is bounded for theta <= pi; near pi the rotation log loses nothing either.
        np.testing.assert_allclose(log_se3(T), xi, rtol=0, atol=_tol(dtype, 16))
    np.testing.assert_array_equal(vee_se3(hat_se3(jnp.arange(6.0, dtype=dtype))), np.arange(6.0))


def test_adjoint_identities(dtype):
    """T exp(xi^) T^-1 = exp((Ad_T xi)^) (with scipy expm as oracle), for SE(3) and SO(3)."""
    rng = np.random.default_rng(10)
    se3, so3 = SE3(), SO3()
    T = _se3_np(Rotation.random(random_state=11).as_matrix(), rng.normal(size=3))
    xi = rng.normal(size=6)
    lhs = T @ sl.expm(np.asarray(hat_se3(xi))) @ np.linalg.inv(T)
    adx = np.asarray(se3.adjoint(jnp.asarray(T, dtype)), np.float64) @ xi
    np.testing.assert_allclose(sl.expm(np.asarray(hat_se3(adx))), lhs, rtol=0, atol=_tol(dtype, 16))
    np.testing.assert_allclose(exp_se3(jnp.asarray(adx, dtype)), lhs, rtol=0, atol=_tol(dtype, 16))
    R, w = T[:3, :3], xi[:3]
    adw = np.asarray(so3.adjoint(jnp.asarray(R, dtype)), np.float64) @ w
    np.testing.assert_allclose(
        exp_so3(jnp.asarray(adw, dtype)), R @ sl.expm(_hat_np(w)) @ R.T, atol=_tol(dtype)
    )


@pytest.mark.parametrize("group", [SO3(), SE3()], ids=["SO3", "SE3"])
def test_group_axioms(group, dtype):
    keys = jax.random.split(jax.random.key(12), 3)
    a, b, c = (group.random_point(k, dtype) for k in keys)
    p = jnp.asarray([0.3, -1.2, 2.0], dtype)
    e = group.identity(dtype)
    tol = dict(rtol=0, atol=_tol(dtype))
    np.testing.assert_allclose(group.compose(e, a), a, **tol)
    np.testing.assert_allclose(
        group.compose(group.compose(a, b), c), group.compose(a, group.compose(b, c)), **tol
    )
    np.testing.assert_allclose(group.compose(a, group.inverse(a)), e, **tol)
    np.testing.assert_allclose(group.compose(group.inverse(a), a), e, **tol)
    np.testing.assert_allclose(
        group.act(group.compose(a, b), p), group.act(a, group.act(b, p)), **tol
    )
    np.testing.assert_allclose(group.act(group.inverse(a), group.act(a, p)), p, **tol)
    np.testing.assert_allclose(group.act(e, p), p, **tol)
    q = jnp.asarray([1.0, 0.5, -0.7], dtype)  # isometry of R^3
    np.testing.assert_allclose(
        jnp.linalg.norm(group.act(a, p) - group.act(a, q)), jnp.linalg.norm(p - q), **tol
    )
    assert float(group.check_point(group.compose(a, b))) < _tol(dtype, 16)


# ---------------------------------------------------------------- manifold axioms
@pytest.mark.parametrize("man", [SO3(), SE3()], ids=["SO3", "SE3"])
def test_manifold_axioms(man, dtype):
    keys = jax.random.split(jax.random.key(13), 6)
    x, y, z = (man.random_point(k, dtype) for k in keys[:3])
    on = _tol(dtype, 16)
    for pt in (x, y, z):
        assert pt.shape == man.point_shape and pt.dtype == dtype
        assert float(man.check_point(pt)) < on
    u = man.random_tangent(keys[3], x)
    u = 1.3 * u / man.norm(x, u)  # rotation angle <= 1.3 < pi: inside the injectivity radius
    v = man.random_tangent(keys[4], x)
    assert float(man.check_tangent(x, u)) < on
    # exp stays on the manifold and log inverts it; dist = norm(log)
    ex = man.exp(x, u)
    assert float(man.check_point(ex)) < on
    np.testing.assert_allclose(man.log(x, ex), u, rtol=0, atol=_tol(dtype, 16))
    np.testing.assert_allclose(man.dist(x, ex), 1.3, rtol=_tol(dtype))
    np.testing.assert_allclose(man.exp(x, man.log(x, y)), y, rtol=0, atol=_tol(dtype, 16))
    np.testing.assert_allclose(man.dist(x, y), man.norm(x, man.log(x, y)), rtol=_tol(dtype))
    # metric-space axioms
    np.testing.assert_allclose(man.dist(x, y), man.dist(y, x), rtol=_tol(dtype))
    assert float(man.dist(x, z)) <= float(man.dist(x, y) + man.dist(y, z)) + _tol(dtype)
    assert float(man.dist(x, x)) == 0.0
    # geodesic
    np.testing.assert_allclose(man.geodesic(x, y, 0.0), x, rtol=0, atol=_tol(dtype))
    np.testing.assert_allclose(man.geodesic(x, y, 1.0), y, rtol=0, atol=_tol(dtype, 16))
    np.testing.assert_allclose(
        man.dist(x, man.geodesic(x, y, 0.3)), 0.3 * man.dist(x, y), rtol=_tol(dtype, 16)
    )
    # transport: tangent at y, isometric, maps log_x(y) to -log_y(x)
    tu, tv = man.transp(x, y, u), man.transp(x, y, v)
    assert float(man.check_tangent(y, tu)) < on
    np.testing.assert_allclose(man.inner(y, tu, tv), man.inner(x, u, v), rtol=0, atol=8 * on)
    np.testing.assert_allclose(
        man.transp(x, y, man.log(x, y)), -man.log(y, x), rtol=0, atol=_tol(dtype, 16)
    )
    # retraction: first-order agreement with exp
    for t in (1e-1, 1e-2):
        err = float(jnp.max(jnp.abs(man.retr(x, t * u) - man.exp(x, t * u))))
        assert err <= 2 * t * t + on
    # projx fixes points and lands on the manifold
    np.testing.assert_allclose(man.projx(x), x, rtol=0, atol=on)
    noisy = x + 0.05 * jax.random.normal(keys[5], man.point_shape, dtype)
    assert float(man.check_point(man.projx(noisy))) < on


def test_so3_metric_and_rgrad(dtype):
    """|R hat(a)| = |a|, and <rgrad f, u> equals the directional derivative of f."""
    so3 = SO3()
    R = so3.random_point(jax.random.key(14), dtype)
    a, b = jnp.asarray([0.3, -0.4, 1.2], dtype), jnp.asarray([1.0, 2.0, -0.5], dtype)
    # 3x3 products in the test (matmul precision) and a 9-term inner product
    tol = rounding_tolerance(dtype, n_ops=9, eps=matmul_eps(dtype))
    np.testing.assert_allclose(so3.inner(R, R @ hat(a), R @ hat(b)), jnp.dot(a, b), rtol=tol)
    A = jnp.asarray(np.random.default_rng(15).normal(size=(3, 3)), dtype)
    f = lambda X: jnp.sum(A * X)  # noqa: E731
    u = R @ hat(a)
    dd = jax.jvp(lambda t: f(so3.exp(R, t * u)), (jnp.zeros((), dtype),), (jnp.ones((), dtype),))[1]
    # sums of 9 products that cancel down to dd: condition sum |A * U| / |dd|
    cond = float(jnp.sum(jnp.abs(A * u)) / jnp.abs(dd))
    tol = rounding_tolerance(dtype, n_ops=9, cond=max(cond, 1.0), eps=matmul_eps(dtype))
    np.testing.assert_allclose(so3.inner(R, so3.egrad_to_rgrad(R, A), u), dd, rtol=tol)
    se3 = SE3()
    T = se3.random_point(jax.random.key(16), dtype)
    B = jnp.asarray(np.random.default_rng(17).normal(size=(4, 4)), dtype)
    U = se3.proj(T, jnp.asarray(np.random.default_rng(18).normal(size=(4, 4)), dtype))
    g = lambda X: jnp.sum(B * X)  # noqa: E731
    dd = jax.jvp(lambda t: g(se3.exp(T, t * U)), (jnp.zeros((), dtype),), (jnp.ones((), dtype),))[1]
    cond = float(jnp.sum(jnp.abs(B * U)) / jnp.abs(dd))
    tol = rounding_tolerance(dtype, n_ops=16, cond=max(cond, 1.0), eps=matmul_eps(dtype))
    np.testing.assert_allclose(se3.inner(T, se3.egrad_to_rgrad(T, B), U), dd, rtol=tol)


def test_so3_projx_vs_polar(x64):
    """Nearest rotation = orthogonal polar factor when det > 0; det fixed when det < 0."""
    rng = np.random.default_rng(19)
    A = rng.normal(size=(3, 3))
    A = A if np.linalg.det(A) > 0 else -A
    # float64 SVD-based vs scipy's polar of a 3x3 with cond(A) < 10: 1e-12 = 4500 eps64
    np.testing.assert_allclose(SO3().projx(jnp.asarray(A)), sl.polar(A)[0], rtol=0, atol=1e-12)
    B = np.diag([1.0, 2.0, -3.0])  # det < 0: nearest rotation flips the smallest singular dir
    np.testing.assert_allclose(
        SO3().projx(jnp.asarray(B)), np.diag([-1.0, 1.0, -1.0]), rtol=0, atol=1e-12
    )


def test_so3_transport_vs_projection_ladder(x64):
    """Parallel transport vs repeated projection along the geodesic (Richardson-extrapolated).

    Projecting onto successive tangent spaces along a curve converges to Levi-Civita
    transport for the induced metric (the bi-invariant metric is half the Frobenius one, same
    connection) with an O(1/n) error that has an expansion in powers of 1/n.
    """
    so3 = SO3()
    R1 = Rotation.random(random_state=20).as_matrix()
    w = 2.2 * _unit(np.random.default_rng(21))
    R2 = R1 @ Rotation.from_rotvec(w).as_matrix()
    U = R1 @ _hat_np(np.array([0.5, -1.0, 0.8]))

    def ladder(n):
        V = U
        Rs = R1 @ Rotation.from_rotvec(np.linspace(0, 1, n + 1)[1:, None] * w).as_matrix()
        for Rk in Rs:
            S = Rk.T @ V
            V = Rk @ (S - S.T) / 2
        return V

    p1, p2, p4 = ladder(500), ladder(1000), ladder(2000)
    r1, r2 = 2 * p2 - p1, 2 * p4 - p2  # O(1/n^2)
    ref = (4 * r2 - r1) / 3  # second Richardson step: O(1/n^3), ~1e-9 here
    got = so3.transp(jnp.asarray(R1), jnp.asarray(R2), jnp.asarray(U))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)  # the reference's O(1/n^3) ~1e-9


def test_vmap_jit_consistency():
    so3 = SO3()
    keys = jax.random.split(jax.random.key(22), 8)
    Rs = jax.vmap(so3.random_point)(keys)
    batched = jax.jit(jax.vmap(so3.dist))(Rs[:4], Rs[4:])
    loop = jnp.stack([so3.dist(a, b) for a, b in zip(Rs[:4], Rs[4:])])
    # the same float32 computation batched or looped (identical here): 8 eps32
    np.testing.assert_allclose(batched, loop, rtol=1e-6)


# ---------------------------------------------------------------- gradients
def _singular_configs(dtype):
    """Rotations at angle 0 and pi, as pairs and as single matrices."""
    R = SO3().random_point(jax.random.key(23), dtype)
    R_pi = R @ jnp.asarray(_rot_pi(np.array([0.0, 0.6, 0.8])), dtype)
    pairs = (jnp.stack([R, R]), jnp.stack([R, R_pi]))
    mats = jnp.stack(
        [jnp.eye(3, dtype=dtype), jnp.asarray(_rot_pi(np.eye(3)[0]), dtype), R_pi.T @ R]
    )
    return pairs, mats


def _pair_terms(a, b):
    so3, ones = SO3(), jnp.ones(3, a.dtype)
    return so3.dist(a, b) + jnp.sum(so3.log(a, b)) + jnp.sum(so3.transp(a, b, a @ hat(ones)))


def _matrix_terms(m):
    return (
        jnp.sum(log_so3(m))
        + rotation_angle(m)
        + jnp.sum(matrix_to_quat(m))
        + jnp.sum(log_se3(jnp.eye(4, dtype=m.dtype).at[:3, :3].set(m)))
        + jnp.sum(matrix_to_axis_angle(m)[0])
    )


def _vector_terms(w):
    return (
        jnp.sum(exp_so3(w))
        + jnp.sum(left_jacobian_so3(w))
        + jnp.sum(inv_left_jacobian_so3(w))
        + jnp.sum(exp_se3(jnp.concatenate([w, w])))
    )


def _singular_total(pa, pb, mats, w0, T):
    """Many functions summed over a stack of singular configurations: a NaN in any term's
    derivative makes the sum's derivative NaN (and debug_nans raises where it is produced),
    while compilation stays at one program."""
    return (
        jnp.sum(jax.vmap(_pair_terms)(pa, pb))
        + jnp.sum(jax.vmap(_matrix_terms)(mats))
        + _vector_terms(w0)
        + SE3().dist(T, T)
    )


def _singular_args(dtype):
    pairs, mats = _singular_configs(dtype)
    T = SE3().random_point(jax.random.key(24), dtype)
    return (*pairs, mats, jnp.zeros(3, dtype), T)


def test_grads_finite_at_singular_points(dtype):
    """Values and gradients finite (jax_debug_nans on) at angles 0 and pi, x == y, w = 0."""
    args = _singular_args(dtype)
    val, grads = jax.jit(jax.value_and_grad(_singular_total, argnums=tuple(range(5))))(*args)
    for leaf in (val, *grads):
        assert np.all(np.isfinite(np.asarray(leaf)))


@pytest.mark.slow
def test_hessians_finite_at_singular_points(dtype):
    """Same configurations, second derivatives (both Hessian modes); slow to compile."""
    check_grads_finite(jax.jit(_singular_total), _singular_args(dtype), order=2)


def test_dist_hessian_finite_at_0_and_pi(x64):
    pairs, _ = _singular_configs(jnp.float64)
    check_grads_finite(jax.jit(lambda a, b: jnp.sum(jax.vmap(SO3().dist)(a, b))), pairs)


def test_exp_so3_hessian_at_zero(x64):
    """The Taylor branch is a polynomial in |w|^2, so even the Hessian at w = 0 is exact:
    d^2/dw^2 of tr(Exp(w)) = d^2/dw^2 (1 + 2 cos|w|) = -2 I at 0."""
    hess = jax.jit(jax.hessian(lambda w: jnp.trace(exp_so3(w))))(jnp.zeros(3))
    np.testing.assert_allclose(
        hess, -2 * np.eye(3), rtol=0, atol=1e-12
    )  # float64, exact polynomial


def _generic_all(R1, R2, u, w, q, xi, T1, T2):
    so3, se3 = SO3(), SE3()
    return (
        exp_so3(w),
        exp_so3(1e-3 * w),  # Taylor branch
        log_so3(R1),  # c >= 0 branch
        log_so3(R2),  # c < 0 branch
        so3.dist(R1, R2),
        so3.transp(R1, R2, u),
        matrix_to_quat(R2),
        quat_to_matrix(q),
        inv_left_jacobian_so3(w),
        exp_se3(xi),
        log_se3(T2),
        se3.dist(T1, T2),
    )


def _generic_args():
    R1 = jnp.asarray(Rotation.from_rotvec([0.3, -0.5, 0.4]).as_matrix())
    R2 = jnp.asarray(Rotation.from_rotvec([-1.0, 0.8, 1.9]).as_matrix())  # angle ~2.3 (c < 0)
    u = R1 @ hat(jnp.array([0.2, 0.1, -0.3]))
    w = jnp.array([0.4, -1.1, 0.7])
    q = jnp.array([0.3, -0.2, 0.8, 0.5])
    xi = jnp.array([0.4, -1.1, 0.7, 1.0, -2.0, 0.5])
    T1 = jnp.asarray(_se3_np(np.asarray(R1), np.array([1.0, 2.0, -1.0])))
    T2 = jnp.asarray(_se3_np(np.asarray(R2), np.array([0.0, -1.0, 3.0])))
    return (R1, R2, u, w, q, xi, T1, T2)


def test_check_grads_generic(x64):
    """JVPs against finite differences, float64, generic points. (Reverse mode is JAX's exact
    transpose of the same linearization; the slow test below checks it, and second order.)"""
    check_grads(jax.jit(_generic_all), _generic_args(), order=1, modes=["fwd"])


@pytest.mark.slow
def test_check_grads_generic_second_order(x64):
    check_grads(jax.jit(_generic_all), _generic_args(), order=2, modes=["fwd", "rev"])


# ---------------------------------------------------------------- validation
def test_bad_inputs_raise():
    so3, se3 = SO3(), SE3()
    with pytest.raises(ValueError, match="`w`"):
        exp_so3(jnp.zeros(4))
    with pytest.raises(ValueError, match="`R`"):
        log_so3(jnp.eye(4))
    with pytest.raises(ValueError, match="`q`"):
        quat_to_matrix(jnp.zeros(3))
    with pytest.raises(ValueError, match="`y`"):
        so3.log(jnp.eye(3), jnp.eye(4))
    with pytest.raises(ValueError, match="`x`"):
        se3.exp(jnp.eye(3), jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="`xi`"):
        exp_se3(jnp.zeros(3))
    with pytest.raises(TypeError, match="`w`"):
        exp_so3(jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="`angle`"):
        axis_angle_to_matrix(jnp.ones(3), jnp.ones(2))
    assert (so3.dim, se3.dim, so3.point_shape, se3.point_shape) == (3, 6, (3, 3), (4, 4))
