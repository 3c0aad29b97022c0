"""NNX wrapper of the MACE interaction block (geomjax.equivariant.mace_interaction)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.equivariant._irreps import Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._mace import MACEConfig, init_mace_interaction, mace_interaction

__all__ = ["MACEInteraction"]


class MACEInteraction(nnx.Module):
    r"""MACE interaction block: channelwise tensor product with edge harmonics, per-species
    symmetric contraction, linear update and invariant readout
    (:func:`geomjax.equivariant.mace_interaction`, whose docstring gives the equations).

    Args:
      irreps_in: node irreps.
      n_channels, irreps_hidden, n_species, lmax_sh, correlation: see
        :class:`geomjax.equivariant.MACEConfig`.
      num_basis, cutoff, radial_hidden, avg_num_neighbors: see
        :class:`geomjax.equivariant.MACEConfig`.
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.equivariant import IrrepsArray, fully_connected_graph
      >>> from geomjax.nn import MACEInteraction
      >>> layer = MACEInteraction("4x0e", 4, "0e + 1o", n_species=2, lmax_sh=2, cutoff=3.0,
      ...                         rngs=nnx.Rngs(0))
      >>> s, r = fully_connected_graph(4)
      >>> x = jax.random.normal(jax.random.key(1), (4, 3))
      >>> h, e = layer(IrrepsArray("4x0e", jnp.ones((4, 4))), jnp.array([0, 1, 1, 0]), x, s, r)
      >>> h.shape, e.shape
      ((4, 16), (4,))

    References:
      I. Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural Networks for
      Fast and Accurate Force Fields", NeurIPS 2022, arXiv:2206.07697.
    """

    def __init__(
        self,
        irreps_in,
        n_channels: int,
        irreps_hidden,
        *,
        n_species: int,
        lmax_sh: int = 3,
        correlation: int = 3,
        num_basis: int = 8,
        cutoff: float = 5.0,
        radial_hidden: int = 64,
        avg_num_neighbors: float = 1.0,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self.config = MACEConfig(
            Irreps(irreps_in),
            n_channels,
            Irreps(irreps_hidden),
            n_species,
            lmax_sh=lmax_sh,
            correlation=correlation,
            num_basis=num_basis,
            cutoff=cutoff,
            radial_hidden=radial_hidden,
            avg_num_neighbors=avg_num_neighbors,
        )
        params = init_mace_interaction(rngs.params(), self.config, dtype=param_dtype)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def __call__(
        self,
        h: IrrepsArray,
        species: ArrayLike,
        positions: ArrayLike,
        senders: ArrayLike,
        receivers: ArrayLike,
        *,
        edge_mask: ArrayLike | None = None,
    ) -> tuple[IrrepsArray, Array]:
        params = jax.tree.map(
            lambda v: v[...], self.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
        )
        return mace_interaction(
            params, h, species, positions, senders, receivers, self.config, edge_mask=edge_mask
        )
