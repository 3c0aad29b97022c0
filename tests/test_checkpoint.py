"""Nothing is lost across a restart: every optimizer and layer state round-trips through orbax.

Each test trains a tiny model for ``N`` steps on deterministic data with explicit keys. The
reference run saves a checkpoint after ``K < N`` steps (as a real run does) and carries on to
``N``. Then every live object is thrown away; a fresh run is built from scratch, an abstract
restore target is made from it (``jax.eval_shape`` of its ``init``, or ``nnx.eval_shape`` of a
new module), the checkpoint is restored into that target, and training continues to ``N``. The
resumed state must equal the reference state bitwise: same tree, and on every leaf the same
dtype, shape, weak type and bits (``np.array_equal``, so a NaN never passes).

The resumable state is everything a step reads: parameters, optimizer state, step counter,
PRNG key, running statistics (as a dict of arrays), or for NNX models ``nnx.state(model)`` and
``nnx.state(optimizer)``.

PRNG keys. A typed key array (``jax.random.key``, and the ``RngKey`` variables of ``nnx.Rngs``)
has an extended dtype that orbax cannot write. The pattern used here (``_to_savable`` /
``_from_savable``): save ``jax.random.key_data(key)`` (a ``uint32`` array) and after restoring
wrap it back with ``jax.random.wrap_key_data(data)``, using the same PRNG implementation the key
was made with (``jax.random.key``'s default here; pass ``impl=`` otherwise). The restore target
holds ``jax.eval_shape(jax.random.key_data, key)`` in place of the key.

orbax is a test dependency only (the library never imports it). Every checkpointer is used as a
context manager after ``wait_until_finished``, so its async threads end with the test; a fixture
checks that no thread outlives a test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

ocp = pytest.importorskip("orbax.checkpoint")
nnx = pytest.importorskip("flax.nnx")

from geomjax.manifolds import (  # noqa: E402
    SPDAffineInvariant,
    SPDLogEuclidean,
    Sphere,
    Stiefel,
)
from geomjax.nn import (  # noqa: E402
    BiMap,
    HyperbolicEmbedding,
    LogEig,
    ManifoldParam,
    SPDBatchNorm,
    manifold_tree,
)
from geomjax.optim import (  # noqa: E402
    AdaHessianState,
    MFACState,
    NormalizedNewtonState,
    RiemannianAdamState,
    RiemannianSGDState,
    adahessian,
    mfac,
    normalized_newton,
    riemannian_adam,
    riemannian_sgd,
)
from geomjax.spdnet import (  # noqa: E402
    MDMState,
    RBNState,
    mdm_distances,
    mdm_fit,
    mdm_predict,
    rbn_init,
    riemannian_batch_norm,
)

# --------------------------------------------------------------------------------------------
# checkpoint helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """orbax saves asynchronously; its threads must be gone when the test ends."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running after the test: {[t.name for t in leaked]}"


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _to_savable(tree: Any) -> Any:
    """Typed PRNG key arrays (concrete or abstract) -> their ``uint32`` key data."""

    def one(x):
        if not _is_key(x):
            return x
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.eval_shape(jax.random.key_data, x)
        return jax.random.key_data(x)

    return jax.tree.map(one, tree)


def _from_savable(tree: Any, template: Any) -> Any:
    """Wrap key data back into typed keys wherever ``template`` holds a key."""

    def one(x, t):
        if not _is_key(t):
            return x
        key = jax.random.wrap_key_data(x)  # jax.random.key's (default) implementation
        assert key.dtype == t.dtype, f"restored key {key.dtype}, expected {t.dtype}"
        return key

    return jax.tree.map(one, tree, template)


def _save(path, tree: Any) -> None:
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, _to_savable(tree))
        ckptr.wait_until_finished()


