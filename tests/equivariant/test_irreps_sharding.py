"""IrrepsArray inside ``jax.shard_map``: sharded along a leading axis over 8 devices, the
irreps (static aux data) travel with every shard and the results equal one device.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice tests/equivariant/test_irreps_sharding.py

Every test is marked ``multidevice`` (excluded from the default run) and skips with fewer than
8 devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES, data_mesh, gather, shard
from jax.sharding import PartitionSpec as P

from geomjax.equivariant import IrrepsArray, concatenate, spherical_harmonics
from geomjax.testing import rounding_tolerance

pytestmark = MULTIDEVICE


@pytest.fixture
def mesh():
    return data_mesh()


def _features(vectors, weights):
    """Per-point: harmonics up to l = 3, scaled by an invariant weight, regrouped with a copy
    of the vector (1o); a pure function of one point's data."""
    sh = spherical_harmonics("0e + 1o + 2e + 3o", vectors, normalize=True)
    scaled = sh * IrrepsArray("0e", weights[..., None])
    return concatenate([scaled, IrrepsArray("1o", vectors)]).regroup()


def test_irreps_array_sharded_equals_single_device(mesh, x64):
    rng = np.random.default_rng(0)
    n = 4 * N_DEVICES
    vectors = jnp.asarray(rng.standard_normal((n, 3)))
    weights = jnp.asarray(rng.uniform(0.5, 2.0, n))
    single = _features(vectors, weights)
    single_sum = jnp.sum(single.array, axis=0)

    def local(v, w):
        feats = _features(v, w)  # an IrrepsArray per shard
        total = jax.lax.psum(jnp.sum(feats.array, axis=0), "data")
        return feats, IrrepsArray(feats.irreps, total)

    sharded = jax.jit(
        jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=(P("data"), P()))
    )
    feats, total = sharded(*shard(mesh, (vectors, weights)))
    assert isinstance(feats, IrrepsArray) and feats.irreps == single.irreps == "0e + 2x1o + 2e + 3o"
    assert feats.shape == single.shape
    # the same per-point arithmetic, compiled differently (jit inside shard_map vs eager: fused
    # multiply-adds may differ): the harmonics' round-off, 2 (l + 1) roundings for l <= 3
    scale = float(jnp.max(jnp.abs(single.array)))
    tol_rows = rounding_tolerance(jnp.float64, n_ops=8, growth="linear") * scale
    np.testing.assert_allclose(gather(feats.array), np.asarray(single.array), rtol=0, atol=tol_rows)
    # a sum over 32 points in another order (8 partial sums, then psum)
    tol = rounding_tolerance(jnp.float64, n_ops=n) * float(jnp.sum(jnp.abs(single.array)))
    np.testing.assert_allclose(gather(total.array), np.asarray(single_sum), rtol=0, atol=tol)


def test_irreps_array_as_shard_map_input(mesh):
    """An IrrepsArray argument sharded by a PartitionSpec prefix (the spec applies to its leaf);
    gradients with respect to it come back as IrrepsArrays with the same irreps."""
    rng = np.random.default_rng(1)
    x = IrrepsArray("2x0e + 1o", jnp.asarray(rng.standard_normal((2 * N_DEVICES, 5)), jnp.float32))

    def loss(a):
        return jnp.sum(a.filter(keep="1o").array ** 2)

    def local(a):
        return jax.lax.psum(loss(a), "data"), jax.grad(loss)(a)

    fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=(P(), P("data"))))
    value, grad = fn(shard(mesh, x))
    assert isinstance(grad, IrrepsArray) and grad.irreps == x.irreps
    g = gather(grad.array)  # sharded over the devices of every process
    np.testing.assert_array_equal(g[:, :2], 0.0)
    np.testing.assert_allclose(g[:, 2:], 2 * np.asarray(x.array[:, 2:]))
    # 16 x 3 squares summed in another order: float32 round-off of 48 positive terms
    want = float(np.sum(np.asarray(x.array[:, 2:], np.float64) ** 2))
    assert abs(float(gather(value)) - want) <= rounding_tolerance(jnp.float32, n_ops=48) * want
