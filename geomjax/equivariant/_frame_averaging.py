r"""Frame averaging: make any function of a point cloud invariant or equivariant.

A *frame* is a small set-valued map :math:`\mathcal{F}(X) \subset G` that is itself
equivariant, :math:`\mathcal{F}(g \cdot X) = g\, \mathcal{F}(X)`. Averaging an arbitrary
function :math:`f` over it,

.. math::

    \langle f \rangle_{\mathcal{F}}(X) = \frac{1}{|\mathcal{F}(X)|} \sum_{g \in \mathcal{F}(X)}
    g \cdot f(g^{-1} \cdot X),

gives an exactly invariant or equivariant function (Puny et al., Theorem 1), at the cost of
``|F(X)|`` evaluations of :math:`f`. For :math:`E(d)` acting on a point cloud
:math:`X \in \mathbb{R}^{N \times d}` the PCA frame takes the centroid :math:`t` and the
eigenvectors :math:`V` of the centred covariance; the eigenvectors are unique up to sign when
the eigenvalues are distinct, so the frame is the :math:`2^d` sign choices
:math:`\{(V \operatorname{diag}(s), t): s \in \{\pm 1\}^d\}` (8 in 3-D), or the :math:`2^{d-1}`
of them with determinant :math:`+1` for :math:`SO(d)` / :math:`SE(d)` (4 in 3-D).

**Repeated eigenvalues.** When two covariance eigenvalues coincide (symmetric shapes, points
on a line, all points equal) the eigenvectors are not determined by the data and the frame is
ill-defined: the output stays finite but is no longer guaranteed to be equivariant. Nearly
repeated eigenvalues amplify rounding: the eigenvectors carry an error of about
:math:`\epsilon / \delta` for a relative gap :math:`\delta`. This module does not switch to a
different frame (no finite frame fixes the problem for every symmetric input); it *reports*
it: ``return_info=True`` gives a :class:`FrameInfo` with the eigenvalues, the smallest
relative gap and a ``degenerate`` flag (gap below ``gap_tol``, default
:math:`\sqrt{\epsilon}` of the dtype). Check the flag (e.g. count or mask such inputs) when
your data can be symmetric.

**Gradients.** The paper treats the frame as piecewise constant. By default the frame
rotations are wrapped in ``stop_gradient``: derivatives with respect to the parameters of
``f`` are exact, and derivatives with respect to ``x`` flow through ``f``'s (canonicalized)
input and through the centroid only. That gradient is itself an equivariant vector field and is
finite everywhere, including at repeated eigenvalues, but it omits the rotation of the frame
with ``x``. Pass ``frame_grad=True`` to differentiate through the eigenvectors too (the exact
derivative of the averaged function, e.g. for forces as gradients of a frame-averaged energy):
it is exact where the eigenvalues are distinct and kept finite at (near-)repeated eigenvalues
by dropping the eigenvector-coupling terms whose gap is below rounding level (where no
derivative exists).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    check_key,
    check_option,
    eps,
    precise_matmul,
    safe_div,
)
from geomjax.equivariant._graph import check_node_mask

__all__ = ["FrameInfo", "frame_average", "pca_frames"]

_GROUPS = ("O3", "SO3", "E3", "SE3")
_OUTPUT_KINDS = ("invariant", "vector", "position")


class FrameInfo(NamedTuple):
    """Diagnostics of a PCA frame.

    Attributes:
      eigenvalues: covariance eigenvalues in decreasing order, shape ``(d,)``.
      gap: smallest relative gap ``min_i (lambda_i - lambda_{i+1}) / lambda_1`` (scalar; ``0``
        when the covariance is zero, ``1`` in 1-D).
      degenerate: boolean scalar, ``gap <= gap_tol`` (or the gap is NaN, from non-finite
        points): the frame is (nearly) ill-defined and the result is not guaranteed equivariant.
    """

    eigenvalues: Array
    gap: Array
    degenerate: Array


# --------------------------------------------------------------------------------------------
# eigh with finite eigenvector derivatives at repeated eigenvalues


@jax.custom_jvp
def _eigh(c: Array) -> tuple[Array, Array]:
    w, v = jnp.linalg.eigh(c)
    return w, v


@_eigh.defjvp
def _eigh_jvp(primals, tangents):
    (c,), (dc,) = primals, tangents
    w, v = _eigh(c)
    e = precise_matmul(precise_matmul(v.T, 0.5 * (dc + dc.T)), v)
    gap = w[None, :] - w[:, None]  # gap[i, j] = w_j - w_i
    tol = 16 * eps(c.dtype) * jnp.max(jnp.abs(w)) + jnp.finfo(c.dtype).tiny
    coupled = jnp.abs(gap) > tol
    inv_gap = jnp.where(coupled, 1.0 / jnp.where(coupled, gap, 1.0), 0.0)
    return (w, v), (jnp.diagonal(e), precise_matmul(v, inv_gap * e))


# --------------------------------------------------------------------------------------------
# validation helpers shared with canonicalization


def _check_points(fn: str, x: ArrayLike, node_mask: ArrayLike | None) -> tuple[Array, Array | None]:
    x = as_float_array(fn, "x", x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{fn}: argument `x` must be one point cloud of shape (N, d) with N, d >= 1 "
            f"(vmap for batches); got shape {x.shape}"
        )
    return x, check_node_mask(fn, node_mask, x.shape[0])


def _check_gap_tol(fn: str, gap_tol) -> None:
    if gap_tol is None:
        return
    if isinstance(gap_tol, bool) or not isinstance(gap_tol, numbers.Real):
        raise TypeError(f"{fn}: argument `gap_tol` must be a real number or None; got {gap_tol!r}")
    if not gap_tol >= 0:
        raise ValueError(f"{fn}: argument `gap_tol` must be a non-negative float; got {gap_tol!r}")


def _check_args(fn: str, args: tuple, kinds: tuple[str, ...], d: int) -> None:
    """Arguments canonicalized as vectors or positions: real floating leaves with last axis ``d``."""
    for i, (a, k) in enumerate(zip(args, kinds)):
        if k == "invariant":
            continue
        for leaf in jax.tree.leaves(a):
            leaf = as_float_array(fn, "args", leaf)
            if leaf.ndim < 1 or leaf.shape[-1] != d:
                raise ValueError(
                    f"{fn}: argument `args`: entry {i} ({k!r}) must have a last axis of size "
                    f"d = {d}; got shape {leaf.shape}"
                )


def _check_kinds(fn: str, name: str, kinds, n: int | None) -> tuple[str, ...] | str:
    if isinstance(kinds, str):
        check_option(fn, name, kinds, _OUTPUT_KINDS)
        return kinds
    kinds = tuple(kinds)
    for k in kinds:
        check_option(fn, name, k, _OUTPUT_KINDS)
    if n is not None and len(kinds) != n:
        raise ValueError(f"{fn}: argument `{name}` must have {n} entries; got {len(kinds)}")
    return kinds


def _to_frame(y: Array, rot: Array, t: Array | None, kind: str, node_mask: Array | None) -> Array:
    """Canonicalize a ``(..., d)`` input: ``R^T (y - t)`` per row.

    Node arrays (``ndim >= 2`` with ``N`` rows) get their padding rows set to zero.
    """
    if kind == "invariant":
        return y
    y = jnp.asarray(y)
    if kind == "position" and t is not None:
        y = y - t.astype(y.dtype)
    y = precise_matmul(y, rot.astype(y.dtype))
    if node_mask is not None and y.ndim >= 2 and y.shape[0] == node_mask.shape[0]:
        y = jnp.where(node_mask.reshape((-1,) + (1,) * (y.ndim - 1)), y, jnp.zeros_like(y))
    return y


def _from_frame(y: Array, rot: Array, t: Array | None, kind: str) -> Array:
    """Map a canonical output back: invariant unchanged, ``R y`` for vectors, ``R y + t`` for positions."""
    if kind == "invariant":
        return y
    y = jnp.asarray(y)
    if y.ndim < 1 or y.shape[-1] != rot.shape[0]:
        raise ValueError(
            f"a {kind!r} output must have a last axis of size d = {rot.shape[0]}; "
            f"got shape {y.shape}"
        )
    y = precise_matmul(y, rot.T.astype(y.dtype))
    if kind == "position" and t is not None:
        y = y + t.astype(y.dtype)
    return y


def _apply_in_frame(
    fn: str,
    f: Callable,
    x: Array,
    args: tuple,
    rot: Array,
    t: Array | None,
    output,
    arg_kinds: tuple[str, ...],
    node_mask: Array | None,
    f_name: str = "f",
):
    """``g . f(g^{-1} . (x, args))`` for the frame element ``g = (rot, t)``."""
    xc = _to_frame(x, rot, t, "position", node_mask)
    cargs = tuple(
        jax.tree.map(lambda a, k=k: _to_frame(a, rot, t, k, node_mask), a)
        for a, k in zip(args, arg_kinds)
    )
    y = f(xc, *cargs)
    if isinstance(output, str):
        return jax.tree.map(lambda leaf: _map_back(fn, f_name, leaf, rot, t, output), y)
    if not isinstance(y, (tuple, list)) or len(y) != len(output):
        raise ValueError(
            f"{fn}: `{f_name}` must return a tuple of {len(output)} outputs to match `output`; "
            f"got {type(y).__name__}"
        )
    return type(y)(
        jax.tree.map(lambda leaf, k=k: _map_back(fn, f_name, leaf, rot, t, k), part)
        for part, k in zip(y, output)
    )


def _map_back(fn: str, f_name: str, y, rot, t, kind):
    try:
        return _from_frame(y, rot, t, kind)
    except ValueError as err:
        raise ValueError(
            f"{fn}: the output of `{f_name}` (kind given by `output`): {err}"
        ) from None


def _normalize_args(fn: str, args: tuple, arg_kinds) -> tuple[str, ...]:
    if arg_kinds is None:
        return ("invariant",) * len(args)
    kinds = _check_kinds(fn, "arg_kinds", arg_kinds, len(args))
    if isinstance(kinds, str):
        return (kinds,) * len(args)
    return kinds


# --------------------------------------------------------------------------------------------
# PCA frames


def _sign_patterns(d: int, proper: bool, dtype) -> Array:
    """All sign vectors ``s in {+-1}^d`` (``proper``: only those with ``prod(s) = +1``), ``(K, d)``."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d)))
    if proper:
        signs = signs[np.prod(signs, axis=1) > 0]
    return jnp.asarray(signs, dtype)


