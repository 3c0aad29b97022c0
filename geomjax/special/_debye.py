r"""Uniform (Debye) asymptotic expansions of :math:`\log I_\nu(x)` and :math:`\log K_\nu(x)`.

With :math:`z = x/\nu`, :math:`s = \sqrt{\nu^2 + x^2}`, :math:`t = \nu / s` and
:math:`g(\nu, x) = s + \nu \log\frac{x}{\nu + s}` (that is, :math:`\nu\eta(z)`),

.. math::

    \log I_\nu(x) = g - \tfrac12 \log(2\pi) - \tfrac14 \log(\nu^2 + x^2)
        + \log \sum_{k} \frac{u_k(t)}{\nu^k}, \qquad
    \log K_\nu(x) = -g + \tfrac12 \log\tfrac{\pi}{2} - \tfrac14 \log(\nu^2 + x^2)
        + \log \sum_{k} (-1)^k \frac{u_k(t)}{\nu^k},

uniformly in :math:`x > 0` as :math:`\nu \to \infty` (DLMF 10.41.3-4). The Debye polynomials
follow from :math:`u_0 = 1` and
:math:`u_{k+1}(t) = \tfrac12 t^2 (1-t^2) u_k'(t) + \tfrac18 \int_0^t (1 - 5 s^2) u_k(s)\,ds`
(DLMF 10.41.9); they are generated here in exact rational arithmetic at import. 13 terms give
float64 accuracy (below 1e-15 relative) for :math:`\nu \ge 20` (checked against mpmath when
this module was written; the tests check it again).

The log-ratios of neighbouring orders, :math:`\log(I_{\nu+1}/I_\nu)` and
:math:`\log(K_{\nu-1}/K_\nu)`, are formed from differences that are computed without
cancellation (:math:`s_1 - s_0 = (2\nu+1)/(s_1+s_0)`, a ``log1p`` for the ratio of the
:math:`\log(\nu + s)` terms), so they are accurate to the dtype's epsilon in absolute terms even
where :math:`\log I_\nu(x) \approx x` is huge.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np

from geomjax._core import Array

# Number of Debye terms by dtype, and the order from which the expansion is used directly.
N_TERMS = {np.dtype(np.float64): 13, np.dtype(np.float32): 8}
NU_MIN = 20.0
# Python floats (weakly typed): numpy float64 scalars would promote float32 inputs under x64.
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_HALF_PI = 0.5 * math.log(0.5 * math.pi)


def _debye_polynomials(n: int) -> list[list[Fraction]]:
    """Coefficients (ascending powers of t) of u_0, ..., u_{n-1} in exact arithmetic."""
    polys = [[Fraction(1)]]
    for _ in range(n - 1):
        u = polys[-1]
        du = [i * c for i, c in enumerate(u)][1:] or [Fraction(0)]
        out = [Fraction(0)] * (len(u) + 4)
        for i, c in enumerate(du):  # t^2 (1 - t^2) u'(t) / 2
            out[i + 2] += c / 2
            out[i + 4] -= c / 2
        for i, c in enumerate(u):  # (1/8) int_0^t (1 - 5 s^2) u(s) ds
            out[i + 1] += c / (8 * (i + 1))
            out[i + 3] -= 5 * c / (8 * (i + 3))
        while len(out) > 1 and out[-1] == 0:
            out.pop()
        polys.append(out)
    return polys


def _coefficients_in_p(n: int) -> list[np.ndarray]:
    """u_k(t) = t^k Q_k(t^2): coefficients of Q_k in descending powers of p = t^2 (float64)."""
    out = []
    for k, u in enumerate(_debye_polynomials(n)):
        q = [float(u[k + 2 * j]) if k + 2 * j < len(u) else 0.0 for j in range(k + 1)]
        assert all(u[i] == 0 for i in range(len(u)) if (i - k) % 2 or i < k)
        out.append(np.asarray(q[::-1], np.float64))
    return out


_Q = _coefficients_in_p(max(N_TERMS.values()))


def debye_sum(nu: Array, t: Array, sign: float) -> Array:
    r""":math:`\sum_k (\mathrm{sign}\cdot t/\nu)^k Q_k(t^2)`, the Debye series (``sign=-1``: K)."""
    n = N_TERMS[np.dtype(nu.dtype)]
    p = t * t
    w = sign * t / nu
    total = jnp.zeros_like(nu)
    for k in range(n - 1, -1, -1):  # Horner in w over k, Horner in p inside each Q_k
        q = jnp.full_like(p, float(_Q[k][0]))
        for c in _Q[k][1:].tolist():
            q = q * p + c
        total = total * w + q
    return total


def _g(nu: Array, x: Array, s: Array) -> Array:
    """g = s + nu log(x / (nu + s)).

    The log of the quotient (error ~2 eps) rather than ``log x - log(nu + s)`` (error ~eps
    times |log x| + |log(nu + s)|, up to 15 eps): ``nu`` times it is the error of ``g``, which
    matters where ``g`` is small next to ``nu`` (log I_v(x) near zero for large v). The
    difference of logs is kept where the quotient would be subnormal.
    """
    den = nu + s
    quotient = x / den
    normal = quotient > jnp.finfo(x.dtype).tiny
    log_q = jnp.where(normal, jnp.log(jnp.where(normal, quotient, 1.0)), jnp.log(x) - jnp.log(den))
    return s + nu * log_q


def _delta_g(nu: Array, x: Array, s0: Array, s1: Array) -> Array:
    """g(nu + 1, x) - g(nu, x) without cancellation (s0 = s(nu), s1 = s(nu + 1))."""
    ds = (2.0 * nu + 1.0) / (s1 + s0)
    return ds + jnp.log(x) - jnp.log(nu + 1.0 + s1) - nu * jnp.log1p((1.0 + ds) / (nu + s0))


def _quarter_log_step(nu: Array, s0: Array) -> Array:
    """(1/4) log(((nu + 1)^2 + x^2) / (nu^2 + x^2))."""
    return 0.25 * jnp.log1p(((2.0 * nu + 1.0) / s0) / s0)


def debye_log_iv(nu: Array, x: Array) -> tuple[Array, Array]:
    r"""(:math:`\log I_\nu(x)`, :math:`\log(I_{\nu+1}(x)/I_\nu(x))`) for ``nu >= NU_MIN``, ``x > 0``."""
    s0 = jnp.hypot(nu, x)
    s1 = jnp.hypot(nu + 1.0, x)
    sum0 = debye_sum(nu, nu / s0, 1.0)
    sum1 = debye_sum(nu + 1.0, (nu + 1.0) / s1, 1.0)
    log_i = _g(nu, x, s0) - _HALF_LOG_2PI - 0.5 * jnp.log(s0) + jnp.log(sum0)
    log_ratio = _delta_g(nu, x, s0, s1) - _quarter_log_step(nu, s0) + jnp.log(sum1 / sum0)
    return log_i, log_ratio


def debye_log_kv(nu: Array, x: Array) -> tuple[Array, Array]:
    r"""(:math:`\log K_\nu(x)`, :math:`\log(K_{\nu-1}(x)/K_\nu(x))`) for ``nu >= NU_MIN``, ``x > 0``."""
    nm = nu - 1.0
    s0 = jnp.hypot(nu, x)
    sm = jnp.hypot(nm, x)
    sum0 = debye_sum(nu, nu / s0, -1.0)
    summ = debye_sum(nm, nm / sm, -1.0)
    log_k = -_g(nu, x, s0) + _HALF_LOG_HALF_PI - 0.5 * jnp.log(s0) + jnp.log(sum0)
    log_ratio = _delta_g(nm, x, sm, s0) + _quarter_log_step(nm, sm) + jnp.log(summ / sum0)
    return log_k, log_ratio
