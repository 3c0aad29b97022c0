"""Validation of discrete measures ``(x, a)``, ``(y, b)`` shared by every OT function.

A discrete measure is a point cloud ``x: (n, d)`` with weights ``a: (n,)`` (default uniform,
``1/n``). Shapes, ranks and dtypes are checked at trace time. Weight *values* (non-negative,
summing to one) are checked only when the weights are concrete arrays: under ``jax.jit``,
``jax.vmap`` or ``jax.grad`` they are tracers and the value check is skipped, so that traced
weights (e.g. learned ones) never force a host round-trip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, as_float_array, check_ndim, eps

__all__ = ["check_measures", "uniform_or_checked", "is_concrete"]


def is_concrete(x) -> bool:
    """Whether ``x`` holds concrete values (not a tracer under jit / vmap / grad)."""
    try:
        np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False
    return True


def _weight_tolerance(dtype, n: int) -> float:
    """Tolerance on ``|sum(w) - 1|``: ``sqrt(eps)`` of the dtype, a little more for huge ``n``."""
    e = eps(dtype)
    return max(float(np.sqrt(e)), 10.0 * n * e)


def uniform_or_checked(fn: str, name: str, w: ArrayLike | None, n: int, dtype) -> Array:
    """Weights of an ``n``-point measure: uniform ``1/n`` if ``w`` is None, else checked ``w``.

    Args:
      fn: name of the calling function (for error messages).
      name: name of the weight argument (for error messages).
      w: ``None`` or weights of shape ``(n,)``.
      n: number of support points.
      dtype: floating dtype the weights are cast to.

    Returns:
      Weights of shape ``(n,)`` and dtype ``dtype``.

    Raises:
      TypeError: if ``w`` is not a real floating array.
      ValueError: if ``w`` has the wrong shape, or (when concrete) has a negative entry or does
        not sum to one within ``max(sqrt(eps), 10 n eps)`` of the dtype.
    """
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype=dtype)
    # Checked before any conversion by JAX (a NaN weight must meet the named ValueError below,
    # not jax_debug_nans in the conversion).
    w_arr = w if hasattr(w, "dtype") else np.asarray(w)
    if not jnp.issubdtype(w_arr.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `{name}` must have a real floating dtype (float32 or float64); "
            f"got {w_arr.dtype}"
        )
    if jnp.shape(w_arr) != (n,):
        raise ValueError(
            f"{fn}: argument `{name}` must have shape ({n},) to match its point cloud; "
            f"got shape {jnp.shape(w_arr)}"
        )
    if is_concrete(w):
        w_np = np.asarray(w, dtype=np.float64)
        if np.any(~np.isfinite(w_np)):
            raise ValueError(f"{fn}: argument `{name}` must be finite; got non-finite weights")
        if np.any(w_np < 0):
            raise ValueError(
                f"{fn}: argument `{name}` must be non-negative; got minimum {w_np.min()!r}"
            )
        total = float(w_np.sum())
        tol = _weight_tolerance(dtype, n)
        if abs(total - 1.0) > tol:
            raise ValueError(
                f"{fn}: argument `{name}` must sum to one (within {tol:.1e}); got sum {total!r}"
            )
    return jnp.asarray(w_arr).astype(dtype)


def check_measures(
    fn: str,
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
) -> tuple[Array, Array, Array, Array]:
    """Validate two discrete measures and return them as arrays of one floating dtype.

    Args:
      fn: name of the calling function (used in error messages).
      x: support of the first measure, shape ``(n, d)``.
      y: support of the second measure, shape ``(m, d)``.
      a: weights of the first measure, shape ``(n,)``; ``None`` means uniform ``1/n``.
      b: weights of the second measure, shape ``(m,)``; ``None`` means uniform ``1/m``.

    Returns:
      ``(x, y, a, b)`` as JAX arrays of the common floating dtype of the inputs.

    Raises:
      TypeError: non-floating points or weights.
      ValueError: wrong ranks, empty clouds or points of dimension 0,
        ``x.shape[1] != y.shape[1]``, weight shapes that do not match their clouds, and (only for
        concrete, non-traced weights) negative weights or weights not summing to one.
    """
    x = as_float_array(fn, "x", x)
    y = as_float_array(fn, "y", y)
    check_ndim(fn, "x", x, 2)
    check_ndim(fn, "y", y, 2)
    n, d = x.shape
    m, dy = y.shape
    if n < 1:
        raise ValueError(f"{fn}: argument `x` must have at least one point; got shape {x.shape}")
    if m < 1:
        raise ValueError(f"{fn}: argument `y` must have at least one point; got shape {y.shape}")
    if d != dy:
        raise ValueError(
            f"{fn}: arguments `x` and `y` must have the same dimension (shape[1]); "
            f"got x {x.shape} and y {y.shape}"
        )
    if d < 1:
        raise ValueError(
            f"{fn}: arguments `x` and `y` must have points of dimension d >= 1; "
            f"got x {x.shape} and y {y.shape}"
        )
    dtypes = [x.dtype, y.dtype]
    for w in (a, b):
        if w is not None and jnp.issubdtype(jnp.result_type(w), jnp.floating):
            dtypes.append(jnp.result_type(w))
    dtype = jnp.result_type(*dtypes)
    x = x.astype(dtype)
    y = y.astype(dtype)
    a = uniform_or_checked(fn, "a", a, n, dtype)
    b = uniform_or_checked(fn, "b", b, m, dtype)
    return x, y, a, b