def _restore(path, template: Any) -> Any:
    """Restore into ``template`` (concrete or abstract: only shapes and dtypes are used)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), _to_savable(template)
    )
    with ocp.StandardCheckpointer() as ckptr:
        restored = ckptr.restore(path, abstract)
    return _from_savable(restored, template)


def _host_copy(tree: Any) -> Any:
    """A numpy copy of the state (keys as key data), kept only to compare against."""
    return jax.tree.map(lambda x: np.array(x, copy=True), _to_savable(tree))


def _assert_bitwise(actual: Any, expected: Any) -> None:
    """Same tree; every leaf the same dtype, shape, weak type and bits (NaN never passes)."""
    actual, expected = _to_savable(actual), _to_savable(expected)
    a_leaves, a_def = jax.tree_util.tree_flatten_with_path(actual)
    e_leaves, e_def = jax.tree_util.tree_flatten_with_path(expected)
    assert a_def == e_def, f"tree structure differs:\n{a_def}\nvs\n{e_def}"
    assert a_leaves, "empty state"
    for (path, a), (_, e) in zip(a_leaves, e_leaves):
        where = jax.tree_util.keystr(path)
        a_np, e_np = np.asarray(a), np.asarray(e)
        assert a_np.dtype == e_np.dtype, f"{where}: dtype {a_np.dtype} != {e_np.dtype}"
        assert a_np.shape == e_np.shape, f"{where}: shape {a_np.shape} != {e_np.shape}"
        if isinstance(a, jax.Array) and isinstance(e, jax.Array):
            assert a.weak_type == e.weak_type, f"{where}: weak_type {a.weak_type} != {e.weak_type}"
        assert np.array_equal(a_np, e_np), f"{where}: values differ\n{a_np}\nvs\n{e_np}"


# --------------------------------------------------------------------------------------------
# the pure (optax / functional) harness
# --------------------------------------------------------------------------------------------


class _Run(NamedTuple):
    """A training run built from nothing: ``init() -> state`` and a jitted ``step(state)``."""

    init: Callable[[], dict]
    step: Callable[[dict], dict]


def _check_resume(tmp_path, build: Callable[[], _Run], n_steps: int, k_steps: int) -> dict:
    """Reference run to ``n_steps`` (checkpoint after ``k_steps``) vs a run resumed from it."""
    assert 0 < k_steps < n_steps
    path = tmp_path / "ckpt"
    run = build()
    state = run.init()
    for i in range(n_steps):
        if i == k_steps:
            _save(path, state)
            at_k = _host_copy(state)
        state = run.step(state)
    expected = state
    del run, state  # nothing of the reference run is used below

    fresh = build()
    template = jax.eval_shape(fresh.init)
    state = _restore(path, template)
    _assert_bitwise(state, at_k)
    for _ in range(n_steps - k_steps):
        state = fresh.step(state)
    _assert_bitwise(state, expected)
    return state


def _regression_data(dtype, n=32, d_in=3, d_out=2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d_in))
    y = np.tanh(x @ rng.normal(size=(d_in, d_out)) + 0.1) + 0.05 * rng.normal(size=(n, d_out))
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype)


def _init_linear(dtype, d_in=3, d_out=2):
    w = np.random.default_rng(1).normal(size=(d_in, d_out)) / np.sqrt(d_in)
    return {"w": jnp.asarray(w, dtype), "b": jnp.zeros(d_out, dtype)}


def _model_fn(p, x):
    return jnp.tanh(x @ p["w"] + p["b"])


def _mse(z, y):
    return 0.5 * jnp.mean((z - y) ** 2)


def _loss(p, x, y):
    return _mse(_model_fn(p, x), y)


def _minibatch(key, x, y, size=8):
    idx = jax.random.randint(key, (size,), 0, x.shape[0])
    return x[idx], y[idx]


def _build_euclidean(make_tx, dtype, update: Callable) -> Callable[[], _Run]:
    """A minibatch regression run with ``update(tx, opt_state, params, probe_key, xb, yb) ->
    (updates, opt_state)``."""

    def build():
        x, y = _regression_data(dtype)
        tx = make_tx()

        def init():
            params = _init_linear(dtype)
            return {
                "params": params,
                "opt_state": tx.init(params),
                "step": jnp.zeros([], jnp.int32),
                "key": jax.random.key(42),
            }

        @jax.jit
        def step(s):
            key, sub, probe = jax.random.split(s["key"], 3)
            xb, yb = _minibatch(sub, x, y)
            updates, opt_state = update(tx, s["opt_state"], s["params"], probe, xb, yb)
            return {
                "params": optax.apply_updates(s["params"], updates),
                "opt_state": opt_state,
                "step": s["step"] + 1,
                "key": key,
            }

        return _Run(init, step)

    return build


def _grad_update(tx, opt_state, params, probe, xb, yb):
    del probe
    return tx.update(jax.grad(_loss)(params, xb, yb), opt_state, params)


# --------------------------------------------------------------------------------------------
# Riemannian SGD / Adam: a sphere-valued leaf next to Euclidean ones
# --------------------------------------------------------------------------------------------


def _build_riemannian(make_tx) -> Callable[[], _Run]:
    def build():
        x, y = _regression_data(jnp.float32)
        targets = jnp.asarray(np.random.default_rng(2).normal(size=(x.shape[0], 4)), jnp.float32)
        manifolds = {"points": Sphere(2), "lin": None}
        tx = make_tx(manifolds)

        def loss(p, xb, yb, tb):
            return _loss(p["lin"], xb, yb) + jnp.mean((xb @ p["points"].T - tb) ** 2)

        def init():
            pts = np.random.default_rng(3).normal(size=(4, 3))
            pts /= np.linalg.norm(pts, axis=-1, keepdims=True)
            params = {"points": jnp.asarray(pts, jnp.float32), "lin": _init_linear(jnp.float32)}
            return {
                "params": params,
                "opt_state": tx.init(params),
                "step": jnp.zeros([], jnp.int32),
                "key": jax.random.key(7),
            }

        @jax.jit
        def step(s):
            key, sub = jax.random.split(s["key"])
            idx = jax.random.randint(sub, (8,), 0, x.shape[0])
            grads = jax.grad(loss)(s["params"], x[idx], y[idx], targets[idx])
            updates, opt_state = tx.update(grads, s["opt_state"], s["params"])
            return {
                "params": optax.apply_updates(s["params"], updates),
                "opt_state": opt_state,
                "step": s["step"] + 1,
                "key": key,
            }

        return _Run(init, step)

    return build


def test_riemannian_sgd_resumes_bitwise(tmp_path):
    def make_tx(manifolds):
        lr = optax.exponential_decay(0.05, 3, 0.5)  # read at the restored step count
        return riemannian_sgd(lr, 0.9, nesterov=True, manifolds=manifolds, stabilize=2)

    state = _check_resume(tmp_path, _build_riemannian(make_tx), n_steps=6, k_steps=3)
    opt = state["opt_state"]
    assert isinstance(opt, RiemannianSGDState) and opt.count.dtype == jnp.int32
    assert int(opt.count) == 6 and opt.momentum["points"].shape == (4, 3)


def test_riemannian_adam_resumes_bitwise(tmp_path):
    # amsgrad=False: nu_max is None (a None leaf in the NamedTuple); the NNX test below runs
    # amsgrad=True
    build = _build_riemannian(lambda m: riemannian_adam(0.05, manifolds=m, stabilize=2))
    state = _check_resume(tmp_path, build, n_steps=6, k_steps=4)
    opt = state["opt_state"]
    assert isinstance(opt, RiemannianAdamState) and int(opt.count) == 6
    assert opt.nu["points"].shape == (4,)  # one second moment per sphere point
    assert opt.nu_max is None


# --------------------------------------------------------------------------------------------
# AdaHessian (key per step), M-FAC (int32 ring buffer), normalized Newton (bool flag)
# --------------------------------------------------------------------------------------------


def _adahessian_update(tx, opt_state, params, probe, xb, yb):
    return tx.update(None, opt_state, params, loss_fn=_loss, key=probe, batch_args=(xb, yb))


def test_adahessian_resumes_bitwise(tmp_path):
    def make_tx():
        return adahessian(0.1, update_every=3, n_samples=2, weight_decay=1e-3)

    build = _build_euclidean(make_tx, jnp.float32, _adahessian_update)
    # K = 4 is not a multiple of update_every = 3: the resumed run first reuses the saved
    # Hessian estimate (steps 5, 6), then refreshes it with a probe from the restored key
    state = _check_resume(tmp_path, build, n_steps=7, k_steps=4)
    (ada, *_) = state["opt_state"]
    assert isinstance(ada, AdaHessianState) and int(ada.count) == 7
    assert ada.hess is not None


@pytest.mark.parametrize(
    "blocks,dtype", [("leaf", "float32"), (None, "float64")], ids=["leaf-f32", "one-window-f64"]
)
def test_mfac_resumes_bitwise(tmp_path, blocks, dtype):
    def make_tx():
        return mfac(0.1, num_grads=3, damping=1e-2, momentum=0.5, weight_decay=1e-3, blocks=blocks)

    with jax.enable_x64(dtype == "float64"):
        build = _build_euclidean(make_tx, jnp.dtype(dtype), _grad_update)
        # window of 3, restart after 4 gradients: the ring buffer has wrapped and the next row
        # to overwrite (count % 3 = 1) is not the first
        state = _check_resume(tmp_path, build, n_steps=8, k_steps=4)
        (_, mf, *_) = state["opt_state"]
        assert isinstance(mf, MFACState)
        assert mf.count.dtype == jnp.int32 and int(mf.count) == 8
        grads, gram = (mf.grads[0], mf.gram[0]) if blocks == "leaf" else (mf.grads, mf.gram)
        assert grads.dtype == jnp.dtype(dtype)
        assert gram.dtype == jnp.dtype(dtype)  # the m x m algebra runs in float64 under x64


def test_normalized_newton_resumes_bitwise(tmp_path):
    def update(tx, opt_state, params, probe, xb, yb):
        del probe
        return tx.update(
            None, opt_state, params, model_fn=_model_fn, output_loss_fn=_mse, batch_args=(xb, yb)
        )

    build = _build_euclidean(lambda: normalized_newton(gamma0=0.5, cg_steps=3), jnp.float32, update)
    state = _check_resume(tmp_path, build, n_steps=6, k_steps=3)
    (nn_state, *_) = state["opt_state"]
    assert isinstance(nn_state, NormalizedNewtonState)
    assert nn_state.accepted.dtype == jnp.bool_ and nn_state.n_accepted.dtype == jnp.int32
    assert int(nn_state.count) == 6


# --------------------------------------------------------------------------------------------
# Riemannian batch norm running statistics (functional) and a fitted MDM
# --------------------------------------------------------------------------------------------


def _random_spd(key, shape, n):
    a = jax.random.normal(key, (*shape, n, n))
    return a @ jnp.swapaxes(a, -1, -2) / n + 0.5 * jnp.eye(n)


def test_riemannian_batch_norm_running_stats_resume_bitwise(tmp_path):
    """Running statistics evolve in training mode; the learnable bias and scale are ordinary
    parameters (their optimizer states are covered above and in the NNX test below)."""
    n = 3

    def build():
        metric = SPDAffineInvariant(n)

        def init():
            return {"rbn": rbn_init(n), "step": jnp.zeros([], jnp.int32), "key": jax.random.key(11)}

        @jax.jit
        def step(s):
            key, sub = jax.random.split(s["key"])
            _, rbn = riemannian_batch_norm(
                _random_spd(sub, (8,), n), s["rbn"], metric, training=True, mean_iter=3
            )
            return {"rbn": rbn, "step": s["step"] + 1, "key": key}

        return _Run(init, step)

    state = _check_resume(tmp_path, build, n_steps=5, k_steps=2)
    assert isinstance(state["rbn"], RBNState)
    assert not np.array_equal(np.asarray(state["rbn"].running_mean), np.eye(n))  # it moved


def test_mdm_state_round_trips_bitwise(tmp_path):
    """A fitted MDM has no steps to resume: the restored classifier predicts bit for bit.

    Log-Euclidean class means (closed form) keep the compile short; the state has the same
    fields and dtypes under every metric.
    """
    n, k = 3, 10
    metric = SPDLogEuclidean(n)
    x = _random_spd(jax.random.key(3), (k,), n)
    x = x * jnp.where(jnp.arange(k) < 5, 1.0, 3.0)[:, None, None]
    labels = (jnp.arange(k) >= 5).astype(jnp.int32)
    fit = jax.jit(lambda: mdm_fit(x, labels, 3, metric=metric))  # class 2 is empty
    classify = jax.jit(
        lambda s, q: (mdm_distances(s, q, metric=metric), mdm_predict(s, q, metric=metric))
    )
    queries = _random_spd(jax.random.key(4), (5,), n) * 2.0
    state = fit()
    _save(tmp_path / "mdm", state)
    expected, expected_out = _host_copy(state), classify(state, queries)
    del state

    restored = _restore(tmp_path / "mdm", jax.eval_shape(fit))
    _assert_bitwise(restored, expected)
    assert isinstance(restored, MDMState)
    assert restored.converged.dtype == jnp.bool_ and restored.n_iters.dtype == jnp.int32
    assert restored.converged.tolist() == [True, True, False]  # the empty class: False
    _assert_bitwise(classify(restored, queries), expected_out)


# --------------------------------------------------------------------------------------------
# NNX modules with ManifoldParam through nnx.Optimizer
# --------------------------------------------------------------------------------------------


def _check_nnx_resume(tmp_path, make_model, make_tx, train_step, n_steps, k_steps):
    """As :func:`_check_resume` for an NNX model and ``nnx.Optimizer``.

    Saved: ``nnx.state(model)`` (every Variable: Params, ManifoldParams, BatchStats, RngKey and
    RngCount of stored ``nnx.Rngs``) and ``nnx.state(optimizer)`` (its step and opt_state).
    Restored into ``nnx.state`` of ``nnx.eval_shape`` of a new model and a new optimizer; the
    live optimizer is then rebuilt on the restored model (its manifold tree comes from the
    ``ManifoldParam`` metadata) and updated in place.
    """
    path = tmp_path / "ckpt"

    def new():
        model = make_model()
        return model, nnx.Optimizer(model, make_tx(model), wrt=nnx.Param)

    model, optimizer = new()
    step = nnx.jit(train_step)
    for i in range(n_steps):
        if i == k_steps:
            snapshot = {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
            _save(path, snapshot)
            at_k = _host_copy(snapshot)
        step(model, optimizer)
    expected = {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
    del model, optimizer, snapshot, step

    abs_model, abs_optimizer = nnx.eval_shape(new)
    graphdef, abs_state = nnx.split(abs_model)
    template = {"model": abs_state, "optimizer": nnx.state(abs_optimizer)}
    restored = _restore(path, template)
    _assert_bitwise(restored, at_k)
    model = nnx.merge(graphdef, restored["model"])
    optimizer = nnx.Optimizer(model, make_tx(model), wrt=nnx.Param)
    nnx.update(optimizer, restored["optimizer"])
    step = nnx.jit(train_step)
    for _ in range(n_steps - k_steps):
        step(model, optimizer)
    actual = {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
    _assert_bitwise(actual, expected)
    return model, optimizer


class _EmbeddingModel(nnx.Module):
    """Poincare embeddings (a ManifoldParam table) with dropout on the pair distances (an
    ``nnx.Rngs`` stream stored in the model: a typed RngKey and a uint32 RngCount)."""

    def __init__(self, n_points: int, rngs: nnx.Rngs):
        self.embedding = HyperbolicEmbedding(n_points, 2, rngs=rngs, init_scale=0.1)
        self.dropout = nnx.Dropout(0.25, rngs=rngs)

    def __call__(self, i, j):
        return self.dropout(self.embedding.distance(i, j))


def test_nnx_hyperbolic_embedding_resumes_bitwise(tmp_path):
    n_points = 8
    rng = np.random.default_rng(6)
    i = jnp.asarray(rng.integers(0, n_points, size=16))
    j = (i + jnp.asarray(rng.integers(1, n_points, size=16))) % n_points  # j != i

    def train_step(model, optimizer):
        def loss(m):
            return jnp.mean((m(i, j) - 1.0) ** 2)

        optimizer.update(model, nnx.grad(loss)(model))

    model, optimizer = _check_nnx_resume(
        tmp_path,
        lambda: _EmbeddingModel(n_points, nnx.Rngs(params=0, dropout=1)),
        lambda m: riemannian_adam(0.05, amsgrad=True, manifolds=manifold_tree(m)),
        train_step,
        n_steps=6,
        k_steps=3,
    )
    assert isinstance(model.embedding.embedding, ManifoldParam)
    assert optimizer.step[...].dtype == jnp.uint32 and int(optimizer.step[...]) == 6
    assert optimizer.opt_state.nu_max is not None
    counts = [v for _, v in nnx.iter_graph(model) if isinstance(v, nnx.RngCount)]
    assert counts and all(int(v[...]) == 6 for v in counts)  # one dropout draw per step


class _SPDNet(nnx.Module):
    """BiMap (Stiefel ManifoldParam) -> SPDBatchNorm (SPD ManifoldParam bias, BatchStat running
    statistics) -> LogEig -> linear."""

    def __init__(self, rngs: nnx.Rngs):
        self.bimap = BiMap(4, 3, rngs=rngs)
        self.bn = SPDBatchNorm(3, metric="aim", mean_iter=3)
        self.logeig = LogEig()
        self.linear = nnx.Linear(6, 2, rngs=rngs)

    def __call__(self, x):
        return self.linear(self.logeig(self.bn(self.bimap(x))))


@pytest.mark.slow  # about 20 s of CPU: compiling the SPD layers' gradients twice
def test_nnx_spdnet_with_batch_stats_resumes_bitwise(tmp_path):
    x = _random_spd(jax.random.key(8), (8,), 4)
    labels = jnp.asarray(np.arange(8) % 2)

    def train_step(model, optimizer):
        def loss(m):
            logits = m(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        optimizer.update(model, nnx.grad(loss)(model))

    model, _ = _check_nnx_resume(
        tmp_path,
        lambda: _SPDNet(nnx.Rngs(0)),
        lambda m: riemannian_sgd(0.05, momentum=0.9, manifolds=manifold_tree(m)),
        train_step,
        n_steps=5,
        k_steps=2,
    )
    tree = manifold_tree(model)
    assert isinstance(tree["bimap"]["w"], Stiefel) and isinstance(
        tree["bn"]["bias"], SPDAffineInvariant
    )
    assert tree["linear"]["kernel"] is None
    # the running statistics advanced
    assert not np.array_equal(np.asarray(model.bn.running_mean[...]), np.eye(3))
