"""Gradient checks: finiteness of first and second derivatives."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def check_grads_finite(f: Callable, args: tuple, order: int = 2, *, hessian: str = "full") -> None:
    """Assert that derivatives of a scalar-valued ``f`` up to ``order`` (1 or 2) are finite at ``args``.

    Checks the reverse-mode gradient, and for ``order=2`` second derivatives: with
    ``hessian="full"`` the Hessian through both forward-over-reverse (``jax.hessian``) and
    reverse-over-reverse; with ``hessian="hvp"`` one forward-over-reverse Hessian-vector
    product along a dense fixed direction (cheaper to compile; a NaN anywhere in the Hessian
    propagates into it). Use it at singular points (identity matrices, repeated eigenvalues,
    zero vectors, coincident points); pair it with ``jax.test_util.check_grads`` for correctness.

    Raises:
      AssertionError: naming the derivative that had a NaN or inf.
      ValueError: if ``order`` is not 1 or 2, ``hessian`` is unknown, or ``f`` is not
        scalar-valued.
    """
    if order not in (1, 2):
        raise ValueError(f"check_grads_finite: argument `order` must be 1 or 2; got {order}")
    if hessian not in ("full", "hvp"):
        raise ValueError(
            f"check_grads_finite: argument `hessian` must be 'full' or 'hvp'; got {hessian!r}"
        )
    argnums = tuple(range(len(args)))
    out = f(*args)
    if jnp.ndim(out) != 0:
        raise ValueError(
            f"check_grads_finite: `f` must return a scalar; got shape {jnp.shape(out)}"
        )
    checks = {"value": out, "gradient": jax.grad(f, argnums=argnums)(*args)}
    if order == 2 and hessian == "hvp":
        args = tuple(jnp.asarray(a) for a in args)
        directions = tuple(
            jnp.linspace(0.5, 1.5, a.size, dtype=a.dtype).reshape(a.shape) for a in args
        )
        checks["hessian-vector product"] = jax.jvp(
            lambda *a: jax.grad(f, argnums=argnums)(*a), args, directions
        )[1]
    elif order == 2:
        checks["hessian (forward-over-reverse)"] = jax.hessian(f, argnums=argnums)(*args)
        checks["hessian (reverse-over-reverse)"] = jax.jacrev(
            jax.grad(f, argnums=argnums), argnums=argnums
        )(*args)
    for what, tree in checks.items():
        for leaf in jax.tree.leaves(tree):
            if not np.all(np.isfinite(np.asarray(leaf))):
                raise AssertionError(f"check_grads_finite: non-finite {what}")
