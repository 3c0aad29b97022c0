"""Square root, inverse square root, logarithm, exponential and powers of symmetric matrices.

Each is a :func:`~geomjax.linalg.spectral_fn` with a cancellation-free divided difference, so
first and second derivatives are accurate and finite at repeated eigenvalues (the identity
included). ``sqrtm``, ``invsqrtm``, ``logm`` and ``powm`` expect symmetric positive definite
input; ``expm`` any symmetric input.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, check_square, full_precision
from geomjax.linalg._spectral import spectral_fn


def _dd_sqrt(a, b):
    return 1.0 / (jnp.sqrt(a) + jnp.sqrt(b))


def _dd_invsqrt(a, b):
    sa, sb = jnp.sqrt(a), jnp.sqrt(b)
    return -1.0 / (sa * sb * (sa + sb))


def _dd_log(a, b):
    # log(a / b) / (a - b) = log1p((a - b) / b) / (a - b), evaluated from the smaller argument.
    lo = jnp.minimum(a, b)
    h = jnp.abs(a - b)
    return jnp.log1p(h / lo) / h


def _dd_exp(a, b):
    # (e^a - e^b) / (a - b) = e^lo * expm1(h) / h with h = |a - b|.
    lo = jnp.minimum(a, b)
    h = jnp.abs(a - b)
    return jnp.exp(lo) * jnp.expm1(h) / h


def _dd_pow(p):
    def dd(a, b):
        lo = jnp.minimum(a, b)
        h = jnp.abs(a - b)
        return lo**p * jnp.expm1(p * jnp.log1p(h / lo)) / h

    return dd


_sqrtm = spectral_fn(jnp.sqrt, lambda t: 0.5 / jnp.sqrt(t), dd=_dd_sqrt, name="sqrtm")
_invsqrtm = spectral_fn(
    lambda t: 1.0 / jnp.sqrt(t), lambda t: -0.5 / (t * jnp.sqrt(t)), dd=_dd_invsqrt, name="invsqrtm"
)
_logm = spectral_fn(jnp.log, lambda t: 1.0 / t, dd=_dd_log, name="logm")
_expm = spectral_fn(jnp.exp, jnp.exp, dd=_dd_exp, name="expm")


@functools.lru_cache(maxsize=64)
def _powm_static(p: float):
    return spectral_fn(lambda t: t**p, lambda t: p * t ** (p - 1), dd=_dd_pow(p), name="powm")


@full_precision
def sqrtm(x: ArrayLike) -> Array:
    """Principal square root of symmetric positive definite matrices.

    .. math:: X^{1/2} = U \\operatorname{diag}(\\sqrt{\\lambda}) U^T

    Args:
      x: SPD matrices, shape ``(..., n, n)``.

    Returns:
      ``X^{1/2}``, shape ``(..., n, n)``. Input domain (not checked): a matrix with a negative
      eigenvalue or a NaN/inf entry gives a matrix with no finite entry (all NaN); so may a
      singular positive semi-definite one, whose zero eigenvalues are computed with either sign.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import sqrtm
      >>> sqrtm(jnp.diag(jnp.array([4.0, 9.0]))).round(5)  # exact up to a rounding error
      Array([[2., 0.],
             [0., 3.]], dtype=float32)
    """
    return _sqrtm(x)


@full_precision
def invsqrtm(x: ArrayLike) -> Array:
    """Inverse principal square root ``X^{-1/2}`` of SPD matrices, shape ``(..., n, n)``.

    Input domain (not checked): a singular matrix, one with a negative eigenvalue, or one with a
    NaN/inf entry gives a matrix with no finite entry (NaN or inf).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import invsqrtm
      >>> invsqrtm(jnp.diag(jnp.array([4.0, 0.25])))
      Array([[0.5, 0. ],
             [0. , 2. ]], dtype=float32)
    """
    return _invsqrtm(x)


@full_precision
def logm(x: ArrayLike) -> Array:
    """Principal logarithm of SPD matrices, ``U diag(log lam) U^T``, shape ``(..., n, n)``.

    Input domain (not checked): a singular matrix, one with a negative eigenvalue, or one with a
    NaN/inf entry gives a matrix with no finite entry (NaN or -inf).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import logm
      >>> logm(jnp.eye(2)).round(6) + 0.0  # + 0.0: no -0. from rounding error on GPUs
      Array([[0., 0.],
             [0., 0.]], dtype=float32)
    """
    return _logm(x)


@full_precision
def expm(x: ArrayLike) -> Array:
    """Exponential of symmetric matrices, ``U diag(exp lam) U^T``, shape ``(..., n, n)``.

    Only the symmetric part of ``x`` is used; for general matrices use ``jax.scipy.linalg.expm``.
    Input domain: an eigenvalue above ``log(finfo.max)`` (about 88 in float32, 709 in float64)
    overflows, and like a NaN/inf entry it gives a matrix with no finite entry.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import expm
      >>> expm(jnp.zeros((2, 2)))
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
    """
    return _expm(x)


@full_precision
def powm(x: ArrayLike, p) -> Array:
    """Matrix power ``X^p = U diag(lam^p) U^T`` of SPD matrices.

    Args:
      x: SPD matrices, shape ``(..., n, n)``.
      p: exponent. A Python number gives a spectral function with a stable divided difference
        (exact first and second derivatives in ``x``). An array (e.g. a learnable deformation
        ``theta``) is differentiable too: then ``X^p = expm(p logm(X))``, and ``p`` may have the
        batch shape ``(...)`` of ``x``.

    Returns:
      ``X^p``, shape ``(..., n, n)``. Input domain (not checked): a matrix with a NaN/inf entry,
      or (for a non-integer ``p``, or any array ``p``) with a negative eigenvalue, gives a matrix
      with no finite entry; so does a singular matrix for ``p < 0``.

    Raises:
      TypeError: if ``x`` is not a real float array, or ``p`` is a bool, a string, a complex
        number or a non-real array.
      ValueError: if ``x`` is not ``(..., n, n)``, a Python ``p`` is NaN or infinite, or an array
        ``p`` does not broadcast to the batch shape of ``x``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.linalg import powm
      >>> powm(jnp.diag(jnp.array([4.0, 9.0])), 0.5).round(5)
      Array([[2., 0.],
             [0., 3.]], dtype=float32)
      >>> x = jnp.diag(jnp.array([1.0, 2.0]))
      >>> float(jax.grad(lambda p: jnp.trace(powm(x, p)))(1.0))  # d/dp (1 + 2^p) = 2 log 2
      1.386...
    """
    if isinstance(p, numbers.Real) and not isinstance(p, bool):
        if not math.isfinite(p):
            raise ValueError(f"powm: argument `p` must be finite; got {p!r}")
        return _powm_static(float(p))(x)
    x = as_float_array("powm", "x", x)
    check_square("powm", "x", x)
    p_dtype = getattr(p, "dtype", None)
    if (
        p_dtype is None
        or jnp.issubdtype(p_dtype, jnp.bool_)
        or not (jnp.issubdtype(p_dtype, jnp.floating) or jnp.issubdtype(p_dtype, jnp.integer))
    ):
        raise TypeError(
            f"powm: argument `p` must be a real number or a real array; got {p!r}"
            if p_dtype is None
            else f"powm: argument `p` must be a real number or a real array; got dtype {p_dtype}"
        )
    p = jnp.asarray(p, dtype=x.dtype)
    batch = x.shape[:-2]
    try:
        fits = p.ndim <= len(batch) and jnp.broadcast_shapes(p.shape, batch) == batch
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"powm: argument `p` must be a scalar or broadcast to the batch shape {batch} of "
            f"`x`; got shape {p.shape}"
        )
    return _expm(p[..., None, None] * _logm(x))