def _pca(x: Array, node_mask: Array | None, gap_tol: float | None):
    """Centroid, eigenvalues (decreasing), eigenvectors (columns) and FrameInfo."""
    d = x.shape[1]
    if node_mask is None:
        weights = jnp.ones((x.shape[0],), x.dtype)
    else:
        weights = node_mask.astype(x.dtype)
        x = jnp.where(node_mask[:, None], x, jnp.zeros_like(x))  # padding may hold NaN / inf
    count = jnp.sum(weights)
    centroid = safe_div(precise_matmul(weights, x), count)
    xc = (x - centroid) * weights[:, None]
    cov = safe_div(precise_matmul(xc.T, xc), count)
    w, v = _eigh(0.5 * (cov + cov.T))
    w, v = w[::-1], v[:, ::-1]
    top = jnp.max(jnp.abs(w))
    if d == 1:
        gap = jnp.ones((), x.dtype)
    else:
        gap = safe_div(jnp.min(w[:-1] - w[1:]), top)
    tol = float(np.sqrt(eps(x.dtype))) if gap_tol is None else float(gap_tol)
    info = FrameInfo(jax.lax.stop_gradient(w), jax.lax.stop_gradient(gap), ~(gap > tol))
    return centroid, v, info


def pca_frames(
    x: ArrayLike,
    group: str = "E3",
    node_mask: ArrayLike | None = None,
    *,
    return_info: bool = False,
    gap_tol: float | None = None,
):
    r"""The PCA frame of a point cloud: all sign choices of the covariance eigenvectors.

    With the (masked) centroid :math:`t = \frac1n \sum_i x_i` and the centred covariance
    :math:`C = \frac1n \sum_i (x_i - t)(x_i - t)^\top = V \Lambda V^\top` (eigenvalues in
    decreasing order),

    .. math::

        \mathcal{F}(X) = \{ (V \operatorname{diag}(s),\ t) : s \in \{\pm 1\}^d \}
        \quad (\text{O3 / E3: } 2^d \text{ elements}),

    restricted to :math:`\det(V \operatorname{diag}(s)) = +1` for SO3 / SE3 (:math:`2^{d-1}`
    elements; the last eigenvector's sign is fixed first so that the set is the same whatever
    sign ``eigh`` returns). The translation is :math:`t` for E3 / SE3 and zero for O3 / SO3.
    The frame is equivariant, :math:`\mathcal{F}(X R^\top + u) = R\, \mathcal{F}(X) + u`, when the
    eigenvalues are distinct; see the module docstring for repeated eigenvalues. Works for any
    dimension ``d`` (the group names say 3). Non-finite points: NaN in, NaN out (the rotations
    are NaN and ``FrameInfo.degenerate`` is True).

    Args:
      x: point cloud, shape ``(N, d)`` (vmap for batches).
      group: ``"O3"``, ``"SO3"``, ``"E3"`` (default) or ``"SE3"`` (static).
      node_mask: optional boolean ``(N,)``; padding rows (false) are ignored.
      return_info: also return a :class:`FrameInfo` (static).
      gap_tol: relative eigenvalue gap below which ``FrameInfo.degenerate`` is set; default
        :math:`\sqrt{\epsilon}` of the dtype.

    Returns:
      ``(rotations, translation)``: ``(K, d, d)`` orthogonal matrices whose columns are the
      frame axes (``K = 2^d`` or ``2^(d-1)``) and ``(d,)``; with ``return_info`` a third
      element, the :class:`FrameInfo`. Derivatives through the eigenvectors are finite also
      at repeated eigenvalues (see the module docstring).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant._frame_averaging import pca_frames
      >>> x = jax.random.normal(jax.random.key(0), (10, 3)) * jnp.array([3.0, 2.0, 1.0])
      >>> rots, t = pca_frames(x, "SO3")
      >>> rots.shape, [round(float(v), 4) for v in jnp.linalg.det(rots)]
      ((4, 3, 3), [1.0, 1.0, 1.0, 1.0])
      >>> _, _, info = pca_frames(jnp.zeros((4, 3)), "O3", return_info=True)
      >>> bool(info.degenerate)
      True

    References:
      O. Puny, M. Atzmon, H. Ben-Hamu, I. Misra, A. Grover, E. J. Smith, Y. Lipman, "Frame
      Averaging for Invariant and Equivariant Network Design", ICLR 2022, arXiv:2110.03336
      (Section 3.3).
    """
    fn = "pca_frames"
    check_option(fn, "group", group, _GROUPS)
    x, node_mask = _check_points(fn, x, node_mask)
    _check_gap_tol(fn, gap_tol)
    return _pca_frames(x, group, node_mask, return_info, gap_tol)


