r"""Small orders :math:`0 \le \nu < 20`: power series, Debye plus recurrence, trapezoidal integral.

* :math:`\log I_\nu(x)` for :math:`x \le 12`: the power series
  :math:`I_\nu(x) = (x/2)^\nu / \Gamma(\nu+1) \sum_k q^k / (k!\,(\nu+1)_k)`,
  :math:`q = x^2/4`, whose terms are positive (no cancellation); 32 terms (float64) or
  20 terms (float32) reach the dtype's epsilon at :math:`x = 12`.
* :math:`\log I_\nu(x)` for :math:`x > 12`: the Debye expansion at the order
  :math:`\nu + n \ge 20` and :math:`n` steps of the backward recurrence of the ratio
  :math:`\rho_\mu = I_{\mu+1}/I_\mu`, :math:`\rho_{\mu-1} = 1 / (2\mu/x + \rho_\mu)`
  (stable: :math:`I` is the minimal solution as the order grows),
  :math:`\log I_{\mu-1} = \log I_\mu - \log\rho_{\mu-1}`.
* :math:`\log K_\nu(x)`: the integral
  :math:`K_\mu(x) = e^{-x}\int_0^\infty e^{-2x\sinh^2(t/2)}\cosh(\mu t)\,dt` for the two orders
  :math:`\mu_0 = \nu - \lfloor\nu\rfloor \in [0, 1)` and :math:`\mu_0 - 1`, by the trapezoidal
  rule (geometrically convergent for this analytic, even integrand: the step is chosen from its
  strip of analyticity, :math:`h \le 0.2` and :math:`h \le 0.7/\sqrt{x}`), summed in log space
  around its largest node; then :math:`\lfloor\nu\rfloor` steps of the forward recurrence
  :math:`K_{\mu+1} = K_{\mu-1} + (2\mu/x) K_\mu` (stable: :math:`K` is dominant) in ratio form.
  128 nodes (float64) cover :math:`x \ge 10^{-9}` at full accuracy; below that the step grows
  with the range and the accuracy degrades slowly (the value stays finite).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array
from geomjax.special._debye import NU_MIN, debye_log_iv

X_SERIES = 12.0
_SERIES_TERMS = {np.dtype(np.float64): 32, np.dtype(np.float32): 20}
_NODES = {np.dtype(np.float64): 128, np.dtype(np.float32): 64}
# Step bounds from the strip of analyticity |Im t| < pi/2 (error ~ exp(-2 pi y / h)) and, for
# large x, from the Gaussian width of the integrand (error ~ exp(-2 pi^2 / (h^2 x))).
_H_MAX = {np.dtype(np.float64): 0.2, np.dtype(np.float32): 0.4}
_H_SQRT = {np.dtype(np.float64): 0.7, np.dtype(np.float32): 1.2}
# Range: 2 x sinh^2(T/2) >= _TAIL + T drops the integrand below exp(-_TAIL) of its peak.
_TAIL = {np.dtype(np.float64): 45.0, np.dtype(np.float32): 24.0}


def series_log_iv(v: Array, x: Array) -> tuple[Array, Array]:
    r"""(:math:`\log I_v(x)`, :math:`\log(I_{v+1}/I_v)`) by the power series (``0 < x <= 12``)."""
    n = _SERIES_TERMS[np.dtype(x.dtype)]
    q = 0.25 * x * x
    term0 = jnp.ones_like(x)
    term1 = jnp.ones_like(x)
    sum0 = jnp.ones_like(x)
    sum1 = jnp.ones_like(x)
    # Terms k and k + 1 share one division: t_k = t_{k-1} q / d_k, t_{k+1} = t_k q / d_{k+1}
    # with 1/d_k = d_{k+1} / (d_k d_{k+1}) (divisions dominate the cost of this loop).
    for k in range(1, n, 2):
        d0a, d0b = k * (v + k), (k + 1) * (v + k + 1.0)
        d1a, d1b = k * (v + 1.0 + k), (k + 1) * (v + k + 2.0)
        inv0 = q / (d0a * d0b)
        inv1 = q / (d1a * d1b)
        term0 = term0 * (inv0 * d0b)
        term1 = term1 * (inv1 * d1b)
        sum0 = sum0 + term0
        sum1 = sum1 + term1
        term0 = term0 * (inv0 * d0a)
        term1 = term1 * (inv1 * d1a)
        sum0 = sum0 + term0
        sum1 = sum1 + term1
    log_half_x = jnp.log(0.5 * x)
    log_i = v * log_half_x - jax.lax.lgamma(v + 1.0) + jnp.log(sum0)
    log_ratio = log_half_x - jnp.log(v + 1.0) + jnp.log(sum1 / sum0)
    return log_i, log_ratio


def recurrence_log_iv(v: Array, x: Array) -> tuple[Array, Array]:
    r"""(:math:`\log I_v(x)`, :math:`\log(I_{v+1}/I_v)`): Debye at order ``v + n`` (``n`` the
    least integer with ``v + n >= 20``; ``n = 0`` for ``v >= 20``), then ``n`` backward steps."""
    n = jnp.maximum(jnp.ceil(NU_MIN - v), 0.0)
    nu = v + n
    log_i, log_ratio = debye_log_iv(nu, x)
    ratio = jnp.exp(log_ratio)
    two_over_x = 2.0 / x

    def step(j, state):
        prod, ratio = state
        active = j < n
        mu = nu - j  # the current order; one step gives the order mu - 1
        new_ratio = 1.0 / (mu * two_over_x + ratio)
        return jnp.where(active, prod * new_ratio, prod), jnp.where(active, new_ratio, ratio)

    # prod = I_nu / I_v, a product of ratios I_mu / I_{mu-1} = 1 / (2 mu / x + rho_mu) that
    # exceed x / (2 mu + x) > 0.2 for x > 12 (the only x this path serves for v < 20): 20 of
    # them cannot underflow, even in float32, and one log replaces 20.
    one = jnp.ones_like(x)
    prod, ratio = jax.lax.fori_loop(0, int(NU_MIN), step, (one, ratio), unroll=False)
    return log_i - jnp.log(prod), jnp.where(n > 0, jnp.log(ratio), log_ratio)


def _log_cosh(a: Array) -> Array:
    a = jnp.abs(a)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - math.log(2.0)


def _trapezoid_log_kv(mu0: Array, x: Array) -> tuple[Array, Array]:
    r"""(:math:`\log K_{\mu_0}(x)`, :math:`\log(K_{\mu_0-1}/K_{\mu_0})`) for ``0 <= mu0 < 1``."""
    dt = np.dtype(x.dtype)
    n = _NODES[dt]
    tail = _TAIL[dt]
    t_end = 2.0 * jnp.arcsinh(jnp.sqrt(tail / (2.0 * x)))
    t_end = 2.0 * jnp.arcsinh(jnp.sqrt((tail + t_end) / (2.0 * x)))
    h = jnp.maximum(jnp.minimum(_H_MAX[dt], _H_SQRT[dt] / jnp.sqrt(x)), t_end / (n - 1))
    j = jnp.arange(n, dtype=x.dtype)
    t = h[..., None] * j
    base = -2.0 * x[..., None] * jnp.sinh(0.5 * t) ** 2
    log_w = jnp.where(j == 0, math.log(0.5), 0.0)
    g0 = base + _log_cosh(mu0[..., None] * t) + log_w
    gm = base + _log_cosh((mu0[..., None] - 1.0) * t) + log_w
    lse0 = jax.nn.logsumexp(g0, axis=-1)
    lsem = jax.nn.logsumexp(gm, axis=-1)
    return -x + jnp.log(h) + lse0, lsem - lse0


def small_order_log_kv(v: Array, x: Array) -> tuple[Array, Array]:
    r"""(:math:`\log K_v(x)`, :math:`\log(K_{v-1}/K_v)`) for ``0 <= v < 20`` by the integral at
    ``v - floor(v)`` and ``floor(v)`` forward steps."""
    n = jnp.floor(v)
    mu0 = v - n
    log_k, log_tau = _trapezoid_log_kv(mu0, x)
    tau = jnp.exp(log_tau)

    def step(j, state):
        log_k, tau, log_tau = state
        active = j < n
        mu = mu0 + j
        up = tau + 2.0 * mu / x  # K_{mu+1} / K_mu
        log_up = jnp.log(up)
        return (
            jnp.where(active, log_k + log_up, log_k),
            jnp.where(active, 1.0 / up, tau),
            jnp.where(active, -log_up, log_tau),
        )

    log_k, _, log_tau = jax.lax.fori_loop(0, int(NU_MIN), step, (log_k, tau, log_tau), unroll=False)
    return log_k, log_tau
