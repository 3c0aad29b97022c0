"""Multi-device AdaHessian: with ``axis_name`` under ``jax.shard_map`` the update equals the
single-device update on the full batch.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice tests/optim/test_adahessian_sharding.py

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

from geomjax.optim._adahessian import adahessian

pytestmark = MULTIDEVICE


@pytest.fixture
def mesh():
    return data_mesh()


def _mlp_problem(dtype, per_device=4):
    rng = np.random.default_rng(0)
    n, d, h = per_device * N_DEVICES, 3, 5
    x = rng.normal(size=(n, d))
    y = (x[:, 0] * x[:, 1] - x[:, 2] > 0).astype(float)
    params = {
        "w1": rng.normal(size=(d, h)) / np.sqrt(d),
        "b1": np.zeros(h),
        "w2": rng.normal(size=(h,)) / np.sqrt(h),
        "b2": np.zeros(()),
    }
    cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, dtype), t)  # noqa: E731
    return cast(params), cast(x), cast(y)


def _loss(p, x, y):
    """Mean logistic loss of a one-hidden-layer tanh MLP over the (local) batch."""
    z = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


@pytest.mark.parametrize(
    "n_samples, update_every", [(1, 1), (3, 2)], ids=["one-probe", "three-probes-every2"]
)
def test_adahessian_sharded_equals_single_device(mesh, x64, n_samples, update_every):
    params, x, y = _mlp_problem(jnp.float64)
    kw = dict(weight_decay=0.01, hessian_power=0.5, n_samples=n_samples, update_every=update_every)
    tx_single = adahessian(0.1, **kw)
    tx_sharded = adahessian(0.1, axis_name="data", **kw)

    def step_single(p, s, key):
        return tx_single.update(None, s, p, loss_fn=_loss, key=key, batch_args=(x, y))

    def local(p, s, key, xs, ys):
        # same key on every device; loss_fn is the mean over the local shard
        return tx_sharded.update(None, s, p, loss_fn=_loss, key=key, batch_args=(xs, ys))

    step_sharded = jax.jit(
        jax.shard_map(
            local, mesh=mesh, in_specs=(P(), P(), P(), P("data"), P("data")), out_specs=P()
        )
    )
    xs, ys = shard(mesh, (x, y))
    p1 = p2 = params
    s1, s2 = tx_single.init(params), tx_sharded.init(params)
    step_single = jax.jit(step_single)
    apply = jax.jit(optax.apply_updates)
    for i in range(4):
        key = jax.random.key(i)
        u1, s1 = step_single(p1, s1, key)
        u2, s2 = step_sharded(p2, s2, key, xs, ys)
        for a, b in zip(jax.tree.leaves((u1, s1)), jax.tree.leaves((u2, s2))):
            # the 8 shard means are summed in another order than the full-batch mean
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-11, atol=1e-13)
        p1, p2 = apply(p1, u1), apply(p2, u2)


@pytest.mark.parametrize("check_vma", [True, False])
def test_adahessian_sharded_float32(mesh, check_vma):
    # check_vma=False: no automatic psum of replicated-parameter gradients; same answer
    params, x, y = _mlp_problem(jnp.float32)
    tx_single, tx_sharded = adahessian(0.1), adahessian(0.1, axis_name="data")
    key = jax.random.key(5)
    single = jax.jit(
        lambda p, s, k: tx_single.update(None, s, p, loss_fn=_loss, key=k, batch_args=(x, y))
    )
    u1, _ = single(params, tx_single.init(params), key)
    local = lambda p, s, k, xs, ys: tx_sharded.update(
        None, s, p, loss_fn=_loss, key=k, batch_args=(xs, ys)
    )  # noqa: E731
    sharded = jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(), P(), P(), P("data"), P("data")),
            out_specs=P(),
            check_vma=check_vma,
        )
    )
    u2, _ = sharded(params, tx_sharded.init(params), key, *shard(mesh, (x, y)))
    for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
        # float32 round-off in the differently ordered sums, amplified by g / |diag H|
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
