"""Entropic optimal transport between point clouds: thin facades over ott-jax's Sinkhorn solver,
the Sinkhorn divergence, and a ground cost from any geomjax manifold."""

from __future__ import annotations

import inspect
import math
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from ott.geometry import costs as ott_costs
from ott.geometry import pointcloud
from ott.solvers import linear as ott_linear
from ott.solvers.linear import sinkhorn as ott_sinkhorn
from ott.tools import sinkhorn_divergence as ott_sd

from geomjax._core import Array, ArrayLike, as_float_array, check_scalar
from geomjax.ot._measures import check_measures

__all__ = [
    "ManifoldCost",
    "SinkhornDivergenceOutput",
    "SinkhornOutput",
    "sinkhorn",
    "sinkhorn_divergence",
]


@jtu.register_pytree_node_class
class ManifoldCost(ott_costs.CostFn):
    r"""ott-jax ground cost :math:`c(x, y) = d_{\mathcal M}(x, y)^2`, the squared geodesic
    distance of a geomjax manifold.

    Uses ``manifold.sqdist`` when the manifold has one (smooth at ``x = y``), else
    ``manifold.dist(x, y) ** 2`` (first derivatives exact and finite at ``x = y``; second
    derivatives there can be off where ``dist`` is cut to 0 below round-off). ott stores point clouds as ``(n, p)`` arrays, so points arrive
    flattened and are reshaped to ``manifold.point_shape`` (``p = prod(point_shape)``); the
    facades :func:`sinkhorn` and :func:`sinkhorn_divergence` do the flattening. Registered as a
    pytree with the manifold as its child, so it passes through ``jax.jit`` and a metric
    parameter of the manifold (e.g. a curvature) can be differentiated.

    Args:
      manifold: a :class:`geomjax.manifolds.Manifold` (any object with ``dist(x, y)`` and a
        ``point_shape`` tuple of ints).

    Input domain: points are neither checked nor projected onto the manifold; a point off it
    gets whatever ``manifold.sqdist`` / ``manifold.dist`` compute for it (use
    ``manifold.check_point`` or ``manifold.proj`` first when that matters).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import Sphere
      >>> from geomjax.ot import ManifoldCost
      >>> cost = ManifoldCost(Sphere(2))
      >>> round(float(cost(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0]))), 5)  # (pi/2)^2
      2.4674

    References:
      M. Cuturi, L. Meng-Papaxanthos, Y. Tian, C. Bunne, G. Davis, O. Teboul, "Optimal
      Transport Tools (OTT): A JAX Toolbox for all things Wasserstein", arXiv:2201.12324, 2022.
    """

    def __init__(self, manifold: Any):
        _check_manifold("ManifoldCost", "manifold", manifold)
        self.manifold = manifold

    def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        shape = tuple(self.manifold.point_shape)
        for name, z in (("x", x), ("y", y)):
            if jnp.size(z) != math.prod(shape):
                raise ValueError(
                    f"ManifoldCost: argument `{name}` must be one point of shape {shape} (or "
                    f"flattened, {math.prod(shape)} entries); got shape {jnp.shape(z)}"
                )
        x, y = jnp.reshape(x, shape), jnp.reshape(y, shape)
        sqdist = getattr(self.manifold, "sqdist", None)
        if sqdist is not None:
            return sqdist(x, y)
        d = self.manifold.dist(x, y)
        return d * d

    def tree_flatten(self):  # noqa: D102
        return (self.manifold,), None

    @classmethod
    def tree_unflatten(cls, aux_data, children):  # noqa: D102
        del aux_data
        obj = object.__new__(cls)
        obj.manifold = children[0]
        return obj


def _is_manifold(obj: Any) -> bool:
    return callable(getattr(obj, "dist", None)) and hasattr(type(obj), "point_shape")


def _check_manifold(fn: str, name: str, manifold: Any) -> None:
    if not _is_manifold(manifold):
        raise TypeError(
            f"{fn}: argument `{name}` must be a geomjax manifold (with `dist` and `point_shape`); "
            f"got {type(manifold).__name__}"
        )
    shape = manifold.point_shape
    if not (isinstance(shape, tuple) and all(isinstance(s, int) for s in shape)):
        raise TypeError(
            f"{fn}: argument `{name}` must have a `point_shape` that is a tuple of ints (product "
            f"manifolds with pytree points are not supported); got point_shape {shape!r}"
        )


