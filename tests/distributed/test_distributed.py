"""geomjax.distributed in one process: the no-op start, the mesh layout, global arrays in and out.

The multi-process behaviour (2 processes x 4 devices) is tested by ``tests/multiprocess``; the
8-device layout by the ``multidevice`` tests at the end of this file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _multidevice import MULTIDEVICE, N_DEVICES
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from geomjax.distributed import gather, global_mesh, initialize_from_env, shard_batch

# -- initialize_from_env ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{}, {"JAX_NUM_PROCESSES": "1"}, {"JAX_NUM_PROCESSES": ""}, {"SLURM_NTASKS": "1"}],
    ids=["empty", "one-process", "empty-string", "slurm-one-task"],
)
def test_initialize_from_env_is_a_noop_for_one_process(env):
    assert initialize_from_env(environ=env) is False
    assert not jax.distributed.is_initialized()


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES"),
        ({"JAX_NUM_PROCESSES": "0"}, "JAX_NUM_PROCESSES"),
        ({"JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1"}, "JAX_PROCESS_ID"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "JAX_PROCESS_ID"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "JAX_COORDINATOR_ADDRESS"),
        (
            {
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": "0",
                "JAX_COORDINATOR_ADDRESS": "localhost",
            },
            "JAX_COORDINATOR_ADDRESS",
        ),
        (
            {
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": "0",
                "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234",
                "JAX_LOCAL_DEVICE_IDS": "0,a",
            },
            "JAX_LOCAL_DEVICE_IDS",
        ),
    ],
)
def test_initialize_from_env_bad_variables_are_named(env, variable):
    # every check runs before jax.distributed.initialize is called: nothing is started
    with pytest.raises(ValueError, match=f"`{variable}`"):
        initialize_from_env(environ=env)
    assert not jax.distributed.is_initialized()


@pytest.mark.parametrize("name", ["initialization_timeout", "heartbeat_timeout_seconds"])
@pytest.mark.parametrize("value", [0, -5, 2.5, True, "10"])
def test_initialize_from_env_bad_timeouts(name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        initialize_from_env(environ={}, **{name: value})


# -- global_mesh --------------------------------------------------------------------------------


def test_global_mesh_defaults():
    n = jax.device_count()
    mesh = global_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.shape == (n,)
    assert mesh.axis_types == (AxisType.Explicit,)
    two = global_mesh(("hosts", "devices"))
    assert two.devices.shape == (jax.process_count(), jax.local_device_count())
    auto = global_mesh("x", axis_types=(AxisType.Auto,))
    assert auto.axis_types == (AxisType.Auto,)
    # process-major: process 0's devices first, then by id
    flat = list(mesh.devices.flat)
    assert flat == sorted(flat, key=lambda d: (d.process_index, d.id))


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(axis_names=""), TypeError, "axis_names"),
        (dict(axis_names=("a", "a")), TypeError, "axis_names"),
        (dict(axis_names=("a", 1)), TypeError, "axis_names"),
        (dict(axis_names=()), TypeError, "axis_names"),
        (dict(axis_names=("a", "b", "c")), ValueError, "axis_shapes"),
        (dict(axis_shapes=(0,)), ValueError, "axis_shapes"),
        (dict(axis_shapes=(1, 1)), ValueError, "axis_shapes"),
        (dict(axis_shapes=(2.0,)), ValueError, "axis_shapes"),
        (dict(axis_shapes=3), ValueError, "axis_shapes"),
        (dict(axis_shapes=(10_000,)), ValueError, "axis_shapes"),
        (dict(axis_types=("auto",)), TypeError, "axis_types"),
        (dict(axis_types=(AxisType.Auto, AxisType.Auto)), TypeError, "axis_types"),
    ],
)
def test_global_mesh_errors(kwargs, error, name):
    with pytest.raises(error, match=f"`{name}`"):
        global_mesh(**kwargs)


# -- shard_batch and gather ---------------------------------------------------------------------


def test_shard_batch_and_gather_round_trip():
    mesh = global_mesh()
    n = jax.device_count()
    x = np.arange(4.0 * n * 3, dtype=np.float32).reshape(4 * n, 3)
    labels = np.arange(4 * n, dtype=np.int32)
    xs, ls = shard_batch((x, labels), mesh)
    assert xs.sharding.spec == P("data") and xs.shape == x.shape
    assert ls.dtype == jnp.int32
    back = gather({"x": xs, "labels": ls})
    assert isinstance(back["x"], np.ndarray)
    np.testing.assert_array_equal(back["x"], x)  # a copy: bitwise
    np.testing.assert_array_equal(back["labels"], labels)
    rep = shard_batch(np.ones(3, np.float32), mesh, P())
    assert rep.sharding.is_fully_replicated
    np.testing.assert_array_equal(gather(rep), np.ones(3))
    assert gather(np.float32(2.0)).shape == ()  # one process: shapes unchanged


@pytest.mark.parametrize(
    "args, error, name",
    [
        ((np.ones(4), "mesh"), TypeError, "mesh"),
        ((np.ones(4), None), TypeError, "mesh"),
        ((np.ones(4), "MESH", "spec"), TypeError, "spec"),
        ((np.ones(4), "MESH", P("model")), ValueError, "spec"),
        ((np.float32(1.0), "MESH", P("data")), ValueError, "local_rows"),
        ((np.ones((4, 2)), "MESH", P("data", None, None)), ValueError, "local_rows"),
        ((["a", "b"], "MESH"), TypeError, "local_rows"),
        ((object(), "MESH"), TypeError, "local_rows"),
    ],
)
def test_shard_batch_errors(args, error, name):
    mesh = global_mesh()
    args = tuple(mesh if isinstance(a, str) and a == "MESH" else a for a in args)
    with pytest.raises(error, match=f"`{name}`"):
        shard_batch(*args)


def test_gather_rejects_non_arrays():
    with pytest.raises(TypeError, match="`x`"):
        gather({"a": "text"})


# -- 8 devices ----------------------------------------------------------------------------------


@pytest.mark.multidevice
@pytest.mark.skipif(jax.device_count() < N_DEVICES, reason=MULTIDEVICE[1].kwargs["reason"])
def test_eight_devices_layout_and_uneven_rows():
    mesh = global_mesh()
    assert mesh.devices.shape == (N_DEVICES,)
    assert [d.id for d in mesh.devices.flat] == sorted(d.id for d in jax.devices())
    two = global_mesh(("a", "b"), (2, 4))
    rows = np.arange(16.0).reshape(8, 2)
    k, i = jax.process_count(), jax.process_index()  # also run as 2 processes x 4 devices
    x = shard_batch(rows[i * 8 // k : (i + 1) * 8 // k], two)  # this process's rows
    assert x.sharding.spec == P(("a", "b"))
    np.testing.assert_array_equal(gather(x), rows)
    # 3 rows per process do not split over its devices: a named error, not a JAX traceback
    with pytest.raises(ValueError, match="`local_rows`"):
        shard_batch(np.ones((3, 2)), mesh)
