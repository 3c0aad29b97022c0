r"""MACE's symmetric contraction: channelwise equivariant polynomials of a node's features.

For each channel :math:`c` of a node with species :math:`s`, the per-channel feature
:math:`a_c \in V = \bigoplus_j (l_j, p_j)` (the node's "atomic basis" :math:`A`) is mapped to

.. math::

    B^{(L)}_{c,M} = \frac{1}{\sqrt{K_L}} \sum_{\nu=1}^{N} \sum_{k=1}^{K_{\nu,L}}
        w^{(s)}_{L,\nu,k,c}\, \sum_{i_1..i_\nu} U^{(\nu,L)}_{i_1..i_\nu M k}\,
        a_{c,i_1} \cdots a_{c,i_\nu},
    \qquad K_L = \sum_\nu K_{\nu,L},

for each output irrep :math:`L` of ``irreps_out``, where :math:`U^{(\nu,L)}_{\cdot k}` runs
over an orthogonal basis of the symmetric equivariant degree-:math:`\nu` tensors
(:func:`~geomjax.equivariant._symmetric_basis.symmetric_basis`: every :math:`(L, P)`-valued
polynomial of :math:`a_c` of degree :math:`\le N` is one choice of the weights), and the
weights depend on the species and the channel. Channels are never mixed.

**Evaluation.** Only the symmetric part of a tensor contracted with :math:`a^{\otimes\nu}`
matters, so the polynomials are evaluated by coupling the irrep blocks of :math:`a` along
multisets of blocks :math:`j_1 \le \dots \le j_\nu`, one small Clebsch-Gordan matrix
product per multiset (:mod:`geomjax.equivariant._symmetric_paths`); the output-irrep blocks
of these features (the *paths* :math:`f_p`) span the same space as the basis, with
:math:`U_k = \sum_p R_{kp} S_p` solved once in float64. Then

.. math::

    B^{(L)}_{c} = \frac{1}{\sqrt{K_L}} \sum_\nu \sum_p \big(w^{(s)}_{L,\nu,\cdot,c}
        R^{(\nu,L)}\big)_p\, f_p(a_c),

a few thousand multiply-adds per node and channel for MACE's sizes (``0e + 1o + 2e + 3o``,
:math:`\nu = 3`, outputs ``0e + 1o``: 200 intermediate numbers, 36 paths), where the dense
tensors would need :math:`d^\nu (2L+1) K` (about :math:`2 \cdot 10^5`).

References:
  I. Batatia, D. P. Kovacs, G. N. C. Simm, C. Ortner, G. Csanyi, "MACE: Higher Order
  Equivariant Message Passing Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022,
  arXiv:2206.07697.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, check_key
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._symmetric_basis import check_basis_args
from geomjax.equivariant._symmetric_paths import SymmetricPlan, symmetric_plan

__all__ = [
    "init_symmetric_contraction",
    "symmetric_contraction",
    "symmetric_contraction_num_weights",
]

_MAX_CORRELATION = 4


def _check_irreps_out(fn: str, irreps_out) -> tuple[Irrep, ...]:
    try:
        irreps_out = Irreps(irreps_out)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `irreps_out` is not valid irreps: {err}") from err
    irs = [ir for mul, ir in irreps_out for _ in range(mul)]
    if not irs or len(set(irs)) != len(irs):
        raise ValueError(
            f"{fn}: argument `irreps_out` must list each irrep once (the irreps of one channel, "
            f"e.g. '0e + 1o'); got {irreps_out!r}"
        )
    return tuple(irs)


def _check_correlation(fn: str, correlation) -> int:
    if (
        isinstance(correlation, bool)
        or not isinstance(correlation, (int, np.integer))
        or not 1 <= correlation <= _MAX_CORRELATION
    ):
        raise ValueError(
            f"{fn}: argument `correlation` must be an int in [1, {_MAX_CORRELATION}]; got "
            f"{correlation!r}"
        )
    return int(correlation)


def _args(fn: str, irreps_in, irreps_out, correlation):
    irreps_in, _, _ = check_basis_args(fn, irreps_in, "0e", 1)
    return irreps_in, _check_irreps_out(fn, irreps_out), _check_correlation(fn, correlation)


def symmetric_contraction_num_weights(irreps_in, irreps_out, correlation: int) -> int:
    """Weights per species and channel of :func:`symmetric_contraction`.

    Args:
      irreps_in: the irreps of one channel, each irrep once (e.g. ``"0e + 1o + 2e + 3o"``).
      irreps_out: the output irreps of one channel, each once (e.g. ``"0e + 1o"``).
      correlation: the highest degree :math:`N` (1 to 4).

    Returns:
      :math:`\\sum_L \\sum_{\\nu \\le N} K_{\\nu, L}`.

    Examples:
      >>> from geomjax.equivariant import symmetric_contraction_num_weights
      >>> symmetric_contraction_num_weights("0e + 1o", "0e", 3)  # a0, a0^2, |a1|^2, a0^3, a0|a1|^2
      5
    """
    fn = "symmetric_contraction_num_weights"
    return symmetric_plan(*_args(fn, irreps_in, irreps_out, correlation)).n_weights


def _channels(fn: str, x) -> tuple[Irreps, int]:
    if not isinstance(x, IrrepsArray):
        raise TypeError(
            f"{fn}: argument `x` must be an IrrepsArray; got {type(x).__name__} (wrap plain data "
            "as IrrepsArray(irreps, array))"
        )
    muls = {mul for mul, _ in x.irreps}
    if len(muls) != 1:
        raise ValueError(
            f"{fn}: argument `x` must have the same number of channels for every irrep (e.g. "
            f"'8x0e + 8x1o'); got irreps {x.irreps!r}"
        )
    return Irreps([(1, ir) for _, ir in x.irreps]), muls.pop()


def _per_channel(x: IrrepsArray) -> Array:
    """``(..., C, d)``: each channel's components of all irreps, in ``x.irreps`` order."""
    return jnp.concatenate(x.chunks, axis=-1) if len(x.irreps) > 1 else x.chunks[0]


