"""vMF mixture EM with rows sharded over 8 devices (``jax.shard_map``, ``axis_name``) equals one
device: the sufficient statistics are summed with psum in another order, nothing else differs.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice \
        tests/distributions/test_mixture_sharding.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _multidevice import MULTIDEVICE, data_mesh, shard
from jax.sharding import PartitionSpec as P
from test_mixture import MUS, mixture_samples

from geomjax.distributions import fit_vmf_mixture

pytestmark = MULTIDEVICE


def test_sharded_mixture_equals_single_device(key, x64):
    x = mixture_samples(key)[:2992]  # 8 * 374 rows
    init = jnp.asarray(MUS + 0.3) / np.linalg.norm(MUS[0] + 0.3)
    one = jax.jit(lambda x: fit_vmf_mixture(key, x, 3, init_mu=init))(x)
    mesh = data_mesh()

    def local(xs):
        fit = fit_vmf_mixture(key, xs, 3, init_mu=init, axis_name="data")
        return fit._replace(responsibilities=jnp.zeros(()))

    out_specs = type(one)(*[P() for _ in one])  # every field replicated
    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"),), out_specs=out_specs))
    got = sharded(shard(mesh, x))
    assert int(got.n_iters) == int(one.n_iters)
    assert bool(got.converged) and bool(one.converged)
    # Sums of ~3000 terms in another order, then Newton: ~1e-13 relative (kappa condition ~10).
    for name in ("weights", "mu", "kappa", "log_likelihood"):
        np.testing.assert_allclose(
            np.asarray(getattr(got, name)), np.asarray(getattr(one, name)), rtol=1e-10, atol=1e-12
        )
