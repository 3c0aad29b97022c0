"""``ManifoldParam``: an ``nnx.Param`` that lives on a manifold, and ``manifold_tree``.

The manifold rides along as Variable metadata, so ``nnx.state(model, nnx.Param)`` keeps it and
:func:`manifold_tree` can rebuild the ``manifolds`` pytree that
:func:`geomjax.optim.riemannian_adam` / :func:`~geomjax.optim.riemannian_sgd` expect::

    optimizer = nnx.Optimizer(
        model, riemannian_adam(1e-2, manifolds=manifold_tree(model)), wrt=nnx.Param
    )
    optimizer.update(model, grads)   # nnx.Optimizer passes params to tx.update

Flax stores Variable metadata in the pytree *definition* (static, compared and hashed by
``jax.jit``). A manifold with array leaves (a curvature stored as a jax array) is neither
hashable nor comparable with ``==``, so the metadata holds a small hashable wrapper that
compares manifolds by type, static fields and leaf values; ``ManifoldParam.manifold`` returns the
manifold itself.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx

from geomjax._core import PyTree
from geomjax.manifolds._base import Manifold

__all__ = ["ManifoldParam", "manifold_tree"]


class _StaticManifold:
    """Hashable, ``==``-comparable holder of a manifold for Variable metadata (private)."""

    __slots__ = ("manifold", "_key")

    def __init__(self, manifold: Manifold):
        self.manifold = manifold
        leaves, treedef = jax.tree_util.tree_flatten(manifold)
        try:
            arrays = [np.asarray(leaf) for leaf in leaves]
            self._key = (treedef, tuple((a.dtype.str, a.shape, a.tobytes()) for a in arrays))
        except (
            TypeError,
            jax.errors.ConcretizationTypeError,
            jax.errors.TracerArrayConversionError,
        ):
            # traced leaves (manifold built under a transform): fall back to identity
            self._key = ("id", id(manifold))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _StaticManifold) and self._key == other._key

    def __repr__(self) -> str:
        return repr(self.manifold)


def _as_static(fn: str, manifold: Any) -> _StaticManifold:
    if isinstance(manifold, _StaticManifold):
        return manifold
    if not isinstance(manifold, Manifold):
        raise TypeError(
            f"{fn}: argument `manifold` must be a geomjax Manifold instance; "
            f"got {type(manifold).__name__}"
        )
    return _StaticManifold(manifold)


class ManifoldParam(nnx.Param):
    """A trainable parameter constrained to a manifold (an ``nnx.Param`` subclass).

    ``value`` has shape ``batch_shape + manifold.point_shape``: each of its rows is one point
    (an embedding table of ``N`` points in a ``d``-ball is one ``(N, d)`` parameter). It is an
    ``nnx.Param``, so ``nnx.state(model, nnx.Param)``, ``nnx.grad`` and ``nnx.Optimizer(...,
    wrt=nnx.Param)`` include it; the manifold is carried as metadata (``manifold=``) and read
    back by :func:`manifold_tree` for the Riemannian optimizers. The value is *not* projected:
    pass a point on the manifold.

    Args:
      value: initial point(s), shape ``batch_shape + manifold.point_shape``.
      manifold: a :class:`~geomjax.manifolds._base.Manifold` instance.
      **metadata: further ``nnx.Variable`` metadata (e.g. sharding).

    Raises:
      TypeError: ``manifold`` is not a Manifold.
      ValueError: the trailing dims of ``value`` differ from ``manifold.point_shape``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.manifolds._poincare import PoincareBall
      >>> from geomjax.nn import ManifoldParam, manifold_tree
      >>> class Model(nnx.Module):
      ...     def __init__(self):
      ...         self.points = ManifoldParam(jnp.zeros((4, 2)), manifold=PoincareBall(2))
      ...         self.bias = nnx.Param(jnp.zeros(3))
      >>> model = Model()
      >>> model.points.manifold
      PoincareBall(dim=2, c=1.0)
      >>> tree = manifold_tree(model)
      >>> tree["bias"] is None, tree["points"]
      (True, PoincareBall(dim=2, c=1.0))
    """

    def __init__(self, value: Any, manifold: Manifold | None = None, **metadata: Any):
        fn = "ManifoldParam"
        if manifold is None:
            raise TypeError(f"{fn}: argument `manifold` is required (a geomjax Manifold)")
        static = _as_static(fn, manifold)
        shape = tuple(getattr(value, "shape", np.shape(value)))
        ps = tuple(static.manifold.point_shape)
        if len(shape) < len(ps) or shape[len(shape) - len(ps) :] != ps:
            raise ValueError(
                f"{fn}: argument `value` must have shape batch_shape + {ps} for "
                f"{type(static.manifold).__name__}; got shape {shape}"
            )
        super().__init__(value, manifold=static, **metadata)

    @property
    def manifold(self) -> Manifold:
        """The manifold this parameter lives on."""
        return self.get_metadata("manifold").manifold


def _manifold_of(v: Any) -> Manifold | None:
    if isinstance(v, nnx.Variable):
        static = v.get_metadata().get("manifold")
        if isinstance(static, _StaticManifold):
            return static.manifold
        if isinstance(static, Manifold):
            return static
    return None


def manifold_tree(module_or_state: nnx.Module | PyTree, wrt: Any = nnx.Param) -> PyTree:
    """The ``manifolds`` pytree for the Riemannian optimizers, read off a model's parameters.

    Mirrors ``nnx.state(model, wrt)``: each ``Variable`` is replaced by its manifold (for a
    :class:`ManifoldParam`) or ``None`` (plain parameters, treated as Euclidean). The result is
    what ``riemannian_adam(..., manifolds=...)`` needs when used through
    ``nnx.Optimizer(model, tx, wrt=wrt)`` (same ``wrt``).

    Args:
      module_or_state: an ``nnx.Module`` (its ``nnx.state(module, wrt)`` is used) or a pytree
        of ``nnx.Variable``\\ s such as ``nnx.state(model, nnx.Param)``.
      wrt: the ``nnx`` filter selecting the optimised variables, as passed to ``nnx.Optimizer``
        (used only when a Module is given).

    Returns:
      A pytree with the containers of the state and leaves ``Manifold`` or ``None``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.manifolds._euclidean import Euclidean
      >>> from geomjax.nn import ManifoldParam, manifold_tree
      >>> state = nnx.State({"a": ManifoldParam(jnp.zeros(3), manifold=Euclidean(3)),
      ...                    "b": nnx.Param(jnp.ones(2))})
      >>> manifold_tree(state)["a"]
      Euclidean(shape=(3,))
    """
    state = (
        nnx.state(module_or_state, wrt)
        if isinstance(module_or_state, nnx.Module)
        else module_or_state
    )
    return jax.tree.map(_manifold_of, state, is_leaf=lambda v: isinstance(v, nnx.Variable))
