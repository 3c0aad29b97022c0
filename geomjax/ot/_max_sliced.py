"""Max-sliced Wasserstein distance by Riemannian gradient ascent of the direction on the sphere."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from geomjax._core import Array, ArrayLike, PRNGKey, check_key, check_scalar, eps
from geomjax.ot._measures import check_measures
from geomjax.ot._sliced import _check_count, projected_wpp, random_projections
from geomjax.ot._wasserstein_1d import check_p, root_p

__all__ = ["MaxSlicedResult", "max_sliced_wasserstein"]


class MaxSlicedResult(NamedTuple):
    """Output of :func:`max_sliced_wasserstein`.

    Attributes:
      value: scalar :math:`W_p(\\theta^*_\\#\\mu, \\theta^*_\\#\\nu)` at the returned direction,
        differentiable in the points and weights (the direction is held fixed, which is the
        envelope-theorem gradient of the maximum).
      direction: ``(d,)`` unit vector :math:`\\theta^*` (no gradient flows through it).
      converged: boolean scalar, True when the last proposed ascent step was shorter than
        ``tol`` (radians) for the returned restart and the objective there is finite (False for
        NaN or inf in the inputs, with a non-finite ``value``).
      n_iters: int32 scalar, iterations used by the returned restart (accepted and rejected
        steps both count).
      grad_norm: scalar, norm of the Riemannian gradient of :math:`\\log W_p^p` at
        :math:`\\theta^*` (scale-free; not 0 at a kink of the piecewise-smooth objective).
    """

    value: Array
    direction: Array
    converged: Array
    n_iters: Array
    grad_norm: Array


def _ascent(f_and_g, theta0, lr0, tol, n_iter):
    """Backtracking Riemannian ascent of ``log f`` on the sphere from ``theta0``."""

    def rel_grad(theta):
        f, g = f_and_g(theta)
        rg = g - jnp.dot(g, theta) * theta
        pos = f > 0
        return f, jnp.where(pos, rg / jnp.where(pos, f, 1.0), 0.0)

    f0, r0 = rel_grad(theta0)
    dtype = theta0.dtype

    def cond(s):
        k, _, _, r, lr, done = s
        return jnp.logical_and(k < n_iter, jnp.logical_not(done))

    def body(s):
        k, theta, f, r, lr, _ = s
        step = lr * r
        step_norm = jnp.linalg.norm(step)
        small = step_norm <= tol
        cand = theta + step
        cand = cand / jnp.linalg.norm(cand)  # step is tangent: norm >= 1
        f_new, r_new = rel_grad(cand)
        accept = jnp.logical_and(jnp.logical_not(small), f_new >= f)
        theta = jnp.where(accept, cand, theta)
        f = jnp.where(accept, f_new, f)
        r = jnp.where(accept, r_new, r)
        lr = jnp.where(accept, jnp.minimum(2.0 * lr, lr0), 0.5 * lr)
        return k + 1, theta, f, r, lr, small

    init = (jnp.zeros((), jnp.int32), theta0, f0, r0, jnp.asarray(lr0, dtype), jnp.asarray(False))
    k, theta, f, r, lr, done = lax.while_loop(cond, body, init)
    # A non-finite objective (NaN or inf in the data) has r = 0 and would "converge" at once.
    return theta, f, jnp.logical_and(done, jnp.isfinite(f)), k, jnp.linalg.norm(r)


def max_sliced_wasserstein(
    key: PRNGKey,
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    *,
    p: float = 2,
    n_iter: int = 100,
    learning_rate: float | None = None,
    n_restarts: int = 4,
    tol: float | None = None,
) -> MaxSlicedResult:
    r"""Max-sliced Wasserstein distance: the largest 1-D Wasserstein distance over directions.

    .. math::
        \max\text{-}SW_p(\mu, \nu) = \max_{\theta \in S^{d-1}}
            W_p(\theta_\#\mu, \theta_\#\nu),

    with :math:`\mu = \sum_i a_i \delta_{x_i}`, :math:`\nu = \sum_j b_j \delta_{y_j}` and the
    exact 1-D :math:`W_p` (:func:`wasserstein_1d`). The direction is found by ascent of
    :math:`\log W_p^p(\theta)` (same maximizer, scale-free steps) on the sphere: Riemannian
    gradient :math:`r = (I - \theta\theta^\top)\nabla \log W_p^p`, step
    :math:`\theta \leftarrow (\theta + \eta r)/\|\theta + \eta r\|`, accepted only if the
    objective does not decrease; otherwise :math:`\eta` is halved (after an accepted step it
    is doubled, up to ``learning_rate``). The objective is piecewise smooth (the sorted
    matching changes with :math:`\theta`), so the maximum can sit at a kink; the backtracking
    still stops there. A run stops when the proposed step is shorter than ``tol`` or after
    ``n_iter`` iterations. The first restart starts at the normalized difference of the means
    (when non-zero), the others at uniform random directions; the best final value wins.
    This is a local method: more restarts make a global maximum more likely.

    The default step ``learning_rate = 1/p`` is exact in one step for translated clouds
    (:math:`W_p^p(\theta) = |\langle\theta, t\rangle|^p`). The search runs under
    ``stop_gradient``; the returned ``value`` is recomputed at the fixed direction, so its
    gradient in ``x, y, a, b`` is the envelope-theorem gradient of the maximum.

    Args:
      key: PRNG key for the random restarts.
      x: support of :math:`\mu`, shape ``(n, d)``.
      y: support of :math:`\nu`, shape ``(m, d)``.
      a: weights of ``x``, shape ``(n,)`` (``None``: uniform).
      b: weights of ``y``, shape ``(m,)`` (``None``: uniform).
      p: static order ``p >= 1``.
      n_iter: static maximum number of iterations per restart.
      learning_rate: initial and maximal step on :math:`\log W_p^p` (default ``1/p``).
      n_restarts: static number of starting directions (run in parallel with ``vmap``).
      tol: stop when the proposed step (radians) is below it; default ``sqrt(eps)`` of the
        dtype.

    Returns:
      :class:`MaxSlicedResult` ``(value, direction, converged, n_iters, grad_norm)``.

    Raises:
      ValueError / TypeError: as :func:`sliced_wasserstein`; non-positive ``n_iter``,
        ``n_restarts``, non-positive or infinite ``learning_rate``, negative ``tol``; ``key``
        not a single PRNG key.

    Input domain: NaN or inf in ``x``, ``y`` or traced weights give ``converged=False`` and a
    non-finite ``value``; finite traced weights that are negative or do not sum to one are
    used as given (finite values of no meaning).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.ot import max_sliced_wasserstein
      >>> x = jax.random.normal(jax.random.key(0), (64, 3))
      >>> res = max_sliced_wasserstein(jax.random.key(1), x, x + jnp.array([0.0, 2.0, 0.0]))
      >>> round(float(res.value), 4), bool(res.converged)
      (2.0, True)
      >>> jnp.abs(res.direction).round(3)
      Array([0., 1., 0.], dtype=float32)

    References:
      I. Deshpande, Y.-T. Hu, R. Sun, A. Pyrros, N. Siddiqui, S. Koyejo, Z. Zhao, D. Forsyth,
      A. Schwing, "Max-Sliced Wasserstein Distance and its use for GANs", CVPR 2019,
      arXiv:1904.05877.
      P.-A. Absil, R. Mahony, R. Sepulchre, "Optimization Algorithms on Matrix Manifolds",
      Princeton University Press 2008 (Riemannian gradient ascent with retraction).
    """
    fn = "max_sliced_wasserstein"
    check_key(fn, "key", key)
    p = check_p(fn, p)
    n_iter = _check_count(fn, "n_iter", n_iter)
    n_restarts = _check_count(fn, "n_restarts", n_restarts)
    a_none, b_none = a is None, b is None
    x, y, a, b = check_measures(fn, x, y, a, b)
    dtype = x.dtype
    if learning_rate is None:
        learning_rate = 1.0 / p
    check_scalar(fn, "learning_rate", learning_rate)
    if tol is None:
        tol = float(eps(dtype)) ** 0.5
    check_scalar(fn, "tol", tol, positive=False, allow_inf=True)
    a_s = None if a_none else a
    b_s = None if b_none else b
    lr0 = jnp.asarray(learning_rate, dtype)
    theta, done, k, gn = _search(
        key, x, y, a, b, a_s, b_s, lr0, p=p, tol=float(tol), n_iter=n_iter, n_restarts=n_restarts
    )
    value = root_p(projected_wpp(x, y, a_s, b_s, theta[None, :], p)[0], p)
    return MaxSlicedResult(value, theta, done, k, gn)


@functools.partial(jax.jit, static_argnames=("p", "tol", "n_iter", "n_restarts"))
def _search(key, x, y, a, b, a_s, b_s, lr0, *, p, tol, n_iter, n_restarts):
    """Best direction over the restarts (jitted: eager calls reuse the compiled search).

    ``a, b`` are the weight arrays (for the mean-difference start); ``a_s, b_s`` the weights
    the 1-D solver sees (``None`` keeps its uniform fast paths). No gradient flows out.
    """
    x, y, a, b, lr0 = (lax.stop_gradient(t) for t in (x, y, a, b, lr0))
    a_s = None if a_s is None else lax.stop_gradient(a_s)
    b_s = None if b_s is None else lax.stop_gradient(b_s)
    d = x.shape[1]

    def objective(theta):
        return projected_wpp(x, y, a_s, b_s, theta[None, :], p)[0]

    f_and_g = jax.value_and_grad(objective)

    # Starting directions: mean difference (if non-zero), then random.
    starts = random_projections(key, n_restarts, d, x.dtype)
    delta = jnp.sum(a[:, None] * x, 0) - jnp.sum(b[:, None] * y, 0)
    nrm = jnp.linalg.norm(delta)
    ok = nrm > 0
    first = jnp.where(ok, delta / jnp.where(ok, nrm, 1.0), starts[0])
    starts = starts.at[0].set(first)

    thetas, fs, dones, ks, gns = jax.vmap(lambda t0: _ascent(f_and_g, t0, lr0, tol, n_iter))(starts)
    best = jnp.argmax(fs)
    return thetas[best], dones[best], ks[best], gns[best]
