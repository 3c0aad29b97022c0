r"""SO(2) ("eSCN") convolution: the Clebsch-Gordan convolution with an edge filter, evaluated in
a frame where the edge points along the polar axis.

For an edge with unit direction :math:`\hat r` and a rotation :math:`R_e` with
:math:`R_e \hat r = \hat y` (the polar axis of the harmonics), the spherical harmonics of the
rotated edge are nonzero only at :math:`m = 0`, so the Clebsch-Gordan product with them couples
the component :math:`\pm m` of an input degree :math:`l_1` only to the components
:math:`\pm m` of an output degree :math:`l_3`. In e3nn's real basis the coupling is a 2x2
block per :math:`m \ge 1`, a multiple of the identity when :math:`p_1 (-1)^{l_1} = p_3
(-1)^{l_3}` ("even" pairs: :math:`l_1 + l_f + l_3` even) and of
:math:`\bigl(\begin{smallmatrix}0 & 1\\ -1 & 0\end{smallmatrix}\bigr)` otherwise ("odd" pairs,
the cross-product-like paths; they vanish at :math:`m = 0`). For each channel :math:`u`:

.. math::

    \tilde x = D(R_e)\, x, \qquad
    \begin{pmatrix} \tilde z_{b,+m} \\ \tilde z_{b,-m} \end{pmatrix}
      = \sum_{a:\, l_a \ge m} W^{(m)}_{ab,u}
      \begin{cases}
        (\tilde x_{a,+m},\ \tilde x_{a,-m}) & \text{even pair} \\
        (\tilde x_{a,-m},\ -\tilde x_{a,+m}) & \text{odd pair}
      \end{cases}, \qquad
    \tilde z_{b,0} = \sum_{a \text{ even}} W^{(0)}_{ab,u}\, \tilde x_{a,0},
    \qquad z = D(R_e)^\top \tilde z,

for :math:`m \le m_{\max}` (components :math:`|m| > m_{\max}` of :math:`\tilde z` are zero).
The weights :math:`W` (per edge, e.g. from a radial network) are in one-to-one correspondence
with the paths :math:`(l_1, l_f, l_3)` of the channelwise CG convolution with the harmonics of
all degrees :math:`l_f \le l_1 + l_3` (Passaro & Zitnick): for each pair :math:`(l_1, l_3)`
there are :math:`\min(l_1, l_3) + 1` even and :math:`\min(l_1, l_3)` odd couplings on both
sides. :func:`channelwise_to_so2_weights` maps the per-path weights of
:func:`~geomjax.equivariant.channelwise_tensor_product` with
:func:`~geomjax.equivariant.spherical_harmonics` of the edge to :math:`W`. The cost per edge
and channel is :math:`O(L^3)` (the rotations and the per-:math:`m` blocks) against
:math:`O(L^5)`-:math:`O(L^6)` for the CG product.

Frame (deterministic, no random roll). With :math:`\hat r = (x, y, z)`, :math:`\rho =
\sqrt{x^2 + z^2}`, :math:`R_e = R_x(-\beta) R_y(-\alpha)` with :math:`(\cos\alpha, \sin\alpha)
= (z, x)/\rho`, :math:`(\cos\beta, \sin\beta) = (y, \rho)`, so :math:`D(R_e) = J\, D_y(-\beta)\,
J^\top D_y(-\alpha)` with the closed-form rotations :math:`D_y` about the polar axis (a
cosine/sine per :math:`m`, applied elementwise) and the constant :math:`J = D(R_z(-\pi/2))`.
These are applied to the identity to build each edge's Wigner matrix once per degree
(:math:`O((2l+1)^3)` per edge, independent of the channels), then each direction of rotation
is one batched product per degree over the channels (measured 2x faster on the CPU than
applying the four factors to the features). No angle
is computed: :math:`\cos m\alpha, \sin m\alpha` come from the complex powers of
:math:`(\cos\alpha + i \sin\alpha)`. This frame is singular on the polar axis; edges within
45 degrees of it (:math:`|y| > 1/\sqrt 2`) use the frame of :math:`Q \hat r` times :math:`Q =
R_z(-\pi/2)` (:math:`D(Q) = J`), singular only on the :math:`x` axis, so :math:`\rho \ge
1/\sqrt 2` in both charts and every derivative is bounded. The result does not depend on the
roll about the edge (the SO(2) map commutes with :math:`D_y`), so the chart switch is invisible
up to round-off. A zero-length edge has no direction: it is treated as pointing along
:math:`+y` (identity frame), finite with finite gradients, but then the output is not
rotation-equivariant (mask or cut off such edges, e.g. self-loops). A non-finite edge vector
gives NaN outputs for its edge (NaN in, NaN out), other edges are unaffected.

Weight layout (``(..., num_weights)``, one vector per edge, leading axes broadcast with those
of ``x`` and ``edge_vec``). ``x`` has ``C`` channels of each of its (regrouped) irreps
:math:`a`; output entry :math:`b` of ``irreps_out`` has ``k_b C`` copies, laid out copy-major
then channel (the layout of the channelwise product's paths), giving "rows" :math:`(b, k)`.
Each irrep has a signature :math:`s = p (-1)^l` (even pairs: equal signatures). The weights are
the concatenation, for :math:`m = 0, 1, \dots, m_{\max}` and then for the output signature
:math:`\sigma = +1, -1` (skipping empty blocks), of row-major blocks of shape
``(n_in, n_rows, C)``: ``n_rows`` the rows :math:`(b, k)` with :math:`l_b \ge m` and
:math:`s_b = \sigma` in order, ``n_in`` the input entries with :math:`l_a \ge m` in order (at
:math:`m = 0` only those with :math:`s_a = \sigma`). :func:`so2_convolution_num_weights` counts
them; :func:`init_so2_convolution` draws them with variance ``1 / n_in`` per block.

Precision: the rotations are matrix products with (Wigner) rotation matrices, so the public
functions trace at full precision (:func:`geomjax._core.full_precision`; TF32 on GPUs would
otherwise cost float32 accuracy and equivariance).

References:
  S. Passaro, C. L. Zitnick, "Reducing SO(3) Convolutions to SO(2) for Efficient Equivariant
  GNNs" (eSCN), ICML 2023, arXiv:2302.03655.
  Y.-L. Liao, B. Wood, A. Das, T. Smidt, "EquiformerV2: Improved Equivariant Transformer for
  Scaling to Higher-Degree Representations", ICLR 2024, arXiv:2306.12059.
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep)
from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, check_key, full_precision
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray, _check_weights
from geomjax.equivariant._spherical_harmonics import _normalize_direction, _sh_numpy
from geomjax.equivariant._tensor_product import _filter_key, _uvu_plan
from geomjax.equivariant._wigner import _y_to_x

__all__ = [
    "channelwise_to_so2_weights",
    "init_so2_convolution",
    "so2_convolution",
    "so2_convolution_num_weights",
]

_HIGHEST = jax.lax.Precision.HIGHEST


# -- plan --------------------------------------------------------------------------------------


class _Block(NamedTuple):
    m: int
    sigma: int
    ins: tuple[int, ...]  # input entries
    rows: tuple[tuple[int, int], ...]  # output rows (entry b, copy k)
    start: int  # first weight
    size: int  # n_in * n_rows * C
    flip: tuple[bool, ...]  # per input: odd pair (signature != sigma)


class _Plan(NamedTuple):
    irreps_in: Irreps
    irreps_out: Irreps
    channels: int
    m_max: int
    blocks: tuple[_Block, ...]
    num_weights: int


def _sig(ir: Irrep) -> int:
    return ir.p * (-1) ** ir.l


def _as_irreps(fn: str, name: str, irreps) -> Irreps:
    try:
        return Irreps(irreps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `{name}` is not valid irreps: {err}") from err


def _channels(fn: str, irreps_in: Irreps) -> int:
    muls = {mul for mul, _ in irreps_in if mul > 0}
    if len(muls) != 1:
        raise ValueError(
            f"{fn}: argument `x` must have the same number of channels C > 0 for every irrep "
            f"(e.g. '8x0e + 8x1o + 8x2e'); got irreps {irreps_in!r}"
        )
    return muls.pop()


def _out_irreps(fn: str, irreps_out, channels: int) -> Irreps:
    if isinstance(irreps_out, numbers.Integral) and not isinstance(irreps_out, bool):
        if irreps_out < 0:
            raise ValueError(
                f"{fn}: argument `irreps_out` must be a non-negative degree or irreps; got "
                f"{irreps_out}"
            )
        return Irreps([(channels, Irrep(l, (-1) ** l)) for l in range(int(irreps_out) + 1)])
    if irreps_out is None:
        raise ValueError(f"{fn}: argument `irreps_out` must be a degree or irreps; got None")
    out = _as_irreps(fn, "irreps_out", irreps_out)
    for mul, _ in out:
        if mul % channels:
            raise ValueError(
                f"{fn}: argument `irreps_out` must have multiplicities that are multiples of the "
                f"{channels} channels of `x`; got {out!r}"
            )
    return out


def _check_m_max(fn: str, m_max) -> int | None:
    if m_max is None:
        return None
    if isinstance(m_max, bool) or not isinstance(m_max, numbers.Integral) or m_max < 0:
        raise ValueError(f"{fn}: argument `m_max` must be None or an int >= 0; got {m_max!r}")
    return int(m_max)


@functools.cache
def _plan(irreps_in: Irreps, irreps_out: Irreps, channels: int, m_max: int | None) -> _Plan:
    l_in = max((ir.l for mul, ir in irreps_in if mul), default=0)
    l_out = max((ir.l for mul, ir in irreps_out if mul), default=0)
    top = min(l_in, l_out) if m_max is None else min(l_in, l_out, m_max)
    rows_all = [(b, k) for b, (mul, _) in enumerate(irreps_out) for k in range(mul // channels)]
    blocks, start = [], 0
    for m in range(top + 1):
        for sigma in (1, -1):
            rows = tuple(
                (b, k)
                for b, k in rows_all
                if irreps_out[b].ir.l >= m and _sig(irreps_out[b].ir) == sigma
            )
            ins = tuple(
                a
                for a, (mul, ir) in enumerate(irreps_in)
                if mul and ir.l >= m and (m > 0 or _sig(ir) == sigma)
            )
            if not rows or not ins:
                continue
            flip = tuple(_sig(irreps_in[a].ir) != sigma for a in ins)
            size = len(ins) * len(rows) * channels
            blocks.append(_Block(m, sigma, ins, rows, start, size, flip))
            start += size
    return _Plan(irreps_in, irreps_out, channels, top, tuple(blocks), start)


def _prepare(fn: str, irreps_in, irreps_out, m_max) -> _Plan:
    irreps_in = _as_irreps(fn, "irreps_in", irreps_in).regroup()
    channels = _channels(fn, irreps_in)
    irreps_out = _out_irreps(fn, irreps_out, channels)
    return _plan(irreps_in, irreps_out, channels, _check_m_max(fn, m_max))


def so2_convolution_num_weights(irreps_in, irreps_out, *, m_max: int | None = None) -> int:
    """Number of weights per edge of :func:`so2_convolution` (layout: module docstring).

    Args:
      irreps_in: irreps of the features, ``C`` channels of each irrep (regrouped).
      irreps_out: output irreps (multiplicities multiples of ``C``), or an int ``L`` for
        ``C x (0e + 1o + ... + L)``.
      m_max: largest :math:`|m|` kept, ``None`` for all.

    Examples:
      >>> from geomjax.equivariant import so2_convolution_num_weights
      >>> so2_convolution_num_weights("4x0e + 4x1o", 1)  # m=0: 2x2, m=1: 1x1, times 4
      20
    """
    return _prepare("so2_convolution_num_weights", irreps_in, irreps_out, m_max).num_weights


def init_so2_convolution(
    key: jax.Array, irreps_in, irreps_out, *, m_max: int | None = None, dtype=jnp.float32
) -> Array:
    """Normal weights ``(num_weights,)`` for :func:`so2_convolution`, variance ``1 / n_in`` in
    each block (``n_in`` input entries mixed into a row), so unit-variance features in give
    outputs of unit variance per component.

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import init_so2_convolution
      >>> init_so2_convolution(jax.random.key(0), "4x0e + 4x1o", 1).shape
      (20,)
    """
    fn = "init_so2_convolution"
    check_key(fn, "key", key)
    plan = _prepare(fn, irreps_in, irreps_out, m_max)
    scale = np.concatenate([np.full(b.size, 1.0 / math.sqrt(len(b.ins))) for b in plan.blocks])
    w = jax.random.normal(key, (plan.num_weights,), dtype)
    return w * jnp.asarray(scale, dtype) if plan.num_weights else w


# -- frame -------------------------------------------------------------------------------------


def _frame(edge_vec: Array):
    """Chart flag and ``(cos, sin)`` of alpha and beta (module docstring), finite everywhere."""
    u = _normalize_direction(edge_vec)
    chart_b = jnp.abs(u[..., 1]) > 1 / math.sqrt(2)
    # Q = R_z(-pi/2): (x, y, z) -> (y, -x, z)
    v = jnp.where(chart_b[..., None], jnp.stack([u[..., 1], -u[..., 0], u[..., 2]], -1), u)
    rho2 = v[..., 0] ** 2 + v[..., 2] ** 2
    ok = rho2 > 0.25  # false only for a zero-length edge
    rho = jnp.sqrt(jnp.where(ok, rho2, 1.0))
    one, zero = jnp.ones_like(rho), jnp.zeros_like(rho)
    poison = jnp.sum(u - u, axis=-1)  # NaN for a non-finite edge (no silent identity frame)
    ca = jnp.where(ok, v[..., 2] / rho, one) + poison
    sa = jnp.where(ok, v[..., 0] / rho, zero) + poison
    cb = jnp.where(ok, v[..., 1], one) + poison
    sb = jnp.where(ok, rho, zero) + poison
    return chart_b, (ca, sa), (cb, sb)


def _harmonics(cs, lmax: int):
    """``cos(m t), sin(m t)`` for ``m = 0..lmax``, stacked on a last axis, from powers of
    ``cos t + i sin t`` (no angle)."""
    c, s = cs
    cos, sin = [jnp.ones_like(c)], [jnp.zeros_like(c)]
    for _ in range(lmax):
        cos_m, sin_m = cos[-1], sin[-1]
        cos.append(cos_m * c - sin_m * s)
        sin.append(sin_m * c + cos_m * s)
    return jnp.stack(cos, -1), jnp.stack(sin, -1)


def _rot_y(v: Array, l: int, cos: Array, sin: Array, sign: float) -> Array:
    """``D_y(sign * t) v`` on the last axis (components ``m = -l..l``): ``cos(m t) v_m -
    sign sin(m t) v_{-m}``; ``cos``/``sin`` of shape ``lead + (lmax + 1,)``, ``v`` of shape
    ``lead + (C, 2l + 1)``."""
    idx = np.abs(np.arange(-l, l + 1))
    sgn = np.sign(np.arange(-l, l + 1)).astype(np.float64)
    c = cos[..., None, idx]
    s = sin[..., None, idx] * jnp.asarray(sgn, v.dtype)
    return c * v - sign * s * v[..., ::-1]


def _mm(v: Array, j: np.ndarray) -> Array:
    """``v @ j^T`` on the last axis: applies the constant matrix ``j`` to each vector."""
    return jnp.matmul(v, jnp.asarray(j.T, v.dtype), precision=_HIGHEST)


def _rotate_in(v, l, chart_b, alpha, beta, roll):
    j = _y_to_x(l)
    if l == 0:
        return v
    v = jnp.where(chart_b[..., None, None], _mm(v, j), v)
    v = _rot_y(v, l, *alpha, sign=-1.0)
    v = _mm(_rot_y(_mm(v, j.T), l, *beta, sign=-1.0), j)
    if roll is not None:
        v = _rot_y(v, l, *roll, sign=1.0)
    return v


# -- the convolution ---------------------------------------------------------------------------


def _so2_core(plan: _Plan, x: Array, u: Array, w: Array, roll=None) -> Array:
    """``x`` (lead + (dim_in,)) regrouped, ``u`` (lead + (3,)), ``w`` (lead + (num_weights,)),
    all with the same lead; ``roll`` an optional extra ``(cos, sin)`` of a rotation about the
    polar axis applied to the frame (tests: the output does not depend on it)."""
    lead = x.shape[:-1]
    dtype = x.dtype
    C = plan.channels
    l_max = max([ir.l for _, ir in plan.irreps_in] + [ir.l for _, ir in plan.irreps_out])
    chart_b, alpha, beta = _frame(u)
    alpha, beta = _harmonics(alpha, l_max), _harmonics(beta, l_max)
    if roll is not None:
        roll = _harmonics(roll, l_max)
    # per-edge Wigner matrices, transposed: dt[l][..., j, :] = D^l(R_e) e_j (built by rotating
    # the identity: O((2l+1)^3) per edge, then one batched product per entry and direction)
    ls = {ir.l for _, ir in plan.irreps_in} | {ir.l for _, ir in plan.irreps_out}
    dt = {}
    for l in ls:
        eye = jnp.broadcast_to(jnp.eye(2 * l + 1, dtype=dtype), lead + (2 * l + 1, 2 * l + 1))
        dt[l] = _rotate_in(eye, l, chart_b, alpha, beta, roll)
    # rotate each input entry into the edge frame: (..., C, 2l + 1)
    chunks, off = [], 0
    for mul, ir in plan.irreps_in:
        c = x[..., off : off + mul * ir.dim].reshape(lead + (mul, ir.dim))
        off += mul * ir.dim
        chunks.append(c if ir.l == 0 else jnp.einsum("...cj,...ji->...ci", c, dt[ir.l]))
    # per m and output signature: (..., 2, n_rows, C) for the +m and -m components
    out_m = {}
    for blk in plan.blocks:
        m = blk.m
        wb = w[..., blk.start : blk.start + blk.size].reshape(lead + (len(blk.ins), -1, C))
        if m == 0:
            xs = jnp.stack([chunks[a][..., plan.irreps_in[a].ir.l] for a in blk.ins], -2)
            # multiply-and-reduce (one fused loop reading each per-edge weight once) instead of
            # einsum: a batched dot over (edge, channel) transposes the weights (2x slower)
            z = jnp.sum(xs[..., :, None, :] * wb, axis=-3)[..., None, :, :]
        else:
            pos, neg = [], []
            for a, flip in zip(blk.ins, blk.flip):
                l = plan.irreps_in[a].ir.l
                xp, xn = chunks[a][..., l + m], chunks[a][..., l - m]
                pos.append(xn if flip else xp)
                neg.append(-xp if flip else xn)
            xs = jnp.stack([jnp.stack(pos, -2), jnp.stack(neg, -2)], -3)  # (..., 2, a, C)
            z = jnp.sum(xs[..., :, :, None, :] * wb[..., None, :, :, :], axis=-3)
        out_m[(m, blk.sigma)] = (blk.rows, z)
    # assemble each output entry from its rows (contiguous in every block), rotate back
    span = {}  # (b, m) -> (block key, first row): entry b's k_b rows are consecutive
    for key, (rows, _) in out_m.items():
        for r, (b, k) in enumerate(rows):
            if k == 0:
                span[(b, key[0])] = (key, r)
    outs = []
    for b, (mul, ir) in enumerate(plan.irreps_out):
        n_k = mul // C
        if n_k == 0:
            continue
        zero = jnp.zeros(lead + (n_k, C), dtype)
        comps = []
        for mm in range(-ir.l, ir.l + 1):
            hit = span.get((b, abs(mm)))
            if hit is None:
                comps.append(zero)
                continue
            key, r = hit
            z = out_m[key][1]
            comps.append(z[..., 0 if mm >= 0 else 1, r : r + n_k, :])
        v = jnp.stack(comps, -1).reshape(lead + (mul, ir.dim))  # copy-major, then channel
        if ir.l > 0:
            v = jnp.einsum("...cj,...ij->...ci", v, dt[ir.l])
        outs.append(v.reshape(lead + (mul * ir.dim,)))
    if not outs:
        return jnp.zeros(lead + (0,), dtype)
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, -1)


def _inputs(fn: str, x, edge_vec, weights, irreps_out, m_max):
    if not isinstance(x, IrrepsArray):
        raise TypeError(
            f"{fn}: argument `x` must be an IrrepsArray; got {type(x).__name__} (wrap plain data "
            "as IrrepsArray(irreps, array))"
        )
    x = x.regroup()
    plan = _prepare(fn, x.irreps, irreps_out, m_max)
    try:
        e = jnp.asarray(edge_vec)
    except TypeError as err:
        raise TypeError(f"{fn}: argument `edge_vec` must be a real floating array: {err}") from err
    if not jnp.issubdtype(e.dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `edge_vec` must be real floating; got {e.dtype}")
    if e.ndim < 1 or e.shape[-1] != 3:
        raise ValueError(f"{fn}: argument `edge_vec` must have shape (..., 3); got {e.shape}")
    w = _check_weights(fn, weights, plan.num_weights, "so2_convolution_num_weights")
    try:
        lead = tuple(jnp.broadcast_shapes(x.shape[:-1], e.shape[:-1], w.shape[:-1]))
    except ValueError as err:
        raise ValueError(
            f"{fn}: arguments `x`, `edge_vec` and `weights` must have broadcastable leading "
            f"shapes; got {x.shape}, {e.shape} and {w.shape}"
        ) from err
    dtype = jnp.result_type(x.dtype, e.dtype, w.dtype)
    xa = jnp.broadcast_to(x.array, lead + x.shape[-1:]).astype(dtype)
    e = jnp.broadcast_to(e, lead + (3,)).astype(dtype)
    w = jnp.broadcast_to(w, lead + w.shape[-1:]).astype(dtype)
    return plan, xa, e, w


@full_precision
def so2_convolution(
    x: IrrepsArray,
    edge_vec: ArrayLike,
    weights: ArrayLike,
    *,
    irreps_out,
    m_max: int | None = None,
) -> IrrepsArray:
    r"""SO(2) (eSCN) convolution of edge features with an edge-aligned filter.

    .. math::

        z = D(R_e)^\top\, \mathrm{SO2}_W\bigl(D(R_e)\, x\bigr), \qquad R_e \hat r = \hat y,

    with the per-:math:`m` 2x2 blocks of the module docstring, :math:`|m| \le m_{\max}`. With
    the weights of :func:`channelwise_to_so2_weights` it equals
    ``channelwise_tensor_product(x, spherical_harmonics(..., edge_vec, True), w)``
    (truncated when ``m_max`` is smaller than the degrees). The result does not depend on the
    roll of the frame about the edge; the frame is deterministic and smooth away from the
    chart boundary (module docstring), finite with finite gradients for edges along
    :math:`\pm y`; a zero-length edge is treated as pointing along :math:`+y`.

    Args:
      x: features, ``IrrepsArray`` of shape ``(..., dim)`` with ``C`` channels of each irrep
        (regrouped, e.g. ``"32x0e + 32x1o + 32x2e"``).
      edge_vec: edge vectors, ``(..., 3)`` (only the direction is used).
      weights: ``(..., num_weights)`` per edge (layout: module docstring;
        :func:`so2_convolution_num_weights`, :func:`init_so2_convolution`,
        :func:`channelwise_to_so2_weights`). Leading axes of the three inputs broadcast.
      irreps_out: output irreps, each multiplicity a multiple of ``C`` (copy-major, then
        channel), or an int ``L`` for ``C x (0e + 1o + ... + L)``.
      m_max: largest :math:`|m|` kept (``None``: all).

    Returns:
      ``IrrepsArray`` of ``irreps_out``, shape ``(..., irreps_out.dim)``.

    Raises:
      TypeError: naming ``x``, ``edge_vec`` or ``weights`` (types, dtypes).
      ValueError: naming ``x`` (unequal channels), ``irreps_out``, ``m_max``, ``edge_vec`` or
        ``weights`` (shapes).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, init_so2_convolution,
      ...     so2_convolution)
      >>> x = IrrepsArray("4x0e + 4x1o + 4x2e", jnp.ones((10, 36)))
      >>> w = init_so2_convolution(jax.random.key(0), x.irreps, 2)
      >>> r = jax.random.normal(jax.random.key(1), (10, 3))
      >>> z = so2_convolution(x, r, w, irreps_out=2)
      >>> z.irreps, z.shape
      (4x0e+4x1o+4x2e, (10, 36))

    References:
      S. Passaro, C. L. Zitnick, "Reducing SO(3) Convolutions to SO(2) for Efficient
      Equivariant GNNs", ICML 2023, arXiv:2302.03655.
      Y.-L. Liao et al., "EquiformerV2", ICLR 2024, arXiv:2306.12059.
    """
    plan, xa, e, w = _inputs("so2_convolution", x, edge_vec, weights, irreps_out, m_max)
    return IrrepsArray._unchecked(plan.irreps_out, _so2_core(plan, xa, e, w))


# -- mapping from the channelwise CG convolution -----------------------------------------------


def _sh_irreps(fn: str, irreps_sh) -> Irreps:
    if isinstance(irreps_sh, numbers.Integral) and not isinstance(irreps_sh, bool):
        if irreps_sh < 0:
            raise ValueError(f"{fn}: argument `irreps_sh` must be a degree >= 0; got {irreps_sh}")
        irreps_sh = [int(irreps_sh)]  # one degree, as spherical_harmonics(l, ...)
    if isinstance(irreps_sh, (list, tuple, range)) and all(
        isinstance(l, numbers.Integral) and not isinstance(l, bool) for l in irreps_sh
    ):
        irreps_sh = Irreps([(1, Irrep(int(l), (-1) ** int(l))) for l in irreps_sh])
    sh = _as_irreps(fn, "irreps_sh", irreps_sh)
    for _, ir in sh:
        if ir.p != (-1) ** ir.l:
            raise ValueError(
                f"{fn}: argument `irreps_sh` must be the irreps of spherical harmonics of a polar "
                f"vector (parity (-1)^l); got {sh!r}"
            )
    if len({ir for _, ir in sh}) != len([1 for mul, _ in sh if mul]) or any(
        mul > 1 for mul, _ in sh
    ):
        raise ValueError(
            f"{fn}: argument `irreps_sh` must list each degree once (one harmonic per degree); "
            f"got {sh!r}"
        )
    return sh


@functools.cache
def _mapping(irreps_in: Irreps, irreps_sh: Irreps, keep, m_max):
    """Static ``(idx, coef, plan)``: SO(2) weight ``j`` is ``coef[j] * w_cw[idx[j]]``."""
    per_pair, irreps_out, sources, n_cw = _uvu_plan(
        irreps_in, irreps_sh, keep, "component", "element"
    )
    C = _channels("channelwise_to_so2_weights", irreps_in)
    plan = _plan(irreps_in, irreps_out, C, m_max)
    # rows of the output (entry b, copy k) in the channelwise output order: sources sorted
    rows_src = []  # per output row: (pair index, path index)
    for n, off, _ in sources:
        pair = per_pair[n][0]
        rows_src.append((n, pair.offsets.index(off)))
    row_of = {}
    r = 0
    for b, (mul, _) in enumerate(irreps_out):
        for k in range(mul // C):
            row_of[(b, k)] = rows_src[r]
            r += 1
    idx = np.zeros(plan.num_weights, np.int64)
    coef = np.zeros(plan.num_weights)
    ey = {}
    for blk in plan.blocks:
        m = blk.m
        for ia, a in enumerate(blk.ins):
            l1 = irreps_in[a].ir.l
            for ir_, (b, k) in enumerate(blk.rows):
                n, p = row_of[(b, k)]
                pair, select, w0, _ = per_pair[n]
                if pair.a != a:
                    continue
                l_f = irreps_sh[pair.b].ir.l
                ir3 = pair.outs[p]
                off = pair.offsets[p]
                if l_f not in ey:
                    ey[l_f] = _sh_numpy(l_f, np.array([0.0, 1.0, 0.0]))[l_f]
                mat = select[p, off] * np.einsum(
                    "ijk,j->ik", pair.tensor[:, :, off : off + ir3.dim], ey[l_f]
                )
                l3 = ir3.l
                if blk.flip[ia]:
                    c = mat[l1 - m, l3 + m] if m else 0.0
                    assert abs(mat[l1 + m, l3 - m] + c) < 1e-12 and abs(mat[l1 + m, l3 + m]) < 1e-12
                else:
                    c = mat[l1 + m, l3 + m]
                    assert abs(mat[l1 - m, l3 - m] - c) < 1e-12
                base = blk.start + (ia * len(blk.rows) + ir_) * C
                idx[base : base + C] = w0 + p * C + np.arange(C)
                coef[base : base + C] = c
    for arr in (idx, coef):
        arr.setflags(write=False)
    return idx, coef, plan, n_cw


@full_precision
def channelwise_to_so2_weights(
    weights: ArrayLike, irreps_in, irreps_sh, *, filter_ir_out=None, m_max: int | None = None
) -> tuple[Array, Irreps]:
    r"""SO(2) weights equal to the channelwise CG convolution with the edge harmonics.

    For each path :math:`p = (l_1, l_f, l_3)` of
    :func:`~geomjax.equivariant.channelwise_tensor_product` ``(x, Y(\hat r), w)`` (default
    normalizations) the filter in the edge frame is :math:`Y(\hat y)`, nonzero only at
    :math:`m = 0`, so the path's matrix :math:`M^{(p)}_{ik} = \alpha_p \sum_j \tilde C_{ijk}
    Y_j(\hat y)` has the 2x2 SO(2) structure; the weight of row :math:`(p, u)` at :math:`m` is

    .. math::

        W^{(m)}_{a,(p,u)} = w^{(p)}_u \cdot
        \begin{cases} M^{(p)}_{l_1 + m,\, l_3 + m} & \text{even pair} \\
                      M^{(p)}_{l_1 - m,\, l_3 + m} & \text{odd pair} \end{cases}

    for the input entry :math:`a = l_1` of the path, zero for the others. Then
    ``so2_convolution(x, edge_vec, W, irreps_out=irreps_out, m_max=m_max)`` equals
    ``channelwise_tensor_product(x, spherical_harmonics(irreps_sh, edge_vec, True), w,
    filter_ir_out=filter_ir_out)`` (exactly, up to round-off, for ``m_max=None``).

    The mapped weights fill dense per-:math:`m` blocks over every (input entry, output row)
    pair, but each row (one path and channel) reads a single input degree, so most are zero
    and the mapped SO(2) convolution is slower than the CG product it reproduces (CPU,
    ``C = 32``, ``L = 2..6``: 2.5-5x, ``benchmarks/bench_so2.py``). It is the exactness check of the
    reduction; for speed predict the weights of the eSCN layout (``irreps_out = L``: one copy
    per degree, paths summed) directly.

    Args:
      weights: channelwise weights ``(..., num_weights)`` (path-major, then channel).
      irreps_in: irreps of ``x`` (``C`` channels of each irrep, regrouped).
      irreps_sh: the harmonics' degrees, as ``spherical_harmonics`` takes them: an int (one
        degree), a list of degrees or irreps such as ``"0e + 1o + 2e"`` (each degree once, parity :math:`(-1)^l`, component
        normalization).
      filter_ir_out: as in ``channelwise_tensor_product``.
      m_max: as in :func:`so2_convolution`.

    Returns:
      ``(so2_weights, irreps_out)``: ``(..., so2_num_weights)`` and the output irreps (those
      of the channelwise product).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import (IrrepsArray, channelwise_tensor_product,
      ...     channelwise_tensor_product_irreps, channelwise_to_so2_weights,
      ...     so2_convolution, spherical_harmonics)
      >>> x = IrrepsArray("2x0e + 2x1o", jax.random.normal(jax.random.key(0), (8,)))
      >>> r = jnp.array([0.3, -1.2, 0.5])
      >>> _, n = channelwise_tensor_product_irreps(x.irreps, "0e + 1o + 2e")
      >>> w = jax.random.normal(jax.random.key(1), (n,))
      >>> cg = channelwise_tensor_product(x, spherical_harmonics([0, 1, 2], r, True), w)
      >>> w2, irreps_out = channelwise_to_so2_weights(w, x.irreps, [0, 1, 2])
      >>> so2 = so2_convolution(x, r, w2, irreps_out=irreps_out)
      >>> bool(jnp.allclose(so2.array, cg.array, atol=1e-5))
      True
    """
    fn = "channelwise_to_so2_weights"
    irreps_in = _as_irreps(fn, "irreps_in", irreps_in).regroup()
    _channels(fn, irreps_in)
    sh = _sh_irreps(fn, irreps_sh).regroup()
    keep = _filter_key(fn, filter_ir_out)
    idx, coef, plan, n_cw = _mapping(irreps_in, sh, keep, _check_m_max(fn, m_max))
    w = _check_weights(fn, weights, n_cw, "channelwise_tensor_product_irreps")
    out = jnp.take(w, jnp.asarray(idx), axis=-1) * jnp.asarray(coef, w.dtype)
    return out, plan.irreps_out
