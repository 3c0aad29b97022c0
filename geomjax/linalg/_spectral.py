"""Spectral functions of symmetric matrices with derivatives that stay finite at repeated eigenvalues.

For a symmetric ``X = U diag(lam) U^T`` and a scalar function ``f``, ``F(X) = U diag(f(lam)) U^T``.
Its derivatives are given by the Daleckii-Krein formulas with divided differences of ``f``:

.. math::

    DF(X)[E] = U \\,(F^{[1]} \\circ \\tilde E)\\, U^T, \\qquad
    F^{[1]}_{ij} = f[\\lambda_i, \\lambda_j],

    D^2F(X)[E, G] = U \\Big(\\sum_k f[\\lambda_i, \\lambda_k, \\lambda_j]
        (\\tilde E_{ik} \\tilde G_{kj} + \\tilde G_{ik} \\tilde E_{kj})\\Big)_{ij} U^T,

with ``E~ = U^T E U``, ``f[a, a] = f'(a)`` and ``f[a, a, a] = f''(a) / 2``. Unlike autodiff through
``eigh`` (whose eigenvector derivative divides by eigenvalue gaps) these are finite and correct
when eigenvalues repeat, the identity included.

Implementation: a ``jax.custom_jvp`` whose rule evaluates the eigendecomposition of the
``stop_gradient`` of ``X`` and expresses its outputs as the second-order expansion around that
frozen point (the expansion terms vanish numerically but carry the outer tangents). So first and
second derivatives, in any composition of forward and reverse mode, are exact; derivatives of
order three and higher are not supported (they come out as if ``D^3F = 0``).

References:
  Ju. L. Daleckii and S. G. Krein, "Integration and differentiation of functions of Hermitian
  operators and applications to the theory of perturbations", AMS Translations (2) 47, 1965.
  R. Bhatia, "Matrix Analysis", Springer GTM 169, 1997, chapter V.3.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    as_float_array,
    check_square,
    eigh_or_nan,
    eps,
    full_precision,
)

ScalarFn = Callable[[Array], Array]
DividedDifference = Callable[[Array, Array], Array]


@full_precision
def sym(x: ArrayLike) -> Array:
    """Symmetric part ``(X + X^T) / 2`` over the last two axes.

    Args:
      x: array of shape ``(..., n, n)``, real floating dtype.

    Returns:
      Array of shape ``(..., n, n)``.

    Raises:
      TypeError: if ``x`` has an integer, boolean or complex dtype.
      ValueError: if ``x`` is not a (batch of) square matrices.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import sym
      >>> sym(jnp.array([[1.0, 2.0], [0.0, 1.0]]))
      Array([[1., 1.],
             [1., 1.]], dtype=float32)
    """
    x = as_float_array("sym", "x", x)
    check_square("sym", "x", x)
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))


def _elementwise_derivative(f: ScalarFn) -> ScalarFn:
    """Derivative of an elementwise function, by a JVP with a tangent of ones."""

    def df(x):
        return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

    return df


def _to_eig(u: Array, m: Array) -> Array:
    return jnp.swapaxes(u, -1, -2) @ m @ u


def _from_eig(u: Array, m: Array) -> Array:
    return u @ m @ jnp.swapaxes(u, -1, -2)


def _first_divided_differences(
    lam: Array, f_lam: Array, df_lam: Array, dd: DividedDifference | None
) -> Array:
    """Matrix ``f[lam_i, lam_j]`` of shape ``(..., n, n)``.

    With a stable ``dd`` it is used whenever ``lam_i != lam_j`` up to rounding; otherwise the
    difference quotient is used when the gap exceeds ``eps**(1/3)`` of the scale, and the mean
    of the derivatives below (both errors are then about ``eps**(2/3)``).
    """
    a = lam[..., :, None]
    b = lam[..., None, :]
    gap = a - b
    if dd is not None:
        close = jnp.abs(gap) <= eps(lam.dtype) * _pair_scale(lam, a, b)
    else:
        close = jnp.abs(gap) <= eps(lam.dtype) ** (1.0 / 3.0) * _pair_scale(lam, a, b)
    near = 0.5 * (df_lam[..., :, None] + df_lam[..., None, :])
    if dd is not None:
        b_safe = jnp.where(close, a + jnp.ones_like(a), b)
        far = dd(a, b_safe)
    else:
        far = (f_lam[..., :, None] - f_lam[..., None, :]) / jnp.where(close, 1.0, gap)
    return jnp.where(close, near, far)


def _pair_scale(lam: Array, a: Array, b: Array) -> Array:
    """Scale for comparing eigenvalue gaps: ``max(|a|, |b|)``, floored at ``eps**(1/3) max|lam|``.

    The floor keeps gaps that are below the eigenvalue resolution of the whole matrix (about
    ``eps * max|lam|``) from being divided by, e.g. two eigenvalues that are both ~1e-17.
    """
    spread = jnp.max(jnp.abs(lam), axis=-1)
    spread = spread.reshape(spread.shape + (1,) * (jnp.ndim(a) - jnp.ndim(lam) + 1))
    floor = eps(lam.dtype) ** (1.0 / 3.0) * spread
    return jnp.maximum(
        jnp.maximum(jnp.maximum(jnp.abs(a), jnp.abs(b)), floor), jnp.finfo(lam.dtype).tiny
    )


def _repeated_divided_differences(lam: Array, f1: Array, df_lam: Array, d2f_lam: Array) -> Array:
    """Matrix ``G[..., i, k] = f[lam_i, lam_i, lam_k] = (f[lam_i, lam_k] - f'(lam_i)) / (lam_k - lam_i)``.

    Below a gap of ``eps**(1/3)`` of the scale, ``(2 f''(lam_i) + f''(lam_k)) / 6`` (error about
    ``eps**(2/3)``, like the difference quotient's cancellation error above it).
    """
    li = lam[..., :, None]
    lk = lam[..., None, :]
    gap = lk - li
    close = jnp.abs(gap) <= eps(lam.dtype) ** (1.0 / 3.0) * _pair_scale(lam, li, lk)
    far = (f1 - df_lam[..., :, None]) / jnp.where(close, jnp.ones_like(gap), gap)
    near = (2.0 * d2f_lam[..., :, None] + d2f_lam[..., None, :]) / 6.0
    return jnp.where(close, near, far)


def _second_order_half(lam: Array, f1: Array, g: Array, a: Array, b: Array) -> Array:
    """``S(a, b)_ij = sum_k f[lam_i, lam_k, lam_j] a_ik b_kj`` with matrix products only.

    For ``lam_i`` and ``lam_j`` apart, ``f[l_i, l_k, l_j] = (f[l_i, l_k] - f[l_k, l_j]) / (l_i - l_j)``
    for every ``k``, so ``S = ((F1 o a) b - a (F1 o b)) / (l_i - l_j)``. For ``lam_i ~ lam_j`` the
    symmetric average ``(G_ik + G_jk) / 2`` of ``f[l_i, l_i, l_k]`` and ``f[l_j, l_j, l_k]`` is
    accurate to second order in the gap: ``S = ((G o a) b + a (G^T o b)) / 2``.
    """
    li = lam[..., :, None]
    lj = lam[..., None, :]
    gap = li - lj
    close = jnp.abs(gap) <= eps(lam.dtype) ** (1.0 / 3.0) * _pair_scale(lam, li, lj)
    far = ((f1 * a) @ b - a @ (f1 * b)) / jnp.where(close, jnp.ones_like(gap), gap)
    near = 0.5 * ((g * a) @ b + a @ (jnp.swapaxes(g, -1, -2) * b))
    return jnp.where(close, near, far)


def spectral_fn(
    f: ScalarFn,
    df: ScalarFn | None = None,
    *,
    dd: DividedDifference | None = None,
    name: str = "spectral_fn",
) -> Callable[[ArrayLike], Array]:
    """Build the matrix function ``X -> U f(Lambda) U^T`` on symmetric matrices from a scalar ``f``.

    .. math::

        F(X) = U \\operatorname{diag}(f(\\lambda_1), \\dots, f(\\lambda_n)) U^T,
        \\qquad X = U \\operatorname{diag}(\\lambda) U^T .

    Derivatives use Daleckii-Krein divided differences (see the module docstring): first and
    second derivatives are exact in every forward/reverse composition and finite at repeated
    eigenvalues; third and higher derivatives are not supported.

    Args:
      f: elementwise scalar function, written with ``jax.numpy`` (``f(lam)`` on an array).
      df: its elementwise derivative; derived from ``f`` by a JVP if omitted.
      dd: optional stable first divided difference ``dd(a, b) = (f(a) - f(b)) / (a - b)`` for
        ``a != b`` (broadcasting arrays). Without it the difference quotient is used with a
        Taylor switch at ``eps**(1/3)``, accurate to about ``eps**(2/3)``.
      name: the function's name in error messages.

    Returns:
      A function of ``x`` with shape ``(..., n, n)`` (only the symmetric part of ``x`` is used)
      returning an array of the same shape and dtype. Input domain (not checked): wherever ``f``
      is not finite at an eigenvalue (e.g. ``log`` of a negative one or of zero), or ``x`` has a
      NaN or inf entry, the result for that matrix has no finite entry.

    Raises:
      TypeError: if ``f``, ``df`` or ``dd`` is not callable (``df``/``dd`` may be None) or
        ``name`` is not a string; when called, for a non-float ``x``.
      ValueError: when called, for an ``x`` that is not ``(..., n, n)``, or an ``f`` that does
        not map the eigenvalue array to an array of the same shape (not elementwise).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.linalg import spectral_fn
      >>> cube = spectral_fn(lambda t: t**3)
      >>> x = jnp.diag(jnp.array([1.0, 2.0]))
      >>> cube(x).round(5)  # exact up to a rounding error
      Array([[1., 0.],
             [0., 8.]], dtype=float32)
      >>> jax.grad(lambda x: jnp.trace(cube(x)))(jnp.eye(2)).round(5)  # d tr(X^3) = 3 X^2
      Array([[3., 0.],
             [0., 3.]], dtype=float32)
    """
    if not isinstance(name, str):
        raise TypeError(f"spectral_fn: argument `name` must be a str; got {name!r}")
    for arg, value, optional in (("f", f, False), ("df", df, True), ("dd", dd, True)):
        if not (callable(value) or (optional and value is None)):
            allowed = "a callable or None" if optional else "a callable"
            raise TypeError(f"spectral_fn: argument `{arg}` must be {allowed}; got {value!r}")
    d1 = df if df is not None else _elementwise_derivative(f)
    d2 = _elementwise_derivative(d1)

    @jax.custom_jvp
    def matrix_fn(x):
        lam, u = eigh_or_nan(x)
        return _from_eig(u, f(lam)[..., None] * jnp.eye(x.shape[-1], dtype=x.dtype))

    @matrix_fn.defjvp
    def matrix_fn_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        x0 = jax.lax.stop_gradient(x)
        lam, u = eigh_or_nan(x0)
        f_lam, df_lam = f(lam), d1(lam)
        f1 = _first_divided_differences(lam, f_lam, df_lam, dd)
        # `delta` is zero in value; it carries the outer derivative for second-order AD.
        delta = _to_eig(u, _sym(x - x0))
        e = _to_eig(u, _sym(dx))
        eye = jnp.eye(x.shape[-1], dtype=x.dtype)
        y = f_lam[..., None] * eye + f1 * delta
        # D^2F(X0)[E, Delta]: bilinear, zero in value; it carries the second derivative.
        g = _repeated_divided_differences(lam, f1, df_lam, d2(lam))
        dy = (
            f1 * e
            + _second_order_half(lam, f1, g, e, delta)
            + _second_order_half(lam, f1, g, delta, e)
        )
        return _from_eig(u, y), _from_eig(u, dy)

    @full_precision
    def apply(x: ArrayLike) -> Array:
        x = as_float_array(name, "x", x)
        check_square(name, "x", x)
        lam = jax.ShapeDtypeStruct(x.shape[:-1], x.dtype)
        f_lam = jax.eval_shape(f, lam)
        if getattr(f_lam, "shape", None) != lam.shape:
            raise ValueError(
                f"{name}: argument `f` of spectral_fn must map the eigenvalues elementwise "
                f"(shape {lam.shape} to the same shape); got {getattr(f_lam, 'shape', f_lam)!r}"
            )
        return matrix_fn(x)

    apply.__name__ = name
    return apply


def _sym(x: Array) -> Array:
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))
