"""Learned canonicalization: Gram-Schmidt frames (numpy QR reference, degenerate fallbacks),
canonicalize round trips, and exact symmetry of any backbone wrapped by canonicalized_apply."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _random_mlp import random_mlp as _mlp

from geomjax.equivariant._canonicalization import (
    canonicalize,
    canonicalized_apply,
    canonicalizer_frame,
    canonicalizer_vectors,
    decanonicalize,
    gram_schmidt_frame,
    init_canonicalizer,
)
from geomjax.testing import assert_allclose_dtype, check_grads_finite, rounding_tolerance
from geomjax.testing._equivariance import assert_equivariant, random_orthogonal

N = 6


def _gs_tol(dtype, vs):
    """Gram-Schmidt of the columns V: forward error ~ cond(V) eps (3-term dot products)."""
    v = np.stack([np.asarray(u, np.float64) for u in vs], axis=1)
    return rounding_tolerance(dtype, n_ops=3, cond=np.linalg.cond(v))


def _frame_cond(params, *args):
    """Condition-number budget of a canonicalized function: the default 16 of a well-conditioned
    network, or cond(V) of the canonicalizer's vectors V if larger (the Gram-Schmidt frame
    amplifies relative errors of V by sigma_max / sigma_min)."""
    v = np.asarray(canonicalizer_vectors(params, *args)[0], np.float64)
    return max(16.0, float(np.linalg.cond(v)))


def _np_gram_schmidt(vs):
    """Reference: QR of [v1 v2 (v3)] with the signs fixed so that diag(R) > 0."""
    a = np.stack([np.asarray(v, np.float64) for v in vs], axis=1)
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if q.shape[1] == 2:
        q = np.concatenate([q, np.cross(q[:, 0], q[:, 1])[:, None]], axis=1)
    return q


# ------------------------------------------------------------------------------------------
# Gram-Schmidt


@pytest.mark.parametrize("n_vectors", [2, 3])
def test_gram_schmidt_matches_qr(n_vectors, dtype, key):
    vs = list(jax.random.normal(key, (n_vectors, 3), dtype))
    r = gram_schmidt_frame(*vs)
    assert r.dtype == dtype
    tol = _gs_tol(dtype, vs)
    assert_allclose_dtype(r, _np_gram_schmidt(vs), rtol=tol)
    rn = np.asarray(r, np.float64)
    assert_allclose_dtype(rn.T @ rn, np.eye(3), rtol=tol)
    if n_vectors == 2:  # det = 1 up to three times the orthogonality defect
        np.testing.assert_allclose(np.linalg.det(rn), 1.0, rtol=3 * tol)


@pytest.mark.parametrize("n_vectors, group, wider", [(2, "SO3", "O3"), (3, "O3", None)])
def test_gram_schmidt_equivariance(n_vectors, group, wider, dtype, key):
    vs = tuple(jax.random.normal(key, (n_vectors, 3), dtype))
    f = lambda *v: gram_schmidt_frame(*v).T  # noqa: E731  rows e_k rotate: R -> Q R
    err = assert_equivariant(
        f,
        jax.random.key(1),
        vs,
        in_kinds=("vector",) * n_vectors,
        out_kinds="graph_vector",
        group=group,
        n_trials=4,
    )
    assert err <= _gs_tol(dtype, vs)  # tighter than the default: a frame of 2-3 vectors
    if wider is not None:  # the cross product flips under reflections
        with pytest.raises(AssertionError):
            assert_equivariant(
                f,
                jax.random.key(1),
                vs,
                in_kinds=("vector",) * n_vectors,
                out_kinds="graph_vector",
                group=wider,
            )


@pytest.mark.parametrize(
    "v1, v2",
    [
        ([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]),  # zero first vector
        ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]),  # zero second vector
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),  # both zero
        ([1.0, 2.0, 3.0], [-2.0, -4.0, -6.0]),  # exactly parallel
        ([1.0, 0.0, 0.0], [1.0, 1e-12, 0.0]),  # parallel to rounding level
    ],
)
@pytest.mark.parametrize("with_v3", [False, True])
def test_gram_schmidt_degenerate_fallback(v1, v2, with_v3, x64):
    args = [jnp.asarray(v1), jnp.asarray(v2)]
    if with_v3:
        args.append(jnp.asarray(v1))  # v3 degenerate too: falls back to e1 x e2
    r = np.asarray(gram_schmidt_frame(*args))
    tol = rounding_tolerance(jnp.float64, n_ops=3)  # float64 frame of small-integer vectors
    np.testing.assert_allclose(r.T @ r, np.eye(3), rtol=0, atol=tol)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, rtol=0, atol=tol)
    if np.linalg.norm(v1) > 0:
        np.testing.assert_allclose(r[:, 0], np.asarray(v1) / np.linalg.norm(v1), rtol=0, atol=tol)
    check_grads_finite(_gs_loss, tuple(args), order=2, hessian="hvp")


@jax.jit
def _gs_loss(*v):
    return jnp.sum(jnp.sin(gram_schmidt_frame(*v)) * jnp.arange(9.0).reshape(3, 3))


def test_gram_schmidt_float32_degenerate_grads():
    e = jnp.array([1.0, 2.0, 3.0])
    check_grads_finite(_gs_loss, (jnp.zeros(3), jnp.zeros(3)), order=2)  # full Hessian
    check_grads_finite(_gs_loss, (e, 2 * e), order=2, hessian="hvp")


def test_gram_schmidt_validation():
    with pytest.raises(ValueError, match="v1"):
        gram_schmidt_frame(jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="v3"):
        gram_schmidt_frame(jnp.ones(3), jnp.ones(3), jnp.ones(4))
    with pytest.raises(TypeError, match="v2"):
        gram_schmidt_frame(jnp.ones(3), jnp.ones(3, jnp.int32))


# ------------------------------------------------------------------------------------------
# canonicalize / decanonicalize


def test_canonicalize_round_trip_and_numpy(dtype, key):
    x = jax.random.normal(key, (N, 3), dtype)
    r = random_orthogonal(jax.random.key(1), 3, dtype)
    t = jnp.array([0.5, -1.0, 2.0], dtype)
    c = canonicalize(x, r, t)
    xn, rn, tn = (np.asarray(a, np.float64) for a in (x, r, t))
    want = np.stack([rn.T @ (xi - tn) for xi in xn])
    # 3-term products after x - t; |t| ~ |x|, so the subtraction cancels at most ~2-fold
    tol = rounding_tolerance(dtype, n_ops=3, cond=2)
    assert_allclose_dtype(c, want, rtol=tol)
    assert_allclose_dtype(decanonicalize(c, r, t), xn, rtol=2 * tol)  # two such steps
    assert_allclose_dtype(canonicalize(x, r), xn @ rn, rtol=tol)  # vectors: no translation
    with pytest.raises(ValueError, match="frame"):
        canonicalize(x, jnp.eye(2))
    with pytest.raises(ValueError, match="translation"):
        decanonicalize(x, r, jnp.zeros(2))


# ------------------------------------------------------------------------------------------
# canonicalizer network


@pytest.mark.parametrize("num_vectors, group", [(2, "SE3"), (3, "E3")])
def test_canonicalizer_frame_is_equivariant(num_vectors, group, dtype, key):
    params = init_canonicalizer(key, 2, 16, num_vectors, dtype)
    x = jax.random.normal(jax.random.key(1), (N, 3), dtype)
    h = jax.random.normal(jax.random.key(2), (N, 2), dtype)
    mask = jnp.array([True, True, True, False, True, True])
    f = lambda x, h, m: canonicalizer_frame(params, x, h, m)[0].T  # noqa: E731
    assert_equivariant(
        f,
        jax.random.key(3),
        (x, h, mask),
        in_kinds=("position", "scalar", "node_mask"),
        out_kinds="graph_vector",
        group=group,
        permute=True,
        n_trials=4,
        cond=_frame_cond(params, x, h, mask),
    )
    _, t = canonicalizer_frame(params, x, h, mask)
    want = np.asarray(x, np.float64)[np.asarray(mask)].mean(0)
    assert_allclose_dtype(t, want, rtol=rounding_tolerance(dtype, n_ops=N))  # a mean of <= N


def test_canonicalizer_vectors_are_equivariant(dtype, key):
    params = init_canonicalizer(key, 0, 16, 3, dtype)
    x = jax.random.normal(jax.random.key(1), (N, 3), dtype)
    assert_equivariant(
        lambda x: canonicalizer_vectors(params, x)[0],
        jax.random.key(3),
        (x,),
        in_kinds=("position",),
        out_kinds="graph_vector",
        group="E3",
        permute=True,
        n_trials=4,
    )
    v, t = canonicalizer_vectors(params, x)
    assert v.shape == (3, 3) and t.shape == (3,)


def test_two_vector_canonicalizer_fails_under_reflections(key):
    params = init_canonicalizer(key, 0, 16, 2)
    x = jax.random.normal(jax.random.key(1), (N, 3))
    with pytest.raises(AssertionError):
        assert_equivariant(
            lambda x: canonicalizer_frame(params, x)[0].T,
            jax.random.key(3),
            (x,),
            in_kinds=("position",),
            out_kinds="graph_vector",
            group="E3",
        )


@pytest.mark.parametrize("num_vectors, group", [(2, "SE3"), (3, "E3")])
def test_flat_mlp_backbone_becomes_invariant(num_vectors, group, dtype, key):
    """A backbone on flattened coordinates (not invariant at all) becomes exactly invariant."""
    params = init_canonicalizer(key, 0, 16, num_vectors, dtype)
    canon = functools.partial(canonicalizer_frame, params)
    x = jax.random.normal(jax.random.key(1), (N, 3), dtype)
    backbone = _mlp(jax.random.key(2), [3 * N, 32, 4], dtype)
    with pytest.raises(AssertionError):
        assert_equivariant(
            lambda x: backbone(x.reshape(-1)),
            jax.random.key(3),
            (x,),
            in_kinds=("position",),
            out_kinds="graph_scalar",
            group="SO3",
        )
    fa = lambda x: canonicalized_apply(lambda y: backbone(y.reshape(-1)), canon, x)  # noqa: E731
    # cond(V) = 37 (SE3) and 55 (E3) here: the frame of these vectors amplifies rounding, so
    # the float32 error reaches ~1e-5 (1.09e-5 seen on one CPU, 1.2e-5 over 100 trials here)
    assert_equivariant(
        fa,
        jax.random.key(3),
        (x,),
        in_kinds=("position",),
        out_kinds="graph_scalar",
        group=group,
        n_trials=4,
        cond=_frame_cond(params, x),
    )


def test_rowwise_backbone_all_output_kinds(dtype, key):
    params = init_canonicalizer(key, 0, 16, 3, dtype)
    canon = functools.partial(canonicalizer_frame, params)
    x = jax.random.normal(jax.random.key(1), (N, 3), dtype)
    v = jax.random.normal(jax.random.key(4), (N, 3), dtype)
    mlp = _mlp(jax.random.key(2), [6, 32, 7], dtype)

    def backbone(y, w):
        z = mlp(jnp.concatenate([y, w], -1))
        return z[:, :1], z[:, 1:4], z[:, 4:]

    f = lambda x, v: canonicalized_apply(  # noqa: E731
        backbone, canon, x, v, arg_kinds=("vector",), output=("invariant", "vector", "position")
    )
    assert_equivariant(
        f,
        jax.random.key(3),
        (x, v),
        in_kinds=("position", "vector"),
        out_kinds=("scalar", "vector", "position"),
        group="E3",
        permute=True,
        n_trials=4,
        cond=_frame_cond(params, x),
    )


def test_masked_canonicalized_apply(key):
    params = init_canonicalizer(key, 0, 16, 2)
    canon = functools.partial(canonicalizer_frame, params)
    x = jax.random.normal(jax.random.key(1), (N, 3))
    xp = jnp.concatenate([x, jnp.full((2, 3), 30.0)])
    mask = jnp.arange(N + 2) < N
    mlp = _mlp(jax.random.key(2), [3, 16, 3], jnp.float32)
    got, (r, t) = canonicalized_apply(
        mlp, canon, xp, node_mask=mask, output="position", return_frame=True
    )
    want = canonicalized_apply(mlp, canon, x, output="position")
    # same float32 pipeline, sums over the nodes in another order: the equivariance budget
    tol = rounding_tolerance(jnp.float32, n_ops=3 * N, cond=_frame_cond(params, x))
    assert_allclose_dtype(got[:N], want, rtol=tol)
    assert_allclose_dtype(t, x.mean(0), rtol=rounding_tolerance(jnp.float32, n_ops=N))


def test_gradients_finite_at_coincident_points(x64, key):
    params = init_canonicalizer(key, 0, 8, 3, jnp.float64)
    mlp = _mlp(jax.random.key(2), [3, 8, 3], jnp.float64)

    def loss(x, params):
        canon = functools.partial(canonicalizer_frame, params)
        return jnp.sum(canonicalized_apply(mlp, canon, x, output="position") ** 2)

    loss = jax.jit(loss)
    ones, zeros = jnp.ones((4, 3), jnp.float64), jnp.zeros((4, 3), jnp.float64)
    check_grads_finite(loss, (ones, params), order=1)
    check_grads_finite(loss, (zeros, params), order=1)
    check_grads_finite(jax.jit(lambda x: loss(x, params)), (ones,), order=2, hessian="hvp")


def test_canonicalizer_trains_end_to_end(key):
    """Gradients reach the canonicalizer's parameters (they are not cut at the frame)."""
    params = init_canonicalizer(key, 0, 8, 2)
    x = jax.random.normal(jax.random.key(1), (N, 3))
    mlp = _mlp(jax.random.key(2), [3, 8, 1], jnp.float32)
    g = jax.jit(
        jax.grad(
            lambda p: jnp.sum(
                canonicalized_apply(mlp, functools.partial(canonicalizer_frame, p), x)
            )
        )
    )(params)
    norms = [float(jnp.linalg.norm(leaf)) for leaf in jax.tree.leaves(g)]
    assert all(np.isfinite(norms)) and max(norms) > 0


def test_validation_errors(key):
    params = init_canonicalizer(key, 0, 8, 2)
    canon = functools.partial(canonicalizer_frame, params)
    x = jax.random.normal(jax.random.key(1), (N, 3))
    with pytest.raises(ValueError, match="num_vectors"):
        init_canonicalizer(key, 0, 8, 4)
    with pytest.raises(ValueError, match="`h`"):
        canonicalizer_frame(init_canonicalizer(key, 2, 8), x)
    with pytest.raises(ValueError, match="`x`"):
        canonicalizer_frame(params, jnp.ones((N, 2)))
    with pytest.raises(ValueError, match="output"):
        canonicalized_apply(lambda y: y, canon, x, output="matrix")
    with pytest.raises(TypeError, match="pair"):
        canonicalized_apply(lambda y: y, lambda x: jnp.eye(3), x)
    with pytest.raises(ValueError, match="rotation"):
        canonicalized_apply(lambda y: y, lambda x: (jnp.eye(2), jnp.zeros(3)), x)
    with pytest.raises(TypeError, match="callable"):
        canonicalized_apply(None, canon, x)
