"""Frame averaging: PCA frames against numpy, exact symmetry of averaged non-equivariant functions,
stochastic frames, degenerate (repeated-eigenvalue) inputs and finite gradients."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _random_mlp import random_mlp as _mlp
from jax.test_util import check_grads

from geomjax.equivariant._frame_averaging import FrameInfo, _eigh, frame_average, pca_frames
from geomjax.testing import (
    assert_allclose_dtype,
    check_grads_finite,
    rounding_tolerance,
)
from geomjax.testing._equivariance import assert_equivariant, random_orthogonal

N = 6
SCALES = (3.0, 2.0, 1.0)


def _cloud(key, dtype, n=N, scales=SCALES):
    """Anisotropic Gaussian cloud: well separated covariance eigenvalues (gap asserted)."""
    x = jax.random.normal(key, (n, len(scales)), dtype) * jnp.asarray(scales, dtype)
    _, _, info = pca_frames(x, return_info=True)
    assert float(info.gap) > 0.05 and not bool(info.degenerate)
    return x


def _tol(dtype):
    """assert_equivariant's round-off budget for the N x 3 points (4 eps sqrt(3N) 16)."""
    return rounding_tolerance(dtype, n_ops=3 * N, cond=16.0)


# ------------------------------------------------------------------------------------------
# PCA frames


@pytest.mark.parametrize("group", ["O3", "SO3", "E3", "SE3"])
def test_pca_frames_against_numpy(group, x64, key):
    x = _cloud(key, jnp.float64, n=9)
    rots, t = pca_frames(x, group)
    xn = np.asarray(x)
    centroid = xn.mean(axis=0)
    cov = (xn - centroid).T @ (xn - centroid) / len(xn)
    w, v = np.linalg.eigh(cov)
    v = v[:, ::-1]
    expected_k = 8 if group in ("O3", "E3") else 4
    assert rots.shape == (expected_k, 3, 3)
    # Every frame element is V diag(s): columns are +-the numpy eigenvectors, in decreasing order.
    # float64 eigh of a 3x3 covariance: orthonormal to a few eps; the eigenvectors to
    # eps * lambda_max / gap (gaps of the data ~0.5): 1e-12 and 1e-10 leave margin
    for r in np.asarray(rots):
        np.testing.assert_allclose(r.T @ r, np.eye(3), rtol=0, atol=1e-12)
        s = np.sum(r * v, axis=0)
        np.testing.assert_allclose(np.abs(s), 1.0, rtol=0, atol=1e-10)
        np.testing.assert_allclose(r, v * np.sign(s), rtol=0, atol=1e-10)
    # All sign patterns present exactly once (those with det +1 for SO3/SE3).
    patterns = {tuple(np.sign(np.sum(r * v, axis=0)).astype(int)) for r in np.asarray(rots)}
    allowed = set(itertools.product((1, -1), repeat=3))
    if group in ("SO3", "SE3"):
        allowed = {s for s in allowed if np.linalg.det(v * np.array(s)) > 0}
    assert patterns == allowed
    dets = np.linalg.det(np.asarray(rots))
    if group in ("SO3", "SE3"):
        np.testing.assert_allclose(dets, 1.0, rtol=0, atol=1e-12)
    else:
        assert sorted(np.round(dets).tolist()) == [-1.0] * 4 + [1.0] * 4
    want_t = centroid if group in ("E3", "SE3") else np.zeros(3)
    np.testing.assert_allclose(np.asarray(t), want_t, rtol=0, atol=1e-12)


def test_pca_frames_mask_and_dimensions(key):
    x = _cloud(key, jnp.float32, n=7)
    mask = jnp.array([True, True, True, True, True, False, False])
    garbage = x.at[5:].set(100.0)
    r1, t1 = pca_frames(garbage, "E3", node_mask=mask)
    r2, t2 = pca_frames(x[:5], "E3")
    assert_allclose_dtype(t1, t2)
    # Same frame up to the signs eigh picks: compare the projectors onto each axis.
    p1 = jnp.einsum("ia,ja->aij", r1[0], r1[0])
    p2 = jnp.einsum("ia,ja->aij", r2[0], r2[0])
    assert_allclose_dtype(p1, p2, scale=10)  # float32 eigenvectors: eps * lambda_max / gap
    x2 = jax.random.normal(key, (5, 2)) * jnp.array([2.0, 1.0])
    assert pca_frames(x2, "O3")[0].shape == (4, 2, 2)
    assert pca_frames(x2, "SO3")[0].shape == (2, 2, 2)
    assert pca_frames(x2[:, :1], "O3")[0].shape == (2, 1, 1)


