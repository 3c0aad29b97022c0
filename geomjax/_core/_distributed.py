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
