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
weights depend on the species and the channel. Channels are never mixed. It is evaluated
Horner-style, from the highest degree down, so no :math:`a^{\otimes\nu}` is formed:

.. math::

    t_N = \textstyle\sum_{j,k} a_{c,j}\, w_{N,k}\, U^{(N)}_{\ldots j\,M k}
          + \sum_k w_{N-1,k} U^{(N-1)}_{\ldots M k}, \qquad
    t_{\nu-1} = \textstyle\sum_j t_{\nu,\ldots j} a_{c,j} + \sum_k w_{\nu-1,k}
          U^{(\nu-1)}_{\ldots M k},

the first step one matrix product per output irrep with the species weights folded in
(contraction length :math:`d K_N + K_{N-1}`), each later step a contraction with :math:`a`.
The largest intermediate has :math:`d^{N-1} (2L+1)` numbers per node and channel.

References:
  I. Batatia, D. P. Kovacs, G. N. C. Simm, C. Ortner, G. Csanyi, "MACE: Higher Order
  Equivariant Message Passing Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022,
  arXiv:2206.07697.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, check_key
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray
from geomjax.equivariant._symmetric_basis import _symmetric_basis, check_basis_args

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


@functools.cache
def _plan(irreps_in: Irreps, irreps_out: tuple[Irrep, ...], correlation: int):
    """Per output irrep: ``(ir, [(nu, U (d^nu, 2L+1, K), weight offset)], K_L)``; total weights."""
    plan, start = [], 0
    for ir in irreps_out:
        terms = []
        for nu in range(1, correlation + 1):
            u = _symmetric_basis(irreps_in, ir, nu)
            if u.shape[-1]:
                terms.append((nu, u, start))
                start += u.shape[-1]
        plan.append((ir, tuple(terms), sum(u.shape[-1] for _, u, _ in terms)))
    return tuple(plan), start


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
    return _plan(*_args(fn, irreps_in, irreps_out, correlation))[1]


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


def _contract(a: Array, w: Array, terms, n_paths: int) -> Array:
    """Horner evaluation of one output irrep: ``a`` (b, c, d), ``w`` (b, c, K_all) -> (b, c, M)."""
    b, c, d = a.shape
    dtype = a.dtype
    by_nu = {nu: (jnp.asarray(u, dtype), w0) for nu, u, w0 in terms}
    top = max(by_nu)
    m = terms[0][1].shape[-2]

    def weights(nu):
        u, w0 = by_nu[nu]
        return w[..., w0 : w0 + u.shape[-1]]

    # First step: sum_{j,k} a_j w_{top,k} U[.., j, M, k] (+ the degree top-1 term), one product.
    u_top, _ = by_nu[top]
    lhs = (a[..., :, None] * weights(top)[..., None, :]).reshape(b, c, -1)  # (b, c, d K)
    rhs = jnp.moveaxis(u_top, top - 1, -2)  # (d^{top-1}, M, d, K)
    rhs = rhs.reshape((d ** (top - 1)) * m, -1).T  # (d K, d^{top-1} M)
    if top - 1 in by_nu:
        u_next, _ = by_nu[top - 1]
        lhs = jnp.concatenate([lhs, weights(top - 1)], axis=-1)
        rhs = jnp.concatenate([rhs, u_next.reshape(-1, u_next.shape[-1]).T], axis=0)
    t = (lhs @ rhs).reshape((b, c) + (d,) * (top - 1) + (m,))
    # Later steps: contract the last input index with a, add the next lower degree.
    for nu in range(top - 1, 0, -1):
        t = jnp.einsum("bc...jm,bcj->bc...m", t, a)
        if nu - 1 in by_nu:
            u, _ = by_nu[nu - 1]
            t = t + jnp.einsum("...mk,bck->bc...m", u, weights(nu - 1))
    return t / math.sqrt(n_paths)


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
    plan, n_w = _plan(irreps_in, irs_out, correlation)
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
    parts = []
    for ir, terms, n_paths in plan:
        if not terms:
            parts.append(jnp.zeros(a.shape[:2] + (ir.dim,), dtype))
        else:
            parts.append(_contract(a, w, terms, n_paths))
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