def test_frame_is_equivariant(dtype, key):
    """F(x R^T + u) = R F(x) + u, as sets: the canonicalized clouds coincide."""
    x = _cloud(key, dtype)

    def canonical_clouds(x):
        rots, t = pca_frames(x, "E3")
        clouds = jnp.einsum("nd,kde->kne", x - t, rots)
        order = jnp.lexsort(jnp.sign(clouds[:, 0, :]).T[::-1])  # order by the signs of point 0
        return clouds[order]

    err = assert_equivariant(
        canonical_clouds,
        jax.random.key(3),
        (x,),
        in_kinds=("position",),
        out_kinds="graph_scalar",
        group="E3",
    )
    assert err <= _tol(dtype)


# ------------------------------------------------------------------------------------------
# frame averaging of non-equivariant functions


def test_frame_average_matches_numpy_reference(x64, key):
    """Independent reference: numpy eigh in float64, all sign choices, explicit loop."""
    x = _cloud(key, jnp.float64)
    f = _mlp(jax.random.key(5), [N * 3, 16, 2 * N * 3], jnp.float64)
    g = lambda x: f(x.reshape(-1)).reshape(2, N, 3)  # noqa: E731
    xn = np.asarray(x)
    t = xn.mean(0)
    _, v = np.linalg.eigh((xn - t).T @ (xn - t) / N)
    v = v[:, ::-1]  # documented convention: axes by decreasing variance
    outs_inv, outs_pos = [], []
    for s in itertools.product((1.0, -1.0), repeat=3):
        r = v * np.array(s)
        y = np.asarray(g(jnp.asarray((xn - t) @ r)))
        outs_inv.append(y)
        outs_pos.append(y @ r.T + t)
    got_inv = frame_average(g, x, group="E3", output="invariant")
    got_pos = frame_average(g, x, group="E3", output="position")
    assert_allclose_dtype(got_inv, np.mean(outs_inv, axis=0))
    assert_allclose_dtype(got_pos, np.mean(outs_pos, axis=0))


def test_unaveraged_mlp_is_not_equivariant(key):
    x = _cloud(key, jnp.float32)
    f = _mlp(jax.random.key(5), [N * 3, 16, 4], jnp.float32)
    with pytest.raises(AssertionError):
        assert_equivariant(
            lambda x: f(x.reshape(-1)),
            jax.random.key(3),
            (x,),
            in_kinds=("position",),
            out_kinds="graph_scalar",
            group="SO3",
        )


@pytest.mark.parametrize("group", ["E3", "SE3", "O3", "SO3"])
def test_flat_mlp_becomes_invariant(group, dtype, key):
    x = _cloud(key, dtype)
    f = _mlp(jax.random.key(5), [N * 3, 32, 4], dtype)
    fa = lambda x: frame_average(lambda y: f(y.reshape(-1)), x, group=group)  # noqa: E731
    err = assert_equivariant(
        fa,
        jax.random.key(3),
        (x,),
        in_kinds=("position",),
        out_kinds="graph_scalar",
        group=group,
        n_trials=4,
    )
    assert err <= _tol(dtype)


@pytest.mark.parametrize(
    "group, wider", [("SO3", "O3"), ("SE3", "E3"), ("O3", "E3"), ("SO3", "SE3")]
)
def test_frame_average_fails_outside_its_group(group, wider, key):
    """SO3 frames do not handle reflections; O3/SO3 frames do not handle translations."""
    x = _cloud(key, jnp.float32)
    f = _mlp(jax.random.key(5), [N * 3, 32, 4], jnp.float32)
    fa = lambda x: frame_average(lambda y: f(y.reshape(-1)), x, group=group)  # noqa: E731
    with pytest.raises(AssertionError):
        assert_equivariant(
            fa,
            jax.random.key(3),
            (x,),
            in_kinds=("position",),
            out_kinds="graph_scalar",
            group=wider,
            n_trials=2,
        )


