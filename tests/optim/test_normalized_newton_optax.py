"""Tests for the stochastic gradient-normalized Newton transformation (optax).

Independent references: dense float64 NumPy matrices (the GGN / Fisher / empirical Fisher of
softmax regression written out with Kronecker products, ``X^T X / n`` for least squares) solved
with ``numpy.linalg.solve``; a NumPy transcription of Algorithm 1's acceptance test and radius
update (epfml/grad-norm-smooth, ``src/methods.py``) run step by step on the same minibatches;
the one-step CG closed form ``(g^T g / g^T A g) g``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from geomjax._core._tree_linalg import conjugate_gradient as _truncated_cg
from geomjax.optim._normalized_newton_optax import (
    NormalizedNewtonState,
    normalized_newton,
    scale_by_normalized_newton,
)

# -- softmax regression, W of shape (d, k); vec(W) is row-major (index a * k + c) ------------------

D, K = 3, 3


def _softmax_problem(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D))
    y = rng.integers(0, K, size=n)
    w = 0.5 * rng.normal(size=(D, K))
    return w, x, y


def _model(w, x):
    return x @ w


def _ce(z, y):
    return jnp.mean(
        jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
    )


def _ce_one(w, example):
    x, y = example
    z = x @ w
    return jax.nn.logsumexp(z) - z[y]


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_loss_grad(w, x, y):
    """Mean cross-entropy, its gradient as vec(W) and the per-example gradients (n, d k)."""
    p = _np_softmax(x @ w)
    onehot = np.eye(K)[y]
    f = np.mean(-np.log(p[np.arange(len(y)), y]))
    gi = np.stack([np.kron(xi, pi - yi) for xi, pi, yi in zip(x, p, onehot)])
    return f, gi.mean(0), gi


def _np_curvature(kind, w, x, y):
    n, dk = len(y), D * K
    if kind == "none":
        return np.zeros((dk, dk))
    if kind == "empirical_fisher":
        gi = _np_loss_grad(w, x, y)[2]
        return gi.T @ gi / n
    # GGN of cross-entropy on logits = Fisher of the softmax likelihood
    p = _np_softmax(x @ w)
    return (
        sum(np.kron(np.outer(xi, xi), np.diag(pi) - np.outer(pi, pi)) for xi, pi in zip(x, p)) / n
    )


def _objective_kwargs(kind, x, y):
    if kind in ("gauss_newton", "fisher"):
        return dict(model_fn=_model, output_loss_fn=_ce, batch_args=(x, y))
    if kind == "empirical_fisher":
        return dict(per_example_loss_fn=_ce_one, batch_args=(x, y))
    return dict(loss_fn=lambda w, x, y: _ce(_model(w, x), y), batch_args=(x, y))


def _reference_update(kind, w, x, y, gamma, max_trials=1, gamma_min=1e-8, gamma_max=1e8):
    """Algorithm 1 on one minibatch in float64 NumPy: (step d or 0, accepted, new gamma, margins)."""
    f0, g, _ = _np_loss_grad(w, x, y)
    c = _np_curvature(kind, w, x, y)
    gnorm = np.linalg.norm(g)
    margins = []
    for _ in range(max_trials):
        lam = gnorm / gamma
        d = np.linalg.solve(c + lam * np.eye(D * K), g)
        f1, g1, _ = _np_loss_grad(w - d.reshape(D, K), x, y)
        margin = (f0 - f1) - g1 @ g1 / (8 * lam)
        margins.append(margin)
        if margin >= 0:
            return d, True, min(2 * gamma, gamma_max), margins
        new = max(gamma / 2, gamma_min)
        if new == gamma:
            break
        gamma = new
    return np.zeros_like(g), False, gamma, margins


# -- one step against the dense formula -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["gauss_newton", "fisher", "empirical_fisher", "none"])
def test_one_step_matches_dense_formula(x64, kind):
    w, x, y = _softmax_problem()
    gamma0 = 0.4
    d_ref, acc_ref, gamma_ref, margins = _reference_update(kind, w, x, y, gamma0)
    assert acc_ref and min(abs(m) for m in margins) > 1e-6  # a clear decision, not round-off
    # dim 9: 9 CG steps are exact in exact arithmetic; 20 with a tiny tolerance in float64
    tx = scale_by_normalized_newton(curvature=kind, gamma0=gamma0, cg_steps=20, cg_tol=1e-13)
    state = tx.init(jnp.asarray(w))
    u, state = tx.update(
        None, state, jnp.asarray(w), **_objective_kwargs(kind, jnp.asarray(x), jnp.asarray(y))
    )
    np.testing.assert_allclose(np.asarray(u).ravel(), d_ref, rtol=1e-10, atol=1e-13)
    assert bool(state.accepted) and int(state.n_accepted) == 1 and int(state.count) == 1
    np.testing.assert_allclose(float(state.gamma), gamma_ref, rtol=1e-15)
    f0, g, _ = _np_loss_grad(w, x, y)
    np.testing.assert_allclose(float(state.loss), f0, rtol=1e-12)
    np.testing.assert_allclose(float(state.grad_norm), np.linalg.norm(g), rtol=1e-12)
    assert np.linalg.norm(np.asarray(u)) <= gamma0 * (1 + 1e-12)  # the radius bounds the step


def test_least_squares_pytree_params(x64):
    """A dict of parameters (weights and a scalar bias): GGN = Hessian = A^T A / n, A = [X, 1]."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 4)), rng.normal(size=10)
    params = {"b": jnp.asarray(0.3), "w": jnp.asarray(rng.normal(size=4))}
    model = lambda p, x: x @ p["w"] + p["b"]  # noqa: E731
    loss = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)  # noqa: E731
    a = np.hstack([np.ones((10, 1)), x])  # ravel order of the dict: "b", then "w"
    theta = np.concatenate([[0.3], np.asarray(params["w"])])
    g = a.T @ (a @ theta - y) / 10
    lam = np.linalg.norm(g) / 2.0
    d = np.linalg.solve(a.T @ a / 10 + lam * np.eye(5), g)
    tx = scale_by_normalized_newton(gamma0=2.0, cg_steps=10, cg_tol=1e-14)
    u, state = tx.update(
        None, tx.init(params), params, model_fn=model, output_loss_fn=loss, batch_args=(x, y)
    )
    np.testing.assert_allclose(np.concatenate([[u["b"]], u["w"]]), d, rtol=1e-10, atol=1e-14)
    assert bool(state.accepted)  # a quadratic with exact curvature: the test holds for any gamma