def _prepare(fn: str, x, y, a, b, cost, epsilon):
    """Validate the inputs; return ``(x, y, a, b, cost_fn)`` with clouds flattened to 2-D."""
    if cost is None or isinstance(cost, ott_costs.CostFn):
        cost_fn = cost
    elif _is_manifold(cost):
        _check_manifold(fn, "cost", cost)
        shape = tuple(cost.point_shape)
        p = math.prod(shape)
        clouds = []
        for name, z in (("x", x), ("y", y)):
            z = as_float_array(fn, name, z)
            if z.ndim != 1 + len(shape) or z.shape[1:] != shape:
                raise ValueError(
                    f"{fn}: argument `{name}` must have shape (n, *point_shape) = (n, "
                    f"{', '.join(map(str, shape))}) for the manifold cost; got shape {z.shape}"
                )
            clouds.append(jnp.reshape(z, (z.shape[0], p)))
        x, y = clouds
        cost_fn = ManifoldCost(cost)
    else:
        raise TypeError(
            f"{fn}: argument `cost` must be None (squared Euclidean), an ott-jax CostFn or a "
            f"geomjax manifold; got {type(cost).__name__}"
        )
    x, y, a, b = check_measures(fn, x, y, a, b)
    check_scalar(fn, "epsilon", epsilon)
    return x, y, a, b, cost_fn


_SINKHORN_DEFAULTS = inspect.signature(ott_sinkhorn.Sinkhorn.__init__).parameters
#: Keywords ``ott.solvers.linear.solve`` accepts for (full-rank) Sinkhorn, besides the facade's.
_SOLVER_KWARGS = frozenset(
    (set(inspect.signature(ott_linear.solve).parameters) | set(_SINKHORN_DEFAULTS))
    - {"self", "geom", "a", "b", "rank", "kwargs", "threshold", "max_iterations"}
)


def _check_solver_kwargs(fn: str, kwargs: dict, max_iterations, threshold) -> None:
    if "rank" in kwargs:
        raise ValueError(
            f"{fn}: argument `rank` (low-rank Sinkhorn) is not supported by this facade; call "
            "ott.solvers.linear.solve directly"
        )
    unknown = sorted(set(kwargs) - _SOLVER_KWARGS)
    if unknown:
        raise ValueError(
            f"{fn}: argument `{unknown[0]}` is not a keyword of ott's Sinkhorn solver; known "
            f"solver keywords: {sorted(_SOLVER_KWARGS)}"
        )
    inner = kwargs.get("inner_iterations", _SINKHORN_DEFAULTS["inner_iterations"].default)
    try:
        n = operator.index(max_iterations)
    except TypeError:
        n = None
    if n is None or isinstance(max_iterations, bool) or n < inner:
        raise ValueError(
            f"{fn}: argument `max_iterations` must be an int >= inner_iterations ({inner}); "
            f"got {max_iterations!r}"
        )
    check_scalar(fn, "threshold", threshold, positive=False)


def _status(out, threshold) -> tuple[Array, Array, Array]:
    """``(converged, n_iters, marginal_error)`` of an ott ``SinkhornOutput``.

    ``marginal_error`` is the last recorded error (entries ``-1`` mark blocks never run).
    ``converged`` additionally requires that error to be below ``threshold``: ott's own flag is
    also true when the loop stopped early on a non-finite error.
    """
    errors = out.errors
    last = jnp.maximum(jnp.sum(errors != -1) - 1, 0)
    marginal_error = jax.lax.stop_gradient(errors[last])
    converged = jnp.logical_and(out.converged, marginal_error < threshold)
    return converged, out.n_iters, marginal_error


