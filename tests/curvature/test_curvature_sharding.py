"""Curvature products and estimators with ``axis_name`` under ``jax.shard_map`` equal one device.

Run with 8 fake CPU devices (the flag must be set before jax is imported):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice \
        tests/curvature/test_curvature_sharding.py

Every test is marked ``multidevice`` (excluded from the default run) and skips with fewer than
8 devices. The parameters are replicated (``P()``), the batch is split over the mesh axis.
Inside ``shard_map`` the derivative with respect to a replicated input of a per-device value is
already summed over devices by JAX; these tests check that every product is the mean over the
full batch (not 8 times it) in both ``check_vma`` modes.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES, data_mesh, shard
from jax.sharding import PartitionSpec as P

from geomjax.curvature._fisher import empirical_fisher_vp, fisher_vp
from geomjax.curvature._ggn import ggn_vp
from geomjax.curvature._hutchinson import hutchinson_diag, hutchinson_trace
from geomjax.curvature._lanczos import top_eigenvalues

N_BATCH = 2 * N_DEVICES

pytestmark = MULTIDEVICE


@pytest.fixture
def mesh():
    return data_mesh()


@pytest.fixture
def setup(mlp64, mesh):
    m = mlp64
    x, labels, y = m.mlp_data(N_BATCH, seed=5)
    m.big = (x, labels, y)
    m.sharded = shard(mesh, (x, labels, y))
    m.v = m.random_like(m.params, 12)
    return m


def _run(mesh, local, m, check_vma=True):
    """``local(params, v, x, labels, y)`` on shards, params and v replicated."""
    fn = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(), P("data"), P("data"), P("data")),
        out_specs=P(),
        check_vma=check_vma,
    )
    return jax.jit(fn)(m.params, m.v, *m.sharded)


def _close(a, b, atol=1e-13):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, atol=atol)


@pytest.mark.parametrize("check_vma", [True, False], ids=["vma", "no_vma"])
def test_ggn_and_fisher_products_sharded(setup, mesh, check_vma):
    m = setup
    x, labels, y = m.big

    def local(p, v, xs, ls, ys):
        return (
            ggn_vp(m.mlp, m.cross_entropy, p, v, (xs, ls), axis_name="data"),
            ggn_vp(m.mlp, m.half_mse, p, v, (xs, ys), axis_name="data"),
            fisher_vp(m.mlp, p, v, xs, axis_name="data"),
            fisher_vp(m.mlp, p, v, xs, likelihood="gaussian", axis_name="data"),
        )

    sharded = _run(mesh, local, m, check_vma)
    single = (
        ggn_vp(m.mlp, m.cross_entropy, m.params, m.v, (x, labels)),
        ggn_vp(m.mlp, m.half_mse, m.params, m.v, (x, y)),
        fisher_vp(m.mlp, m.params, m.v, x),
        fisher_vp(m.mlp, m.params, m.v, x, likelihood="gaussian"),
    )
    _close(sharded, single)


def test_empirical_fisher_sharded(setup, mesh):
    m = setup
    x, labels, _ = m.big

    def per_example(p, xy):
        return -jax.nn.log_softmax(m.mlp_one(p, xy[0]))[xy[1]]

    def local(p, v, xs, ls, ys):
        return empirical_fisher_vp(per_example, p, v, (xs, ls), axis_name="data")

    _close(_run(mesh, local, m), empirical_fisher_vp(per_example, m.params, m.v, (x, labels)))


@pytest.mark.parametrize("check_vma", [True, False], ids=["vma", "no_vma"])
def test_hutchinson_sharded_same_key(setup, mesh, check_vma):
    # The same key on every device: the same probes, so the pmean of the local estimates is
    # the full-batch estimate; the gradient is the full-batch mean gradient.
    m = setup
    x, labels, _ = m.big
    key = jax.random.key(3)

    def loss(p, xs, ls):
        return m.cross_entropy(m.mlp(p, xs), ls)

    def local(p, v, xs, ls, ys):
        return (
            hutchinson_diag(loss, p, key, 3, xs, ls, axis_name="data"),
            hutchinson_trace(loss, p, key, 1, xs, ls, axis_name="data"),
        )

    diag, trace = _run(mesh, local, m, check_vma)
    _close(diag, hutchinson_diag(loss, m.params, key, 3, x, labels))
    _close(trace, hutchinson_trace(loss, m.params, key, 1, x, labels))
    _close(diag.grad, jax.grad(loss)(m.params, x, labels))


def test_lanczos_with_sharded_ggn_operator(setup, mesh):
    m = setup
    x, labels, _ = m.big
    key = jax.random.key(4)

    def local(p, v, xs, ls, ys):
        def mvp(u):
            return ggn_vp(m.mlp, m.cross_entropy, p, u, (xs, ls), axis_name="data")

        return top_eigenvalues(mvp, p, key, 3, 20).eigenvalues

    single_mvp = lambda u: ggn_vp(m.mlp, m.cross_entropy, m.params, u, (x, labels))  # noqa: E731
    single = top_eigenvalues(single_mvp, m.params, key, 3, 20).eigenvalues
    np.testing.assert_allclose(_run(mesh, local, m), single, rtol=1e-10)