@pytest.mark.parametrize("group", ["E3", "SE3"])
def test_rowwise_mlp_becomes_e3_and_permutation_equivariant(group, dtype, key):
    """Row-wise MLP (permutation equivariant, not rotation equivariant): all three output kinds."""
    x = _cloud(key, dtype)
    h = jax.random.normal(jax.random.key(2), (N, 2), dtype)
    f = _mlp(jax.random.key(5), [5, 32, 7], dtype)

    def g(y, h):
        z = f(jnp.concatenate([y, h], axis=-1))
        return z[:, :1], z[:, 1:4], z[:, 4:]

    fa = lambda x, h: frame_average(
        g,
        x,
        h,
        group=group,  # noqa: E731
        output=("invariant", "vector", "position"),
    )
    err = assert_equivariant(
        fa,
        jax.random.key(3),
        (x, h),
        in_kinds=("position", "scalar"),
        out_kinds=("scalar", "vector", "position"),
        group=group,
        permute=True,
        n_trials=4,
    )
    assert err <= _tol(dtype)


def test_vector_arguments_are_canonicalized(dtype, key):
    x = _cloud(key, dtype)
    v = jax.random.normal(jax.random.key(2), (N, 3), dtype)
    f = _mlp(jax.random.key(5), [6, 16, 3], dtype)
    fa = lambda x, v: frame_average(  # noqa: E731
        lambda y, w: f(jnp.concatenate([y, w], -1)), x, v, arg_kinds=("vector",), output="vector"
    )
    err = assert_equivariant(
        fa,
        jax.random.key(3),
        (x, v),
        in_kinds=("position", "vector"),
        out_kinds="vector",
        group="E3",
        permute=True,
    )
    assert err <= _tol(dtype)


def test_two_dimensional_clouds(key):
    x = _cloud(key, jnp.float32, scales=(2.0, 1.0))
    f = _mlp(jax.random.key(5), [2 * N, 16, 2], jnp.float32)
    fa = lambda x: frame_average(lambda y: f(y.reshape(-1)), x, output="vector")  # noqa: E731
    err = assert_equivariant(
        fa, jax.random.key(3), (x,), in_kinds=("position",), out_kinds="graph_vector", group="E3"
    )
    assert err <= _tol(jnp.float32)


def test_masked_frame_average(key):
    """Padding rows change nothing; real rows match the unpadded computation."""
    x = _cloud(key, jnp.float32)
    xp = jnp.concatenate([x, jnp.full((2, 3), 50.0)])
    mask = jnp.arange(N + 2) < N
    f = _mlp(jax.random.key(5), [3, 16, 3], jnp.float32)
    got = frame_average(f, xp, node_mask=mask, output="position")
    want = frame_average(f, x, output="position")
    assert_allclose_dtype(got[:N], want, rtol=_tol(jnp.float32))  # masked sums: another order
    # the padded values do not matter
    got2 = frame_average(f, xp.at[N:].set(-7.0), node_mask=mask, output="position")
    assert_allclose_dtype(got2, got)


# ------------------------------------------------------------------------------------------
# stochastic frame averaging