def test_float32_step_and_state_dtypes():
    w, x, y = _softmax_problem()
    with jax.enable_x64(True):
        d_ref = _reference_update("gauss_newton", w, x, y, 0.4)[0]
    tx = scale_by_normalized_newton(gamma0=0.4, cg_steps=20)
    w32 = jnp.asarray(w, jnp.float32)
    state = tx.init(w32)
    assert state.gamma.dtype == jnp.float32 and state.loss.dtype == jnp.float32
    u, state = tx.update(
        None,
        state,
        w32,
        model_fn=_model,
        output_loss_fn=_ce,
        batch_args=(jnp.asarray(x, jnp.float32), jnp.asarray(y)),
    )
    assert u.dtype == jnp.float32 and state.gamma.dtype == jnp.float32
    # float32 gradients and CG (condition number of C + lam I about 10; tol 1e-6 relative)
    np.testing.assert_allclose(np.asarray(u).ravel(), d_ref, rtol=2e-5, atol=2e-6)


# -- the acceptance test and the radius over several steps ----------------------------------------


@pytest.mark.parametrize("max_trials", [1, 3])
@pytest.mark.parametrize("kind", ["gauss_newton", "empirical_fisher"])
def test_trajectory_matches_reference_loop(x64, kind, max_trials):
    w, x_all, y_all = _softmax_problem(n=64, seed=2)
    batches = np.random.default_rng(3).integers(0, 64, size=(10, 8))
    gamma0, gmin, gmax = 50.0, 0.05, 200.0
    tx = normalized_newton(
        curvature=kind,
        gamma0=gamma0,
        gamma_min=gmin,
        gamma_max=gmax,
        cg_steps=20,
        cg_tol=1e-13,
        max_trials=max_trials,
    )
    kw = lambda x, y: _objective_kwargs(kind, x, y)  # noqa: E731
    step = jax.jit(lambda w, s, x, y: tx.update(None, s, w, **kw(x, y)))
    wj, state = jnp.asarray(w), tx.init(jnp.asarray(w))
    w_ref, gamma_ref, decisions, margins = w.copy(), gamma0, [], []
    for idx in batches:
        x, y = x_all[idx], y_all[idx]
        d, acc, gamma_ref, m = _reference_update(
            kind, w_ref, x, y, gamma_ref, max_trials, gmin, gmax
        )
        w_ref = w_ref - d.reshape(D, K)
        u, state = step(wj, state, jnp.asarray(x), jnp.asarray(y))
        wj = optax.apply_updates(wj, u)
        decisions.append(acc)
        margins += m
        sub = state[0]
        assert bool(sub.accepted) == acc
        np.testing.assert_allclose(float(sub.gamma), gamma_ref, rtol=1e-15)
        np.testing.assert_allclose(np.asarray(wj), w_ref, rtol=1e-10, atol=1e-12)
    assert int(state[0].n_accepted) == sum(decisions)
    margins = np.array(margins)
    assert np.min(np.abs(margins)) > 1e-4  # every decision is far from round-off
    assert np.any(margins < 0) and np.any(margins > 0)  # the run exercises both branches


