"""SPDNet layers: BiMap (Stiefel congruence), ReEig (eigenvalue rectification), LogEig."""

from __future__ import annotations

import functools
import math
import numbers

import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, check_square, full_precision
from geomjax.linalg import logm, spectral_fn


@full_precision
def bimap(x: ArrayLike, w: ArrayLike) -> Array:
    r"""Bilinear map :math:`W^\top X W` of an SPD matrix by a Stiefel matrix.

    With :math:`W \in \mathrm{St}(n_{in}, n_{out})` (orthonormal columns, ``n_out <= n_in``) the
    output is SPD of size ``n_out``. Keep ``W`` on the Stiefel manifold with
    :class:`~geomjax.manifolds.Stiefel` and a Riemannian optimizer.

    Args:
      x: SPD matrix, shape ``(n_in, n_in)`` (vmap for batches).
      w: weight, shape ``(n_in, n_out)``.

    Returns:
      ``W^T X W``, shape ``(n_out, n_out)`` (symmetrized). Input domain (not checked): finite
      ``x`` and ``w`` give a finite result (SPD when ``x`` is SPD and ``w`` has full column
      rank, whether or not ``w`` is orthonormal); a NaN/inf entry gives non-finite entries.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet import bimap
      >>> bimap(jnp.diag(jnp.array([1.0, 2.0, 3.0])), jnp.eye(3)[:, :2])
      Array([[1., 0.],
             [0., 2.]], dtype=float32)

    References:
      Z. Huang, L. Van Gool, "A Riemannian network for SPD matrix learning", AAAI 2017,
      arXiv:1608.04233.
    """
    fn = "bimap"
    x = as_float_array(fn, "x", x)
    w = as_float_array(fn, "w", w)
    if x.ndim != 2:
        raise ValueError(
            f"{fn}: argument `x` must be one matrix of shape (n_in, n_in) (vmap for batches); got shape {x.shape}"
        )
    check_square(fn, "x", x)
    if w.ndim != 2 or w.shape[0] != x.shape[0] or not 1 <= w.shape[1] <= w.shape[0]:
        raise ValueError(
            f"{fn}: argument `w` must have shape ({x.shape[0]}, n_out) with 1 <= n_out <= "
            f"{x.shape[0]}; got shape {w.shape}"
        )
    y = w.T @ x @ w
    return 0.5 * (y + y.T)


def _dd_rect(floor: float):
    def dd(a, b):
        return (jnp.maximum(a, floor) - jnp.maximum(b, floor)) / (a - b)

    return dd


@functools.lru_cache(maxsize=16)
def _reeig_fn(floor: float):
    return spectral_fn(
        lambda t: jnp.maximum(t, floor),
        lambda t: (t > floor).astype(t.dtype),
        dd=_dd_rect(floor),
        name="reeig",
    )


@full_precision
def reeig(x: ArrayLike, eps: float = 1e-4) -> Array:
    r"""Eigenvalue rectification :math:`U \max(\Lambda, \epsilon) U^\top` (the SPDNet ReLU).

    Derivatives are the Daleckii-Krein ones of the spectral function :math:`\max(t, \epsilon)`
    (finite at repeated eigenvalues; the kink at :math:`t = \epsilon` takes the one-sided
    derivative 0).

    Args:
      x: symmetric matrices, shape ``(..., n, n)``.
      eps: the eigenvalue floor, a positive finite Python float (static).

    Returns:
      SPD matrices, shape ``(..., n, n)``. Input domain: any symmetric ``x`` (indefinite or
      singular included) gives a finite SPD result; a NaN/inf entry gives an all-NaN matrix.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet import reeig
      >>> y = reeig(jnp.diag(jnp.array([1e-6, 2.0])), eps=1e-3)
      >>> [round(float(v), 6) for v in jnp.diagonal(y)]
      [0.001, 2.0]

    References:
      Z. Huang, L. Van Gool, "A Riemannian network for SPD matrix learning", AAAI 2017,
      arXiv:1608.04233.
    """
    if (
        isinstance(eps, bool)
        or not isinstance(eps, numbers.Real)
        or not (eps > 0 and math.isfinite(eps))
    ):
        raise ValueError(f"reeig: argument `eps` must be a positive finite float; got {eps!r}")
    return _reeig_fn(float(eps))(x)


@full_precision
def logeig(x: ArrayLike, *, vectorize: bool = False) -> Array:
    r"""Matrix logarithm :math:`U \log(\Lambda) U^\top`, mapping SPD features to a flat space.

    With ``vectorize=True`` the upper triangle is returned as a vector of length
    ``n (n + 1) / 2`` with off-diagonal entries scaled by :math:`\sqrt 2`, so its Euclidean
    norm is the Frobenius norm of the matrix (the input of a final linear classifier).

    Args:
      x: SPD matrices, shape ``(..., n, n)``.
      vectorize: return the scaled upper triangle instead of the matrix (static).

    Returns:
      ``(..., n, n)`` or ``(..., n (n + 1) / 2)``. Input domain (not checked): as for
      :func:`~geomjax.linalg.logm`, a matrix that is singular, has a negative eigenvalue or a
      NaN/inf entry gives no finite entry.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet import logeig
      >>> logeig(jnp.diag(jnp.array([1.0, jnp.e])), vectorize=True)
      Array([0., 0., 1.], dtype=float32)
    """
    x = as_float_array("logeig", "x", x)
    check_square("logeig", "x", x)
    if not isinstance(vectorize, bool):
        raise TypeError(f"logeig: argument `vectorize` must be a bool; got {vectorize!r}")
    y = logm(x)
    if not vectorize:
        return y
    n = y.shape[-1]
    rows, cols = jnp.triu_indices(n)
    scale = jnp.where(rows == cols, 1.0, jnp.sqrt(2.0)).astype(y.dtype)
    return y[..., rows, cols] * scale
