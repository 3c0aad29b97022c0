r"""Gradient-normalized Newton: regularized Newton steps with an approximate Hessian (Algorithm 1
of Semenov, Jaggi and Doikov, arXiv:2506.13710), as a jit-compatible solver."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from geomjax._core import Array, PyTree, as_float_array, check_option
from geomjax.optim import _gnn_linear as lin

_HESSIANS = ("exact", "gauss_newton", "fisher", "diagonal", "none")
_SOLVERS = ("auto", "dense", "cg")
_DENSE_MAX_N = 4096
_RUNNING = -1

STATUS_MESSAGES = {
    0: "converged: the dual norm of the gradient reached tol",
    1: "max_steps accepted steps taken before the gradient norm reached tol",
    2: "the radius search exhausted max_trials trials without an accepted step",
    3: "non-finite value, gradient or Hessian approximation",
    4: "the Hessian approximation is not positive semi-definite",
    5: "converged to the rounding of f: no step can change f measurably, so tol cannot be certified",
}
_CONVERGED = (0, 5)
# Rounding level of a computed value of f, in units of eps * |f|: a few operations' worth. An f
# whose value cancels heavily (large terms summing to a small f) rounds worse than this model.
_F_ROUNDING = 16.0


class NormalizedNewtonHistory(NamedTuple):
    """Per-iterate record of :func:`gradient_normalized_newton`; arrays of length ``max_steps + 1``.

    Entry ``k`` describes iterate :math:`x_k` (``k = 0`` is ``x0``) and the accepted step that
    produced it. Entries past ``n_steps`` repeat the entry at ``n_steps`` (never NaN padding).

    Attributes:
      f: :math:`f(x_k)`.
      grad_norm: :math:`\\|\\nabla f(x_k)\\|_*`.
      gamma: radius :math:`\\gamma_k` that the search at :math:`x_k` starts from (``gamma0`` at 0).
      n_trials: cumulative number of trials (linear solves) spent up to and including the
        search that produced :math:`x_k` (0 at ``k = 0``); ``jnp.diff`` gives trials per step.
      margin: :math:`f(x_{k-1}) - f(x_k) - \\|\\nabla f(x_k)\\|_*^2 / (8\\lambda_{k-1})`, the slack
        of the acceptance test (non-negative; 0 at ``k = 0``).
      lam: :math:`\\lambda_{k-1} = \\|\\nabla f(x_{k-1})\\|_* / \\gamma` of the accepted trial that
        produced :math:`x_k` (0 at ``k = 0``).
      x: with ``record_iterates=True``, the iterates: a pytree like ``x0`` with a leading axis
        of length ``max_steps + 1``; otherwise None.
    """

    f: Array
    grad_norm: Array
    gamma: Array
    n_trials: Array
    margin: Array
    lam: Array
    x: Any = None


class NormalizedNewtonResult(NamedTuple):
    """Output of :func:`gradient_normalized_newton`.

    Attributes:
      x: the last accepted iterate (a pytree like ``x0``); never NaN.
      converged: bool scalar, True for status 0 (``grad_norm <= tol``) and status 5 (stationary to
        the rounding of ``f``; ``grad_norm`` says how close to ``tol`` it got).
      n_steps: int32 scalar, accepted steps taken.
      f: :math:`f(x)` at the returned ``x``.
      grad_norm: :math:`\\|\\nabla f(x)\\|_*` at the returned ``x``.
      status: int32 scalar: 0 converged, 1 ``max_steps`` reached, 2 the radius search exhausted
        ``max_trials``, 3 non-finite value/gradient at ``x0`` or non-finite Hessian
        approximation, 4 Hessian approximation not PSD, 5 converged to the rounding of ``f`` (a
        success: see the "Precision" paragraph of :func:`gradient_normalized_newton`). See
        :attr:`message`.
      history: :class:`NormalizedNewtonHistory`.
      n_fun_evals: int32, evaluations of ``f`` (``1 +`` total trials).
      n_grad_evals: int32, gradient evaluations (``1 +`` total trials; value and gradient are
        computed together).
      n_linear_solves: int32, solves of :math:`(H_k + \\lambda B) s = g` (one per trial).
      n_hessian_vps: int32, products with :math:`H_k` made by CG (0 outside the CG path).
      n_hessian_evals: int32, Hessian approximations formed (one per outer step; 0 for
        ``hessian="none"``).
      gamma: the radius the next search would start from (e.g. to warm-start a new run).
    """

    x: Any
    converged: Array
    n_steps: Array
    f: Array
    grad_norm: Array
    status: Array
    history: NormalizedNewtonHistory
    n_fun_evals: Array
    n_grad_evals: Array
    n_linear_solves: Array
    n_hessian_vps: Array
    n_hessian_evals: Array
    gamma: Array

    @property
    def message(self) -> str:
        """Host-side text for ``status`` (for one run, not a vmapped batch)."""
        return STATUS_MESSAGES.get(int(self.status), f"unknown status {int(self.status)}")

    @property
    def value(self) -> Any:
        """Alias of ``x`` (the Solution convention)."""
        return self.x

    @property
    def n_iters(self) -> Array:
        """Alias of ``n_steps`` (the Solution convention)."""
        return self.n_steps

    @property
    def error(self) -> Array:
        """Alias of ``grad_norm`` (the Solution convention)."""
        return self.grad_norm


class _State(NamedTuple):
    k: Array
    x: Array
    f: Array
    g: Array
    gn: Array
    gamma: Array
    status: Array
    n_trials: Array
    n_hvp: Array
    n_hess: Array
    hist: NormalizedNewtonHistory


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _validate_scalars(fn, gamma0, max_steps, tol, max_trials, cg_max_iter, cg_tol):
    if not _is_int(max_steps) or max_steps < 0:
        raise ValueError(
            f"{fn}: argument `max_steps` must be a non-negative int; got {max_steps!r}"
        )
    if not _is_int(max_trials) or max_trials < 1:
        raise ValueError(f"{fn}: argument `max_trials` must be a positive int; got {max_trials!r}")
    if cg_max_iter is not None and (not _is_int(cg_max_iter) or cg_max_iter < 1):
        raise ValueError(
            f"{fn}: argument `cg_max_iter` must be a positive int or None; got {cg_max_iter!r}"
        )
    for name, val in (("gamma0", gamma0), ("cg_tol", cg_tol)):
        if isinstance(val, numbers.Real) and not val > 0:
            raise ValueError(f"{fn}: argument `{name}` must be positive; got {val!r}")
    if isinstance(gamma0, numbers.Real) and gamma0 == float("inf"):
        raise ValueError(f"{fn}: argument `gamma0` must be finite; got {gamma0!r}")
    if isinstance(tol, numbers.Real) and not tol >= 0:
        raise ValueError(f"{fn}: argument `tol` must be >= 0; got {tol!r}")


def _scalar_shape_check(fn, name, shape_struct, what):
    if not hasattr(shape_struct, "shape") or shape_struct.shape != ():
        raise ValueError(
            f"{fn}: argument `{name}` must return a scalar {what}; got "
            f"{getattr(shape_struct, 'shape', type(shape_struct).__name__)}"
        )
    _float_output_check(fn, name, shape_struct)


def _float_output_check(fn, name, shape_struct):
    # an integer output would be cast to the float dtype with a zero derivative: a silent
    # "converged" at x0; a complex one would drop its imaginary part
    if not jnp.issubdtype(shape_struct.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `{name}` must return real floating values; got dtype "
            f"{shape_struct.dtype}"
        )


def gradient_normalized_newton(
    f: Callable[[PyTree], Array],
    x0: PyTree,
    *,
    hessian: str | Callable[[PyTree], Array] = "exact",
    metric: Any = None,
    gamma0: float = 1.0,
    max_steps: int = 100,
    tol: float = 1e-8,
    max_trials: int = 60,
    linear_solver: str = "auto",
    cg_max_iter: int | None = None,
    cg_tol: float = 1e-10,
    model_fn: Callable[[PyTree], Any] | None = None,
    loss_fn: Callable[[Any], Array] | None = None,
    per_example_fn: Callable[[PyTree], Array] | None = None,
    require_psd: bool = True,
    record_iterates: bool = False,
) -> NormalizedNewtonResult:
    r"""Minimize ``f`` by gradient-normalized regularized Newton steps with an approximate Hessian.

    Algorithm 1 of Semenov, Jaggi and Doikov. With :math:`g_k = \nabla f(x_k)`, a PSD
    approximation :math:`H_k \approx \nabla^2 f(x_k)` (``hessian``), a metric :math:`B \succ 0`
    (``metric``) with dual norm :math:`\|g\|_* = (g^\top B^{-1} g)^{1/2}` and a radius
    :math:`\gamma_k` (``gamma0`` at the start), one step tries

    .. math::

        \lambda_k = \frac{\|g_k\|_*}{\gamma_k}, \qquad
        x_+ = x_k - (H_k + \lambda_k B)^{-1} g_k,

    and accepts :math:`x_+` when

    .. math::

        f(x_k) - f(x_+) \;\ge\; \frac{\|\nabla f(x_+)\|_*^2}{8 \lambda_k} ;

    then :math:`x_{k+1} = x_+` and :math:`\gamma_{k+1} = 2\gamma_k`. Otherwise :math:`\gamma_k`
    is halved and the trial repeated (at most ``max_trials`` trials per step; a trial with a
    non-finite value or gradient is rejected like any other). The step is never longer than
    :math:`\gamma_k` in the :math:`B`-norm, whence the name: :math:`\gamma` is a radius measured
    in units where the gradient is normalized. With :math:`H_k = 0` (``hessian="none"``) the
    step is the normalized gradient step :math:`x_k - \gamma_k B^{-1} g_k / \|g_k\|_*`; with the
    exact Hessian it is a gradient-regularized Newton step, superlinear near a non-degenerate
    minimum. The method adapts to the gradient-normalized smoothness of ``f`` relative to
    :math:`H_k`, so inexact approximations (Gauss-Newton, Fisher, diagonal) keep global
    convergence and get a rate set by how well :math:`H_k` approximates the Hessian. The run
    stops when :math:`\|g_k\|_* \le` ``tol``.

    Hessian approximations (``hessian``), all in the order of
    ``jax.flatten_util.ravel_pytree(x0)`` (``n`` entries):

    * ``"exact"``: :math:`\nabla^2 f` (``jax.hessian``; Hessian-vector products on the CG path);
    * ``"gauss_newton"``: with ``f(x) == loss_fn(model_fn(x))``, the generalized Gauss-Newton
      matrix :math:`J^\top \nabla^2 \ell\, J` (:math:`J` the Jacobian of ``model_fn``; outputs
      may be a pytree), PSD when ``loss_fn`` is convex;
    * ``"fisher"``: with ``per_example_fn(x)`` a vector of :math:`m` per-example losses
      (normally ``f(x) == mean(per_example_fn(x))``; only :math:`H` is built from it), the
      empirical Fisher :math:`\frac1m G^\top G`, :math:`G` the ``(m, n)`` per-example Jacobian.
      With ``linear_solver="auto"`` and :math:`m < n` the solves use the Woodbury identity on
      the ``m x m`` Gram matrix (Sherman-Morrison when :math:`m = 1`, the rank-one case), so
      no ``n x n`` matrix is formed;
    * ``"diagonal"``: the diagonal of :math:`\nabla^2 f` (``n`` Hessian-vector products on the
      CG path); solved elementwise unless ``metric`` is a dense matrix;
    * ``"none"``: :math:`H = 0`;
    * a callable ``hessian(x) -> (n, n)`` array, ``x`` the pytree (the dense solver uses its
      symmetric part; CG multiplies by it as given, so it should be symmetric).

    Linear solves (``linear_solver``): ``"dense"`` eigendecomposes
    :math:`L^{-1} H_k L^{-\top}` (:math:`B = LL^\top`) once per step, which also checks that
    :math:`H_k` is PSD, after which every trial costs :math:`O(n^2)`; ``"cg"`` runs
    preconditioned conjugate gradients (preconditioner :math:`B^{-1}`, start 0, relative
    residual ``cg_tol`` floored at 10 machine epsilons, at most ``cg_max_iter`` products,
    default ``n``) on Hessian-vector / GGN-vector / Fisher-vector products (the
    forward-over-reverse and :math:`J^\top H_\ell J` products of :func:`geomjax.curvature.hvp`
    and :func:`geomjax.curvature.ggn_vp`, linearized once per step so that each product is one
    linear evaluation), and reports status 4 when a search direction :math:`p` shows negative
    curvature of :math:`H_k` (:math:`p^\top H_k p < 0` beyond rounding); ``"auto"`` is
    ``"dense"`` for :math:`n \le 4096` and ``"cg"`` above. ``"diagonal"`` and ``"none"`` need
    no solver.

    With ``require_psd=False`` an indefinite :math:`H_k` (e.g. the exact Hessian of a
    non-convex function) is allowed: a trial for which :math:`H_k + \lambda_k B` is not positive
    definite is rejected and :math:`\gamma` halved, which raises :math:`\lambda` until it is.

    Precision: the acceptance test compares two values of ``f``, so a decrease below the
    rounding of :math:`f` cannot be certified. The rounding is modelled as
    :math:`r = 16\,\epsilon \max(|f(x_k)|, |f(x_+)|)` (:math:`\epsilon` the dtype's machine
    epsilon). A rejected trial whose first-order decrease :math:`g_k^\top (x_k - x_+)` and
    measured change :math:`|f(x_k) - f(x_+)|` are both at most :math:`r` cannot be decided by
    the test, and no smaller radius would change that (unless an earlier trial of the same
    search was non-finite: then ``f`` has a domain edge nearby and the search goes on): the run stops there with status 5,
    ``converged=True``, at :math:`x_k`, which is stationary to the precision that ``f``'s values
    carry (typically :math:`\|g\|_*^2 \lesssim r\,L`). Which of two such rounding-level trials
    happens to pass depends on the platform's summation order, so a ``tol`` near that level ends
    with status 0 on one machine and status 5 on another; both are successes. An ``f`` computed
    with heavy cancellation rounds worse than :math:`r` and may end with status 2 instead.

    The loops are ``jax.lax.while_loop`` s (outer steps, and trials within a step), so the whole
    run can be ``jax.jit``-ed with ``f`` and the other callables closed over; it is not
    reverse-differentiable.

    Args:
      f: objective, ``f(x) -> scalar``.
      x0: starting point, any pytree of floating arrays (flattened internally, total size
        ``n``; the computation runs in the promoted dtype).
      hessian: ``"exact"`` | ``"gauss_newton"`` | ``"fisher"`` | ``"diagonal"`` | ``"none"`` |
        callable ``x -> (n, n)``.
      metric: :math:`B`: None (identity), a positive vector ``(n,)`` (diagonal :math:`B`) or an
        SPD matrix ``(n, n)``, in flattened order (a concrete metric is checked: positive,
        resp. symmetric to rounding and positive definite, ValueError otherwise; a traced one is
        not: its symmetric part is used, and a failed Cholesky factorization gives status 3).
      gamma0: initial radius :math:`\gamma_0 > 0`.
      max_steps: maximum number of accepted steps (static).
      tol: stop when :math:`\|\nabla f(x_k)\|_* \le` ``tol``.
      max_trials: maximum trials (linear solves) per step (static).
      linear_solver: ``"auto"`` | ``"dense"`` | ``"cg"`` (static).
      cg_max_iter: products per CG solve; None means ``n``.
      cg_tol: relative residual tolerance of CG.
      model_fn: for ``"gauss_newton"``: ``model_fn(x) -> outputs`` (array or pytree).
      loss_fn: for ``"gauss_newton"``: ``loss_fn(outputs) -> scalar``, ``f(x) == loss_fn(model_fn(x))``.
      per_example_fn: for ``"fisher"``: ``per_example_fn(x) -> (m,)``.
      require_psd: stop with status 4 when :math:`H_k` is not PSD (default); False allows an
        indefinite :math:`H_k` as described above.
      record_iterates: also store every iterate in ``history.x`` (memory ``(max_steps + 1) n``).

    Returns:
      :class:`NormalizedNewtonResult` ``(x, converged, n_steps, f, grad_norm, status, history,
      n_fun_evals, n_grad_evals, n_linear_solves, n_hessian_vps, n_hessian_evals, gamma)``;
      ``result.message`` explains ``status``. On failure (status 1-4) ``x`` is the last accepted
      iterate and ``converged`` is False; nothing returned is NaN (except ``x`` when ``x0``
      itself is not finite: status 3 at ``x0``).

    Raises:
      ValueError: unknown ``hessian`` / ``linear_solver``; a missing ``model_fn``, ``loss_fn``
        or ``per_example_fn``; a callable ``hessian`` whose output is not ``(n, n)``; a
        ``metric`` not of shape ``(n,)`` or ``(n, n)``; ``f`` or ``loss_fn`` not scalar;
        ``per_example_fn`` not a vector; invalid scalar options.
      TypeError: non-floating ``x0`` or ``metric``; ``f``, ``loss_fn``, ``per_example_fn`` or a
        callable ``hessian`` returning non-floating values.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.optim import gradient_normalized_newton
      >>> a = jnp.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.0], [2.0, 1.0]])
      >>> y = jnp.array([1.0, -1.0, 1.0, -1.0])
      >>> f = lambda w: jnp.mean(jnp.logaddexp(0.0, -y * (a @ w))) + 0.05 * jnp.sum(w**2)
      >>> res = gradient_normalized_newton(f, jnp.zeros(2), tol=1e-6)
      >>> bool(res.converged), res.message
      (True, 'converged: the dual norm of the gradient reached tol')
      >>> float(res.grad_norm) < 1e-6
      True

    References:
      A. Semenov, M. Jaggi, N. Doikov, "Gradient-Normalized Smoothness for Optimization with
      Approximate Hessians", ICLR 2026, arXiv:2506.13710.
      N. Doikov, Y. Nesterov, "Gradient regularization of Newton method with Bregman
      distances", Mathematical Programming 204, 2024, arXiv:2112.02952.
      K. Mishchenko, "Regularized Newton method with global O(1/k^2) convergence", SIAM J.
      Optim. 33(3), 2023, arXiv:2112.02089.
    """
    fn = "gradient_normalized_newton"
    if not callable(f):
        raise TypeError(f"{fn}: argument `f` must be callable; got {type(f).__name__}")
    if not callable(hessian):
        check_option(fn, "hessian", hessian, _HESSIANS)
    check_option(fn, "linear_solver", linear_solver, _SOLVERS)
    _validate_scalars(fn, gamma0, max_steps, tol, max_trials, cg_max_iter, cg_tol)
    if hessian == "gauss_newton" and (model_fn is None or loss_fn is None):
        missing = "model_fn" if model_fn is None else "loss_fn"
        raise ValueError(
            f'{fn}: hessian="gauss_newton" needs argument `{missing}` (f(x) == loss_fn(model_fn(x)))'
        )
    if hessian == "fisher" and per_example_fn is None:
        raise ValueError(
            f'{fn}: hessian="fisher" needs argument `per_example_fn` (x -> (m,) per-example losses)'
        )

    leaves = jax.tree.leaves(x0)
    for leaf in leaves:
        as_float_array(fn, "x0", leaf)
    x_flat, unravel = ravel_pytree(x0)
    n = int(x_flat.size)
    if n < 1:
        raise ValueError(f"{fn}: argument `x0` must hold at least one entry; got {x0!r}")
    dtype = x_flat.dtype

    def f_flat(v):
        return jnp.asarray(f(unravel(v)), dtype)

    _scalar_shape_check(fn, "f", jax.eval_shape(f, x0), "(the objective)")

    # ---- metric
    if metric is None:
        mkind, mval = "identity", None
    else:
        mval = as_float_array(fn, "metric", metric).astype(dtype)
        if mval.shape == (n,):
            mkind = "diagonal"
        elif mval.shape == (n, n):
            mkind = "dense"
        else:
            raise ValueError(
                f"{fn}: argument `metric` must have shape ({n},) or ({n}, {n}); got shape {mval.shape}"
            )
        try:  # concrete: check definiteness now (traced: a failure shows as status 3)
            mnp = np.asarray(mval, np.float64)
        except jax.errors.TracerArrayConversionError:
            mnp = None
        if mnp is not None:
            if mkind == "diagonal":
                ok = bool(np.all(mnp > 0))
            else:  # symmetric to rounding (16 eps of the dtype, relative), then definite
                scale = float(np.max(np.abs(mnp))) if np.all(np.isfinite(mnp)) else np.nan
                sym = np.max(np.abs(mnp - mnp.T)) <= 16 * float(jnp.finfo(dtype).eps) * scale
                ok = bool(sym) and bool(np.linalg.eigvalsh(0.5 * (mnp + mnp.T))[0] > 0)
            if not ok:
                what = (
                    "a positive vector"
                    if mkind == "diagonal"
                    else "a symmetric positive-definite matrix"
                )
                raise ValueError(f"{fn}: argument `metric` must be {what}")

    # ---- which Hessian / which solver (all static)
    use_cg = linear_solver == "cg" or (linear_solver == "auto" and n > _DENSE_MAX_N)
    if callable(hessian):
        out = jax.eval_shape(hessian, x0)
        if getattr(out, "shape", None) != (n, n):
            raise ValueError(
                f"{fn}: callable argument `hessian` must return an array of shape ({n}, {n}) "
                f"(n = size of the flattened x0); got {getattr(out, 'shape', type(out).__name__)}"
            )
        _float_output_check(fn, "hessian", out)
        kind = "callable"
    else:
        kind = hessian
    if kind == "gauss_newton":
        _scalar_shape_check(
            fn, "loss_fn", jax.eval_shape(lambda x: loss_fn(model_fn(x)), x0), "(the loss)"
        )

        def model_flat(v):
            return ravel_pytree(model_fn(unravel(v)))[0].astype(dtype)

        z_struct = jax.eval_shape(lambda x: ravel_pytree(model_fn(x))[0], x0)
        _, unravel_z = ravel_pytree(
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(model_fn, x0))
        )

        def loss_flat(z):
            return jnp.asarray(loss_fn(unravel_z(z)), dtype)

        n_out = int(z_struct.size)
    n_ex = 0
    if kind == "fisher":
        e_struct = jax.eval_shape(per_example_fn, x0)
        if getattr(e_struct, "ndim", None) != 1 or e_struct.shape[0] < 1:
            raise ValueError(
                f"{fn}: argument `per_example_fn` must return a vector (m,) of per-example losses; "
                f"got {getattr(e_struct, 'shape', type(e_struct).__name__)}"
            )
        _float_output_check(fn, "per_example_fn", e_struct)
        n_ex = int(e_struct.shape[0])

        def per_flat(v):
            return jnp.asarray(per_example_fn(unravel(v)), dtype)

    if kind == "none":
        mode = "none"
    elif kind == "diagonal":
        mode = "diagonal" if mkind != "dense" else "dense"
    elif kind == "fisher" and linear_solver == "auto" and n_ex < n:
        mode = "woodbury"
    else:
        mode = "cg" if use_cg else "dense"
    cg_iters = n if cg_max_iter is None else int(cg_max_iter)
    clip_psd = bool(require_psd)

    mt = lin.make_metric(mkind, mval)
    grad_f = jax.grad(f_flat)
    value_and_grad = jax.value_and_grad(f_flat)

    def diag_hessian(x):
        if not use_cg:
            return jnp.diag(jax.hessian(f_flat)(x))
        _, hv = jax.linearize(grad_f, x)
        return jax.lax.map(
            lambda i: hv(jax.nn.one_hot(i, n, dtype=dtype))[i], jnp.arange(n), batch_size=min(n, 32)
        )

    def dense_matrix(x):
        if kind == "exact":
            return jax.hessian(f_flat)(x)
        if kind == "callable":
            return jnp.asarray(hessian(unravel(x)), dtype)
        if kind == "gauss_newton":
            jac = (jax.jacfwd if n <= n_out else jax.jacrev)(model_flat)(x)  # (n_out, n)
            _, hl = jax.linearize(jax.grad(loss_flat), model_flat(x))
            hj = jax.vmap(hl, in_axes=1, out_axes=1)(jac)
            return jac.T @ hj
        if kind == "fisher":
            gm = (jax.jacrev if n_ex <= n else jax.jacfwd)(per_flat)(x)  # (m, n)
            return gm.T @ gm / n_ex
        return jnp.diag(diag_hessian(x))  # diagonal with a dense metric

    def matvec_fn(x):
        if kind == "exact":
            return jax.linearize(grad_f, x)[1]
        if kind == "callable":
            h = jnp.asarray(hessian(unravel(x)), dtype)
            return lambda v: h @ v
        if kind == "gauss_newton":
            z, jvp = jax.linearize(model_flat, x)
            vjp = jax.linear_transpose(jvp, x)
            _, hl = jax.linearize(jax.grad(loss_flat), z)
            return lambda v: vjp(hl(jvp(v)))[0]
        _, jvp = jax.linearize(per_flat, x)  # fisher
        vjp = jax.linear_transpose(jvp, x)
        return lambda v: vjp(jvp(v))[0] / n_ex

    eps = float(jnp.finfo(dtype).eps)
    cg_rtol = (
        max(float(cg_tol), 10.0 * eps)
        if isinstance(cg_tol, numbers.Real)
        else jnp.maximum(cg_tol, 10.0 * eps)
    )

    def prepare(x, g):
        if mode == "none":
            return lin.identity_plan(g, mt)
        if mode == "diagonal":
            return lin.diagonal_plan(diag_hessian(x), g, mt, clip_psd)
        if mode == "woodbury":
            gm = (jax.jacrev if n_ex <= n else jax.jacfwd)(per_flat)(x)
            return lin.woodbury_plan(gm.T / jnp.sqrt(jnp.asarray(n_ex, dtype)), g, mt)
        if mode == "cg":
            return lin.cg_plan(matvec_fn(x), g, mt, cg_iters, cg_rtol, clip_psd)
        return lin.dense_plan(dense_matrix(x), g, mt, clip_psd)

    tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    eps_f = jnp.asarray(jnp.finfo(dtype).eps, dtype)
    gamma_cap = jnp.asarray(jnp.sqrt(jnp.finfo(dtype).max), dtype)
    i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
    tol_ = jnp.asarray(tol, dtype)

    # ---- initial point
    f0, g0 = value_and_grad(x_flat)
    gn0 = lin.dual_norm(mt, g0)
    finite0 = jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0)) & jnp.isfinite(gn0)
    f0 = jnp.where(finite0, f0, jnp.zeros_like(f0))
    g0 = jnp.where(finite0, g0, jnp.zeros_like(g0))
    gn0 = jnp.where(finite0, gn0, jnp.zeros_like(gn0))
    done0 = (gn0 <= tol_) | (gn0 == 0)
    status0 = jnp.where(
        ~finite0, i32(3), jnp.where(done0, i32(0), i32(1 if max_steps == 0 else _RUNNING))
    )
    gamma_init = jnp.asarray(gamma0, dtype)

    length = max_steps + 1
    zeros_h = jnp.zeros((length,), dtype)
    hist0 = NormalizedNewtonHistory(
        f=zeros_h.at[0].set(f0),
        grad_norm=zeros_h.at[0].set(gn0),
        gamma=zeros_h.at[0].set(gamma_init),
        n_trials=jnp.zeros((length,), jnp.int32),
        margin=zeros_h,
        lam=zeros_h,
        x=jnp.zeros((length, n), dtype).at[0].set(x_flat) if record_iterates else None,
    )
    state0 = _State(i32(0), x_flat, f0, g0, gn0, gamma_init, status0, i32(0), i32(0), i32(0), hist0)

    def outer_cond(s):
        return s.status == _RUNNING

    def outer_body(s):
        solve, plan_finite, plan_psd = prepare(s.x, s.g)
        pre = jnp.where(~plan_finite, i32(3), jnp.where(~plan_psd & clip_psd, i32(4), i32(0)))

        # trial carry: j, gamma, accepted, abort, x_new, f_new, g_new, gn_new, lam, margin, n_hvp,
        # and whether a trial of this search was non-finite
        def t_cond(c):
            return (c[0] < max_trials) & ~c[2] & (c[3] == 0)

        def t_body(c):
            j, gamma, _, _, x_new, f_new, g_new, gn_new, lam_a, margin_a, nh, seen_bad = c
            lam = s.gn / gamma
            step, pd, fin, used, psd_ok = solve(lam)
            xt = s.x - step
            ft, gt = value_and_grad(xt)
            gnt = lin.dual_norm(mt, gt)
            finite_trial = (
                jnp.all(jnp.isfinite(step))
                & jnp.isfinite(ft)
                & jnp.all(jnp.isfinite(gt))
                & jnp.isfinite(gnt)
            )
            ok_trial = jnp.isfinite(lam) & (lam > 0) & pd & fin & finite_trial
            seen_bad = seen_bad | ~finite_trial
            margin = (s.f - ft) - gnt * gnt / (8.0 * lam)
            accept = ok_trial & (margin >= 0)
            # Undecidable at the rounding of f: predicted and measured changes both below it. Not
            # after a non-finite trial: there f has a domain edge nearby, not a stationary point.
            r = _F_ROUNDING * eps_f * jnp.maximum(jnp.abs(s.f), jnp.abs(ft))
            undecidable = (
                ok_trial
                & ~accept
                & ~seen_bad
                & (jnp.vdot(s.g, step) <= r)
                & (jnp.abs(s.f - ft) <= r)
            )
            abort = jnp.where(~fin, i32(3), jnp.where((~pd | ~psd_ok) & clip_psd, i32(4), i32(0)))
            abort = jnp.where((abort == 0) & undecidable, i32(5), abort)
            sel = lambda a, b: jnp.where(accept, a, b)  # noqa: E731
            gamma_next = jnp.where(accept | (abort != 0), gamma, jnp.maximum(gamma * 0.5, tiny))
            return (
                j + 1,
                gamma_next,
                accept,
                abort,
                sel(xt, x_new),
                sel(ft, f_new),
                sel(gt, g_new),
                sel(gnt, gn_new),
                sel(lam, lam_a),
                sel(margin, margin_a),
                nh + used,
                seen_bad,
            )

        zero = jnp.zeros((), dtype)
        no = jnp.asarray(False)
        t0 = (i32(0), s.gamma, no, pre, s.x, s.f, s.g, s.gn, zero, zero, i32(0), no)
        j, gamma, accepted, abort, x_new, f_new, g_new, gn_new, lam, margin, nh, _ = (
            jax.lax.while_loop(t_cond, t_body, t0)
        )

        k = s.k + jnp.where(accepted, 1, 0).astype(jnp.int32)
        n_trials = s.n_trials + j
        gamma_out = jnp.where(accepted, jnp.minimum(2.0 * gamma, gamma_cap), gamma)
        conv = accepted & ((gn_new <= tol_) | (gn_new == 0))
        status = jnp.where(
            abort != 0,
            abort,
            jnp.where(
                ~accepted,
                i32(2),
                jnp.where(conv, i32(0), jnp.where(k >= max_steps, i32(1), i32(_RUNNING))),
            ),
        )
        h = s.hist

        def put(arr, v):
            return jnp.where(accepted, arr.at[k].set(v), arr)

        hist = NormalizedNewtonHistory(
            f=put(h.f, f_new),
            grad_norm=put(h.grad_norm, gn_new),
            gamma=put(h.gamma, gamma_out),
            n_trials=put(h.n_trials, n_trials),
            margin=put(h.margin, margin),
            lam=put(h.lam, lam),
            x=put(h.x, x_new) if record_iterates else None,
        )
        return _State(
            k,
            x_new,
            f_new,
            g_new,
            gn_new,
            gamma_out,
            status,
            n_trials,
            s.n_hvp + nh,
            s.n_hess + (0 if mode == "none" else 1),
            hist,
        )

    out = jax.lax.while_loop(outer_cond, outer_body, state0)

    # ---- pad the history past n_steps with its last entry
    idx = jnp.arange(length)
    past = idx > out.k

    def pad(arr):
        last = arr[out.k]
        mask = past.reshape((length,) + (1,) * (arr.ndim - 1))
        return jnp.where(mask, last, arr)

    hist = NormalizedNewtonHistory(
        f=pad(out.hist.f),
        grad_norm=pad(out.hist.grad_norm),
        gamma=pad(out.hist.gamma),
        n_trials=pad(out.hist.n_trials),
        margin=pad(out.hist.margin),
        lam=pad(out.hist.lam),
        x=jax.vmap(unravel)(pad(out.hist.x)) if record_iterates else None,
    )
    return NormalizedNewtonResult(
        x=unravel(out.x),
        converged=(out.status == _CONVERGED[0]) | (out.status == _CONVERGED[1]),
        n_steps=out.k,
        f=out.f,
        grad_norm=out.gn,
        status=out.status,
        history=hist,
        n_fun_evals=1 + out.n_trials,
        n_grad_evals=1 + out.n_trials,
        n_linear_solves=out.n_trials,
        n_hessian_vps=out.n_hvp,
        n_hessian_evals=out.n_hess,
        gamma=out.gamma,
    )
