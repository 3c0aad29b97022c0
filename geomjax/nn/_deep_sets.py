"""NNX wrappers of the Deep Sets layer and the invariant Deep Sets model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.equivariant._deep_sets import (
    deep_sets,
    deep_sets_layer,
    init_deep_sets,
    init_deep_sets_layer,
)

__all__ = ["DeepSets", "DeepSetsLayer"]


def _values(params):
    return jax.tree.map(lambda v: v[...], params, is_leaf=lambda v: isinstance(v, nnx.Variable))


def _batched(f, x: Array, node_mask, core_ndim: int = 2):
    """Apply ``f(x, node_mask)`` written for one set to ``x`` with leading batch axes."""
    x = jnp.asarray(x)
    if node_mask is None:
        g = lambda a: f(a, None)  # noqa: E731
        for _ in range(x.ndim - core_ndim):
            g = jax.vmap(g)
        return g(x)
    node_mask = jnp.asarray(node_mask)
    g = f
    for _ in range(x.ndim - core_ndim):
        g = jax.vmap(g)
    return g(x, node_mask)


class DeepSetsLayer(nnx.Module):
    r"""Permutation-equivariant set layer ``sigma(X Gamma + 1 b^T - pool(X) Lambda)``.

    Holds :math:`\Gamma, \Lambda, b` as ``nnx.Param`` and calls
    :func:`geomjax.equivariant.deep_sets_layer`. Accepts one set ``(N, F)`` or a
    batch ``(..., N, F)`` (with a mask of shape ``(..., N)``).

    Args:
      in_features: features per input element.
      out_features: features per output element.
      pool: ``"mean"`` (default), ``"sum"`` or ``"max"``.
      activation: nonlinearity (default ReLU), ``None`` for a linear layer.
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: dtype of the parameters.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn._deep_sets import DeepSetsLayer
      >>> layer = DeepSetsLayer(3, 8, pool="max", rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((4, 5, 3)), node_mask=jnp.ones((4, 5), bool)).shape
      (4, 5, 8)

    References:
      M. Zaheer, S. Kottur, S. Ravanbakhsh, B. Poczos, R. Salakhutdinov, A. Smola, "Deep Sets",
      NeurIPS 2017, arXiv:1703.06114.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        pool: str = "mean",
        activation: Callable[[Array], Array] | None = jax.nn.relu,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        params = init_deep_sets_layer(rngs.params(), in_features, out_features, param_dtype)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))
        self.pool = pool
        self.activation = activation

    def __call__(self, x: ArrayLike, node_mask: ArrayLike | None = None) -> Array:
        """Apply to a set ``(N, F)`` or a batch ``(..., N, F)``; returns ``(..., N, F_out)``."""
        params = _values(self.params)
        f = lambda a, m: deep_sets_layer(  # noqa: E731
            params, a, pool=self.pool, node_mask=m, activation=self.activation
        )
        return _batched(f, x, node_mask)


class DeepSets(nnx.Module):
    r"""Permutation-invariant Deep Sets model ``rho(sum_i phi(x_i))``.

    Holds the MLP weights of :math:`\phi` and :math:`\rho` as ``nnx.Param`` and calls
    :func:`geomjax.equivariant.deep_sets`. Accepts one set ``(N, F)`` or a batch
    ``(..., N, F)``.

    Args:
      in_features: features per element.
      phi_features: layer sizes of :math:`\phi`.
      rho_features: layer sizes of :math:`\rho` (the last is the output size).
      pool: ``"sum"`` (default), ``"mean"`` or ``"max"``.
      activation: nonlinearity (default ReLU).
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: dtype of the parameters.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn._deep_sets import DeepSets
      >>> model = DeepSets(2, (16, 16), (16, 1), rngs=nnx.Rngs(0))
      >>> model(jnp.ones((8, 10, 2))).shape
      (8, 1)

    References:
      M. Zaheer, S. Kottur, S. Ravanbakhsh, B. Poczos, R. Salakhutdinov, A. Smola, "Deep Sets",
      NeurIPS 2017, arXiv:1703.06114.
    """

    def __init__(
        self,
        in_features: int,
        phi_features: Sequence[int] = (64, 64),
        rho_features: Sequence[int] = (64, 1),
        *,
        pool: str = "sum",
        activation: Callable[[Array], Array] | None = jax.nn.relu,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        params = init_deep_sets(rngs.params(), in_features, phi_features, rho_features, param_dtype)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))
        self.pool = pool
        self.activation = activation

    def __call__(self, x: ArrayLike, node_mask: ArrayLike | None = None) -> Array:
        """Apply to a set ``(N, F)`` or a batch ``(..., N, F)``; returns ``(..., F_out)``."""
        params = _values(self.params)
        f = lambda a, m: deep_sets(  # noqa: E731
            params, a, pool=self.pool, node_mask=m, activation=self.activation
        )
        return _batched(f, x, node_mask)
