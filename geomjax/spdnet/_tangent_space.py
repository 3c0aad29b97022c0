"""Tangent-space features of SPD matrices: isometric coordinates of the log map at a reference."""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, as_float_array, full_precision
from geomjax.linalg import expm, invsqrtm, logm, powm, sqrtm
from geomjax.manifolds._base import Manifold
from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed

_SQRT2 = math.sqrt(2.0)


def _sym(a: Array) -> Array:
    return 0.5 * (a + a.T)


def _upper(s: Array) -> Array:
    """Row-major upper triangle of a symmetric matrix, off-diagonals times sqrt(2) (pyriemann ``upper``)."""
    n = s.shape[-1]
    i, j = np.triu_indices(n)
    coef = np.where(i == j, 1.0, _SQRT2)
    return s[i, j] * jnp.asarray(coef, s.dtype)


def _unupper(v: Array, n: int) -> Array:
    """Inverse of :func:`_upper`: the symmetric matrix with those weighted upper-triangle entries."""
    i, j = np.triu_indices(n)
    coef = np.where(i == j, 1.0, 1.0 / _SQRT2)
    vals = v * jnp.asarray(coef, v.dtype)
    upper = jnp.zeros((n, n), v.dtype).at[i, j].set(vals)
    return upper + jnp.triu(upper, 1).T


def _resolve_metric(fn: str, metric, n: int) -> Manifold:
    if metric is None:
        return SPDAffineInvariant(n)
    if not isinstance(metric, Manifold):
        raise TypeError(
            f"{fn}: argument `metric` must be a Manifold (an SPD metric) or None; got {metric!r}"
        )
    shape = tuple(metric.point_shape)
    if shape != (n, n):
        raise ValueError(
            f"{fn}: argument `metric` has points of shape {shape}, but `reference` has shape ({n}, {n})"
        )
    return metric


def _check_reference(fn: str, reference: ArrayLike) -> Array:
    c = as_float_array(fn, "reference", reference)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `reference` must have shape (n, n), n >= 1; got shape {c.shape}"
        )
    return c


def _theta(metric: PowerDeformed, dtype):
    theta = metric.theta
    if isinstance(theta, numbers.Real) and not isinstance(theta, bool):
        return float(theta)
    return jnp.asarray(theta, dtype)


def _gram_factor(metric: Manifold, c: Array) -> Array:
    """Lower Cholesky factor ``L`` of the Gram matrix ``G = L L^T`` of the metric at ``c`` in the
    Frobenius-orthonormal basis of symmetric matrices indexed like :func:`_upper`."""
    n = c.shape[0]
    d = n * (n + 1) // 2

    def quad(a):
        u = _unupper(a, n)
        return 0.5 * metric.inner(c, u, u)

    gram = jax.jacfwd(jax.grad(quad))(jnp.zeros((d,), c.dtype))
    return jnp.linalg.cholesky(0.5 * (gram + gram.T))


def _log_coords(metric: Manifold, x: Array, c: Array) -> Array:
    if isinstance(metric, SPDAffineInvariant):
        w = invsqrtm(c)
        return _upper(logm(_sym(w @ x @ w)))
    if isinstance(metric, SPDLogEuclidean):
        return _upper(logm(x) - logm(c))
    if isinstance(metric, SPDLogCholesky):
        lx, lc = jnp.linalg.cholesky(x), jnp.linalg.cholesky(c)
        strict = jnp.tril(lx - lc, -1)
        diag = jnp.log(jnp.diagonal(lx)) - jnp.log(jnp.diagonal(lc))
        return _upper(jnp.diag(diag) + (strict + strict.T) / _SQRT2)
    if isinstance(metric, PowerDeformed):
        theta = _theta(metric, c.dtype)
        return _log_coords(metric.metric, powm(x, theta), powm(c, theta)) / theta
    chol = _gram_factor(metric, c)
    return chol.T @ _upper(metric.log(c, x))


