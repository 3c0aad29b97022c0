"""The generalized Lyapunov (Sylvester-type) solve ``A K M + M K A = X`` for SPD ``A`` and ``M``.

Bures-Wasserstein geometry needs it: the BW logarithm / exponential and the generalized BW
metric with a metric matrix ``M`` are expressed through ``K = L_{A,M}^{-1}[X]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    as_float_array,
    check_same_shape,
    check_square,
    eigh_or_nan,
    full_precision,
)


def _factor(a: Array, m: Array | None) -> tuple[Array, Array]:
    """``W, mu`` with ``W^T M W = I`` and ``W^T A W = diag(mu)`` (``M = I`` when ``m`` is None)."""
    if m is None:
        mu, w = eigh_or_nan(a)
        return w, mu
    chol = jnp.linalg.cholesky(m)
    # a_tilde = L^{-1} A L^{-T}
    left = jax.scipy.linalg.solve_triangular(chol, a, lower=True)
    a_tilde = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(left, -1, -2), lower=True)
    mu, v = eigh_or_nan(0.5 * (a_tilde + jnp.swapaxes(a_tilde, -1, -2)))
    w = jax.scipy.linalg.solve_triangular(jnp.swapaxes(chol, -1, -2), v, lower=False)
    return w, mu


def _sym(x: Array) -> Array:
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))


def _solve_factored(w: Array, mu: Array, x: Array) -> Array:
    wt = jnp.swapaxes(w, -1, -2)
    y = wt @ x @ w
    z = y / (mu[..., :, None] + mu[..., None, :])
    return w @ z @ wt


def _apply(a: Array, m: Array | None, k: Array) -> Array:
    if m is None:
        return a @ k + k @ a
    return a @ k @ m + m @ k @ a


@full_precision
def solve_lyapunov(a: ArrayLike, x: ArrayLike, m: ArrayLike | None = None) -> Array:
    """Solve ``A K M + M K A = X`` for ``K`` (``A K + K A = X`` when ``m`` is None).

    .. math::

        K = W \\Big( \\frac{(W^T X W)_{ij}}{\\mu_i + \\mu_j} \\Big) W^T,
        \\qquad W^T M W = I,\\; W^T A W = \\operatorname{diag}(\\mu),

    from a Cholesky factor of ``M`` and one symmetric eigendecomposition. ``A`` and ``M`` are SPD,
    so ``mu_i + mu_j > 0`` and the solution is unique; only their symmetric parts are read.
    ``X`` need not be symmetric.

    Derivatives in ``a``, ``m`` and ``x`` come from implicit differentiation
    (``dK = L^{-1}[dX - dA K M - A K dM - dM K A - M K dA]``), realised as the second-order
    Neumann expansion around the ``stop_gradient`` of ``(a, m)``: first and second derivatives are
    exact and finite even when ``A`` and ``M`` share repeated eigenvalues (``A = M = I``).

    Args:
      a: SPD matrices ``A``, shape ``(..., n, n)``.
      x: right-hand sides ``X``, shape ``(..., n, n)``.
      m: SPD matrices ``M``, shape ``(..., n, n)``, or None for the identity.

    Returns:
      ``K``, shape ``(..., n, n)``. Input domain (not checked): a NaN/inf entry in any argument,
      or an ``m`` that is not positive definite, gives a ``K`` with no finite entry; for an
      ``a`` that is not positive definite the equation may be singular (``mu_i + mu_j = 0``,
      e.g. ``a = 0``), and then ``K`` is not finite either.

    Raises:
      TypeError: if an argument is not a real float array.
      ValueError: if an argument is not ``(..., n, n)`` or the three shapes differ.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import solve_lyapunov
      >>> a = jnp.diag(jnp.array([1.0, 2.0]))
      >>> solve_lyapunov(a, jnp.ones((2, 2)))  # K_ij = 1 / (a_i + a_j)
      Array([[0.5      , 0.33333334],
             [0.33333334, 0.25     ]], dtype=float32)
    """
    a = as_float_array("solve_lyapunov", "a", a)
    x = as_float_array("solve_lyapunov", "x", x)
    check_square("solve_lyapunov", "a", a)
    check_square("solve_lyapunov", "x", x)
    names, arrays = ("a", "x"), (a, x)
    if m is not None:
        m = as_float_array("solve_lyapunov", "m", m)
        check_square("solve_lyapunov", "m", m)
        names, arrays = names + ("m",), arrays + (m,)
    check_same_shape("solve_lyapunov", names, *arrays)

    # Only the symmetric parts of `a` and `m` are used (eigh and Cholesky read one triangle).
    a = _sym(a)
    m = None if m is None else _sym(m)
    a0 = jax.lax.stop_gradient(a)
    m0 = None if m is None else jax.lax.stop_gradient(m)
    w, mu = _factor(a0, m0)

    def solve0(rhs):
        return _solve_factored(w, mu, rhs)

    def delta(k):
        # (L_{A,M} - L_{A0,M0})[k]: zero in value, carries the derivatives in (a, m).
        return _apply(a, m, k) - _apply(a0, m0, k)

    z0 = solve0(x)
    z1 = solve0(delta(z0))
    z2 = solve0(delta(z1))
    return z0 - z1 + z2
