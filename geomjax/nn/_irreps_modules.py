"""NNX wrappers of the irreps operations (geomjax.equivariant): each creates its ``nnx.Param``
weights with the core ``init_*`` function and makes one call into the core."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import ArrayLike
from geomjax.equivariant._gate import gate, soft_odd
from geomjax.equivariant._irreps import Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._linear import init_irreps_linear, irreps_linear
from geomjax.equivariant._spherical_harmonics import spherical_harmonics
from geomjax.equivariant._steerable_mp import (
    SteerableMPConfig,
    init_steerable_mp,
    steerable_message_passing,
)
from geomjax.equivariant._tensor_product import (
    channelwise_tensor_product,
    fully_connected_tensor_product,
    init_channelwise_tensor_product,
    init_fully_connected_tensor_product,
)

__all__ = [
    "FullyConnectedTensorProduct",
    "Gate",
    "IrrepsLinear",
    "SphericalHarmonicsEmbedding",
    "SteerableMessagePassing",
    "TensorProduct",
]


def _values(tree):
    return jax.tree.map(lambda v: v[...], tree, is_leaf=lambda v: isinstance(v, nnx.Variable))


class IrrepsLinear(nnx.Module):
    r"""Equivariant linear layer on irreps arrays (:func:`geomjax.equivariant.irreps_linear`):
    channels mixed within each irrep, fan-in normalized.

    Args:
      irreps_in, irreps_out: the irreps.
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: weight dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.equivariant import IrrepsArray
      >>> from geomjax.nn import IrrepsLinear
      >>> layer = IrrepsLinear("2x0e + 1o", "4x0e + 2x1o", rngs=nnx.Rngs(0))
      >>> layer(IrrepsArray("2x0e + 1o", jnp.ones(5))).irreps
      4x0e+2x1o

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """

    def __init__(self, irreps_in, irreps_out, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.irreps_in = Irreps(irreps_in)
        self.irreps_out = Irreps(irreps_out)
        w = init_irreps_linear(rngs.params(), self.irreps_in, self.irreps_out, dtype=param_dtype)
        self.weights = nnx.Param(w)

    def __call__(self, x: IrrepsArray) -> IrrepsArray:
        return irreps_linear(x, self.weights[...], self.irreps_out)


class TensorProduct(nnx.Module):
    r"""Channelwise ("uvu") tensor product with learned per-path weights
    (:func:`geomjax.equivariant.channelwise_tensor_product`); pass ``weights`` to the call to
    use per-sample weights instead (e.g. from a radial MLP).

    Args:
      irreps1, irreps2: input irreps.
      filter_ir_out: output irreps to keep (or ``None``).
      irrep_normalization, path_normalization: as in the core function.
      rngs: ``nnx.Rngs``.
      param_dtype: weight dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.equivariant import IrrepsArray
      >>> from geomjax.nn import TensorProduct
      >>> tp = TensorProduct("2x0e + 1o", "1o", rngs=nnx.Rngs(0))
      >>> tp(IrrepsArray("2x0e + 1o", jnp.ones(5)), IrrepsArray("1o", jnp.ones(3))).irreps
      1x0e+3x1o+1x1e+1x2e

    References:
      N. Thomas et al., "Tensor field networks", arXiv:1802.08219 (2018).
      S. Batzner et al. (NequIP), Nat. Commun. 13, 2453 (2022), arXiv:2101.03164.
    """

    def __init__(
        self,
        irreps1,
        irreps2,
        *,
        filter_ir_out=None,
        irrep_normalization: str = "component",
        path_normalization: str = "element",
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self.options = dict(
            filter_ir_out=None if filter_ir_out is None else str(Irreps(filter_ir_out)),
            irrep_normalization=irrep_normalization,
            path_normalization=path_normalization,
        )
        w = init_channelwise_tensor_product(
            rngs.params(), irreps1, irreps2, filter_ir_out=filter_ir_out, dtype=param_dtype
        )
        self.weights = nnx.Param(w)

    def __call__(
        self, x1: IrrepsArray, x2: IrrepsArray, weights: ArrayLike | None = None
    ) -> IrrepsArray:
        w = self.weights[...] if weights is None else weights
        return channelwise_tensor_product(x1, x2, w, **self.options)


class FullyConnectedTensorProduct(nnx.Module):
    r"""Fully connected ("uvw") weighted tensor product onto ``irreps_out``
    (:func:`geomjax.equivariant.fully_connected_tensor_product`).

    Args:
      irreps1, irreps2, irreps_out: the irreps.
      irrep_normalization, path_normalization: as in the core function.
      rngs: ``nnx.Rngs``.
      param_dtype: weight dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.equivariant import IrrepsArray
      >>> from geomjax.nn import FullyConnectedTensorProduct
      >>> tp = FullyConnectedTensorProduct("1o", "1o", "2x0e + 1e", rngs=nnx.Rngs(0))
      >>> tp(IrrepsArray("1o", jnp.ones(3)), IrrepsArray("1o", jnp.ones(3))).shape
      (5,)

    References:
      N. Thomas et al., "Tensor field networks", arXiv:1802.08219 (2018).
    """

    def __init__(
        self,
        irreps1,
        irreps2,
        irreps_out,
        *,
        irrep_normalization: str = "component",
        path_normalization: str = "element",
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self.irreps_out = Irreps(irreps_out)
        self.options = dict(
            irrep_normalization=irrep_normalization, path_normalization=path_normalization
        )
        w = init_fully_connected_tensor_product(
            rngs.params(), irreps1, irreps2, self.irreps_out, dtype=param_dtype
        )
        self.weights = nnx.Param(w)

    def __call__(self, x1: IrrepsArray, x2: IrrepsArray) -> IrrepsArray:
        return fully_connected_tensor_product(
            x1, x2, self.weights[...], self.irreps_out, **self.options
        )


class Gate(nnx.Module):
    r"""Gate activation (:func:`geomjax.equivariant.gate`); no parameters.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray
      >>> from geomjax.nn import Gate
      >>> Gate()(IrrepsArray("2x0e + 1o", jnp.ones(5))).irreps
      1x0e+1x1o

    References:
      M. Weiler et al., "3D Steerable CNNs", NeurIPS 2018, arXiv:1807.02547.
    """

    def __init__(
        self,
        even_act: Callable = jax.nn.gelu,
        odd_act: Callable = soft_odd,
        even_gate_act: Callable = jax.nn.sigmoid,
        odd_gate_act: Callable = jnp.tanh,
    ):
        self.acts = (even_act, odd_act, even_gate_act, odd_gate_act)

    def __call__(self, x: IrrepsArray) -> IrrepsArray:
        return gate(x, *self.acts)


class SphericalHarmonicsEmbedding(nnx.Module):
    r"""Spherical harmonics of vectors (:func:`geomjax.equivariant.spherical_harmonics`) as a
    module; no parameters.

    Args:
      lmax: largest degree (irreps ``0e + 1o + ... + lmax``), or irreps.
      normalize: evaluate on directions.
      normalization: ``"component"``, ``"norm"`` or ``"integral"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.nn import SphericalHarmonicsEmbedding
      >>> SphericalHarmonicsEmbedding(2)(jnp.ones((4, 3))).shape
      (4, 9)
    """

    def __init__(self, lmax, normalize: bool = True, normalization: str = "component"):
        irreps = Irreps.spherical_harmonics(lmax) if isinstance(lmax, int) else Irreps(lmax)
        self.irreps_out = irreps
        self.options = dict(normalize=normalize, normalization=normalization)

    def __call__(self, x: ArrayLike) -> IrrepsArray:
        return spherical_harmonics(self.irreps_out, x, **self.options)


class SteerableMessagePassing(nnx.Module):
    r"""Steerable message-passing layer (NequIP / SEGNN style) over a graph
    (:func:`geomjax.equivariant.steerable_message_passing`, whose docstring gives the
    equations).

    Args:
      irreps_in, irreps_out: node irreps (``irreps_out`` lists its scalars first).
      lmax_sh, num_basis, cutoff, radial_hidden, avg_num_neighbors, residual: see
        :class:`geomjax.equivariant.SteerableMPConfig`.
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.equivariant import IrrepsArray, fully_connected_graph
      >>> from geomjax.nn import SteerableMessagePassing
      >>> layer = SteerableMessagePassing("0e", "4x0e + 2x1o", cutoff=3.0, rngs=nnx.Rngs(0))
      >>> s, r = fully_connected_graph(4)
      >>> x = jax.random.normal(jax.random.key(1), (4, 3))
      >>> layer(IrrepsArray("0e", jnp.ones((4, 1))), x, s, r).shape
      (4, 10)

    References:
      S. Batzner et al. (NequIP), Nat. Commun. 13, 2453 (2022), arXiv:2101.03164.
      J. Brandstetter et al. (SEGNN), ICLR 2022, arXiv:2110.02905.
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        *,
        lmax_sh: int = 2,
        num_basis: int = 8,
        cutoff: float = 5.0,
        radial_hidden: int = 16,
        avg_num_neighbors: float = 1.0,
        residual: bool = True,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self.config = SteerableMPConfig(
            Irreps(irreps_in),
            Irreps(irreps_out),
            lmax_sh=lmax_sh,
            num_basis=num_basis,
            cutoff=cutoff,
            radial_hidden=radial_hidden,
            avg_num_neighbors=avg_num_neighbors,
            residual=residual,
        )
        params = init_steerable_mp(rngs.params(), self.config, dtype=param_dtype)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def __call__(
        self,
        h: IrrepsArray,
        positions: ArrayLike,
        senders: ArrayLike,
        receivers: ArrayLike,
        *,
        edge_mask: ArrayLike | None = None,
    ) -> IrrepsArray:
        return steerable_message_passing(
            _values(self.params),
            h,
            positions,
            senders,
            receivers,
            self.config,
            edge_mask=edge_mask,
        )