def test_rejected_step_is_zero_and_radius_halves(x64):
    # f = |w|^2 from |w| = 1: a normalized gradient step of length 100 overshoots
    tx = scale_by_normalized_newton(curvature="none", gamma0=100.0)
    w = jnp.array([0.6, 0.8])
    u, s = tx.update(None, tx.init(w), w, loss_fn=lambda w: jnp.sum(w**2))
    np.testing.assert_array_equal(np.asarray(u), 0.0)
    assert not bool(s.accepted) and float(s.gamma) == 50.0 and int(s.n_accepted) == 0


def test_retries_stop_at_gamma_min(x64):
    # radii 100 -> 50 -> 25 all overshoot; at gamma_min = 25 a retry would repeat the same trial
    tx = scale_by_normalized_newton(curvature="none", gamma0=100.0, gamma_min=25.0, max_trials=10)
    w = jnp.array([0.6, 0.8])
    u, s = tx.update(None, tx.init(w), w, loss_fn=lambda w: jnp.sum(w**2))
    np.testing.assert_array_equal(np.asarray(u), 0.0)
    assert float(s.gamma) == 25.0 and not bool(s.accepted)
    # with more room the loop halves until the step passes. A step of length r along -w from
    # |w| = 1: f drops by 1 - (1 - r)^2 and |grad f(x+)|^2 / (8 lambda) = r (1 - r)^2 / 4.
    r = 100.0
    while not 1 - (1 - r) ** 2 >= r * (1 - r) ** 2 / 4:
        r /= 2
    assert r < 25.0
    tx = scale_by_normalized_newton(curvature="none", gamma0=100.0, max_trials=10)
    u, s = tx.update(None, tx.init(w), w, loss_fn=lambda w: jnp.sum(w**2))
    np.testing.assert_allclose(np.asarray(u), r * np.array([0.6, 0.8]), rtol=1e-15)
    assert bool(s.accepted) and float(s.gamma) == 2 * r


def test_gamma_max_clamps(x64):
    tx = scale_by_normalized_newton(curvature="none", gamma0=0.01, gamma_max=0.03)
    w, s = jnp.array([3.0, 4.0]), None
    s = tx.init(w)
    gammas = []
    for _ in range(4):
        u, s = tx.update(None, s, w, loss_fn=lambda w: jnp.sum(w**2))
        w = optax.apply_updates(w, u)
        gammas.append(float(s.gamma))
    assert gammas == [0.02, 0.03, 0.03, 0.03]


