"""Reductions over a named device axis that fall back to the identity without one."""

from __future__ import annotations

import jax

from geomjax._core._typing import PyTree


def pmean_if(x: PyTree, axis_name: str | None) -> PyTree:
    """``jax.lax.pmean(x, axis_name)`` inside ``shard_map``/``pmap``; ``x`` when ``axis_name`` is None."""
    if axis_name is None:
        return x
    return jax.lax.pmean(x, axis_name)


def psum_if(x: PyTree, axis_name: str | None) -> PyTree:
    """``jax.lax.psum(x, axis_name)`` inside ``shard_map``/``pmap``; ``x`` when ``axis_name`` is None."""
    if axis_name is None:
        return x
    return jax.lax.psum(x, axis_name)


def all_gather_invariant(x, axis_name: str, *, tiled: bool = False):
    """``jax.lax.all_gather`` whose result is typed invariant (replicated) over ``axis_name``,
    like a ``psum``, so that replicated outputs stay replicated (``out_specs=P()``).

    ``jax.lax.all_gather(..., to=...)`` spells it ``"invarying"`` in JAX 0.10; other spellings
    are tried, and without any the slices are placed in zeros and summed with ``psum`` (the
    same values, twice the bytes).
    """
    for to in ("invarying", "invariant"):
        try:
            return jax.lax.all_gather(x, axis_name, tiled=tiled, to=to)
        except (TypeError, ValueError):
            continue
    n, r = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)  # pragma: no cover
    full = jax.numpy.zeros((n,) + x.shape, x.dtype).at[r].set(x)  # pragma: no cover
    full = jax.lax.psum(full, axis_name)  # pragma: no cover
    return full.reshape((n * x.shape[0],) + x.shape[1:]) if tiled else full  # pragma: no cover


def _varying_axes(x) -> frozenset:
    """Mapped axes over which ``x`` varies (``aval.vma``; ``aval.mat.varying`` in jax 0.10)."""
    aval = jax.typeof(x)
    vma = getattr(aval, "vma", None)
    if vma is None:
        vma = getattr(getattr(aval, "mat", None), "varying", None)
    return frozenset(vma or ())


def match_varying(x, like):
    """Mark ``x`` as varying over the mapped axes over which ``like`` varies (inside
    ``shard_map``; a no-op elsewhere).

    A ``custom_jvp`` rule must return a tangent whose type matches its primal output. When an
    invariant (replicated) primal meets a tangent that varies over a device axis (a per-shard
    direction), the primal output is cast to varying first, as JAX's built-in rules do.
    """
    extra = tuple(sorted(_varying_axes(like) - _varying_axes(x)))
    if not extra:
        return x
    return jax.lax.pcast(x, extra, to="varying")


def vary_if(tree: PyTree, axis_name: str | None) -> PyTree:
    """Mark every leaf of ``tree`` as varying over ``axis_name`` (a no-op when it is None).

    Inside ``jax.shard_map`` with varying-axis checking (the default), the derivative with
    respect to a replicated (invariant) input of a per-device (varying) output is already summed
    over devices: the transpose of the implicit ``pvary`` is a ``psum``. Differentiating at a
    varying copy of the parameters keeps every product local to its shard instead, so one
    explicit ``pmean`` afterwards gives the average over devices in every mode (``shard_map``
    with or without ``check_vma``, ``pmap``).
    """
    if axis_name is None:
        return tree
    names = (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)

    def cast(x):
        extra = tuple(n for n in names if n not in _varying_axes(x))
        return jax.lax.pcast(x, extra, to="varying") if extra else x

    return jax.tree.map(cast, tree)
