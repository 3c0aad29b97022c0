"""The Stiefel manifold St(n, p) of n x p matrices with orthonormal columns.

Two metrics are offered (a static option): the embedded (Euclidean) metric inherited from
R^{n x p}, the default, and the canonical metric of the quotient O(n) / O(n - p). The metric
changes ``inner``, ``norm``, ``egrad_to_rgrad``, ``exp``, ``log`` and ``dist``; ``proj``,
``retr``, ``transp``, ``random_point``, ``check_point`` and ``projx`` are the same for both.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    Solution,
    check_option,
    eps,
)
from geomjax.linalg import invsqrtm
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key

_METRICS = ("euclidean", "canonical")
_RETRACTIONS = ("qr", "polar")


def _sym(a: Array) -> Array:
    return 0.5 * (a + a.T)


def _qr_sign_fixed(a: Array) -> Array:
    """Q factor of the thin QR of ``a`` with ``diag(R) >= 0`` (unique for full-rank ``a``)."""
    q, r = jnp.linalg.qr(a)
    d = jnp.diagonal(r)
    return q * jnp.where(d < 0, -1.0, 1.0).astype(a.dtype)


def _check_size(cls: str, n, p) -> None:
    for name, v in (("n", n), ("p", p)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{cls}: argument `{name}` must be an int; got {v!r}")
    if not 1 <= p <= n:
        raise ValueError(f"{cls}: argument `p` must satisfy 1 <= p <= n; got n={n}, p={p}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Stiefel(Manifold):
    """Stiefel manifold ``St(n, p) = {X in R^{n x p} : X^T X = I_p}``.

    Tangent space: ``T_X = {U : X^T U + U^T X = 0}``; intrinsic dimension ``np - p(p+1)/2``.

    .. math::

        \\text{embedded:}\\quad \\langle U, V \\rangle_X = \\operatorname{tr}(U^T V), \\qquad
        \\text{canonical:}\\quad \\langle U, V \\rangle_X
            = \\operatorname{tr}\\big(U^T (I - \\tfrac12 X X^T) V\\big).

    Geodesics (Edelman, Arias and Smith 1998), with ``A = X^T U``, ``S = U^T U``:

    .. math::

        \\text{embedded:}\\quad \\operatorname{Exp}_X(U) = [X, U]\\,
            \\exp\\!\\begin{pmatrix} A & -S \\\\ I & A \\end{pmatrix}
            \\begin{pmatrix} I \\\\ 0 \\end{pmatrix} \\exp(-A), \\qquad
        \\text{canonical:}\\quad \\operatorname{Exp}_X(U) = \\exp(G X^T - X G^T)\\, X,
            \\; G = U - \\tfrac12 X A .

    The canonical exponential is evaluated without forming an ``n x n`` matrix: with
    ``W = [G, X]`` and ``J = [[0, I], [-I, 0]]``, ``exp(W J W^T) X = X + W phi(J W^T W) J W^T X``,
    ``phi(z) = (e^z - 1) / z``, and ``phi`` of the ``2p x 2p`` matrix is read off the
    exponential of a ``4p x 4p`` block matrix. Both exponentials are smooth in ``U`` (no QR, no
    SVD), so their derivatives are finite everywhere, ``U = 0`` included.

    The matrix exponentials are computed by a single-degree Pade scaling-and-squaring routine
    (``_expm``; one ``3p x 3p`` exponential for the embedded metric, one ``4p x 4p`` for the
    canonical one).

    The logarithm has no closed form; ``log_with_info`` solves ``Exp_X(V) = Y`` by Newton's
    method or shooting (see its docstring) and reports convergence; ``log`` returns only the
    value and ``dist(X, Y) = ||log_X(Y)||_X`` in the chosen metric. Derivatives of ``log`` and
    ``dist`` come from the implicit function theorem, not from the loop.

    Args:
      n: ambient rows, ``n >= p``.
      p: number of orthonormal columns, ``p >= 1``.
      metric: ``"euclidean"`` (embedded, default) or ``"canonical"``.
      retraction: ``"qr"`` (Q factor with positive ``diag(R)``, default) or ``"polar"``
        (``(X + U)(I + U^T U)^{-1/2}``).

    Raises:
      ValueError: if ``n``, ``p`` are not ints with ``1 <= p <= n`` or an option is unknown.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.manifolds._stiefel import Stiefel
      >>> st = Stiefel(4, 2)
      >>> x = st.random_point(jax.random.key(0))
      >>> u = 0.3 * st.random_tangent(jax.random.key(1), x)
      >>> y = st.exp(x, u)
      >>> bool(st.check_point(y) < 1e-5)
      True
      >>> sol = st.log_with_info(x, y)
      >>> bool(sol.converged), bool(jnp.allclose(sol.value, u, atol=1e-4))
      (True, True)

    References:
      A. Edelman, T. A. Arias and S. T. Smith, "The geometry of algorithms with orthogonality
      constraints", SIAM J. Matrix Anal. Appl. 20(2), 1998 (arXiv physics/9806030).
      R. Zimmermann and K. Hueper, "Computing the Riemannian logarithm on the Stiefel
      manifold: metrics, methods and performance", SIAM J. Matrix Anal. Appl. 43(2), 2022,
      arXiv 2103.12046.
      P.-A. Absil, R. Mahony and R. Sepulchre, "Optimization Algorithms on Matrix Manifolds",
      Princeton University Press, 2008 (QR and polar retractions, projection transport).
    """

    n: int = dataclasses.field(metadata=dict(static=True))
    p: int = dataclasses.field(metadata=dict(static=True))
    metric: str = dataclasses.field(metadata=dict(static=True), default="euclidean")
    retraction: str = dataclasses.field(metadata=dict(static=True), default="qr")

    def __post_init__(self):
        _check_size("Stiefel", self.n, self.p)
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "p", int(self.p))
        check_option("Stiefel", "metric", self.metric, _METRICS)
        check_option("Stiefel", "retraction", self.retraction, _RETRACTIONS)

    # -- shape -----------------------------------------------------------------------------
    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n, self.p)

    @property
    def dim(self) -> int:
        return self.n * self.p - self.p * (self.p + 1) // 2

    def _arr(self, fn: str, name: str, a: ArrayLike) -> Array:
        return self._args(fn, **{name: a})

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        """``tr(U^T V)`` (embedded) or ``tr(U^T V) - tr((X^T U)^T X^T V) / 2`` (canonical)."""
        x, u, v = (self._arr("inner", k, a) for k, a in (("x", x), ("u", u), ("v", v)))
        out = jnp.sum(u * v)
        if self.metric == "canonical":
            out = out - 0.5 * jnp.sum((x.T @ u) * (x.T @ v))
        return out

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Orthogonal (embedded-metric) projection onto ``T_X``: ``U - X sym(X^T U)``.

        The same map is used for both metrics (the tangent space does not depend on it).
        """
        x, u = self._arr("proj", "x", x), self._arr("proj", "u", u)
        return u - x @ _sym(x.T @ u)

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """Riemannian gradient: ``proj(X, G)`` (embedded) or ``G - X G^T X`` (canonical)."""
        x, g = self._arr("egrad_to_rgrad", "x", x), self._arr("egrad_to_rgrad", "g", g)
        if self.metric == "canonical":
            return g - x @ (g.T @ x)
        return g - x @ _sym(x.T @ g)

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Exponential map of the chosen metric (closed forms in the class docstring).

        Args:
          x: point, shape ``(n, p)``.
          u: tangent vector at ``x``, shape ``(n, p)``.

        Returns:
          ``Exp_x(u)``, shape ``(n, p)``.
        """
        x, u = self._arr("exp", "x", x), self._arr("exp", "u", u)
        if self.metric == "canonical":
            return _exp_canonical(x, u)
        return _exp_embedded(x, u)

    def retr(self, x: ArrayLike, u: ArrayLike) -> Array:
        """QR retraction ``qf(X + U)`` (sign-fixed) or polar ``(X + U)(I + U^T U)^{-1/2}``."""
        x, u = self._arr("retr", "x", x), self._arr("retr", "u", u)
        if self.retraction == "polar":
            a = x + u
            return a @ invsqrtm(_sym(a.T @ a))
        return _qr_sign_fixed(x + u)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """Projection vector transport ``proj(Y, U)``.

        A vector transport (first-order approximation), not parallel transport: it is neither
        exactly isometric nor invertible in general.
        """
        x, y, u = self._args("transp", x=x, y=y, u=u)
        return self.proj(y, u)

    def log_with_info(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        max_iter: int = 100,
        tol: float | None = None,
        method: str = "auto",
    ) -> Solution:
        """Riemannian logarithm by Newton's method or shooting, with a convergence report.

        Solves ``Exp_X(V) = Y`` for ``V`` in ``T_X``, starting from ``V_0 = P_X(Y)``
        (``P_X(Z) = Z - X sym(X^T Z)``), in a ``lax.while_loop`` until
        ``||Exp_X(V_k) - Y||_F <= tol``, with ``Z_k = Exp_X(V_k)`` and ``R_k = Y - Z_k``:

        .. math::

            \\text{newton:}\\quad V_{k+1} = V_k + W_k, \\quad
                P_{Z_k}\\big(D\\operatorname{Exp}_X(V_k)[W_k]\\big) = P_{Z_k}(R_k),\\;
                W_k \\in T_X ;
            \\qquad
            \\text{shooting:}\\quad V_{k+1} = V_k + P_X(R_k).

        Newton builds the Jacobian as a dense ``np x np`` matrix (``np`` forward-mode
        derivatives of ``exp``, one ``O((np)^3)`` solve per iteration) and converges
        quadratically, in our experiments from distances up to about 3. Shooting costs one
        ``exp`` per
        iteration and converges linearly: for the embedded metric the second-order term of the
        geodesic is normal to ``T_X``, so ``P_X Exp_X(V) = V + O(|V|^3)`` and the contraction
        factor is ``O(|V|^2)``; for the canonical metric it is ``O(|V|)``. In our experiments
        shooting converges for distances up to about 1.5 (within 100 iterations in float64).
        Far points (distances comparable to ``pi``, near or beyond the injectivity radius) may
        give an unconverged answer or a longer geodesic: check ``converged``.

        Derivatives (any order that ``exp`` supports) come from the implicit function theorem
        applied to ``Exp_X(V) = Y`` (a dense ``np x np`` linear solve, built only when
        differentiating), not from unrolling the loop. They are taken along the manifold:
        components of the input tangents normal to ``St(n, p)`` are dropped (the derivative of
        ``log(projx(x), projx(y))`` at points of the manifold).

        Args:
          x: point, shape ``(n, p)``.
          y: point, shape ``(n, p)``.
          max_iter: iteration cap (static).
          tol: tolerance on ``||Exp_X(V) - Y||_F``; default ``100 * sqrt(p) * eps(dtype)``.
          method: ``"newton"``, ``"shooting"`` or ``"auto"`` (static; Newton when
            ``n * p <= 1024``, else shooting).

        Returns:
          ``Solution(value, converged, n_iters, error)``: ``value`` the tangent ``V`` at ``x``,
          shape ``(n, p)``; ``error`` the final ``||Exp_X(V) - Y||_F``.

        References:
          R. Zimmermann and K. Hueper, "Computing the Riemannian logarithm on the Stiefel
          manifold: metrics, methods and performance", SIAM J. Matrix Anal. Appl. 43(2), 2022,
          arXiv 2103.12046 (shooting methods). R. Zimmermann, "A matrix-algebraic algorithm for
          the Riemannian logarithm on the Stiefel manifold under the canonical metric", SIAM J.
          Matrix Anal. Appl. 38(2), 2017, arXiv 1604.05054.
        """
        x, y = self._arr("log", "x", x), self._arr("log", "y", y)
        check_option("Stiefel.log_with_info", "method", method, ("auto", "newton", "shooting"))
        if method == "auto":
            method = "newton" if self.n * self.p <= _NEWTON_AUTO_MAX_SIZE else "shooting"
        dtype = jnp.promote_types(x.dtype, y.dtype)
        x, y = x.astype(dtype), y.astype(dtype)
        bad_int = isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer))
        if bad_int or max_iter < 0:
            raise ValueError(
                f"Stiefel.log_with_info: argument `max_iter` must be an int >= 0; got {max_iter!r}"
            )
        if tol is None:
            tol = 100.0 * float(np.sqrt(self.p)) * eps(dtype)
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not tol > 0:
            raise ValueError(f"Stiefel.log_with_info: argument `tol` must be positive; got {tol!r}")
        v, converged, n_iters, error = _log_core(self, method, int(max_iter), float(tol), x, y)
        return Solution(v, converged, n_iters, error)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Riemannian logarithm ``log_with_info(x, y).value`` (default ``max_iter``, ``tol``).

        Shape ``(n, p)``. Check ``log_with_info(...).converged`` for far-apart points: an
        unconverged solve returns its last iterate.
        """
        return self.log_with_info(x, y).value

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Geodesic distance ``norm(x, log(x, y))`` in the chosen metric (see ``log``).

        The distance is not differentiable at ``x = y`` (like ``|t|`` at 0; its square is):
        below the rounding level (``d^2 <= p (8 eps)^2``) exactly 0 and a zero gradient are
        returned.
        """
        x, y = self._args("dist", x=x, y=y)
        sq = self.sqdist(x, y)
        # Below the solver's rounding level the distance is noise: 0 with a zero gradient.
        pos = sq > self.p * (8 * eps(sq.dtype)) ** 2
        return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)

    def sqdist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Squared distance ``inner(x, v, v)`` with ``v = log(x, y)``: smooth at ``x = y``.

        Prefer it to ``dist(x, y) ** 2`` in losses (``dist`` is cut to 0 below the rounding
        level, which flattens its square there). Shape ``()``.
        """
        x, y = self._args("sqdist", x=x, y=y)
        v = self.log(x, y)
        return self.inner(x, v, v)

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """Haar-uniform point: sign-fixed Q factor of an ``n x p`` standard Gaussian matrix."""
        check_key("Stiefel.random_point", key)
        check_float_dtype("Stiefel.random_point", dtype)
        return _qr_sign_fixed(jax.random.normal(key, (self.n, self.p), dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """``max|X^T X - I|`` (0 on the manifold)."""
        x = self._arr("check_point", "x", x)
        return jnp.max(jnp.abs(x.T @ x - jnp.eye(self.p, dtype=x.dtype)))

    def projx(self, x: ArrayLike) -> Array:
        """Nearest point in Frobenius norm: the polar factor ``X (X^T X)^{-1/2}`` (full-rank ``X``).

        The inverse square root is a spectral function, so the derivative is finite at points
        already on the manifold (where ``X^T X = I`` has a repeated eigenvalue). A rank-deficient
        ``X`` (e.g. zero) has no polar factor: the result is then non-finite.
        """
        x = self._arr("projx", "x", x)
        return x @ invsqrtm(_sym(x.T @ x))


# -- exponentials ------------------------------------------------------------------------------

# Pade(13, 13) coefficients and the 1-norm bound theta_13 of Higham (2005), Table 2.3.
_PADE13 = (
    64764752532480000.0,
    32382376266240000.0,
    7771770303897600.0,
    1187353796428800.0,
    129060195264000.0,
    10559470521600.0,
    670442572800.0,
    33522128640.0,
    1323241920.0,
    40840800.0,
    960960.0,
    16380.0,
    182.0,
    1.0,
)
_THETA13 = 5.371920351148152
_MAX_SQUARINGS = 32


def _expm(a: Array) -> Array:
    """Exponential of a small general square matrix: scaling and squaring with Pade(13, 13).

    The algorithm of Higham (2005) with a single Pade degree and a static, unrolled number of
    conditional squarings: one branch, so it compiles several times faster than
    ``jax.scipy.linalg.expm`` (which switches over five degrees) and differentiates to any
    order. The scaling exponent is piecewise constant (no derivative).

    References:
      N. J. Higham, "The scaling and squaring method for the matrix exponential revisited",
      SIAM J. Matrix Anal. Appl. 26(4), 2005.
    """
    b = _PADE13
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    norm1 = jax.lax.stop_gradient(jnp.max(jnp.sum(jnp.abs(a), axis=0)))
    s = jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm1, _THETA13) / _THETA13)), 0, _MAX_SQUARINGS)
    a = a * jnp.exp2(-s).astype(a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2
    u = a @ (u + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    r = jnp.linalg.solve(v - u, v + u)
    return jax.lax.fori_loop(0, _MAX_SQUARINGS, lambda i, r: jnp.where(i < s, r @ r, r), r)


def _exp_embedded(x: Array, u: Array) -> Array:
    p = x.shape[1]
    a = x.T @ u
    s = u.T @ u
    eye = jnp.eye(p, dtype=x.dtype)
    zero = jnp.zeros((p, p), x.dtype)
    # One exponential of the block-diagonal diag([[A, -S], [I, A]], -A) gives both factors.
    block = jnp.block([[a, -s, zero], [eye, a, zero], [zero, zero, -a]])
    e = _expm(block)
    return (x @ e[:p, :p] + u @ e[p : 2 * p, :p]) @ e[2 * p :, 2 * p :]


def _exp_canonical(x: Array, u: Array) -> Array:
    p = x.shape[1]
    a = x.T @ u
    g = u - 0.5 * x @ a
    w = jnp.concatenate([g, x], axis=1)  # (n, 2p)
    eye, zero = jnp.eye(p, dtype=x.dtype), jnp.zeros((p, p), x.dtype)
    j = jnp.block([[zero, eye], [-eye, zero]])
    m = j @ (w.T @ w)  # (2p, 2p)
    # exp([[M, I], [0, 0]]) = [[e^M, phi(M)], [0, I]].
    big = jnp.block([[m, jnp.eye(2 * p, dtype=x.dtype)], [jnp.zeros((2 * p, 4 * p), x.dtype)]])
    phi = _expm(big)[: 2 * p, 2 * p :]
    return x + w @ (phi @ (j @ (w.T @ x)))


# -- logarithm: iterative solve plus implicit derivative ------------------------------------------

_NEWTON_AUTO_MAX_SIZE = 1024


def _k_matrix(manifold: Stiefel, x: Array, v: Array, z: Array) -> Array:
    """Dense ``(np, np)`` matrix of ``K(w) = P_z(D_v Exp_x(v)[w]) + z sym(x^T w)``.

    With ``z = Exp_x(v)``, ``K`` maps ``T_x`` onto ``T_z`` (while ``v`` is not conjugate) and the
    normal space ``{x S}`` onto ``{z S}`` modulo ``T_z``: it is invertible, and solving
    ``K(w) = P_z(r)`` gives the tangent ``w`` with ``D_v Exp[w] = P_z(r)``.
    """
    shape = x.shape

    def k_op(w_flat):
        w = w_flat.reshape(shape)
        _, dexp = jax.jvp(lambda vv: manifold.exp(x, vv), (v,), (w,))
        return (manifold.proj(z, dexp) + z @ _sym(x.T @ w)).ravel()

    return jax.jacfwd(k_op)(jnp.zeros((x.size,), x.dtype))


def _solve_log(manifold: Stiefel, method: str, max_iter: int, tol: float, x: Array, y: Array):
    def step(v, z, r):
        if method == "newton":
            k_mat = _k_matrix(manifold, x, v, z)
            return v + jnp.linalg.solve(k_mat, manifold.proj(z, r).ravel()).reshape(v.shape)
        return v + manifold.proj(x, r)

    def body(state):
        i, v, z, r, err = state
        v_new = step(v, z, r)
        z_new = manifold.exp(x, v_new)
        r_new = y - z_new
        err_new = jnp.sqrt(jnp.sum(r_new * r_new))
        # A non-finite step (a conjugate point, a diverging iteration) keeps the last iterate
        # and stops the loop through `cond`.
        ok = jnp.isfinite(err_new)
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        bad = jnp.asarray(jnp.inf, err.dtype)
        return (
            i + 1,
            keep(v_new, v),
            keep(z_new, z),
            keep(r_new, r),
            jnp.where(ok, err_new, -bad),
        )

    def cond(state):
        i, _, _, _, err = state
        return (i < max_iter) & (err > tol)

    v0 = manifold.proj(x, y)
    z0 = manifold.exp(x, v0)
    r0 = y - z0
    state = (jnp.asarray(0, jnp.int32), v0, z0, r0, jnp.sqrt(jnp.sum(r0 * r0)))
    n_iters, v, _, r, err = jax.lax.while_loop(cond, body, state)
    err = jnp.sqrt(jnp.sum(r * r))  # the error of the returned iterate (also after a bad step)
    return v, err <= tol, n_iters, err


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _log_core(manifold: Stiefel, method: str, max_iter: int, tol: float, x: Array, y: Array):
    x, y = jax.lax.stop_gradient(x), jax.lax.stop_gradient(y)
    return _solve_log(manifold, method, max_iter, tol, x, y)


@_log_core.defjvp
def _log_core_jvp(manifold, method, max_iter, tol, primals, tangents):
    x, y = primals
    dx, dy = tangents
    out = _log_core(manifold, method, max_iter, tol, x, y)
    v = out[0]
    dx = manifold.proj(x, dx)
    dy = manifold.proj(y, dy)
    # Differentiate Exp_x(v) = y with v in T_x: D_v Exp[dv] = dy - D_x Exp[dx] (an equation in
    # T_y) and the tangency constraint sym(x^T dv) = -sym(dx^T v); K of `_k_matrix` stacks both.
    _, dexp_x = jax.jvp(lambda xx: manifold.exp(xx, v), (x,), (dx,))
    rhs = manifold.proj(y, dy - dexp_x) - y @ _sym(dx.T @ v)
    dv = jnp.linalg.solve(_k_matrix(manifold, x, v, y), rhs.ravel()).reshape(x.shape)
    zero = np.zeros((), dtype=jax.dtypes.float0)
    return out, (dv, zero, zero, jnp.zeros_like(out[3]))
