"""Covariance features of multichannel signals: sample, Ledoit-Wolf shrunk, and delay-embedded."""

from __future__ import annotations

import numbers

import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, check_ndim, full_precision, safe_div

_SHRINKAGE_OPTIONS = (None, "ledoit_wolf")


def _centered(fn: str, x: ArrayLike, assume_centered: bool) -> Array:
    x = as_float_array(fn, "x", x)
    check_ndim(fn, "x", x, 2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{fn}: argument `x` must have shape (channels, times) with channels, times >= 1; "
            f"got shape {x.shape}"
        )
    if not isinstance(assume_centered, bool):
        raise TypeError(f"{fn}: argument `assume_centered` must be a bool; got {assume_centered!r}")
    if not assume_centered:
        x = x - jnp.mean(x, axis=1, keepdims=True)
    return x


def _ledoit_wolf_coefficient(xc: Array, emp: Array) -> Array:
    """Ledoit-Wolf shrinkage of the centered signal ``xc`` (channels, times) with ``emp = xc xc^T / T``."""
    p, t = xc.shape
    mu = jnp.trace(emp) / p
    x2 = xc * xc
    # beta: (1 / (p T^2)) sum_t ||x_t x_t^T - S||_F^2, written as in Ledoit & Wolf (2004), lemma 3.3.
    sum_fourth = jnp.sum(x2 @ x2.T)  # sum_{k,l} sum_t x_kt^2 x_lt^2 = sum_t ||x_t||^4
    frob_emp = jnp.sum(emp * emp)
    beta = (sum_fourth / t - frob_emp) / (p * t)
    # delta: ||S - mu I||_F^2 / p.
    delta = jnp.sum((emp - mu * jnp.eye(p, dtype=emp.dtype)) ** 2) / p
    beta = jnp.minimum(beta, delta)
    return safe_div(beta, delta, fill=0.0)


def _check_shrinkage(fn: str, shrinkage):
    if shrinkage is None or isinstance(shrinkage, str):
        if shrinkage not in _SHRINKAGE_OPTIONS:
            raise ValueError(
                f"{fn}: argument `shrinkage` must be None, 'ledoit_wolf' or a float in [0, 1]; "
                f"got {shrinkage!r}"
            )
        return shrinkage
    if isinstance(shrinkage, bool):
        raise TypeError(
            f"{fn}: argument `shrinkage` must be None, 'ledoit_wolf' or a float; got {shrinkage!r}"
        )
    if isinstance(shrinkage, numbers.Real):
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"{fn}: argument `shrinkage` must lie in [0, 1]; got {shrinkage!r}")
        return float(shrinkage)
    arr = jnp.asarray(shrinkage)
    if arr.ndim != 0 or not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `shrinkage` must be None, 'ledoit_wolf' or a float scalar; "
            f"got {arr.dtype} array of shape {arr.shape}"
        )
    return arr


@full_precision
def ledoit_wolf_shrinkage(x: ArrayLike, *, assume_centered: bool = False) -> Array:
    r"""Ledoit-Wolf shrinkage coefficient of one multichannel signal.

    With :math:`p` channels, :math:`T` samples :math:`x_t` (columns of ``x``, centered unless
    ``assume_centered``), :math:`S = \tfrac1T \sum_t x_t x_t^\top` and
    :math:`\mu = \operatorname{tr}(S) / p`:

    .. math::

        \delta = \tfrac1p \|S - \mu I\|_F^2, \qquad
        \beta = \min\Big(\delta,\; \tfrac{1}{p T^2} \sum_t \|x_t x_t^\top - S\|_F^2\Big), \qquad
        s = \beta / \delta

    (:math:`s = 0` when :math:`\delta = 0`, i.e. when :math:`S` is already a multiple of the
    identity). This is ``sklearn.covariance.ledoit_wolf_shrinkage``, the estimator behind
    pyriemann's ``"lwf"`` covariances.

    Args:
      x: signal, shape ``(channels, times)``.
      assume_centered: if True, do not subtract the per-channel mean.

    Returns:
      Scalar in ``[0, 1]`` for finite ``x`` (0 for a constant or single-sample signal); NaN
      when ``x`` has a NaN or inf entry.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.spdnet._covariance import ledoit_wolf_shrinkage
      >>> x = jax.random.normal(jax.random.key(0), (4, 10))
      >>> s = ledoit_wolf_shrinkage(x)
      >>> bool(0.0 <= s <= 1.0)
      True

    References:
      O. Ledoit, M. Wolf, "A well-conditioned estimator for large-dimensional covariance
      matrices", Journal of Multivariate Analysis 88(2), 2004.
    """
    fn = "ledoit_wolf_shrinkage"
    xc = _centered(fn, x, assume_centered)
    emp = (xc @ xc.T) / xc.shape[1]
    return _ledoit_wolf_coefficient(xc, emp)


