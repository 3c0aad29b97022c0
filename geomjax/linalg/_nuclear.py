"""Nuclear norm of square matrices with accurate values and stable first and second derivatives.

The Bures-Wasserstein distance needs the fidelity ``tr (A^{1/2} B A^{1/2})^{1/2}``, which is the
nuclear norm of ``B^{1/2} A^{1/2}``. Computed from singular values it avoids squaring the
condition number (the route through ``sqrtm(A^{1/2} B A^{1/2})`` loses half the digits of the
small eigenvalues); its derivative is the orthogonal polar factor, whose own derivative divides by
``s_i + s_j`` (never by a gap ``s_i - s_j``), so it is finite at repeated singular values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, check_square, full_precision


def _nuclear_surrogate(c: Array) -> Array:
    """Second-order Taylor expansion of ``||C||_*`` around ``stop_gradient(C)``.

    With ``C0 = U diag(s) V^T`` and ``E = C - C0`` (numerically zero, but it carries the
    tangents), ``||C||_* = sum(s) + <U V^T, E> + 1/4 sum_ij (X_ij - X_ji)^2 / (s_i + s_j)``
    with ``X = U^T E V``: the value and the first two derivatives are exact.
    """
    c0 = jax.lax.stop_gradient(c)
    # LAPACK's gesdd can loop forever on a matrix mixing inf and finite entries (Reference-LAPACK
    # issue 1409; numpy checks for this since 2.4), so non-finite matrices are replaced by zeros
    # for the SVD. `poison` is 0 for a finite matrix and NaN otherwise (inf - inf, NaN - NaN),
    # made from the input so that no NaN constant exists (jax_debug_nans checks constants too).
    finite = jnp.all(jnp.isfinite(c0), axis=(-2, -1))
    poison = jnp.sum(c0 - c0, axis=(-2, -1))
    c0 = jnp.where(finite[..., None, None], c0, jnp.zeros_like(c0))
    u, s, vt = jnp.linalg.svd(c0, full_matrices=False)
    e = c - c0
    x = jnp.swapaxes(u, -1, -2) @ e @ jnp.swapaxes(vt, -1, -2)
    denom = s[..., :, None] + s[..., None, :]
    tiny = jnp.finfo(c.dtype).tiny
    safe = jnp.where(denom > tiny, denom, 1.0)
    skew = x - jnp.swapaxes(x, -1, -2)
    second = jnp.where(denom > tiny, skew**2 / safe, 0.0)
    first = jnp.trace(x, axis1=-2, axis2=-1)
    value = jnp.sum(s, axis=-1) + first + 0.25 * jnp.sum(second, axis=(-2, -1))
    return value + poison


@full_precision
def nuclear_norm(c: ArrayLike) -> Array:
    r"""Nuclear (trace) norm :math:`\|C\|_* = \sum_i \sigma_i(C)` of square matrices.

    .. math::

        \|C\|_* = \operatorname{tr}\,(C^\top C)^{1/2}, \qquad
        D\|C\|_*[E] = \langle U V^\top, E\rangle, \qquad
        D^2\|C\|_*[E, E] = \tfrac12 \sum_{ij} \frac{(X_{ij} - X_{ji})^2}{\sigma_i + \sigma_j},

    with :math:`C = U \operatorname{diag}(\sigma) V^\top` and :math:`X = U^\top E V`. The value
    comes from the singular values (relative accuracy of the SVD, no squaring of the condition
    number). First and second derivatives, in any composition of forward and reverse mode, are
    exact and finite wherever no two singular values are both zero (repeated singular values
    included); third derivatives are not supported.

    Args:
      c: square matrices, shape ``(..., n, n)``.

    Returns:
      The nuclear norms, shape ``(...)``. Input domain: a matrix with a NaN or inf entry gets
      norm NaN (it is not passed to the SVD, which can hang on inf entries).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.linalg import nuclear_norm
      >>> float(nuclear_norm(jnp.array([[0.0, 2.0], [-3.0, 0.0]])))
      5.0
    """
    c = as_float_array("nuclear_norm", "c", c)
    check_square("nuclear_norm", "c", c)
    return _nuclear_surrogate(c)
