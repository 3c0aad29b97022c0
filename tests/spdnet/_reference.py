"""Dense float64 numpy references for the SPD-network tests (independent of geomjax)."""

from __future__ import annotations

import numpy as np
from _spd import random_spd  # noqa: F401  (re-exported for the spdnet tests)


def eig_fn(x, f):
    lam, q = np.linalg.eigh(0.5 * (x + x.T))
    return (q * f(lam)) @ q.T


def sqrtm(x):
    return eig_fn(x, np.sqrt)


def invsqrtm(x):
    return eig_fn(x, lambda t: 1.0 / np.sqrt(t))


def logm(x):
    return eig_fn(x, np.log)


def expm(x):
    return eig_fn(x, np.exp)


def powm(x, p):
    return eig_fn(x, lambda t: t**p)


def aim_dist(x, y):
    r = invsqrtm(x)
    return np.linalg.norm(logm(r @ y @ r))


def aim_mean(xs, iters=200):
    s = expm(np.mean([logm(x) for x in xs], axis=0))
    for _ in range(iters):
        r, ir = sqrtm(s), invsqrtm(s)
        s = r @ expm(np.mean([logm(ir @ x @ ir) for x in xs], axis=0)) @ r
    return 0.5 * (s + s.T)
