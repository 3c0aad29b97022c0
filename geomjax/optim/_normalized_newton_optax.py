"""Stochastic gradient-normalized Newton steps as an optax transformation.

Algorithm 1 of Semenov, Jaggi and Doikov (arXiv:2506.13710) takes the regularized Newton step
``x+ = x - (H + lambda I)^-1 g`` with ``lambda = ||g|| / gamma`` and accepts it when the decrease
of ``f`` pays for the new gradient, ``f(x) - f(x+) >= ||grad f(x+)||^2 / (8 lambda)``; ``gamma``
doubles after an accepted step and halves after a rejected one. The full-batch method with a
dense solve and a retry loop is :func:`geomjax.optim.gradient_normalized_newton`; this module is
the minibatch variant for training models:

* the curvature ``H`` is a positive semi-definite matrix-free approximation (generalized
  Gauss-Newton, true Fisher or empirical Fisher products from :mod:`geomjax.curvature`, or none);
* the system ``(H + lambda I) d = g`` is solved by a few conjugate-gradient steps started at 0;
* the trial point and the acceptance test use the *same* minibatch as the gradient, so each
  ``update`` is one step of Algorithm 1 on the minibatch loss;
* a rejected trial returns a zero update (optionally after a bounded number of retries with
  halved ``gamma`` in the same call, ``max_trials``).

Why a rejected step is dropped rather than taken anyway (the official code falls through to the
last trial when its retry budget is exhausted): the test is the only certificate the step has,
and a rejection means the regularized quadratic model was not trustworthy at this radius. The
next call tries again from the same point with half the radius (and a fresh minibatch): the
retry of the deterministic method, spread over calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from geomjax._core import Array, PyTree, check_option, pmean_if, vary_if
from geomjax._core._tree_linalg import conjugate_gradient, tree_axpy, tree_vdot
from geomjax.curvature._fisher import empirical_fisher_vp, fisher_vp
from geomjax.curvature._ggn import ggn_vp

__all__ = ["NormalizedNewtonState", "normalized_newton", "scale_by_normalized_newton"]

_CURVATURES = ("gauss_newton", "fisher", "empirical_fisher", "none")
_LIKELIHOODS = ("softmax", "gaussian")


class NormalizedNewtonState(NamedTuple):
    """State of :func:`scale_by_normalized_newton`.

    Attributes:
      count: number of ``update`` calls (int32 scalar).
      gamma: the radius :math:`\\gamma` the next call starts from (float scalar, the parameters'
        float dtype, at least float32).
      accepted: whether the last call's step passed the acceptance test (bool scalar); False
        before the first call and after a skipped call (zero or non-finite gradient).
      n_accepted: number of accepted steps so far (int32 scalar).
      loss: the minibatch loss at the parameters of the last call, before its step (float
        scalar; averaged over devices with ``axis_name``). Zero before the first call.
      grad_norm: the norm of the minibatch gradient of the last call (float scalar).
    """

    count: Array
    gamma: Array
    accepted: Array
    n_accepted: Array
    loss: Array
    grad_norm: Array


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_number(
    fn: str, name: str, value: Any, *, lo: float = 0.0, lo_closed: bool = False
) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"{fn}: argument `{name}` must be a Python number; got {type(value).__name__}"
        )
    ok = value >= lo if lo_closed else value > lo
    if not ok or value != value:
        rel = ">=" if lo_closed else ">"
        raise ValueError(f"{fn}: argument `{name}` must be {rel} {lo}; got {value!r}")


def _check_int_min1(fn: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{fn}: argument `{name}` must be an int >= 1; got {value!r}")


def _check_params(fn: str, params: PyTree) -> None:
    if params is None:
        raise ValueError(
            f"{fn}: `update` needs `params` (the point where the gradient, the curvature and the "
            "trial step are taken); call tx.update(None, state, params, loss_fn=..., batch_args=...)"
        )
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(
            f"{fn}: argument `params` must have at least one array leaf; got {params!r}"
        )
    for x in leaves:
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise TypeError(
                f"{fn}: argument `params` must have real floating leaves; got a leaf of dtype "
                f"{jnp.result_type(x)}"
            )


def _scalar_dtype(params: PyTree):
    """The float dtype of the scalar state: that of the parameters, at least float32."""
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return jnp.promote_types(dtype, jnp.float32)


def _check_callable(fn: str, name: str, value: Any, signature: str, why: str) -> None:
    if value is None or not callable(value):
        raise TypeError(
            f"{fn}: `update` needs the keyword argument `{name}`, a callable {signature}, {why}; got {value!r}"
        )


def _objective_and_curvature(
    fn: str,
    curvature: str,
    likelihood: str,
    axis_name: str | None,
    loss_fn,
    model_fn,
    output_loss_fn,
    per_example_loss_fn,
    batch_args: tuple,
):
    """``(objective(params) -> local scalar, curvature_vp(params, v) -> averaged C v or None)``."""
    given = {
        "loss_fn": loss_fn is not None,
        "model_fn/output_loss_fn": model_fn is not None or output_loss_fn is not None,
        "per_example_loss_fn": per_example_loss_fn is not None,
    }
    if sum(given.values()) > 1:
        names = [k for k, v in given.items() if v]
        raise ValueError(
            f"{fn}: give the objective in one form only (`loss_fn`, or `model_fn` with "
            f"`output_loss_fn`, or `per_example_loss_fn`); got {names}"
        )
    if curvature in ("gauss_newton", "fisher") or given["model_fn/output_loss_fn"]:
        why = f"for curvature={curvature!r}"
        if given["loss_fn"] or given["per_example_loss_fn"]:
            other = "loss_fn" if given["loss_fn"] else "per_example_loss_fn"
            raise ValueError(
                f"{fn}: curvature={curvature!r} needs the objective split as `model_fn` and "
                f"`output_loss_fn` (the loss is output_loss_fn(model_fn(params, inputs), targets)); "
                f"got `{other}` instead"
            )
        _check_callable(fn, "model_fn", model_fn, "model_fn(params, inputs) -> outputs", why)
        _check_callable(
            fn, "output_loss_fn", output_loss_fn, "output_loss_fn(outputs, targets) -> scalar", why
        )
        if len(batch_args) != 2:
            raise ValueError(
                f"{fn}: with `model_fn` and `output_loss_fn`, argument `batch_args` must be the pair "
                f"(inputs, targets); got a tuple of length {len(batch_args)}"
            )
        inputs, targets = batch_args

        def objective(p):
            return output_loss_fn(model_fn(p, inputs), targets)

        if curvature == "gauss_newton":

            def cvp(p, v):
                return ggn_vp(
                    model_fn, output_loss_fn, p, v, (inputs, targets), axis_name=axis_name
                )

        elif curvature == "fisher":

            def cvp(p, v):
                return fisher_vp(model_fn, p, v, inputs, likelihood=likelihood, axis_name=axis_name)

        else:  # "none"
            cvp = None
        return objective, cvp

    if curvature == "empirical_fisher" or given["per_example_loss_fn"]:
        if given["loss_fn"]:
            raise ValueError(
                f"{fn}: curvature={curvature!r} needs the objective as `per_example_loss_fn` (the "
                "loss is its mean over the examples); got `loss_fn` instead"
            )
        sig = "per_example_loss_fn(params, example) -> scalar (example: the i-th slices of batch_args)"
        _check_callable(
            fn, "per_example_loss_fn", per_example_loss_fn, sig, f"for curvature={curvature!r}"
        )
        leaves = jax.tree.leaves(batch_args)
        if (
            not leaves
            or any(jnp.ndim(x) < 1 for x in leaves)
            or len({jnp.shape(x)[0] for x in leaves}) != 1
            or jnp.shape(leaves[0])[0] < 1
        ):
            raise ValueError(
                f"{fn}: with `per_example_loss_fn`, argument `batch_args` must be a tuple of arrays "
                f"sharing a leading batch axis of size >= 1; got shapes "
                f"{[jnp.shape(x) for x in leaves]}"
            )

        def objective(p):
            losses = jax.vmap(per_example_loss_fn, in_axes=(None, 0))(p, batch_args)
            return jnp.mean(losses)

        if curvature == "empirical_fisher":

            def cvp(p, v):
                return empirical_fisher_vp(
                    per_example_loss_fn, p, v, batch_args, axis_name=axis_name
                )

        else:
            cvp = None
        return objective, cvp

    # curvature == "none", objective as loss_fn(params, *batch_args)
    why = "(or give `model_fn` with `output_loss_fn`, or `per_example_loss_fn`)"
    _check_callable(fn, "loss_fn", loss_fn, "loss_fn(params, *batch_args) -> scalar", why)

    def objective(p):
        return loss_fn(p, *batch_args)

    return objective, None


# --------------------------------------------------------------------------------------------
# the transformation
# --------------------------------------------------------------------------------------------


def scale_by_normalized_newton(
    *,
    curvature: str = "gauss_newton",
    gamma0: float = 1.0,
    gamma_min: float = 1e-8,
    gamma_max: float = 1e8,
    cg_steps: int = 10,
    cg_tol: float = 1e-6,
    max_trials: int = 1,
    likelihood: str = "softmax",
    axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Minibatch gradient-normalized Newton steps with an acceptance test (Semenov et al. 2026).

    With parameters :math:`x` (``params``), the minibatch loss :math:`f`, its gradient
    :math:`g = \nabla f(x)`, a positive semi-definite curvature matrix :math:`C` of :math:`f`
    at :math:`x` (``curvature``) and the radius :math:`\gamma` (``state.gamma``), one call
    computes

    .. math::

        \lambda = \frac{\|g\|}{\gamma}, \qquad
        d \approx (C + \lambda I)^{-1} g \quad \text{(}k\text{ CG steps from } 0\text{)}, \qquad
        x^+ = x - d,

    and tests, on the same minibatch,

    .. math::

        f(x) - f(x^+) \ \ge\ \frac{\|\nabla f(x^+)\|^2}{8 \lambda} .

    Accepted: the output is :math:`d` and :math:`\gamma \leftarrow \min(2\gamma,
    \gamma_{\max})`. Rejected: :math:`\gamma \leftarrow \max(\gamma / 2, \gamma_{\min})` and,
    while fewer than ``max_trials`` trials were made, the step is recomputed with the new
    :math:`\gamma`; when every trial is rejected the output is zero. The output is a descent
    direction to be scaled by ``-1`` (:func:`normalized_newton` does), i.e. ``params - d`` is the
    tested trial point.

    Step length. Since :math:`C \succeq 0`, :math:`\|(C + \lambda I)^{-1} g\| \le \|g\| /
    \lambda = \gamma`, and the truncated CG iterates grow monotonically in norm towards that
    solution, so :math:`\|d\| \le \gamma` after any number of CG steps: :math:`\gamma` is a trust
    radius. With ``curvature="none"`` (:math:`C = 0`) the step is exactly the normalized gradient
    step :math:`d = \gamma\, g / \|g\|`, without CG. As :math:`\gamma` grows the step tends to the
    (Gauss-)Newton step :math:`C^{-1} g`.

    Zero or non-finite gradient or loss: the call is skipped (zero output, :math:`\gamma`
    unchanged, ``accepted`` False), so :math:`\lambda = 0` never divides anything. A non-finite
    loss at a trial point fails the test (a rejection).

    The objective is passed to ``update`` in one of three forms, chosen by ``curvature``:

    * ``"gauss_newton"``: ``model_fn(params, inputs)`` and ``output_loss_fn(outputs, targets)``
      (the batch mean), with ``batch_args=(inputs, targets)``; :math:`C = J^\top H_\ell J`, the
      generalized Gauss-Newton matrix (:func:`geomjax.curvature.ggn_vp`).
    * ``"fisher"``: the same arguments; :math:`C` is the Fisher of ``likelihood`` (softmax
      logits or unit-variance Gaussian means, :func:`geomjax.curvature.fisher_vp`). It equals
      the GGN when ``output_loss_fn`` is that likelihood's mean negative log-likelihood
      (cross-entropy, half squared error), and ignores ``output_loss_fn`` otherwise.
    * ``"empirical_fisher"``: ``per_example_loss_fn(params, example)``, the loss of one example,
      where ``example`` is the tuple of the ``i``-th slices of ``batch_args``; the objective is
      the mean over the batch and :math:`C = \frac1n \sum_i g_i g_i^\top`
      (:func:`geomjax.curvature.empirical_fisher_vp`).
    * ``"none"``: :math:`C = 0`; any one of the forms above, or ``loss_fn(params,
      *batch_args)``.

    Cost per call: one gradient at :math:`x`, then per trial up to ``cg_steps`` curvature-vector
    products (a GGN product is about one forward and two backward passes; an empirical Fisher
    product recomputes the ``n`` per-example gradients) and one loss-and-gradient at the trial
    point.

    Args:
      curvature: ``"gauss_newton"`` (default), ``"fisher"``, ``"empirical_fisher"`` or
        ``"none"``, the matrix :math:`C` (see the table).
      gamma0: initial radius :math:`\gamma_0 > 0` (the length of the first step is at most
        this, in the Euclidean norm of all parameters together).
      gamma_min: lower clamp of :math:`\gamma` (``> 0``, ``<= gamma0``).
      gamma_max: upper clamp of :math:`\gamma` (finite, ``>= gamma0``). It keeps a minimum
        damping :math:`\lambda \ge \|g\| / \gamma_{\max} > 0` (an unbounded :math:`\gamma`
        would overflow after enough accepted steps). On small minibatches :math:`C` is low-rank
        and a large :math:`\gamma` approaches an unregularized Newton step fit to the
        minibatch; a smaller ``gamma_max`` is then a cap on the step length.
      cg_steps: maximum number of CG steps :math:`k \ge 1` per solve (ignored for ``"none"``).
      cg_tol: CG stops early when the residual norm is at most ``cg_tol * ||g||`` (``>= 0``).
      max_trials: trials per call (``>= 1``); ``1`` is the plain stochastic method (one trial,
        zero update on rejection); more gives the retry loop of Algorithm 1 on the minibatch.
      likelihood: ``"softmax"`` or ``"gaussian"``, only for ``curvature="fisher"``.
      axis_name: inside ``jax.shard_map``/``pmap``, the data axis. The loss, the gradients (at
        :math:`x` and at the trial point) and every curvature product are ``pmean``-ed over it,
        so with equal shards and the same ``params`` on every device, every device computes the
        update of the full batch, and the acceptance decision is the same everywhere. The
        objective functions should give the mean over the local shard.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`NormalizedNewtonState`. Its
      ``update(updates, state, params, *, batch_args=(), loss_fn=None, model_fn=None,
      output_loss_fn=None, per_example_loss_fn=None)``:

      * ``updates``: ignored (may be ``None``): the loss value is needed as well as the
        gradient, and both come from one ``jax.value_and_grad`` pass. Put this transformation
        first in a chain, and add nothing after it that changes the step (weight decay belongs
        in the loss, where the acceptance test sees it).
      * ``params``: required.
      * ``batch_args``: tuple, the minibatch (see the table).
      * the objective, in the form the table gives for ``curvature``; a missing function raises
        ``TypeError`` naming it.

      Other keyword arguments are ignored (optax's extra-args convention).

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> from geomjax.optim import scale_by_normalized_newton
      >>> model = lambda w, x: x @ w
      >>> loss = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)   # GGN = X^T X / n, the Hessian
      >>> x, y = jnp.array([[1.0, 0.0], [1.0, 3.0]]), jnp.array([1.0, 2.0])
      >>> tx = scale_by_normalized_newton(gamma0=0.5)
      >>> w = jnp.zeros(2)
      >>> d, state = tx.update(None, tx.init(w), w, model_fn=model, output_loss_fn=loss,
      ...                      batch_args=(x, y))
      >>> g = x.T @ (x @ w - y) / 2
      >>> lam = jnp.linalg.norm(g) / 0.5
      >>> bool(jnp.allclose(d, jnp.linalg.solve(x.T @ x / 2 + lam * jnp.eye(2), g)))
      True
      >>> bool(state.accepted), float(state.gamma), bool(jnp.linalg.norm(d) <= 0.5)
      (True, 1.0, True)

    References:
      A. Semenov, M. Jaggi, N. Doikov, "Gradient-Normalized Smoothness for Optimization with
      Approximate Hessians", ICLR 2026, arXiv:2506.13710 (Algorithm 1).
      T. Steihaug, "The conjugate gradient method and trust regions in large scale
      optimization", SIAM Journal on Numerical Analysis 20(3), 1983.
      J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.
    """
    fn = "scale_by_normalized_newton"
    check_option(fn, "curvature", curvature, _CURVATURES)
    check_option(fn, "likelihood", likelihood, _LIKELIHOODS)
    _check_number(fn, "gamma0", gamma0)
    _check_number(fn, "gamma_min", gamma_min)
    _check_number(fn, "gamma_max", gamma_max)
    if gamma_max == float("inf"):
        raise ValueError(f"{fn}: argument `gamma_max` must be finite; got {gamma_max!r}")
    if not gamma_min <= gamma0 <= gamma_max:
        raise ValueError(
            f"{fn}: arguments `gamma_min` <= `gamma0` <= `gamma_max` must hold; got "
            f"{gamma_min!r}, {gamma0!r}, {gamma_max!r}"
        )
    _check_int_min1(fn, "cg_steps", cg_steps)
    _check_number(fn, "cg_tol", cg_tol, lo_closed=True)
    _check_int_min1(fn, "max_trials", max_trials)
    if axis_name is not None and not isinstance(axis_name, str):
        raise TypeError(f"{fn}: argument `axis_name` must be a str or None; got {axis_name!r}")

    def init_fn(params):
        _check_params(fn, params)
        dtype = _scalar_dtype(params)
        zero = jnp.zeros([], dtype)
        return NormalizedNewtonState(
            count=jnp.zeros([], jnp.int32),
            gamma=jnp.asarray(gamma0, dtype),
            accepted=jnp.zeros([], bool),
            n_accepted=jnp.zeros([], jnp.int32),
            loss=zero,
            grad_norm=zero,
        )

    def update_fn(
        updates,
        state,
        params=None,
        *,
        batch_args=(),
        loss_fn=None,
        model_fn=None,
        output_loss_fn=None,
        per_example_loss_fn=None,
        **extra_args,
    ):
        del updates, extra_args
        _check_params(fn, params)
        if not isinstance(batch_args, (tuple, list)):
            raise TypeError(
                f"{fn}: argument `batch_args` must be a tuple (the minibatch: extra positional "
                f"arguments of the objective); got {type(batch_args).__name__} (wrap one array as (x,))"
            )
        batch_args = tuple(batch_args)
        objective, cvp = _objective_and_curvature(
            fn,
            curvature,
            likelihood,
            axis_name,
            loss_fn,
            model_fn,
            output_loss_fn,
            per_example_loss_fn,
            batch_args,
        )
        dtype = _scalar_dtype(params)

        out = jax.eval_shape(objective, params)
        if (
            not hasattr(out, "shape")
            or out.shape != ()
            or not jnp.issubdtype(out.dtype, jnp.floating)
        ):
            given = [
                n
                for n, v in (
                    ("output_loss_fn", output_loss_fn),
                    ("per_example_loss_fn", per_example_loss_fn),
                    ("loss_fn", loss_fn),
                )
                if v is not None
            ]
            raise ValueError(
                f"{fn}: the objective (argument `{given[0]}` of `update`) must give a floating "
                f"scalar, the mean loss over the batch; got {out}"
            )

        def value_and_grad(p):
            value, grad = jax.value_and_grad(objective)(vary_if(p, axis_name))
            value, grad = pmean_if((value, grad), axis_name)
            return jnp.asarray(value, dtype), grad

        f0, g = value_and_grad(params)
        gnorm = jnp.sqrt(jnp.asarray(tree_vdot(g, g), dtype))
        gamma = jnp.asarray(state.gamma, dtype)

        def attempt(gamma):
            """One trial at radius gamma: (d, accepted)."""
            lam = gnorm / gamma
            if cvp is None:
                d = jax.tree.map(lambda gi: (gi / lam).astype(gi.dtype), g)
            else:

                def matvec(v):
                    return tree_axpy(lam, v, cvp(params, v))

                d = conjugate_gradient(matvec, g, cg_steps, cg_tol)
            f1, g1 = value_and_grad(jax.tree.map(lambda p, di: p - di, params, d))
            g1sq = jnp.asarray(tree_vdot(g1, g1), dtype)
            return d, f0 - f1 >= g1sq / (8.0 * lam)

        def clamp(x):
            return jnp.clip(x, gamma_min, gamma_max).astype(dtype)

        def step(_):
            if max_trials == 1:
                d, acc = attempt(gamma)
                return d, acc, jnp.where(acc, clamp(2.0 * gamma), clamp(0.5 * gamma))

            def cond(c):
                i, _, _, acc, stuck = c
                return (i < max_trials) & ~acc & ~stuck

            def body(c):
                i, gam, _, _, _ = c
                d, acc = attempt(gam)
                new = jnp.where(acc, clamp(2.0 * gam), clamp(0.5 * gam))
                return (
                    i + 1,
                    new,
                    d,
                    acc,
                    ~acc & (new == gam),
                )  # stuck at gamma_min: same trial again

            init = (
                jnp.zeros([], jnp.int32),
                gamma,
                jax.tree.map(jnp.zeros_like, g),
                jnp.zeros([], bool),
                jnp.zeros([], bool),
            )
            _, new_gamma, d, acc, _ = jax.lax.while_loop(cond, body, init)
            return d, acc, new_gamma

        def skip(_):
            return jax.tree.map(jnp.zeros_like, g), jnp.zeros([], bool), gamma

        ok = (gnorm > 0) & jnp.isfinite(gnorm) & jnp.isfinite(f0)
        d, accepted, new_gamma = jax.lax.cond(ok, step, skip, None)
        out = jax.tree.map(lambda di: jnp.where(accepted, di, jnp.zeros_like(di)), d)
        new_state = NormalizedNewtonState(
            count=optax.safe_int32_increment(state.count),
            gamma=new_gamma,
            accepted=accepted,
            n_accepted=state.n_accepted + accepted.astype(jnp.int32),
            loss=f0,
            grad_norm=gnorm,
        )
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def normalized_newton(
    *,
    curvature: str = "gauss_newton",
    gamma0: float = 1.0,
    gamma_min: float = 1e-8,
    gamma_max: float = 1e8,
    cg_steps: int = 10,
    cg_tol: float = 1e-6,
    max_trials: int = 1,
    likelihood: str = "softmax",
    learning_rate: float | Callable[[Array], Array] = 1.0,
    axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The stochastic gradient-normalized Newton optimizer: ``params <- params - eta d``.

    With :math:`d` from :func:`scale_by_normalized_newton` (zero after a rejected trial) and
    :math:`\eta` = ``learning_rate``:

    .. math::

        x_{t+1} = x_t - \eta\, d_t

    (``chain(scale_by_normalized_newton(...), scale_by_learning_rate(learning_rate))``). The
    step length is already chosen by the radius :math:`\gamma`, so the default :math:`\eta = 1`
    moves exactly to the trial point that passed the acceptance test; another :math:`\eta` (or
    a schedule) moves elsewhere, which the test does not certify. There is no weight decay
    option for the same reason: put an L2 term in the loss.

    Args:
      curvature, gamma0, gamma_min, gamma_max, cg_steps, cg_tol, max_trials, likelihood, axis_name:
        see :func:`scale_by_normalized_newton`.
      learning_rate: :math:`\eta > 0`, a float (default 1) or an optax schedule.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; call e.g.
      ``tx.update(None, state, params, model_fn=model_fn, output_loss_fn=loss, batch_args=(x,
      y))`` and apply with ``optax.apply_updates``. With ``nnx.Optimizer``, pass the same keywords
      to ``optimizer.update(model, grads, ...)`` (``grads`` is ignored; the functions take the
      ``nnx.State`` of parameters, e.g. ``model_fn = lambda p, x: nnx.merge(graphdef, p)(x)``).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from geomjax.optim import normalized_newton
      >>> x = jax.random.normal(jax.random.key(0), (32, 3))
      >>> y = x @ jnp.array([1.0, -2.0, 0.5])
      >>> model = lambda w, x: x @ w
      >>> loss = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)
      >>> tx = normalized_newton(gamma0=0.1)
      >>> w = jnp.zeros(3)
      >>> state = tx.init(w)
      >>> for _ in range(12):
      ...     u, state = tx.update(None, state, w, model_fn=model, output_loss_fn=loss,
      ...                          batch_args=(x, y))
      ...     w = optax.apply_updates(w, u)
      >>> bool(jnp.allclose(w, jnp.array([1.0, -2.0, 0.5]), atol=1e-4))
      True

    References:
      A. Semenov, M. Jaggi, N. Doikov, "Gradient-Normalized Smoothness for Optimization with
      Approximate Hessians", ICLR 2026, arXiv:2506.13710.
    """
    fn = "normalized_newton"
    if not callable(learning_rate):
        _check_number(fn, "learning_rate", learning_rate)
    return optax.chain(
        scale_by_normalized_newton(
            curvature=curvature,
            gamma0=gamma0,
            gamma_min=gamma_min,
            gamma_max=gamma_max,
            cg_steps=cg_steps,
            cg_tol=cg_tol,
            max_trials=max_trials,
            likelihood=likelihood,
            axis_name=axis_name,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