def _exp_coords(metric: Manifold, v: Array, c: Array) -> Array:
    n = c.shape[0]
    if isinstance(metric, SPDAffineInvariant):
        s = sqrtm(c)
        return _sym(s @ expm(_unupper(v, n)) @ s)
    if isinstance(metric, SPDLogEuclidean):
        return expm(logm(c) + _unupper(v, n))
    if isinstance(metric, SPDLogCholesky):
        w = _unupper(v, n)
        lc = jnp.linalg.cholesky(c)
        strict = jnp.tril(lc, -1) + _SQRT2 * jnp.tril(w, -1)
        chol = strict + jnp.diag(jnp.diagonal(lc) * jnp.exp(jnp.diagonal(w)))
        return _sym(chol @ chol.T)
    if isinstance(metric, PowerDeformed):
        theta = _theta(metric, c.dtype)
        inv = 1.0 / theta
        return powm(_exp_coords(metric.metric, theta * v, powm(c, theta)), inv)
    chol = _gram_factor(metric, c)
    a = jax.scipy.linalg.solve_triangular(chol.T, v, lower=False)
    return _sym(metric.exp(c, _unupper(a, n)))


@full_precision
def tangent_space(x: ArrayLike, reference: ArrayLike, *, metric: Manifold | None = None) -> Array:
    r"""Isometric tangent-space coordinates of an SPD matrix at a reference point.

    Maps ``x`` to a vector :math:`v \in \mathbb{R}^{n(n+1)/2}` with
    :math:`\|v\|_2 = \|\log_C X\|_C = d(C, X)`: linear isometric coordinates of the Riemannian
    logarithm at :math:`C` = ``reference``. For the affine-invariant metric (default):

    .. math::

        v = \operatorname{upper}\big(\log(C^{-1/2} X C^{-1/2})\big), \qquad
        \operatorname{upper}(S) = (S_{11}, \sqrt2 S_{12}, \dots, \sqrt2 S_{1n}, S_{22}, \dots, S_{nn}),

    the row-major upper triangle with off-diagonals times :math:`\sqrt2`, so that
    :math:`\|\operatorname{upper}(S)\|_2 = \|S\|_F` (pyriemann's ``tangent_space`` with
    ``metric="riemann"``, same ordering). Other metrics:

    * :class:`~geomjax.manifolds.SPDLogEuclidean`:
      :math:`v = \operatorname{upper}(\log X - \log C)` (pyriemann 0.12's ``"logeuclid"``
      instead maps back through :math:`D\exp`, which is not isometric);
    * :class:`~geomjax.manifolds.SPDLogCholesky` (:math:`X = L L^\top`, :math:`C = K K^\top`):
      ``upper`` of the symmetric matrix with diagonal :math:`\log L_{ii} - \log K_{ii}` and
      :math:`(i > j)` entries :math:`(L_{ij} - K_{ij}) / \sqrt2`, so the off-diagonal
      coordinates are the plain Cholesky differences;
    * :class:`~geomjax.manifolds.PowerDeformed` with power :math:`\theta`: the base metric's
      coordinates of :math:`(X^\theta, C^\theta)` divided by :math:`\theta`;
    * any other metric (Bures-Wasserstein, generalized Bures-Wasserstein, ...):
      :math:`v = L^\top \operatorname{upper}(\log_C X)` with :math:`G = L L^\top` the Gram matrix
      of the metric at :math:`C` in the Frobenius-orthonormal basis of symmetric matrices
      (cost :math:`O(n^6)`; smooth in :math:`C`).

    Differentiable in ``x`` and ``reference`` (NaN-free at ``x = reference``). Batch with
    ``jax.vmap(tangent_space, in_axes=(0, None))``.

    Args:
      x: SPD matrix, shape ``(n, n)``.
      reference: SPD reference point :math:`C`, shape ``(n, n)`` (typically the class-agnostic
        Frechet mean of the training set).
      metric: an SPD metric of :mod:`geomjax.manifolds` of size ``n``; default
        ``SPDAffineInvariant(n)``.

    Returns:
      Vector of shape ``(n * (n + 1) // 2,)``. Input domain (not checked): a NaN/inf entry or
      a matrix off the SPD manifold (not positive definite) in ``x`` or ``reference`` gives a
      non-finite vector.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet._tangent_space import tangent_space
      >>> tangent_space(jnp.diag(jnp.array([jnp.e, 1.0])), jnp.eye(2))
      Array([1., 0., 0.], dtype=float32)
      >>> c = jnp.diag(jnp.array([2.0, 3.0]))  # affine invariance: X -> C^1/2 X C^1/2
      >>> v = tangent_space(jnp.diag(jnp.array([2.0 * jnp.e, 3.0])), c)
      >>> jnp.round(v, 5) + 0.0
      Array([1., 0., 0.], dtype=float32)

    References:
      O. Tuzel, F. Porikli, P. Meer, "Pedestrian detection via classification on Riemannian
      manifolds", IEEE Trans. PAMI 30(10), 2008.
      A. Barachant, S. Bonnet, M. Congedo, C. Jutten, "Classification of covariance matrices
      using a Riemannian-based kernel for BCI applications", Neurocomputing 112, 2013.
      Z. Lin, "Riemannian geometry of symmetric positive definite matrices via Cholesky
      decomposition", SIAM J. Matrix Anal. Appl. 40(4), 2019, arXiv:1908.09326.
    """
    fn = "tangent_space"
    c = _check_reference(fn, reference)
    n = c.shape[0]
    x = as_float_array(fn, "x", x)
    if x.shape != (n, n):
        raise ValueError(
            f"{fn}: argument `x` must have the shape of `reference`, ({n}, {n}); got shape {x.shape}"
        )
    metric = _resolve_metric(fn, metric, n)
    dtype = jnp.result_type(x, c)
    return _log_coords(metric, x.astype(dtype), c.astype(dtype))


