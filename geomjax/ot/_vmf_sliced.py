r"""Sliced Wasserstein with von Mises-Fisher slicing (v-SW) and its distributional version (v-DSW).

The projecting directions are drawn from a von Mises-Fisher distribution instead of the uniform
one. With the concentration ``kappa`` fixed, maximizing over the vMF location gives the
von Mises-Fisher distributional sliced Wasserstein distance (v-DSW), a metric between
measures that interpolates between sliced Wasserstein (``kappa -> 0``) and max-sliced
Wasserstein (``kappa -> inf``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    check_key,
    check_scalar,
    eps,
    safe_div,
    safe_norm,
)
from geomjax.ot._measures import check_measures
from geomjax.ot._sliced import _check_count, projected_wpp, random_projections
from geomjax.ot._vmf_sampling import (
    check_direction,
    check_kappa,
    rotate_rows,
    sample_von_mises_fisher,
    unit_direction,
)
from geomjax.ot._wasserstein_1d import check_p, root_p

__all__ = [
    "vmf_sliced_wasserstein",
    "distributional_sliced_wasserstein",
    "DistributionalSlicedWassersteinResult",
]


def _setup(fn, key, x, y, a, b, p, n_projections, chunk_size):
    check_key(fn, "key", key)
    p = check_p(fn, p)
    a_none, b_none = a is None, b is None
    x, y, a, b = check_measures(fn, x, y, a, b)
    _check_count(fn, "n_projections", n_projections)
    if chunk_size is not None:
        _check_count(fn, "chunk_size", chunk_size)
    # Leave omitted weights as None: projected_wpp has a fast path for uniform weights.
    return x, y, (None if a_none else a), (None if b_none else b), p


def vmf_sliced_wasserstein(
    key: PRNGKey,
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    *,
    location: ArrayLike,
    kappa: ArrayLike,
    n_projections: int = 128,
    p: float = 2,
    chunk_size: int | None = None,
) -> Array:
    r"""Sliced Wasserstein distance with directions from :math:`\mathrm{vMF}(\epsilon, \kappa)`.

    With :math:`\mu = \sum_i a_i \delta_{x_i}`, :math:`\nu = \sum_j b_j \delta_{y_j}`, the
    location :math:`\epsilon` = ``location`` and :math:`\theta_1, \dots, \theta_L` drawn from
    the von Mises-Fisher distribution on :math:`S^{d-1}`,

    .. math::

        \widehat{vSW}_p(\mu, \nu; \epsilon, \kappa) = \Big( \frac1L \sum_{l=1}^L
            W_p^p(\theta_{l\#}\mu, \theta_{l\#}\nu) \Big)^{1/p}
        \approx \Big( \mathbb{E}_{\theta \sim \mathrm{vMF}(\epsilon, \kappa)}
            W_p^p(\theta_\#\mu, \theta_\#\nu) \Big)^{1/p}.

    ``kappa -> 0`` gives the sliced Wasserstein distance (uniform directions), ``kappa -> inf``
    the 1-D distance :math:`W_p(\epsilon_\#\mu, \epsilon_\#\nu)` along the single direction
    ``location``. The directions are reparameterized samples, so the estimate is differentiable
    with respect to ``location`` (normalized inside: its gradient at a unit location is
    tangent to the sphere), ``x``, ``y``, ``a`` and ``b``; ``kappa`` gets no gradient.

    Args:
      key: PRNG key for the directions.
      x: support of :math:`\mu`, shape ``(n, d)``.
      y: support of :math:`\nu`, shape ``(m, d)``.
      a: weights of ``x``, shape ``(n,)``; ``None`` means uniform. Concrete weights must be
        non-negative and sum to one (not checked when traced).
      b: weights of ``y``, shape ``(m,)``; same rules.
      location: vMF mean direction :math:`\epsilon`, shape ``(d,)``, nonzero (normalized).
      kappa: concentration, positive scalar (checked when concrete).
      n_projections: number ``L`` of directions (static).
      p: static order ``p >= 1``.
      chunk_size: static number of directions per chunk (``None``: automatic).

    Returns:
      Scalar estimate. Value 0 and finite gradients at ``x == y``.

    Raises:
      ValueError / TypeError: as ``check_measures``; ``location`` of the wrong shape or zero;
        ``kappa`` not a positive scalar; ``p < 1``; bad ``n_projections`` or ``chunk_size``;
        ``key`` not a single PRNG key.

    Input domain: NaN or inf in ``x``, ``y``, ``location`` or traced weights give a non-finite
    value (NaN in, NaN out), as does a traced ``kappa`` that is negative, infinite or NaN;
    finite traced weights that are negative or do not sum to one are used as given (a finite
    value of no meaning).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.ot._vmf_sliced import vmf_sliced_wasserstein
      >>> x = jax.random.normal(jax.random.key(0), (64, 3))
      >>> y = x + jnp.array([2.0, 0.0, 0.0])  # a translation: W_2 along theta is |theta_1| * 2
      >>> v = vmf_sliced_wasserstein(jax.random.key(1), x, y, location=jnp.array([1.0, 0.0, 0.0]),
      ...                            kappa=1e4, n_projections=64)
      >>> round(float(v), 3)
      2.0

    References:
      K. Nguyen, D. Nguyen, N. Ho, "Self-Attention Amortized Distributional Projection
      Optimization for Sliced Wasserstein Point-Cloud Reconstruction", ICML 2023,
      arXiv:2301.04791.
      K. Nguyen, N. Ho, T. Pham, H. Bui, "Distributional Sliced-Wasserstein and Applications
      to Generative Modeling", ICLR 2021, arXiv:2002.07367.
    """
    fn = "vmf_sliced_wasserstein"
    x, y, a, b, p = _setup(fn, key, x, y, a, b, p, n_projections, chunk_size)
    loc = check_direction(fn, "location", location, x.shape[1]).astype(x.dtype)
    kappa = check_kappa(fn, kappa, x.dtype)
    thetas = sample_von_mises_fisher(key, loc, kappa, (n_projections,))
    return root_p(jnp.mean(projected_wpp(x, y, a, b, thetas, p, chunk_size)), p)


class DistributionalSlicedWassersteinResult(NamedTuple):
    """Output of :func:`distributional_sliced_wasserstein`.

    Attributes:
      value: scalar v-DSW estimate at ``location`` (differentiable in ``x, y, a, b``).
      location: ``(d,)`` unit vector, the maximizing vMF location (no gradient).
      converged: bool scalar, the ascent stopped because its next move was at most ``tol``
        (radians), not because ``max_iter`` ran out, at a finite objective.
      n_iters: int32 scalar, ascent steps taken (accepted or rejected).
      grad_norm: scalar, :math:`\\|\\operatorname{grad} \\log F\\|` at ``location``.
    """

    value: Array
    location: Array
    converged: Array
    n_iters: Array
    grad_norm: Array


def distributional_sliced_wasserstein(
    key: PRNGKey,
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    *,
    kappa: ArrayLike,
    n_projections: int = 128,
    p: float = 2,
    max_iter: int = 100,
    learning_rate: float = 1.0,
    tol: float | None = None,
    init: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> DistributionalSlicedWassersteinResult:
    r"""von Mises-Fisher distributional sliced Wasserstein distance (v-DSW).

    .. math::

        \mathrm{vDSW}_p(\mu, \nu; \kappa) = \max_{\epsilon \in S^{d-1}}
            \Big( \mathbb{E}_{\theta \sim \mathrm{vMF}(\epsilon, \kappa)}
            W_p^p(\theta_\#\mu, \theta_\#\nu) \Big)^{1/p}.

    For a fixed ``kappa`` this is a metric on measures with finite ``p``-th moment (Nguyen et
    al., 2023); it lies between the sliced (``kappa -> 0``) and the max-sliced
    (``kappa -> inf``) Wasserstein distances.

    The expectation is replaced by a sample average over ``L`` directions drawn once,
    :math:`\theta_l^0 \sim \mathrm{vMF}(\epsilon_0, \kappa)` at the initial location, and
    carried to the current location by the minimal rotation :math:`R(\epsilon_0 \to
    \epsilon)` (so :math:`\theta_l = R\,\theta_l^0 \sim \mathrm{vMF}(\epsilon, \kappa)`):
    :math:`F(\epsilon) = \frac1L \sum_l W_p^p(\theta_{l\#}\mu, \theta_{l\#}\nu)`. ``F`` is
    then a deterministic function (the rotation is smooth except at :math:`-\epsilon_0`, which
    the ascent has no reason to approach since :math:`F(-\epsilon) \approx F(\epsilon)`),
    maximized by Riemannian gradient ascent on the sphere applied to :math:`\log F`
    (invariant to the scale of the data):

    .. math::

        \epsilon \leftarrow \frac{\epsilon + \eta\, g}{\|\epsilon + \eta\, g\|}, \qquad
        g = \frac{(I - \epsilon\epsilon^\top) \nabla F(\epsilon)}{F(\epsilon)},

    with step :math:`\eta` = ``learning_rate``; a step that decreases ``F`` is rejected and
    :math:`\eta` halved, an accepted one grows :math:`\eta` by 1.5, so ``F`` increases
    monotonically. It stops when the next proposed move :math:`\eta \|g\|` (an angle) is at
    most ``tol``: near a smooth maximum because :math:`g \to 0`, at a kink (the sorted 1-D
    costs make ``F`` piecewise smooth, so the maximum can sit where ``g`` jumps) because
    rejected steps shrink :math:`\eta`; or after ``max_iter`` steps. The
    returned ``value`` is :math:`F(\epsilon^*)^{1/p}` at the final location (held fixed, so
    its gradient with respect to ``x, y, a, b`` is the envelope-theorem gradient of the max;
    ``F`` is piecewise smooth because of the sorting, and where the maximum sits on a kink this
    is one of the one-sided derivatives, as for max-sliced Wasserstein).
    As for max-sliced Wasserstein, maximizing a Monte-Carlo average biases the value upward by
    a term that vanishes as ``L`` grows.

    Args:
      key: PRNG key (initial location when ``init`` is None, and the directions).
      x: support of :math:`\mu`, shape ``(n, d)``.
      y: support of :math:`\nu`, shape ``(m, d)``.
      a: weights of ``x``, shape ``(n,)``; ``None`` means uniform (concrete weights checked).
      b: weights of ``y``, shape ``(m,)``; same rules.
      kappa: concentration, positive scalar (checked when concrete); fixed, not optimized.
      n_projections: number ``L`` of directions (static).
      p: static order ``p >= 1``.
      max_iter: maximum number of ascent steps (static int >= 1).
      learning_rate: initial step :math:`\eta` on :math:`\log F` (positive).
      tol: stopping tolerance on the angular move :math:`\eta \|g\|` (non-negative);
        ``None`` means :math:`\sqrt{\varepsilon}` of the dtype (a finer location does not
        change ``F`` at that precision).
      init: optional initial location, shape ``(d,)``, nonzero; default a uniform direction.
      chunk_size: static number of directions per chunk (``None``: automatic).

    Returns:
      :class:`DistributionalSlicedWassersteinResult` ``(value, location, converged, n_iters,
      grad_norm)``. At ``x == y`` the value is 0 (``converged`` True, finite gradients).

    Raises:
      ValueError / TypeError: as :func:`vmf_sliced_wasserstein`; bad ``max_iter``,
        ``learning_rate`` (not positive and finite), ``tol`` (negative) or ``init``.

    Input domain: NaN or inf in ``x``, ``y``, ``init`` or traced weights give
    ``converged=False``; finite traced weights that are negative or do not sum to one are
    used as given (finite values of no meaning).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.ot._vmf_sliced import distributional_sliced_wasserstein
      >>> x = jax.random.normal(jax.random.key(0), (64, 3))
      >>> y = x + jnp.array([0.0, 0.0, 2.0])
      >>> res = distributional_sliced_wasserstein(jax.random.key(1), x, y, kappa=1e4)
      >>> bool(res.converged), round(float(res.value), 2), round(float(abs(res.location[2])), 3)
      (True, 2.0, 1.0)

    References:
      K. Nguyen, D. Nguyen, N. Ho, "Self-Attention Amortized Distributional Projection
      Optimization for Sliced Wasserstein Point-Cloud Reconstruction", ICML 2023,
      arXiv:2301.04791.
      K. Nguyen, N. Ho, T. Pham, H. Bui, "Distributional Sliced-Wasserstein and Applications
      to Generative Modeling", ICLR 2021, arXiv:2002.07367.
    """
    fn = "distributional_sliced_wasserstein"
    x, y, a, b, p = _setup(fn, key, x, y, a, b, p, n_projections, chunk_size)
    d, dtype = x.shape[1], x.dtype
    kappa = check_kappa(fn, kappa, dtype)
    _check_count(fn, "max_iter", max_iter)
    check_scalar(fn, "learning_rate", learning_rate)
    if tol is None:
        tol = eps(dtype) ** 0.5
    check_scalar(fn, "tol", tol, positive=False, allow_inf=True)
    key_init, key_dirs = jax.random.split(key)
    if init is None:
        loc0 = random_projections(key_init, 1, d, dtype)[0]
    else:
        loc0 = check_direction(fn, "init", init, d).astype(dtype)
    loc0 = jax.lax.stop_gradient(unit_direction(loc0))
    thetas0 = sample_von_mises_fisher(key_dirs, loc0, kappa, (n_projections,))
    thetas0 = jax.lax.stop_gradient(thetas0)

    # The ascent sees constants only: the location gets no gradient (envelope theorem).
    loc, converged, n_iters, g_norm = _ascend(
        jax.lax.stop_gradient((x, y, a, b)),
        loc0,
        thetas0,
        jnp.asarray(learning_rate, dtype),
        jnp.asarray(tol, dtype),
        max_iter=max_iter,
        p=p,
        chunk_size=chunk_size,
    )
    loc = jax.lax.stop_gradient(loc)
    value = root_p(_objective(loc, (x, y, a, b), loc0, thetas0, p, chunk_size), p)
    return DistributionalSlicedWassersteinResult(value, loc, converged, n_iters, g_norm)


def _objective(loc, measures, loc0, thetas0, p, chunk_size):
    """``F(loc)``: mean ``W_p^p`` over the directions ``thetas0`` rotated from ``loc0`` to
    ``loc``."""
    x, y, a, b = measures
    thetas = rotate_rows(loc0, loc, thetas0)
    return jnp.mean(projected_wpp(x, y, a, b, thetas, p, chunk_size))


@functools.partial(jax.jit, static_argnames=("max_iter", "p", "chunk_size"))
def _ascend(measures, loc0, thetas0, learning_rate, tol, *, max_iter, p, chunk_size):
    """Monotone Riemannian gradient ascent of ``log F`` on the sphere (jitted: cached across
    eager calls). Returns ``(location, converged, n_iters, grad_norm)``."""
    value_and_grad = jax.value_and_grad(_objective)

    def rgrad_log(loc):
        f, g = value_and_grad(loc, measures, loc0, thetas0, p, chunk_size)
        g = g - jnp.dot(g, loc) * loc
        return f, safe_div(g, f)

    def cond(state):
        i, _, _, g, step = state
        return jnp.logical_and(i < max_iter, step * safe_norm(g) > tol)

    def body(state):
        i, loc, f, g, step = state
        cand = loc + step * g
        cand = safe_div(cand, safe_norm(cand))
        f_new, g_new = rgrad_log(cand)
        ok = f_new >= f
        return (
            i + 1,
            jnp.where(ok, cand, loc),
            jnp.where(ok, f_new, f),
            jnp.where(ok, g_new, g),
            jnp.where(ok, 1.5 * step, 0.5 * step),
        )

    f0, g0 = rgrad_log(loc0)
    state = (jnp.asarray(0, jnp.int32), loc0, f0, g0, learning_rate)
    n_iters, loc, f, g, step = jax.lax.while_loop(cond, body, state)
    g_norm = safe_norm(g)
    # A non-finite F (NaN or inf in the data) is never a converged answer.
    return loc, jnp.logical_and(step * g_norm <= tol, jnp.isfinite(f)), n_iters, g_norm