def _evaluate(a: Array, w: Array, irreps_in: Irreps, plan: SymmetricPlan) -> list[Array]:
    """Coupling steps then the weighted path sums: ``a`` (b, c, d), ``w`` (b, c, n_w) -> one
    (b, c, 2L+1) array per output irrep."""
    b, c, _ = a.shape
    dtype = a.dtype
    feats = {(j,): a[..., s] for j, s in enumerate(irreps_in.slices())}
    for step in plan.steps:
        parent, block = feats[step.parent], feats[(step.block,)]
        new = []
        for off, dim, matrix in step.parts:
            outer = parent[..., off : off + dim, None] * block[..., None, :]
            new.append(outer.reshape(b, c, -1) @ jnp.asarray(matrix, dtype))
        feats[step.seq] = jnp.concatenate(new, axis=-1) if len(new) > 1 else new[0]
    outs = []
    for out in plan.outputs:
        m = out.ir.dim
        if not out.terms:
            outs.append(jnp.zeros((b, c, m), dtype))
            continue
        total = 0.0
        for term in out.terms:
            paths = jnp.stack(
                [feats[seq][..., off : off + m] for seq, offs in term.picks for off in offs],
                axis=-2,
            )  # (b, c, P, M)
            v = w[..., term.w0 : term.w0 + term.k] @ jnp.asarray(term.r, dtype)  # (b, c, P)
            total = total + jnp.einsum("bcp,bcpm->bcm", v, paths)
        outs.append(total / math.sqrt(out.n_paths))
    return outs


