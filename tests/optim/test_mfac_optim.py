"""The M-FAC optimizer against a NumPy sliding window and the dense (damping I + G^T G / m)^{-1}."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from geomjax.optim._mfac import MFACState, mfac, scale_by_mfac

M, D, STEPS = 4, 30, 10
EPS32 = float(np.finfo(np.float32).eps)


class _NumpyWindow:
    """Reference: the last m gradients (unfilled rows zero, normaliser m, as M-FAC's reference)."""

    def __init__(self, m, d):
        self.G = np.zeros((m, d))
        self.t = 0

    def push(self, g):
        self.G[self.t % self.G.shape[0]] = g
        self.t += 1

    def fisher(self, damping, blocks=None):
        """Dense (block-diagonal) damping I + G^T G / m, in np.longdouble."""
        m = self.G.shape[0]
        G = self.G.astype(np.longdouble)
        if blocks is None:
            return damping * np.eye(G.shape[1], dtype=np.longdouble) + G.T @ G / m
        parts = [G[:, s:e] for s, e in blocks]
        return scipy.linalg.block_diag(
            *[damping * np.eye(p.shape[1], dtype=np.longdouble) + p.T @ p / m for p in parts]
        )


def _solve(F, v):
    """Dense reference solve of F x = v, F built in extended precision (np.longdouble): float64
    LU plus iterative refinement with extended-precision residuals, accurate to ~1e-15 even for
    cond(F) ~ 1e8 (a plain float64 solve would be only as good as eps64 * cond(F) ~ 1e-8)."""
    F = np.asarray(F, np.longdouble)
    v = np.asarray(v, np.longdouble)
    F64 = F.astype(np.float64)
    x = np.linalg.solve(F64, v.astype(np.float64)).astype(np.longdouble)
    for _ in range(3):
        x = x + np.linalg.solve(F64, (v - F @ x).astype(np.float64))
    return x.astype(np.float64)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _params():
    return {"b": jnp.zeros(5), "w": jnp.zeros((5, 5))}  # d = 30; leaves flatten as b, w


def _flat(tree):
    return np.concatenate([np.ravel(tree["b"]), np.ravel(tree["w"])])


def _tree(v):
    return {"b": jnp.asarray(v[:5]), "w": jnp.asarray(v[5:]).reshape(5, 5)}


@pytest.mark.parametrize("damping", [1e-5, 1e-2])
@pytest.mark.parametrize(
    "blocks, ranges",
    [(None, None), (7, [(s, min(s + 7, D)) for s in range(0, D, 7)]), ("leaf", [(0, 5), (5, 30)])],
    ids=["full", "blocks7", "leaf"],
)
def test_preconditioner_equals_dense_at_every_step(x64, damping, blocks, ranges):
    tx = scale_by_mfac(M, damping, blocks=blocks)
    state = tx.init(_params())
    update = jax.jit(tx.update)
    ref = _NumpyWindow(M, D)
    rng = np.random.default_rng(0)
    errs = []
    for t in range(STEPS):  # the window slides: 10 steps > m = 4
        g = rng.normal(size=D) * (1.0 + t)
        u, state = update(_tree(g), state)
        ref.push(g)
        errs.append(_rel(_flat(u), _solve(ref.fisher(damping, ranges), g)))
        assert int(state.count) == t + 1
    assert max(errs) < 1e-8, errs
    # the Gram matrix kept incrementally equals the window's
    if blocks is None:
        np.testing.assert_allclose(state.grads, ref.G, rtol=0, atol=0)
        np.testing.assert_allclose(state.gram, ref.G @ ref.G.T, rtol=1e-12)


def test_float32_at_small_damping():
    """float32 at damping 1e-5: u = m G^T K^{-1} e_j has the error of one m x m solve, about
    eps32 * cond(K) (measured below 1e-6 for these windows); the general Woodbury formula would
    lose eps32 * cond(F) ~ 1e-1 here."""
    damping = 1e-5
    tx = scale_by_mfac(M, damping)
    state = tx.init(jnp.zeros(D, jnp.float32))
    update = jax.jit(tx.update)
    ref = _NumpyWindow(M, D)
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        g = rng.normal(size=D).astype(np.float32).astype(np.float64)
        u, state = update(jnp.asarray(g, jnp.float32), state)
        assert u.dtype == jnp.float32 and state.gram.dtype == jnp.float32
        ref.push(g)
        cond_k = np.linalg.cond(M * damping * np.eye(M) + ref.G @ ref.G.T)
        err = _rel(u, _solve(ref.fisher(damping), g))
        assert err < 20 * EPS32 * cond_k and err < 1e-5, (err, cond_k)


@pytest.mark.parametrize("blocks", [None, 7, "leaf"])
def test_bfloat16_window(blocks):
    """``window_dtype=bfloat16``: the buffer is bfloat16, the Gram matrix and algebra float32,
    the update float32. It is the dense solve of the window of bfloat16-rounded gradients to
    the error of one float32 m x m solve (eps32 cond(K), as above) plus the split of the
    coefficients c into two bfloat16 parts (about 2^-16 relative, amplified by at most
    cond(K) through G^T c): (2^-16 + 20 eps32) max_blocks cond(K). Against the float32 window the difference is the rounding of the gradients,
    of the order of 2^-9 relative (<= 2^-6 asserted, and not zero)."""
    damping = 1e-2
    ranges = {
        None: None,
        7: [(s, min(s + 7, D)) for s in range(0, D, 7)],
        "leaf": [(0, 5), (5, 30)],
    }
    tx16 = scale_by_mfac(M, damping, blocks=blocks, window_dtype=jnp.bfloat16)
    tx32 = scale_by_mfac(M, damping, blocks=blocks)
    params = jax.tree.map(lambda a: a.astype(jnp.float32), _params())
    s16, s32 = tx16.init(params), tx32.init(params)
    for buf in jax.tree.leaves(s16.grads):
        assert buf.dtype == jnp.bfloat16
    assert all(k.dtype == jnp.float32 for k in jax.tree.leaves(s16.gram))
    up16, up32 = jax.jit(tx16.update), jax.jit(tx32.update)
    ref = _NumpyWindow(M, D)
    rng = np.random.default_rng(2)
    for _ in range(STEPS):
        g = rng.normal(size=D)
        g_tree = jax.tree.map(lambda a: a.astype(jnp.float32), _tree(g))
        u16, s16 = up16(g_tree, s16)
        u32, s32 = up32(g_tree, s32)
        assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(u16))
        rounded = np.asarray(jnp.asarray(g, jnp.float32).astype(jnp.bfloat16), np.float64)
        ref.push(rounded)
        cond_k = max(
            np.linalg.cond(M * damping * np.eye(M) + ref.G[:, a:b] @ ref.G[:, a:b].T)
            for a, b in (ranges[blocks] or [(0, D)])
        )
        err = _rel(_flat(u16), _solve(ref.fisher(damping, ranges[blocks]), rounded))
        assert err <= (2.0**-16 + 20 * EPS32) * cond_k, (err, cond_k)
        diff = _rel(_flat(u16), _flat(u32))
        assert 0 < diff <= 2.0**-6, diff


