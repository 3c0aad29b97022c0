"""Tests for geomjax.optim adahessian / scale_by_adahessian.

Independent references: a NumPy transcription of the reference PyTorch step
(amirgholami/adahessian, ``image_classification/optim_adahessian.py``; conv kernels in PyTorch's
OIHW layout averaged over dims (2, 3); the delayed update of davda54/ada-hessian), closed-form
Hessian diagonals of separable functions, the known Rosenbrock minimiser, a SciPy BFGS solution
of L2-regularised logistic regression, and the exact Hutchinson variance sum_{j != i} A_ij^2.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from geomjax.optim._adahessian import AdaHessianState, adahessian, scale_by_adahessian

# -- a separable test function: f(w) = sum a w^4 + b w^2, diag H = 12 a w^2 + 2 b (exact) ----------

_SHAPES = {"bias": (4,), "conv": (3, 3, 2, 5), "dense": (3, 4)}


def _separable_problem(seed=0):
    rng = np.random.default_rng(seed)
    w0 = {k: rng.normal(size=s) for k, s in _SHAPES.items()}
    a = {k: rng.uniform(0.1, 1.0, size=s) for k, s in _SHAPES.items()}
    b = {k: rng.uniform(-1.0, 1.0, size=s) for k, s in _SHAPES.items()}  # indefinite Hessians
    return w0, a, b


def _loss(w, a, b):
    return sum(jnp.sum(a[k] * w[k] ** 4 + b[k] * w[k] ** 2) for k in w)


def _to_torch_layout(k, x):
    return np.transpose(x, (3, 2, 0, 1)) if k == "conv" else x  # HWIO -> OIHW


def _from_torch_layout(k, x):
    return np.transpose(x, (2, 3, 1, 0)) if k == "conv" else x  # OIHW -> HWIO


def _reference_run(w0, a, b, n_steps, lr, b1, b2, eps, wd, k, update_every, seed):
    """The reference AdaHessian step, transcribed to NumPy (PyTorch layouts, float64).

    Probes are NumPy Rademacher vectors; the Hessian is diagonal, so Hv = diag(H) * v exactly.
    Returns the parameter trajectory (in Flax layout) after each step.
    """
    rng = np.random.default_rng(seed)
    p = {n: _to_torch_layout(n, w0[n]).copy() for n in w0}
    A = {n: _to_torch_layout(n, a[n]) for n in a}
    B = {n: _to_torch_layout(n, b[n]) for n in b}
    exp_avg = {n: np.zeros_like(p[n]) for n in p}
    exp_hess = {n: np.zeros_like(p[n]) for n in p}
    hut = {}
    traj = []
    for step in range(1, n_steps + 1):
        grads = {n: 4 * A[n] * p[n] ** 3 + 2 * B[n] * p[n] for n in p}
        if (step - 1) % update_every == 0:  # davda54: compute at hessian-step 0, k, 2k, ...
            for n in p:
                v = 2.0 * rng.integers(0, 2, size=p[n].shape) - 1.0
                hv = (12 * A[n] * p[n] ** 2 + 2 * B[n]) * v
                hv_abs = np.abs(hv)  # |hv| = |hv * v| for v = +-1
                hut[n] = hv_abs.mean(axis=(2, 3), keepdims=True) if p[n].ndim == 4 else hv_abs
        for n in p:
            exp_avg[n] = exp_avg[n] * b1 + (1 - b1) * grads[n]
            exp_hess[n] = exp_hess[n] * b2 + (1 - b2) * hut[n] * hut[n]
            bc1 = 1 - b1**step
            bc2 = 1 - b2**step
            denom = (np.sqrt(exp_hess[n]) ** k) / math.sqrt(bc2) ** k + eps
            p[n] = p[n] - lr * (exp_avg[n] / bc1 / denom + wd * p[n])
        traj.append({n: _from_torch_layout(n, p[n]) for n in p})
    return traj


def _run(tx, w0, loss_fn, n_steps, batch_args=(), seed=0):
    """Run ``tx`` for n_steps under one jit (lax.scan); returns (trajectory, final state)."""

    @jax.jit
    def go(w):
        def body(carry, i):
            w, s = carry
            key = jax.random.fold_in(jax.random.key(seed), i)
            u, s = tx.update(None, s, w, loss_fn=loss_fn, key=key, batch_args=batch_args)
            w = optax.apply_updates(w, u)
            return (w, s), w

        (w, s), traj = jax.lax.scan(body, (w, tx.init(w)), jnp.arange(n_steps))
        return traj, s

    return go(w0)


@pytest.mark.parametrize(
    "k, wd, update_every",
    [(1.0, 0.0, 1), (0.5, 0.01, 1), (1.0, 0.05, 3)],
    ids=["power1", "power0.5-wd", "every3-wd"],
)
def test_matches_numpy_reference_step_by_step(x64, k, wd, update_every):
    w0, a, b = _separable_problem()
    hp = dict(b1=0.9, b2=0.999, eps=1e-4)
    n_steps, lr = 20, 0.05
    ref = _reference_run(w0, a, b, n_steps, lr, wd=wd, k=k, update_every=update_every, seed=1, **hp)
    tx = adahessian(lr, weight_decay=wd, hessian_power=k, update_every=update_every, **hp)
    a_j, b_j = jax.tree.map(jnp.asarray, (a, b))
    traj, _ = _run(tx, jax.tree.map(jnp.asarray, w0), _loss, n_steps, batch_args=(a_j, b_j))
    err = max(
        float(np.max(np.abs(np.asarray(traj[n][t]) - ref[t][n])))
        for t in range(n_steps)
        for n in w0
    )
    moved = max(float(np.max(np.abs(ref[-1][n] - w0[n]))) for n in w0)
    assert moved > 0.1  # the iterates actually travel
    assert err < 1e-12, err


def test_float32_runs_and_keeps_dtype(dtype):
    w0, a, b = _separable_problem()
    cast = lambda t: jax.tree.map(lambda x: jnp.asarray(x, dtype), t)  # noqa: E731
    tx = adahessian(0.05, weight_decay=0.01)
    traj, state = _run(tx, cast(w0), _loss, 5, batch_args=(cast(a), cast(b)))
    for leaf in jax.tree.leaves((traj, state[0].mu, state[0].nu)):
        assert leaf.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(leaf)))
    ref = _reference_run(w0, a, b, 5, 0.05, 0.9, 0.999, 1e-4, 0.01, 1.0, 1, seed=1)
    # 5 steps of elementwise updates on a 2-leaf problem: the float32 default; float64 to
    # 4500 eps (sqrt and division per step, the reference in numpy)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    for n in w0:
        np.testing.assert_allclose(traj[n][-1], ref[-1][n], atol=tol, rtol=tol)


# -- convergence -----------------------------------------------------------------------------------


def test_converges_on_rosenbrock(x64):
    def rosen(p):
        return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2

    # A diagonal preconditioner crawls along the curved valley: a large step size and many steps.
    # Near the minimum it converges linearly, 10x per 1000 steps (distance 8e-4, 8e-5, 9e-6 at
    # 3000, 4000, 5000 steps): 5000 steps end a decade inside the tolerance (4000 used 0.84).
    traj, _ = _run(adahessian(3.0), jnp.array([-1.2, 1.0]), rosen, 5000)
    np.testing.assert_allclose(traj[-1], [1.0, 1.0], rtol=0, atol=1e-4)
    assert float(rosen(traj[-1])) < 1e-8


def test_converges_on_logistic_regression(x64):
    scipy_opt = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    n, d, lam = 200, 5, 1e-2
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + 0.5 * rng.normal(size=n) > 0).astype(float)

    def np_loss(wb):
        z = X @ wb[:d] + wb[d]
        return np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * wb[:d] @ wb[:d]

    def np_grad(wb):
        z = X @ wb[:d] + wb[d]
        r = 1.0 / (1.0 + np.exp(-z)) - y
        return np.concatenate([X.T @ r / n + lam * wb[:d], [r.mean()]])

    opt = scipy_opt.minimize(
        np_loss, np.zeros(d + 1), jac=np_grad, method="BFGS", options={"gtol": 1e-12}
    )

    def loss(p, X, y):
        z = X @ p["w"] + p["b"]
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * lam * jnp.sum(p["w"] ** 2)

    p0 = {"w": jnp.zeros(d), "b": jnp.zeros(())}
    traj, _ = _run(adahessian(0.3), p0, loss, 600, batch_args=(jnp.asarray(X), jnp.asarray(y)))
    final = np.concatenate([np.asarray(traj["w"][-1]), [float(traj["b"][-1])]])
    assert np_loss(final) - opt.fun < 1e-12
    np.testing.assert_allclose(final, opt.x, rtol=0, atol=1e-8)


# -- spatial averaging -----------------------------------------------------------------------------


def _one_step_hess(w0, a, b, **kw):
    """The |diag H| estimate stored after one step (update_every=2 keeps it in the state)."""
    tx = scale_by_adahessian(update_every=2, **kw)
    step = jax.jit(
        lambda w, a, b: tx.update(
            None, tx.init(w), w, loss_fn=_loss, key=jax.random.key(0), batch_args=(a, b)
        )[1]
    )
    return step(w0, a, b)


def test_spatial_average_hwio_default(x64):
    w0, a, b = _separable_problem(3)
    diag = {k: np.abs(12 * a[k] * w0[k] ** 2 + 2 * b[k]) for k in w0}
    state = _one_step_hess(*jax.tree.map(jnp.asarray, (w0, a, b)))
    conv_ref = np.broadcast_to(diag["conv"].mean(axis=(0, 1), keepdims=True), _SHAPES["conv"])
    np.testing.assert_allclose(state.hess["conv"], conv_ref, rtol=1e-13)
    np.testing.assert_allclose(state.hess["dense"], diag["dense"], rtol=1e-13)  # ndim 2: none
    np.testing.assert_allclose(state.hess["bias"], diag["bias"], rtol=1e-13)
    np.testing.assert_allclose(state.nu["conv"], (1 - 0.999) * conv_ref**2, rtol=1e-12)


@pytest.mark.parametrize("as_callable", [False, True], ids=["pytree", "callable"])
def test_spatial_axes_override(x64, as_callable):
    w0, a, b = _separable_problem(4)
    diag = {k: np.abs(12 * a[k] * w0[k] ** 2 + 2 * b[k]) for k in w0}
    spec = {"bias": None, "conv": (0, 1, -2), "dense": (1,)}
    axes = (lambda params: spec) if as_callable else spec
    state = _one_step_hess(*jax.tree.map(jnp.asarray, (w0, a, b)), spatial_axes=axes)
    np.testing.assert_allclose(state.hess["bias"], diag["bias"], rtol=1e-13)
    for k_, ax in (("conv", (0, 1, 2)), ("dense", (1,))):
        ref = np.broadcast_to(diag[k_].mean(axis=ax, keepdims=True), _SHAPES[k_])
        np.testing.assert_allclose(state.hess[k_], ref, rtol=1e-13)


# -- update_every ----------------------------------------------------------------------------------


def _counting_quartic():
    """f(w) = sum(w^4) / 4 whose second derivative fires a host callback: counts HVPs, not grads."""
    calls = []

    @jax.custom_jvp
    def cube(w):
        return w**3

    @cube.defjvp
    def _cube_jvp(primals, tangents):
        (w,), (t,) = primals, tangents
        jax.debug.callback(lambda: calls.append(1))
        return w**3, 3 * w**2 * t

    @jax.custom_jvp
    def energy(w):
        return jnp.sum(w**4) / 4

    @energy.defjvp
    def _energy_jvp(primals, tangents):
        (w,), (t,) = primals, tangents
        return energy(w), jnp.sum(cube(w) * t)

    return energy, calls


@pytest.mark.parametrize("every", [1, 3])
def test_update_every_counts_hvps(x64, every):
    f, calls = _counting_quartic()
    w = jnp.array([1.0, -2.0, 0.5])
    tx = scale_by_adahessian(update_every=every)
    step = jax.jit(lambda u, s, w, key: tx.update(u, s, w, loss_fn=f, key=key))
    state = tx.init(w)
    hess = []
    for i in range(7):
        u, state = step(None, state, w, jax.random.key(i))
        w = w - 0.1 * u
        hess.append(np.asarray(state.hess) if every > 1 else None)
    jax.effects_barrier()
    assert len(calls) == math.ceil(7 / every)  # one HVP at steps 0, k, 2k, ... only
    if every > 1:
        # reused between refreshes, recomputed (w moved) at a refresh
        np.testing.assert_array_equal(hess[1], hess[0])
        np.testing.assert_array_equal(hess[2], hess[0])
        assert not np.allclose(hess[3], hess[0])
        np.testing.assert_array_equal(hess[5], hess[3])


# -- probes ----------------------------------------------------------------------------------------


def _dense_quadratic(n, seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return m @ m.T / n + np.eye(n)


def _which_probe(d, A):
    """The Rademacher z (up to sign) with |z * A z| == d, by brute force over all 2^n vectors."""
    n = A.shape[0]
    Z = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    hits = np.nonzero(np.all(np.abs(np.abs(Z * (Z @ A)) - d) < 1e-12, axis=1))[0]
    assert hits.size > 0, "not a one-probe Hutchinson estimate"
    return {tuple(Z[i] * Z[i][0]) for i in hits}  # canonical sign: first entry +1


def test_leaves_and_steps_get_different_probes(x64):
    # Two leaves with identical values and identical dense Hessian blocks: the same probe would
    # give identical estimates |z * A z| (the old port's bug); independent probes do not.
    n = 10
    A = _dense_quadratic(n, 0)
    Aj = jnp.asarray(A)
    loss = lambda p: 0.5 * (p["u"] @ Aj @ p["u"] + p["v"] @ Aj @ p["v"])  # noqa: E731
    w = {"u": jnp.ones(n), "v": jnp.ones(n)}
    tx = scale_by_adahessian(update_every=2)
    step = jax.jit(lambda s, key: tx.update(None, s, w, loss_fn=loss, key=key)[1])
    s0 = tx.init(w)
    key = jax.random.key(7)
    s1 = step(s0, key)
    # the same key at another step (the count is folded in) draws other probes
    s2 = step(s0._replace(count=jnp.asarray(2, jnp.int32)), key)
    zu, zv, zu2 = (
        _which_probe(np.asarray(d), A) for d in (s1.hess["u"], s1.hess["v"], s2.hess["u"])
    )
    assert not (zu & zv), "two leaves share a probe"
    assert not (zu & zu2), "two steps share a probe"


def test_hutchinson_samples_are_independent_and_unbiased(x64):
    # mean over S probes of z * A z has mean diag(A) and std sqrt(sum_{j != i} A_ij^2 / S)
    n, S = 6, 4000
    A = _dense_quadratic(n, 1)
    loss = lambda w: 0.5 * w @ jnp.asarray(A) @ w  # noqa: E731
    tx = scale_by_adahessian(update_every=2, n_samples=S)
    _, s = tx.update(None, tx.init(jnp.zeros(n)), jnp.zeros(n), loss_fn=loss, key=jax.random.key(3))
    sigma = np.sqrt((np.sum(A**2, axis=1) - np.diag(A) ** 2) / S)
    z = (np.asarray(s.hess) - np.abs(np.diag(A))) / sigma
    assert np.all(np.abs(z) < 5.0), z
    assert np.mean(np.abs(z)) > 0.05  # not exact: the off-diagonal noise is there


# -- API -------------------------------------------------------------------------------------------


def test_state_and_chain_api(x64):
    w = {"a": jnp.ones(3)}
    tx = adahessian()
    state = tx.init(w)
    assert isinstance(state[0], AdaHessianState) and state[0].hess is None
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    loss = lambda p: jnp.sum(p["a"] ** 2)  # noqa: E731
    # the incoming gradient is ignored: None and a junk gradient give the same update
    u1, _ = tx.update(None, state, w, loss_fn=loss, key=jax.random.key(0))
    u2, _ = tx.update({"a": jnp.full(3, 99.0)}, state, w, loss_fn=loss, key=jax.random.key(0))
    np.testing.assert_array_equal(u1["a"], u2["a"])
    # unknown extra kwargs (for other members of a chain) are ignored
    tx.update(None, state, w, loss_fn=loss, key=jax.random.key(0), value=1.0)


def test_validation_errors():
    with pytest.raises(ValueError, match="`b1`"):
        scale_by_adahessian(b1=1.0)
    with pytest.raises(ValueError, match="`b2`"):
        scale_by_adahessian(b2=-0.1)
    with pytest.raises(ValueError, match="`hessian_power`"):
        scale_by_adahessian(hessian_power=1.5)
    with pytest.raises(ValueError, match="`eps`"):
        scale_by_adahessian(eps=-1.0)
    with pytest.raises(ValueError, match="`n_samples`"):
        scale_by_adahessian(n_samples=0)
    with pytest.raises(ValueError, match="`update_every`"):
        scale_by_adahessian(update_every=1.5)
    with pytest.raises(ValueError, match="`learning_rate`"):
        adahessian(learning_rate=-1.0)
    with pytest.raises(ValueError, match="`weight_decay`"):
        adahessian(weight_decay=-1.0)
    with pytest.raises(TypeError, match="`axis_name`"):
        scale_by_adahessian(axis_name=3)

    w = {"conv": jnp.ones((3, 3, 2, 2)), "b": jnp.ones(2)}
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))  # noqa: E731
    tx = scale_by_adahessian()
    s = tx.init(w)
    with pytest.raises(TypeError, match="`loss_fn`"):
        tx.update(None, s, w, key=jax.random.key(0))
    with pytest.raises(TypeError, match="`key`"):
        tx.update(None, s, w, loss_fn=loss)
    with pytest.raises(ValueError, match="`params`"):
        tx.update(None, s, None, loss_fn=loss, key=jax.random.key(0))
    with pytest.raises(TypeError, match="`batch_args`"):
        tx.update(None, s, w, loss_fn=loss, key=jax.random.key(0), batch_args=jnp.ones(2))
    with pytest.raises(ValueError, match="`updates`"):
        tx.update([jnp.ones(2)], s, w, loss_fn=loss, key=jax.random.key(0))
    with pytest.raises(TypeError, match="`params`"):
        tx.init({"i": jnp.ones(3, jnp.int32)})
    for bad, err in [
        ({"conv": (0, 4), "b": None}, ValueError),  # out of range
        ({"conv": (0, -4), "b": None}, ValueError),  # same axis twice
        ({"conv": "hw", "b": None}, TypeError),
        ({"conv": (0, 1)}, ValueError),  # wrong structure
    ]:
        with pytest.raises(err, match="`spatial_axes`"):
            scale_by_adahessian(spatial_axes=bad).init(w)


def test_nnx_optimizer_passes_loss_and_key(x64):
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)))
    y = x @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.3
    graphdef, params = nnx.split(model, nnx.Param)

    def loss_fn(p, x, y):
        return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2)

    opt = nnx.Optimizer(model, adahessian(0.5), wrt=nnx.Param)
    l0 = float(loss_fn(nnx.state(model, nnx.Param), x, y))
    for i in range(30):
        p = nnx.state(model, nnx.Param)
        opt.update(model, p, loss_fn=loss_fn, key=jax.random.key(i), batch_args=(x, y))
    assert float(loss_fn(nnx.state(model, nnx.Param), x, y)) < 1e-2 * l0