def symmetric_contraction(
    x: IrrepsArray,
    species: ArrayLike,
    weights: ArrayLike,
    *,
    irreps_out,
    correlation: int,
) -> IrrepsArray:
    r"""MACE's symmetric contraction of a node's channels (module docstring for the math).

    Args:
      x: the features, ``IrrepsArray`` of irreps ``C x ir_1 + C x ir_2 + ...`` (every irrep once,
        the same ``C`` channels each), shape ``(..., C d)``.
      species: integer species index per node, shape ``(...)`` (the leading shape of ``x``),
        values in ``[0, n_species)``.
      weights: ``(n_species, num_weights, C)`` with ``num_weights`` from
        :func:`symmetric_contraction_num_weights`, laid out by output irrep, then degree
        :math:`\nu`, then basis index.
      irreps_out: the output irreps of one channel, each once (e.g. ``"0e + 1o"``); an irrep no
        polynomial of degree :math:`\le N` reaches gives zeros.
      correlation: the highest degree :math:`N` (1 to 4; MACE uses 3).

    Returns:
      ``IrrepsArray`` of irreps ``C x irreps_out`` (in the given order), shape
      ``(..., C * irreps_out.dim)``.

    Raises:
      TypeError: naming ``x`` (not an IrrepsArray) or ``species`` (not integer).
      ValueError: naming ``x``, ``species``, ``weights``, ``irreps_out`` or ``correlation``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, init_symmetric_contraction,
      ...     symmetric_contraction)
      >>> x = IrrepsArray("8x0e + 8x1o + 8x2e", jax.random.normal(jax.random.key(0), (5, 72)))
      >>> w = init_symmetric_contraction(jax.random.key(1), "0e + 1o + 2e", "0e + 1o", 3,
      ...                                n_species=2, n_channels=8)
      >>> y = symmetric_contraction(x, jnp.array([0, 1, 1, 0, 1]), w, irreps_out="0e + 1o",
      ...                           correlation=3)
      >>> y.irreps, y.shape
      (8x0e+8x1o, (5, 32))

    References:
      I. Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural Networks for
      Fast and Accurate Force Fields", NeurIPS 2022, arXiv:2206.07697.
    """
    fn = "symmetric_contraction"
    irreps_in, n_channels = _channels(fn, x)
    irreps_in, irs_out, correlation = _args(fn, irreps_in, irreps_out, correlation)
    plan = symmetric_plan(irreps_in, irs_out, correlation)
    n_w = plan.n_weights
    lead = x.shape[:-1]
    species = jnp.asarray(species)
    if not jnp.issubdtype(species.dtype, jnp.integer):
        raise TypeError(f"{fn}: argument `species` must be integer; got dtype {species.dtype}")
    if species.shape != lead:
        raise ValueError(
            f"{fn}: argument `species` must have the leading shape of `x`, {lead}; got "
            f"{species.shape}"
        )
    weights = jnp.asarray(weights)
    if weights.ndim != 3 or weights.shape[1:] != (n_w, n_channels):
        raise ValueError(
            f"{fn}: argument `weights` must have shape (n_species, {n_w}, {n_channels}) for "
            f"these irreps and correlation {correlation}; got {weights.shape}"
        )
    dtype = jnp.result_type(x.dtype, weights.dtype)
    a = _per_channel(x).astype(dtype).reshape(-1, n_channels, irreps_in.dim)
    w = jnp.swapaxes(weights.astype(dtype)[species.reshape(-1)], -1, -2)  # (b, C, n_w)
    parts = _evaluate(a, w, irreps_in, plan)
    out = jnp.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=-1)
    irreps = Irreps([(n_channels, ir) for ir in irs_out])
    return IrrepsArray._unchecked(irreps, out.reshape(lead + (irreps.dim,)))


def init_symmetric_contraction(
    key: jax.Array,
    irreps_in,
    irreps_out,
    correlation: int,
    *,
    n_species: int,
    n_channels: int,
    dtype=jnp.float32,
) -> Array:
    """Standard-normal weights ``(n_species, num_weights, n_channels)`` for
    :func:`symmetric_contraction` (the :math:`1/\\sqrt{K_L}` lives in the contraction).

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import init_symmetric_contraction
      >>> init_symmetric_contraction(jax.random.key(0), "0e + 1o", "0e", 3, n_species=3,
      ...                            n_channels=4).shape
      (3, 5, 4)
    """
    fn = "init_symmetric_contraction"
    check_key(fn, "key", key)
    n_w = symmetric_contraction_num_weights(irreps_in, irreps_out, correlation)
    for name, value in (("n_species", n_species), ("n_channels", n_channels)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{fn}: argument `{name}` must be an int >= 1; got {value!r}")
    return jax.random.normal(key, (n_species, n_w, n_channels), dtype)
