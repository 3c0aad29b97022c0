r"""Static M-FAC: the inverse of a damped empirical Fisher from ``m`` gradients, matrix-free.

For ``m`` gradients :math:`g_1, \dots, g_m \in \mathbb{R}^d` (the rows of :math:`G`) and damping
:math:`\lambda > 0`,

.. math::

    F = \lambda I_d + \frac{1}{m} G^\top G, \qquad
    F^{-1} = \frac{1}{\lambda}\big(I_d - G^\top K^{-1} G\big), \qquad
    K = m\lambda I_m + G G^\top

(Woodbury). With the Cholesky factor :math:`K = L L^\top` and :math:`Q = L^{-1} G` (``m x d``),
:math:`F^{-1} = (I - Q^\top Q) / \lambda`. The precompute (Gram matrix, ``m x m`` Cholesky, one
triangular solve) costs :math:`O(dm^2 + m^3)` and stores ``Q``; then

* :meth:`MFACInverse.ihvp`: :math:`F^{-1} v = (v - Q^\top (Q v)) / \lambda`, :math:`O(dm)`;
* :meth:`MFACInverse.inverse_diag`: :math:`[F^{-1}]_{ii} = (1 - \sum_k Q_{ki}^2) / \lambda`,
  :math:`O(dm)`;
* :meth:`MFACInverse.obs_scores` and :meth:`MFACInverse.obs_update`: Optimal Brain Surgeon
  pruning with :math:`F` as the Hessian, :math:`O(dm)` and :math:`O(dm + km + k^3)` for ``k``
  weights.

This is the same factorisation as the paper's static algorithm (its rows
:math:`F_{i-1}^{-1} g_i / \sqrt{m + g_i^\top F_{i-1}^{-1} g_i}` are the rows of
:math:`Q / \sqrt{\lambda}`), written as one blocked Cholesky instead of ``m`` sequential
rank-one steps.

Numerics. ``K`` is formed as :math:`m\lambda I + GG^\top` (equivalently
:math:`\lambda (mI + GG^\top/\lambda)`, the paper's scaling); the ``m x m`` Cholesky runs in
float64 whenever ``jax_enable_x64`` is on (also for float32 gradients), else in the gradients'
dtype. Cholesky is backward stable, so float32 works at :math:`\lambda = 10^{-5}` as long as
:math:`m\lambda` is above the rounding error of the Gram matrix (about
:math:`\epsilon \max_i \|g_i\|^2`, :math:`\epsilon` the unit roundoff; this only matters when
``G G^T`` is singular, e.g. blocks with fewer coordinates than gradients). Every formula above
ends with a subtraction. For a generic vector the relative error is about
:math:`\epsilon\,\kappa(K)` (float32, :math:`\lambda = 10^{-5}`, ``m = 4``, ``d = 30``:
measured 5e-8 for independent gradients, 6e-6 for strongly correlated ones with
:math:`\kappa(K) = 5 \cdot 10^2`), and the same for ``inverse_diag``; for a vector in the span
of the gradients it grows to about :math:`\epsilon\,\kappa(F)`,
:math:`\kappa(F) = 1 + \|G\|_2^2/(m\lambda)` (measured 0.1 at :math:`\kappa(F) = 10^6`), the
conditioning of the problem itself (the rounding of ``v`` alone causes that much): use float64
there. (The dynamic optimizer avoids this for the one vector it needs, see
:mod:`geomjax.optim._mfac`.)

Blocks. ``block_size=b`` splits the coordinates into consecutive chunks of ``b`` (the last one
zero-padded) and uses the block-diagonal :math:`F` with one independent ``m``-gradient window per
block (the paper's blocked variant for large models, and what makes ``m`` large affordable):
the precompute is still :math:`O(dm^2)` plus :math:`\lceil d/b \rceil` Cholesky factorisations
of ``m x m``, products stay :math:`O(dm)`, storage ``m x d``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, PyTree, as_float_array, check_scalar, full_precision

__all__ = ["MFACInverse"]


# --------------------------------------------------------------------------------------------
# flattening helpers (shared with geomjax.optim._mfac)
# --------------------------------------------------------------------------------------------


def algebra_dtype(dtype: Any) -> Any:
    """dtype of the ``m x m`` algebra: float64 when x64 is enabled, else ``dtype`` (>= float32)."""
    return jnp.promote_types(dtype, jax.dtypes.canonicalize_dtype(jnp.float64))


def chol_of_window(gram: Array, m: int, damping: Any) -> Array:
    """Lower Cholesky factor of ``m * damping * I + gram`` (symmetrised), in ``gram.dtype``.

    The diagonal shift is floored at ``m eps max_i gram_ii``, the round-off level of the Gram
    matrix: below it ``m * damping`` is invisible in this dtype anyway, and a rank-deficient window
    (e.g. float32, damping 1e-5, large gradients) would otherwise make the factorization fail
    (NaN). The floor is inactive whenever the damping is resolvable.
    """
    k = 0.5 * (gram + jnp.swapaxes(gram, -1, -2))
    eps = jnp.finfo(gram.dtype).eps
    floor = m * eps * jnp.max(jnp.diagonal(k, axis1=-2, axis2=-1), axis=-1, keepdims=True)
    shift = jnp.maximum(m * jnp.asarray(damping, gram.dtype), floor)
    k = k + shift[..., None] * jnp.eye(gram.shape[-1], dtype=gram.dtype)
    return jnp.linalg.cholesky(k)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How a flat vector of length ``dim`` maps to a pytree (or a plain array)."""

    treedef: Any  # None: plain 1-D array
    shapes: tuple[tuple[int, ...], ...]
    dim: int

    def flatten(self, fn: str, name: str, x: Any, dtype: Any) -> Array:
        if self.treedef is None:
            if not jax.tree_util.treedef_is_leaf(jax.tree.structure(x)):
                raise ValueError(
                    f"{fn}: argument `{name}` must be an array of shape ({self.dim},); got a pytree"
                )
            arr = as_float_array(fn, name, x)
            if arr.shape != (self.dim,):
                raise ValueError(
                    f"{fn}: argument `{name}` must have shape ({self.dim},); got shape {arr.shape}"
                )
            return arr.astype(dtype)
        leaves, treedef = jax.tree.flatten(x)
        shapes = tuple(tuple(jnp.shape(a)) for a in leaves)
        if treedef != self.treedef or shapes != self.shapes:
            raise ValueError(
                f"{fn}: argument `{name}` must have the structure and leaf shapes of the gradients "
                f"({self.treedef}, {self.shapes}); got ({treedef}, {shapes})"
            )
        return jnp.concatenate(
            [as_float_array(fn, name, a).astype(dtype).reshape(-1) for a in leaves]
        )

    def unflatten(self, v: Array) -> Any:
        if self.treedef is None:
            return v
        out, start = [], 0
        for s in self.shapes:
            n = math.prod(s)
            out.append(v[start : start + n].reshape(s))
            start += n
        return jax.tree.unflatten(self.treedef, out)


