"""Multi-device tests: reductions over a named axis inside ``jax.shard_map`` equal one device.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice tests/test_sharding.py

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

from geomjax.manifolds._euclidean import Euclidean
from geomjax.manifolds._mean import frechet_mean
from geomjax.manifolds._product import Product
from geomjax.manifolds._sphere import Sphere

pytestmark = MULTIDEVICE


@pytest.fixture
def mesh():
    return data_mesh()


def _sphere_cluster(n, seed):
    """n points of S^2 in a small cap around (0, 0, 1), and positive weights."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 2)) * 0.3
    r = np.linalg.norm(v, axis=-1, keepdims=True)
    pts = np.concatenate([np.sin(r) * v / r, np.cos(r)], axis=-1)
    return pts, rng.uniform(0.1, 1.0, size=n)


# -- frechet_mean ----------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "uniform"])
def test_frechet_mean_sphere_sharded_equals_single_device(mesh, weighted, x64):
    pts, w = _sphere_cluster(4 * N_DEVICES, 0)
    pts, w = jnp.asarray(pts), jnp.asarray(w) if weighted else None
    m = Sphere(2)
    single = frechet_mean(m, pts, w, tol=1e-12)

    def local(p, *ws):
        return frechet_mean(m, p, *ws, tol=1e-12, axis_name="data")

    in_specs = (P("data"), P("data")) if weighted else (P("data"),)
    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=P()))
    res = sharded(*shard(mesh, (pts, w))) if weighted else sharded(shard(mesh, pts))
    assert bool(single.converged) and bool(res.converged)
    # Same start (the first point of shard 0 is pts[0]) and the same iterates up to the order of
    # the float64 sums: agreement to round-off, and the same number of steps.
    np.testing.assert_allclose(res.mean, single.mean, atol=1e-13)
    assert int(res.n_iters) == int(single.n_iters)
    np.testing.assert_allclose(res.grad_norm, single.grad_norm, atol=1e-13)


def test_frechet_mean_product_sharded_float32(mesh):
    pts, w = _sphere_cluster(2 * N_DEVICES, 1)
    eucl = np.random.default_rng(1).normal(size=(2 * N_DEVICES, 3))
    m = Product((Sphere(2), Euclidean(3)))
    points = (jnp.asarray(pts, jnp.float32), jnp.asarray(eucl, jnp.float32))
    weights = jnp.asarray(w, jnp.float32)
    single = frechet_mean(m, points, weights, tol=1e-5)
    sharded = jax.shard_map(
        lambda p, ww: frechet_mean(m, p, ww, tol=1e-5, axis_name="data"),
        mesh=mesh,
        in_specs=(P("data"), P("data")),
        out_specs=P(),
    )
    res = sharded(*shard(mesh, (points, weights)))
    assert bool(res.converged) and bool(single.converged)
    # float32: the sharded sums differ from the single-device ones by a few ulps per step.
    np.testing.assert_allclose(res.mean[0], single.mean[0], atol=2e-6)
    np.testing.assert_allclose(res.mean[1], single.mean[1], atol=2e-6)
    np.testing.assert_allclose(res.mean[1], (w / w.sum()) @ eucl, atol=2e-6)


def test_frechet_mean_sharded_init_from_device_zero(mesh, x64):
    # Each device passes a different init (its own first point); device 0's is used everywhere.
    pts, _ = _sphere_cluster(N_DEVICES, 2)
    pts = jnp.asarray(pts)
    m = Sphere(2)
    sharded = jax.shard_map(
        lambda p: frechet_mean(m, p, init=p[0], max_iter=1, axis_name="data"),
        mesh=mesh,
        in_specs=P("data"),
        out_specs=P(),
    )
    res = sharded(shard(mesh, pts))
    single = frechet_mean(m, pts, init=pts[0], max_iter=1)
    np.testing.assert_allclose(res.mean, single.mean, atol=1e-14)


# -- Riemannian batch norm -------------------------------------------------------------------------


@pytest.mark.parametrize("metric_name", ["aim", "gbw"])
def test_riemannian_batch_norm_sharded_equals_single_device(mesh, metric_name, x64):
    from geomjax.manifolds import PowerDeformed, SPDAffineInvariant, SPDGeneralizedBuresWasserstein
    from geomjax.spdnet import rbn_init, riemannian_batch_norm

    n = 3
    keys = jax.random.split(jax.random.key(3), 2 * N_DEVICES)
    x = jax.vmap(SPDAffineInvariant(n).random_point, in_axes=(0, None))(keys, jnp.float64)
    metric = (
        SPDAffineInvariant(n)
        if metric_name == "aim"
        else PowerDeformed(
            SPDGeneralizedBuresWasserstein(jnp.diag(jnp.array([1.0, 2.0, 0.5]))), 0.7
        )
    )
    state = rbn_init(n, jnp.float64)

    def run(xs, axis_name=None):
        return riemannian_batch_norm(
            xs, state, metric, scale=0.4, training=True, mean_iter=20, axis_name=axis_name
        )

    y_single, st_single = run(x)
    sharded = jax.jit(
        jax.shard_map(
            lambda xs: run(xs, "data"), mesh=mesh, in_specs=P("data"), out_specs=(P("data"), P())
        )
    )
    y, st = sharded(shard(mesh, x))
    np.testing.assert_allclose(gather(y), y_single, atol=1e-10)
    np.testing.assert_allclose(st.running_mean, st_single.running_mean, atol=1e-12)
    np.testing.assert_allclose(st.running_var, st_single.running_var, atol=1e-12)
