"""M-FAC inside ``jax.shard_map`` on 8 devices equals the single-device update on the full batch.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice tests/optim/test_mfac_sharding.py

Every test is marked ``multidevice`` (excluded from the default run) and skips with fewer than
8 devices.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES, data_mesh, gather, shard
from jax.sharding import PartitionSpec as P

from geomjax.optim._mfac import mfac, scale_by_mfac

M, STEPS = 4, 7  # the window slides (7 steps > m = 4)
TOL32 = 1e-3

pytestmark = MULTIDEVICE


@pytest.fixture
def mesh():
    return data_mesh()


def _problem(d_in, dtype):
    """A logistic regression batch of 4 examples per device and initial params (d = d_in + 1)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4 * N_DEVICES, d_in))
    y = (X @ rng.normal(size=d_in) > 0).astype(np.float64)
    params = {"b": jnp.asarray(0.1, dtype), "w": jnp.asarray(rng.normal(size=d_in) * 0.1, dtype)}
    return jnp.asarray(X, dtype), jnp.asarray(y, dtype), params


def _loss(p, xb, yb):
    z = xb @ p["w"] + p["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - yb * z)


def _run(tx, params, xb, yb, axis_name=None):
    """STEPS optimizer steps from a fresh state; returns the stacked updates.

    Inside ``shard_map`` the gradient of a replicated (unvarying) parameter is already summed
    over the axis by JAX's transpose; M-FAC's ``axis_name`` expects the per-device gradient, so
    the parameters are cast to varying first.
    """
    if axis_name is not None:
        params = jax.lax.pcast(params, axis_name, to="varying")

    def step(carry, _):
        p, state = carry
        u, state = tx.update(jax.grad(_loss)(p, xb, yb), state, p)
        return (optax.apply_updates(p, u), state), u

    return jax.lax.scan(step, (params, tx.init(params)), length=STEPS)[1]


def _sharded(mesh, tx, params, X, y):
    """Run inside shard_map; every device's updates come back stacked on a leading axis."""
    fn = lambda xb, yb: jax.tree.map(lambda u: u[None], _run(tx, params, xb, yb, "data"))  # noqa: E731
    return jax.jit(
        jax.shard_map(fn, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P("data"))
    )(*shard(mesh, (X, y)))


def _assert_every_device_equal(sharded, single, **tol):
    for key in ("b", "w"):
        for dev in range(N_DEVICES):
            np.testing.assert_allclose(gather(sharded[key])[dev], single[key], **tol)


@pytest.mark.parametrize("shard_buffer", [False, True], ids=["replicated", "sharded_buffer"])
@pytest.mark.parametrize("d_in", [12, 21], ids=["d13", "d22"])  # d = 22: uneven split over 8
def test_mfac_sharded_equals_single_device(mesh, x64, shard_buffer, d_in):
    X, y, params = _problem(d_in, jnp.float64)
    kw = dict(num_grads=M, damping=1e-4, momentum=0.5, weight_decay=1e-3)
    single = jax.jit(lambda: _run(mfac(0.1, **kw), params, X, y))()
    sharded = _sharded(
        mesh, mfac(0.1, axis_name="data", shard_buffer=shard_buffer, **kw), params, X, y
    )
    # same arithmetic up to the order of the float64 sums in the gradient mean
    _assert_every_device_equal(sharded, single, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("blocks", [5, 3], ids=["blocks5", "blocks3"])
@pytest.mark.parametrize("d_in", [12, 44], ids=["d13", "d45"])
def test_mfac_sharded_blocks_round_robin_equals_single_device(mesh, x64, blocks, d_in):
    # d = 13, b = 5: 3 blocks, one per device on devices 0-2 and 5 zero-padded blocks;
    # d = 45, b = 3: 15 blocks, two rounds over 8 devices (one padded block in the second).
    X, y, params = _problem(d_in, jnp.float64)
    kw = dict(num_grads=M, damping=1e-4, momentum=0.5, weight_decay=1e-3, blocks=blocks)
    single = jax.jit(lambda: _run(mfac(0.1, **kw), params, X, y))()
    sharded = _sharded(mesh, mfac(0.1, axis_name="data", shard_buffer=True, **kw), params, X, y)
    # per block the same arithmetic as one device, up to the order of the float64 sums of the
    # gradient mean (reduce-scatter vs the full-batch mean): agreement to round-off, as above
    _assert_every_device_equal(sharded, single, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shard_buffer", [False, True], ids=["replicated", "sharded_buffer"])
@pytest.mark.parametrize("blocks", [None, 5], ids=["full", "blocks5"])
def test_mfac_replicated_params_with_global_loss(mesh, x64, shard_buffer, blocks):
    # The other shard_map pattern: replicated params and a pmean-ed loss, whose gradient JAX
    # already averages over the axis (invariant); axis_name's pmean is then the identity (and
    # the reduce-scatter of a sharded buffer sums n equal copies, divided by n). The update is
    # typed replicated, so the parameters stay replicated (out_specs=P()).
    X, y, params = _problem(12, jnp.float64)
    kw = dict(num_grads=M, damping=1e-4, momentum=0.5, blocks=blocks)
    single = jax.jit(lambda: _run(mfac(0.1, **kw), params, X, y))()
    tx = mfac(0.1, axis_name="data", shard_buffer=shard_buffer, **kw)

    def local(xb, yb):
        loss = lambda p: jax.lax.pmean(_loss(p, xb, yb), "data")  # noqa: E731

        def step(carry, _):
            p, state = carry
            u, state = tx.update(jax.grad(loss)(p), state, p)
            return (optax.apply_updates(p, u), state), u

        return jax.lax.scan(step, (params, tx.init(params)), length=STEPS)[1]

    sharded = jax.jit(
        jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
    )(*shard(mesh, (X, y)))
    for key in ("b", "w"):
        np.testing.assert_allclose(sharded[key], single[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("blocks", [None, "leaf", 5], ids=["full", "leaf", "blocks5"])
def test_mfac_sharded_float32(mesh, blocks):
    X, y, params = _problem(12, jnp.float32)
    kw = dict(num_grads=M, damping=1e-3, blocks=blocks)
    single = jax.jit(lambda: _run(mfac(0.1, **kw), params, X, y))()
    sharded = _sharded(mesh, mfac(0.1, axis_name="data", **kw), params, X, y)
    # the pmean-ed gradient differs from the full-batch mean by a few ulps, amplified along the
    # trajectory by the preconditioner (u = m G^T K^{-1} e_j, error about eps32 * cond(K))
    _assert_every_device_equal(sharded, single, rtol=TOL32, atol=TOL32)


def test_sharded_buffer_state_is_split_along_d(mesh):
    d = 22
    tx = mfac(0.1, num_grads=M, axis_name="data", shard_buffer=True)

    def local(x):
        state = tx.init(x)
        return state[0].grads

    buf = jax.shard_map(local, mesh=mesh, in_specs=P(), out_specs=P(None, "data"))(jnp.zeros(d))
    assert buf.shape == (M, N_DEVICES * 3)  # ceil(22 / 8) = 3 columns per device


def test_sharded_blocks_state_is_dealt_round_robin(mesh):
    d, b = 45, 3  # 15 blocks: ceil(15 / 8) = 2 windows per device
    tx = mfac(0.1, num_grads=M, axis_name="data", shard_buffer=True, blocks=b)

    def local(x):
        state = tx.init(x)[0]
        return state.grads, state.gram

    buf, gram = jax.shard_map(local, mesh=mesh, in_specs=P(), out_specs=P("data"))(jnp.zeros(d))
    assert buf.shape == (N_DEVICES * 2, M, b) and gram.shape == (N_DEVICES * 2, M, M)


# -- the collectives of the compiled update ---------------------------------------------------

_COLLECTIVE = re.compile(
    r"= (\w+)\[([\d,]*)\]\S* (all-reduce|reduce-scatter|all-gather|all-to-all|"
    r"collective-permute)(?:-start)?\("
)


def collectives(hlo: str) -> list[tuple[str, int]]:
    """``(kind, number of elements)`` of every collective in compiled HLO text (the result
    shape of each; tuple-shaped results, e.g. combined all-reduces, are not matched)."""
    out = []
    for match in _COLLECTIVE.finditer(hlo):
        dims = [int(s) for s in match.group(2).split(",") if s]
        out.append((match.group(3), int(np.prod(dims)) if dims else 1))
    return out


@pytest.mark.parametrize("blocks", [None, 64], ids=["full", "blocks64"])
def test_sharded_buffer_update_collectives(mesh, blocks):
    # One reduce-scatter of the (padded) gradient, one all-gather of the update; the only
    # all-reduce is the m-vector G g of blocks=None. No all-reduce of size d.
    d, m = 1000, 16
    tx = scale_by_mfac(m, 1e-4, axis_name="data", shard_buffer=True, blocks=blocks)

    def local(g):
        return tx.update(g, tx.init(g))[0]

    step = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P(), out_specs=P()))
    found = collectives(step.lower(jnp.ones(d, jnp.float32)).compile().as_text())
    kinds = sorted(kind for kind, _ in found)
    if blocks is None:
        # 125 = d / 8 coordinates per device; the gathered update has d entries
        assert kinds == ["all-gather", "all-reduce", "reduce-scatter"], found
        assert ("reduce-scatter", d // N_DEVICES) in found and ("all-gather", d) in found
        assert ("all-reduce", m) in found
    else:
        # 16 blocks of 64 (d padded to 1024), 2 per device: 128 entries scattered to each
        assert kinds == ["all-gather", "reduce-scatter"], found
        assert ("reduce-scatter", 128) in found and ("all-gather", 1024) in found
    assert all(size < d for kind, size in found if kind == "all-reduce"), found


def test_replicated_buffer_update_collectives(mesh):
    # For contrast, the replicated window: the gradient pmean is an all-reduce of size d.
    d = 1000
    tx = scale_by_mfac(16, 1e-4, axis_name="data")
    step = jax.jit(
        jax.shard_map(lambda g: tx.update(g, tx.init(g))[0], mesh=mesh, in_specs=P(), out_specs=P())
    )
    found = collectives(step.lower(jnp.ones(d, jnp.float32)).compile().as_text())
    assert found == [("all-reduce", d)], found
