"""Static (trace-time) validation helpers that raise clear errors naming the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import jax
import jax.numpy as jnp

from geomjax._core._typing import Array, ArrayLike


def as_float_array(fn: str, name: str, x: ArrayLike) -> Array:
    """Convert ``x`` to a JAX array and require a real floating dtype.

    Raises:
      TypeError: if ``x`` is complex, integer or boolean.
    """
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `{name}` must have a real floating dtype (float32 or float64); "
            f"got {arr.dtype}"
        )
    return arr


def as_float_array_of_shape(fn: str, name: str, x: ArrayLike, shape: tuple[int, ...]) -> Array:
    """``as_float_array`` that also requires exactly ``shape``; errors name the argument."""
    arr = as_float_array(fn, name, x)
    if arr.shape != tuple(shape):
        raise ValueError(
            f"{fn}: argument `{name}` must have shape {tuple(shape)}; got shape {arr.shape}"
        )
    return arr


def check_ndim(fn: str, name: str, x: ArrayLike, ndim: int | Iterable[int]) -> None:
    """Require ``x.ndim`` to be ``ndim`` (or one of them)."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if jnp.ndim(x) not in allowed:
        raise ValueError(
            f"{fn}: argument `{name}` must have ndim in {allowed}; got shape {jnp.shape(x)}"
        )


def check_min_ndim(fn: str, name: str, x: ArrayLike, min_ndim: int) -> None:
    """Require ``x.ndim >= min_ndim``."""
    if jnp.ndim(x) < min_ndim:
        raise ValueError(
            f"{fn}: argument `{name}` must have at least {min_ndim} dimensions; "
            f"got shape {jnp.shape(x)}"
        )


def check_square(fn: str, name: str, x: ArrayLike) -> None:
    """Require a (batch of) square matrices, shape ``(..., n, n)`` with ``n >= 1``."""
    shape = jnp.shape(x)
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] < 1:
        raise ValueError(
            f"{fn}: argument `{name}` must have shape (..., n, n) with n >= 1; got shape {shape}"
        )


def check_same_shape(fn: str, names: tuple[str, ...], *xs: ArrayLike) -> None:
    """Require all arrays to have the same shape."""
    shapes = [jnp.shape(x) for x in xs]
    if any(s != shapes[0] for s in shapes[1:]):
        desc = ", ".join(f"`{n}` {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{fn}: arguments must have the same shape; got {desc}")


def check_option(fn: str, name: str, value, allowed: Iterable) -> None:
    """Require ``value`` to be one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{fn}: argument `{name}` must be one of {allowed}; got {value!r}")


def check_positive(fn: str, name: str, value, *, allow_zero: bool = False) -> None:
    """Require a static Python number to be positive (or non-negative)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{fn}: argument `{name}` must be {kind}; got {value!r}")


def check_key(fn: str, name: str, key) -> None:
    """Require one PRNG key: a typed key array of shape ``()`` (``jax.random.key``), or a legacy
    raw ``uint32`` key of shape ``(2,)`` / ``(4,)`` (``jax.random.PRNGKey``); works on tracers.

    Raises:
      TypeError: naming ``name`` for anything else (ints, floats, a batch of keys).
    """
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype == jnp.uint32 and shape is not None and len(shape) == 1 and shape[0] in (2, 4):
        return
    got = f"{type(key).__name__}" if dtype is None else f"dtype {dtype} and shape {shape}"
    raise TypeError(
        f"{fn}: argument `{name}` must be a single PRNG key (jax.random.key(seed)); got {got} "
        "(use jax.vmap for several keys)"
    )


def check_scalar(
    fn: str, name: str, value, *, positive: bool = True, allow_inf: bool = False
) -> None:
    """Require a real scalar: a Python or NumPy real number, or a 0-d real array (tracers too).

    A concrete value must not be NaN, must be ``> 0`` (``positive``) or ``>= 0`` (otherwise),
    and finite unless ``allow_inf``. A traced value is only checked for its shape and dtype.

    Raises:
      TypeError: naming ``name`` for a bool, a string, a complex number or a non-real array.
      ValueError: naming ``name`` for a non-scalar array or a concrete value out of range.
    """
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"{fn}: argument `{name}` must be a real number; got {value!r}")
    if not isinstance(value, numbers.Real):
        dtype = value.dtype
        if jnp.issubdtype(dtype, jnp.bool_) or not (
            jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
        ):
            raise TypeError(f"{fn}: argument `{name}` must be a real number; got dtype {dtype}")
        if jnp.shape(value) != ():
            raise ValueError(
                f"{fn}: argument `{name}` must be a scalar; got shape {jnp.shape(value)}"
            )
        if isinstance(value, jax.core.Tracer):
            return
    v = float(value)
    ok = (v > 0 if positive else v >= 0) and (allow_inf or math.isfinite(v))
    if not ok:
        kind = "positive" if positive else "non-negative"
        kind += "" if allow_inf else " and finite"
        raise ValueError(f"{fn}: argument `{name}` must be {kind}; got {value!r}")
