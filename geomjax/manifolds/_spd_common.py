"""What every SPD metric shares: the SPD point set, sampling, checks, and the mean iteration.

Points are symmetric positive definite ``(n, n)`` matrices; tangent vectors are symmetric
``(n, n)`` matrices (the tangent space is the same for every metric, only the inner product
changes).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    eigh_or_nan,
    full_precision,
    psum_if,
)
from geomjax.linalg import spectral_fn
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key
from geomjax.manifolds._mean import FrechetMeanResult


@full_precision
def sym(x: Array) -> Array:
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))


def check_n(cls: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{cls}: argument `n` must be a positive int; got {n!r}")
    return int(n)


def chol_whiten(x: Array, y: Array) -> tuple[Array, Array]:
    """``(L, L^{-1} Y L^{-T})`` with ``X = L L^T`` (symmetrized)."""
    chol = jnp.linalg.cholesky(x)
    left = jax.scipy.linalg.solve_triangular(chol, y, lower=True)
    w = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(left, -1, -2), lower=True)
    return chol, sym(w)


def lift_spectrum(w: Array, lam: Array | None = None) -> Array:
    """``W + s I`` with a constant (stop-gradient) shift ``s >= 0`` that lifts the smallest
    eigenvalue of a computed SPD matrix to ``4 n eps lambda_max`` when round-off has pushed it
    below (``s = 0``, and ``W`` is returned unchanged, otherwise).

    Matrices with condition numbers near ``1 / eps`` (in float32: SPD inputs with cond >~ 1e7, or
    the whitened ``L^{-1} Y L^{-T}`` of the affine-invariant metric, whose condition number is
    about ``cond(X) cond(Y)``) can have zero or negative computed eigenvalues, and the eigh-based
    ``logm``/``sqrtm`` would return NaN. Callers use the lifted matrix for the derivative path
    (the shift is a constant, so the derivatives are those at the lifted point) and, where
    accuracy matters, compute the value another way.

    Args:
      w: symmetric matrix ``(n, n)``.
      lam: its eigenvalues in ascending order, if already computed (stop-gradient).
    """
    if lam is None:
        lam = jnp.linalg.eigvalsh(jax.lax.stop_gradient(w))
    floor = 4.0 * w.shape[-1] * jnp.finfo(w.dtype).eps * lam[-1]
    shift = jnp.maximum(floor - lam[0], 0.0)
    return w + shift * jnp.eye(w.shape[-1], dtype=w.dtype)


def floored_log(lam: Array) -> Array:
    """``log`` of eigenvalues floored at ``4 n eps lambda_max`` (the floor of :data:`floored_logm`)."""
    floor = 4.0 * lam.shape[-1] * jnp.finfo(lam.dtype).eps * jnp.max(lam, axis=-1, keepdims=True)
    return jnp.log(jnp.maximum(lam, jax.lax.stop_gradient(floor)))


floored_logm = spectral_fn(floored_log, name="floored_logm")
"""``logm`` with eigenvalues floored at ``4 n eps lambda_max`` (one eigendecomposition; the same
as ``logm(lift_spectrum(W))`` up to the size of the floor, without ``lift_spectrum``'s extra
``eigvalsh``). Derivatives are the Daleckii-Krein ones of the floored function (zero slope
below the floor)."""


class SPDBase(Manifold):
    """Base of the SPD metrics: the point set, sampling and checks (subclasses add a metric).

    Subclasses are dataclasses with a static field ``n`` (or derive it from a metric matrix).

    Input domain (see :class:`~geomjax.manifolds.Manifold`): points must be symmetric positive
    definite; an indefinite, singular or non-symmetric matrix is not detected by the maps (the
    Cholesky-based ones return NaN for an indefinite point), only by ``check_point``. ``mean``
    does not inspect its weights either: weights summing to zero, or a non-finite weight or
    point, give ``converged=False`` (never a non-finite mean reported as converged).
    """

    @property
    def size(self) -> int:
        return self.n

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.size, self.size)

    @property
    def dim(self) -> int:
        return self.size * (self.size + 1) // 2

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Symmetric part of ``u`` (every symmetric matrix is tangent)."""
        x, u = self._args("proj", x=x, u=u)
        return sym(u)

    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """``Q diag(exp(g)) Q^T`` with ``Q`` Haar-orthogonal and ``g`` standard normal (log-spectrum
        spread of about one unit: condition numbers around 10-50 for n <= 10)."""
        check_key(f"{type(self).__name__}.random_point", key)
        check_float_dtype(f"{type(self).__name__}.random_point", dtype)
        kq, kg = jax.random.split(key)
        q, r = jnp.linalg.qr(jax.random.normal(kq, self.point_shape, dtype))
        q = q * jnp.sign(jnp.diagonal(r))[None, :]
        lam = jnp.exp(jax.random.normal(kg, (self.size,), dtype))
        return sym((q * lam[None, :]) @ q.T)

    def random_tangent(self, key: PRNGKey, x: ArrayLike) -> Array:
        """A symmetric matrix with standard normal entries (not normalized to the metric)."""
        check_key(f"{type(self).__name__}.random_tangent", key)
        x = self._args("random_tangent", x=x)
        return sym(jax.random.normal(key, self.point_shape, x.dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """``max(asymmetry, -lambda_min / |X|)``: 0 for SPD matrices (relative to ``|X|_max``).

        NaN for a matrix with a NaN entry. A singular positive semi-definite matrix (on the
        boundary of the cone, e.g. zero) also gives 0: test ``eigvalsh(x)[0] > 0`` for strict
        definiteness.
        """
        x = self._args("check_point", x=x)
        scale = jnp.maximum(jnp.max(jnp.abs(x)), jnp.finfo(x.dtype).tiny)
        asym = jnp.max(jnp.abs(x - x.T)) / scale
        lam_min = jnp.linalg.eigvalsh(sym(x))[0]
        return jnp.maximum(asym, jnp.maximum(-lam_min, 0.0) / scale)

    def check_tangent(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Asymmetry ``max|U - U^T|`` (0 for tangent vectors)."""
        x, u = self._args("check_tangent", x=x, u=u)
        return jnp.max(jnp.abs(u - u.T))

    def projx(self, x: ArrayLike) -> Array:
        """Symmetric part with eigenvalues clamped to at least ``eps * lambda_max``.

        The floor is ``eps`` times the largest ``|eigenvalue|``, so a negative definite matrix maps
        to a small SPD one, but the zero matrix maps to (numerically) zero, which is not SPD.
        """
        x = sym(self._args("projx", x=x))
        lam, q = eigh_or_nan(x)
        floor = jnp.finfo(x.dtype).eps * jnp.maximum(jnp.max(jnp.abs(lam)), jnp.finfo(x.dtype).tiny)
        return sym((q * jnp.maximum(lam, floor)[None, :]) @ q.T)

    def base_point(self, dtype=jnp.float32) -> Array:
        """The reference point of the metric (the identity; ``M`` for generalized BW).

        Riemannian batch normalization transports to and from this point.
        """
        check_float_dtype(f"{type(self).__name__}.base_point", dtype)
        return jnp.eye(self.size, dtype=dtype)

    def mean(
        self,
        points: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iter: int = 30,
        tol: float | None = None,
    ) -> FrechetMeanResult:
        """Weighted Frechet mean of a stack of points (see the subclass docstring)."""
        raise NotImplementedError


def check_stack(
    fn: str, points: ArrayLike, n: int, weights: ArrayLike | None
) -> tuple[Array, Array]:
    """Validate a stack ``(k, n, n)`` and weights ``(k,)``; return them with weights summing to 1."""
    points = as_float_array(fn, "points", points)
    if points.ndim != 3 or points.shape[1:] != (n, n) or points.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `points` must be a stack of SPD matrices with shape (k, {n}, {n}), "
            f"k >= 1; got shape {points.shape}"
        )
    k = points.shape[0]
    if weights is None:
        w = jnp.full((k,), 1.0 / k, points.dtype)
    else:
        w = as_float_array(fn, "weights", weights)
        if w.shape != (k,):
            raise ValueError(
                f"{fn}: argument `weights` must have shape ({k},); got shape {w.shape}"
            )
        w = w.astype(points.dtype)
        w = w / jnp.sum(w)
    return points, w


def check_iter(fn: str, max_iter, tol, dtype) -> tuple[int, float]:
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"{fn}: argument `max_iter` must be a positive int; got {max_iter!r}")
    if tol is None:
        tol = 1e-12 if jnp.dtype(dtype).itemsize == 8 else 1e-5
    if not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"{fn}: argument `tol` must be a non-negative float; got {tol!r}")
    return int(max_iter), float(tol)


def fixed_point_mean(
    evaluate: Callable[[Array], tuple[Array, Any]],
    update: Callable[[Array, Any, Array], Array],
    init: Array,
    max_iter: int,
    tol: float,
) -> FrechetMeanResult:
    """Damped fixed-point iteration for Frechet means, for exactly ``max_iter`` masked steps.

    ``evaluate(x) -> (r, aux)`` gives the residual ``r`` (the Riemannian norm of the mean
    logarithm, i.e. of the Frechet-functional gradient) and whatever the step needs (``aux``, e.g.
    the mean logarithm itself), so each step evaluates the points once. ``update(x, aux, t)``
    takes a step of relative length ``t`` (``t = 1``: the plain Karcher / fixed-point step). A step
    that does not decrease the residual is rejected and ``t`` halved (this turns the period-2
    oscillation of the unit Karcher step on widely spread data into convergence).

    Once ``r <= tol`` the iterate is frozen and the remaining steps are skipped (``lax.cond``), so
    ``n_iters`` counts the steps taken (rejected ones included); the fixed trip count makes the
    result differentiable in reverse mode too (its derivative is the derivative of the computed
    iterate, which converges to the implicit derivative of the mean).
    """
    r0, aux0 = evaluate(init)
    tol_ = jnp.asarray(tol, r0.dtype)

    def step(state):
        x, aux, r, t, k = state
        x_new = update(x, aux, t)
        r_new, aux_new = evaluate(x_new)
        better = r_new < r
        pick = lambda new, old: jnp.where(better, new, old)  # noqa: E731
        return (
            pick(x_new, x),
            jax.tree.map(pick, aux_new, aux),
            pick(r_new, r),
            jnp.where(better, t, 0.5 * t),
            k + 1,
        )

    def body(_, state):
        return jax.lax.cond(state[2] <= tol_, lambda s: s, step, state)

    state = (init, aux0, r0, jnp.ones((), r0.dtype), jnp.zeros((), jnp.int32))
    x, _, r, _, k = jax.lax.fori_loop(0, max_iter, body, state)
    return FrechetMeanResult(mean=x, converged=r <= tol_, n_iters=k, grad_norm=r)


def closed_form_mean(manifold: Manifold, mean: Array, points: Array, w: Array) -> FrechetMeanResult:
    """Wrap a closed-form mean with its measured gradient norm (0 up to round-off).

    ``converged`` is False when the mean or the gradient norm is not finite (weights summing to
    zero, a non-finite weight or point, an indefinite point): never NaN as a valid answer.
    """
    logs = jax.vmap(manifold.log, in_axes=(None, 0))(mean, points)
    g = manifold.norm(mean, jnp.tensordot(w, logs, axes=1))
    finite = jnp.isfinite(g) & jnp.all(jnp.isfinite(mean))
    return FrechetMeanResult(
        mean=mean, converged=finite, n_iters=jnp.zeros((), jnp.int32), grad_norm=g
    )


def karcher_flow(
    manifold: Manifold,
    points: Array,
    weights: Array,
    init: Array,
    max_iter: int,
    tol: float,
    axis_name: str | tuple[str, ...] | None = None,
) -> FrechetMeanResult:
    r"""Masked, fixed-trip-count Karcher flow :math:`S \leftarrow \exp_S(t \sum_i w_i \log_S X_i)`
    (``t = 1`` unless a step fails to decrease the gradient norm, see :func:`fixed_point_mean`).

    Like :func:`fixed_point_mean` (differentiable in reverse mode). With ``axis_name`` the
    weighted tangent sum is ``psum``-ed, so ``points``/``weights`` are this device's shard and
    every device follows the same iterates; ``weights`` must then sum to one over all shards and
    ``init`` be the same on every device. For Bures-Wasserstein one step is exactly the
    Alvarez-Esteban fixed-point step; for flat metrics (log-Euclidean, log-Cholesky) one step
    from any start gives the exact mean.
    """

    def evaluate(s):
        logs = jax.vmap(manifold.log, in_axes=(None, 0))(s, points)
        v = psum_if(jnp.tensordot(weights, logs, axes=1), axis_name)
        return manifold.norm(s, v), v

    def update(s, v, t):
        return manifold.exp(s, t * v)

    return fixed_point_mean(evaluate, update, init, max_iter, tol)
