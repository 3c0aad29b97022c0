r"""Clebsch-Gordan tensor products of irreps arrays: full, channelwise ("uvu") and fully
connected ("uvw").

Every product is a sum over *paths* :math:`(l_1, p_1) \otimes (l_2, p_2) \to (l_3, p_1 p_2)`
with :math:`|l_1 - l_2| \le l_3 \le l_1 + l_2`, each the bilinear map

.. math::

    z^{(l_3)}_k = \alpha \sum_{ij} C^{l_1 l_2 l_3}_{ijk}\, x^{(l_1)}_i\, y^{(l_2)}_j ,

with :math:`C` the real Clebsch-Gordan tensor of :func:`~geomjax.equivariant.clebsch_gordan`
(unit Frobenius norm) times :math:`\sqrt{2 l_3 + 1}` (``irrep_normalization="component"``:
unit-variance components in, unit-variance components out) or :math:`\sqrt{(2l_1+1)(2l_2+1)}`
(``"norm"``), e3nn-jax's conventions, so outputs compare elementwise with e3nn-jax 0.21.

**Fused evaluation.** The paths are never looped over in the trace. For each pair of input
entries (one per distinct irrep after regrouping) all output degrees are stacked into one
dense NumPy tensor :math:`T_{ij,K}` (:math:`K` runs over every output component of the pair),
built once per static configuration (``functools.cache`` on the hashable irreps and options),
so a product costs, per pair of input irreps, one ``einsum`` of the two inputs with the
tensor (contracted in the cheapest order: for single-channel inputs the outer product then one
GEMM ``(rows, (2l_1+1)(2l_2+1)) @ ((2l_1+1)(2l_2+1), K)``), then static slices concatenated
in e3nn's output order; weights enter the same ``einsum``. Forward and backward are a handful
of dense contractions each (the backward about twice the forward), and the compile time does
not grow with the number of paths.

References:
  N. Thomas, T. Smidt, S. Kearnes, L. Yang, L. Li, K. Kohlhoff, P. Riley, "Tensor field
  networks: Rotation- and translation-equivariant neural networks for 3D point clouds",
  arXiv:1802.08219 (2018).
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep)
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, check_key, check_option
from geomjax.equivariant._clebsch_gordan import clebsch_gordan
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray, _check_weights

__all__ = [
    "channelwise_tensor_product",
    "channelwise_tensor_product_irreps",
    "full_tensor_product",
    "fully_connected_tensor_product",
    "fully_connected_tensor_product_num_weights",
    "init_channelwise_tensor_product",
    "init_fully_connected_tensor_product",
]

_IRREP_NORMS = ("component", "norm", "none")
_PATH_NORMS = ("element", "path")


# -- validation --------------------------------------------------------------------------------


def _check_irreps_array(fn: str, name: str, x) -> IrrepsArray:
    if not isinstance(x, IrrepsArray):
        raise TypeError(
            f"{fn}: argument `{name}` must be an IrrepsArray; got {type(x).__name__} (wrap "
            "plain data as IrrepsArray(irreps, array))"
        )
    return x


def _as_irreps(fn: str, name: str, irreps) -> Irreps:
    try:
        return Irreps(irreps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `{name}` is not valid irreps: {err}") from err


def _filter_key(fn: str, filter_ir_out) -> tuple[Irrep, ...] | None:
    if filter_ir_out is None:
        return None
    if isinstance(filter_ir_out, Irrep):
        return (filter_ir_out,)
    try:
        if isinstance(filter_ir_out, str):
            irs = [ir for _, ir in Irreps(filter_ir_out)]
        else:
            irs = [Irrep(ir) if not isinstance(ir, Irreps) else None for ir in filter_ir_out]
            if any(ir is None for ir in irs):
                irs = [ir for _, ir in Irreps(filter_ir_out)]
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{fn}: argument `filter_ir_out` must be irreps such as '0e + 1o' or a list of "
            f"irreps; got {filter_ir_out!r}"
        ) from err
    return tuple(sorted(set(irs)))


def _check_same_lead(fn: str, x1: IrrepsArray, x2: IrrepsArray) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(x1.shape[:-1], x2.shape[:-1]))
    except ValueError as err:
        raise ValueError(
            f"{fn}: arguments `x1` and `x2` must have broadcastable leading shapes; got "
            f"{x1.shape} and {x2.shape}"
        ) from err


def _cg(l1: int, l2: int, l3: int, irrep_normalization: str) -> np.ndarray:
    c = np.asarray(clebsch_gordan(l1, l2, l3), dtype=np.float64)
    if irrep_normalization == "component":
        return c * math.sqrt(2 * l3 + 1)
    if irrep_normalization == "norm":
        return c * math.sqrt((2 * l1 + 1) * (2 * l2 + 1))
    return c


# -- the plan shared by the three products -----------------------------------------------------


class _Pair(NamedTuple):
    a: int  # entry of irreps1
    b: int  # entry of irreps2
    outs: tuple[Irrep, ...]  # output irreps of the pair, in order
    offsets: tuple[int, ...]  # their first component in the stacked K axis
    tensor: np.ndarray  # (dim_a, dim_b, K) float64


def _pairs(irreps1: Irreps, irreps2: Irreps, keep, irrep_normalization: str) -> list[_Pair]:
    out = []
    for a, (mul1, ir1) in enumerate(irreps1):
        for b, (mul2, ir2) in enumerate(irreps2):
            if mul1 == 0 or mul2 == 0:
                continue
            outs = tuple(ir for ir in ir1 * ir2 if keep is None or ir in keep)
            if not outs:
                continue
            blocks = [_cg(ir1.l, ir2.l, ir.l, irrep_normalization) for ir in outs]
            offsets = tuple(int(o) for o in np.cumsum([0] + [ir.dim for ir in outs])[:-1])
            tensor = np.concatenate(blocks, axis=-1)
            tensor.setflags(write=False)
            out.append(_Pair(a, b, outs, offsets, tensor))
    return out


def _pair_product(x1c: Array, x2c: Array, tensor: np.ndarray) -> Array:
    """``(..., u, i) x (..., v, j) x (i, j, K) -> (..., u, v, K)``: one three-operand
    ``einsum`` against the stacked path tensor, contracted in the order of fewest flops
    (``optimize="optimal"``: the outer product then one GEMM when ``u = v = 1``, the GEMM of
    ``x2`` with the tensor first when ``x1`` has many channels). Its autodiff transpose is a
    few dense contractions of the same kind, so the backward costs about twice the forward
    (an outer product followed by a ``matmul`` differentiated to broadcast-multiply-reduce
    ops that cost 8-15x the forward on the CPU)."""
    t = jnp.asarray(tensor, dtype=x1c.dtype)
    return jnp.einsum("...ui,...vj,ijk->...uvk", x1c, x2c, t, optimize="optimal")


def _order(entries: list[tuple[int, Irrep, tuple]]) -> tuple[Irreps, tuple]:
    """Stable sort of (mul, ir, source) entries by irrep, merged equal neighbours; ``source``
    is ``(pair, offset, dim)``: the components ``offset:offset + dim`` of that pair's
    product."""
    order = sorted(range(len(entries)), key=lambda n: (entries[n][1]._key(), n))
    irreps = Irreps([(entries[n][0], entries[n][1]) for n in order]).simplify()
    return irreps, tuple(entries[n][2] for n in order)


def _assemble(
    prods: list[Array], sources: tuple, lead: tuple[int, ...], dtype, n_mid: int
) -> Array:
    """Concatenate static slices of the pair products in output order (the slices'
    transposes, zero pads summed per product, fuse into one loop in XLA: measured as fast as
    a hand-written VJP, and forward-mode differentiation keeps working)."""
    if not sources:
        return jnp.zeros(lead + (0,), dtype)
    parts = [
        prods[n][..., off : off + dim].reshape(prods[n].shape[: -1 - n_mid] + (-1,))
        for n, off, dim in sources
    ]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def _concat_flat(parts: list[Array], lead: tuple[int, ...], dtype) -> Array:
    parts = [p.reshape(lead + (-1,)) for p in parts]
    if not parts:
        return jnp.zeros(lead + (0,), dtype)
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


# -- full tensor product -----------------------------------------------------------------------


@functools.cache
def _full_plan(irreps1: Irreps, irreps2: Irreps, keep, irrep_normalization: str):
    pairs = _pairs(irreps1, irreps2, keep, irrep_normalization)
    entries = []
    for n, pair in enumerate(pairs):
        mul1, mul2 = irreps1[pair.a].mul, irreps2[pair.b].mul
        for ir, off in zip(pair.outs, pair.offsets):
            entries.append((mul1 * mul2, ir, (n, off, ir.dim)))
    irreps_out, sources = _order(entries)
    return pairs, irreps_out, sources


def full_tensor_product(
    x1: IrrepsArray,
    x2: IrrepsArray,
    *,
    filter_ir_out=None,
    irrep_normalization: str = "component",
) -> IrrepsArray:
    r"""Full (unweighted) Clebsch-Gordan tensor product of two irreps arrays, every path.

    For every copy :math:`u` of an irrep :math:`l_1` of ``x1`` and copy :math:`v` of an
    irrep :math:`l_2` of ``x2`` and every :math:`l_3` in :math:`l_1 \otimes l_2` (kept by
    ``filter_ir_out``):

    .. math::

        z_{uv,k} = \sum_{ij} \tilde C^{l_1 l_2 l_3}_{ijk}\, x_{1,ui}\, x_{2,vj},

    with :math:`\tilde C` the Clebsch-Gordan tensor scaled by ``irrep_normalization`` (see the
    module docstring). The inputs are regrouped first and the outputs sorted and regrouped,
    as ``e3nn_jax.tensor_product``: same irreps, same order, same numbers. Evaluated fused:
    one contraction per pair of input irreps against a cached dense path tensor.

    Args:
      x1, x2: ``IrrepsArray`` s, shapes ``(..., irreps1.dim)`` and ``(..., irreps2.dim)``
        with broadcastable leading shapes.
      filter_ir_out: irreps to keep in the output (e.g. ``"0e + 1o"``; multiplicities ignored),
        or ``None`` for all.
      irrep_normalization: ``"component"`` (default), ``"norm"`` or ``"none"``.

    Returns:
      ``IrrepsArray`` of shape ``(..., irreps_out.dim)``.

    Raises:
      TypeError: naming ``x1``/``x2`` for non-IrrepsArrays.
      ValueError: naming ``filter_ir_out``, ``irrep_normalization`` or the leading shapes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray, full_tensor_product
      >>> x = IrrepsArray("2x0e + 1o", jnp.arange(5.0))
      >>> y = IrrepsArray("0o + 2o", jnp.arange(6.0))
      >>> z = full_tensor_product(x, y)
      >>> z.irreps
      2x0o+2x1e+1x2e+2x2o+1x3e
      >>> full_tensor_product(x, y, filter_ir_out="1e").array.round(2)
      Array([ 0.  ,  0.  ,  0.  , -1.9 , 16.65, 14.83], dtype=float32)

    References:
      N. Thomas et al., "Tensor field networks", arXiv:1802.08219 (2018).
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "full_tensor_product"
    x1 = _check_irreps_array(fn, "x1", x1)
    x2 = _check_irreps_array(fn, "x2", x2)
    check_option(fn, "irrep_normalization", irrep_normalization, _IRREP_NORMS)
    keep = _filter_key(fn, filter_ir_out)
    lead = _check_same_lead(fn, x1, x2)
    dtype = jnp.result_type(x1.dtype, x2.dtype)
    x1 = x1.regroup()
    x2 = x2.regroup()
    pairs, irreps_out, sources = _full_plan(x1.irreps, x2.irreps, keep, irrep_normalization)
    c1, c2 = x1.chunks, x2.chunks
    parts = []
    for pair in pairs:
        a = jnp.broadcast_to(c1[pair.a], lead + c1[pair.a].shape[-2:]).astype(dtype)
        b = jnp.broadcast_to(c2[pair.b], lead + c2[pair.b].shape[-2:]).astype(dtype)
        parts.append(_pair_product(a, b, pair.tensor))  # (..., u, v, K)
    return IrrepsArray._unchecked(irreps_out, _assemble(parts, sources, lead, dtype, 2))


