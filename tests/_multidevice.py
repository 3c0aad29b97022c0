"""Scaffolding shared by the multi-device tests (``tests/**/test_*sharding.py``).

They run with 8 fake CPU devices; the flag must be set before jax is imported:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -m multidevice tests/

or as 2 processes of 4 devices each on ``jax.distributed`` (the plugin
``tests/multiprocess/pytest_jax_distributed.py`` starts it from the environment before any test
runs; ``tests/multiprocess/test_multidevice_suite.py`` launches both):

    export XLA_FLAGS=--xla_force_host_platform_device_count=4 PYTHONPATH=tests/multiprocess
    export JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 JAX_NUM_PROCESSES=2
    JAX_PROCESS_ID=0 python -m pytest -p pytest_jax_distributed -p no:cacheprovider \
        -m multidevice tests/ & JAX_PROCESS_ID=1 python -m pytest ... ; wait

Then a sharded output spans devices of both processes and cannot be read with ``np.asarray``:
read it with :func:`gather` (replicated outputs, ``out_specs=P()``, read as usual).

Each such module sets ``pytestmark = MULTIDEVICE``: marked ``multidevice`` (excluded from the
default run) and skipped with fewer than 8 devices. (Importable as ``_multidevice`` because
pytest puts ``tests/`` on ``sys.path`` to load ``tests/conftest.py``.)
"""

from __future__ import annotations

import jax
import pytest
from jax.sharding import PartitionSpec as P

N_DEVICES = 8

MULTIDEVICE = [
    pytest.mark.multidevice,
    pytest.mark.skipif(
        jax.device_count() < N_DEVICES,
        reason=(
            f"needs {N_DEVICES} devices; run with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=8 set before jax is imported"
        ),
    ),
]


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over the 8 devices, axis ``"data"``. (jax >= 0.7 makes mesh axes Explicit by
    default: inputs must carry the sharding that ``in_specs`` names, see :func:`shard`.)"""
    return jax.make_mesh((N_DEVICES,), ("data",))


def shard(mesh: jax.sharding.Mesh, tree):
    """Place every leaf of ``tree`` split along axis 0 over the mesh axis ``"data"`` (every
    process passes the same whole value)."""
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, P("data")))


def gather(tree):
    """The global value of every leaf as NumPy arrays, also when the suite runs as several
    processes (``geomjax.distributed.gather``)."""
    from geomjax.distributed import gather as gather_global

    return gather_global(tree)