class SinkhornOutput(NamedTuple):
    """Result of :func:`sinkhorn`.

    Attributes:
      cost: entropic OT cost :math:`\\mathrm{OT}_\\varepsilon(a, b)`, scalar.
      plan: transport plan, shape ``(n, m)``, or None unless ``return_plan=True``.
      f: dual potential on ``x``, shape ``(n,)``, or None unless ``return_potentials=True``.
      g: dual potential on ``y``, shape ``(m,)``, or None unless ``return_potentials=True``.
      converged: bool scalar, the last marginal error is below ``threshold`` (and ``epsilon``
        is positive, which is only not checked before when traced).
      n_iters: int scalar, Sinkhorn iterations run (a multiple of ``inner_iterations``).
      marginal_error: last recorded L1 marginal error (``norm_error`` power in general).
    """

    cost: Array
    plan: Array | None
    f: Array | None
    g: Array | None
    converged: Array
    n_iters: Array
    marginal_error: Array


class SinkhornDivergenceOutput(NamedTuple):
    """Result of :func:`sinkhorn_divergence`.

    Attributes:
      divergence: Sinkhorn divergence, scalar.
      converged: bool scalar, all three Sinkhorn problems (x-y, x-x, y-y) converged (False for
        a traced ``epsilon <= 0``).
      n_iters: int scalar, the largest iteration count of the three problems.
      marginal_error: the largest last marginal error of the three problems.
    """

    divergence: Array
    converged: Array
    n_iters: Array
    marginal_error: Array


