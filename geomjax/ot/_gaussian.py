"""Closed-form Wasserstein-2 distance between Gaussians (Bures-Wasserstein), and Gaussian fits."""

from __future__ import annotations

import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, check_ndim, check_square
from geomjax.manifolds import bures_wasserstein_sqdist
from geomjax.manifolds._spd_bures import _sqrt_or_zero
from geomjax.ot._measures import uniform_or_checked

__all__ = ["bures_wasserstein", "gaussian_fit", "gaussian_wasserstein"]


def _check_cov_pair(fn: str, cov1: ArrayLike, cov2: ArrayLike) -> tuple[Array, Array]:
    cov1 = as_float_array(fn, "cov1", cov1)
    cov2 = as_float_array(fn, "cov2", cov2)
    for name, c in (("cov1", cov1), ("cov2", cov2)):
        check_ndim(fn, name, c, 2)
        check_square(fn, name, c)
    if cov1.shape != cov2.shape:
        raise ValueError(
            f"{fn}: arguments `cov1` and `cov2` must have the same shape (d, d); "
            f"got {cov1.shape} and {cov2.shape}"
        )
    dtype = jnp.result_type(cov1.dtype, cov2.dtype)
    return cov1.astype(dtype), cov2.astype(dtype)


def bures_wasserstein(cov1: ArrayLike, cov2: ArrayLike, *, squared: bool = False) -> Array:
    r"""Bures-Wasserstein distance between SPD (covariance) matrices: the Wasserstein-2 distance
    between the centred Gaussians :math:`\mathcal N(0, \Sigma_1)` and :math:`\mathcal N(0, \Sigma_2)`.

    With :math:`\Sigma_1` = ``cov1`` and :math:`\Sigma_2` = ``cov2``:

    .. math::

        \mathrm{BW}^2(\Sigma_1, \Sigma_2) = \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
            - 2 \operatorname{tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}.

    The square is :func:`geomjax.manifolds.bures_wasserstein_sqdist` (accurate at coincident
    and ill-conditioned matrices, exactly 0 at ``cov1 == cov2``, exact first and second
    derivatives). The square root is taken NaN-safely: below round-off level
    (``(8 eps)^2 (tr cov1 + tr cov2)``) the distance is 0 with a zero gradient.

    Args:
      cov1, cov2: SPD matrices, shape ``(d, d)`` (positive semi-definite is fine for values).
      squared: return :math:`\mathrm{BW}^2` (smooth everywhere) instead of :math:`\mathrm{BW}`.

    Returns:
      Scalar :math:`\mathrm{BW} \ge 0` (or its square).

    Raises:
      TypeError: non-floating ``cov1`` or ``cov2``.
      ValueError: ``cov1``, ``cov2`` not square ``(d, d)`` with ``d >= 1``, or of different
        shapes.

    Input domain: a non-symmetric matrix is read as its symmetric part
    :math:`(\Sigma + \Sigma^\top)/2`; an indefinite one (an eigenvalue below about
    :math:`-d\,\epsilon \max_i \Sigma_{ii}`, where the Cholesky factorization fails) or NaN /
    inf entries give NaN.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.ot import bures_wasserstein
      >>> round(float(bures_wasserstein(jnp.eye(2), 4.0 * jnp.eye(2), squared=True)), 5)  # 2 (2 - 1)^2
      2.0
      >>> float(bures_wasserstein(jnp.eye(2), jnp.eye(2)))
      0.0

    References:
      D. C. Dowson, B. V. Landau, "The Frechet distance between multivariate normal
      distributions", Journal of Multivariate Analysis 12(3), 1982.
      I. Olkin, F. Pukelsheim, "The distance between two random vectors with given dispersion
      matrices", Linear Algebra and its Applications 48, 1982.
      R. Bhatia, T. Jain, Y. Lim, "On the Bures-Wasserstein distance between positive definite
      matrices", Expositiones Mathematicae 37(2), 2019, arXiv:1712.01504.
    """
    cov1, cov2 = _check_cov_pair("bures_wasserstein", cov1, cov2)
    sq = bures_wasserstein_sqdist(cov1, cov2)
    if squared:
        return sq
    return _sqrt_or_zero(sq, jnp.trace(cov1) + jnp.trace(cov2))