# -- channelwise ("uvu") tensor product --------------------------------------------------------


def _alpha(fan_ins: list[int], path_normalization: str) -> list[float]:
    """Per-path scale for paths summed into one output: ``element`` normalizes by the total
    fan-in, ``path`` gives every path the same weight."""
    if path_normalization == "element":
        total = sum(fan_ins)
        return [1.0 / math.sqrt(total) if total else 0.0 for _ in fan_ins]
    n = len(fan_ins)
    return [1.0 / math.sqrt(n * f) if f else 0.0 for f in fan_ins]


@functools.cache
def _uvu_plan(irreps1: Irreps, irreps2: Irreps, keep, irrep_normalization, path_normalization):
    pairs = _pairs(irreps1, irreps2, keep, irrep_normalization)
    entries, w_start, per_pair = [], 0, []
    for n, pair in enumerate(pairs):
        mul1, mul2 = irreps1[pair.a].mul, irreps2[pair.b].mul
        k_total = pair.tensor.shape[-1]
        n_paths = len(pair.outs)
        # selector (P, K): path p owns the components of its output irrep, scaled by alpha
        alpha = _alpha([mul2], path_normalization)[0]  # each path sums over v only
        select = np.zeros((n_paths, k_total))
        for p, (ir, off) in enumerate(zip(pair.outs, pair.offsets)):
            select[p, off : off + ir.dim] = alpha
            entries.append((mul1, ir, (n, off, ir.dim)))
        select.setflags(write=False)
        per_pair.append((pair, select, w_start, n_paths * mul1 * mul2))
        w_start += n_paths * mul1 * mul2
    irreps_out, sources = _order(entries)
    return per_pair, irreps_out, sources, w_start


