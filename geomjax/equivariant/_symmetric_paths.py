r"""Sparse coupling paths that evaluate MACE's symmetric contraction without dense tensors.

A degree-:math:`\nu` polynomial :math:`\langle U, a^{\otimes\nu}\rangle` only sees the
symmetric part of :math:`U`, so it is enough to evaluate products of the irrep blocks
:math:`a_{j_1}, \dots, a_{j_\nu}` of :math:`a` for multisets :math:`j_1 \le \dots \le j_\nu`,
coupled step by step with Clebsch-Gordan tensors:

.. math::

    F_{(j_1)} = a_{j_1}, \qquad
    F_{(j_1..j_k)} = \big[F_{(j_1..j_{k-1})} \otimes a_{j_k}\big]\, C_{(j_1..j_k)}, \quad
    j_k \ge j_{k-1},

where :math:`C` stacks the CG maps from every irrep block of :math:`F_{(j_1..j_{k-1})}` times
:math:`(l_{j_k}, p_{j_k})` to every irrep still able to reach an output (one small matrix
product per multiset). The blocks of :math:`F` of the output irrep :math:`L` at degree
:math:`\nu` are polynomials :math:`f_p(a) = \langle S_p, a^{\otimes\nu}\rangle` spanning the same
space as the orthogonal basis :math:`U` (:mod:`geomjax.equivariant._symmetric_basis`);
:math:`U_k = \sum_p R_{kp} S_p` is solved once by least squares (float64, residual checked),
and the contraction becomes :math:`\sum_p (w R)_p f_p(a)`: a few thousand multiply-adds per
node and channel instead of the :math:`d^\nu (2L+1) K` of the dense tensors.

Everything here is float64 NumPy, built once per ``(irreps_in, irreps_out, correlation)`` and
cached; never traced.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from geomjax.equivariant._clebsch_gordan import clebsch_gordan
from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._symmetric_basis import _embeddings, _symmetric_basis, _symmetrize

__all__ = ["SymmetricPlan", "symmetric_plan"]


class Step(NamedTuple):
    """``F[seq]``: the concatenation over the ``parts`` ``(offset, dim, matrix)`` of
    ``(F[parent][offset:offset + dim] (x) a[block]) @ matrix``, one part per irrep block of the
    parent (the CG maps of one block to all its new irreps), so no zero block is multiplied.
    ``blocks`` lists the new feature's ``(irrep, offset)``."""

    seq: tuple[int, ...]
    parent: tuple[int, ...]
    block: int
    parts: tuple[tuple[int, int, np.ndarray], ...]
    blocks: tuple[tuple[Irrep, int], ...]


class Term(NamedTuple):
    """The degree-``nu`` part of one output irrep: weights ``[w0, w0 + k)``, the output-irrep
    blocks ``(seq, offsets)`` of the features (the paths, in order) and ``r`` (K, P)."""

    w0: int
    k: int
    nu: int
    picks: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    r: np.ndarray


class Output(NamedTuple):
    """One output irrep: its terms per degree and ``K_L``, the number of its weights."""

    ir: Irrep
    terms: tuple[Term, ...]
    n_paths: int


class SymmetricPlan(NamedTuple):
    steps: tuple[Step, ...]
    outputs: tuple[Output, ...]
    n_weights: int


