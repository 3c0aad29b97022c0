"""Linear algebra on pytrees: inner product, axpy and conjugate gradients (private).

Shared by the curvature products, the stochastic normalized Newton optimizer and the
affine-invariant Newton mean (whose unknowns are symmetric matrices: a one-leaf pytree).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from geomjax._core._typing import Array, PyTree


def tree_vdot(a: PyTree, b: PyTree) -> Array:
    """``sum_leaves <a, b>``, the Euclidean inner product of two pytrees with the same structure."""
    parts = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.vdot(x, y), a, b))
    return sum(parts[1:], parts[0])


def tree_axpy(a: Array, x: PyTree, y: PyTree) -> PyTree:
    """``a x + y`` leaf by leaf, in the dtypes of ``y``."""
    return jax.tree.map(lambda xi, yi: (a * xi).astype(yi.dtype) + yi, x, y)


def conjugate_gradient(
    matvec: Callable[[PyTree], PyTree], b: PyTree, max_iter: int, rtol
) -> PyTree:
    """At most ``max_iter`` CG steps on ``A x = b`` from ``x = 0``; stops at ``||r|| <= rtol ||b||``.

    For ``A`` symmetric positive definite the iterates minimize ``x^T A x / 2 - b^T x`` over
    growing Krylov spaces, so every iterate is a descent direction (``b^T x > 0``) and ``||x||``
    grows monotonically towards ``||A^-1 b||`` (Steihaug 1983). A non-positive ``p^T A p`` (a
    curvature that is not PSD, or round-off) stops the iteration at the current iterate;
    ``b = 0`` returns 0 at once. ``rtol`` may be traced; ``max_iter`` is static.
    """
    rr0 = tree_vdot(b, b)
    stop = (rtol * rtol) * rr0
    x0 = jax.tree.map(jnp.zeros_like, b)

    def cond(c):
        k, _, _, _, rr, broke = c
        return (k < max_iter) & (rr > stop) & ~broke

    def body(c):
        k, x, r, p, rr, _ = c
        ap = matvec(p)
        pap = tree_vdot(p, ap)
        broke = ~(pap > 0)
        alpha = jnp.where(broke, 0.0, rr / jnp.where(broke, 1.0, pap))
        x = tree_axpy(alpha, p, x)
        r = tree_axpy(-alpha, ap, r)
        rr_new = tree_vdot(r, r)
        beta = rr_new / jnp.where(rr > 0, rr, 1.0)
        p = tree_axpy(beta, p, r)
        return k + 1, x, r, p, jnp.where(broke, rr, rr_new), broke

    init = (jnp.zeros([], jnp.int32), x0, b, b, rr0, jnp.zeros([], bool))
    return jax.lax.while_loop(cond, body, init)[1]
