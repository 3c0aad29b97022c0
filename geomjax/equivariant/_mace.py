r"""A MACE interaction block: channelwise tensor product with edge harmonics, symmetric
contraction, linear update and readout.

For node features :math:`h_i` (``C`` channels of each irrep of ``irreps_in``), species
:math:`z_i`, positions :math:`x_i` and edges :math:`j \to i`:

.. math::

    A_{i} &= W_A \Big( \frac{1}{\bar n} \sum_{j \to i} R(r_{ij}) \odot
             \mathrm{TP}_{\text{uvu}}\big(W_{\text{up}} h_j,\ Y(\hat{\mathbf r}_{ij})\big)\Big)
             \quad (C \text{ channels of each } (l, (-1)^l),\ l \le l_{\max}), \\
    B_{i} &= \mathrm{SymmetricContraction}_{z_i}(A_i)
             \quad (\text{degree} \le \nu_{\max},\ C \times \text{irreps\_hidden}), \\
    h_i' &= W_B B_i + W_{\text{self}} h_i, \qquad E_i = W_{\text{read}} h_i' \ (\text{scalars}),

with :math:`Y` the spherical harmonics up to :math:`l_{\max}` (``lmax_sh``), :math:`R` a radial
MLP of the Bessel basis times the polynomial cutoff (one weight per path and channel),
:math:`\bar n` the average number of neighbours, and every :math:`W` an equivariant linear
map (:func:`~geomjax.equivariant.irreps_linear`). The many-body order of MACE comes from the
symmetric contraction: :math:`B` holds every equivariant polynomial of degree
:math:`\le \nu_{\max}` in the two-body features :math:`A`.

References:
  I. Batatia, D. P. Kovacs, G. N. C. Simm, C. Ortner, G. Csanyi, "MACE: Higher Order
  Equivariant Message Passing Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022,
  arXiv:2206.07697.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, check_key
from geomjax.equivariant._graph import segment_sum
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._linear import init_irreps_linear, irreps_linear
from geomjax.equivariant._steerable_mp import check_graph_inputs, edge_filter
from geomjax.equivariant._symmetric_contraction import (
    init_symmetric_contraction,
    symmetric_contraction,
)
from geomjax.equivariant._tensor_product import (
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
)

__all__ = ["MACEConfig", "init_mace_interaction", "mace_interaction"]


@dataclasses.dataclass(frozen=True)
class MACEConfig:
    """Static configuration of :func:`mace_interaction` (hashable).

    Attributes:
      irreps_in: node feature irreps (e.g. ``"16x0e"`` for the first layer).
      n_channels: ``C``, channels of the two-body features ``A`` and of the output.
      irreps_hidden: output irreps of one channel (e.g. ``"0e + 1o"``); the output is
        ``C x irreps_hidden``.
      n_species: number of species (the contraction's weights depend on it).
      lmax_sh: largest degree of the edge harmonics and of ``A``.
      correlation: largest degree of the symmetric contraction (MACE: 3).
      num_basis, cutoff, radial_hidden: the Bessel basis, cutoff and radial MLP width.
      avg_num_neighbors: :math:`\\bar n`, the neighbour sum is divided by it.
    """

    irreps_in: Irreps
    n_channels: int
    irreps_hidden: Irreps
    n_species: int
    lmax_sh: int = 3
    correlation: int = 3
    num_basis: int = 8
    cutoff: float = 5.0
    radial_hidden: int = 64
    avg_num_neighbors: float = 1.0

    def __post_init__(self):
        fn = "MACEConfig"
        for name in ("irreps_in", "irreps_hidden"):
            try:
                object.__setattr__(self, name, Irreps(getattr(self, name)))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{fn}: argument `{name}` is not valid irreps: {err}") from err
        irs = [ir for mul, ir in self.irreps_hidden for _ in range(mul)]
        if not irs or len(set(irs)) != len(irs):
            raise ValueError(
                f"{fn}: argument `irreps_hidden` must list each irrep once (the irreps of one "
                f"channel, e.g. '0e + 1o'); got {self.irreps_hidden!r}"
            )
        for name, low in (
            ("n_channels", 1),
            ("n_species", 1),
            ("lmax_sh", 0),
            ("num_basis", 1),
            ("radial_hidden", 1),
            ("correlation", 1),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{fn}: argument `{name}` must be an int >= {low}; got {v!r}")
        for name in ("cutoff", "avg_num_neighbors"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
                raise ValueError(f"{fn}: argument `{name}` must be a positive number; got {v!r}")

    @property
    def irreps_a(self) -> Irreps:
        """Irreps of the two-body features: ``C`` channels of ``(l, (-1)^l)``, ``l <= lmax_sh``."""
        return Irreps([(self.n_channels, Irrep(k, (-1) ** k)) for k in range(self.lmax_sh + 1)])

    @property
    def irreps_out(self) -> Irreps:
        """Node output irreps, ``C x irreps_hidden``."""
        return Irreps([(self.n_channels, ir) for _, ir in self.irreps_hidden])

    @property
    def tp(self) -> tuple[Irreps, int]:
        """Irreps and weight count of the edge tensor product (paths reaching ``A`` only)."""
        keep = [ir for _, ir in self.irreps_a]
        return channelwise_tensor_product_irreps(
            self.irreps_in, Irreps.spherical_harmonics(self.lmax_sh), filter_ir_out=keep
        )


def _as_config(fn: str, config) -> MACEConfig:
    if not isinstance(config, MACEConfig):
        raise TypeError(
            f"{fn}: argument `config` must be a MACEConfig; got {type(config).__name__}"
        )
    return config


def init_mace_interaction(key: jax.Array, config: MACEConfig, *, dtype=jnp.float32) -> dict:
    """Parameters of :func:`mace_interaction`: ``{"up", "radial_w1", "radial_w2", "a",
    "contraction", "b", "self", "readout"}``, standard normal (every map normalizes by its
    fan-in).

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import MACEConfig, init_mace_interaction
      >>> cfg = MACEConfig("4x0e", 4, "0e + 1o", n_species=2, lmax_sh=2)
      >>> sorted(init_mace_interaction(jax.random.key(0), cfg))
      ['a', 'b', 'contraction', 'radial_w1', 'radial_w2', 'readout', 'self', 'up']
    """
    fn = "init_mace_interaction"
    check_key(fn, "key", key)
    config = _as_config(fn, config)
    irreps_mid, n_w = config.tp
    channel_irreps = Irreps([(1, ir) for _, ir in config.irreps_a])
    k = jax.random.split(key, 8)
    scalars = Irreps("0e")
    return {
        "up": init_irreps_linear(k[0], config.irreps_in, config.irreps_in, dtype=dtype),
        "radial_w1": jax.random.normal(k[1], (config.num_basis, config.radial_hidden), dtype),
        "radial_w2": jax.random.normal(k[2], (config.radial_hidden, n_w), dtype),
        "a": init_irreps_linear(k[3], irreps_mid, config.irreps_a, dtype=dtype),
        "contraction": init_symmetric_contraction(
            k[4],
            channel_irreps,
            config.irreps_hidden,
            config.correlation,
            n_species=config.n_species,
            n_channels=config.n_channels,
            dtype=dtype,
        ),
        "b": init_irreps_linear(k[5], config.irreps_out, config.irreps_out, dtype=dtype),
        "self": init_irreps_linear(k[6], config.irreps_in, config.irreps_out, dtype=dtype),
        "readout": init_irreps_linear(k[7], config.irreps_out, scalars, dtype=dtype),
    }


def mace_interaction(
    params: dict,
    h: IrrepsArray,
    species: ArrayLike,
    positions: ArrayLike,
    senders: ArrayLike,
    receivers: ArrayLike,
    config: MACEConfig,
    *,
    edge_mask: ArrayLike | None = None,
) -> tuple[IrrepsArray, Array]:
    r"""One MACE interaction block over a graph (see the module docstring).

    Args:
      params: from :func:`init_mace_interaction`.
      h: node features, ``IrrepsArray`` ``(N, irreps_in.dim)``.
      species: int ``(N,)`` in ``[0, n_species)``.
      positions: ``(N, 3)``.
      senders, receivers: int ``(E,)``; messages flow ``senders -> receivers``.
      config: :class:`MACEConfig` (static).
      edge_mask: optional bool ``(E,)``, False for padding edges.

    Returns:
      ``(h_new, readout)``: ``IrrepsArray`` ``(N, C * irreps_hidden.dim)`` and the per-node
      invariant readout ``(N,)`` (e.g. a site energy).

    Raises:
      TypeError: naming ``h`` or ``config``.
      ValueError: naming ``h``, ``positions``, ``senders``/``receivers`` or ``species``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, MACEConfig, fully_connected_graph,
      ...     init_mace_interaction, mace_interaction)
      >>> cfg = MACEConfig("4x0e", 4, "0e + 1o", n_species=2, lmax_sh=2, cutoff=3.0)
      >>> params = init_mace_interaction(jax.random.key(0), cfg)
      >>> s, r = fully_connected_graph(5)
      >>> x = jax.random.normal(jax.random.key(1), (5, 3))
      >>> h, e = mace_interaction(params, IrrepsArray("4x0e", jnp.ones((5, 4))),
      ...                         jnp.array([0, 1, 0, 1, 1]), x, s, r, cfg)
      >>> h.irreps, h.shape, e.shape
      (4x0e+4x1o, (5, 16), (5,))

    References:
      I. Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural Networks for
      Fast and Accurate Force Fields", NeurIPS 2022, arXiv:2206.07697.
    """
    fn = "mace_interaction"
    config = _as_config(fn, config)
    n, pos, senders, receivers = check_graph_inputs(
        fn, h, config.irreps_in, positions, senders, receivers
    )
    species = jnp.asarray(species)
    if species.shape != (n,) or not jnp.issubdtype(species.dtype, jnp.integer):
        raise ValueError(
            f"{fn}: argument `species` must be int ({n},); got {species.dtype} {species.shape}"
        )
    dtype = jnp.result_type(h.dtype, pos.dtype)
    irreps_mid, _ = config.tp

    up = irreps_linear(h, params["up"], config.irreps_in)
    irreps_sh = Irreps.spherical_harmonics(config.lmax_sh)
    sh, w = edge_filter(params, pos, senders, receivers, irreps_sh, config, dtype)
    keep = [ir for _, ir in config.irreps_a]
    msg = channelwise_tensor_product(up[senders], sh, w, filter_ir_out=keep)
    agg = segment_sum(msg.array, receivers, n, mask=edge_mask) / config.avg_num_neighbors
    a = irreps_linear(
        IrrepsArray._unchecked(irreps_mid, agg.astype(dtype)), params["a"], config.irreps_a
    )
    b = symmetric_contraction(
        a,
        species,
        params["contraction"],
        irreps_out=config.irreps_hidden,
        correlation=config.correlation,
    )
    h_new = irreps_linear(b, params["b"], config.irreps_out) + irreps_linear(
        h, params["self"], config.irreps_out
    )
    readout = irreps_linear(h_new, params["readout"], "0e").array[:, 0]
    return h_new, readout