def test_window_dtype_validation():
    with pytest.raises(TypeError, match="`window_dtype`"):
        scale_by_mfac(M, 1e-3, window_dtype=jnp.int8)
    with pytest.raises(TypeError, match="`window_dtype`"):
        scale_by_mfac(M, 1e-3, window_dtype="not-a-dtype")
    state = mfac(0.1, M, 1e-3, window_dtype="bfloat16").init(jnp.zeros(D))
    assert state[0].grads.dtype == jnp.bfloat16


def test_float32_params_use_float64_algebra_under_x64(x64):
    state = scale_by_mfac(M, 1e-5).init(jnp.zeros(D, jnp.float32))
    assert state.grads.dtype == jnp.float32 and state.gram.dtype == jnp.float64


def test_mfac_matches_reference_recurrence(x64):
    """mfac = reference M-FAC step: g + wd*p enters the window, v = b v + (1 - b) F^-1 g, p -= lr v."""
    lr, damping, beta, wd = 0.05, 1e-3, 0.9, 1e-2
    tx = mfac(lr, num_grads=M, damping=damping, momentum=beta, weight_decay=wd)
    rng = np.random.default_rng(2)
    A = rng.normal(size=(8, D))
    loss = lambda p: 0.5 * jnp.mean((jnp.asarray(A) @ p - 1.0) ** 2)  # noqa: E731
    p = jnp.asarray(rng.normal(size=D))
    state = tx.init(p)
    step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
    p_ref, v_ref, win = np.asarray(p), np.zeros(D), _NumpyWindow(M, D)
    for _ in range(7):
        u, state = step(p, state)
        p = optax.apply_updates(p, u)
        g = A.T @ (A @ p_ref - 1.0) / A.shape[0] + wd * p_ref
        win.push(g)
        v_ref = beta * v_ref + (1 - beta) * _solve(win.fisher(damping), g)
        p_ref = p_ref - lr * v_ref
        assert _rel(p, p_ref) < 1e-9