def channelwise_tensor_product_irreps(
    irreps1, irreps2, *, filter_ir_out=None
) -> tuple[Irreps, int]:
    """Output irreps and number of weights of :func:`channelwise_tensor_product`.

    Args:
      irreps1, irreps2: the input irreps.
      filter_ir_out: as in :func:`channelwise_tensor_product`.

    Returns:
      ``(irreps_out, num_weights)``.

    Examples:
      >>> from geomjax.equivariant import channelwise_tensor_product_irreps
      >>> channelwise_tensor_product_irreps("8x0e + 8x1o", "0e + 1o + 2e", filter_ir_out="0e + 1o")
      (16x0e+24x1o, 40)
    """
    fn = "channelwise_tensor_product_irreps"
    irreps1 = _as_irreps(fn, "irreps1", irreps1).regroup()
    irreps2 = _as_irreps(fn, "irreps2", irreps2).regroup()
    keep = _filter_key(fn, filter_ir_out)
    _, irreps_out, _, n_w = _uvu_plan(irreps1, irreps2, keep, "component", "element")
    return irreps_out, n_w


def _weights_flat(fn: str, weights, n_w: int, lead: tuple[int, ...], dtype) -> Array:
    if isinstance(weights, (list, tuple)):
        parts = [jnp.asarray(w) for w in weights]
        if not parts:
            raise ValueError(f"{fn}: argument `weights` must not be an empty list")
        shp = jnp.broadcast_shapes(*[p.shape[:-1] for p in parts])
        weights = jnp.concatenate([jnp.broadcast_to(p, shp + p.shape[-1:]) for p in parts], -1)
    w = _check_weights(fn, weights, n_w, "one weight per path and channel pair")
    try:
        jnp.broadcast_shapes(w.shape[:-1], lead)
    except ValueError as err:
        raise ValueError(
            f"{fn}: argument `weights` leading shape {w.shape[:-1]} does not broadcast with the "
            f"inputs' {lead}"
        ) from err
    return w.astype(dtype)


