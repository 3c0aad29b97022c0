"""Multi-process geomjax: thin helpers over JAX's distributed runtime.

Every reduction in geomjax takes an ``axis_name`` and runs inside ``jax.shard_map``; on a mesh
that spans several processes (hosts, or one process per GPU) the same code runs unchanged, with
the collectives crossing processes. These helpers do the surrounding steps:

* :func:`initialize_from_env`: start ``jax.distributed`` from ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (a no-op for one process);
* :func:`global_mesh`: a mesh over all processes' devices, process-major;
* :func:`shard_batch`: global arrays from each process's rows;
* :func:`gather`: global values back as NumPy arrays in every process.

Every process must run the same jitted programs in the same order, and replicated randomness
(Hutchinson probes, slicing directions) needs the same key in every process. ``geomjax.distributed``
depends on ``geomjax._core`` only.
"""

from geomjax.distributed._arrays import gather, global_mesh, shard_batch
from geomjax.distributed._runtime import initialize_from_env

__all__ = ["gather", "global_mesh", "initialize_from_env", "shard_batch"]
