"""SPD matrices with the log-Euclidean metric."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, match_varying
from geomjax.linalg import expm, logm
from geomjax.manifolds._base import check_time
from geomjax.manifolds._mean import FrechetMeanResult
from geomjax.manifolds._spd_common import (
    SPDBase,
    check_iter,
    check_n,
    check_stack,
    closed_form_mean,
    sym,
)


def _dlog(x: Array, u: Array) -> Array:
    """Frechet derivative ``D log(X)[U]`` (Daleckii-Krein, through the stable ``logm`` JVP)."""
    u = sym(u)
    return jax.jvp(logm, (match_varying(x, u),), (u,))[1]


def _dexp(s: Array, v: Array) -> Array:
    """Frechet derivative ``D exp(S)[V]``, the inverse of ``D log(exp S)``."""
    v = sym(v)
    return jax.jvp(expm, (match_varying(s, v),), (v,))[1]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SPDLogEuclidean(SPDBase):
    r"""SPD matrices with the log-Euclidean metric (the pullback of the Frobenius metric by log).

    .. math::

        \langle U, V\rangle_X = \langle D\log_X[U],\, D\log_X[V]\rangle_F, \qquad
        d(X, Y) = \|\log X - \log Y\|_F,

        \exp_X(U) = \exp(\log X + D\log_X[U]), \qquad
        \log_X(Y) = D\exp_{\log X}[\log Y - \log X],

        \Gamma_{X \to Y}(U) = D\exp_{\log Y}\big[D\log_X[U]\big].

    The space is flat: ``transp`` is the (path-independent) parallel transport, and the mean is
    the closed form :math:`\exp(\sum_i w_i \log X_i)`. Frechet derivatives of ``log``/``exp``
    are the Daleckii-Krein formulas of :mod:`geomjax.linalg` (finite at repeated eigenvalues).
    ``egrad_to_rgrad(X, G) = D\exp_{\log X}[D\exp_{\log X}[\mathrm{sym}\, G]]`` (both maps are
    self-adjoint for the Frobenius product).

    Args:
      n: matrix size.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import SPDLogEuclidean
      >>> m = SPDLogEuclidean(2)
      >>> round(float(m.dist(jnp.eye(2), jnp.diag(jnp.array([jnp.e, 1.0])))), 5)
      1.0

    References:
      V. Arsigny, P. Fillard, X. Pennec, N. Ayache, "Geometric means in a novel vector space
      structure on symmetric positive-definite matrices", SIAM J. Matrix Anal. Appl. 29(1), 2007.
    """

    n: int = dataclasses.field(metadata=dict(static=True))

    def __post_init__(self):
        check_n("SPDLogEuclidean", self.n)

    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return jnp.sum(_dlog(x, jnp.asarray(u)) * _dlog(x, jnp.asarray(v)))

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        lx = logm(jnp.asarray(x))
        return _dexp(lx, _dexp(lx, jnp.asarray(g)))

    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        return expm(logm(x) + _dlog(x, jnp.asarray(u)))

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        lx = logm(jnp.asarray(x))
        return _dexp(lx, logm(jnp.asarray(y)) - lx)

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("dist", x=x, y=y)
        sq = jnp.sum((logm(jnp.asarray(x)) - logm(jnp.asarray(y))) ** 2)
        zero = sq <= 0
        return jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, sq)))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        x, y, u = self._args("transp", x=x, y=y, u=u)
        return _dexp(logm(jnp.asarray(y)), _dlog(jnp.asarray(x), jnp.asarray(u)))

    def geodesic(self, x: ArrayLike, y: ArrayLike, t: ArrayLike) -> Array:
        x, y = self._args("geodesic", x=x, y=y)
        t = check_time("SPDLogEuclidean.geodesic", t)
        lx, ly = logm(jnp.asarray(x)), logm(jnp.asarray(y))
        return expm(lx + jnp.asarray(t) * (ly - lx))

    def mean(
        self,
        points: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iter: int = 30,
        tol: float | None = None,
    ) -> FrechetMeanResult:
        r"""Closed-form log-Euclidean mean :math:`\exp(\sum_i w_i \log X_i)` (``n_iters = 0``;
        ``max_iter``/``tol`` are accepted for a uniform signature and ignored)."""
        points, w = check_stack("SPDLogEuclidean.mean", points, self.n, weights)
        check_iter("SPDLogEuclidean.mean", max_iter, tol, points.dtype)
        mean = expm(jnp.tensordot(w, logm(points), axes=1))
        return closed_form_mean(self, mean, points, w)