def channelwise_tensor_product(
    x1: IrrepsArray,
    x2: IrrepsArray,
    weights: ArrayLike | Sequence[ArrayLike],
    *,
    filter_ir_out=None,
    irrep_normalization: str = "component",
    path_normalization: str = "element",
) -> IrrepsArray:
    r"""Channelwise ("uvu") weighted tensor product, the message of NequIP-style convolutions.

    For every path :math:`p = (a, b, l_3)` (entry :math:`a` of ``x1`` with multiplicity
    :math:`U`, entry :math:`b` of ``x2`` with multiplicity :math:`V`, output degree
    :math:`l_3`) and channel :math:`u`:

    .. math::

        z^{(p)}_{u,k} = \alpha_p \sum_{v} w^{(p)}_{uv} \sum_{ij} \tilde C_{ijk}\, x_{1,ui}\,
        x_{2,vj}, \qquad \alpha_p = 1/\sqrt{V},

    so channels are never mixed (cheap, :math:`O(U)` weights per path) and weights may vary
    per edge, e.g. from a radial MLP of the edge length. Each path is its own output entry
    (``U x l_3``); the outputs are sorted and regrouped. ``path_normalization`` is
    ``"element"`` or ``"path"`` (equal here: each output sums one path over :math:`V`).

    Args:
      x1: features, ``IrrepsArray`` ``(..., irreps1.dim)`` (inputs are regrouped first).
      x2: e.g. edge spherical harmonics, ``IrrepsArray`` ``(..., irreps2.dim)``.
      weights: ``(..., num_weights)`` with ``num_weights`` from
        :func:`channelwise_tensor_product_irreps`, laid out path-major then ``(u, v)``; or a
        list of one ``(..., U V)`` array per path. Leading axes broadcast with the inputs'.
      filter_ir_out: output irreps to keep, or ``None``.
      irrep_normalization: ``"component"``, ``"norm"`` or ``"none"``.
      path_normalization: ``"element"`` or ``"path"``.

    Returns:
      ``IrrepsArray`` of shape ``(..., irreps_out.dim)``.

    Raises:
      TypeError: naming ``x1``, ``x2`` or ``weights``.
      ValueError: naming ``weights`` (shape), ``filter_ir_out`` or an option.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, channelwise_tensor_product,
      ...     channelwise_tensor_product_irreps, spherical_harmonics)
      >>> x = IrrepsArray("4x0e + 4x1o", jnp.ones((10, 16)))
      >>> sh = spherical_harmonics([0, 1, 2], jax.random.normal(jax.random.key(0), (10, 3)), True)
      >>> irreps_out, n_w = channelwise_tensor_product_irreps(x.irreps, sh.irreps)
      >>> z = channelwise_tensor_product(x, sh, jnp.ones((10, n_w)))
      >>> z.irreps, z.shape
      (8x0e+12x1o+4x1e+8x2e+4x2o+4x3o, (10, 144))

    References:
      N. Thomas et al., "Tensor field networks", arXiv:1802.08219 (2018).
      S. Batzner et al., "E(3)-equivariant graph neural networks for data-efficient and
      accurate interatomic potentials" (NequIP), Nat. Commun. 13, 2453 (2022),
      arXiv:2101.03164.
    """
    fn = "channelwise_tensor_product"
    x1 = _check_irreps_array(fn, "x1", x1)
    x2 = _check_irreps_array(fn, "x2", x2)
    check_option(fn, "irrep_normalization", irrep_normalization, _IRREP_NORMS)
    check_option(fn, "path_normalization", path_normalization, _PATH_NORMS)
    keep = _filter_key(fn, filter_ir_out)
    lead = _check_same_lead(fn, x1, x2)
    x1, x2 = x1.regroup(), x2.regroup()
    per_pair, irreps_out, sources, n_w = _uvu_plan(
        x1.irreps, x2.irreps, keep, irrep_normalization, path_normalization
    )
    dtype = jnp.result_type(x1.dtype, x2.dtype)
    w = _weights_flat(fn, weights, n_w, lead, dtype)
    lead = tuple(jnp.broadcast_shapes(lead, w.shape[:-1]))
    c1, c2 = x1.chunks, x2.chunks
    parts = []
    for pair, select, w0, nw in per_pair:
        mul1, mul2 = x1.irreps[pair.a].mul, x2.irreps[pair.b].mul
        a = jnp.broadcast_to(c1[pair.a], lead + c1[pair.a].shape[-2:]).astype(dtype)
        b = jnp.broadcast_to(c2[pair.b], lead + c2[pair.b].shape[-2:]).astype(dtype)
        wp = w[..., w0 : w0 + nw].reshape(w.shape[:-1] + (len(pair.outs), mul1, mul2))
        wk = jnp.einsum("...puv,pk->...uvk", wp, jnp.asarray(select, dtype))
        t = jnp.asarray(pair.tensor, dtype)
        # (..., u, K): one contraction, ordered by flops (x2 with the tensor first)
        parts.append(jnp.einsum("...ui,...vj,ijk,...uvk->...uk", a, b, t, wk, optimize="optimal"))
    return IrrepsArray._unchecked(irreps_out, _assemble(parts, sources, lead, dtype, 1))