def _stacked_to_matrix(fn: str, grads: Any) -> tuple[Array, _Layout]:
    """``(m, d)`` matrix and layout from an ``(m, d)`` array or a pytree of ``(m, ...)`` leaves."""
    if isinstance(grads, (jax.Array, jnp.ndarray)) or hasattr(grads, "__array__"):
        g = as_float_array(fn, "grads", grads)
        if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] < 1:
            raise ValueError(
                f"{fn}: argument `grads` must have shape (m, d) with m, d >= 1; got shape {g.shape}"
            )
        return g, _Layout(None, (), g.shape[1])
    leaves, treedef = jax.tree.flatten(grads)
    if not leaves:
        raise ValueError(
            f"{fn}: argument `grads` must be an (m, d) array or a non-empty pytree of stacked gradients"
        )
    leaves = [as_float_array(fn, "grads", a) for a in leaves]
    if (
        any(a.ndim < 1 for a in leaves)
        or len({a.shape[0] for a in leaves}) != 1
        or leaves[0].shape[0] < 1
    ):
        raise ValueError(
            f"{fn}: argument `grads` as a pytree must have leaves of shape (m, ...) with the same "
            f"m >= 1; got shapes {[a.shape for a in leaves]}"
        )
    m = leaves[0].shape[0]
    dtype = jnp.result_type(*leaves)
    g = jnp.concatenate([a.astype(dtype).reshape(m, -1) for a in leaves], axis=1)
    shapes = tuple(a.shape[1:] for a in leaves)
    return g, _Layout(treedef, shapes, g.shape[1])


