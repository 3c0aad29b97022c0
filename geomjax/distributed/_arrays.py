"""A mesh over the devices of every process, process-local rows in, global values out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from geomjax._core import PyTree

__all__ = ["gather", "global_mesh", "shard_batch"]


def _axis_names(fn: str, axis_names) -> tuple[str, ...]:
    names = (axis_names,) if isinstance(axis_names, str) else axis_names
    if (
        not isinstance(names, (tuple, list))
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise TypeError(
            f"{fn}: argument `axis_names` must be a non-empty string or a sequence of distinct "
            f"non-empty strings; got {axis_names!r}"
        )
    return tuple(names)


def global_mesh(
    axis_names: str | Sequence[str] = "data",
    axis_shapes: Sequence[int] | None = None,
    *,
    axis_types: Sequence[jax.sharding.AxisType] | None = None,
) -> Mesh:
    r"""A mesh over the devices of all processes, each process's devices a contiguous block.

    The devices are ordered by (process index, device id) and reshaped to ``axis_shapes``, so
    along the flattened mesh process 0 holds the first block of devices, process 1 the next,
    and so on. With a leading axis sharded over the mesh, :func:`shard_batch` therefore places
    process :math:`p`'s rows at global rows :math:`[p\,n, (p + 1)\,n)` (``n`` rows per process):
    the global batch is the concatenation of the per-process batches in process order, as on one
    process with all the devices.

    Args:
      axis_names: one name (``"data"``) or a sequence of names.
      axis_shapes: sizes of the axes (ints >= 1 whose product is ``jax.device_count()``);
        ``None`` means ``(device_count,)`` for one name and ``(process_count,
        local_device_count)`` (hosts, devices) for two.
      axis_types: ``jax.sharding.AxisType`` per axis; ``None`` makes every axis ``Explicit``
        (``jax.make_mesh``'s default), so that ``jax.shard_map`` inputs must carry the sharding
        that ``in_specs`` names. Pass ``AxisType.Auto`` axes to let ``jax.jit`` propagate
        shardings (GSPMD) instead.

    Returns:
      A ``jax.sharding.Mesh`` of all ``jax.device_count()`` devices.

    Raises:
      TypeError: ``axis_names`` not a name or a sequence of distinct names, ``axis_types`` of
        the wrong length.
      ValueError: ``axis_shapes`` not ints >= 1, of another length than ``axis_names``, or whose
        product is not the device count; ``axis_shapes=None`` with three or more names.

    Examples:
      >>> from geomjax.distributed import global_mesh
      >>> mesh = global_mesh("data")
      >>> mesh.axis_names, mesh.devices.size == __import__("jax").device_count()
      (('data',), True)
    """
    fn = "global_mesh"
    names = _axis_names(fn, axis_names)
    n_dev = jax.device_count()
    if axis_shapes is None:
        if len(names) == 1:
            shapes = (n_dev,)
        elif len(names) == 2:
            shapes = (jax.process_count(), jax.local_device_count())
        else:
            raise ValueError(
                f"{fn}: argument `axis_shapes` is required for {len(names)} axis names; got None"
            )
    else:
        try:
            shapes = tuple(axis_shapes)
        except TypeError:
            shapes = None
        ok = (
            shapes is not None
            and len(shapes) == len(names)
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shapes)
            and all(s >= 1 for s in shapes)
            and math.prod(shapes) == n_dev
        )
        if not ok:
            raise ValueError(
                f"{fn}: argument `axis_shapes` must be {len(names)} int(s) >= 1 whose product is "
                f"the device count {n_dev}; got {axis_shapes!r}"
            )
        shapes = tuple(int(s) for s in shapes)
    if axis_types is None:
        types = (jax.sharding.AxisType.Explicit,) * len(names)
    else:
        types = tuple(axis_types)
        if len(types) != len(names) or not all(isinstance(t, jax.sharding.AxisType) for t in types):
            raise TypeError(
                f"{fn}: argument `axis_types` must hold one jax.sharding.AxisType per axis name "
                f"({len(names)}); got {axis_types!r}"
            )
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices, dtype=object).reshape(shapes), names, axis_types=types)


def _check_mesh_spec(fn: str, mesh, spec):
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{fn}: argument `mesh` must be a jax.sharding.Mesh (e.g. global_mesh()); got "
            f"{type(mesh).__name__}"
        )
    if spec is None:
        return PartitionSpec(mesh.axis_names if len(mesh.axis_names) > 1 else mesh.axis_names[0])
    if not isinstance(spec, PartitionSpec):
        raise TypeError(
            f"{fn}: argument `spec` must be a jax.sharding.PartitionSpec; got {type(spec).__name__}"
        )
    for entry in spec:
        for name in (entry,) if isinstance(entry, str) or entry is None else entry:
            if name is not None and name not in mesh.axis_names:
                raise ValueError(
                    f"{fn}: argument `spec` names axis {name!r}, not an axis of the mesh "
                    f"{mesh.axis_names}"
                )
    return spec


def shard_batch(local_rows: PyTree, mesh: Mesh, spec: PartitionSpec | None = None) -> PyTree:
    r"""Assemble global arrays from each process's rows (``jax.make_array_from_process_local_data``).

    Every process passes its own part of the batch (same shapes and dtypes in every process);
    each leaf becomes one global ``jax.Array`` with ``NamedSharding(mesh, spec)`` whose leading
    dimension is the sum of the processes' (for a :func:`global_mesh`, process :math:`p`'s rows
    come :math:`p`-th). With one process it is ``jax.device_put`` with that sharding.

    Args:
      local_rows: a pytree of arrays, this process's rows (NumPy or JAX arrays).
      mesh: a ``jax.sharding.Mesh`` over all processes' devices (:func:`global_mesh`).
      spec: the ``PartitionSpec`` of the global arrays; ``None`` shards the leading axis over
        all mesh axes (``P("data")`` for a 1-D mesh named ``"data"``).

    Returns:
      The pytree of global arrays (not fully addressable with several processes: read values
      with :func:`gather`, or inside jitted programs).

    Raises:
      TypeError: ``mesh`` not a Mesh, ``spec`` not a PartitionSpec, a leaf not array-like.
      ValueError: ``spec`` naming an axis the mesh lacks, a leaf with fewer dimensions than
        ``spec`` has entries, or rows that do not split over this process's devices.

    Examples:
      >>> import numpy as np
      >>> from jax.sharding import PartitionSpec as P
      >>> from geomjax.distributed import global_mesh, shard_batch
      >>> mesh = global_mesh("data")
      >>> x = shard_batch(np.arange(8.0).reshape(4, 2), mesh)
      >>> x.shape, x.sharding.spec == P("data")
      ((4, 2), True)
    """
    fn = "shard_batch"
    spec = _check_mesh_spec(fn, mesh, spec)
    sharding = NamedSharding(mesh, spec)

    def one(leaf):
        try:
            arr = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
        except Exception as err:  # re-raised with the argument named
            raise TypeError(
                f"{fn}: argument `local_rows` has a leaf that is not an array: {err}"
            ) from err
        if arr.dtype.kind not in "biufc":
            raise TypeError(
                f"{fn}: argument `local_rows` has a leaf that is not a numeric array; got "
                f"{type(leaf).__name__}"
            )
        if arr.ndim < len(spec):
            raise ValueError(
                f"{fn}: argument `local_rows` has a leaf of shape {arr.shape}, fewer dimensions "
                f"than `spec` {spec} has entries"
            )
        try:
            return jax.make_array_from_process_local_data(sharding, arr)
        except ValueError as err:
            raise ValueError(
                f"{fn}: argument `local_rows` has a leaf of shape {arr.shape} that does not "
                f"split over this process's devices with {spec}: {err}"
            ) from err

    return jax.tree.map(one, local_rows)


def gather(x: PyTree) -> PyTree:
    r"""The global value of every leaf, as NumPy arrays, in every process
    (``multihost_utils.process_allgather(x, tiled=True)``).

    A global ``jax.Array`` (sharded over the devices of several processes, or replicated) comes
    back whole. A process-local value (a NumPy array or a fully addressable ``jax.Array``, e.g.
    a per-process metric) is concatenated along axis 0 over processes in process order (scalars
    are stacked into shape ``(P,)``). With one process it is ``np.asarray`` of each leaf
    (shapes unchanged, scalars included).

    It is a collective: every process must call it with the same pytree structure, shapes and
    dtypes.

    Args:
      x: a pytree of arrays.

    Returns:
      The pytree of NumPy arrays.

    Raises:
      TypeError: a leaf that is not array-like.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.distributed import gather, global_mesh, shard_batch
      >>> x = shard_batch(jnp.ones((4, 2)), global_mesh("data"))
      >>> gather(x).sum()
      np.float32(8.0)
    """
    fn = "gather"
    for leaf in jax.tree.leaves(x):
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, complex, bool)):
            raise TypeError(
                f"{fn}: argument `x` must be a pytree of arrays; got a leaf of type "
                f"{type(leaf).__name__}"
            )
    return multihost_utils.process_allgather(x, tiled=True)