def init_channelwise_tensor_product(
    key: jax.Array, irreps1, irreps2, *, filter_ir_out=None, dtype=jnp.float32
) -> Array:
    """Standard-normal weights ``(num_weights,)`` for :func:`channelwise_tensor_product`
    (the normalization constants live in the product, so unit-variance weights keep
    unit-variance outputs).

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import init_channelwise_tensor_product
      >>> init_channelwise_tensor_product(jax.random.key(0), "4x0e", "0e + 1o").shape
      (8,)
    """
    fn = "init_channelwise_tensor_product"
    _check_key(fn, key)
    _, n_w = channelwise_tensor_product_irreps(irreps1, irreps2, filter_ir_out=filter_ir_out)
    return jax.random.normal(key, (n_w,), dtype)


# -- fully connected ("uvw") tensor product ----------------------------------------------------


@functools.cache
def _uvw_plan(irreps1, irreps2, irreps_out, irrep_normalization, path_normalization):
    keep = tuple(sorted({ir for mul, ir in irreps_out if mul > 0}))
    pairs = _pairs(irreps1, irreps2, keep, irrep_normalization)
    # paths into each output entry c: (pair index, offset in K, fan-in)
    into = [[] for _ in irreps_out]
    for n, pair in enumerate(pairs):
        fan = irreps1[pair.a].mul * irreps2[pair.b].mul
        for ir, off in zip(pair.outs, pair.offsets):
            for c, (mul_c, ir_c) in enumerate(irreps_out):
                if ir_c == ir and mul_c > 0:
                    into[c].append((n, off, fan))
    plan, w_start = [], 0
    for c, (mul_c, _) in enumerate(irreps_out):
        paths = into[c]
        alphas = _alpha([f for _, _, f in paths], path_normalization)
        rows = (
            np.concatenate([np.full(f, al) for (_, _, f), al in zip(paths, alphas)])
            if paths
            else np.zeros(0)
        )
        rows.setflags(write=False)
        n_w = sum(f for _, _, f in paths) * mul_c
        plan.append((tuple(paths), rows, w_start, n_w))
        w_start += n_w
    return pairs, tuple(plan), w_start


