"""SPD matrices with the log-Cholesky metric (Lin, 2019)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.manifolds._mean import FrechetMeanResult
from geomjax.manifolds._spd_common import (
    SPDBase,
    check_iter,
    check_n,
    check_stack,
    closed_form_mean,
    sym,
)


def _strict_lower(a: Array) -> Array:
    return jnp.tril(a, -1)


def _diag(a: Array) -> Array:
    return jnp.diagonal(a, axis1=-2, axis2=-1)


def _half(s: Array) -> Array:
    """Strictly lower part plus half the diagonal: ``(S)_1/2``."""
    return _strict_lower(s) + 0.5 * jnp.diag(_diag(s))


def _chol_tangent(chol: Array, u: Array) -> Array:
    """Tangent of the Cholesky factor: ``dL = L (L^{-1} U L^{-T})_1/2`` for ``dX = U``."""
    left = jax.scipy.linalg.solve_triangular(chol, u, lower=True)
    w = jax.scipy.linalg.solve_triangular(chol, left.T, lower=True)
    return chol @ _half(sym(w))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SPDLogCholesky(SPDBase):
    r"""SPD matrices with the log-Cholesky metric: the pullback, through the Cholesky factor
    :math:`X = L L^\top`, of a flat metric on lower-triangular matrices with positive diagonal.

    With :math:`\lfloor L\rfloor` the strictly lower part and :math:`\mathbb D(L)` the diagonal,
    and :math:`A = dL` the Cholesky tangent of :math:`U = dX`
    (:math:`A = L (L^{-1} U L^{-\top})_{1/2}`, with :math:`(S)_{1/2}` the strictly lower part
    plus half the diagonal):

    .. math::

        \langle U, V\rangle_X = \langle \lfloor A_U\rfloor, \lfloor A_V\rfloor\rangle_F
          + \langle \mathbb D(L)^{-1}\mathbb D(A_U), \mathbb D(L)^{-1}\mathbb D(A_V)\rangle_F,

        d(X, Y)^2 = \|\lfloor L\rfloor - \lfloor K\rfloor\|_F^2
                  + \|\log \mathbb D(L) - \log \mathbb D(K)\|_F^2 \quad (Y = K K^\top),

        \exp_X(U) = K K^\top,\;
        K = \lfloor L\rfloor + \lfloor A\rfloor + \mathbb D(L) \exp(\mathbb D(A) \mathbb D(L)^{-1}).

    ``log`` inverts ``exp`` in closed form, ``transp`` is the parallel transport
    (:math:`A \mapsto \lfloor A\rfloor + \mathbb D(K) \mathbb D(L)^{-1} \mathbb D(A)`, mapped back
    to ``U``), and the mean is the closed form: the weighted mean of the strictly lower parts and
    the weighted geometric mean of the diagonals. No eigendecomposition is needed, so everything
    is smooth at repeated eigenvalues.

    Args:
      n: matrix size.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import SPDLogCholesky
      >>> m = SPDLogCholesky(2)
      >>> round(float(m.dist(jnp.eye(2), jnp.diag(jnp.array([jnp.e ** 2, 1.0])))), 5)
      1.0

    References:
      Z. Lin, "Riemannian geometry of symmetric positive definite matrices via Cholesky
      decomposition", SIAM J. Matrix Anal. Appl. 40(4), 2019, arXiv:1908.09326.
    """

    n: int = dataclasses.field(metadata=dict(static=True))

    def __post_init__(self):
        check_n("SPDLogCholesky", self.n)

    def _chol_inner(self, chol: Array, a: Array, b: Array) -> Array:
        d = _diag(chol)
        return jnp.sum(_strict_lower(a) * _strict_lower(b)) + jnp.sum(_diag(a) * _diag(b) / d**2)

    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        chol = jnp.linalg.cholesky(jnp.asarray(x))
        return self._chol_inner(
            chol, _chol_tangent(chol, jnp.asarray(u)), _chol_tangent(chol, jnp.asarray(v))
        )

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        # <G, L A^T + A L^T>_F = <2 G L, A>_F; match it with the metric on A.
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        chol = jnp.linalg.cholesky(jnp.asarray(x))
        gl = 2.0 * sym(jnp.asarray(g)) @ chol
        b = _strict_lower(gl) + jnp.diag(_diag(chol) ** 2 * _diag(gl))
        return sym(chol @ b.T + b @ chol.T)

    def _exp_chol(self, chol: Array, a: Array) -> Array:
        d = _diag(chol)
        return _strict_lower(chol) + _strict_lower(a) + jnp.diag(d * jnp.exp(_diag(a) / d))

    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        chol = jnp.linalg.cholesky(jnp.asarray(x))
        k = self._exp_chol(chol, _chol_tangent(chol, jnp.asarray(u)))
        return sym(k @ k.T)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        chol = jnp.linalg.cholesky(jnp.asarray(x))
        k = jnp.linalg.cholesky(jnp.asarray(y))
        d = _diag(chol)
        a = _strict_lower(k) - _strict_lower(chol) + jnp.diag(d * (jnp.log(_diag(k)) - jnp.log(d)))
        return sym(chol @ a.T + a @ chol.T)

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("dist", x=x, y=y)
        chol = jnp.linalg.cholesky(jnp.asarray(x))
        k = jnp.linalg.cholesky(jnp.asarray(y))
        sq = jnp.sum((_strict_lower(chol) - _strict_lower(k)) ** 2) + jnp.sum(
            (jnp.log(_diag(chol)) - jnp.log(_diag(k))) ** 2
        )
        zero = sq <= 0
        return jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, sq)))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        x, y, u = self._args("transp", x=x, y=y, u=u)
        chol = jnp.linalg.cholesky(jnp.asarray(x))
        k = jnp.linalg.cholesky(jnp.asarray(y))
        a = _chol_tangent(chol, jnp.asarray(u))
        b = _strict_lower(a) + jnp.diag(_diag(k) / _diag(chol) * _diag(a))
        return sym(k @ b.T + b @ k.T)

    def mean(
        self,
        points: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iter: int = 30,
        tol: float | None = None,
    ) -> FrechetMeanResult:
        r"""Closed-form log-Cholesky mean: :math:`K = \sum_i w_i \lfloor L_i\rfloor
        + \exp(\sum_i w_i \log \mathbb D(L_i))`, mean :math:`K K^\top` (``n_iters = 0``;
        ``max_iter``/``tol`` are accepted for a uniform signature and ignored)."""
        points, w = check_stack("SPDLogCholesky.mean", points, self.n, weights)
        check_iter("SPDLogCholesky.mean", max_iter, tol, points.dtype)
        chols = jnp.linalg.cholesky(points)
        lower = jnp.tensordot(w, _strict_lower(chols), axes=1)
        logd = jnp.tensordot(w, jnp.log(_diag(chols)), axes=1)
        k = lower + jnp.diag(jnp.exp(logd))
        return closed_form_mean(self, sym(k @ k.T), points, w)