# --------------------------------------------------------------------------------------------
# MFACInverse
# --------------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MFACInverse:
    r"""Inverse damped empirical Fisher of ``m`` gradients, applied in :math:`O(dm)` (static M-FAC).

    Represents :math:`F^{-1}` for :math:`F = \lambda I + \frac1m G^\top G` (``G`` = the ``m``
    gradients as rows, :math:`\lambda` = ``damping``) through the factor :math:`Q = L^{-1}G`,
    :math:`LL^\top = m\lambda I + GG^\top`, so that :math:`F^{-1} = (I - Q^\top Q)/\lambda`
    (see the module docstring for the derivation and numerics). Build it with
    :meth:`from_gradients`; it is a pytree (``jit``/``vmap``-able) with array leaves ``factor``
    and ``damping``.

    With ``block_size`` the Fisher is block-diagonal over consecutive chunks of coordinates,
    each block with its own ``m``-gradient window (exact for that block-diagonal :math:`F`).

    Attributes:
      factor: :math:`Q` per block, shape ``(n_blocks, m, block_size)`` (one block of size ``d``
        without blocking; padded coordinates have zero columns).
      damping: :math:`\lambda`, a scalar array.

    Input domain: values are not checked; NaN or inf in the gradients or in the vectors
    passed to the methods give non-finite results (NaN in, NaN out). Vectors of the wrong
    shape or a non-floating dtype raise ``ValueError`` / ``TypeError`` naming the argument.

    Precision: the methods trace their products at ``Precision.HIGHEST`` (on GPUs float32
    products otherwise run as TF32, whose 1e-3 rounding of the Gram matrix the Woodbury form
    amplifies by its conditioning); the cost is ``O(dm)`` matrix-vector work, bound by memory
    bandwidth, so full precision is nearly free.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.curvature._mfac import MFACInverse
      >>> G = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
      >>> finv = MFACInverse.from_gradients(G, damping=1.0)  # F = diag(1.5, 3, 1)
      >>> finv.ihvp(jnp.array([1.5, 3.0, 1.0])).round(5)
      Array([1., 1., 1.], dtype=float32)
      >>> [round(float(x), 5) for x in finv.inverse_diag()]
      [0.66667, 0.33333, 1.0]

    References:
      E. Frantar, E. Kurtic, D. Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
      Second-Order Information", NeurIPS 2021, arXiv:2107.03356.
    """

    factor: Array
    damping: Array
    layout: _Layout = dataclasses.field(metadata=dict(static=True))
    block_size: int = dataclasses.field(metadata=dict(static=True))

    # ---------------------------------------------------------------------------------------
    @classmethod
    @full_precision
    def from_gradients(
        cls, grads: ArrayLike | PyTree, damping: float | ArrayLike, *, block_size: int | None = None
    ) -> MFACInverse:
        r"""Precompute :math:`F^{-1}` from ``m`` gradients in :math:`O(dm^2 + m^3)`.

        .. math::

            K = m\lambda I + G G^\top = L L^\top, \qquad Q = L^{-1} G

        Args:
          grads: the gradients :math:`G`, an array of shape ``(m, d)``, or a pytree whose leaves
            are stacked gradients of shape ``(m, *leaf_shape)`` (then vectors passed to the
            methods are pytrees of ``leaf_shape`` leaves, flattened in ``jax.tree.leaves`` order;
            flat indices refer to that concatenation).
          damping: :math:`\lambda > 0`, a real scalar (checked when concrete; a traced one
            that is not positive makes every result NaN).
          block_size: ``None`` for one window over all ``d`` coordinates, or an int ``b >= 1``
            for a block-diagonal Fisher over chunks of ``b`` coordinates.

        Returns:
          An :class:`MFACInverse`.

        Raises:
          ValueError: wrong shapes, ``damping`` not a scalar or (when concrete) not positive
            and finite, ``block_size`` not None or an int >= 1.
          TypeError: non-floating gradients, non-real ``damping``.
        """
        fn = "MFACInverse.from_gradients"
        g, layout = _stacked_to_matrix(fn, grads)
        check_scalar(fn, "damping", damping)
        if block_size is not None and (
            isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
        ):
            raise ValueError(
                f"{fn}: argument `block_size` must be None or an int >= 1; got {block_size!r}"
            )
        m, d = g.shape
        b = d if block_size is None else min(block_size, d)
        nb = -(-d // b)
        gb = (
            jnp.pad(g, ((0, 0), (0, nb * b - d))).reshape(m, nb, b).transpose(1, 0, 2)
        )  # (nb, m, b)
        adt = algebra_dtype(g.dtype)
        if isinstance(damping, jax.core.Tracer):
            # Not checked above when traced: a non-positive one makes every result NaN.
            damping = jnp.where(damping > 0, damping, jnp.nan)
        damp = jnp.asarray(damping, g.dtype)
        gram = jnp.einsum("kib,kjb->kij", gb, gb).astype(adt)
        chol = chol_of_window(gram, m, damping).astype(g.dtype)
        q = jax.scipy.linalg.solve_triangular(chol, gb, lower=True)
        return cls(factor=q, damping=damp, layout=layout, block_size=b)

    # ---------------------------------------------------------------------------------------
    @property
    def num_grads(self) -> int:
        """``m``, the number of gradients."""
        return self.factor.shape[-2]

    @property
    def dim(self) -> int:
        """``d``, the number of coordinates (without padding)."""
        return self.layout.dim

    def _blocks(self, fn: str, name: str, v: Any) -> Array:
        flat = self.layout.flatten(fn, name, v, self.factor.dtype)
        nb, _, b = self.factor.shape
        return jnp.pad(flat, (0, nb * b - self.dim)).reshape(nb, b)

    def _unblocks(self, x: Array) -> Any:
        return self.layout.unflatten(x.reshape(-1)[: self.dim])

    @full_precision
    def ihvp(self, v: ArrayLike | PyTree) -> Array | PyTree:
        r"""Inverse-Fisher-vector product :math:`F^{-1}v = (v - Q^\top Q v)/\lambda`, :math:`O(dm)`.

        Args:
          v: shape ``(d,)`` (or a pytree like one gradient).

        Returns:
          :math:`F^{-1} v`, like ``v`` (in the gradients' dtype).
        """
        x = self._blocks("MFACInverse.ihvp", "v", v)
        qv = jnp.einsum("kmb,kb->km", self.factor, x)
        return self._unblocks((x - jnp.einsum("kmb,km->kb", self.factor, qv)) / self.damping)

    @full_precision
    def inverse_diag(self) -> Array | PyTree:
        r"""Diagonal of :math:`F^{-1}`: :math:`(1 - \sum_k Q_{ki}^2)/\lambda`, :math:`O(dm)`.

        Returns:
          shape ``(d,)`` (or a pytree like one gradient).
        """
        return self._unblocks((1.0 - jnp.sum(self.factor**2, axis=-2)) / self.damping)

    @full_precision
    def obs_scores(self, weights: ArrayLike | PyTree) -> Array | PyTree:
        r"""Optimal Brain Surgeon saliencies :math:`\rho_i = w_i^2 / (2 [F^{-1}]_{ii})`.

        :math:`\rho_i` is the increase of the quadratic model
        :math:`\frac12 \delta w^\top F \delta w` when weight ``i`` alone is set to zero and the
        others are moved optimally (:meth:`obs_update` with one index). Pruning the weights with
        the smallest scores is the M-FAC / WoodFisher criterion; ranking by single-weight scores
        ignores their interactions (an approximation), :meth:`obs_update` does not.

        Args:
          weights: :math:`w`, shape ``(d,)`` (or a pytree like one gradient).

        Returns:
          :math:`\rho`, like ``weights``.
        """
        w = self._blocks("MFACInverse.obs_scores", "weights", weights)
        diag = (1.0 - jnp.sum(self.factor**2, axis=-2)) / self.damping
        return self._unblocks(w**2 / (2.0 * diag))

    @full_precision
    def obs_update(
        self, weights: ArrayLike | PyTree, indices: ArrayLike
    ) -> tuple[Array | PyTree, Array]:
        r"""Joint OBS correction for removing the weights ``indices`` at once.

        With :math:`E_Q` the ``d x k`` selection of the coordinates :math:`Q` = ``indices``:

        .. math::

            \delta w = -F^{-1} E_Q \big(E_Q^\top F^{-1} E_Q\big)^{-1} E_Q^\top w, \qquad
            \delta L = \tfrac12\, w_Q^\top \big(E_Q^\top F^{-1} E_Q\big)^{-1} w_Q

        ``w + delta_w`` is zero on ``indices`` and minimises the quadratic model
        :math:`\frac12 (\delta w)^\top F\, \delta w` under that constraint; ``delta_L`` is the
        model's increase. Exact for the given :math:`F` (both in exact arithmetic); what is
        approximated is the loss itself: the OBS model takes the loss as quadratic around a
        minimum (gradient ignored) with Hessian replaced by the damped empirical Fisher of ``m``
        gradients (block-diagonal with ``block_size``). Cost :math:`O(dm + km + k^3)`.

        Args:
          weights: :math:`w`, shape ``(d,)`` (or a pytree like one gradient).
          indices: ``k`` distinct flat coordinates, int array of shape ``(k,)`` (static ``k``);
            ``k = 0`` gives a zero correction.

        Returns:
          ``(delta_w, delta_L)``: the correction, like ``weights``, and the scalar model increase.

        Raises:
          TypeError: ``indices`` not a 1-D integer array; ``weights`` not shaped like a gradient
            (ValueError) or non-floating.
          ValueError: concrete ``indices`` out of ``[0, d)`` or repeated (traced ones like
            that give NaN).
        """
        fn = "MFACInverse.obs_update"
        w = self._blocks(fn, "weights", weights)
        idx = jnp.asarray(indices)
        if idx.ndim != 1 or not jnp.issubdtype(idx.dtype, jnp.integer):
            raise TypeError(
                f"{fn}: argument `indices` must be a 1-D integer array; got {idx.dtype} {idx.shape}"
            )
        traced = isinstance(indices, jax.core.Tracer)
        if not traced:
            idx_np = np.asarray(indices)
            if idx_np.size and (idx_np.min() < 0 or idx_np.max() >= self.dim):
                raise ValueError(
                    f"{fn}: argument `indices` must hold flat coordinates in [0, {self.dim}); "
                    f"got {idx_np.tolist()}"
                )
            if np.unique(idx_np).size != idx_np.size:
                raise ValueError(
                    f"{fn}: argument `indices` must hold distinct coordinates; got "
                    f"{idx_np.tolist()}"
                )
        nb, m, b = self.factor.shape
        blk, pos = idx // b, idx % b
        qcols = self.factor[blk, :, pos]  # (k, m): column pos of block blk's Q
        same = (blk[:, None] == blk[None, :]).astype(w.dtype)
        sub = (jnp.eye(idx.shape[0], dtype=w.dtype) - same * (qcols @ qcols.T)) / self.damping
        wq = w[blk, pos]
        chol = jnp.linalg.cholesky(0.5 * (sub + sub.T))
        s = jax.scipy.linalg.cho_solve((chol, True), wq)
        acc = jnp.zeros((nb, m), w.dtype).at[blk].add(s[:, None] * qcols)
        es = jnp.zeros((nb, b), w.dtype).at[blk, pos].add(s)
        delta = -(es - jnp.einsum("kmb,km->kb", self.factor, acc)) / self.damping
        delta_l = 0.5 * jnp.dot(wq, s)
        if traced:
            # Not checked above when traced: out-of-range or repeated indices give NaN.
            k = idx.shape[0]
            bad = jnp.any((idx < 0) | (idx >= self.dim))
            bad |= jnp.any((idx[:, None] == idx[None, :]) & ~jnp.eye(k, dtype=bool))
            delta, delta_l = jnp.where(bad, jnp.nan, delta), jnp.where(bad, jnp.nan, delta_l)
        return self._unblocks(delta), delta_l
