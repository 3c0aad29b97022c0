r"""Exact quadrature on the sphere for the Gaunt tensor product (NumPy constants, JAX products).

A Gauss-Legendre (latitudes) x equispaced (longitudes) grid in e3nn's frame (polar axis
:math:`y`), integrating band-limited products exactly (see
:mod:`geomjax.equivariant._gaunt` for the bound); the Cartesian gradients of the harmonics'
polynomial extensions (for the Poisson bracket); and the north-south split of the grid: with
:math:`Y_{lm}(\pi - \theta, \varphi) = (-1)^{l+|m|} Y_{lm}(\theta, \varphi)` the components
with even and odd index within each degree are evaluated on the northern rows (and the
equator) only, half the products of the full grid matrices.

References:
  J. R. Driscoll, D. M. Healy, "Computing Fourier transforms and convolutions on the
  2-sphere", Adv. Appl. Math. 15, 202 (1994).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep)
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from geomjax._core import Array
from geomjax.equivariant._spherical_harmonics import _recursion_matrix


@functools.cache
def _grid(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre x equispaced grid in e3nn's frame: points ``(n_lat n_lon, 3)`` (``y`` the
    polar axis, :math:`\\varphi = \\operatorname{atan2}(x, z)`) and weights ``(n_lat n_lon,)``
    summing to :math:`4\\pi`."""
    t, w = np.polynomial.legendre.leggauss(n_lat)
    phi = 2.0 * np.pi * np.arange(n_lon) / n_lon
    st = np.sqrt(np.clip(1.0 - t**2, 0.0, None))
    xyz = np.stack(
        [
            st[:, None] * np.sin(phi)[None, :],
            np.broadcast_to(t[:, None], (n_lat, n_lon)),
            st[:, None] * np.cos(phi)[None, :],
        ],
        axis=-1,
    ).reshape(-1, 3)
    weights = np.repeat(w * (2.0 * np.pi / n_lon), n_lon)
    return xyz, weights


class _HalfSynthesis(NamedTuple):
    r"""Harmonics on the grid by north-south symmetry: :math:`Y_{lm}(\pi - \theta, \varphi)
    = \sigma Y_{lm}(\theta, \varphi)` with :math:`\sigma = (-1)^{l + |m|}` (even and odd
    components alternate within each degree), so :math:`f = x_E A_E \pm x_O A_O` on the
    northern and southern rows: half the products of the full grid matrix."""

    ls: tuple  # degrees of the stacked coefficient axis, in order
    a_even: np.ndarray  # (nE, G_north + n_equator)
    a_odd: np.ndarray  # (nO, G_north)
    g_north: int


class _HalfAnalysis(NamedTuple):
    b_even: np.ndarray  # (G_north + n_equator, nE): 2 x northern rows, then the equator
    b_odd: np.ndarray  # (G_north, nO): 2 x northern rows
    ls: tuple  # output degrees, in order


def _halves(res: tuple[int, int]):
    n_lat, _ = res
    n_h = n_lat // 2
    north = np.arange(n_lat - 1, n_lat - 1 - n_h, -1)  # y > 0; row i mirrors row n_lat - 1 - i
    return north, (n_h if n_lat % 2 else None)


def _parity_index(ls) -> tuple[np.ndarray, np.ndarray]:
    sigma = np.concatenate([(-1) ** np.arange(2 * l + 1) for l in ls])
    return np.nonzero(sigma > 0)[0], np.nonzero(sigma < 0)[0]


def _split_synthesis(a: np.ndarray, ls, res) -> _HalfSynthesis:
    n_lat, n_lon = res
    north, eq = _halves(res)
    even, odd = _parity_index(ls)
    a3 = a.reshape(a.shape[0], n_lat, n_lon)
    a_even = a3[even][:, north].reshape(len(even), -1)
    if eq is not None:
        a_even = np.concatenate([a_even, a3[even][:, eq]], axis=1)
    a_odd = a3[odd][:, north].reshape(len(odd), -1)
    for m in (a_even, a_odd):
        m.setflags(write=False)
    return _HalfSynthesis(tuple(ls), a_even, a_odd, len(north) * n_lon)


def _split_analysis(b: np.ndarray, ls, res) -> _HalfAnalysis:
    n_lat, n_lon = res
    north, eq = _halves(res)
    even, odd = _parity_index(ls)
    b3 = b.reshape(n_lat, n_lon, b.shape[-1])
    b_even = 2.0 * b3[north][:, :, even].reshape(-1, len(even))
    if eq is not None:
        b_even = np.concatenate([b_even, b3[eq][:, even]], axis=0)
    b_odd = 2.0 * b3[north][:, :, odd].reshape(-1, len(odd))
    for m in (b_even, b_odd):
        m.setflags(write=False)
    return _HalfAnalysis(b_even, b_odd, tuple(ls))


def _exact_resolution(l1max: int, l2max: int, l3max: int) -> tuple[int, int]:
    """The smallest exact grid ``(n_lat, n_lon)`` for degrees up to ``l1max``, ``l2max`` in and
    ``l3max`` out (see the module docstring)."""
    s = l1max + l2max + l3max
    return (s + 2) // 2, s + 1


