"""The Grassmann manifold Gr(n, p) of p-dimensional subspaces of R^n, as orthonormal bases.

A point is represented by any ``X`` with ``X^T X = I`` spanning the subspace; tangent vectors
are horizontal lifts ``U`` with ``X^T U = 0`` (the lift at ``X Q`` of the same vector is
``U Q``). Every closed form below is written with spectral functions of small symmetric
``p x p`` matrices (:func:`geomjax.linalg.spectral_fn`) instead of singular value
decompositions, so values and first and second derivatives are finite at repeated principal
angles, zero tangent vectors and ``dist(x, x)``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    eps,
    taylor_threshold,
    where_small,
)
from geomjax.linalg import invsqrtm, spectral_fn
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key, svd_or_nan
from geomjax.manifolds._stiefel import _check_size, _qr_sign_fixed, _sym

# -- scalar functions of lam = s^2, analytic at 0 (Taylor branch below eps ** (1 / order)) ---------


def _series(t: Array, coeffs) -> Array:
    out = jnp.zeros_like(t)
    for c in reversed(coeffs):
        out = out * t + c
    return out


def _cos_sqrt(t: Array) -> Array:
    """``cos(sqrt(t))`` (``cosh(sqrt(-t))`` for ``t < 0``)."""
    coeffs = (1.0, -1 / 2, 1 / 24, -1 / 720, 1 / 40320)

    def large(t):
        s = jnp.sqrt(jnp.abs(t))
        return jnp.where(t > 0, jnp.cos(s), jnp.cosh(s))

    return where_small(t, lambda t: _series(t, coeffs), large, taylor_threshold(t.dtype, 5))


def _sinc_sqrt(t: Array) -> Array:
    """``sin(sqrt(t)) / sqrt(t)`` (``sinh(s) / s`` with ``s = sqrt(-t)`` for ``t < 0``)."""
    coeffs = (1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880)

    def large(t):
        s = jnp.sqrt(jnp.abs(t))
        return jnp.where(t > 0, jnp.sin(s), jnp.sinh(s)) / s

    return where_small(t, lambda t: _series(t, coeffs), large, taylor_threshold(t.dtype, 5))


def _cosm1_sqrt(t: Array) -> Array:
    """``(cos(sqrt(t)) - 1) / t``, written as ``-2 sin(s/2)^2 / t`` against cancellation."""
    coeffs = (-1 / 2, 1 / 24, -1 / 720, 1 / 40320, -1 / 3628800)

    def large(t):
        h = 0.5 * jnp.sqrt(jnp.abs(t))
        return jnp.where(t > 0, -2 * jnp.sin(h) ** 2, 2 * jnp.sinh(h) ** 2) / t

    return where_small(t, lambda t: _series(t, coeffs), large, taylor_threshold(t.dtype, 5))


def _atanc_sqrt(t: Array) -> Array:
    """``atan(sqrt(t)) / sqrt(t)`` for ``t >= 0`` (Gram eigenvalues; tiny negatives: series)."""
    coeffs = (1.0, -1 / 3, 1 / 5, -1 / 7, 1 / 9)

    def large(t):
        s = jnp.sqrt(jnp.abs(t))
        return jnp.arctan(s) / s

    return where_small(t, lambda t: _series(t, coeffs), large, taylor_threshold(t.dtype, 5))


# asin(sqrt(t))^2 = sum_k (4 t)^k / (2 k^2 binom(2k, k)) = t + t^2/3 + 8 t^3/45 + 4 t^4/35 + ...
_ASIN_SQ = (0.0, 1.0, 1 / 3, 8 / 45, 4 / 35)
_ASIN_SQ_D = (1.0, 2 / 3, 8 / 15, 16 / 35)


def _asin_sq(t: Array) -> Array:
    """``asin(sqrt(t))^2``, the squared principal angle with ``sin^2 = t`` (clipped to [0, 1])."""

    def large(t):
        return jnp.arcsin(jnp.sqrt(jnp.clip(t, 0.0, 1.0))) ** 2

    return where_small(t, lambda t: _series(t, _ASIN_SQ), large, taylor_threshold(t.dtype, 4))


def _asin_sq_deriv(t: Array) -> Array:
    """Derivative ``asin(s) / (s sqrt(1 - t))``, ``s = sqrt(t)``, capped near ``t = 1``."""

    def large(t):
        tc = jnp.clip(t, 0.0, 1.0 - eps(t.dtype))
        s = jnp.sqrt(tc)
        return jnp.arcsin(s) / (s * jnp.sqrt(1.0 - tc))

    return where_small(t, lambda t: _series(t, _ASIN_SQ_D), large, taylor_threshold(t.dtype, 4))


_cos_sqrtm = spectral_fn(_cos_sqrt, name="Grassmann.cos_sqrtm")
_sinc_sqrtm = spectral_fn(_sinc_sqrt, name="Grassmann.sinc_sqrtm")
_cosm1_sqrtm = spectral_fn(_cosm1_sqrt, name="Grassmann.cosm1_sqrtm")
_atanc_sqrtm = spectral_fn(_atanc_sqrt, name="Grassmann.atanc_sqrtm")
_asin_sqm = spectral_fn(_asin_sq, _asin_sq_deriv, name="Grassmann.asin_sqm")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Grassmann(Manifold):
    """Grassmann manifold ``Gr(n, p)`` of ``p``-dimensional subspaces of ``R^n``.

    Points are orthonormal bases ``X`` (``n x p``, ``X^T X = I``) of the subspace, tangent
    vectors horizontal ``U`` (``X^T U = 0``) with ``<U, V> = tr(U^T V)``; intrinsic dimension
    ``p (n - p)``. With ``U = W diag(s) V^T`` (thin SVD) and principal angles ``theta_i`` of
    ``(X, Y)``:

    .. math::

        \\operatorname{Exp}_X(U) = X V \\cos(S) V^T + W \\sin(S) V^T
            = X \\cos\\big(\\sqrt{U^T U}\\big) + U \\operatorname{sinc}\\big(\\sqrt{U^T U}\\big),

        \\operatorname{Log}_X(Y) = T \\, \\frac{\\arctan \\sqrt{T^T T}}{\\sqrt{T^T T}}, \\quad
            T = (I - X X^T) Y (X^T Y)^{-1}, \\qquad
        d(X, Y) = \\Big(\\sum_i \\theta_i^2\\Big)^{1/2}
            = \\Big(\\operatorname{tr} \\arcsin^2 \\sqrt{G^T G}\\Big)^{1/2},\\;
            G = (I - X X^T) Y .

    The right-hand sides are the forms implemented (matrix functions of ``p x p`` symmetric
    matrices); they do not depend on the representatives ``X``, ``Y`` chosen.

    Args:
      n: ambient dimension.
      p: subspace dimension, ``1 <= p <= n``.

    Raises:
      ValueError: if ``n``, ``p`` are not ints with ``1 <= p <= n``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.manifolds._grassmann import Grassmann
      >>> gr = Grassmann(3, 1)
      >>> x = jnp.array([[1.0], [0.0], [0.0]])
      >>> y = jnp.array([[1.0], [1.0], [0.0]]) / jnp.sqrt(2.0)  # at angle pi / 4
      >>> float(gr.dist(x, y))
      0.785398...
      >>> u = gr.log(x, -y)  # any basis of the subspace
      >>> z = gr.exp(x, u)
      >>> bool(jnp.allclose(z @ z.T, y @ y.T, atol=1e-6))
      True

    References:
      T. Bendokat, R. Zimmermann and P.-A. Absil, "A Grassmann manifold handbook: basic
      geometry and computational aspects", Adv. Comput. Math. 50, 2024, arXiv 2011.13699.
      A. Edelman, T. A. Arias and S. T. Smith, "The geometry of algorithms with orthogonality
      constraints", SIAM J. Matrix Anal. Appl. 20(2), 1998, arXiv physics/9806030.
      P.-A. Absil, R. Mahony and R. Sepulchre, "Riemannian geometry of Grassmann manifolds
      with a view on algorithmic computation", Acta Appl. Math. 80, 2004.
    """

    n: int = dataclasses.field(metadata=dict(static=True))
    p: int = dataclasses.field(metadata=dict(static=True))

    def __post_init__(self):
        _check_size("Grassmann", self.n, self.p)
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "p", int(self.p))

    # -- shape -----------------------------------------------------------------------------
    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n, self.p)

    @property
    def dim(self) -> int:
        return self.p * (self.n - self.p)

    def _arr(self, fn: str, name: str, a: ArrayLike) -> Array:
        return self._args(fn, **{name: a})

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        """``tr(U^T V)`` of horizontal lifts."""
        self._arr("inner", "x", x)
        return jnp.sum(self._arr("inner", "u", u) * self._arr("inner", "v", v))

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Horizontal projection ``U - X X^T U`` (also the Riemannian gradient map)."""
        x, u = self._arr("proj", "x", x), self._arr("proj", "u", u)
        return u - x @ (x.T @ u)

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Exponential map ``X cos(sqrt(U^T U)) + U sinc(sqrt(U^T U))``.

        Equal to ``X V cos(S) V^T + W sin(S) V^T`` for the thin SVD ``U = W S V^T``, without
        differentiating an SVD: smooth in ``U`` everywhere, ``U = 0`` included.

        Args:
          x: basis, shape ``(n, p)``.
          u: horizontal tangent at ``x``, shape ``(n, p)``.

        Returns:
          An orthonormal basis of ``Exp_x(u)``, shape ``(n, p)`` (the one reached by the
          horizontal geodesic from ``x``).
        """
        x, u = self._arr("exp", "x", x), self._arr("exp", "u", u)
        m = _sym(u.T @ u)
        return x @ _cos_sqrtm(m) + u @ _sinc_sqrtm(m)

    def retr(self, x: ArrayLike, u: ArrayLike) -> Array:
        """QR retraction: the Q factor of ``X + U`` with ``diag(R) >= 0``."""
        x, u = self._arr("retr", "x", x), self._arr("retr", "u", u)
        return _qr_sign_fixed(x + u)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Riemannian logarithm, independent of the basis ``Y`` chosen for the subspace.

        .. math::

            \\operatorname{Log}_X(Y) = T\\, \\frac{\\arctan\\sqrt{T^T T}}{\\sqrt{T^T T}},
            \\qquad T = (I - X X^T)\\, Y\\, (X^T Y)^{-1}
            \\;(= W \\tan(\\Theta) V^T),

        the minimal geodesic's initial velocity, of norm ``dist(x, y)``. At and near the cut
        locus (a principal angle within ``sqrt(eps)`` of ``pi/2``, where ``X^T Y`` is singular
        and the logarithm is not unique), the SVD algorithm of Bendokat, Zimmermann and Absil
        (Procrustes alignment of ``Y``, then ``W arcsin(S) V^T`` from the thin SVD of
        ``(I - X X^T) Y_*``) returns one of the minimal logarithms, with a zero derivative (the
        true derivative does not exist there).

        Args:
          x: basis, shape ``(n, p)``.
          y: basis, shape ``(n, p)``, any representative.

        Returns:
          Horizontal tangent at ``x``, shape ``(n, p)``.
        """
        x, y = self._arr("log", "x", x), self._arr("log", "y", y)
        dtype = jnp.promote_types(x.dtype, y.dtype)
        x, y = x.astype(dtype), y.astype(dtype)
        cos_min = jnp.min(jnp.linalg.svd(jax.lax.stop_gradient(x.T @ y), compute_uv=False))
        near_cut = cos_min < jnp.sqrt(eps(dtype))
        # Generic branch, fed the harmless y = x where the cut-locus branch is taken.
        y_safe = jnp.where(near_cut, x, y)
        m = x.T @ y_safe
        g = y_safe - x @ m
        t = jnp.linalg.solve(m.T, g.T).T
        generic = t @ _atanc_sqrtm(_sym(t.T @ t))
        at_cut = _log_svd(jax.lax.stop_gradient(x), jax.lax.stop_gradient(y))
        return jnp.where(near_cut, at_cut, generic)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """Parallel transport of ``u`` along the minimal geodesic from ``x`` to ``y``.

        With ``D = Log_X(Y) = W S V^T`` (thin SVD) and the endpoint basis
        ``Z = Exp_X(D)``, Edelman, Arias and Smith (eq. 2.68):

        .. math::

            \\tau U = \\big(-X V \\sin(S) W^T + W \\cos(S) W^T + I - W W^T\\big) U
                = U - X \\operatorname{sinc}(\\sqrt{M}) D^T U
                  + D\\, \\frac{\\cos\\sqrt{M} - I}{M} D^T U, \\quad M = D^T D,

        returned as the lift at the given basis ``Y``: ``tau U (Z^T Y)``. It is an isometry
        (``inner`` is preserved) and keeps vectors horizontal at ``y``.

        Args:
          x: basis, shape ``(n, p)``.
          y: basis, shape ``(n, p)``.
          u: horizontal tangent at ``x``, shape ``(n, p)``.

        Returns:
          Horizontal tangent at ``y``, shape ``(n, p)``.
        """
        x, y = self._arr("transp", "x", x), self._arr("transp", "y", y)
        u = self._arr("transp", "u", u)
        d = self.log(x, y)
        m = _sym(d.T @ d)
        sinc_m = _sinc_sqrtm(m)
        z = x @ _cos_sqrtm(m) + d @ sinc_m
        dtu = d.T @ u
        tau_u = u - x @ (sinc_m @ dtu) + d @ (_cosm1_sqrtm(m) @ dtu)
        out = tau_u @ (z.T @ y)
        return out - y @ (y.T @ out)

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Geodesic distance ``sqrt(sum_i theta_i^2)`` over the principal angles.

        .. math::

            d(X, Y)^2 = \\operatorname{tr} \\arcsin^2\\!\\big(\\sqrt{G^T G}\\big),
            \\qquad G = (I - X X^T) Y,

        a spectral function of ``G^T G`` (eigenvalues ``sin^2 theta_i``) with a Taylor branch
        at 0: accurate for small angles (no ``arccos`` of a number near 1), derivatives finite
        at repeated angles. ``d^2`` is smooth except at the cut locus (an angle of ``pi/2``,
        where the derivative is capped at about ``eps^{-1/2}`` instead of infinite); ``d``
        itself is not differentiable at ``x = y`` (like ``|t|`` at 0): below the rounding
        level (``d^2 <= p (8 eps)^2``) exactly 0 and a zero gradient are returned (use
        ``sqdist`` for a smooth square). Near ``pi/2`` the angles carry about half the digits
        (an angle within ``delta`` of ``pi/2`` has absolute error about ``eps / delta``): use
        ``principal_angles`` for accurate values there.

        Args:
          x: basis, shape ``(n, p)``.
          y: basis, shape ``(n, p)``.

        Returns:
          Scalar distance.
        """
        x, y = self._args("dist", x=x, y=y)
        sq = self.sqdist(x, y)
        # Below the rounding level of G (entries ~ eps) the distance is noise: return exactly 0
        # there, with a zero gradient instead of a unit-size one in a random direction.
        pos = sq > self.p * (8 * eps(sq.dtype)) ** 2
        return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)

    def sqdist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Squared distance ``tr arcsin^2(sqrt(G^T G))`` (see ``dist``), smooth at ``x = y``.

        Prefer it to ``dist(x, y) ** 2`` in losses: its first and second derivatives are exact
        at and near ``x = y`` (``dist`` is cut to 0 below the rounding level).

        Args:
          x: basis, shape ``(n, p)``.
          y: basis, shape ``(n, p)``.

        Returns:
          Scalar ``d(x, y)^2``.
        """
        x, y = self._arr("sqdist", "x", x), self._arr("sqdist", "y", y)
        g = y - x @ (x.T @ y)
        return jnp.trace(_asin_sqm(_sym(g.T @ g)))

    def principal_angles(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Principal angles between the subspaces, ascending, from singular values.

        ``theta = arccos(sigma(X^T Y))`` for angles above ``pi/4`` and
        ``arcsin(sigma((I - X X^T) Y))`` below (Knyazev and Argentati 2002; as
        ``scipy.linalg.subspace_angles``), accurate to ``eps`` absolute at both ends. Values
        only: the output is wrapped in ``lax.stop_gradient`` (singular values are not
        differentiable where they repeat); differentiate ``dist`` instead.

        Args:
          x: basis, shape ``(n, p)``.
          y: basis, shape ``(n, p)``.

        Returns:
          Angles in ``[0, pi/2]``, shape ``(p,)``.

        References:
          A. V. Knyazev and M. E. Argentati, "Principal angles between subspaces in an
          A-based scalar product: algorithms and perturbation estimates", SIAM J. Sci.
          Comput. 23(6), 2002.
        """
        x = jax.lax.stop_gradient(self._arr("principal_angles", "x", x))
        y = jax.lax.stop_gradient(self._arr("principal_angles", "y", y))
        cos = jnp.linalg.svd(x.T @ y, compute_uv=False)  # descending
        sin = jnp.linalg.svd(y - x @ (x.T @ y), compute_uv=False)[::-1]  # ascending
        use_sin = cos**2 >= 0.5
        theta = jnp.where(
            use_sin, jnp.arcsin(jnp.clip(sin, 0.0, 1.0)), jnp.arccos(jnp.clip(cos, -1.0, 1.0))
        )
        return theta

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """Uniform (Haar) subspace: sign-fixed Q factor of an ``n x p`` Gaussian matrix."""
        check_key("Grassmann.random_point", key)
        check_float_dtype("Grassmann.random_point", dtype)
        return _qr_sign_fixed(jax.random.normal(key, (self.n, self.p), dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """``max|X^T X - I|`` (0 for an orthonormal basis)."""
        x = self._arr("check_point", "x", x)
        return jnp.max(jnp.abs(x.T @ x - jnp.eye(self.p, dtype=x.dtype)))

    def projx(self, x: ArrayLike) -> Array:
        """Orthonormal basis of ``span(X)`` nearest to ``X``: polar factor ``X (X^T X)^{-1/2}``.

        A rank-deficient ``X`` (e.g. zero) spans no ``p``-dimensional subspace: the result is then
        non-finite.
        """
        x = self._arr("projx", "x", x)
        return x @ invsqrtm(_sym(x.T @ x))


def _log_svd(x: Array, y: Array) -> Array:
    """Bendokat-Zimmermann-Absil logarithm (Algorithm 5.3), valid at the cut locus too."""
    a, _, bt = svd_or_nan(y.T @ x)  # NaN, not a LAPACK hang, for non-finite input
    y_star = y @ (a @ bt)
    w, s, vt = svd_or_nan(y_star - x @ (x.T @ y_star), full_matrices=False)
    return (w * jnp.arcsin(jnp.clip(s, 0.0, 1.0))) @ vt
