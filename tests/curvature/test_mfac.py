"""Static M-FAC (MFACInverse) against the dense inverse (damping I + G^T G / m)^{-1} in NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from geomjax.curvature._mfac import MFACInverse

M, D = 4, 30
EPS32 = float(np.finfo(np.float32).eps)


def _grads(seed, m=M, d=D, corr=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * (corr * rng.normal(size=d) + (1.0 - corr) * rng.normal(size=(m, d)))


def _dense_fisher(G, damping):
    """damping I + G^T G / m in np.longdouble (see _solve)."""
    G = np.asarray(G, np.longdouble)
    m, d = G.shape
    return damping * np.eye(d, dtype=np.longdouble) + G.T @ G / m


def _solve(F, v):
    """Dense reference solve of F x = v for F in np.longdouble: float64 LU plus iterative
    refinement with extended-precision residuals, accurate to ~1e-15 even where a plain float64
    solve is only as good as eps64 * cond(F)."""
    F = np.asarray(F, np.longdouble)
    v = np.asarray(v, np.longdouble)
    F64 = F.astype(np.float64)
    x = np.linalg.solve(F64, v.astype(np.float64)).astype(np.longdouble)
    for _ in range(3):
        x = x + np.linalg.solve(F64, (v - F @ x).astype(np.float64))
    return x.astype(np.float64)


def _inv(F):
    return _solve(F, np.eye(F.shape[0]))


def _dense_block_fisher(G, damping, b):
    """Block-diagonal Fisher: one window per chunk of b coordinates (last chunk shorter)."""
    d = G.shape[1]
    blocks = [_dense_fisher(G[:, s : s + b], damping) for s in range(0, d, b)]
    return scipy.linalg.block_diag(*blocks)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("damping", [1e-5, 1e-2])
@pytest.mark.parametrize("block_size", [None, 7], ids=["full", "blocks7"])
def test_ihvp_and_inverse_diag_equal_dense(x64, damping, block_size):
    G = _grads(0)
    F = (
        _dense_fisher(G, damping)
        if block_size is None
        else _dense_block_fisher(G, damping, block_size)
    )
    Finv = _inv(F)
    finv = MFACInverse.from_gradients(jnp.asarray(G), damping, block_size=block_size)
    rng = np.random.default_rng(1)
    # a generic vector, a vector in the span of the gradients, a stored gradient
    for v in (rng.normal(size=D), G.T @ rng.normal(size=M), G[2]):
        ref = _solve(F, v)
        assert _rel(finv.ihvp(jnp.asarray(v)), ref) < 1e-8
    np.testing.assert_allclose(finv.inverse_diag(), np.diag(Finv), rtol=1e-9)


def test_windows_with_zero_rows_and_more_grads_than_dims(x64):
    # zero rows (an unfilled window) and m > d (G G^T singular): K = m*damping*I + G G^T stays SPD
    G = _grads(2, m=6, d=4)
    G[3] = 0.0
    finv = MFACInverse.from_gradients(jnp.asarray(G), 1e-5)
    v = np.random.default_rng(3).normal(size=4)
    F = _dense_fisher(G, 1e-5)
    assert _rel(finv.ihvp(jnp.asarray(v)), _solve(F, v)) < 1e-8
    np.testing.assert_allclose(finv.inverse_diag(), np.diag(_inv(F)), rtol=1e-8)


def test_pytree_of_stacked_gradients_matches_flat(x64):
    G = _grads(4)
    tree = {"a": jnp.asarray(G[:, :6]).reshape(M, 2, 3), "b": jnp.asarray(G[:, 6:])}
    finv_t = MFACInverse.from_gradients(tree, 1e-3)
    finv = MFACInverse.from_gradients(jnp.asarray(G), 1e-3)
    v = np.random.default_rng(5).normal(size=D)
    out = finv_t.ihvp({"a": jnp.asarray(v[:6]).reshape(2, 3), "b": jnp.asarray(v[6:])})
    ref = _solve(_dense_fisher(G, 1e-3), v)
    assert out["a"].shape == (2, 3) and out["b"].shape == (D - 6,)
    assert _rel(np.concatenate([np.ravel(out["a"]), out["b"]]), ref) < 1e-8
    np.testing.assert_allclose(np.asarray(finv.ihvp(jnp.asarray(v))), ref, rtol=1e-8)
    diag = finv_t.inverse_diag()
    np.testing.assert_allclose(
        np.ravel(diag["a"]), np.diag(_inv(_dense_fisher(G, 1e-3)))[:6], rtol=1e-9
    )


@pytest.mark.parametrize("block_size", [None, 7], ids=["full", "blocks7"])
def test_obs_scores_and_joint_update_equal_dense(x64, block_size):
    damping = 1e-4
    G = _grads(6)
    w = np.random.default_rng(7).normal(size=D)
    F = (
        _dense_fisher(G, damping)
        if block_size is None
        else _dense_block_fisher(G, damping, block_size)
    )
    Finv = _inv(F)
    finv = MFACInverse.from_gradients(jnp.asarray(G), damping, block_size=block_size)

    scores = np.asarray(finv.obs_scores(jnp.asarray(w)))
    np.testing.assert_allclose(scores, w**2 / (2.0 * np.diag(Finv)), rtol=1e-9)

    q = np.array([3, 4, 11, 20, 29])  # within one block (3, 4) and across blocks
    delta, dloss = finv.obs_update(jnp.asarray(w), jnp.asarray(q))
    sub = Finv[np.ix_(q, q)]
    ref = -Finv[:, q] @ _solve(sub, w[q])
    assert _rel(delta, ref) < 1e-8
    np.testing.assert_allclose(float(dloss), 0.5 * w[q] @ _solve(sub, w[q]), rtol=1e-9)
    new_w = w + np.asarray(delta)
    np.testing.assert_allclose(new_w[q], 0.0, rtol=0, atol=1e-9 * np.abs(w).max())
    # the quadratic-model increase of the correction is delta_L
    np.testing.assert_allclose(
        0.5 * np.asarray(delta) @ F @ np.asarray(delta), float(dloss), rtol=1e-7
    )

    # one weight: the update's loss increase is that weight's OBS score
    _, d1 = finv.obs_update(jnp.asarray(w), jnp.array([11]))
    np.testing.assert_allclose(float(d1), scores[11], rtol=1e-9)


def test_brute_force_obs_minimiser(x64):
    # delta_w minimises 0.5 dw^T F dw subject to (w + dw)_Q = 0: compare with the KKT solution.
    G = _grads(8, m=3, d=8)
    F = _dense_fisher(G, 1e-2)
    w = np.random.default_rng(9).normal(size=8)
    q = np.array([1, 6])
    E = np.eye(8)[:, q]
    kkt = np.block([[F, E], [E.T, np.zeros((2, 2))]])
    ref = _solve(kkt, np.concatenate([np.zeros(8), -w[q]]))[:8]
    delta, _ = MFACInverse.from_gradients(jnp.asarray(G), 1e-2).obs_update(
        jnp.asarray(w), jnp.asarray(q)
    )
    assert _rel(delta, ref) < 1e-9


def test_float32_at_small_damping():
    """float32, damping 1e-5: the measured errors and the documented bounds.

    Generic vectors and the diagonal: about eps32 * cond(K), K = m*damping*I + G G^T (measured
    5e-8 / 1e-7 for independent gradients, cond(K) ~ 3; 6e-6 / 4e-6 for correlated ones,
    cond(K) ~ 5e2). A vector in the span of the gradients: about eps32 * cond(F), the
    conditioning of the problem (measured 0.1 at cond(F) = 1e6): there float64 is needed.
    """
    damping = 1e-5
    rng = np.random.default_rng(10)
    for corr in (0.0, 0.9):
        G = _grads(11, corr=corr)
        F = _dense_fisher(G, damping)
        cond_k = np.linalg.cond(M * damping * np.eye(M) + G @ G.T)
        finv = MFACInverse.from_gradients(jnp.asarray(G, jnp.float32), damping)
        assert finv.factor.dtype == jnp.float32
        v = rng.normal(size=D)
        err = _rel(finv.ihvp(jnp.asarray(v, jnp.float32)), _solve(F, v))
        assert err < 20 * EPS32 * cond_k
        diag_err = np.max(
            np.abs(np.asarray(finv.inverse_diag(), np.float64) / np.diag(_inv(F)) - 1)
        )
        assert diag_err < 20 * EPS32 * cond_k
        span = G[1]
        err_span = _rel(finv.ihvp(jnp.asarray(span, jnp.float32)), _solve(F, span))
        assert np.isfinite(err_span) and err_span < 20 * EPS32 * np.linalg.cond(
            F.astype(np.float64)
        )
    assert err < 1e-4  # correlated window, generic vector: still accurate


def test_jit_and_pytree_roundtrip(x64):
    G = jnp.asarray(_grads(12))
    finv = MFACInverse.from_gradients(G, 1e-3, block_size=8)
    leaves, treedef = jax.tree.flatten(finv)
    assert len(leaves) == 2
    v = jnp.asarray(np.random.default_rng(13).normal(size=D))
    out = jax.jit(lambda f, x: f.ihvp(x))(finv, v)
    np.testing.assert_allclose(out, finv.ihvp(v), rtol=1e-12)
    built = jax.jit(lambda g: MFACInverse.from_gradients(g, 1e-3, block_size=8))(G)
    np.testing.assert_allclose(built.factor, finv.factor, rtol=1e-10, atol=1e-12)
    assert finv.num_grads == M and finv.dim == D


def test_validation_errors():
    G = jnp.ones((3, 5))
    with pytest.raises(ValueError, match="grads"):
        MFACInverse.from_gradients(jnp.ones(5), 1e-3)
    with pytest.raises(TypeError, match="grads"):
        MFACInverse.from_gradients(jnp.ones((3, 5), jnp.int32), 1e-3)
    with pytest.raises(ValueError, match="damping"):
        MFACInverse.from_gradients(G, 0.0)
    with pytest.raises(ValueError, match="block_size"):
        MFACInverse.from_gradients(G, 1e-3, block_size=0)
    with pytest.raises(ValueError, match="grads"):
        MFACInverse.from_gradients({"a": jnp.ones((3, 2)), "b": jnp.ones((4, 2))}, 1e-3)
    finv = MFACInverse.from_gradients(G, 1e-3)
    with pytest.raises(ValueError, match="`v`"):
        finv.ihvp(jnp.ones(4))
    with pytest.raises(ValueError, match="weights"):
        finv.obs_scores({"a": jnp.ones(5)})
    with pytest.raises(TypeError, match="indices"):
        finv.obs_update(jnp.ones(5), jnp.array([0.5]))


def test_float32_rank_deficient_window_has_no_nan():
    """Damping below the float32 round-off of the Gram matrix with a rank-deficient window
    (m = 8 copies of 2 gradients of size 1e3): the factorization stays finite."""
    import jax.numpy as jnp
    import numpy as np

    from geomjax.curvature import MFACInverse

    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 50)).astype(np.float32) * 1e3
    grads = jnp.asarray(np.concatenate([base] * 4))
    inv = MFACInverse.from_gradients(grads, 1e-5)
    v = jnp.asarray(rng.normal(size=50).astype(np.float32))
    assert bool(jnp.all(jnp.isfinite(inv.ihvp(v))))
    assert bool(jnp.all(jnp.isfinite(inv.inverse_diag())))
