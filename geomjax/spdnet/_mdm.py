"""Minimum distance to mean (MDM): nearest-class-centroid classification of SPD matrices."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, full_precision
from geomjax.manifolds._base import Manifold
from geomjax.manifolds._spd_affine import SPDAffineInvariant


class MDMState(NamedTuple):
    """Fitted MDM classifier (output of :func:`mdm_fit`).

    Attributes:
      means: class centroids, shape ``(n_classes, n, n)`` (for a class with no training
        point, a placeholder that :func:`mdm_distances` masks out).
      converged: bool ``(n_classes,)``, True where the class mean reached its tolerance (False
        for empty classes).
      n_iters: int32 ``(n_classes,)``, iterations taken by each class mean (0 for closed forms).
      class_weights: ``(n_classes,)``, total sample weight of each class (0 for empty classes).
    """

    means: Array
    converged: Array
    n_iters: Array
    class_weights: Array


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
            f"{fn}: argument `metric` has points of shape {shape}, but `x` holds ({n}, {n}) matrices"
        )
    if not hasattr(metric, "mean"):
        raise TypeError(f"{fn}: argument `metric` must have a `mean(points, weights, ...)` method")
    return metric


def _check_stack(fn: str, x: ArrayLike) -> Array:
    x = as_float_array(fn, "x", x)
    if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{fn}: argument `x` must be a stack of SPD matrices, shape (k, n, n), k >= 1; got shape {x.shape}"
        )
    return x


@full_precision
def mdm_fit(
    x: ArrayLike,
    labels: ArrayLike,
    n_classes: int,
    *,
    metric: Manifold | None = None,
    sample_weight: ArrayLike | None = None,
    max_iter: int = 30,
    tol: float | None = None,
) -> MDMState:
    r"""Fit a minimum-distance-to-mean classifier: one Frechet mean per class.

    .. math::

        M_c = \arg\min_{M} \sum_{i:\, y_i = c} w_i\, d(M, X_i)^2, \qquad c = 0, \dots, C - 1,

    computed with ``metric.mean`` (the Karcher flow for the affine-invariant metric, closed
    forms for log-Euclidean and log-Cholesky). Works under ``jax.jit`` with ``labels`` traced and
    ``n_classes`` static: each class mean is a weighted mean over the whole stack with zero
    weight outside the class (cost ``n_classes`` means over ``k`` points). Labels outside
    ``[0, n_classes)`` are ignored. Differentiable in ``x`` and ``sample_weight``.

    Args:
      x: training SPD matrices, shape ``(k, n, n)``.
      labels: int class indices, shape ``(k,)``, in ``[0, n_classes)``.
      n_classes: number of classes :math:`C` (static int).
      metric: an SPD metric of :mod:`geomjax.manifolds` of size ``n`` (with ``mean``); default
        ``SPDAffineInvariant(n)``.
      sample_weight: non-negative weights ``(k,)``; default equal.
      max_iter: iteration budget of each class mean (static int). The iterative means run a
        fixed number of masked steps (so they are differentiable), so the cost grows with it;
        the Karcher flow typically meets ``tol`` in 5-15 steps.
      tol: gradient-norm tolerance of each class mean; default the metric's.

    Returns:
      :class:`MDMState`. Input domain (not checked): a class whose matrices include one with a
      NaN/inf entry or off the SPD manifold, or whose weights are NaN, gets ``converged=False``
      (its mean may then be non-finite); negative weights are outside the domain too (the class
      mean is then reported as converged only if the iteration met ``tol`` with a finite mean).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.spdnet._mdm import mdm_fit, mdm_predict
      >>> x = jnp.stack([jnp.eye(2) * s for s in (0.5, 0.6, 2.0, 3.0)])
      >>> state = mdm_fit(x, jnp.array([0, 0, 1, 1]), 2)
      >>> state.means.shape, state.converged.tolist()
      ((2, 2, 2), [True, True])
      >>> mdm_predict(state, jnp.stack([0.4 * jnp.eye(2), 5.0 * jnp.eye(2)]))
      Array([0, 1], dtype=int32)

    References:
      A. Barachant, S. Bonnet, M. Congedo, C. Jutten, "Multiclass brain-computer interface
      classification by Riemannian geometry", IEEE Trans. Biomedical Engineering 59(4), 2012.
    """
    fn = "mdm_fit"
    x = _check_stack(fn, x)
    k, n, _ = x.shape
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"{fn}: argument `n_classes` must be a positive int; got {n_classes!r}")
    n_classes = int(n_classes)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: argument `labels` must have an integer dtype; got {labels.dtype}")
    if labels.shape != (k,):
        raise ValueError(
            f"{fn}: argument `labels` must have shape ({k},); got shape {labels.shape}"
        )
    if sample_weight is None:
        sw = jnp.ones((k,), x.dtype)
    else:
        sw = as_float_array(fn, "sample_weight", sample_weight)
        if sw.shape != (k,):
            raise ValueError(
                f"{fn}: argument `sample_weight` must have shape ({k},); got shape {sw.shape}"
            )
        sw = sw.astype(x.dtype)
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0
    ):
        raise ValueError(f"{fn}: argument `tol` must be None or a non-negative float; got {tol!r}")
    metric = _resolve_metric(fn, metric, n)

    onehot = jax.nn.one_hot(labels, n_classes, dtype=x.dtype).T  # (C, k); zero rows for bad labels
    weights = onehot * sw[None, :]
    totals = jnp.sum(weights, axis=1)
    present = totals > 0
    # An empty class gets uniform weights (a finite placeholder mean, masked at prediction).
    safe = jnp.where(present[:, None], weights, jnp.ones_like(weights))

    def one_mean(w):
        return metric.mean(x, w, max_iter=max_iter, tol=tol)

    res = jax.vmap(one_mean)(safe)
    # Closed-form means (log-Euclidean, log-Cholesky) report converged=True whatever the input;
    # a non-finite class mean (NaN/inf entries or non-SPD matrices in the class) is not converged.
    finite = jnp.all(jnp.isfinite(res.mean), axis=(1, 2))
    return MDMState(
        means=res.mean,
        converged=res.converged & present & finite,
        n_iters=jnp.asarray(res.n_iters, jnp.int32),
        class_weights=totals,
    )


def _check_state(fn: str, state, n: int) -> tuple[Array, Array]:
    if not isinstance(state, MDMState):
        raise TypeError(f"{fn}: argument `state` must be an MDMState; got {type(state).__name__}")
    means = as_float_array(fn, "state.means", state.means)
    weights = as_float_array(fn, "state.class_weights", state.class_weights)
    if means.ndim != 3 or means.shape[0] < 1 or means.shape[1:] != (n, n):
        raise ValueError(
            f"{fn}: argument `state.means` must have shape (n_classes, {n}, {n}) to match `x`; "
            f"got shape {means.shape}"
        )
    if weights.shape != means.shape[:1]:
        raise ValueError(
            f"{fn}: argument `state.class_weights` must have shape {means.shape[:1]}; "
            f"got shape {weights.shape}"
        )
    return means, weights


@full_precision
def mdm_distances(state: MDMState, x: ArrayLike, *, metric: Manifold | None = None) -> Array:
    r"""Distances of each matrix to each class mean, :math:`D_{ic} = d(X_i, M_c)`.

    Classes without training points get :math:`+\infty`. Input domain (not checked): a matrix
    with a NaN/inf entry or off the SPD manifold, or a non-finite class mean (a class that did
    not converge), gives NaN distances.

    Args:
      state: the fitted :class:`MDMState`.
      x: SPD matrices, shape ``(k, n, n)``.
      metric: the metric used in :func:`mdm_fit` (default ``SPDAffineInvariant(n)``).

    Returns:
      ``(k, n_classes)`` distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet._mdm import mdm_distances, mdm_fit
      >>> state = mdm_fit(jnp.stack([jnp.eye(2), 4.0 * jnp.eye(2)]), jnp.array([0, 1]), 2)
      >>> mdm_distances(state, 2.0 * jnp.eye(2)[None]) ** 2 / 2  # (log 2)^2 to both
      Array([[0.480..., 0.480...]], dtype=float32)

    References:
      A. Barachant, S. Bonnet, M. Congedo, C. Jutten, "Multiclass brain-computer interface
      classification by Riemannian geometry", IEEE Trans. Biomedical Engineering 59(4), 2012.
    """
    fn = "mdm_distances"
    x = _check_stack(fn, x)
    means, class_weights = _check_state(fn, state, x.shape[1])
    metric = _resolve_metric(fn, metric, x.shape[1])
    dtype = jnp.result_type(x, means)
    x, means = x.astype(dtype), means.astype(dtype)
    d = jax.vmap(lambda xi: jax.vmap(lambda m: metric.dist(m, xi))(means))(x)
    present = class_weights > 0
    return jnp.where(present[None, :], d, jnp.inf)


@full_precision
def mdm_predict(state: MDMState, x: ArrayLike, *, metric: Manifold | None = None) -> Array:
    r"""Predict the class of each matrix: the nearest class mean, :math:`\hat y_i = \arg\min_c d(X_i, M_c)`.

    Args:
      state: the fitted :class:`MDMState`.
      x: SPD matrices, shape ``(k, n, n)``.
      metric: the metric used in :func:`mdm_fit` (default ``SPDAffineInvariant(n)``).

    Returns:
      int32 labels, shape ``(k,)``. A NaN distance never wins (a class whose mean is not finite
      is skipped); a matrix with no finite distance to any class (a NaN/inf entry or off the
      SPD manifold, or no class with training points) gets the label ``-1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.spdnet._mdm import mdm_fit, mdm_predict
      >>> state = mdm_fit(jnp.stack([jnp.eye(2), 4.0 * jnp.eye(2)]), jnp.array([0, 1]), 2)
      >>> mdm_predict(state, jnp.stack([1.5 * jnp.eye(2), 3.0 * jnp.eye(2)]))
      Array([0, 1], dtype=int32)

    References:
      A. Barachant, S. Bonnet, M. Congedo, C. Jutten, "Multiclass brain-computer interface
      classification by Riemannian geometry", IEEE Trans. Biomedical Engineering 59(4), 2012.
    """
    d = mdm_distances(state, x, metric=metric)
    d = jnp.where(jnp.isnan(d), jnp.inf, d)
    label = jnp.argmin(d, axis=1).astype(jnp.int32)
    return jnp.where(jnp.all(jnp.isinf(d), axis=1), jnp.int32(-1), label)
