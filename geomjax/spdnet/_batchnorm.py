"""Riemannian batch normalization of SPD matrices under any SPD metric."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, full_precision, psum_if
from geomjax.manifolds._spd_common import SPDBase, check_iter, karcher_flow


class RBNState(NamedTuple):
    """Running statistics of :func:`riemannian_batch_norm`.

    Attributes:
      running_mean: SPD matrix ``(n, n)``, updated along the geodesic toward each batch mean.
      running_var: scalar, exponential moving average of the batch dispersion.
    """

    running_mean: Array
    running_var: Array


@full_precision
def rbn_init(n: int, dtype=jnp.float32) -> RBNState:
    """Initial running statistics: the identity and a unit variance.

    Args:
      n: matrix size, a positive int.
      dtype: a real floating dtype.

    Examples:
      >>> from geomjax.spdnet import rbn_init
      >>> rbn_init(2).running_var
      Array(1., dtype=float32)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"rbn_init: argument `n` must be a positive int; got {n!r}")
    try:
        floating = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise TypeError(f"rbn_init: argument `dtype` must be a real floating dtype; got {dtype!r}")
    return RBNState(jnp.eye(n, dtype=dtype), jnp.ones((), dtype))


def _check_batch(fn: str, x: ArrayLike, metric) -> Array:
    x = as_float_array(fn, "x", x)
    if not isinstance(metric, SPDBase):
        raise TypeError(
            f"{fn}: argument `metric` must be an SPD metric; got {type(metric).__name__}"
        )
    n = metric.size
    if x.ndim != 3 or x.shape[1:] != (n, n) or x.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `x` must have shape (N, {n}, {n}) with N >= 1; got shape {x.shape}"
        )
    return x


def _check_mean_options(fn: str, mean_iter, tol, dtype) -> tuple[int, float]:
    """``check_iter`` under this function's own argument names (``mean_iter``, not ``max_iter``)."""
    if isinstance(mean_iter, bool) or not isinstance(mean_iter, numbers.Integral) or mean_iter < 1:
        raise ValueError(f"{fn}: argument `mean_iter` must be a positive int; got {mean_iter!r}")
    if isinstance(tol, bool):
        raise ValueError(f"{fn}: argument `tol` must be a non-negative float; got {tol!r}")
    return check_iter(fn, mean_iter, tol, dtype)


def _frechet_stats(x, metric, max_iter, tol, axis_name):
    count = psum_if(jnp.asarray(x.shape[0], x.dtype), axis_name)
    init = psum_if(jnp.sum(x, axis=0), axis_name) / count
    weights = jnp.full((x.shape[0],), 1.0, x.dtype) / count
    res = karcher_flow(metric, x, weights, init, max_iter, tol, axis_name)
    sq = jax.vmap(lambda p: metric.dist(res.mean, p) ** 2)(x)
    var = psum_if(jnp.sum(sq), axis_name) / count
    return res.mean, var, res


@full_precision
def batch_frechet_stats(
    x: ArrayLike,
    metric: SPDBase,
    *,
    mean_iter: int = 10,
    tol: float | None = None,
    axis_name: str | tuple[str, ...] | None = None,
):
    """Batch Frechet mean (Karcher flow from the arithmetic mean) and dispersion
    ``mean_i d(mean, X_i)^2``, reduced over ``axis_name`` when given.

    Args:
      x: batch of SPD matrices, shape ``(N, n, n)``, ``N >= 1``.
      metric: an SPD metric of size ``n``.
      mean_iter: Karcher steps (static positive int).
      tol: Karcher-flow stopping tolerance (default by dtype).
      axis_name: mapped axis name(s) for cross-device statistics, or None.

    Returns ``(mean, var, result)`` with ``result`` the
    :class:`~geomjax.manifolds.FrechetMeanResult` of the flow (``converged``, ``n_iters``).
    ``mean`` and ``var`` are valid where ``result.converged``; a NaN/inf entry or a matrix off
    the SPD manifold in ``x`` (not checked) gives ``converged=False``.
    """
    fn = "batch_frechet_stats"
    x = _check_batch(fn, x, metric)
    max_iter, tol = _check_mean_options(fn, mean_iter, tol, x.dtype)
    return _frechet_stats(x, metric, max_iter, tol, axis_name)