def _pca_frames(x, group, node_mask, return_info, gap_tol):
    d = x.shape[1]
    centroid, v, info = _pca(x, node_mask, gap_tol)
    proper = group in ("SO3", "SE3")
    if proper:
        flip = jnp.where(jax.lax.stop_gradient(jnp.linalg.det(v)) < 0, -1.0, 1.0).astype(x.dtype)
        v = v.at[:, -1].multiply(flip)
    signs = _sign_patterns(d, proper, x.dtype)
    rotations = v[None, :, :] * signs[:, None, :]
    translation = centroid if group in ("E3", "SE3") else jnp.zeros((d,), x.dtype)
    if return_info:
        return rotations, translation, info
    return rotations, translation


# --------------------------------------------------------------------------------------------
# frame averaging


def frame_average(
    f: Callable[..., Any],
    x: ArrayLike,
    *args,
    group: str = "E3",
    output: str | Sequence[str] = "invariant",
    arg_kinds: Sequence[str] | None = None,
    node_mask: ArrayLike | None = None,
    key: PRNGKey | None = None,
    stochastic: bool = False,
    frame_grad: bool = False,
    return_info: bool = False,
    gap_tol: float | None = None,
):
    r"""Make ``f(x, *args)`` invariant or equivariant by averaging over the PCA frame of ``x``.

    With the frame :math:`\{(R_k, t)\}_{k=1}^K` of :func:`pca_frames`,

    .. math::

        \langle f \rangle(X) = \frac1K \sum_{k=1}^K \rho_{out}(R_k, t)\,
        f\big((X - \mathbf{1} t^\top) R_k\big),

    i.e. ``f`` sees the canonicalized points :math:`R_k^\top (x_i - t)` and its outputs are
    mapped back by kind: ``"invariant"`` outputs are averaged as they are, ``"vector"``
    outputs (last axis ``d``) are rotated back, :math:`y \mapsto R_k y`, ``"position"`` outputs
    are rotated back and translated, :math:`y \mapsto R_k y + t`. Any ``f`` becomes exactly
    invariant / equivariant (up to rounding) under the chosen group, and permutation
    equivariant when ``f`` is. Further arguments are passed unchanged (``"invariant"``, the
    default) or canonicalized like ``x`` as ``"vector"`` (:math:`R_k^\top v`, e.g. velocities) or
    ``"position"`` (:math:`R_k^\top (y - t)`) per ``arg_kinds``; padding rows (``node_mask``
    false) of canonicalized node arrays are set to zero. ``f`` is evaluated for all ``K``
    frame elements at once with ``jax.vmap`` (so it must be vmappable).

    ``stochastic=True`` evaluates ``f`` at one frame element drawn uniformly with ``key``
    (an unbiased estimate of the average, equivariant in distribution; Puny et al.,
    Section 3.1), at ``1/K`` of the cost. Non-finite points: NaN in, NaN out, flagged by
    ``FrameInfo.degenerate`` (see :func:`pca_frames`).

    Args:
      f: function ``f(x_canonical (N, d), *args)`` returning an array, a pytree, or (with a
        sequence ``output``) a tuple of outputs.
      x: point cloud, shape ``(N, d)`` (vmap for batches).
      *args: further arguments of ``f``.
      group: ``"E3"`` (default; rotations, reflections, translations), ``"SE3"``, ``"O3"``
        or ``"SO3"`` (static).
      output: kind of ``f``'s output, or a sequence with one kind per output (static).
      arg_kinds: kinds of ``args`` (default all ``"invariant"``).
      node_mask: optional boolean ``(N,)``; padding rows are ignored by the frame. ``f``
        itself does not receive the mask: pass it in ``args`` if ``f`` needs it.
      key: PRNG key, required with ``stochastic=True``.
      stochastic: sample one frame element instead of averaging (static).
      frame_grad: differentiate through the frame's eigenvectors (default: ``stop_gradient``
        on the rotations; see the module docstring).
      return_info: also return the :class:`FrameInfo` (static).
      gap_tol: relative eigenvalue gap for ``FrameInfo.degenerate`` (default
        :math:`\sqrt{\epsilon}`).

    Returns:
      The averaged output (same structure as ``f``'s), and with ``return_info`` a tuple
      ``(output, FrameInfo)``.

    Raises:
      ValueError: for an unknown group or kind, a mismatched ``node_mask``, wrong output
        shapes, or ``stochastic=True`` without ``key``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant._frame_averaging import frame_average
      >>> f = lambda x: x[:, 0]  # depends on the coordinate frame: not invariant
      >>> x = jax.random.normal(jax.random.key(0), (6, 3)) * jnp.array([3.0, 2.0, 1.0])
      >>> q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (3, 3)))
      >>> a = frame_average(f, x, group="E3")
      >>> b = frame_average(f, x @ q.T + 1.0, group="E3")
      >>> bool(jnp.allclose(a, b, atol=1e-5))
      True
      >>> y, info = frame_average(f, x, return_info=True)
      >>> bool(info.degenerate)
      False

    References:
      O. Puny, M. Atzmon, H. Ben-Hamu, I. Misra, A. Grover, E. J. Smith, Y. Lipman, "Frame
      Averaging for Invariant and Equivariant Network Design", ICLR 2022, arXiv:2110.03336.
    """
    fn = "frame_average"
    if not callable(f):
        raise TypeError(f"{fn}: argument `f` must be callable; got {type(f).__name__}")
    check_option(fn, "group", group, _GROUPS)
    output = _check_kinds(fn, "output", output, None)
    kinds = _normalize_args(fn, args, arg_kinds)
    x, node_mask = _check_points(fn, x, node_mask)
    _check_args(fn, args, kinds, x.shape[1])
    if stochastic and key is None:
        raise ValueError(f"{fn}: argument `key` is required with `stochastic=True`")
    if stochastic:
        check_key(fn, "key", key)
    _check_gap_tol(fn, gap_tol)
    rotations, translation, info = _pca_frames(x, group, node_mask, True, gap_tol)
    if not frame_grad:
        rotations = jax.lax.stop_gradient(rotations)

    def one(rot):
        return _apply_in_frame(fn, f, x, args, rot, translation, output, kinds, node_mask)

    if stochastic:
        k = jax.random.randint(key, (), 0, rotations.shape[0])
        out = one(rotations[k])
    else:
        out = jax.tree.map(lambda y: jnp.mean(y, axis=0), jax.vmap(one)(rotations))
    return (out, info) if return_info else out
