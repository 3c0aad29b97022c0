"""pytest plugin: start ``jax.distributed`` from the environment before any test touches JAX.

Load it with ``-p pytest_jax_distributed`` (``tests/multiprocess`` on ``PYTHONPATH``) in every
process of a multi-process test run, e.g. the ``multidevice`` suite as 2 processes x 4 devices
(``tests/multiprocess/test_multidevice_suite.py`` launches it):

    export XLA_FLAGS=--xla_force_host_platform_device_count=4 PYTHONPATH=tests/multiprocess
    export JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 JAX_NUM_PROCESSES=2
    JAX_PROCESS_ID=0 python -m pytest -p pytest_jax_distributed -p no:cacheprovider \
        -m multidevice tests/ & JAX_PROCESS_ID=1 python -m pytest ... ; wait

``pytest_configure`` runs before collection, hence before ``tests/_multidevice.py`` counts the
devices. Every process collects and runs the same tests in the same order, so they run the same
programs in the same order. Without ``JAX_NUM_PROCESSES`` (or with 1) the plugin does nothing.
Short timeouts: a process that fails to start or dies ends the others within seconds.
"""

from __future__ import annotations


def pytest_configure(config):
    from geomjax.distributed import initialize_from_env

    if initialize_from_env(initialization_timeout=120, heartbeat_timeout_seconds=20):
        import jax

        print(
            f"pytest_jax_distributed: process {jax.process_index()} of {jax.process_count()}, "
            f"{jax.local_device_count()} of {jax.device_count()} devices"
        )