def test_none_is_normalized_gradient_step(x64):
    rng = np.random.default_rng(4)
    a = {"u": jnp.asarray(rng.normal(size=(2, 3))), "v": jnp.asarray(rng.normal(size=5))}
    params = jax.tree.map(lambda t: t + 1.0, a)
    loss = lambda p: sum(jnp.sum(jnp.cosh(t)) for t in jax.tree.leaves(p))  # noqa: E731
    g = jax.grad(loss)(params)
    gnorm = np.sqrt(sum(np.sum(np.asarray(t) ** 2) for t in jax.tree.leaves(g)))
    tx = normalized_newton(curvature="none", gamma0=0.05)
    u, state = tx.update(None, tx.init(params), params, loss_fn=loss)
    assert bool(state[0].accepted)
    for ui, gi in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
        np.testing.assert_allclose(np.asarray(ui), -0.05 * np.asarray(gi) / gnorm, rtol=1e-13)
    length = np.sqrt(sum(np.sum(np.asarray(t) ** 2) for t in jax.tree.leaves(u)))
    np.testing.assert_allclose(length, 0.05, rtol=1e-14)


def test_truncated_cg_one_step_and_monotone_length(x64):
    """One CG step is (b.b / b.Ab) b; more steps lengthen x towards A^-1 b (Steihaug)."""
    rng = np.random.default_rng(5)
    q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    a = q @ np.diag([100.0, 10.0, 3.0, 1.0, 0.3, 0.1]) @ q.T
    b = rng.normal(size=6)
    tree = {"u": jnp.asarray(b[:2]), "v": jnp.asarray(b[2:].reshape(2, 2))}

    def matvec(t):
        flat = jnp.concatenate([t["u"], t["v"].ravel()])
        out = jnp.asarray(a) @ flat
        return {"u": out[:2], "v": out[2:].reshape(2, 2)}

    flat = lambda t: np.concatenate([np.asarray(t["u"]), np.asarray(t["v"]).ravel()])  # noqa: E731
    np.testing.assert_allclose(
        flat(_truncated_cg(matvec, tree, 1, 0.0)), (b @ b) / (b @ a @ b) * b, rtol=1e-13
    )
    lengths = [np.linalg.norm(flat(_truncated_cg(matvec, tree, k, 0.0))) for k in range(1, 7)]
    assert all(y >= x * (1 - 1e-12) for x, y in zip(lengths, lengths[1:]))
    # 6 steps solve a 6x6 system in exact arithmetic; round-off (condition number 1e3) leaves
    # ~1e-9 relative after 6, two more steps bring it to ~1e-13
    np.testing.assert_allclose(
        flat(_truncated_cg(matvec, tree, 6, 0.0)), np.linalg.solve(a, b), rtol=1e-7
    )
    np.testing.assert_allclose(
        flat(_truncated_cg(matvec, tree, 8, 0.0)), np.linalg.solve(a, b), rtol=1e-11
    )
    # an early stop on the relative residual
    x = flat(_truncated_cg(matvec, tree, 50, 1e-3))
    assert np.linalg.norm(a @ x - b) <= 1e-3 * np.linalg.norm(b)


def test_truncated_cg_stops_on_nonpositive_curvature(x64):
    a = np.diag([1.0, -1.0])  # b = (1, 1): b^T A b = 0 at the first step
    x = _truncated_cg(lambda v: jnp.asarray(a) @ v, jnp.array([1.0, 1.0]), 5, 0.0)
    np.testing.assert_array_equal(np.asarray(x), 0.0)


def test_step_length_bounded_by_gamma_after_any_cg_steps(x64):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 6)) * np.array([10.0, 3.0, 1.0, 0.3, 0.1, 0.03])
    y = rng.normal(size=20)
    loss = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)  # noqa: E731
    w, gamma = jnp.zeros(6), 0.5
    for k in (1, 2, 6):
        tx = scale_by_normalized_newton(gamma0=gamma, cg_steps=k, cg_tol=0.0, max_trials=20)
        u, s = tx.update(
            None, tx.init(w), w, model_fn=_model, output_loss_fn=loss, batch_args=(x, y)
        )
        assert bool(s.accepted) and np.linalg.norm(np.asarray(u)) <= gamma * (1 + 1e-12)


