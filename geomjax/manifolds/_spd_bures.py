"""SPD matrices with the Bures-Wasserstein metric and its generalization with a metric matrix M."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import (
    Array,
    ArrayLike,
    as_float_array,
    check_square,
    full_precision,
    match_varying,
)
from geomjax.linalg import invsqrtm, nuclear_norm, solve_lyapunov, sqrtm
from geomjax.manifolds._base import check_float_dtype, svd_or_nan
from geomjax.manifolds._mean import FrechetMeanResult
from geomjax.manifolds._spd_common import (
    SPDBase,
    check_iter,
    check_n,
    check_stack,
    fixed_point_mean,
    lift_spectrum,
    sym,
)


def _shifted_cholesky(a: Array) -> Array:
    """Cholesky factor of ``A + n eps max(diag A) I``.

    The shift (relative size ``n eps``) lets the factorization succeed in float32 at any
    condition number (it fails from cond ~1e7 unshifted) and moves the BW distance by less than
    ~3e-5 relative in float32 (measured at cond 1e2..1e8) and ~1e-14 in float64. Both arguments
    of a distance get the same kind of shift, so ``d(A, A) = 0`` still holds exactly.
    """
    n = a.shape[-1]
    finfo = jnp.finfo(a.dtype)
    # Floored at the smallest normal number: the zero matrix (a valid PSD covariance, a point
    # mass) factors as sqrt(tiny) I instead of failing (NaN); no other matrix is affected.
    shift = jnp.maximum(n * finfo.eps * jnp.max(jnp.diagonal(a)), finfo.tiny)
    return jnp.linalg.cholesky(a + shift * jnp.eye(n, dtype=a.dtype))


def _sqdist_value(a: Array, b: Array) -> Array:
    """``min_Q ||L_A - L_B Q||_F^2`` (orthogonal Procrustes on Cholesky factors): two Cholesky
    factorizations and one SVD, no eigendecomposition, no cancellation between traces."""
    la, lb = _shifted_cholesky(a), _shifted_cholesky(b)
    u, _, vt = svd_or_nan(lb.T @ la)  # NaN, not a LAPACK hang, for non-finite input
    return jnp.sum((la - lb @ (u @ vt)) ** 2)


def _sqdist_smooth(a: Array, b: Array) -> Array:
    """``tr A + tr B - 2 ||B^{1/2} A^{1/2}||_*`` with eigh-based square roots of the matrices with
    their spectra lifted above round-off (:func:`lift_spectrum`): the derivative path."""
    ra, rb = sqrtm(lift_spectrum(a)), sqrtm(lift_spectrum(b))
    return jnp.trace(a) + jnp.trace(b) - 2.0 * nuclear_norm(rb @ ra)


@jax.custom_jvp
def _sqdist(a: Array, b: Array) -> Array:
    return _sqdist_value(a, b)


@_sqdist.defjvp
def _sqdist_jvp(primals, tangents):
    a, b = primals
    _, tangent = jax.jvp(_sqdist_smooth, primals, tangents)
    # Calling `_sqdist` (not `_sqdist_value`) keeps the rule differentiable to second order.
    return match_varying(_sqdist(a, b), tangent), tangent


@full_precision
def bures_wasserstein_sqdist(a: ArrayLike, b: ArrayLike) -> Array:
    r"""Squared Bures-Wasserstein distance between SPD matrices (the Bures term of W2 between
    Gaussians), accurate at coincident and ill-conditioned matrices.

    .. math::

        d^2(A, B) = \operatorname{tr} A + \operatorname{tr} B
                  - 2 \operatorname{tr}\big(A^{1/2} B A^{1/2}\big)^{1/2}
                  = \min_{Q \in O(n)} \|L_A - L_B Q\|_F^2 ,

    for any factors :math:`A = L_A L_A^\top`, :math:`B = L_B L_B^\top` (the fidelity is the
    nuclear norm of :math:`L_B^\top L_A`). The value is the second form with Cholesky factors and
    :math:`Q` the orthogonal polar factor of :math:`L_B^\top L_A` (no cancellation between
    traces, so ``d(A, A)`` is at round-off level instead of
    :math:`\sqrt{\epsilon\, \operatorname{tr} A}`; no eigendecomposition). The factors are of
    :math:`A + n\epsilon \max_i A_{ii}\, I`, so the factorization succeeds in float32 up to
    condition numbers ~1e8 and beyond (relative error of the distance below ~3e-5 in float32,
    ~1e-14 in float64). Derivatives (a ``custom_jvp``; the primal computes only the value) are
    those of the first form with the fidelity as :func:`~geomjax.linalg.nuclear_norm` of
    :math:`B^{1/2}A^{1/2}` (eigh-based square roots): exact first and second derivatives, finite
    at repeated eigenvalues.

    Args:
      a, b: SPD matrices, shape ``(n, n)``.

    Returns:
      Scalar :math:`d^2 \ge 0`.

    Input domain: ``a`` and ``b`` are assumed symmetric (the value reads their lower triangles);
    an indefinite matrix, or a NaN or infinite entry, gives NaN.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import bures_wasserstein_sqdist
      >>> round(float(bures_wasserstein_sqdist(jnp.eye(2), 4.0 * jnp.eye(2))), 5)  # 2 (2 - 1)^2
      2.0

    References:
      R. Bhatia, T. Jain, Y. Lim, "On the Bures-Wasserstein distance between positive definite
      matrices", Expositiones Mathematicae 37(2), 2019, arXiv:1712.01504.
    """
    fn = "bures_wasserstein_sqdist"
    a = as_float_array(fn, "a", a)
    b = as_float_array(fn, "b", b)
    check_square(fn, "a", a)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"{fn}: arguments `a` and `b` must both have shape (n, n); got {a.shape} and {b.shape}"
        )
    return _sqdist(a, b)


def _sqrt_or_zero(sq: Array, scale: Array) -> Array:
    """``sqrt(sq)``, and 0 with a zero gradient when ``sq`` is at round-off level of ``scale``."""
    floor = (8.0 * jnp.finfo(sq.dtype).eps) ** 2 * scale
    small = sq <= floor
    return jnp.where(small, 0.0, jnp.sqrt(jnp.where(small, 1.0, sq)))


@functools.lru_cache(maxsize=16)
def _sym_basis(n: int) -> np.ndarray:
    """Orthonormal basis of symmetric n x n matrices as an ``(m, n, n)`` array, m = n(n+1)/2."""
    rows, cols = np.triu_indices(n)
    basis = np.zeros((rows.size, n, n))
    off = rows != cols
    basis[np.arange(rows.size), rows, cols] = np.where(off, np.sqrt(0.5), 1.0)
    basis[np.arange(rows.size), cols, rows] = np.where(off, np.sqrt(0.5), 1.0)
    return basis


def _lyapunov_operator(x: Array) -> Array:
    """Matrix ``(m, m)`` of ``K -> X K + K X`` on symmetric matrices (orthonormal basis)."""
    e = jnp.asarray(_sym_basis(x.shape[-1]), x.dtype)
    images = jnp.einsum("ij,bjk->bik", x, e)
    images = images + jnp.swapaxes(images, -1, -2)
    return sym(jnp.einsum("aij,bij->ab", e, images))


def _apply_in_basis(op: Array, v: Array) -> Array:
    e = jnp.asarray(_sym_basis(v.shape[-1]), v.dtype)
    coeff = jnp.einsum("aij,ij->a", e, sym(v))
    return jnp.einsum("a,aij->ij", op @ coeff, e)


def _transport_to_identity(x: Array, u: Array) -> Array:
    """``sqrt(2) L_X^{-1/2}[U]``: the BW parallel transport from ``X`` to ``I``."""
    return jnp.sqrt(2.0) * _apply_in_basis(invsqrtm(_lyapunov_operator(x)), u)


def _transport_from_identity(y: Array, w: Array) -> Array:
    """``L_Y^{1/2}[W] / sqrt(2)``: the BW parallel transport from ``I`` to ``Y``."""
    return _apply_in_basis(sqrtm(_lyapunov_operator(y)), w) / jnp.sqrt(2.0)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SPDBuresWasserstein(SPDBase):
    r"""SPD matrices with the Bures-Wasserstein metric (the Wasserstein-2 geometry of centred
    Gaussians).

    With :math:`\mathcal L_X[U]` the solution :math:`K` of :math:`X K + K X = U`
    (:func:`~geomjax.linalg.solve_lyapunov`):

    .. math::

        \langle U, V\rangle_X = \tfrac12 \operatorname{tr}(\mathcal L_X[U]\, V), \qquad
        d^2(X, Y) = \operatorname{tr} X + \operatorname{tr} Y
                  - 2 \operatorname{tr}(X^{1/2} Y X^{1/2})^{1/2},

        \exp_X(U) = X + U + \mathcal L_X[U]\, X\, \mathcal L_X[U], \qquad
        \log_X(Y) = (X Y)^{1/2} + (Y X)^{1/2} - 2 X .

    ``exp`` is defined while :math:`I + \mathcal L_X[U]` stays positive definite (the
    injectivity domain). The distance is :func:`bures_wasserstein_sqdist` (accurate at
    coincident points; treated as 0, with zero gradient, below ``8 eps sqrt(tr X + tr Y)``).

    ``transp`` goes through the identity: :math:`\Gamma_{X\to I} = \sqrt2\,\mathcal L_X^{-1/2}`
    and :math:`\Gamma_{I\to Y} = \mathcal L_Y^{1/2}/\sqrt2` (in the eigenbasis of ``X`` they
    multiply entry ``(i, j)`` by :math:`\sqrt{2/(\lambda_i+\lambda_j)}`). Each is the parallel
    transport along the geodesic (the identity commutes with every point), and their composition
    is an isometric vector transport; it equals the parallel transport from ``X`` to ``Y`` when
    ``X`` and ``Y`` commute. It is what Riemannian batch normalization uses. The operator square
    roots are taken of the ``m x m`` matrix of :math:`\mathcal L_X` on symmetric matrices
    (``m = n(n+1)/2``), so their derivatives stay finite at repeated eigenvalues; the cost is an
    ``m x m`` eigendecomposition (fine for the n <= 32 of SPD networks).

    ``mean`` is the fixed-point iteration of Alvarez-Esteban et al.

    Args:
      n: matrix size.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import SPDBuresWasserstein
      >>> m = SPDBuresWasserstein(2)
      >>> round(float(m.dist(jnp.eye(2), 4.0 * jnp.eye(2))), 5)  # sqrt(2)
      1.41421

    References:
      R. Bhatia, T. Jain, Y. Lim, "On the Bures-Wasserstein distance between positive definite
      matrices", Expositiones Mathematicae 37(2), 2019, arXiv:1712.01504.
      L. Malago, L. Montrucchio, G. Pistone, "Wasserstein Riemannian geometry of Gaussian
      densities", Information Geometry 1, 2018, arXiv:1801.09269.
      Y. Thanwerdas, X. Pennec, "O(n)-invariant Riemannian metrics on SPD matrices", Linear
      Algebra and its Applications 661, 2023, arXiv:2109.05768 (parallel transport between
      commuting matrices).
    """

    n: int = dataclasses.field(metadata=dict(static=True))

    def __post_init__(self):
        check_n("SPDBuresWasserstein", self.n)

    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        k = solve_lyapunov(jnp.asarray(x), sym(jnp.asarray(u)))
        return 0.5 * jnp.sum(k * sym(jnp.asarray(v)))

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        # <G, V>_F = 1/2 tr(L_X[U] V) for all V  <=>  U = 2 (X G + G X).
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        g = sym(g)
        return 2.0 * sym(x @ g + g @ x)

    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        u = sym(u)
        k = solve_lyapunov(x, u)
        return sym(x + u + k @ x @ k)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        rx, irx = sqrtm(x), invsqrtm(x)
        m = rx @ sqrtm(sym(rx @ y @ rx)) @ irx
        return sym(m + m.T) - 2.0 * x

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("dist", x=x, y=y)
        return _sqrt_or_zero(bures_wasserstein_sqdist(x, y), jnp.trace(x) + jnp.trace(y))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        x, y, u = self._args("transp", x=x, y=y, u=u)
        return _transport_from_identity(y, _transport_to_identity(x, u))

    def mean(
        self,
        points: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iter: int = 30,
        tol: float | None = None,
    ) -> FrechetMeanResult:
        r"""Bures-Wasserstein barycenter by the fixed-point iteration

        .. math::

            S \leftarrow S^{-1/2} \Big(\sum_i w_i (S^{1/2} X_i S^{1/2})^{1/2}\Big)^2 S^{-1/2},

        (a step that does not decrease the gradient norm is rejected and the next one taken at half
        the length along the geodesic, see ``fixed_point_mean``), started from
        the arithmetic mean and run for ``max_iter`` masked steps (frozen once the
        Riemannian norm of :math:`\sum_i w_i \log_S X_i` is ``<= tol``), so it is differentiable
        in forward and reverse mode.

        References:
          P. C. Alvarez-Esteban, E. del Barrio, J. A. Cuesta-Albertos, C. Matran, "A fixed-point
          approach to barycenters in Wasserstein space", J. Math. Anal. Appl. 441(2), 2016,
          arXiv:1511.05355.
        """
        fn = "SPDBuresWasserstein.mean"
        points, w = check_stack(fn, points, self.n, weights)
        max_iter, tol = check_iter(fn, max_iter, tol, points.dtype)
        init = jnp.tensordot(w, points, axes=1)

        eye = jnp.eye(self.n, dtype=points.dtype)

        def evaluate(s):
            # sum_i w_i log_S(X_i) = T S + S T - 2 S with the transport map
            # T = S^-1/2 (sum_i w_i (S^1/2 X_i S^1/2)^1/2) S^-1/2.
            rs, irs = sqrtm(s), invsqrtm(s)
            roots = sqrtm(sym(jnp.einsum("ij,kjl,lm->kim", rs, points, rs)))
            tmap = sym(irs @ jnp.tensordot(w, roots, axes=1) @ irs)
            v = sym(tmap @ s + s @ tmap) - 2.0 * s
            return jnp.sqrt(jnp.maximum(self.inner(s, v, v), 0.0)), tmap

        def update(s, tmap, t):
            # exp_S(t V) = M S M with M = I + t (T - I); t = 1 is the fixed-point step T S T.
            step = eye + t * (tmap - eye)
            return sym(step @ s @ step)

        return fixed_point_mean(evaluate, update, init, max_iter, tol)


def _check_metric_matrix(cls: str, m):
    """Validate a concrete metric matrix (tracers and pytree placeholders pass through)."""
    if isinstance(m, (str, bytes, bool, int, float, complex)):
        raise TypeError(
            f"{cls}: argument `M` must be an SPD matrix of shape (n, n); got {type(m).__name__}"
        )
    if isinstance(m, (list, tuple)):
        m = np.asarray(m)
    if isinstance(m, (np.ndarray, jax.Array)) and not isinstance(m, jax.core.Tracer):
        m = as_float_array(cls, "M", m)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
            raise ValueError(
                f"{cls}: argument `M` must be an SPD matrix of shape (n, n); got shape {m.shape}"
            )
    return m


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SPDGeneralizedBuresWasserstein(SPDBase):
    r"""SPD matrices with the generalized Bures-Wasserstein metric of an SPD matrix ``M``.

    With :math:`\mathcal L_{X,M}[U]` the solution :math:`K` of :math:`X K M + M K X = U`:

    .. math::

        \langle U, V\rangle_X = \tfrac12 \operatorname{tr}(\mathcal L_{X,M}[U]\, V), \qquad
        d^2(X, Y) = \operatorname{tr}(M^{-1}X) + \operatorname{tr}(M^{-1}Y)
           - 2 \operatorname{tr}\big(X^{1/2} M^{-1} Y M^{-1} X^{1/2}\big)^{1/2}.

    It is the Bures-Wasserstein metric after the change of coordinates
    :math:`\phi_M(X) = M^{-1/2} X M^{-1/2}` (``M = I`` gives BW), and every map here is computed
    that way: ``exp``, ``log``, ``transp`` (through ``M``, the image of the identity) and
    ``mean`` are those of :class:`SPDBuresWasserstein` conjugated by :math:`\phi_M`. ``M`` is an
    array leaf: the metric is learnable with ``jax.grad`` (derivatives through
    :func:`~geomjax.linalg.invsqrtm`, finite at ``M = I``).

    Args:
      M: SPD metric matrix, shape ``(n, n)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import SPDGeneralizedBuresWasserstein
      >>> m = SPDGeneralizedBuresWasserstein(4.0 * jnp.eye(2))
      >>> round(float(m.dist(jnp.eye(2), 4.0 * jnp.eye(2))), 5)  # BW distance / 2
      0.70711

    References:
      A. Han, B. Mishra, P. Jawanpuria, J. Gao, "Learning with symmetric positive definite
      matrices via generalized Bures-Wasserstein geometry", GSI 2023, arXiv:2110.10464.
      R. Wang, S. Jin, Z. Chen, X. Luo, X.-J. Wu, "Learning to normalize on the SPD manifold
      under Bures-Wasserstein geometry", CVPR 2025, arXiv:2504.00660.
    """

    M: Array

    def __post_init__(self):
        object.__setattr__(
            self, "M", _check_metric_matrix("SPDGeneralizedBuresWasserstein", self.M)
        )

    @property
    def size(self) -> int:
        return int(jnp.shape(self.M)[-1])

    @property
    def n(self) -> int:
        return self.size

    def _bw(self) -> SPDBuresWasserstein:
        return SPDBuresWasserstein(self.size)

    def _phi(self, x: Array) -> Array:
        r = invsqrtm(jnp.asarray(self.M, x.dtype))
        return sym(r @ x @ r)

    def _phi_inv(self, x: Array) -> Array:
        r = sqrtm(jnp.asarray(self.M, x.dtype))
        return sym(r @ x @ r)

    def base_point(self, dtype=jnp.float32) -> Array:
        """``M`` (the image of the identity under the change of coordinates)."""
        check_float_dtype("SPDGeneralizedBuresWasserstein.base_point", dtype)
        return jnp.asarray(self.M, dtype)

    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return self._bw().inner(self._phi(x), self._phi(u), self._phi(v))

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        # <G, V>_F = <G~, phi(V)>_F with G~ = M^1/2 G M^1/2 = phi^{-1}(G).
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        return self._phi_inv(self._bw().egrad_to_rgrad(self._phi(x), self._phi_inv(sym(g))))

    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        return self._phi_inv(self._bw().exp(self._phi(x), self._phi(u)))

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        return self._phi_inv(self._bw().log(self._phi(x), self._phi(y)))

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("dist", x=x, y=y)
        return self._bw().dist(self._phi(x), self._phi(y))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        x, y, u = self._args("transp", x=x, y=y, u=u)
        return self._phi_inv(self._bw().transp(self._phi(x), self._phi(y), self._phi(u)))

    def mean(
        self,
        points: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iter: int = 30,
        tol: float | None = None,
    ) -> FrechetMeanResult:
        """GBW barycenter: the BW fixed point in the coordinates ``phi_M`` (see
        :meth:`SPDBuresWasserstein.mean`)."""
        fn = "SPDGeneralizedBuresWasserstein.mean"
        points, w = check_stack(fn, points, self.size, weights)
        res = self._bw().mean(jax.vmap(self._phi)(points), w, max_iter=max_iter, tol=tol)
        return res._replace(mean=self._phi_inv(res.mean))