def gaussian_wasserstein(
    m1: ArrayLike, cov1: ArrayLike, m2: ArrayLike, cov2: ArrayLike, *, squared: bool = False
) -> Array:
    r"""Wasserstein-2 distance between two Gaussians, in closed form.

    With :math:`\mu_i` = ``m1``, ``m2`` and :math:`\Sigma_i` = ``cov1``, ``cov2``:

    .. math::

        W_2^2\big(\mathcal N(\mu_1, \Sigma_1), \mathcal N(\mu_2, \Sigma_2)\big)
            = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
              - 2 \operatorname{tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}.

    The Bures term is :func:`geomjax.manifolds.bures_wasserstein_sqdist` (accurate, exactly 0
    for equal covariances). ``squared=False`` (default) returns :math:`W_2`, with a NaN-safe
    square root: below round-off level (``(8 eps)^2 (tr cov1 + tr cov2 + |m1|^2 + |m2|^2)``)
    the distance is 0 with a zero gradient, so identical Gaussians have finite (zero)
    gradients. ``squared=True`` returns :math:`W_2^2`, smooth everywhere (prefer it as a loss).
    The same formula is the Frechet distance between Gaussians (e.g. FID).

    Args:
      m1: mean of the first Gaussian, shape ``(d,)``.
      cov1: covariance of the first Gaussian, SPD, shape ``(d, d)``.
      m2: mean of the second Gaussian, shape ``(d,)``.
      cov2: covariance of the second Gaussian, SPD, shape ``(d, d)``.
      squared: return :math:`W_2^2` instead of :math:`W_2`.

    Returns:
      Scalar :math:`W_2 \ge 0` (or :math:`W_2^2`).

    Raises:
      TypeError: non-floating inputs.
      ValueError: covariances not square ``(d, d)`` of one shape, means not of shape ``(d,)``.

    Input domain: as :func:`bures_wasserstein` for the covariances (symmetric part read,
    indefinite or non-finite gives NaN); NaN or inf in a mean gives a non-finite distance.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.ot import gaussian_wasserstein
      >>> m1, m2 = jnp.zeros(2), jnp.array([3.0, 0.0])
      >>> round(float(gaussian_wasserstein(m1, jnp.eye(2), m2, 4.0 * jnp.eye(2), squared=True)), 5)  # 9 + 2
      11.0
      >>> round(float(gaussian_wasserstein(m1, jnp.eye(2), m2, jnp.eye(2))), 5)  # translation
      3.0

    References:
      D. C. Dowson, B. V. Landau, "The Frechet distance between multivariate normal
      distributions", Journal of Multivariate Analysis 12(3), 1982.
      I. Olkin, F. Pukelsheim, "The distance between two random vectors with given dispersion
      matrices", Linear Algebra and its Applications 48, 1982.
      R. Bhatia, T. Jain, Y. Lim, "On the Bures-Wasserstein distance between positive definite
      matrices", Expositiones Mathematicae 37(2), 2019, arXiv:1712.01504.
    """
    fn = "gaussian_wasserstein"
    cov1, cov2 = _check_cov_pair(fn, cov1, cov2)
    d = cov1.shape[0]
    m1 = as_float_array(fn, "m1", m1)
    m2 = as_float_array(fn, "m2", m2)
    for name, m in (("m1", m1), ("m2", m2)):
        if m.shape != (d,):
            raise ValueError(
                f"{fn}: argument `{name}` must have shape ({d},) to match the covariances "
                f"{cov1.shape}; got shape {m.shape}"
            )
    dtype = jnp.result_type(cov1.dtype, m1.dtype, m2.dtype)
    m1, m2, cov1, cov2 = (t.astype(dtype) for t in (m1, m2, cov1, cov2))
    dm = m1 - m2
    sq = jnp.sum(dm * dm) + bures_wasserstein_sqdist(cov1, cov2)
    if squared:
        return sq
    scale = jnp.trace(cov1) + jnp.trace(cov2) + jnp.sum(m1 * m1) + jnp.sum(m2 * m2)
    # An infinite mean makes sq and scale both inf, which the round-off floor would call 0:
    # return a non-finite sq as it is (sqrt(inf) = inf, NaN stays NaN), double-where safe.
    bad = jnp.logical_not(jnp.isfinite(sq))
    safe = _sqrt_or_zero(jnp.where(bad, 0.0, sq), jnp.where(bad, 0.0, scale))
    return jnp.where(bad, sq, safe)