# -- edge cases -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gauss_newton", "none"])
def test_zero_gradient_skips_without_nan(kind):
    # an exact fit: gradient exactly 0, lambda = 0 (jax_debug_nans is on)
    x = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    w = jnp.array([1.0, -1.0])
    y = x @ w
    loss = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)  # noqa: E731
    kw = dict(model_fn=_model, output_loss_fn=loss, batch_args=(x, y))
    tx = scale_by_normalized_newton(curvature=kind, gamma0=0.7)
    for update in (tx.update, jax.jit(lambda s, w: tx.update(None, s, w, **kw))):
        s = tx.init(w)
        u, s = update(None, s, w, **kw) if update is tx.update else update(s, w)
        np.testing.assert_array_equal(np.asarray(u), 0.0)
        assert not bool(s.accepted) and float(s.gamma) == pytest.approx(0.7)
        assert int(s.count) == 1 and float(s.grad_norm) == 0.0


def test_overflow_at_trial_is_rejected(x64):
    # f = exp(1000 w^2): the trial at w = -0.9 overflows to inf (not NaN): a rejection
    loss = lambda w: jnp.sum(jnp.exp(1e3 * w**2))  # noqa: E731
    tx = scale_by_normalized_newton(curvature="none", gamma0=1.0)
    w = jnp.array([0.1])
    u, s = tx.update(None, tx.init(w), w, loss_fn=loss)
    np.testing.assert_array_equal(np.asarray(u), 0.0)
    assert not bool(s.accepted) and float(s.gamma) == 0.5


def test_jit_matches_eager(x64):
    w, x, y = (jnp.asarray(a) for a in _softmax_problem())
    tx = normalized_newton(curvature="fisher", gamma0=0.3, cg_steps=4)
    s0 = tx.init(w)
    u1, s1 = tx.update(None, s0, w, model_fn=_model, output_loss_fn=_ce, batch_args=(x, y))
    u2, s2 = jax.jit(
        lambda s, w, x, y: tx.update(
            None, s, w, model_fn=_model, output_loss_fn=_ce, batch_args=(x, y)
        )
    )(s0, w, x, y)
    for a, b in zip(jax.tree.leaves((u1, s1)), jax.tree.leaves((u2, s2))):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-15)


# -- API ------------------------------------------------------------------------------------------


def test_state_and_chain_api(x64):
    w = {"a": jnp.ones(3)}
    tx = normalized_newton(curvature="none")
    state = tx.init(w)
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    sub = state[0]
    assert isinstance(sub, NormalizedNewtonState)
    assert sub._fields == ("count", "gamma", "accepted", "n_accepted", "loss", "grad_norm")
    assert (
        sub.count.dtype == jnp.int32
        and sub.accepted.dtype == jnp.bool_
        and sub.gamma.dtype == jnp.float64
    )
    assert float(sub.gamma) == 1.0 and not bool(sub.accepted)
    loss = lambda p: jnp.sum(p["a"] ** 2)  # noqa: E731
    # the incoming gradient is ignored; unknown extra kwargs (for other chain members) are too
    u1, _ = tx.update(None, state, w, loss_fn=loss)
    u2, _ = tx.update({"a": jnp.full(3, 99.0)}, state, w, loss_fn=loss, key=jax.random.key(0))
    np.testing.assert_array_equal(u1["a"], u2["a"])
    # learning_rate scales the accepted step
    u3, _ = normalized_newton(curvature="none", learning_rate=0.5).update(
        None, state, w, loss_fn=loss
    )
    np.testing.assert_allclose(u3["a"], 0.5 * u1["a"], rtol=1e-15)


