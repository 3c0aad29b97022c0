"""Multi-device normalized Newton: with ``axis_name`` under ``jax.shard_map`` the update (and the
acceptance decision) equals the single-device update on the full batch.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice tests/optim/test_normalized_newton_sharding.py

Every test is marked ``multidevice`` (excluded from the default run) and skips with fewer than
8 devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES, data_mesh, shard
from jax.sharding import PartitionSpec as P

from geomjax.optim._normalized_newton_optax import normalized_newton

pytestmark = MULTIDEVICE


@pytest.fixture
def mesh():
    return data_mesh()


def _mlp_problem(dtype, per_device=4):
    rng = np.random.default_rng(0)
    n, d, h, k = per_device * N_DEVICES, 3, 5, 3
    x = rng.normal(size=(n, d))
    y = ((x[:, 0] * x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)).astype(np.int32)
    params = {
        "w1": rng.normal(size=(d, h)) / np.sqrt(d),
        "b1": np.zeros(h),
        "w2": rng.normal(size=(h, k)) / np.sqrt(h),
        "b2": np.zeros(k),
    }
    cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, dtype), t)  # noqa: E731
    return cast(params), cast(x), jnp.asarray(y)


def _model(p, x):
    """Logits (n, 3) of a one-hidden-layer tanh MLP."""
    return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _ce(z, y):
    """Mean softmax cross-entropy over the (local) batch."""
    return jnp.mean(
        jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
    )


def _ce_one(p, example):
    x, y = example
    z = _model(p, x[None])[0]
    return jax.nn.logsumexp(z) - z[y]


def _kwargs(kind, x, y):
    if kind in ("gauss_newton", "fisher"):
        return dict(model_fn=_model, output_loss_fn=_ce, batch_args=(x, y))
    if kind == "empirical_fisher":
        return dict(per_example_loss_fn=_ce_one, batch_args=(x, y))
    return dict(loss_fn=lambda p, x, y: _ce(_model(p, x), y), batch_args=(x, y))


@pytest.mark.parametrize("kind", ["gauss_newton", "fisher", "empirical_fisher", "none"])
def test_normalized_newton_sharded_equals_single_device(mesh, x64, kind):
    params, x, y = _mlp_problem(jnp.float64)
    # from gamma0 = 8 some trials are rejected and retried within a call: both branches run
    kw = dict(curvature=kind, gamma0=8.0, cg_steps=6, max_trials=3)
    tx_single = normalized_newton(**kw)
    tx_sharded = normalized_newton(axis_name="data", **kw)

    def step_single(p, s):
        return tx_single.update(None, s, p, **_kwargs(kind, x, y))

    def local(p, s, xs, ys):
        # the objective functions give the mean over the local shard
        return tx_sharded.update(None, s, p, **_kwargs(kind, xs, ys))

    step_sharded = jax.jit(
        jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P("data"), P("data")), out_specs=P())
    )
    xs, ys = shard(mesh, (x, y))
    p1 = p2 = params
    s1, s2 = tx_single.init(params), tx_sharded.init(params)
    step_single = jax.jit(step_single)
    apply = jax.jit(optax.apply_updates)
    n_accepted = 0
    for _ in range(4):
        u1, s1 = step_single(p1, s1)
        u2, s2 = step_sharded(p2, s2, xs, ys)
        assert bool(s1[0].accepted) == bool(s2[0].accepted)
        n_accepted += int(s1[0].accepted)
        for a, b in zip(jax.tree.leaves((u1, s1)), jax.tree.leaves((u2, s2))):
            # the 8 shard means are summed in another order than the full-batch mean; a few CG
            # steps amplify that by at most the condition number of C + lambda I
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-9, atol=1e-12)
        p1, p2 = apply(p1, u1), apply(p2, u2)
    assert n_accepted > 0 and float(s1[0].loss) < float(jnp.asarray(_ce(_model(params, x), y)))


@pytest.mark.parametrize("check_vma", [True, False])
def test_normalized_newton_sharded_float32(mesh, check_vma):
    # check_vma=False: no automatic psum of replicated-parameter gradients; same answer
    params, x, y = _mlp_problem(jnp.float32)
    tx_single, tx_sharded = (
        normalized_newton(gamma0=0.5),
        normalized_newton(gamma0=0.5, axis_name="data"),
    )
    single = jax.jit(lambda p, s: tx_single.update(None, s, p, **_kwargs("gauss_newton", x, y)))
    u1, s1 = single(params, tx_single.init(params))
    local = lambda p, s, xs, ys: tx_sharded.update(None, s, p, **_kwargs("gauss_newton", xs, ys))  # noqa: E731
    sharded = jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(), P(), P("data"), P("data")),
            out_specs=P(),
            check_vma=check_vma,
        )
    )
    u2, s2 = sharded(params, tx_sharded.init(params), *shard(mesh, (x, y)))
    assert bool(s1[0].accepted) and bool(s2[0].accepted)
    for a, b in zip(jax.tree.leaves((u1, s1)), jax.tree.leaves((u2, s2))):
        # float32 round-off in the differently ordered sums, through 10 CG steps
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
