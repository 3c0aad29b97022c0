"""Start JAX's multi-process runtime from environment variables (a no-op for one process)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping

import jax

__all__ = ["initialize_from_env"]

#: Environment variables read by :func:`initialize_from_env` (the first and the last are JAX's
#: own names; ``jax.distributed.initialize`` reads them too).
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
ENV_LOCAL_DEVICE_IDS = "JAX_LOCAL_DEVICE_IDS"

#: Launchers whose variables ``jax.distributed.initialize`` detects by itself (Slurm, Open MPI):
#: the variable holding the number of processes of each.
_CLUSTER_SIZE_VARS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def _env_int(fn: str, env: Mapping[str, str], name: str, lo: int) -> int:
    raw = env.get(name)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < lo:
        raise ValueError(f"{fn}: environment variable `{name}` must be an int >= {lo}; got {raw!r}")
    return value


def _check_timeout(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: argument `{name}` must be an int >= 1 (seconds); got {value!r}")
    return value


def initialize_from_env(
    *,
    initialization_timeout: int = 300,
    heartbeat_timeout_seconds: int = 100,
    environ: Mapping[str, str] | None = None,
) -> bool:
    r"""Start ``jax.distributed`` from environment variables; a no-op for a single process.

    Reads

    * ``JAX_NUM_PROCESSES``: the number of processes :math:`P` (unset or ``1``: one process,
      nothing is started);
    * ``JAX_PROCESS_ID``: this process's rank in :math:`0, \dots, P - 1`;
    * ``JAX_COORDINATOR_ADDRESS``: ``host:port`` of process 0's coordinator service (the same
      string in every process);
    * ``JAX_LOCAL_DEVICE_IDS`` (optional, read by JAX itself): comma-separated ids of the local
      accelerators this process uses (e.g. ``0`` and ``1`` for two processes on one 2-GPU host).

    and calls ``jax.distributed.initialize`` with them. Without ``JAX_NUM_PROCESSES`` but under
    a launcher that JAX detects (Slurm's ``SLURM_NTASKS`` or Open MPI's ``OMPI_COMM_WORLD_SIZE``
    greater than 1) it calls ``jax.distributed.initialize`` with auto-detection. Calling it
    again once the runtime is up does nothing. It must run before the first computation or
    device query (``jax.devices()``) of the process, as ``jax.distributed.initialize`` must.

    After it, every process sees all :math:`P \times` (local devices) devices in
    ``jax.devices()``; every process must then run the same jitted programs in the same order
    (:func:`global_mesh`, :func:`shard_batch`, :func:`gather`).

    A process that dies leaves the others blocked in their next collective until the
    coordination service notices the missing heartbeats (``heartbeat_timeout_seconds``); they
    then abort. Short timeouts (a few seconds) suit tests on one machine; the JAX defaults
    (300 s to connect, 100 s of missing heartbeats) suit clusters.

    Args:
      initialization_timeout: seconds to wait for all processes to connect (int >= 1).
      heartbeat_timeout_seconds: seconds without heartbeats after which a process counts as
        dead (int >= 1; passed only where the installed JAX has that argument).
      environ: the variables to read (default ``os.environ``).

    Returns:
      True when the multi-process runtime is running (started now or before), False for a
      single process.

    Raises:
      ValueError: ``JAX_NUM_PROCESSES`` or ``JAX_PROCESS_ID`` not an int in range,
        ``JAX_COORDINATOR_ADDRESS`` missing or not ``host:port``, or a timeout not an int >= 1.
      RuntimeError: from ``jax.distributed.initialize`` (e.g. called after the backend started,
        or the coordinator not reachable within ``initialization_timeout``).

    Examples:
      One process (no variables set): nothing is started.

      >>> from geomjax.distributed import initialize_from_env
      >>> initialize_from_env(environ={})
      False

      Two processes on one machine (run each command in its own shell; shown, not run here):

      .. code-block:: bash

         export JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 JAX_NUM_PROCESSES=2
         JAX_PROCESS_ID=0 python train.py & JAX_PROCESS_ID=1 python train.py
    """
    fn = "initialize_from_env"
    initialization_timeout = _check_timeout(fn, "initialization_timeout", initialization_timeout)
    heartbeat_timeout_seconds = _check_timeout(
        fn, "heartbeat_timeout_seconds", heartbeat_timeout_seconds
    )
    env = os.environ if environ is None else environ
    if jax.distributed.is_initialized():
        return True
    kwargs = {"initialization_timeout": initialization_timeout}
    if "heartbeat_timeout_seconds" in inspect.signature(jax.distributed.initialize).parameters:
        kwargs["heartbeat_timeout_seconds"] = heartbeat_timeout_seconds
    if env.get(ENV_NUM_PROCESSES) in (None, ""):
        for var in _CLUSTER_SIZE_VARS:
            if env.get(var, "").strip().isdigit() and int(env[var]) > 1:
                jax.distributed.initialize(**kwargs)
                return True
        return False
    n = _env_int(fn, env, ENV_NUM_PROCESSES, 1)
    if n == 1:
        return False
    rank = _env_int(fn, env, ENV_PROCESS_ID, 0)
    if rank >= n:
        raise ValueError(
            f"{fn}: environment variable `{ENV_PROCESS_ID}` must be < {ENV_NUM_PROCESSES} = {n}; "
            f"got {rank}"
        )
    address = env.get(ENV_COORDINATOR, "")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"{fn}: environment variable `{ENV_COORDINATOR}` must be host:port (the coordinator, "
            f"process 0) with {ENV_NUM_PROCESSES} = {n}; got {address!r}"
        )
    local = env.get(ENV_LOCAL_DEVICE_IDS)
    if local:
        try:
            kwargs["local_device_ids"] = [int(s) for s in local.split(",")]
        except ValueError:
            raise ValueError(
                f"{fn}: environment variable `{ENV_LOCAL_DEVICE_IDS}` must be comma-separated "
                f"ints; got {local!r}"
            ) from None
    jax.distributed.initialize(
        coordinator_address=address, num_processes=n, process_id=rank, **kwargs
    )
    return True