@full_precision
def covariance(x: ArrayLike, *, shrinkage=None, assume_centered: bool = False) -> Array:
    r"""Covariance matrix of one multichannel signal, optionally shrunk toward a scaled identity.

    With :math:`T` samples :math:`x_t` (columns of ``x``) and their mean :math:`\bar x`
    (zero if ``assume_centered``):

    .. math::

        S = \tfrac1T \sum_t (x_t - \bar x)(x_t - \bar x)^\top, \qquad
        C = (1 - s)\, S + s\, \tfrac{\operatorname{tr} S}{p}\, I,

    with :math:`s = 0` (``shrinkage=None``), the Ledoit-Wolf coefficient
    (``"ledoit_wolf"``, see :func:`ledoit_wolf_shrinkage`) or a given :math:`s \in [0, 1]`.
    The normalization is :math:`1/T` (maximum likelihood), as in
    ``sklearn.covariance.empirical_covariance``/``ledoit_wolf`` and pyriemann's ``"scm"`` and
    ``"lwf"`` estimators. :math:`S` is SPD when the centered signal has rank ``channels``
    (``times > channels``); any :math:`s > 0` makes :math:`C` SPD for a non-zero signal.
    Differentiable in ``x`` and in an array ``shrinkage``. Batch over trials with ``jax.vmap``.

    Args:
      x: signal, shape ``(channels, times)``.
      shrinkage: None, ``"ledoit_wolf"``, or a float (or float scalar array) in ``[0, 1]``.
      assume_centered: if True, do not subtract the per-channel mean.

    Returns:
      ``(channels, channels)`` symmetric matrix, finite for finite ``x``. Input domain (not
      checked): a NaN or inf entry of ``x`` gives non-finite entries (all of them with
      ``"ledoit_wolf"``); an array ``shrinkage`` is not range-checked (it may be traced), and a
      value outside ``[0, 1]`` extrapolates the same formula.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.spdnet._covariance import covariance
      >>> x = jnp.array([[1.0, -1.0, 1.0, -1.0], [2.0, 0.0, -2.0, 0.0]])
      >>> covariance(x)
      Array([[1., 0.],
             [0., 2.]], dtype=float32)
      >>> covariance(x, shrinkage=1.0)  # all the way to tr(S)/p * I
      Array([[1.5, 0. ],
             [0. , 1.5]], dtype=float32)

    References:
      O. Ledoit, M. Wolf, "A well-conditioned estimator for large-dimensional covariance
      matrices", Journal of Multivariate Analysis 88(2), 2004.
      A. Barachant, S. Bonnet, M. Congedo, C. Jutten, "Multiclass brain-computer interface
      classification by Riemannian geometry", IEEE Trans. Biomedical Engineering 59(4), 2012.
    """
    fn = "covariance"
    shrinkage = _check_shrinkage(fn, shrinkage)
    xc = _centered(fn, x, assume_centered)
    p, t = xc.shape
    emp = (xc @ xc.T) / t
    emp = 0.5 * (emp + emp.T)
    if shrinkage is None:
        return emp
    if isinstance(shrinkage, str):
        s = _ledoit_wolf_coefficient(xc, emp)
    else:
        s = jnp.asarray(shrinkage, emp.dtype)
    mu = jnp.trace(emp) / p
    return (1.0 - s) * emp + (s * mu) * jnp.eye(p, dtype=emp.dtype)


