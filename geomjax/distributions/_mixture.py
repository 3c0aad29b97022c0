r"""Mixtures of von Mises-Fisher distributions fitted by expectation-maximization."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    check_key,
    psum_if,
    safe_div,
    safe_norm,
)
from geomjax.distributions._von_mises_fisher import (
    _REFERENCES,
    _log_normalizer,
    kappa_from_mean_resultant,
)

__all__ = ["VMFMixtureFit", "fit_vmf_mixture", "vmf_mixture_log_responsibilities"]


class VMFMixtureFit(NamedTuple):
    """Result of :func:`fit_vmf_mixture`.

    Attributes:
      weights: mixture weights, shape ``(k,)``.
      mu: mean directions, shape ``(k, d)``.
      kappa: concentrations, shape ``(k,)``.
      responsibilities: posterior component probabilities of the (local) rows, shape ``(n, k)``.
      log_likelihood: mean log-likelihood per row at the returned parameters.
      converged: whether the change of the mean log-likelihood fell below ``tol``.
      n_iters: EM iterations taken.
      error: last absolute change of the mean log-likelihood.
    """

    weights: Array
    mu: Array
    kappa: Array
    responsibilities: Array
    log_likelihood: Array
    converged: Array
    n_iters: Array
    error: Array


def _log_joint(x: Array, log_w: Array, mu: Array, kappa: Array) -> Array:
    d = x.shape[-1]
    return log_w + kappa * (x @ mu.T) - _log_normalizer(d, kappa)


def vmf_mixture_log_responsibilities(fit: VMFMixtureFit, x: ArrayLike) -> Array:
    r"""Log posterior component probabilities :math:`\log p(j \mid x_i)`, shape ``(n, k)``."""
    x = as_float_array("vmf_mixture_log_responsibilities", "x", x)
    lj = _log_joint(x, jnp.log(fit.weights), fit.mu, fit.kappa)
    return lj - jax.nn.logsumexp(lj, axis=-1, keepdims=True)


def fit_vmf_mixture(
    key: PRNGKey,
    x: ArrayLike,
    n_components: int,
    *,
    max_iter: int = 200,
    tol: float | None = None,
    init_mu: ArrayLike | None = None,
    axis_name: str | None = None,
) -> VMFMixtureFit:
    r"""Fit a mixture of ``n_components`` vMF distributions to unit vectors by EM.

    .. math::

        p(x) = \sum_j \pi_j \frac{e^{\kappa_j\mu_j^\top x}}{Z_d(\kappa_j)}; \quad
        \gamma_{ij} \propto \pi_j e^{\kappa_j\mu_j^\top x_i}/Z_d(\kappa_j), \quad
        R_j = \sum_i \gamma_{ij} x_i, \quad \pi_j = \frac{N_j}{N}, \quad
        \mu_j = \frac{R_j}{|R_j|}, \quad A_d(\kappa_j) = \frac{|R_j|}{N_j},

    with :math:`N_j = \sum_i \gamma_{ij}` and the last equation solved by Newton's method
    (:func:`kappa_from_mean_resultant`). Sufficient statistics are summed with
    ``psum_if(axis_name)``, so the rows may be sharded over devices inside ``jax.shard_map``;
    every device then returns the same parameters. Initial means are ``n_components`` distinct
    random rows (of the first shard when sharded), initial concentrations come from the
    overall mean resultant length, weights are uniform. Stops when the mean log-likelihood
    changes by less than ``tol`` (default ``sqrt(eps)``).

    Args:
      key: PRNG key for the initial means.
      x: unit vectors, shape ``(n, d)`` (the local rows when sharded; at least
        ``n_components`` rows per shard).
      n_components: number of components ``k`` (static).
      max_iter: EM iteration cap.
      tol: tolerance on the change of the mean log-likelihood.
      init_mu: optional initial mean directions, shape ``(k, d)`` (then ``key`` is unused).
      axis_name: mapped axis over which rows are sharded, or None.

    Returns:
      :class:`VMFMixtureFit`.

    Raises:
      ValueError: ``x`` not of shape ``(n, d)`` with ``n >= n_components``, ``d >= 2``.
      TypeError: non-floating ``x``, ``key`` not a PRNG key.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.distributions import VonMisesFisher, fit_vmf_mixture
      >>> k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
      >>> a = VonMisesFisher(jnp.array([1.0, 0.0, 0.0]), jnp.asarray(50.0)).sample(k1, (500,))
      >>> b = VonMisesFisher(jnp.array([0.0, 0.0, 1.0]), jnp.asarray(10.0)).sample(k2, (500,))
      >>> fit = fit_vmf_mixture(k3, jnp.concatenate([a, b]), 2)
      >>> print(sorted(round(float(k), -1) for k in fit.kappa), bool(fit.converged))
      [10.0, 50.0] True
    """
    fn = "fit_vmf_mixture"
    check_key(fn, "key", key)
    x = as_float_array(fn, "x", x)
    if x.ndim != 2 or x.shape[1] < 2 or x.shape[0] < n_components:
        raise ValueError(
            f"{fn}: argument `x` must have shape (n, d) with d >= 2 and n >= n_components "
            f"({n_components}); got {x.shape}"
        )
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(
            f"{fn}: argument `n_components` must be a positive int; got {n_components!r}"
        )
    k = n_components
    n, d = x.shape
    dtype = x.dtype
    tol = float(jnp.finfo(dtype).eps) ** 0.5 if tol is None else float(tol)

    if init_mu is not None:
        mu0 = jnp.asarray(init_mu, dtype)
        if mu0.shape != (k, d):
            raise ValueError(f"{fn}: argument `init_mu` must have shape {(k, d)}; got {mu0.shape}")
    else:
        idx = jax.random.choice(key, n, (k,), replace=False)
        mu0 = x[idx]
        if axis_name is not None:
            first = (jax.lax.axis_index(axis_name) == 0).astype(dtype)
            mu0 = psum_if(mu0 * first, axis_name)
    mu0 = safe_div(mu0, safe_norm(mu0, axis=-1, keepdims=True))
    n_total = psum_if(jnp.asarray(n, dtype), axis_name)
    r_all = safe_norm(psum_if(jnp.sum(x, axis=0), axis_name)) / n_total
    kappa_all = kappa_from_mean_resultant(d, r_all)[0]
    kappa0 = jnp.full((k,), jnp.maximum(kappa_all, 1.0), dtype)
    log_w0 = jnp.full((k,), -jnp.log(float(k)), dtype)

    def e_step(log_w, mu, kappa):
        lj = _log_joint(x, log_w, mu, kappa)
        lse = jax.nn.logsumexp(lj, axis=-1, keepdims=True)
        ll = psum_if(jnp.sum(lse), axis_name) / n_total
        return jnp.exp(lj - lse), ll

    def m_step(resp, mu_old):
        nk = psum_if(jnp.sum(resp, axis=0), axis_name)
        rk = psum_if(resp.T @ x, axis_name)
        norm = safe_norm(rk, axis=-1, keepdims=True)
        alive = nk > 10.0 * jnp.finfo(dtype).tiny
        mu = jnp.where(alive[:, None] & (norm > 0), safe_div(rk, norm), mu_old)
        rbar = jnp.clip(safe_div(norm[:, 0], nk), 0.0, 1.0)
        kappa = kappa_from_mean_resultant(d, rbar)[0]
        log_w = jnp.log(jnp.maximum(nk / n_total, jnp.finfo(dtype).tiny))
        return log_w, mu, kappa

    def cond(state):
        i, _, _, _, _, err = state
        return jnp.logical_and(i < max_iter, err > tol)

    def body(state):
        i, log_w, mu, kappa, ll_old, _ = state
        resp, _ = e_step(log_w, mu, kappa)
        log_w, mu, kappa = m_step(resp, mu)
        _, ll = e_step(log_w, mu, kappa)
        return i + 1, log_w, mu, kappa, ll, jnp.abs(ll - ll_old)

    _, ll0 = e_step(log_w0, mu0, kappa0)
    init = (jnp.asarray(0, jnp.int32), log_w0, mu0, kappa0, ll0, jnp.asarray(jnp.inf, dtype))
    n_iters, log_w, mu, kappa, ll, err = jax.lax.while_loop(cond, body, init)
    resp, _ = e_step(log_w, mu, kappa)
    return VMFMixtureFit(jnp.exp(log_w), mu, kappa, resp, ll, err <= tol, n_iters, err)


fit_vmf_mixture.__doc__ += _REFERENCES
