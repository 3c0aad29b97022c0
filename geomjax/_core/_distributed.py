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