def test_stochastic_samples_frames_and_is_equivariant_in_distribution(key):
    x = _cloud(key, jnp.float32)
    f = _mlp(jax.random.key(5), [N * 3, 16, 3], jnp.float32)
    g = lambda y: f(y.reshape(-1))  # noqa: E731
    keys = jax.random.split(jax.random.key(11), 96)

    def samples(x):
        # float32 products in the MLP too (TF32 on GPUs would move outputs by ~1e-3): this test
        # is about which frames are sampled, not about the network's matmul precision
        with jax.default_matmul_precision("highest"):
            return jax.vmap(lambda k: frame_average(g, x, key=k, stochastic=True, output="vector"))(
                keys
            )

    def distinct(s):
        s = np.asarray(s, np.float64)
        rows = np.unique(np.round(s, 4), axis=0)
        return rows[np.lexsort(rows.T[::-1])]

    s = samples(x)
    d = distinct(s)
    assert len(d) == 8  # each of the 8 frame elements seen
    # the mean over the 8 distinct samples is the frame average
    # the distinct samples were rounded to 4 decimals: 5e-5 absolute in O(0.1-1) outputs
    assert_allclose_dtype(jnp.asarray(d).mean(0), frame_average(g, x, output="vector"), scale=100)
    q = random_orthogonal(jax.random.key(4), 3)
    u = jnp.array([1.0, -2.0, 0.5])
    d_moved = distinct(samples(jnp.matmul(x, q.T, precision="highest") + u))
    # rows rounded to 4 decimals on both sides (an entry may round the other way): 1e-3
    np.testing.assert_allclose(d_moved, distinct(s @ np.asarray(q).T), rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="key"):
        frame_average(g, x, stochastic=True)


# ------------------------------------------------------------------------------------------
# degenerate frames and gradients


def test_degenerate_inputs_are_flagged_and_finite(key):
    f = _mlp(jax.random.key(5), [3, 8, 3], jnp.float32)
    same = jnp.ones((5, 3))
    y, info = frame_average(f, same, output="position", return_info=True)
    assert isinstance(info, FrameInfo)
    assert bool(info.degenerate) and float(info.gap) == 0.0
    assert np.all(np.isfinite(np.asarray(y)))
    cube = jnp.asarray(list(itertools.product((-1.0, 1.0), repeat=3)))  # covariance = I
    _, info = frame_average(f, cube, output="position", return_info=True)
    assert bool(info.degenerate)
    np.testing.assert_allclose(np.asarray(info.eigenvalues), 1.0, atol=1e-6)
    line = jnp.outer(jnp.arange(5.0), jnp.array([1.0, 2.0, 3.0]))  # eigenvalues (a, 0, 0)
    _, info = frame_average(f, line, output="position", return_info=True)
    assert bool(info.degenerate)
    _, info = frame_average(f, _cloud(key, jnp.float32), return_info=True)
    assert not bool(info.degenerate)
    _, info = frame_average(f, _cloud(key, jnp.float32), return_info=True, gap_tol=0.99)
    assert bool(info.degenerate)


@pytest.mark.parametrize("frame_grad", [False, True])
def test_gradients_finite_at_coincident_points(frame_grad, x64):
    f = _mlp(jax.random.key(5), [3, 8, 3], jnp.float64)

    def loss(x):
        inv = frame_average(lambda y: jnp.sum(f(y) ** 2), x, frame_grad=frame_grad)
        pos = frame_average(f, x, output="position", frame_grad=frame_grad)
        return inv + jnp.sum(pos**2)

    loss = jax.jit(loss)
    cube = jnp.asarray(list(itertools.product((-1.0, 1.0), repeat=3)))
    points = (jnp.ones((8, 3), jnp.float64), jnp.zeros((8, 3), jnp.float64), cube)
    for x in points:  # all equal (covariance 0), all at the origin, covariance = identity
        check_grads_finite(loss, (x,), order=2, hessian="hvp")
    check_grads_finite(loss, (cube,), order=1)
    mask = jnp.array([True, True, False, False, False])
    masked = jax.jit(
        lambda x: jnp.sum(
            frame_average(f, x, node_mask=mask, output="vector", frame_grad=frame_grad) ** 2
        )
    )
    check_grads_finite(masked, (jnp.ones((5, 3), jnp.float64),), order=2, hessian="hvp")


