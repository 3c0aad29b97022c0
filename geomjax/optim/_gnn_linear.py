r"""Linear-algebra pieces of :func:`~geomjax.optim.gradient_normalized_newton`.

Every trial step of the radius search solves :math:`(H + \lambda B)\, s = g` for a new
:math:`\lambda` with the same :math:`H`, :math:`B` and :math:`g`. Each *plan* below does the
work that does not depend on :math:`\lambda` once per outer step and returns a ``solve(lam)``
closure for the trials:

* :func:`dense_plan`: eigendecomposition of the whitened :math:`\hat H = L^{-1} H L^{-\top}`
  (:math:`B = L L^\top`), :math:`O(n^3)` once, then :math:`O(n^2)` per trial;
* :func:`diagonal_plan`: diagonal :math:`H` with a diagonal (or identity) :math:`B`, :math:`O(n)`;
* :func:`identity_plan`: :math:`H = 0`, the normalized gradient step :math:`B^{-1} g / \lambda`;
* :func:`woodbury_plan`: :math:`H = U U^\top` of rank :math:`m < n` (Woodbury identity; the
  Sherman-Morrison formula for :math:`m = 1`), :math:`O(n m^2)` once, :math:`O(nm)` per trial;
* :func:`cg_plan`: preconditioned conjugate gradients (preconditioner :math:`B^{-1}`) on
  matrix-free products with :math:`H`, with detection of non-positive curvature.

``solve(lam)`` returns ``(s, pd, finite, n_products, psd)``: the step, whether
:math:`H + \lambda B` was found positive definite, whether the products stayed finite, the
number of products with :math:`H` used, and whether no negative curvature of :math:`H` was met
(only CG looks at it during the solve; the dense plans check :math:`H` once per step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from geomjax._core import Array


class Metric(NamedTuple):
    """The metric :math:`B` of the primal norm :math:`\\|s\\| = (s^\\top B s)^{1/2}`.

    ``kind`` is ``"identity"``, ``"diagonal"`` (``d`` holds the diagonal) or ``"dense"``
    (``mat`` holds :math:`B`, ``chol`` its lower Cholesky factor :math:`L`).
    """

    kind: str
    d: Array | None = None
    mat: Array | None = None
    chol: Array | None = None


def make_metric(kind: str, value: Array | None) -> Metric:
    """Build a :class:`Metric` from a validated diagonal ``(n,)`` or dense ``(n, n)`` array."""
    if kind == "identity":
        return Metric("identity")
    if kind == "diagonal":
        return Metric("diagonal", d=value)
    mat = 0.5 * (value + value.T)
    return Metric("dense", mat=mat, chol=jnp.linalg.cholesky(mat))


def metric_inv(mt: Metric, v: Array) -> Array:
    """:math:`B^{-1} v` for ``v`` of shape ``(n,)`` or ``(n, k)``."""
    if mt.kind == "identity":
        return v
    if mt.kind == "diagonal":
        return v / (mt.d if v.ndim == 1 else mt.d[:, None])
    return jsl.cho_solve((mt.chol, True), v)


def metric_mul(mt: Metric, v: Array) -> Array:
    """:math:`B v`."""
    if mt.kind == "identity":
        return v
    if mt.kind == "diagonal":
        return mt.d * v
    return mt.mat @ v


def whiten_vec(mt: Metric, v: Array) -> Array:
    """:math:`L^{-1} v`, so that :math:`\\|v\\|_*^2 = v^\\top B^{-1} v = \\|L^{-1} v\\|^2`."""
    if mt.kind == "identity":
        return v
    if mt.kind == "diagonal":
        return v / jnp.sqrt(mt.d)
    return jsl.solve_triangular(mt.chol, v, lower=True)


def dual_norm(mt: Metric, g: Array) -> Array:
    """Dual norm :math:`\\|g\\|_* = (g^\\top B^{-1} g)^{1/2}`."""
    w = whiten_vec(mt, g)
    return jnp.sqrt(jnp.sum(w * w))


def _whiten_mat(mt: Metric, h: Array) -> Array:
    """:math:`L^{-1} H L^{-\\top}`."""
    if mt.kind == "identity":
        return h
    if mt.kind == "diagonal":
        r = 1.0 / jnp.sqrt(mt.d)
        return r[:, None] * h * r[None, :]
    x = jsl.solve_triangular(mt.chol, h, lower=True)
    return jsl.solve_triangular(mt.chol, x.T, lower=True).T


def _unwhiten(mt: Metric, q: Array) -> Array:
    """:math:`L^{-\\top} Q`."""
    if mt.kind == "identity":
        return q
    if mt.kind == "diagonal":
        return q / jnp.sqrt(mt.d)[:, None]
    return jsl.solve_triangular(mt.chol, q, lower=True, trans=1)


def psd_tolerance(n: int, dtype) -> float:
    """Relative tolerance below zero for the smallest eigenvalue of a PSD matrix in floating point."""
    return 64.0 * max(n, 1) * float(jnp.finfo(dtype).eps)


def _safe_den(den: Array) -> Array:
    return jnp.where(den > 0, den, jnp.ones_like(den))


Plan = tuple[Callable[[Array], tuple[Array, Array, Array, Array, Array]], Array, Array]


def dense_plan(h: Array, g: Array, mt: Metric, clip_psd: bool) -> Plan:
    r"""Eigen-solve plan for a dense ``(n, n)`` approximation ``h``.

    With :math:`L^{-1} H L^{-\top} = Q\, \mathrm{diag}(\mu)\, Q^\top`,

    .. math::

        (H + \lambda B)^{-1} g = L^{-\top} Q\, \mathrm{diag}\big(1 / (\mu + \lambda)\big)\,
        Q^\top L^{-1} g .

    Returns ``(solve, finite, psd)``: ``finite`` says ``h`` had no NaN/inf; ``psd`` that the
    smallest eigenvalue is at least ``-psd_tolerance * max|mu|``. Eigenvalues within that
    tolerance of zero are set to zero; with ``clip_psd`` all negative ones are (the caller stops
    when ``psd`` is False in that mode), otherwise a trial whose :math:`\mu_{\min} + \lambda
    \le 0` reports ``pd = False``.
    """
    n = h.shape[0]
    finite = jnp.all(jnp.isfinite(h))
    hw = _whiten_mat(mt, jnp.where(finite, h, jnp.zeros_like(h)))
    hw = 0.5 * (hw + hw.T)
    mu, q = jnp.linalg.eigh(hw)
    tol = psd_tolerance(n, h.dtype) * jnp.max(jnp.abs(mu))
    psd = mu[0] >= -tol
    mu = jnp.where((mu >= -tol) | clip_psd, jnp.maximum(mu, 0.0), mu)
    w = q.T @ whiten_vec(mt, g)
    m = _unwhiten(mt, q)
    zero = jnp.zeros((), jnp.int32)

    def solve(lam):
        den = mu + lam
        return m @ (w / _safe_den(den)), den[0] > 0, jnp.asarray(True), zero, jnp.asarray(True)

    return solve, finite, psd


def diagonal_plan(hd: Array, g: Array, mt: Metric, clip_psd: bool) -> Plan:
    """Plan for a diagonal approximation ``hd`` (shape ``(n,)``) with an identity/diagonal metric:
    :math:`s_i = g_i / (h_i + \\lambda d_i)`."""
    finite = jnp.all(jnp.isfinite(hd))
    hd = jnp.where(finite, hd, jnp.zeros_like(hd))
    tol = psd_tolerance(1, hd.dtype) * jnp.max(jnp.abs(hd))
    psd = jnp.min(hd) >= -tol
    hd = jnp.where((hd >= -tol) | clip_psd, jnp.maximum(hd, 0.0), hd)
    d = jnp.ones_like(hd) if mt.kind == "identity" else mt.d
    zero = jnp.zeros((), jnp.int32)

    def solve(lam):
        den = hd + lam * d
        return g / _safe_den(den), jnp.min(den) > 0, jnp.asarray(True), zero, jnp.asarray(True)

    return solve, finite, psd


def identity_plan(g: Array, mt: Metric) -> Plan:
    """Plan for :math:`H = 0`: :math:`s = B^{-1} g / \\lambda`."""
    big = metric_inv(mt, g)
    zero = jnp.zeros((), jnp.int32)

    def solve(lam):
        return big / lam, jnp.asarray(True), jnp.asarray(True), zero, jnp.asarray(True)

    return solve, jnp.asarray(True), jnp.asarray(True)


def woodbury_plan(u: Array, g: Array, mt: Metric) -> Plan:
    r"""Plan for :math:`H = U U^\top`, ``u`` of shape ``(n, m)`` (here :math:`U = G^\top/\sqrt m`).

    Woodbury with :math:`K = U^\top B^{-1} U = V\, \mathrm{diag}(\kappa)\, V^\top`:

    .. math::

        (\lambda B + U U^\top)^{-1} g = \frac{B^{-1} g}{\lambda}
          - B^{-1} U V\, \mathrm{diag}\Big(\frac{1}{\lambda(\lambda + \kappa)}\Big)\,
            V^\top U^\top B^{-1} g ,

    which for :math:`m = 1` (:math:`U = u`) is the Sherman-Morrison formula
    :math:`B^{-1} g/\lambda - B^{-1} u\, (u^\top B^{-1} g) / (\lambda(\lambda + u^\top B^{-1} u))`.
    The two terms cancel along :math:`\mathrm{range}(U)`: the relative error of the step there
    is about :math:`\epsilon\,\kappa/\lambda` (the dense plan has no such cancellation).
    """
    finite = jnp.all(jnp.isfinite(u))
    u = jnp.where(finite, u, jnp.zeros_like(u))
    big = metric_inv(mt, g)
    biu = metric_inv(mt, u)
    t = u.T @ big
    zero, true = jnp.zeros((), jnp.int32), jnp.asarray(True)
    if u.shape[1] == 1:  # Sherman-Morrison, no eigendecomposition
        kappa = jnp.maximum(jnp.sum(u[:, 0] * biu[:, 0]), 0.0)
        p, c = biu[:, 0], t[0]

        def solve(lam):
            return big / lam - p * (c / (lam * (lam + kappa))), true, true, zero, true

    else:
        k = u.T @ biu
        kappa, v = jnp.linalg.eigh(0.5 * (k + k.T))
        kappa = jnp.maximum(kappa, 0.0)
        p, c = biu @ v, v.T @ t

        def solve(lam):
            return big / lam - p @ (c / (lam * (lam + kappa))), true, true, zero, true

    return solve, finite, jnp.asarray(True)


def cg_plan(
    matvec: Callable[[Array], Array],
    g: Array,
    mt: Metric,
    max_iter: int,
    rtol: float,
    check_psd: bool,
) -> Plan:
    r"""Preconditioned CG plan on :math:`(H + \lambda B) s = g` with preconditioner :math:`B^{-1}`.

    Starts from :math:`s = 0`, stops when the residual's dual norm is at most ``rtol`` times
    :math:`\|g\|_*` or after ``max_iter`` products. Each iteration also looks at the curvature
    of :math:`H` alone along the search direction: :math:`p^\top H p < -\tau \|p\| \|Hp\|`
    (:math:`\tau` = :func:`psd_tolerance`) proves that :math:`H` is not PSD and, with
    ``check_psd``, stops the solve with ``psd = False``; :math:`p^\top (H + \lambda B) p \le 0` proves that
    :math:`H + \lambda B` is not positive definite and stops it with ``pd = False``. A
    non-finite curvature stops it with ``finite = False``. (Negative curvature of :math:`H`
    outside the Krylov subspace explored is not seen.)
    """
    z0 = metric_inv(mt, g)
    rz0 = jnp.sum(g * z0)
    thresh = (rtol**2) * rz0
    tau = psd_tolerance(g.shape[0], g.dtype)

    def solve(lam):
        def cond(c):
            i, _, _, _, rz, bad, neg, negh = c
            return (i < max_iter) & (rz > thresh) & ~bad & ~neg & ~negh

        def body(c):
            i, s, r, p, rz, _, _, _ = c
            hp = matvec(p)
            ap = hp + lam * metric_mul(mt, p)
            php = jnp.sum(p * hp)
            pap = jnp.sum(p * ap)
            bad = ~(jnp.isfinite(pap) & jnp.isfinite(php))
            neg = ~bad & (pap <= 0)
            negh = ~bad & check_psd & (php < -tau * jnp.sqrt(jnp.sum(p * p) * jnp.sum(hp * hp)))
            stop = bad | neg | negh
            alpha = rz / jnp.where(stop, 1.0, pap)
            s_new = s + alpha * p
            r_new = r - alpha * ap
            z_new = metric_inv(mt, r_new)
            rz_new = jnp.sum(r_new * z_new)
            p_new = z_new + (rz_new / rz) * p
            keep = lambda a, b: jnp.where(stop, a, b)  # noqa: E731
            return (
                i + 1,
                keep(s, s_new),
                keep(r, r_new),
                keep(p, p_new),
                keep(rz, rz_new),
                bad,
                neg,
                negh,
            )

        false = jnp.asarray(False)
        init = (jnp.zeros((), jnp.int32), jnp.zeros_like(g), g, z0, rz0, false, false, false)
        i, s, _, _, _, bad, neg, negh = jax.lax.while_loop(cond, body, init)
        return s, ~neg, ~bad, i, ~negh

    return solve, jnp.asarray(True), jnp.asarray(True)
