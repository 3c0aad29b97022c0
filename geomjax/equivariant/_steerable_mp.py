r"""Steerable (irreps) message passing: a NequIP / SEGNN-style interaction layer.

For node features :math:`h_i` (an irreps array), positions :math:`x_i` and edges
:math:`j \to i` (``senders`` :math:`j`, ``receivers`` :math:`i`), with
:math:`\mathbf r_{ij} = x_j - x_i` and :math:`r_{ij} = \|\mathbf r_{ij}\|`:

.. math::

    m_i &= \frac{1}{\sqrt{\bar n}} \sum_{j \to i} u(r_{ij}/r_c)\;
          \mathrm{TP}_{\text{uvu}}\big(W_{\text{up}} h_j,\ Y(\hat{\mathbf r}_{ij});\
          \mathrm{MLP}(B(r_{ij}))\big), \\
    h_i' &= \mathrm{Gate}\big(W_{\text{down}}\, m_i + W_{\text{self}}\, h_i\big)
          \ (+\, h_i \text{ when the irreps agree and ``residual``}),

with :math:`Y` the spherical harmonics up to ``lmax_sh``, :math:`B` the Bessel radial basis
:math:`B_n(r) = \sqrt{2/r_c}\, \sin(n\pi r/r_c)/r`, :math:`u` the smooth polynomial cutoff
(DimeNet's, :math:`p = 6`: value and first two derivatives vanish at :math:`r_c`), the
channelwise tensor product weighted per edge by a radial MLP, a segment sum over receivers
normalized by the average number of neighbours :math:`\bar n`, self-interaction and gate.

NaN-safety: :math:`\sin(n\pi r/r_c)/r` is evaluated as :math:`(n\pi/r_c)\operatorname{sinc}`,
the edge length by a double-``where`` norm, and the harmonics of a zero vector are finite
with finite derivatives (see :func:`~geomjax.equivariant.spherical_harmonics`), so coincident
nodes and zero-length edges give finite values and gradients.

References:
  S. Batzner et al., "E(3)-equivariant graph neural networks for data-efficient and accurate
  interatomic potentials" (NequIP), Nat. Commun. 13, 2453 (2022), arXiv:2101.03164.
  J. Brandstetter, R. Hesselink, E. van der Pol, E. Bekkers, M. Welling, "Geometric and
  Physical Quantities improve E(3) Equivariant Message Passing" (SEGNN), ICLR 2022,
  arXiv:2110.02905.
  J. Gasteiger, J. Gross, S. Günnemann, "Directional Message Passing for Molecular Graphs"
  (DimeNet), ICLR 2020, arXiv:2003.03123.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, check_key
from geomjax.equivariant._gate import gate, gate_irreps_in
from geomjax.equivariant._graph import segment_sum
from geomjax.equivariant._irreps import Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._linear import init_irreps_linear, irreps_linear
from geomjax.equivariant._spherical_harmonics import spherical_harmonics
from geomjax.equivariant._tensor_product import (
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
)

__all__ = [
    "SteerableMPConfig",
    "bessel_basis",
    "init_steerable_mp",
    "polynomial_cutoff",
    "steerable_message_passing",
]


def _float(fn: str, name: str, x) -> Array:
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `{name}` must be real floating; got {arr.dtype}")
    return arr


def _positive_int(fn: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{fn}: argument `{name}` must be a positive int (static); got {v!r}")


def _positive_real(fn: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0 or v == float("inf"):
        raise ValueError(
            f"{fn}: argument `{name}` must be a positive finite number (static); got {v!r}"
        )


def bessel_basis(r: ArrayLike, num_basis: int, cutoff: float) -> Array:
    r"""Bessel radial basis :math:`B_n(r) = \sqrt{2/r_c}\, \sin(n \pi r / r_c) / r`,
    :math:`n = 1..N`, finite with finite derivatives at :math:`r = 0` (limit
    :math:`\sqrt{2/r_c}\, n\pi/r_c`).

    Args:
      r: distances, shape ``(...)``, real floating.
      num_basis: :math:`N`, a positive int.
      cutoff: :math:`r_c > 0` (a Python number).

    Raises:
      TypeError: naming ``r`` for a non-floating dtype.
      ValueError: naming ``num_basis`` or ``cutoff``.

    Returns:
      Array ``(..., N)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import bessel_basis
      >>> [[round(float(v), 3) + 0.0 for v in row] for row in bessel_basis(jnp.array([0.0, 0.5]), 2, 1.0)]
      [[4.443, 8.886], [2.828, 0.0]]

    References:
      J. Gasteiger et al., "Directional Message Passing for Molecular Graphs", ICLR 2020,
      arXiv:2003.03123.
    """
    fn = "bessel_basis"
    r = _float(fn, "r", r)
    _positive_int(fn, "num_basis", num_basis)
    _positive_real(fn, "cutoff", cutoff)
    n = jnp.arange(1, num_basis + 1, dtype=r.dtype)
    x = r[..., None] / cutoff
    # sin(n pi x)/r = (n pi / rc) sinc(n x)  with jnp.sinc(t) = sin(pi t)/(pi t)
    return math.sqrt(2.0 / cutoff) * (n * jnp.pi / cutoff) * jnp.sinc(n * x)


def polynomial_cutoff(r: ArrayLike, cutoff: float, p: int = 6) -> Array:
    r"""Smooth polynomial cutoff :math:`u(d) = 1 - \frac{(p+1)(p+2)}{2} d^p + p(p+2) d^{p+1}
    - \frac{p(p+1)}{2} d^{p+2}` for :math:`d = r/r_c < 1`, 0 beyond: :math:`u(0) = 1` and
    :math:`u, u', u''` vanish at :math:`r_c`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import polynomial_cutoff
      >>> polynomial_cutoff(jnp.array([0.0, 0.5, 1.0, 2.0]), 1.0).round(4)
      Array([1.    , 0.8555, 0.    , 0.    ], dtype=float32)

    References:
      J. Gasteiger et al., "Directional Message Passing for Molecular Graphs", ICLR 2020,
      arXiv:2003.03123.
    """
    fn = "polynomial_cutoff"
    _positive_real(fn, "cutoff", cutoff)
    _positive_int(fn, "p", p)
    d = _float(fn, "r", r) / cutoff
    inside = d < 1.0
    d = jnp.where(inside, d, 0.0)
    u = (
        1.0
        - (p + 1) * (p + 2) / 2 * d**p
        + p * (p + 2) * d ** (p + 1)
        - p * (p + 1) / 2 * d ** (p + 2)
    )
    return jnp.where(inside, u, 0.0)


@dataclasses.dataclass(frozen=True)
class SteerableMPConfig:
    """Static configuration of :func:`steerable_message_passing` (hashable).

    Attributes:
      irreps_in: node feature irreps.
      irreps_out: node output irreps (after the gate).
      lmax_sh: largest degree of the edge spherical harmonics.
      num_basis: number of Bessel functions.
      cutoff: radial cutoff :math:`r_c`.
      radial_hidden: width of the radial MLP's hidden layer.
      avg_num_neighbors: :math:`\\bar n`, the message sum is divided by its square root.
      residual: add the input when ``irreps_in == irreps_out``.
    """

    irreps_in: Irreps
    irreps_out: Irreps
    lmax_sh: int = 2
    num_basis: int = 8
    cutoff: float = 5.0
    radial_hidden: int = 16
    avg_num_neighbors: float = 1.0
    residual: bool = True

    def __post_init__(self):
        fn = "SteerableMPConfig"
        for name in ("irreps_in", "irreps_out"):
            try:
                object.__setattr__(self, name, Irreps(getattr(self, name)))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{fn}: argument `{name}` is not valid irreps: {err}") from err
        out = self.irreps_out
        first_gated = next((i for i, (_, ir) in enumerate(out) if ir.l > 0), len(out))
        if any(ir.l == 0 for _, ir in out[first_gated:]):
            raise ValueError(
                f"{fn}: argument `irreps_out` must list its scalars (0e/0o) before the "
                f"non-scalars (the gate's output order); got {out!r}"
            )
        for name in ("lmax_sh", "num_basis", "radial_hidden"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, numbers.Integral)
                or v < (name != "lmax_sh")
            ):
                raise ValueError(f"{fn}: argument `{name}` must be a positive int; got {v!r}")
        for name in ("cutoff", "avg_num_neighbors"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
                raise ValueError(f"{fn}: argument `{name}` must be a positive number; got {v!r}")

    @property
    def irreps_sh(self) -> Irreps:
        """Irreps of the edge spherical harmonics."""
        return Irreps.spherical_harmonics(self.lmax_sh)

    @property
    def irreps_gate_in(self) -> Irreps:
        """Irreps before the gate."""
        return gate_irreps_in(self.irreps_out)

    @property
    def tp(self) -> tuple[Irreps, int]:
        """Irreps and weight count of the message tensor product (paths that can reach the
        gate's input irreps only)."""
        keep = [ir for _, ir in self.irreps_gate_in]
        return channelwise_tensor_product_irreps(self.irreps_in, self.irreps_sh, filter_ir_out=keep)


def _as_config(fn: str, config) -> SteerableMPConfig:
    if not isinstance(config, SteerableMPConfig):
        raise TypeError(
            f"{fn}: argument `config` must be a SteerableMPConfig; got {type(config).__name__}"
        )
    return config


def init_steerable_mp(key: jax.Array, config: SteerableMPConfig, *, dtype=jnp.float32) -> dict:
    """Parameters of :func:`steerable_message_passing`: ``{"up", "radial_w1", "radial_w2",
    "down", "self"}`` (standard normal; every map normalizes by its fan-in).

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import SteerableMPConfig, init_steerable_mp
      >>> cfg = SteerableMPConfig("4x0e", "4x0e + 2x1o")
      >>> sorted(init_steerable_mp(jax.random.key(0), cfg))
      ['down', 'radial_w1', 'radial_w2', 'self', 'up']
    """
    fn = "init_steerable_mp"
    check_key(fn, "key", key)
    config = _as_config(fn, config)
    irreps_mid, n_w = config.tp
    k = jax.random.split(key, 5)
    return {
        "up": init_irreps_linear(k[0], config.irreps_in, config.irreps_in, dtype=dtype),
        "radial_w1": jax.random.normal(k[1], (config.num_basis, config.radial_hidden), dtype),
        "radial_w2": jax.random.normal(k[2], (config.radial_hidden, n_w), dtype),
        "down": init_irreps_linear(k[3], irreps_mid, config.irreps_gate_in, dtype=dtype),
        "self": init_irreps_linear(k[4], config.irreps_in, config.irreps_gate_in, dtype=dtype),
    }


def _edge_length(vec: Array) -> Array:
    sq = jnp.sum(vec**2, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def check_graph_inputs(fn: str, h, irreps_in: Irreps, positions, senders, receivers):
    """Validate a layer's node features ``h`` (``IrrepsArray (N, irreps_in.dim)``), positions
    ``(N, 3)`` and edge lists; returns ``(N, positions, senders, receivers)`` as arrays."""
    if not isinstance(h, IrrepsArray):
        raise TypeError(f"{fn}: argument `h` must be an IrrepsArray; got {type(h).__name__}")
    if h.irreps != irreps_in or h.ndim != 2:
        raise ValueError(
            f"{fn}: argument `h` must be an IrrepsArray (N, {irreps_in.dim}) of irreps "
            f"{irreps_in!r}; got {h.irreps!r} with shape {h.shape}"
        )
    n = h.shape[0]
    pos = jnp.asarray(positions)
    if pos.shape != (n, 3) or not jnp.issubdtype(pos.dtype, jnp.floating):
        raise ValueError(
            f"{fn}: argument `positions` must be float ({n}, 3); got {pos.dtype} {pos.shape}"
        )
    senders = jnp.asarray(senders)
    receivers = jnp.asarray(receivers)
    if senders.ndim != 1 or senders.shape != receivers.shape:
        raise ValueError(
            f"{fn}: arguments `senders` and `receivers` must be int (E,) of equal shape; got "
            f"{senders.shape} and {receivers.shape}"
        )
    if not (
        jnp.issubdtype(senders.dtype, jnp.integer) and jnp.issubdtype(receivers.dtype, jnp.integer)
    ):
        raise ValueError(f"{fn}: arguments `senders` and `receivers` must be integer arrays")
    return n, pos, senders, receivers


def edge_filter(params: dict, pos, senders, receivers, irreps_sh: Irreps, config, dtype):
    """Edge spherical harmonics of ``x_j - x_i`` and the per-edge weights: the radial MLP
    (``params["radial_w1"]``, ``params["radial_w2"]``) of the Bessel basis times the polynomial
    cutoff; ``config`` gives ``num_basis``, ``cutoff`` and ``radial_hidden``."""
    vec = pos[senders] - pos[receivers]
    r = _edge_length(vec)
    sh = spherical_harmonics(irreps_sh, vec.astype(dtype), normalize=True)
    basis = bessel_basis(r, config.num_basis, config.cutoff)
    hidden = jax.nn.silu(basis @ params["radial_w1"] / math.sqrt(config.num_basis))
    w = hidden @ params["radial_w2"] / math.sqrt(config.radial_hidden)
    return sh, w * polynomial_cutoff(r, config.cutoff)[:, None]


def steerable_message_passing(
    params: dict,
    h: IrrepsArray,
    positions: ArrayLike,
    senders: ArrayLike,
    receivers: ArrayLike,
    config: SteerableMPConfig,
    *,
    edge_mask: ArrayLike | None = None,
) -> IrrepsArray:
    r"""One steerable message-passing layer over a graph (see the module docstring).

    Args:
      params: from :func:`init_steerable_mp`.
      h: node features, ``IrrepsArray`` ``(N, irreps_in.dim)``.
      positions: ``(N, 3)``.
      senders, receivers: int ``(E,)``; messages flow ``senders -> receivers``.
      config: :class:`SteerableMPConfig` (static).
      edge_mask: optional bool ``(E,)``, False for padding edges.

    Returns:
      ``IrrepsArray`` ``(N, irreps_out.dim)``.

    Raises:
      TypeError: naming ``h`` or ``config``.
      ValueError: naming ``h`` (irreps or shape), ``positions``, ``senders``/``receivers``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, SteerableMPConfig, fully_connected_graph,
      ...     init_steerable_mp, steerable_message_passing)
      >>> cfg = SteerableMPConfig("2x0e", "4x0e + 2x1o + 1x2e", cutoff=3.0)
      >>> params = init_steerable_mp(jax.random.key(0), cfg)
      >>> s, r = fully_connected_graph(5)
      >>> x = jax.random.normal(jax.random.key(1), (5, 3))
      >>> out = steerable_message_passing(params, IrrepsArray("2x0e", jnp.ones((5, 2))), x, s, r, cfg)
      >>> out.irreps, out.shape
      (4x0e+2x1o+1x2e, (5, 15))

    References:
      S. Batzner et al. (NequIP), Nat. Commun. 13, 2453 (2022), arXiv:2101.03164.
      J. Brandstetter et al. (SEGNN), ICLR 2022, arXiv:2110.02905.
    """
    fn = "steerable_message_passing"
    config = _as_config(fn, config)
    n, pos, senders, receivers = check_graph_inputs(
        fn, h, config.irreps_in, positions, senders, receivers
    )
    dtype = jnp.result_type(h.dtype, pos.dtype)
    irreps_mid, _ = config.tp

    up = irreps_linear(h, params["up"], config.irreps_in)
    sh, w = edge_filter(params, pos, senders, receivers, config.irreps_sh, config, dtype)
    msg = channelwise_tensor_product(
        up[senders], sh, w, filter_ir_out=[ir for _, ir in config.irreps_gate_in]
    )
    agg = segment_sum(msg.array, receivers, n, mask=edge_mask) / math.sqrt(config.avg_num_neighbors)
    agg = IrrepsArray._unchecked(irreps_mid, agg.astype(dtype))
    pre = irreps_linear(agg, params["down"], config.irreps_gate_in) + irreps_linear(
        h, params["self"], config.irreps_gate_in
    )
    out = gate(pre)
    if config.residual and config.irreps_in == config.irreps_out:
        out = out + h
    return out