def test_safe_eigh_derivative_matches_jax_at_distinct_eigenvalues(x64, key):
    a = jax.random.normal(key, (4, 4), jnp.float64)
    a = a + a.T
    da = jax.random.normal(jax.random.key(1), (4, 4), jnp.float64)
    da = da + da.T
    got = jax.jvp(_eigh, (a,), (da,))
    want = jax.jvp(jnp.linalg.eigh, (a,), (da,))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert_allclose_dtype(g, w)
    check_grads(
        jax.jit(lambda a: _eigh(0.5 * (a + a.T))[1][:, -1] ** 2),
        (a,),
        order=2,
        modes=("fwd", "rev"),
    )


def test_frame_grad_true_is_the_exact_gradient(x64, key):
    """frame_grad=True differentiates the averaged function itself (finite differences)."""
    x = _cloud(key, jnp.float64)
    f = _mlp(jax.random.key(5), [N * 3, 8, 1], jnp.float64)
    fa = jax.jit(lambda x: frame_average(lambda y: f(y.reshape(-1))[0], x, frame_grad=True))
    check_grads(fa, (x,), order=2, modes=("rev",))


@pytest.mark.parametrize("frame_grad", [False, True])
def test_gradient_field_is_equivariant(frame_grad, x64, key):
    x = _cloud(key, jnp.float64)
    f = _mlp(jax.random.key(5), [N * 3, 8, 1], jnp.float64)
    grad = jax.grad(
        lambda x: frame_average(lambda y: f(y.reshape(-1))[0], x, frame_grad=frame_grad)
    )
    err = assert_equivariant(
        grad, jax.random.key(3), (x,), in_kinds=("position",), out_kinds="vector", group="E3"
    )
    assert err <= _tol(jnp.float64)


def test_default_gradient_holds_the_frame_fixed(x64, key):
    """stop_gradient on the frame: the gradient of sum_k f(R_k^T (x - t)) with R_k constant."""
    x = _cloud(key, jnp.float64)
    f = _mlp(jax.random.key(5), [N * 3, 8, 1], jnp.float64)
    rots, _ = pca_frames(x, "E3")

    def fixed(x):
        t = jnp.mean(x, axis=0)
        return jnp.mean(jnp.stack([f(((x - t) @ r).reshape(-1))[0] for r in rots]))

    got = jax.grad(lambda x: frame_average(lambda y: f(y.reshape(-1))[0], x))(x)
    assert_allclose_dtype(got, jax.grad(fixed)(x))


def test_jit_and_vmap(key):
    xs = jnp.stack([_cloud(k, jnp.float32) for k in jax.random.split(key, 3)])
    f = _mlp(jax.random.key(5), [3, 8, 3], jnp.float32)
    batched = jax.jit(jax.vmap(lambda x: frame_average(f, x, output="vector")))(xs)
    for b in range(3):
        tol = _tol(jnp.float32)  # the same float32 network batched: the equivariance budget
        assert_allclose_dtype(batched[b], frame_average(f, xs[b], output="vector"), rtol=tol)


def test_validation_errors(key):
    x = _cloud(key, jnp.float32)
    f = lambda y: y  # noqa: E731
    with pytest.raises(ValueError, match="group"):
        frame_average(f, x, group="SE2")
    with pytest.raises(ValueError, match="output"):
        frame_average(f, x, output="tensor")
    with pytest.raises(ValueError, match="`x`"):
        frame_average(f, x[None])
    with pytest.raises(TypeError, match="`x`"):
        pca_frames(jnp.ones((4, 3), jnp.int32))
    with pytest.raises(ValueError, match="node_mask"):
        frame_average(f, x, node_mask=jnp.ones(N + 1, bool))
    with pytest.raises(TypeError, match="node_mask"):
        pca_frames(x, node_mask=jnp.ones(N))
    with pytest.raises(ValueError, match="arg_kinds"):
        frame_average(lambda y, v: y, x, x, arg_kinds=("vector", "vector"))
    with pytest.raises(ValueError, match="last axis"):
        frame_average(lambda y: y[:, :2], x, output="vector")
    with pytest.raises(ValueError, match="tuple"):
        frame_average(f, x, output=("vector", "invariant"))
    with pytest.raises(TypeError, match="callable"):
        frame_average(3, x)
    with pytest.raises(ValueError, match="gap_tol"):
        pca_frames(x, gap_tol=-1.0)