def _sh_grad_numpy(lmax: int, xyz: np.ndarray) -> dict:
    r"""Cartesian gradients of the orthonormal harmonics' polynomial extensions
    :math:`r^l Y_l`, ``{l: (..., 3, 2l + 1)}`` (float64), by differentiating the recursion of
    ``_sh_numpy``: :math:`\partial_k Y_{l+1} = ((\partial_k Y_l) \otimes r + Y_l \otimes
    e_k) M_l`."""
    xyz = np.asarray(xyz, np.float64)
    lead = xyz.shape[:-1]
    ys = {0: np.ones(lead + (1,))}
    ds = {0: np.zeros(lead + (3, 1))}
    eye = np.eye(3)
    for l in range(lmax):
        m = _recursion_matrix(l)
        ys[l + 1] = (ys[l][..., :, None] * xyz[..., None, :]).reshape(lead + (-1,)) @ m
        d = (ds[l][..., :, :, None] * xyz[..., None, None, :]) + (
            ys[l][..., None, :, None] * eye[:, None, :]
        )
        ds[l + 1] = d.reshape(lead + (3, -1)) @ m
    c = 1.0 / math.sqrt(4.0 * math.pi)
    return {l: c * d for l, d in ds.items()}


def _synthesis(e: Array, h, dtype):
    """A full grid matrix: ``e @ h``. A :class:`_HalfSynthesis`: ``(..., C, n)``
    coefficients -> ``(P, Q)``, the even part on the northern rows and the equator and the odd
    part on the northern rows (``None`` when empty); the function is ``P + Q`` on the northern
    rows, ``P - Q`` on their mirrors, ``P`` on the equator."""
    if isinstance(h, np.ndarray):
        return e @ jnp.asarray(h, dtype)
    even, odd = _deinterleave(e, h.ls)
    p = even @ jnp.asarray(h.a_even, dtype)
    q = odd @ jnp.asarray(h.a_odd, dtype) if odd is not None else None
    return p, q, h.g_north


def _deinterleave(e: Array, ls):
    """Components with even / odd index within each degree block (``sigma = +1 / -1``): each
    block padded by one zero to even length and reshaped to ``(l + 1, 2)`` pairs, whose two
    columns are the parts. (Measured on the CPU: a gather has a scatter-add as its transpose
    and strided slices an interior pad, both 1.3-2x slower in the backward.)"""
    evens, odds, off = [], [], 0
    for l in ls:
        blk = e[..., off : off + 2 * l + 1]
        blk = jnp.concatenate([blk, jnp.zeros(blk.shape[:-1] + (1,), blk.dtype)], -1)
        blk = blk.reshape(blk.shape[:-1] + (l + 1, 2))
        evens.append(blk[..., 0])
        if l:
            odds.append(blk[..., :l, 1])
        off += 2 * l + 1
    cat = lambda parts: parts[0] if len(parts) == 1 else jnp.concatenate(parts, -1)  # noqa: E731
    return cat(evens), (cat(odds) if odds else None)


def _interleave(z_even: Array, z_odd: Array | None, ls) -> Array:
    """Inverse of :func:`_deinterleave`."""
    parts, oe, oo = [], 0, 0
    for l in ls:
        ze = z_even[..., oe : oe + l + 1]
        if l:
            zo = z_odd[..., oo : oo + l]
            pair = jnp.stack([ze[..., :l], zo], axis=-1).reshape(ze.shape[:-1] + (2 * l,))
            parts.append(jnp.concatenate([pair, ze[..., l:]], axis=-1))
        else:
            parts.append(ze)
        oe += l + 1
        oo += l
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, -1)


def _analysis(pairs, b, dtype) -> Array:
    """Full grid: ``(sum of f1 * f2) @ b``. Half grid: project the sum of the products of
    the ``pairs`` of half-grid functions: with ``f = P +- Q``, the north + south sum of
    ``f1 f2`` is ``2 (P1 P2 + Q1 Q2)`` and the difference ``2 (P1 Q2 + Q1 P2)`` (the 2 is in
    ``b``)."""
    if isinstance(b, np.ndarray):
        prod = pairs[0][0] * pairs[0][1]
        for f1, f2 in pairs[1:]:
            prod = prod + f1 * f2
        return prod @ jnp.asarray(b, dtype)
    hs = hd = None
    for (p1, q1, gn), (p2, q2, _) in pairs:
        s_ = p1 * p2
        if q1 is not None and q2 is not None:
            s_ = jnp.concatenate([s_[..., :gn] + q1 * q2, s_[..., gn:]], axis=-1)
        d_ = None
        if q2 is not None:
            d_ = p1[..., :gn] * q2
        if q1 is not None:
            d_ = q1 * p2[..., :gn] if d_ is None else d_ + q1 * p2[..., :gn]
        hs = s_ if hs is None else hs + s_
        if d_ is not None:
            hd = d_ if hd is None else hd + d_
    z_even = hs @ jnp.asarray(b.b_even, dtype)
    if b.b_odd.shape[1] == 0:
        return z_even
    if hd is None:
        hd = jnp.zeros(hs.shape[:-1] + (b.b_odd.shape[0],), hs.dtype)
    return _interleave(z_even, hd @ jnp.asarray(b.b_odd, dtype), b.ls)


def _matmul_2(e: Array, m: np.ndarray, dtype) -> Array:
    """``(..., C, n) @ (n, 2 G) -> (..., C, 2, G)``."""
    out = e @ jnp.asarray(m, dtype)
    return out.reshape(out.shape[:-1] + (2, -1))
