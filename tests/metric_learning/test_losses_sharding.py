"""Batch losses with the batch sharded over 8 devices (``axis_name``, cross-device negatives)
equal one device on the concatenated batch, value and gradient.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice \
        tests/metric_learning/test_losses_sharding.py

Each device's rows meet all references (``all_gather``), so every term is computed once, as on
one device; only the order of the final sums differs (a few ulps): 1e-6 relative in float32
(the issue's bound), 1e-12 in float64, for the loss; gradient entries sum up to B = 64 terms
in another order (``B eps`` = 4e-6 in float32): 10x those bounds of the largest entry. The gradient of the summed loss with respect to each
shard flows back through the ``all_gather`` (its transpose sums the reference cotangents of
all devices onto the owner).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES, data_mesh, gather, shard
from jax.sharding import PartitionSpec as P

from geomjax.metric_learning import (
    contrastive_loss,
    multi_similarity_loss,
    ntxent_loss,
    supcon_loss,
    triplet_margin_loss,
)

pytestmark = MULTIDEVICE

FNS = {
    "contrastive": contrastive_loss,
    "triplet": triplet_margin_loss,
    "multi_similarity": multi_similarity_loss,
    "ntxent": ntxent_loss,
    "supcon": supcon_loss,
}


@pytest.mark.parametrize(
    "dtype,tol,chunk",
    [(jnp.float32, 1e-6, None), (jnp.float32, 1e-6, 3), (jnp.float64, 1e-12, None)],
)
@pytest.mark.parametrize("name", FNS)
def test_sharded_loss_and_gradient_equal_single_device(name, dtype, tol, chunk):
    fn = FNS[name]
    mesh = data_mesh()
    rng = np.random.default_rng(0)
    b = 8 * N_DEVICES
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.asarray(rng.standard_normal((b, 6)), dtype)
        y = jnp.asarray(rng.integers(0, 12, b))
        single_v, single_g = jax.value_and_grad(lambda e: fn(e, y))(x)

        def local(xs, ys):
            return jax.value_and_grad(lambda e: fn(e, ys, axis_name="data", chunk_size=chunk))(xs)

        sharded = jax.jit(
            jax.shard_map(
                local, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=(P(), P("data"))
            )
        )
        v, g = sharded(*shard(mesh, (x, y)))
        v, g = gather((v, g))
    np.testing.assert_allclose(float(v), float(single_v), rtol=tol)
    scale = float(jnp.abs(single_g).max())
    np.testing.assert_allclose(g, np.asarray(single_g), rtol=0, atol=tol * max(scale, 1e-30) * 10)