def _read_only(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    x.setflags(write=False)
    return x


def _couple(blocks_in, ir_b: Irrep, seq: tuple[int, ...], lmax: int, allowed):
    """The CG maps from the blocks ``(irrep, offset, key)`` of a feature times ``ir_b`` to the
    new blocks (those of degree ``<= lmax`` whose key ``allowed`` accepts): the dense matrix
    ``(D_in * dim_b, D_out)`` (for the NumPy tensors), the per-block parts and the new
    blocks."""
    d_in = sum(ir.dim for ir, _, _ in blocks_in)
    cols, parts, out_blocks, offset = [], [], [], 0
    for ir_a, off_a, key_a in blocks_in:
        part = []
        for ir_c in ir_a * ir_b:
            key = (seq, key_a, ir_c)
            if ir_c.l > lmax or not allowed(key):
                continue
            cg = clebsch_gordan(ir_a.l, ir_b.l, ir_c.l)
            m = np.zeros((d_in, ir_b.dim, ir_c.dim))
            m[off_a : off_a + ir_a.dim] = cg
            cols.append(m.reshape(d_in * ir_b.dim, ir_c.dim))
            part.append(cg.reshape(ir_a.dim * ir_b.dim, ir_c.dim))
            out_blocks.append((ir_c, offset, key))
            offset += ir_c.dim
        if part:
            parts.append((off_a, ir_a.dim, _read_only(np.concatenate(part, axis=1))))
    if not cols:
        return None, (), ()
    return np.concatenate(cols, axis=1), tuple(parts), tuple(out_blocks)


def _independent(columns: list[np.ndarray], scales: list[float]) -> list[int]:
    """Indices of a maximal linearly independent subset, greedily in order (Gram-Schmidt).
    A column is dependent when its residual is below 1e-9 of its ``scale``, the norm of the
    path tensor before symmetrization: exact polynomials are either independent by O(scale)
    or dependent up to float64 round-off (symmetrizing can cancel a path to round-off, so
    its own norm is no scale)."""
    basis, keep = [], []
    for i, (col, scale) in enumerate(zip(columns, scales)):
        v = col.copy()
        for q in basis:
            v -= q * (q @ v)
        for q in basis:  # re-orthogonalize once (classical Gram-Schmidt, twice is enough)
            v -= q * (q @ v)
        if np.linalg.norm(v) > 1e-9 * scale:
            basis.append(v / np.linalg.norm(v))
            keep.append(i)
    return keep


def _build(irreps_in: Irreps, irreps_out: tuple[Irrep, ...], correlation: int, allowed):
    emb = _embeddings(irreps_in)
    n_in = len(emb)
    l_in = irreps_in.lmax
    l_out = max(ir.l for ir in irreps_out)
    # features: seq -> (blocks (irrep, offset, key), T with F = T^T a^(x k), shape (d^k, D))
    feats = {(j,): (((emb[j][0], 0, ((j,), None, emb[j][0])),), emb[j][1]) for j in range(n_in)}
    steps = []
    for k in range(2, correlation + 1):
        lmax = l_out + (correlation - k) * l_in
        for seq in sorted(s for s in feats if len(s) == k - 1):
            blocks, t = feats[seq]
            for j in range(seq[-1], n_in):
                ir_b, e_b = emb[j]
                matrix, parts, new_blocks = _couple(blocks, ir_b, seq + (j,), lmax, allowed)
                if matrix is None:
                    continue
                d_par = t.shape[-1]
                t_new = np.einsum("...x,jb,xby->...jy", t, e_b, matrix.reshape(d_par, ir_b.dim, -1))
                feats[seq + (j,)] = (new_blocks, t_new)
                steps.append(Step(seq + (j,), seq, j, parts, tuple(b[:2] for b in new_blocks)))
    outputs, used, w_start = [], [], 0
    for ir in irreps_out:
        terms, n_paths = [], 0
        for nu in range(1, correlation + 1):
            u = _symmetric_basis(irreps_in, ir, nu)
            k = u.shape[-1]
            if not k:
                continue
            candidates = []  # (seq, offset, key, symmetrized tensor, norm before)
            for seq in sorted(s for s in feats if len(s) == nu):
                blocks, t = feats[seq]
                for ir_c, off, key in blocks:
                    if ir_c == ir:
                        path = t[..., off : off + ir.dim]
                        sym = _symmetrize(path, nu).reshape(-1)
                        candidates.append((seq, off, key, sym, float(np.linalg.norm(path))))
            keep = _independent([c[3] for c in candidates], [c[4] for c in candidates])
            chosen = [candidates[i] for i in keep]
            s = np.stack([c[3] for c in chosen], axis=1)  # (d^nu M, P), P = K
            r, *_ = np.linalg.lstsq(s, u.reshape(-1, k), rcond=None)  # (P, K)
            residual = np.abs(s @ r - u.reshape(-1, k)).max()
            # Exact span: float64 round-off of the lstsq, ~1e-15 times the O(1) entries.
            if len(chosen) != k or residual > 1e-9:
                raise AssertionError(
                    f"symmetric_plan: {len(chosen)} paths for {k} basis tensors of {ir} at "
                    f"degree {nu} (residual {residual})"
                )
            picks = {}
            for seq, off, key, _, _ in chosen:
                picks.setdefault(seq, []).append(off)
                used.append(key)
            picks = tuple((seq, tuple(offs)) for seq, offs in picks.items())
            terms.append(Term(w_start, k, nu, picks, _read_only(r.T)))
            w_start += k
            n_paths += k
        outputs.append(Output(ir, tuple(terms), n_paths))
    return SymmetricPlan(tuple(steps), tuple(outputs), w_start), used


@functools.cache
def symmetric_plan(irreps_in: Irreps, irreps_out: tuple[Irrep, ...], correlation: int):
    """The coupling steps and the weight-to-path maps (see the module docstring).

    Built twice: once with every coupling, which picks for each output and degree ``K``
    linearly independent paths; then with only the feature blocks those paths need (the
    picked blocks and, recursively, the parent blocks they are coupled from), so no unused
    intermediate irrep is computed."""
    _, used = _build(irreps_in, irreps_out, correlation, lambda key: True)
    needed = set()
    for key in used:
        while key is not None and key not in needed:
            needed.add(key)
            key = key[1]
    plan, used_again = _build(irreps_in, irreps_out, correlation, needed.__contains__)
    assert used_again == used  # the same greedy choice among the surviving candidates
    return plan


def feature_count(plan: SymmetricPlan) -> int:
    """Total size of the intermediate features per node and channel (for docs and tests)."""
    return sum(m.shape[1] for s in plan.steps for _, _, m in s.parts)
