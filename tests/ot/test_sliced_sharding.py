"""Sliced Wasserstein with the points sharded over 8 devices (``axis_name``) equals one device.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice \
        tests/ot/test_sliced_sharding.py

Each device projects its shard of the points, an ``all_to_all`` hands each device whole
projections of ``L / 8`` directions, which it sorts; an ``all_gather`` of the per-direction terms
gives every device all of them. The sorted projections are those of one device, so the terms
agree with one device up to the projection matmul's summation order over ``d`` (a few ulps).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES, data_mesh, gather, shard
from jax.sharding import PartitionSpec as P

from geomjax.ot._sliced import random_projections, sliced_wasserstein, sliced_wasserstein_with_error

pytestmark = MULTIDEVICE

D = 5


@pytest.fixture
def mesh():
    return data_mesh()


def _clouds(n, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D))
    y = rng.normal(size=(m, D)) * np.linspace(0.5, 1.5, D) + 0.7
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype)


def _weights(n, seed):
    w = np.random.default_rng(seed).random(n) + 0.1
    return w / w.sum()


def _numpy_sw_pp(x, y, thetas, p):
    """Dense float64 reference for equal uniform clouds: mean over directions of the mean
    ``|sorted difference|^p`` (the 1-D optimal matching of equal uniform measures)."""
    px = np.sort(np.asarray(thetas, np.float64) @ np.asarray(x, np.float64).T, axis=1)
    py = np.sort(np.asarray(thetas, np.float64) @ np.asarray(y, np.float64).T, axis=1)
    return np.mean(np.abs(px - py) ** p, axis=1)


def _sharded(mesh, fn, n_args):
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P("data"),) * n_args, out_specs=P()))


@pytest.mark.parametrize("p", [2.0, 1.5])
@pytest.mark.parametrize("L", [16, 13], ids=["L16", "L13"])  # 13: padded to a multiple of 8
def test_sliced_sharded_equals_single_device(mesh, x64, p, L):
    x, y = _clouds(8 * N_DEVICES, 8 * N_DEVICES, jnp.float64)
    key = jax.random.key(2)
    single = sliced_wasserstein_with_error(key, x, y, n_projections=L, p=p)
    got = _sharded(
        mesh,
        lambda xs, ys: sliced_wasserstein_with_error(
            key, xs, ys, n_projections=L, p=p, axis_name="data"
        ),
        2,
    )(*shard(mesh, (x, y)))
    # The sorted projections are the same numbers up to the blocking of the d = 5 term dot
    # products (at most about d eps relative each); the terms and their mean follow: 1e-14
    # relative is 45 eps64.
    np.testing.assert_allclose(got.projected, single.projected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got.value, single.value, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got.std_error, single.std_error, rtol=1e-13, atol=0)
    # and an independent dense reference (sorted differences in NumPy float64)
    thetas = random_projections(key, L, D, jnp.float64)
    ref = _numpy_sw_pp(x, y, thetas, p)
    np.testing.assert_allclose(got.projected, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("case", ["unequal_uniform", "weighted"])
def test_sliced_sharded_other_paths(mesh, x64, case):
    # unequal sizes (merged quantile grid of the global sizes 64 vs 48) and given weights
    # (merge by sort; the weights are all-gathered in device order, like the points)
    n, m = 8 * N_DEVICES, 6 * N_DEVICES
    x, y = _clouds(n, m, jnp.float64, seed=1)
    thetas = random_projections(jax.random.key(4), 24, D, jnp.float64)
    if case == "weighted":
        a, b = jnp.asarray(_weights(n, 5)), jnp.asarray(_weights(m, 6))
        single = sliced_wasserstein(None, x, y, a, b, projections=thetas)
        got = _sharded(
            mesh,
            lambda xs, ys, aa, bb: sliced_wasserstein(
                None, xs, ys, aa, bb, projections=thetas, axis_name="data"
            ),
            4,
        )(*shard(mesh, (x, y, a, b)))
    else:
        single = sliced_wasserstein(None, x, y, projections=thetas)
        got = _sharded(
            mesh,
            lambda xs, ys: sliced_wasserstein(None, xs, ys, projections=thetas, axis_name="data"),
            2,
        )(*shard(mesh, (x, y)))
    # same sorted values, same arithmetic after the exchange: round-off of the d-term dots
    np.testing.assert_allclose(got, single, rtol=1e-14, atol=0)


def test_sliced_sharded_chunks_and_gradient(mesh, x64):
    # chunk_size=1 direction per device: 3 chunks of 8 directions for L = 20 (4 padded), run
    # by lax.map; the gradient with respect to the sharded points is the single-device one.
    x, y = _clouds(4 * N_DEVICES, 4 * N_DEVICES, jnp.float64, seed=2)
    key = jax.random.key(7)

    def loss(xs, ys, axis_name=None):
        return sliced_wasserstein(key, xs, ys, n_projections=20, chunk_size=1, axis_name=axis_name)

    val1, g1 = jax.value_and_grad(loss)(x, y)
    val8, g8 = jax.jit(
        jax.shard_map(
            jax.value_and_grad(lambda xs, ys: loss(xs, ys, "data")),
            mesh=mesh,
            in_specs=(P("data"), P("data")),
            out_specs=(P(), P("data")),
        )
    )(*shard(mesh, (x, y)))
    np.testing.assert_allclose(val8, val1, rtol=1e-14, atol=0)
    # each gradient row is (theta-weighted) sorted differences divided by L and SW: the same
    # numbers; 1e-13 absolute at entries of size ~0.05 allows the round-off of the 20-term sums
    np.testing.assert_allclose(gather(g8), g1, rtol=0, atol=1e-13)


def test_sliced_sharded_float32(mesh):
    x, y = _clouds(16 * N_DEVICES, 16 * N_DEVICES, jnp.float32, seed=3)
    key = jax.random.key(9)
    single = sliced_wasserstein(key, x, y, n_projections=32)
    got = _sharded(
        mesh, lambda xs, ys: sliced_wasserstein(key, xs, ys, n_projections=32, axis_name="data"), 2
    )(*shard(mesh, (x, y)))
    # float32: the same sorted values up to d-term dot-product blocking (a few eps32 each);
    # 1e-6 relative is 8 eps32
    np.testing.assert_allclose(got, single, rtol=1e-6, atol=0)


def test_sliced_sharded_collectives(mesh):
    # Per chunk: two all-to-alls (x and y projections) and one all-gather of the c * 8 terms;
    # no all-reduce.
    x, y = _clouds(8 * N_DEVICES, 8 * N_DEVICES, jnp.float32)
    key = jax.random.key(0)
    fn = _sharded(
        mesh, lambda xs, ys: sliced_wasserstein(key, xs, ys, n_projections=64, axis_name="data"), 2
    )
    hlo = fn.lower(*shard(mesh, (x, y))).compile().as_text()
    ops = re.findall(r" (all-reduce|reduce-scatter|all-gather|all-to-all)(?:-start)?\(", hlo)
    assert sorted(ops) == ["all-gather", "all-to-all", "all-to-all"], ops


def test_sliced_axis_name_outside_shard_map_is_named_error():
    x, y = _clouds(8, 8, jnp.float32)
    with pytest.raises(ValueError, match="`axis_name`"):
        sliced_wasserstein(jax.random.key(0), x, y, n_projections=4, axis_name="data")
    with pytest.raises(TypeError, match="`axis_name`"):
        sliced_wasserstein(jax.random.key(0), x, y, n_projections=4, axis_name=3)