@full_precision
def riemannian_batch_norm(
    x: ArrayLike,
    state: RBNState,
    metric: SPDBase,
    *,
    bias: ArrayLike | None = None,
    scale: ArrayLike = 1.0,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    mean_iter: int = 10,
    tol: float | None = None,
    axis_name: str | tuple[str, ...] | None = None,
) -> tuple[Array, RBNState]:
    r"""Riemannian batch normalization of a batch of SPD matrices under an SPD ``metric``.

    With batch (or running) Frechet mean :math:`G`, dispersion
    :math:`\sigma^2 = \frac1N \sum_i d(G, X_i)^2`, the metric's base point :math:`R`
    (the identity; ``M`` for generalized Bures-Wasserstein), the bias :math:`B` (an SPD
    matrix) and the scalar ``scale`` :math:`s`:

    .. math::

        v_i = \Gamma_{G \to R}\big(\log_G X_i\big), \qquad
        Y_i = \exp_B\Big(\Gamma_{R \to B}\Big(\frac{s}{\sqrt{\sigma^2 + \epsilon}}\, v_i\Big)\Big):

    centring by parallel transport to the base point, scaling of the dispersion, and biasing by
    transport to :math:`B`. Under the affine-invariant metric this is the SPD batch norm of
    Brooks et al. / Kobler et al.
    (:math:`Y_i = B^{1/2} (G^{-1/2} X_i G^{-1/2})^{s/\sigma} B^{1/2}`); under the (power-deformed,
    generalized) Bures-Wasserstein metric it is GBWBN (Wang et al.), whose metric matrix ``M``
    and power ``theta`` are leaves of ``metric`` and receive gradients.

    In training mode the batch statistics are used (the mean by ``mean_iter`` masked Karcher
    steps from the arithmetic mean, differentiated through) and the running statistics move
    toward them: ``running_mean <- geodesic(running_mean, G, momentum)``,
    ``running_var <- (1 - momentum) running_var + momentum sigma^2`` (without gradient). In
    evaluation mode the running statistics are used and the state is returned unchanged. With
    ``axis_name`` the statistics are reduced over devices (``x`` is this device's shard), so
    data-parallel training normalizes with the global batch statistics.

    Args:
      x: batch of SPD matrices, shape ``(N, n, n)``.
      state: :class:`RBNState` (see :func:`rbn_init`).
      metric: an SPD metric of size ``n`` (e.g. ``SPDAffineInvariant(n)``,
        ``PowerDeformed(SPDGeneralizedBuresWasserstein(M), theta)``).
      bias: SPD matrix ``(n, n)``; default the metric's base point.
      scale: scalar :math:`s` (learnable).
      training: use and update batch statistics (static bool).
      momentum: running-statistics momentum in ``[0, 1]``.
      eps: added to the variance.
      mean_iter: Karcher steps for the batch mean (static).
      tol: Karcher-flow stopping tolerance (default by dtype).
      axis_name: mapped axis name(s) for cross-device statistics, or None.

    Returns:
      ``(y, new_state)``: normalized batch ``(N, n, n)`` and the updated :class:`RBNState`.
      Input domain (not checked; there is no status output, use ``metric.check_point``):
      ``x``, ``bias`` and ``state.running_mean`` SPD, ``state.running_var >= 0``; outside it
      ``y`` is NaN or meaningless. In evaluation, a matrix of ``x`` with a NaN/inf entry gives
      NaN in its own ``y`` only (one off the SPD manifold gives an unspecified ``y``: the
      logarithm may floor its eigenvalues). In training, either kind has a NaN distance to the
      batch mean, which makes every ``y`` and ``new_state.running_var`` NaN. With ``eps=0`` a
      training batch with zero dispersion (all matrices equal) gives an all-NaN ``y``
      (``0 / 0``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.manifolds import SPDAffineInvariant
      >>> from geomjax.spdnet import rbn_init, riemannian_batch_norm
      >>> x = jnp.stack([jnp.diag(jnp.array([1.0, 4.0])), jnp.diag(jnp.array([4.0, 1.0]))])
      >>> y, state = riemannian_batch_norm(x, rbn_init(2), SPDAffineInvariant(2), training=True)
      >>> bool(jnp.allclose(SPDAffineInvariant(2).mean(y).mean, jnp.eye(2), atol=1e-5))
      True

    References:
      D. Brooks, O. Schwander, F. Barbaresco, J.-Y. Schneider, M. Cord, "Riemannian batch
      normalization for SPD neural networks", NeurIPS 2019, arXiv:1909.02414.
      R. Kobler, J. Hirayama, Q. Zhao, M. Kawanabe, "SPD domain-specific batch normalization to
      crack interpretable unsupervised domain adaptation in EEG", NeurIPS 2022, arXiv:2206.01323.
      R. Wang, S. Jin, Z. Chen, X. Luo, X.-J. Wu, "Learning to normalize on the SPD manifold
      under Bures-Wasserstein geometry", CVPR 2025, arXiv:2504.00660.
    """
    fn = "riemannian_batch_norm"
    x = _check_batch(fn, x, metric)
    n = metric.size
    if not isinstance(training, bool):
        raise TypeError(
            f"{fn}: argument `training` must be a Python bool (static); got {type(training).__name__}"
        )
    for name, value, ok in (
        ("momentum", momentum, lambda v: 0 <= v <= 1),
        ("eps", eps, lambda v: v >= 0),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
            bound = "in [0, 1]" if name == "momentum" else ">= 0"
            raise ValueError(
                f"{fn}: argument `{name}` must be a real number {bound}; got {value!r}"
            )
    if not isinstance(state, RBNState):
        raise TypeError(f"{fn}: argument `state` must be an RBNState; got {type(state).__name__}")
    for leaf in state:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(
                f"{fn}: argument `state` must hold real floating arrays; got dtype "
                f"{jnp.result_type(leaf)}"
            )
    if jnp.shape(state.running_mean) != (n, n) or jnp.shape(state.running_var) != ():
        raise ValueError(
            f"{fn}: argument `state` must hold a ({n}, {n}) running_mean and a scalar running_var; "
            f"got {jnp.shape(state.running_mean)} and {jnp.shape(state.running_var)}"
        )
    scale_dtype = getattr(scale, "dtype", None)
    if isinstance(scale, bool) or not (isinstance(scale, numbers.Real) or scale_dtype is not None):
        raise TypeError(f"{fn}: argument `scale` must be a real scalar; got {scale!r}")
    if scale_dtype is not None and (
        jnp.issubdtype(scale_dtype, jnp.bool_)
        or not (
            jnp.issubdtype(scale_dtype, jnp.floating) or jnp.issubdtype(scale_dtype, jnp.integer)
        )
    ):
        raise TypeError(f"{fn}: argument `scale` must be a real scalar; got dtype {scale_dtype}")
    if jnp.ndim(scale) != 0:
        raise ValueError(f"{fn}: argument `scale` must be a scalar; got shape {jnp.shape(scale)}")
    max_iter, tol = _check_mean_options(fn, mean_iter, tol, x.dtype)
    dtype = x.dtype
    ref = metric.base_point(dtype)
    bias = ref if bias is None else as_float_array(fn, "bias", bias).astype(dtype)
    if bias.shape != (n, n):
        raise ValueError(
            f"{fn}: argument `bias` must have shape ({n}, {n}); got shape {bias.shape}"
        )

    if training:
        mean, var, _ = _frechet_stats(x, metric, max_iter, tol, axis_name)
        m_sg, v_sg = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
        run_mean = metric.geodesic(
            state.running_mean.astype(dtype), m_sg, jnp.asarray(momentum, dtype)
        )
        run_var = (1.0 - momentum) * state.running_var.astype(dtype) + momentum * v_sg
        new_state = RBNState(
            run_mean.astype(state.running_mean.dtype), run_var.astype(state.running_var.dtype)
        )
    else:
        mean, var = state.running_mean.astype(dtype), state.running_var.astype(dtype)
        new_state = state

    factor = jnp.asarray(scale, dtype) / jnp.sqrt(var + eps)

    def one(xi):
        v = metric.transp(mean, ref, metric.log(mean, xi))
        return metric.exp(bias, metric.transp(ref, bias, factor * v))

    return jax.vmap(one)(x), new_state
