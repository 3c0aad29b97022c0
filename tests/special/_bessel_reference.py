"""Independent mpmath references for log I_v(x) and log K_v(x) at 50 significant digits.

Small orders (v < 50) use ``mpmath.besseli`` / ``mpmath.besselk`` directly. For larger orders
those series become very slow or stop converging where v and x are both large, so positive
integral representations are integrated with ``mpmath.quad`` (tanh-sinh), split around the
integrand's peak and scaled by it (no cancellation, no overflow):

    I_v(x) = (x/2)^v / (sqrt(pi) Gamma(v + 1/2)) int_{-1}^{1} (1 - s^2)^(v - 1/2) e^(x s) ds,
    K_v(x) = int_0^inf exp(-x cosh t) cosh(v t) dt          (DLMF 10.32.2, 10.32.9).

Neither is the algorithm under test (power series, Debye expansion, recurrences).
"""

from __future__ import annotations

import mpmath as mp

DPS = 50
V_DIRECT = 50


def _split(peak, width, lo, hi, ks=(40, 6)):
    pts = [lo]
    for k in ks:
        a = peak - k * width
        if lo < a < hi and a > pts[-1]:
            pts.append(a)
    if lo < peak < hi and peak > pts[-1]:
        pts.append(peak)
    for k in reversed(ks):
        b = peak + k * width
        if pts[-1] < b < hi:
            pts.append(b)
    pts.append(hi)
    return pts


def log_iv(v: float, x: float) -> float:
    with mp.workdps(DPS):
        v, x = mp.mpf(v), mp.mpf(x)
        if v < V_DIRECT:
            return float(mp.log(mp.besseli(v, x)))
        a = v - mp.mpf(1) / 2
        s_star = x / (a + mp.sqrt(a * a + x * x))

        def psi(s):
            return a * mp.log1p(-s * s) + x * s

        p0 = psi(s_star)
        width = (1 - s_star * s_star) / mp.sqrt(2 * a * (1 + s_star * s_star))
        pts = _split(s_star, width, mp.mpf(-1), mp.mpf(1))
        integral = mp.quad(lambda s: mp.exp(psi(s) - p0), pts)
        log_pref = v * mp.log(x / 2) - mp.loggamma(v + mp.mpf(1) / 2) - mp.log(mp.pi) / 2
        return float(log_pref + p0 + mp.log(integral))


def log_kv(v: float, x: float) -> float:
    with mp.workdps(DPS):
        v, x = mp.mpf(v), mp.mpf(x)
        if v < V_DIRECT:
            return float(mp.log(mp.besselk(v, x)))
        t_star = mp.asinh(v / x)

        def phi(t):
            return -x * mp.cosh(t) + v * t

        p0 = phi(t_star)
        width = 1 / mp.sqrt(mp.sqrt(x * x + v * v))
        # Past t* + 40 width the integrand is below exp(-800) of its peak (cosh is convex).
        pts = _split(t_star, width, mp.mpf(0), t_star + 41 * width)
        integral = mp.quad(lambda t: mp.exp(phi(t) - p0) * (1 + mp.exp(-2 * v * t)) / 2, pts)
        return float(p0 + mp.log(integral))