def sinkhorn(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    *,
    epsilon: float | ArrayLike,
    cost: Any = None,
    max_iterations: int = 2000,
    threshold: float = 1e-3,
    return_plan: bool = False,
    return_potentials: bool = False,
    **solver_kwargs: Any,
) -> SinkhornOutput:
    r"""Entropy-regularized optimal transport between two point clouds (Sinkhorn), via ott-jax.

    With the measures :math:`\sum_i a_i \delta_{x_i}` and :math:`\sum_j b_j \delta_{y_j}` and
    :math:`\varepsilon` = ``epsilon`` (absolute, in the units of the cost):

    .. math::

        \mathrm{OT}_\varepsilon(a, b) = \min_{P \ge 0,\ P 1 = a,\ P^\top 1 = b}
            \sum_{ij} P_{ij} C_{ij} + \varepsilon\, \mathrm{KL}(P \,\|\, a b^\top),
        \qquad C_{ij} = c(x_i, y_j),

    solved in log-domain by Sinkhorn iterations on the dual potentials :math:`(f, g)`, with the
    plan :math:`P_{ij} = \exp((f_i + g_j - C_{ij})/\varepsilon)`. The ground cost :math:`c` is
    ``cost``: None for :math:`\|x - y\|^2`, an ott-jax ``CostFn``, or a geomjax manifold for
    its squared geodesic distance (:class:`ManifoldCost`). ``cost`` is
    :math:`\mathrm{OT}_\varepsilon` (ott's ``reg_ot_cost``, the dual objective); the unregularized
    transport cost of the plan is ``jnp.sum(plan * C)``.

    Gradients w.r.t. ``x``, ``y``, ``a``, ``b`` (and leaves of ``cost``) use ott's implicit
    differentiation and Danskin's theorem; they are accurate when the solver has converged
    (check ``converged``). Weight values are validated only when concrete (not under
    ``jit``/``grad``/``vmap``); zero weights are allowed for values, but their points get NaN
    gradients (ott's convention; ott also forms masked-out NaN intermediates there, which
    ``jax_debug_nans`` reports), so give every point positive mass when differentiating. Wrap
    calls in ``jax.jit``: an eager call retraces ott's solver loop every time.

    Sharded point clouds (several devices or processes). ott-jax takes no ``axis_name``; the
    route is ``jax.jit`` with the clouds sharded along their points on a mesh whose axis is
    ``AxisType.Auto`` (e.g. ``geomjax.distributed.global_mesh(axis_types=(AxisType.Auto,))``
    and :func:`geomjax.distributed.shard_batch`). XLA's partitioner then splits the cost
    matrix by rows: each device holds ``n / k`` rows, the ``f`` update is local, and each ``g``
    update combines the devices' partial log-sum-exps with one all-reduce of ``m`` numbers per
    iteration (plus all-gathers of ``y`` and ``f``); the result equals one device's up to the
    order of those sums (float64: 1e-15 relative, the same iteration count, measured at
    ``n = 128`` on 8 devices). On an ``Explicit`` mesh axis (``jax.make_mesh``'s default) the
    row-sharded cost matrix is rejected with a ``ShardingTypeError``; use ``Auto`` axes. Memory
    per device is that of ``n / k`` rows of the cost matrix (``n m / k`` numbers).

    Args:
      x: source points, shape ``(n, d)``, or ``(n, *manifold.point_shape)`` with a manifold cost.
      y: target points, shape ``(m, d)`` (or ``(m, *point_shape)``).
      a: source weights, shape ``(n,)``, non-negative, summing to one; None for uniform.
      b: target weights, shape ``(m,)``; None for uniform.
      epsilon: entropic regularization :math:`\varepsilon > 0` (keyword-only, required).
      cost: None, an ``ott.geometry.costs.CostFn``, or a :class:`geomjax.manifolds.Manifold`.
      max_iterations: maximum number of Sinkhorn iterations.
      threshold: tolerance on the marginal error (L1 norm by default) to stop.
      return_plan: also return the dense plan, shape ``(n, m)``.
      return_potentials: also return the dual potentials ``f`` and ``g``.
      **solver_kwargs: forwarded to ``ott.solvers.linear.solve`` and
        ``ott.solvers.linear.sinkhorn.Sinkhorn`` (e.g. ``inner_iterations``, ``lse_mode``,
        ``momentum``, ``implicit_diff``, ``tau_a``/``tau_b``); ``rank`` is not supported.

    Returns:
      :class:`SinkhornOutput` ``(cost, plan, f, g, converged, n_iters, marginal_error)``.

    Raises:
      ValueError: wrong ranks, ``x`` and ``y`` of different dimensions, points not of the
        manifold's ``point_shape``, weights of the wrong shape, negative or not summing to one
        (when concrete), a non-positive or non-finite ``epsilon`` (when concrete),
        ``max_iterations`` not an int >= ``inner_iterations``, a negative ``threshold``, or a
        solver keyword that ott's Sinkhorn does not have.
      TypeError: non-floating inputs, a non-real ``epsilon`` or ``threshold``, or a ``cost`` of
        an unsupported type.

    Input domain: NaN or inf in the points, negative or NaN traced weights and a traced
    ``epsilon <= 0`` give ``converged=False`` (the ``cost`` is then not a valid answer, and is
    often NaN).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.ot import sinkhorn
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
      >>> out = sinkhorn(x, x + jnp.array([0.0, 2.0]), epsilon=1e-2, return_plan=True)
      >>> bool(out.converged), round(float(jnp.sum(out.plan)), 4)
      (True, 1.0)

    References:
      M. Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS
      2013, arXiv:1306.0895.
      M. Cuturi, L. Meng-Papaxanthos, Y. Tian, C. Bunne, G. Davis, O. Teboul, "Optimal
      Transport Tools (OTT): A JAX Toolbox for all things Wasserstein", arXiv:2201.12324, 2022.
    """
    fn = "sinkhorn"
    _check_solver_kwargs(fn, solver_kwargs, max_iterations, threshold)
    x, y, a, b, cost_fn = _prepare(fn, x, y, a, b, cost, epsilon)
    geom = pointcloud.PointCloud(x, y, cost_fn=cost_fn, epsilon=epsilon)
    out = ott_linear.solve(
        geom, a, b, max_iterations=max_iterations, threshold=threshold, **solver_kwargs
    )
    converged, n_iters, marginal_error = _status(out, threshold)
    converged = jnp.logical_and(converged, jnp.asarray(epsilon) > 0)  # traced epsilon <= 0
    return SinkhornOutput(
        cost=out.reg_ot_cost,
        plan=out.matrix if return_plan else None,
        f=out.f if return_potentials else None,
        g=out.g if return_potentials else None,
        converged=converged,
        n_iters=n_iters,
        marginal_error=marginal_error,
    )