def test_validation_errors():
    sc = scale_by_normalized_newton
    for kwargs, err, name in [
        (dict(curvature="hessian"), ValueError, "curvature"),
        (dict(likelihood="poisson"), ValueError, "likelihood"),
        (dict(gamma0=0.0), ValueError, "gamma0"),
        (dict(gamma0="1"), TypeError, "gamma0"),
        (dict(gamma_min=-1.0), ValueError, "gamma_min"),
        (dict(gamma_min=2.0), ValueError, "gamma_min"),  # above gamma0
        (dict(gamma_max=float("inf")), ValueError, "gamma_max"),
        (dict(gamma_max=0.5), ValueError, "gamma_max"),  # below gamma0
        (dict(cg_steps=0), ValueError, "cg_steps"),
        (dict(cg_tol=-1e-3), ValueError, "cg_tol"),
        (dict(max_trials=1.5), ValueError, "max_trials"),
        (dict(axis_name=3), TypeError, "axis_name"),
    ]:
        with pytest.raises(err, match=f"`{name}`"):
            sc(**kwargs)
    with pytest.raises(ValueError, match="`learning_rate`"):
        normalized_newton(learning_rate=-1.0)

    w = jnp.ones((D, K))
    x, y = jnp.ones((4, D)), jnp.zeros(4, jnp.int32)
    gn, none, ef = sc(), sc(curvature="none"), sc(curvature="empirical_fisher")
    s = gn.init(w)
    with pytest.raises(TypeError, match="`model_fn`"):
        gn.update(None, s, w, output_loss_fn=_ce, batch_args=(x, y))
    with pytest.raises(TypeError, match="`output_loss_fn`"):
        gn.update(None, s, w, model_fn=_model, batch_args=(x, y))
    with pytest.raises(ValueError, match="`model_fn`.*`output_loss_fn`.*got `loss_fn`"):
        gn.update(None, s, w, loss_fn=lambda w, x, y: 0.0, batch_args=(x, y))
    with pytest.raises(ValueError, match="one form only"):
        gn.update(None, s, w, model_fn=_model, output_loss_fn=_ce, loss_fn=_ce, batch_args=(x, y))
    with pytest.raises(ValueError, match="`batch_args`"):
        gn.update(None, s, w, model_fn=_model, output_loss_fn=_ce, batch_args=(x,))
    with pytest.raises(TypeError, match="`batch_args`"):
        gn.update(None, s, w, model_fn=_model, output_loss_fn=_ce, batch_args=x)
    with pytest.raises(TypeError, match="`loss_fn`"):
        none.update(None, s, w, batch_args=(x, y))
    with pytest.raises(TypeError, match="`per_example_loss_fn`"):
        ef.update(None, s, w, batch_args=(x, y))
    with pytest.raises(ValueError, match="`per_example_loss_fn`.*got `loss_fn`"):
        ef.update(None, s, w, loss_fn=lambda w: 0.0)
    with pytest.raises(ValueError, match="`batch_args`"):
        ef.update(None, s, w, per_example_loss_fn=_ce_one, batch_args=(x, jnp.zeros(3, jnp.int32)))
    with pytest.raises(ValueError, match="`params`"):
        none.update(None, s, None, loss_fn=lambda w: jnp.sum(w))
    with pytest.raises(TypeError, match="`params`"):
        none.init(jnp.ones(3, jnp.int32))
    with pytest.raises(ValueError, match="scalar"):
        none.update(None, s, w, loss_fn=lambda w: w)


def test_nnx_optimizer_gauss_newton(x64):
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)))
    y = x @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.3
    graphdef, _ = nnx.split(model, nnx.Param)

    def model_fn(p, x):
        return nnx.merge(graphdef, p)(x)

    def mse(z, y):
        return 0.5 * jnp.mean((z - y) ** 2)

    opt = nnx.Optimizer(model, normalized_newton(gamma0=0.5), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        p = nnx.state(model, nnx.Param)
        opt.update(model, p, model_fn=model_fn, output_loss_fn=mse, batch_args=(x, y))

    l0 = float(mse(model(x), y))
    for _ in range(12):
        step(model, opt, x, y)
    # least squares with its exact Hessian: once gamma has grown the steps are Newton steps
    assert float(mse(model(x), y)) < 1e-12 * l0