@full_precision
def delay_embedding(x: ArrayLike, *, order: int, lag: int) -> Array:
    r"""Stack ``order`` copies of a signal, each shifted by a further ``lag`` samples.

    .. math::

        \tilde x_t = \big(x_t;\ x_{t + \tau};\ \dots;\ x_{t + (m-1)\tau}\big), \qquad
        t = 0, \dots, T - (m-1)\tau - 1,

    with :math:`m` = ``order`` and :math:`\tau` = ``lag``: block :math:`p` (rows
    ``p * channels`` to ``(p + 1) * channels``) is ``x[:, p * lag : p * lag + T']`` with
    :math:`T' = T - (m-1)\tau`.

    Args:
      x: signal, shape ``(channels, times)``.
      order: number of copies :math:`m \ge 1` (static int).
      lag: shift in samples between copies, :math:`\tau \ge 1` (static int).

    Returns:
      ``(channels * order, times - (order - 1) * lag)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet._covariance import delay_embedding
      >>> delay_embedding(jnp.arange(5.0)[None], order=2, lag=2)
      Array([[0., 1., 2.],
             [2., 3., 4.]], dtype=float32)
    """
    fn = "delay_embedding"
    x = as_float_array(fn, "x", x)
    check_ndim(fn, "x", x, 2)
    if x.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `x` must have shape (channels, times) with channels >= 1; "
            f"got shape {x.shape}"
        )
    for name, value in (("order", order), ("lag", lag)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{fn}: argument `{name}` must be a positive int; got {value!r}")
    order, lag = int(order), int(lag)
    t = x.shape[1]
    t_out = t - (order - 1) * lag
    if t_out < 1:
        raise ValueError(
            f"{fn}: argument `x` has {t} samples, fewer than (order - 1) * lag + 1 = "
            f"{(order - 1) * lag + 1} needed for order={order}, lag={lag}"
        )
    return jnp.concatenate([x[:, p * lag : p * lag + t_out] for p in range(order)], axis=0)


@full_precision
def augmented_covariance(
    x: ArrayLike,
    *,
    order: int,
    lag: int,
    shrinkage=None,
    assume_centered: bool = False,
) -> Array:
    r"""Augmented covariance: the covariance of the delay-embedded signal.

    :func:`covariance` of :func:`delay_embedding`:

    .. math::

        C_{\text{aug}} = \operatorname{cov}\big(\tilde x\big) =
        \begin{pmatrix} \Gamma_0 & \Gamma_\tau & \cdots \\ \Gamma_\tau^\top & \Gamma_0 & \\
        \vdots & & \ddots \end{pmatrix}, \qquad
        \tilde x_t = (x_t; x_{t+\tau}; \dots; x_{t+(m-1)\tau}),

        \text{(block } (p, q) \text{ estimates the lag-}(q-p)\tau \text{ autocovariance } \Gamma_{(q-p)\tau}),

    so the matrix carries the temporal (spectral) dynamics that the zero-lag covariance
    :math:`\Gamma_0` alone misses: two autoregressive processes with the same :math:`\Gamma_0` and
    different dynamics have the same expected plain covariance but different augmented ones.
    ``order=1`` gives :func:`covariance` of ``x``.

    The paper's reference pipeline (moabb ``AugmentedDataset``) uses the window
    ``x[:, p*lag : T - (order - p)*lag]`` for block ``p``, i.e. it also drops the last ``lag``
    samples; ``augmented_covariance(x[:, :-lag], ...)`` reproduces it exactly for ``order >= 2``.

    Args:
      x: signal, shape ``(channels, times)``.
      order: embedding order :math:`m \ge 1` (static int).
      lag: delay :math:`\tau \ge 1` in samples (static int).
      shrinkage: as in :func:`covariance` (the paper uses Ledoit-Wolf, ``"ledoit_wolf"``).
      assume_centered: as in :func:`covariance`.

    Returns:
      ``(channels * order, channels * order)`` symmetric matrix (SPD when
      ``times - (order - 1) * lag > channels * order`` or with shrinkage).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.spdnet._covariance import augmented_covariance
      >>> x = jax.random.normal(jax.random.key(0), (3, 100))
      >>> augmented_covariance(x, order=4, lag=2, shrinkage="ledoit_wolf").shape
      (12, 12)

    References:
      I. Carrara, T. Papadopoulo, "Classification of BCI-EEG based on augmented covariance
      matrix", arXiv:2302.04508, 2023.
    """
    xe = delay_embedding(x, order=order, lag=lag)
    return covariance(xe, shrinkage=shrinkage, assume_centered=assume_centered)
