"""NaN-safe numerics: norms, divisions and Taylor branches keyed on the dtype's epsilon.

The pattern is the "double where": the unsafe branch is evaluated on a harmless substitute
input wherever the safe branch is selected, so neither the value nor the gradient of the
discarded branch can be NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from geomjax._core._typing import Array, ArrayLike


def eps(dtype) -> float:
    """Machine epsilon of a floating dtype (float32 for integer dtypes)."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.dtype(jnp.float32)
    return float(jnp.finfo(dtype).eps)


def taylor_threshold(dtype, order: int) -> float:
    """Switch-over point ``eps ** (1 / order)`` for a Taylor branch truncated after ``order`` terms.

    A series truncated with a remainder of relative size ``|x| ** order`` is as accurate as the
    closed form (whose cancellation error is about ``eps``) below this threshold.
    """
    if order < 1:
        raise ValueError(f"taylor_threshold: `order` must be >= 1, got {order}")
    return eps(dtype) ** (1.0 / order)


def where_small(
    x: ArrayLike,
    small: Callable[[Array], Array],
    large: Callable[[Array], Array],
    threshold: float,
    safe_value: float = 1.0,
) -> Array:
    """``small(x)`` where ``|x| < threshold`` else ``large(x)``, with NaN-free gradients.

    ``large`` is evaluated on ``safe_value`` wherever the small branch is taken (and ``small`` on
    zero where the large branch is taken), so a removable singularity of ``large`` at zero
    never leaks a NaN into values or derivatives.
    """
    x = jnp.asarray(x)
    is_small = jnp.abs(x) < threshold
    x_large = jnp.where(is_small, jnp.asarray(safe_value, x.dtype), x)
    x_small = jnp.where(is_small, x, jnp.zeros_like(x))
    return jnp.where(is_small, small(x_small), large(x_large))


def series_in_square(
    s: ArrayLike, coeffs: tuple[float, ...], large: Callable[[Array], Array]
) -> Array:
    """``f(sqrt(s))`` for an even function ``f``: a power series in ``s`` near 0, closed form elsewhere.

    ``coeffs`` are the first four Taylor coefficients of ``f(sqrt(s))`` in ``s`` (truncation error
    ``O(s^4)``, so the switch at ``eps^(1/4)`` keeps it below ``eps``); ``large(r)`` is the closed
    form in ``r = sqrt(s)``. A series in ``s = |u|^2`` rather than ``|u|`` keeps every derivative
    exact and finite at ``u = 0`` (e.g. ``cos|u|``, ``sin|u| / |u|`` in exponential maps).
    """
    s = jnp.asarray(s)
    thr = taylor_threshold(s.dtype, 4)

    def small(t):
        return coeffs[0] + t * (coeffs[1] + t * (coeffs[2] + t * coeffs[3]))

    return where_small(s, small, lambda t: large(jnp.sqrt(t)), thr)


def safe_div(num: ArrayLike, den: ArrayLike, fill: float = 0.0) -> Array:
    """``num / den`` where ``den != 0``, else ``fill``; gradients are finite everywhere."""
    num = jnp.asarray(num)
    den = jnp.asarray(den)
    zero = den == 0
    safe_den = jnp.where(zero, jnp.ones_like(den), den)
    return jnp.where(zero, jnp.asarray(fill, jnp.result_type(num, den)), num / safe_den)


def safe_norm(x: ArrayLike, axis=-1, keepdims: bool = False) -> Array:
    """Euclidean norm whose gradient at zero is zero instead of NaN.

    Args:
      x: array.
      axis: axis or axes to reduce (``None`` for all).
      keepdims: keep reduced axes.

    Returns:
      ``sqrt(sum(x ** 2))`` along ``axis``; its derivative at ``x = 0`` is defined as 0 (a
      subgradient).
    """
    x = jnp.asarray(x)
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    is_zero = sq == 0
    safe_sq = jnp.where(is_zero, jnp.ones_like(sq), sq)
    return jnp.where(is_zero, jnp.zeros_like(sq), jnp.sqrt(safe_sq))


def sinc(x: ArrayLike) -> Array:
    """``sin(x) / x`` with its Taylor series near 0 (unnormalized sinc)."""
    x = jnp.asarray(x)
    thr = taylor_threshold(x.dtype, 4)
    return where_small(x, lambda t: 1 - t * t / 6 + t**4 / 120, lambda t: jnp.sin(t) / t, thr)


def sinhc(x: ArrayLike) -> Array:
    """``sinh(x) / x`` with its Taylor series near 0."""
    x = jnp.asarray(x)
    thr = taylor_threshold(x.dtype, 4)
    return where_small(x, lambda t: 1 + t * t / 6 + t**4 / 120, lambda t: jnp.sinh(t) / t, thr)


def stop_gradient_like(tree):
    """``jax.lax.stop_gradient`` over a pytree."""
    return jax.tree.map(jax.lax.stop_gradient, tree)


def eigh_or_nan(x: Array) -> tuple[Array, Array]:
    """``jnp.linalg.eigh(x)`` of symmetric ``(..., n, n)``, with every eigenvalue and eigenvector
    entry NaN for a matrix that has a non-finite entry.

    LAPACK (CPU) propagates NaN through ``eigh``; cuSOLVER (GPU) can return finite eigenvalues for
    a matrix with NaN entries (seen on an H100 with jax 0.11.2: the log-Euclidean mean of a batch
    holding a NaN matrix came out finite and "converged"). Such matrices are replaced by the
    identity for the decomposition and the results poisoned with ``sum(x - x)`` (0 for a finite
    matrix, NaN otherwise; no NaN constant for ``jax_debug_nans`` to flag). Values and
    derivatives at finite ``x`` are those of ``jnp.linalg.eigh``.
    """
    finite = jnp.all(jnp.isfinite(x), axis=(-2, -1), keepdims=True)
    poison = jnp.sum(x - x, axis=(-2, -1), keepdims=True)
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)
    lam, u = jnp.linalg.eigh(jnp.where(finite, x, eye))
    return lam + poison[..., 0], u + poison


def full_precision(fn):
    """Decorator: trace ``fn`` with ``jax.default_matmul_precision("highest")``.

    Every matrix product traced inside (``@``, ``einsum``, ``dot``; their autodiff transposes
    inherit it) runs at the full precision of the dtype, also when ``fn`` is called inside a
    user's ``jit`` and whatever ``jax_default_matmul_precision`` says: on NVIDIA GPUs float32
    products otherwise run as TF32 (10 mantissa bits, relative rounding about 1e-3), which
    breaks the float32 accuracy of geometric maps (exp/log round trips, orthogonality,
    symmetric positive definiteness). For functions on coordinates, frames and matrices, not on
    learned features.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    wrapped.full_precision = True  # marker read by the precision-policy test
    return wrapped


def precise_matmul(a: ArrayLike, b: ArrayLike) -> Array:
    """``a @ b`` at full precision of the dtype (``Precision.HIGHEST``).

    On GPUs float32 matmuls default to TF32 (10-bit mantissa, relative rounding ~5e-4). Products
    with coordinates, frames and rotations use this, so geometric maps keep float32 accuracy and
    equivariance whatever ``jax_default_matmul_precision`` says; products on learned features
    follow the default.
    """
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
