"""Private pytree helpers shared by the curvature products (not public API)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import PyTree
from geomjax._core._tree_linalg import tree_vdot  # noqa: F401  (re-exported for the curvature modules)


def check_like(fn: str, name: str, tree: PyTree, like_name: str, like: PyTree) -> PyTree:
    """Require ``tree`` to have the structure and leaf shapes of ``like``; cast to its dtypes.

    Raises:
      ValueError: naming ``name`` when the structure or a leaf shape differs.
      TypeError: naming ``name`` when a leaf is not real floating (integer, bool, complex).
    """
    leaves_t, def_t = jax.tree.flatten(tree)
    leaves_l, def_l = jax.tree.flatten(like)
    shapes_t = [jnp.shape(a) for a in leaves_t]
    shapes_l = [jnp.shape(a) for a in leaves_l]
    if def_t != def_l or shapes_t != shapes_l:
        raise ValueError(
            f"{fn}: argument `{name}` must have the pytree structure and leaf shapes of "
            f"`{like_name}`; got {def_t} {shapes_t} vs {def_l} {shapes_l}"
        )
    check_float_leaves(fn, name, tree, allow_empty=True)
    return jax.tree.map(lambda t, p: jnp.asarray(t, _float(p)), tree, like)


def check_callable(fn: str, name: str, f) -> None:
    """Require ``f`` to be callable (TypeError naming ``name`` otherwise)."""
    if not callable(f):
        raise TypeError(f"{fn}: argument `{name}` must be callable; got {type(f).__name__}")


def scalar_valued(fn: str, name: str, f):
    """``f`` wrapped to require, at trace time, a real floating scalar output.

    Raises (when the wrapper is traced or called):
      ValueError / TypeError: naming ``name`` for a non-scalar or non-floating output.
    """
    check_callable(fn, name, f)

    def wrapped(*args, **kwargs):
        out = f(*args, **kwargs)
        shape = getattr(out, "shape", None)
        if shape is None and not isinstance(out, (int, float)):
            raise TypeError(
                f"{fn}: argument `{name}` must return a real floating scalar; got "
                f"{type(out).__name__}"
            )
        if jnp.shape(out) != ():
            raise ValueError(
                f"{fn}: argument `{name}` must return a scalar; got shape {jnp.shape(out)}"
            )
        if not jnp.issubdtype(jnp.result_type(out), jnp.floating):
            raise TypeError(
                f"{fn}: argument `{name}` must return a real floating scalar; got dtype "
                f"{jnp.result_type(out)}"
            )
        return out

    return wrapped


def check_float_leaves(fn: str, name: str, tree: PyTree, allow_empty: bool = False) -> None:
    """Require every leaf of ``tree`` to have a real floating dtype (and at least one leaf)."""
    leaves = jax.tree.leaves(tree)
    if not leaves and not allow_empty:
        raise ValueError(f"{fn}: argument `{name}` must have at least one array leaf; got {tree!r}")
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{fn}: every leaf of argument `{name}` must have a real floating dtype; "
                f"got {dtype}"
            )


def _float(x):
    dtype = jnp.result_type(x)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)