@full_precision
def untangent_space(v: ArrayLike, reference: ArrayLike, *, metric: Manifold | None = None) -> Array:
    r"""Inverse of :func:`tangent_space`: the SPD matrix with coordinates ``v`` at ``reference``.

    For the affine-invariant metric (default):

    .. math::

        X = C^{1/2} \exp\big(\operatorname{upper}^{-1}(v)\big) C^{1/2},

    i.e. :math:`\exp_C` of the tangent vector with those isometric coordinates (see
    :func:`tangent_space` for the other metrics).

    Args:
      v: vector, shape ``(n * (n + 1) // 2,)``.
      reference: SPD reference point :math:`C`, shape ``(n, n)``.
      metric: as in :func:`tangent_space`.

    Returns:
      SPD matrix, shape ``(n, n)``. Input domain (not checked): a NaN/inf entry of ``v``, or a
      ``reference`` off the SPD manifold, gives a matrix that is not finite or not positive
      definite (a ``-inf`` log-diagonal coordinate of log-Cholesky gives a singular one), and
      coordinates large enough to overflow the exponential map (``|v|`` beyond about 88 in
      float32 for the affine-invariant metric) give a non-finite one.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet._tangent_space import untangent_space
      >>> untangent_space(jnp.array([jnp.log(2.0), 0.0, 0.0]), jnp.eye(2)).round(5)
      Array([[2., 0.],
             [0., 1.]], dtype=float32)

    References:
      A. Barachant, S. Bonnet, M. Congedo, C. Jutten, "Classification of covariance matrices
      using a Riemannian-based kernel for BCI applications", Neurocomputing 112, 2013.
    """
    fn = "untangent_space"
    c = _check_reference(fn, reference)
    n = c.shape[0]
    v = as_float_array(fn, "v", v)
    d = n * (n + 1) // 2
    if v.shape != (d,):
        raise ValueError(
            f"{fn}: argument `v` must have shape ({d},) = (n (n + 1) / 2,) for a ({n}, {n}) "
            f"`reference`; got shape {v.shape}"
        )
    metric = _resolve_metric(fn, metric, n)
    dtype = jnp.result_type(v, c)
    return _exp_coords(metric, v.astype(dtype), c.astype(dtype))