def sinkhorn_divergence(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    *,
    epsilon: float | ArrayLike,
    cost: Any = None,
    max_iterations: int = 2000,
    threshold: float = 1e-3,
    **solver_kwargs: Any,
) -> SinkhornDivergenceOutput:
    r"""Sinkhorn divergence between two point clouds (debiased entropic OT), via ott-jax.

    With :math:`\mathrm{OT}_\varepsilon` the entropic cost of :func:`sinkhorn`:

    .. math::

        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
            - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
            - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta).

    :math:`S_\varepsilon(\alpha, \alpha) = 0` (up to the solver tolerance), and for the squared
    Euclidean cost (and others whose Gibbs kernel :math:`e^{-c/\varepsilon}` is positive
    universal) :math:`S_\varepsilon \ge 0` with equality iff :math:`\alpha = \beta`; it
    interpolates between OT (:math:`\varepsilon \to 0`) and an MMD
    (:math:`\varepsilon \to \infty`). With a manifold cost the positivity is not guaranteed
    in general. The symmetric terms use ott's symmetric updates (Feydy et al., Eq. 25).

    Args:
      x: source points, shape ``(n, d)``, or ``(n, *manifold.point_shape)`` with a manifold cost.
      y: target points, shape ``(m, d)`` (or ``(m, *point_shape)``).
      a: source weights, shape ``(n,)``; None for uniform.
      b: target weights, shape ``(m,)``; None for uniform.
      epsilon: entropic regularization :math:`\varepsilon > 0`, shared by the three problems.
      cost: None (squared Euclidean), an ott-jax ``CostFn``, or a geomjax manifold.
      max_iterations, threshold: Sinkhorn stopping rule for each of the three problems.
      **solver_kwargs: forwarded to ``ott.solvers.linear.solve`` for each problem.

    Returns:
      :class:`SinkhornDivergenceOutput` ``(divergence, converged, n_iters, marginal_error)``.

    Raises:
      ValueError, TypeError: as :func:`sinkhorn`.

    Input domain: as :func:`sinkhorn`, invalid values give ``converged=False``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.ot import sinkhorn_divergence
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> out = sinkhorn_divergence(x, x + 1.0, epsilon=1e-2)
      >>> round(float(out.divergence), 2), bool(out.converged)  # ~ W2^2 = 2 for a translation
      (2.0, True)

    References:
      J. Feydy, T. Sejourne, F.-X. Vialard, S. Amari, A. Trouve, G. Peyre, "Interpolating
      between Optimal Transport and MMD using Sinkhorn Divergences", AISTATS 2019,
      arXiv:1810.08278.
      M. Cuturi, L. Meng-Papaxanthos, Y. Tian, C. Bunne, G. Davis, O. Teboul, "Optimal
      Transport Tools (OTT): A JAX Toolbox for all things Wasserstein", arXiv:2201.12324, 2022.
    """
    fn = "sinkhorn_divergence"
    _check_solver_kwargs(fn, solver_kwargs, max_iterations, threshold)
    x, y, a, b, cost_fn = _prepare(fn, x, y, a, b, cost, epsilon)
    solve_kwargs = dict(max_iterations=max_iterations, threshold=threshold, **solver_kwargs)
    div, out = ott_sd.sinkhorn_divergence(
        pointcloud.PointCloud,
        x,
        y,
        a=a,
        b=b,
        cost_fn=cost_fn,
        epsilon=epsilon,
        solve_kwargs=solve_kwargs,
    )
    errors = []
    for errs in out.errors:
        last = jnp.maximum(jnp.sum(errs != -1) - 1, 0)
        errors.append(jax.lax.stop_gradient(errs[last]))
    marginal_error = jnp.max(jnp.stack(errors))
    converged = jnp.logical_and(jnp.all(jnp.stack(out.converged)), marginal_error < threshold)
    converged = jnp.logical_and(converged, jnp.asarray(epsilon) > 0)  # traced epsilon <= 0
    return SinkhornDivergenceOutput(
        divergence=div,
        converged=converged,
        n_iters=jnp.max(jnp.stack(out.n_iters)),
        marginal_error=marginal_error,
    )