def gaussian_fit(x: ArrayLike, a: ArrayLike | None = None) -> tuple[Array, Array]:
    r"""Weighted mean and covariance of a point cloud (the moments of the discrete measure).

    With :math:`x_i` the rows of ``x`` and weights :math:`a_i` (uniform ``1/n`` by default):

    .. math::

        \mu = \sum_i a_i x_i, \qquad
        \Sigma = \sum_i a_i (x_i - \mu)(x_i - \mu)^\top .

    This is the (biased, maximum-likelihood) covariance of the measure
    :math:`\sum_i a_i \delta_{x_i}`, not the unbiased sample estimate (multiply by
    :math:`1/(1 - \sum_i a_i^2)`, i.e. ``n / (n - 1)`` for uniform weights, for that).
    ``gaussian_wasserstein(*gaussian_fit(x, a), *gaussian_fit(y, b))`` is a lower bound on
    :math:`W_2` between the two discrete measures (Gelbrich's bound). The covariance is only
    positive semi-definite when ``n <= d``; add a ridge before taking Bures distances then.

    Args:
      x: points, shape ``(n, d)`` (a collection: the stack is taken explicitly).
      a: weights, shape ``(n,)``, non-negative and summing to one (checked when concrete, not
        when traced); ``None`` means uniform.

    Returns:
      ``(mean, cov)`` of shapes ``(d,)`` and ``(d, d)`` (``cov`` exactly symmetric).

    Raises:
      TypeError: non-floating ``x`` or ``a``.
      ValueError: ``x`` not ``(n, d)`` with ``n, d >= 1``; ``a`` of the wrong shape, or
        (when concrete) negative, non-finite or not summing to one.

    Input domain: NaN or inf in ``x`` or in traced weights give NaN or inf in the moments (NaN
    in, NaN out); traced weights that are negative or do not sum to one are used as given.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.ot import gaussian_fit
      >>> mean, cov = gaussian_fit(jnp.array([[0.0, 0.0], [2.0, 0.0]]))
      >>> mean
      Array([1., 0.], dtype=float32)
      >>> cov
      Array([[1., 0.],
             [0., 0.]], dtype=float32)

    References:
      M. Gelbrich, "On a formula for the L2 Wasserstein metric between measures on Euclidean and
      Hilbert spaces", Mathematische Nachrichten 147, 1990.
    """
    fn = "gaussian_fit"
    x = as_float_array(fn, "x", x)
    check_ndim(fn, "x", x, 2)
    n = x.shape[0]
    if n < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{fn}: argument `x` must have at least one point of dimension d >= 1; "
            f"got shape {x.shape}"
        )
    dtype = x.dtype
    if a is not None and jnp.issubdtype(jnp.result_type(a), jnp.floating):
        dtype = jnp.result_type(dtype, jnp.result_type(a))
    x = x.astype(dtype)
    a = uniform_or_checked(fn, "a", a, n, dtype)
    mean = a @ x
    xc = x - mean
    cov = (xc * a[:, None]).T @ xc
    return mean, 0.5 * (cov + cov.T)