def fully_connected_tensor_product_num_weights(irreps1, irreps2, irreps_out) -> int:
    """Number of weights of :func:`fully_connected_tensor_product`."""
    fn = "fully_connected_tensor_product"
    i1 = _as_irreps(fn, "irreps1", irreps1)
    i2 = _as_irreps(fn, "irreps2", irreps2)
    io = _as_irreps(fn, "irreps_out", irreps_out)
    return _uvw_plan(i1, i2, io, "component", "element")[2]


def fully_connected_tensor_product(
    x1: IrrepsArray,
    x2: IrrepsArray,
    weights: ArrayLike,
    irreps_out,
    *,
    irrep_normalization: str = "component",
    path_normalization: str = "element",
) -> IrrepsArray:
    r"""Fully connected ("uvw") weighted tensor product onto given output irreps.

    Every path :math:`p = (a, b, c)` with :math:`l_c \in l_a \otimes l_b` mixes all channel
    pairs into every output channel:

    .. math::

        z_{c, wk} = \sum_{p \to c} \alpha_p \sum_{uv} W^{(p)}_{uvw} \sum_{ij}
        \tilde C_{ijk}\, x_{1,ui}\, x_{2,vj},

    with :math:`\alpha_p = (\sum_{p' \to c} U_{p'} V_{p'})^{-1/2}` (``"element"``: every
    product of channels counts once in the fan-in of an output) or
    :math:`(n_c U_p V_p)^{-1/2}` (``"path"``: each of the :math:`n_c` paths into :math:`c`
    weighs the same), e3nn's path normalizations. Unit-variance weights and inputs give
    unit-variance outputs. Output entries no path reaches are zero.

    Args:
      x1, x2: ``IrrepsArray`` inputs (not regrouped: the paths follow their entries).
      weights: ``(num_weights,)`` (or with leading axes broadcasting with the inputs), from
        :func:`init_fully_connected_tensor_product`; layout: output entry-major, then path,
        then ``(u, v, w)``.
      irreps_out: the output irreps.
      irrep_normalization: ``"component"``, ``"norm"`` or ``"none"``.
      path_normalization: ``"element"`` or ``"path"``.

    Returns:
      ``IrrepsArray`` of ``irreps_out``, shape ``(..., irreps_out.dim)``.

    Raises:
      TypeError, ValueError: naming the argument.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, fully_connected_tensor_product,
      ...     init_fully_connected_tensor_product)
      >>> x = IrrepsArray("2x0e + 2x1o", jnp.ones(8))
      >>> w = init_fully_connected_tensor_product(jax.random.key(0), x.irreps, x.irreps, "3x0e + 1x1e")
      >>> w.shape, fully_connected_tensor_product(x, x, w, "3x0e + 1x1e").shape
      ((28,), (6,))

    References:
      N. Thomas et al., "Tensor field networks", arXiv:1802.08219 (2018).
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "fully_connected_tensor_product"
    x1 = _check_irreps_array(fn, "x1", x1)
    x2 = _check_irreps_array(fn, "x2", x2)
    irreps_out = _as_irreps(fn, "irreps_out", irreps_out)
    check_option(fn, "irrep_normalization", irrep_normalization, _IRREP_NORMS)
    check_option(fn, "path_normalization", path_normalization, _PATH_NORMS)
    lead = _check_same_lead(fn, x1, x2)
    pairs, plan, n_w = _uvw_plan(
        x1.irreps, x2.irreps, irreps_out, irrep_normalization, path_normalization
    )
    dtype = jnp.result_type(x1.dtype, x2.dtype)
    w = _weights_flat(fn, weights, n_w, lead, dtype)
    lead = tuple(jnp.broadcast_shapes(lead, w.shape[:-1]))
    c1, c2 = x1.chunks, x2.chunks
    prods = []
    for pair in pairs:
        a = jnp.broadcast_to(c1[pair.a], lead + c1[pair.a].shape[-2:]).astype(dtype)
        b = jnp.broadcast_to(c2[pair.b], lead + c2[pair.b].shape[-2:]).astype(dtype)
        t = _pair_product(a, b, pair.tensor)
        prods.append(t.reshape(lead + (-1, t.shape[-1])))  # (..., u v, K)
    outs = []
    for (mul_c, ir_c), (paths, rows, w0, nw) in zip(irreps_out, plan):
        if not paths or mul_c == 0:
            outs.append(jnp.zeros(lead + (mul_c * ir_c.dim,), dtype))
            continue
        fan = jnp.concatenate(
            [prods[n][..., off : off + ir_c.dim] for n, off, _ in paths], axis=-2
        )  # (..., F, k)
        wc = w[..., w0 : w0 + nw].reshape(w.shape[:-1] + (len(rows), mul_c))
        wc = wc * jnp.asarray(rows, dtype)[:, None]
        z = jnp.einsum("...fk,...fw->...wk", fan, wc)
        outs.append(z.reshape(lead + (mul_c * ir_c.dim,)))
    flat = _concat_flat(outs, lead, dtype)
    return IrrepsArray._unchecked(irreps_out, flat)


def init_fully_connected_tensor_product(
    key: jax.Array, irreps1, irreps2, irreps_out, *, dtype=jnp.float32
) -> Array:
    """Standard-normal weights ``(num_weights,)`` for :func:`fully_connected_tensor_product`.

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import init_fully_connected_tensor_product
      >>> init_fully_connected_tensor_product(jax.random.key(0), "0e", "1o", "2x1o").shape
      (2,)
    """
    fn = "init_fully_connected_tensor_product"
    _check_key(fn, key)
    n_w = fully_connected_tensor_product_num_weights(irreps1, irreps2, irreps_out)
    return jax.random.normal(key, (n_w,), dtype)


def _check_key(fn: str, key) -> None:
    check_key(fn, "key", key)