def test_mfac_trains_logistic_regression():
    rng = np.random.default_rng(3)
    n, d = 256, 10
    X = rng.normal(size=(n, d)) * np.linspace(0.2, 3.0, d)  # badly scaled features
    y = (X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    X, y = jnp.asarray(X, jnp.float32), jnp.asarray(y)

    def loss(p, xb, yb):
        z = xb @ p["w"] + p["b"]
        return jnp.mean(jnp.logaddexp(0.0, z) - yb * z)

    params = {"b": jnp.zeros(()), "w": jnp.zeros(d)}
    tx = mfac(0.01, num_grads=16, damping=1e-4, momentum=0.5)
    state = tx.init(params)

    @jax.jit
    def step(p, s, xb, yb):
        g = jax.grad(loss)(p, xb, yb)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    first = float(loss(params, X, y))
    for t in range(150):
        sl = slice((t * 32) % n, (t * 32) % n + 32)
        params, state = step(params, state, X[sl], y[sl])
    final = float(loss(params, X, y))
    assert np.isfinite(final) and final < 0.4 * first, (first, final)


def test_state_layout_and_donation_keeps_results():
    tx = scale_by_mfac(M, 1e-3, blocks=7)
    state = tx.init(jnp.zeros(D))
    assert isinstance(state, MFACState)
    assert state.grads.shape == (5, M, 7) and state.gram.shape == (5, M, M)
    leaf_state = scale_by_mfac(M, 1e-3, blocks="leaf").init(_params())
    assert [g.shape for g in leaf_state.grads] == [(M, 5), (M, 25)]
    # a donated state gives the same update as a non-donated one
    g = jnp.asarray(np.random.default_rng(4).normal(size=D), jnp.float32)
    u1, _ = jax.jit(tx.update)(g, state)
    u2, _ = jax.jit(tx.update, donate_argnums=1)(g, tx.init(jnp.zeros(D)))
    np.testing.assert_array_equal(u1, u2)


def test_validation_errors():
    with pytest.raises(ValueError, match="num_grads"):
        scale_by_mfac(0)
    with pytest.raises(ValueError, match="damping"):
        scale_by_mfac(4, -1.0)
    with pytest.raises(TypeError, match="damping"):
        scale_by_mfac(4, jnp.array(1e-3))
    with pytest.raises(ValueError, match="blocks"):
        scale_by_mfac(4, blocks="layer")
    with pytest.raises(ValueError, match="blocks"):
        scale_by_mfac(4, blocks=0)
    with pytest.raises(ValueError, match="shard_buffer"):
        scale_by_mfac(4, shard_buffer=True)
    with pytest.raises(ValueError, match="shard_buffer"):
        scale_by_mfac(4, axis_name="data", blocks="leaf", shard_buffer=True)
    with pytest.raises(ValueError, match="momentum"):
        mfac(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        mfac(0.1, weight_decay=-1.0)
    tx = scale_by_mfac(4)
    with pytest.raises(TypeError, match="params"):
        tx.init(jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="coordinates"):
        tx.update(jnp.zeros(5), tx.init(jnp.zeros(3)))
    with pytest.raises(ValueError, match="shard_map"):
        scale_by_mfac(4, axis_name="data", shard_buffer=True).init(jnp.zeros(3))
