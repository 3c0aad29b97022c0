"""NNX wrappers of the EGNN layer and model (geomjax.equivariant._egnn)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike, check_option
from geomjax.equivariant._egnn import egnn, egnn_layer, init_egnn, init_egnn_layer

__all__ = ["EGNN", "EGNNLayer"]


def _values(tree):
    return jax.tree.map(lambda v: v[...], tree, is_leaf=lambda v: isinstance(v, nnx.Variable))


class _EGNNOptions:
    """Per-layer options of :func:`~geomjax.equivariant._egnn.egnn_layer`, stored as static fields."""

    def _set_options(
        self, residual, normalize, epsilon, tanh, coords_range, coords_agg, clamp, act
    ):
        check_option(type(self).__name__, "coords_agg", coords_agg, ("mean", "sum"))
        self.options = dict(
            residual=residual,
            normalize=normalize,
            epsilon=epsilon,
            tanh=tanh,
            coords_range=coords_range,
            coords_agg=coords_agg,
            clamp=clamp,
            act=act,
        )


class EGNNLayer(nnx.Module, _EGNNOptions):
    r"""E(n)-equivariant graph convolutional layer (E_GCL, or E_GCL_vel with ``velocity=True``).

    Holds the parameters of :func:`geomjax.equivariant._egnn.init_egnn_layer` as ``nnx.Param``
    leaves in the same nested-dict layout (``self.params``) and calls
    :func:`geomjax.equivariant._egnn.egnn_layer`, whose docstring gives the equations.

    Args:
      node_dim, edge_dim, hidden_dim: feature, edge attribute and message sizes.
      out_dim: node output size (default ``node_dim``).
      attention, velocity, coord_gain: as in ``init_egnn_layer``.
      residual, normalize, epsilon, tanh, coords_range, coords_agg, clamp, act: the options of
        ``egnn_layer``.
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: parameter dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn._egnn import EGNNLayer
      >>> from geomjax.equivariant._graph import fully_connected_graph
      >>> layer = EGNNLayer(4, 0, 16, rngs=nnx.Rngs(0))
      >>> s, r = fully_connected_graph(5)
      >>> h, x = layer(jnp.ones((5, 4)), jax.random.normal(jax.random.key(1), (5, 3)), s, r)
      >>> h.shape, x.shape
      ((5, 4), (5, 3))

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021, arXiv:2102.09844.
    """

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        hidden_dim: int,
        *,
        out_dim: int | None = None,
        attention: bool = False,
        velocity: bool = False,
        coord_gain: float = 0.001,
        residual: bool = True,
        normalize: bool = False,
        epsilon: float = 1e-8,
        tanh: bool = False,
        coords_range: float = 1.0,
        coords_agg: str = "mean",
        clamp: float | None = None,
        act: Callable[[Array], Array] = jax.nn.silu,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self._set_options(residual, normalize, epsilon, tanh, coords_range, coords_agg, clamp, act)
        params = init_egnn_layer(
            rngs.params(),
            node_dim,
            edge_dim,
            hidden_dim,
            out_dim=out_dim,
            attention=attention,
            velocity=velocity,
            coord_gain=coord_gain,
            dtype=param_dtype,
        )
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def __call__(
        self,
        h: ArrayLike,
        x: ArrayLike,
        senders: ArrayLike,
        receivers: ArrayLike,
        *,
        edge_attr: ArrayLike | None = None,
        edge_mask: ArrayLike | None = None,
        node_mask: ArrayLike | None = None,
        v: ArrayLike | None = None,
    ) -> tuple[Array, Array]:
        """``(h', x')`` for node features ``h (N, F)`` and positions ``x (N, d)``."""
        return egnn_layer(
            _values(self.params),
            h,
            x,
            senders,
            receivers,
            edge_attr=edge_attr,
            edge_mask=edge_mask,
            node_mask=node_mask,
            v=v,
            **self.options,
        )


class EGNN(nnx.Module, _EGNNOptions):
    r"""The EGNN model: embedding in, ``n_layers`` EGNN layers, embedding out.

    Holds the parameters of :func:`geomjax.equivariant._egnn.init_egnn` as ``nnx.Param`` leaves
    in the same layout (``self.params``: ``embedding_in``, ``layers`` (a list), ``embedding_out``)
    and calls :func:`geomjax.equivariant._egnn.egnn`. With ``velocity=True`` it is EGNN_vel
    (pass the initial velocities ``v``; the N-body prediction is the returned ``x``).

    Args:
      in_node_dim, hidden_dim, out_node_dim: input, hidden and output node feature sizes.
      edge_dim: edge attribute size (0 for none).
      n_layers: number of layers.
      attention, velocity, coord_gain: as in ``init_egnn``.
      residual, normalize, epsilon, tanh, coords_range, coords_agg, clamp, act: the per-layer
        options of ``egnn_layer``.
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: parameter dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn._egnn import EGNN
      >>> from geomjax.equivariant._graph import fully_connected_graph
      >>> model = EGNN(1, 32, 1, edge_dim=2, velocity=True, rngs=nnx.Rngs(0))
      >>> s, r = fully_connected_graph(5)
      >>> x, v = jax.random.normal(jax.random.key(1), (2, 5, 3))
      >>> forward = nnx.jit(lambda m, h, x, v: m(h, x, s, r, edge_attr=jnp.ones((20, 2)), v=v))
      >>> h, x_out = forward(model, jnp.ones((5, 1)), x, v)
      >>> h.shape, x_out.shape
      ((5, 1), (5, 3))

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021, arXiv:2102.09844.
    """

    def __init__(
        self,
        in_node_dim: int,
        hidden_dim: int,
        out_node_dim: int,
        *,
        edge_dim: int = 0,
        n_layers: int = 4,
        attention: bool = False,
        velocity: bool = False,
        coord_gain: float = 0.001,
        residual: bool = True,
        normalize: bool = False,
        epsilon: float = 1e-8,
        tanh: bool = False,
        coords_range: float = 1.0,
        coords_agg: str = "mean",
        clamp: float | None = None,
        act: Callable[[Array], Array] = jax.nn.silu,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self._set_options(residual, normalize, epsilon, tanh, coords_range, coords_agg, clamp, act)
        params = init_egnn(
            rngs.params(),
            in_node_dim,
            hidden_dim,
            out_node_dim,
            edge_dim=edge_dim,
            n_layers=n_layers,
            attention=attention,
            velocity=velocity,
            coord_gain=coord_gain,
            dtype=param_dtype,
        )
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def __call__(
        self,
        h: ArrayLike,
        x: ArrayLike,
        senders: ArrayLike,
        receivers: ArrayLike,
        *,
        edge_attr: ArrayLike | None = None,
        edge_mask: ArrayLike | None = None,
        node_mask: ArrayLike | None = None,
        v: ArrayLike | None = None,
    ) -> tuple[Array, Array]:
        """``(h_out, x_out)`` for node features ``h (N, in_node_dim)`` and positions ``x (N, d)``."""
        return egnn(
            _values(self.params),
            h,
            x,
            senders,
            receivers,
            edge_attr=edge_attr,
            edge_mask=edge_mask,
            node_mask=node_mask,
            v=v,
            **self.options,
        )
