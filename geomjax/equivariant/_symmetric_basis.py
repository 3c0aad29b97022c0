r"""Bases of the symmetric equivariant polynomials of MACE's symmetric contraction.

For a per-channel feature :math:`a \in V = \bigoplus_j (l_j, p_j)` (``irreps_in``, each irrep
once, dimension :math:`d`) and an output irrep :math:`(L, P)`, a degree-:math:`\nu` coupling
tensor :math:`U \in \mathbb R^{d^\nu \times (2L+1)}` is

* **equivariant**: :math:`\sum U_{i_1..i_\nu M} D_{i_1 i_1'}(g) \cdots D_{i_\nu i_\nu'}(g) =
  \sum_{M'} D^{(L,P)}_{M M'}(g)\, U_{i_1'..i_\nu' M'}` for every :math:`g \in O(3)`, and
* **symmetric** in its :math:`\nu` input indices,

so :math:`B_M = \sum U_{i_1..i_\nu M}\, a_{i_1} \cdots a_{i_\nu}` is an :math:`(L, P)`-valued
polynomial of :math:`a`. These tensors form a vector space whose dimension is the multiplicity
of :math:`(L, P)` in the symmetric power :math:`\mathrm{Sym}^\nu V`. The basis is built
recursively: the degree-:math:`(k-1)` basis for every intermediate irrep, coupled with one more
copy of :math:`V` by Clebsch-Gordan tensors, spans all equivariant maps from
:math:`\mathrm{Sym}^{k-1}V \otimes V`; symmetrizing over the :math:`k` input indices spans the
degree-:math:`k` space; an SVD of the flattened tensors keeps an orthonormal basis of the span
(a linear combination of equivariant tensors is equivariant). Intermediate irreps are kept up
to the degree the remaining couplings can still bring down to :math:`L_{\max}` of the output.

Computed once per ``(irreps_in, irrep_out, nu)`` in float64 NumPy and cached; never traced.

References:
  I. Batatia, D. P. Kovacs, G. N. C. Simm, C. Ortner, G. Csanyi, "MACE: Higher Order
  Equivariant Message Passing Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022,
  arXiv:2206.07697.
  R. Drautz, "Atomic cluster expansion for accurate and transferable interatomic potentials",
  Phys. Rev. B 99, 014104 (2019).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from geomjax.equivariant._clebsch_gordan import clebsch_gordan
from geomjax.equivariant._irreps import Irrep, Irreps

__all__ = ["symmetric_basis"]


def _read_only(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    x.setflags(write=False)
    return x


def _symmetrize(t: np.ndarray, k: int) -> np.ndarray:
    """Average of ``t`` over the permutations of its first ``k`` axes."""
    rest = tuple(range(k, t.ndim))
    perms = list(itertools.permutations(range(k)))
    return sum(np.transpose(t, p + rest) for p in perms) / len(perms)


def _span(tensors: list[np.ndarray], scale: float) -> np.ndarray:
    """Orthonormal basis (Frobenius inner product) of the span of ``tensors``, stacked on a
    last axis; an empty last axis when they are all zero up to round-off.

    ``scale`` is the largest norm of the tensors before symmetrization. Symmetrizing can
    cancel a tensor exactly (an antisymmetric coupling such as ``a x a``), leaving float64
    round-off of about ``1e-16 * scale``; a genuine direction keeps a singular value of the
    order of ``scale``. The cutoff ``1e-9 * scale`` is far from both (an absolute cutoff: a
    relative one would keep round-off when every candidate cancels)."""
    shape = tensors[0].shape
    m = np.stack([t.reshape(-1) for t in tensors])
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    rank = int(np.sum(s > 1e-9 * scale))
    return np.moveaxis(vt[:rank].reshape((rank,) + shape), 0, -1)


@functools.cache
def _embeddings(irreps_in: Irreps) -> tuple[tuple[Irrep, np.ndarray], ...]:
    """Per input irrep: the (d, 2l+1) matrix selecting its components of ``a``."""
    out, start = [], 0
    for _, ir in irreps_in:
        e = np.zeros((irreps_in.dim, ir.dim))
        e[start : start + ir.dim] = np.eye(ir.dim)
        out.append((ir, e))
        start += ir.dim
    return tuple(out)


@functools.cache
def _level(irreps_in: Irreps, k: int, lmax: int) -> tuple[tuple[Irrep, np.ndarray], ...]:
    """Orthonormal symmetric equivariant bases of degree ``k`` for every irrep of degree
    ``<= lmax``: tuples ``(ir, U)`` with ``U`` of shape ``(d,) * k + (2l+1, K)``, ``K >= 1``."""
    emb = _embeddings(irreps_in)
    if k == 1:
        return tuple((ir, e[..., None]) for ir, e in emb if ir.l <= lmax)
    prev = _level(irreps_in, k - 1, lmax + irreps_in.lmax)
    candidates: dict[Irrep, list[np.ndarray]] = {}
    scale = 0.0
    for ir_a, u_a in prev:
        for ir_b, e_b in emb:
            for ir_c in ir_a * ir_b:
                if ir_c.l > lmax:
                    continue
                cg = clebsch_gordan(ir_a.l, ir_b.l, ir_c.l)
                # (d^{k-1}, a, K) x (d, b) x (a, b, c) -> (d^{k-1}, d, c, K)
                t = np.einsum("...aK,jb,abc->...jcK", u_a, e_b, cg)
                scale = max(scale, float(np.linalg.norm(t.reshape(-1, t.shape[-1]), axis=0).max()))
                for q in range(t.shape[-1]):
                    candidates.setdefault(ir_c, []).append(_symmetrize(t[..., q], k))
    out = []
    for ir_c in sorted(candidates):
        u = _span(candidates[ir_c], scale)
        if u.shape[-1]:
            out.append((ir_c, u))
    return tuple(out)


@functools.cache
def _symmetric_basis(irreps_in: Irreps, ir_out: Irrep, nu: int) -> np.ndarray:
    for ir, u in _level(irreps_in, nu, ir_out.l):
        if ir == ir_out:
            # Scale so that each basis tensor has squared norm 2L + 1 (one per output component).
            return _read_only(u * math.sqrt(ir_out.dim))
    return _read_only(np.zeros((irreps_in.dim,) * nu + (ir_out.dim, 0)))


def symmetric_basis(irreps_in, ir_out, nu: int) -> np.ndarray:
    r"""Orthogonal basis of the symmetric, equivariant degree-``nu`` maps from ``irreps_in`` to
    ``ir_out``.

    Args:
      irreps_in: the per-channel irreps, each irrep at most once (e.g. ``"0e + 1o + 2e"``).
      ir_out: the output irrep (e.g. ``"1o"``).
      nu: the degree (correlation order), ``>= 1``.

    Returns:
      Read-only float64 array ``U`` of shape ``(d,) * nu + (2L + 1, K)``, ``d = irreps_in.dim``:
      ``U[..., k]`` symmetric in the first ``nu`` axes, equivariant, pairwise orthogonal with
      squared Frobenius norm ``2L + 1``. ``K`` (possibly 0) is the multiplicity of ``ir_out``
      in :math:`\mathrm{Sym}^\nu(\text{irreps\_in})`.

    Raises:
      ValueError: naming ``irreps_in`` (invalid, or an irrep repeated), ``ir_out`` or ``nu``.
    """
    fn = "symmetric_basis"
    irreps_in, ir_out, nu = check_basis_args(fn, irreps_in, ir_out, nu)
    return _symmetric_basis(irreps_in, ir_out, nu)


def check_basis_args(fn: str, irreps_in, ir_out, nu) -> tuple[Irreps, Irrep, int]:
    """Validated ``(irreps_in, ir_out, nu)`` with ``irreps_in`` one copy of each irrep."""
    try:
        irreps_in = Irreps(irreps_in)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `irreps_in` is not valid irreps: {err}") from err
    irs = [ir for mul, ir in irreps_in for _ in range(mul)]
    if not irs or len(set(irs)) != len(irs):
        raise ValueError(
            f"{fn}: argument `irreps_in` must list each irrep once (the irreps of one channel, "
            f"e.g. '0e + 1o + 2e'); got {irreps_in!r}"
        )
    irreps_in = Irreps([(1, ir) for ir in irs])
    try:
        ir_out = Irrep(ir_out)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `ir_out` is not a valid irrep: {err}") from err
    if isinstance(nu, bool) or not isinstance(nu, (int, np.integer)) or nu < 1:
        raise ValueError(f"{fn}: argument `nu` must be an int >= 1; got {nu!r}")
    return irreps_in, ir_out, int(nu)
