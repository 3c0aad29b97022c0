"""AdaHessian: Adam with the second moment fed by a Hutchinson estimate of the Hessian diagonal.

The transformation needs the objective and a PRNG key, so it is an optax
``GradientTransformationExtraArgs``: ``update(updates, state, params, *, loss_fn, key,
batch_args=())``. The gradient and the Hessian-vector product come out of one
forward-over-reverse pass (``jax.jvp`` of ``jax.grad``, :func:`geomjax.curvature.hvp`); the
gradient is a by-product of that pass, so the incoming ``updates`` are not used (pass ``None``
and skip your own backward pass). See :func:`scale_by_adahessian` for the details.

Comparison with the reference implementation (amirgholami/adahessian,
``image_classification/optim_adahessian.py``) and with the widely used port that added delayed
Hessian updates and several probes (davda54/ada-hessian, in timm):

* the same moments, bias corrections, ``eps`` placement and Hessian power;
* weight decay is decoupled (``p <- p - lr * (step + wd * p)``), as in both;
* conv kernels: the reference averages ``|z * Hz|`` over the kernel's spatial dims ``(2, 3)`` of
  PyTorch's ``OIHW`` layout; in Flax's ``HWIO`` layout those are axes ``(0, 1)``;
* ``update_every=k`` follows the port: the estimate is recomputed at steps ``0, k, 2k, ...`` and
  the stale one keeps feeding the second moment in between;
* data parallel: the signed estimate ``z * Hz`` (and the gradient) are averaged over devices
  *before* the absolute value, so the sharded update equals the one-device update on the full
  batch (the reference's ``all_reduce`` acts on a temporary and has no effect);
* every leaf (and every probe) gets its own key; an old JAX port reused one key for all leaves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from geomjax._core import Array, PyTree, check_key, pmean_if, rademacher_like, vary_if
from geomjax.curvature._hvp import hvp

__all__ = ["AdaHessianState", "adahessian", "scale_by_adahessian"]


class AdaHessianState(NamedTuple):
    """State of :func:`scale_by_adahessian`.

    Attributes:
      count: number of steps taken (int32 scalar). Probes of step ``t`` use
        ``jax.random.fold_in(key, t)``; the Hessian estimate is refreshed when
        ``count % update_every == 0``.
      mu: first moment (EMA of gradients), like ``params``.
      nu: second moment (EMA of the squared, spatially averaged ``|diag H|`` estimate), like
        ``params`` (averaged leaves store the average broadcast to the full shape).
      hess: the last spatially averaged ``|diag H|`` estimate, like ``params``, reused on the steps
        between refreshes; ``None`` when ``update_every == 1``.
    """

    count: Array
    mu: PyTree
    nu: PyTree
    hess: PyTree | None


# --------------------------------------------------------------------------------------------
# validation and spatial axes
# --------------------------------------------------------------------------------------------


def _check_float_range(
    fn: str, name: str, value: Any, lo: float, hi: float, hi_closed: bool
) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"{fn}: argument `{name}` must be a Python number; got {type(value).__name__}"
        )
    ok = lo <= value <= hi if hi_closed else lo <= value < hi
    if not ok:
        rb = "]" if hi_closed else ")"
        raise ValueError(f"{fn}: argument `{name}` must lie in [{lo}, {hi}{rb}; got {value!r}")


def _check_int_min1(fn: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{fn}: argument `{name}` must be an int >= 1; got {value!r}")


def _default_axes(x: Array) -> tuple[int, ...]:
    # Flax conv kernels are (kh, kw, in, out): the reference's OIHW dims (2, 3) are axes (0, 1).
    return (0, 1) if jnp.ndim(x) == 4 else ()


def _normalize_axes(fn: str, axes: Any, x: Array, where: str) -> tuple[int, ...]:
    ndim = jnp.ndim(x)
    if axes is None:
        return ()
    if isinstance(axes, int) and not isinstance(axes, bool):
        axes = (axes,)
    if not isinstance(axes, (tuple, list)) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in axes
    ):
        raise TypeError(
            f"{fn}: argument `spatial_axes` must give, per parameter leaf, None or a tuple of ints; "
            f"got {axes!r} for the leaf at {where}"
        )
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{fn}: argument `spatial_axes` has axis {a} out of range for the leaf at {where} "
                f"of shape {jnp.shape(x)}"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(
            f"{fn}: argument `spatial_axes` repeats an axis for the leaf at {where}: {axes!r}"
        )
    return tuple(sorted(out))


def _resolve_axes(fn: str, spatial_axes: Any, params: PyTree) -> list[tuple[int, ...]]:
    """Averaging axes per leaf of ``params`` (flattened order)."""
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [jax.tree_util.keystr(p) for p, _ in leaves_with_path]
    leaves = [x for _, x in leaves_with_path]
    if spatial_axes is None:
        return [_default_axes(x) for x in leaves]
    spec = spatial_axes(params) if callable(spatial_axes) else spatial_axes
    try:
        per_leaf = treedef.flatten_up_to(spec)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{fn}: argument `spatial_axes` must have the pytree structure of `params` with a tuple "
            f"of ints (or None) at each leaf (or be a callable params -> such a tree); {e}"
        ) from e
    return [_normalize_axes(fn, a, x, w or "<root>") for a, x, w in zip(per_leaf, leaves, paths)]


def _check_params(fn: str, params: PyTree) -> None:
    if params is None:
        raise ValueError(
            f"{fn}: `update` needs `params` (the point where the gradient and the Hessian-vector "
            "product are taken); call tx.update(updates, state, params, loss_fn=..., key=...)"
        )
    for x in jax.tree.leaves(params):
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise TypeError(
                f"{fn}: argument `params` must have real floating leaves; got a leaf of dtype "
                f"{jnp.result_type(x)}"
            )


def _spatial_abs_mean(d: Array, axes: tuple[int, ...]) -> Array:
    a = jnp.abs(d)
    if not axes:
        return a
    return jnp.broadcast_to(jnp.mean(a, axis=axes, keepdims=True), a.shape)


def _bias_correction(b: float, t: Array) -> Array:
    """``1 - b**t`` as ``-expm1(t log b)``: no cancellation at small ``t`` (float32 ``1 - b2**1``
    with ``b2 = 0.999`` is off by 1e-5 relative; this is off by about one ulp)."""
    if b == 0.0:
        return jnp.ones_like(t)
    return -jnp.expm1(t * math.log(b))


# --------------------------------------------------------------------------------------------
# the transformation
# --------------------------------------------------------------------------------------------


def scale_by_adahessian(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-4,
    hessian_power: float = 1.0,
    spatial_axes: PyTree | Callable[[PyTree], PyTree] | None = None,
    n_samples: int = 1,
    update_every: int = 1,
    axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale by AdaHessian's curvature-adapted moments (Yao et al. 2021).

    At step :math:`t` (1-based) with parameters :math:`\theta` (``params``), loss :math:`f`
    (``loss_fn(params, *batch_args)``), gradient :math:`g`, Rademacher probes
    :math:`z_1, \dots, z_S` (:math:`S` = ``n_samples``) and, per leaf, a set of averaging axes
    :math:`A` (``spatial_axes``):

    .. math::

        \hat d = \frac1S \sum_{s=1}^S z_s \odot H z_s, \qquad
        D = \operatorname{mean}_{A} |\hat d| \ \text{(broadcast back to the leaf's shape)}

        m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, D \odot D

        u_t = \frac{m_t / (1-\beta_1^t)}
                   {\big(\sqrt{v_t} / \sqrt{1-\beta_2^t}\big)^{k} + \epsilon}

    with :math:`\beta_1, \beta_2, \epsilon, k` = ``b1, b2, eps, hessian_power``. The output
    :math:`u_t` is a descent direction to be scaled by ``-learning_rate`` (see
    :func:`adahessian`). ``E[z \odot Hz] = \operatorname{diag} H``; with ``update_every = r``,
    :math:`D` is recomputed only when ``count % r == 0`` and reused (still entering :math:`v_t`
    every step) otherwise; the skipped steps compute the gradient alone (``lax.cond``), no HVP.
    Non-finite parameters, losses or curvature give non-finite updates (NaN in, NaN out, as in
    optax).

    Spatial averaging (the paper's block-diagonal smoothing). Default: none for leaves with
    ``ndim <= 2`` (biases, dense kernels) and any ``ndim`` other than 4; 4-D leaves are taken as
    Flax ``Conv`` kernels ``(kh, kw, in, out)`` (HWIO) and averaged over axes ``(0, 1)``, which
    are the reference's dims ``(2, 3)`` of PyTorch's ``(out, in, kh, kw)`` (OIHW). 3-D leaves are
    ambiguous (1-D conv ``(w, in, out)`` or ``DenseGeneral``) and 5-D ones (3-D conv) are left
    alone by default: set ``spatial_axes``.

    Args:
      b1: :math:`\beta_1 \in [0, 1)`.
      b2: :math:`\beta_2 \in [0, 1)`.
      eps: :math:`\epsilon \ge 0`, added *after* the power :math:`k` (with ``eps=0`` a leaf of
        exactly zero curvature divides by zero).
      hessian_power: :math:`k \in [0, 1]`; ``0`` gives SGD with momentum, ``1`` the full
        Newton-like scaling.
      spatial_axes: ``None`` (the default rule above); a pytree with the structure of ``params``
        whose leaves are tuples of ints (axes to average over; negative allowed) or ``None`` (no
        averaging); or a callable ``params -> such a pytree`` (as optax masks are given).
      n_samples: number of probes per estimate :math:`S \ge 1` (vmapped; the gradient is
        computed once).
      update_every: refresh the estimate every this many steps (``>= 1``).
      axis_name: inside ``jax.shard_map``/``pmap``, the data axis: the gradient and
        :math:`\hat d` are ``pmean``-ed over it (before the absolute value), so each device must
        pass the *same* ``key`` and ``loss_fn`` should be the mean over its local batch.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AdaHessianState`. Its
      ``update(updates, state, params, *, loss_fn, key, batch_args=())``:

      * ``updates``: ignored (may be ``None``): the gradient comes out of the same
        forward-over-reverse pass as the HVP at no extra cost, so reusing a caller's gradient
        would save nothing. Put this transformation *first* in a chain (transformations before
        it have no effect).
      * ``params``: required, where the gradient and HVP are taken.
      * ``loss_fn``: scalar ``loss_fn(params, *batch_args)``.
      * ``key``: PRNG key, required. ``fold_in(key, count)`` is split into ``n_samples`` probe
        keys, each split once per leaf, so no two leaves, probes or steps share a probe even if
        the same ``key`` is passed every step. To checkpoint a loop that carries a typed key
        (``jax.random.key``), save ``jax.random.key_data(key)`` (checkpointers such as orbax
        write plain arrays only) and restore with ``jax.random.wrap_key_data``.
      * ``batch_args``: tuple of further positional arguments of ``loss_fn`` (the batch).

      Other keyword arguments are ignored (optax's extra-args convention).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from geomjax.optim._adahessian import scale_by_adahessian
      >>> loss = lambda w: jnp.sum(jnp.array([1.0, 4.0]) * w**2)  # diagonal Hessian 2, 8
      >>> tx = scale_by_adahessian()
      >>> w = jnp.array([1.0, 1.0])
      >>> u, state = tx.update(None, tx.init(w), w, loss_fn=loss, key=jax.random.key(0))
      >>> [round(float(x), 5) for x in u]  # the Newton direction g / (|diag H| + eps)
      [0.99995, 0.99999]

    References:
      Z. Yao, A. Gholami, S. Shen, M. Mustafa, K. Keutzer, M. W. Mahoney, "ADAHESSIAN: An
      Adaptive Second Order Optimizer for Machine Learning", AAAI 2021, arXiv 2006.00719.
      M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
      Laplacian smoothing splines", Communications in Statistics 1990.
    """
    fn = "scale_by_adahessian"
    _check_float_range(fn, "b1", b1, 0.0, 1.0, hi_closed=False)
    _check_float_range(fn, "b2", b2, 0.0, 1.0, hi_closed=False)
    _check_float_range(fn, "hessian_power", hessian_power, 0.0, 1.0, hi_closed=True)
    _check_float_range(fn, "eps", eps, 0.0, float("inf"), hi_closed=True)
    _check_int_min1(fn, "n_samples", n_samples)
    _check_int_min1(fn, "update_every", update_every)
    if axis_name is not None and not isinstance(axis_name, str):
        raise TypeError(f"{fn}: argument `axis_name` must be a str or None; got {axis_name!r}")
    if spatial_axes is not None and not callable(spatial_axes):
        # structure is checked against params at init/update; reject obvious non-trees early
        if isinstance(spatial_axes, (str, bytes, float)):
            raise TypeError(
                f"{fn}: argument `spatial_axes` must be None, a pytree or a callable; got {spatial_axes!r}"
            )

    def init_fn(params):
        _check_params(fn, params)
        _resolve_axes(fn, spatial_axes, params)
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return AdaHessianState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros(),
            nu=zeros(),
            hess=zeros() if update_every > 1 else None,
        )

    def estimate(params, loss_fn, batch_args, key, axes):
        """(gradient, D) at params: one forward-over-reverse pass (vmapped over probes)."""
        keys = jax.random.split(key, n_samples)
        params = vary_if(params, axis_name)
        if n_samples == 1:
            z = vary_if(rademacher_like(keys[0], params), axis_name)
            g, hz = hvp(loss_fn, params, z, *batch_args)
            d_hat = jax.tree.map(lambda zi, hi: zi * hi, z, hz)
        else:

            def one(k):
                z = vary_if(rademacher_like(k, params), axis_name)
                g, hz = hvp(loss_fn, params, z, *batch_args)
                return g, jax.tree.map(lambda zi, hi: zi * hi, z, hz)

            g, d_all = jax.vmap(one, out_axes=(None, 0))(keys)
            d_hat = jax.tree.map(lambda d: jnp.mean(d, axis=0), d_all)
        g, d_hat = pmean_if((g, d_hat), axis_name)
        leaves, treedef = jax.tree.flatten(d_hat)
        d = treedef.unflatten([_spatial_abs_mean(x, a) for x, a in zip(leaves, axes)])
        return g, d

    def update_fn(
        updates, state, params=None, *, loss_fn=None, key=None, batch_args=(), **extra_args
    ):
        del extra_args
        _check_params(fn, params)
        if loss_fn is None or not callable(loss_fn):
            raise TypeError(
                f"{fn}: `update` needs the keyword argument `loss_fn`, a callable "
                f"loss_fn(params, *batch_args) -> scalar; got {loss_fn!r}"
            )
        if key is None:
            raise TypeError(
                f"{fn}: `update` needs the keyword argument `key` (a PRNG key); got None"
            )
        check_key(fn, "key", key)
        if not isinstance(batch_args, (tuple, list)):
            raise TypeError(
                f"{fn}: argument `batch_args` must be a tuple of extra positional arguments of "
                f"`loss_fn`; got {type(batch_args).__name__} (wrap a single array as (x,))"
            )
        if updates is not None and jax.tree.structure(updates) != jax.tree.structure(params):
            raise ValueError(
                f"{fn}: argument `updates` must be None or have the structure of `params`; got "
                f"{jax.tree.structure(updates)} vs {jax.tree.structure(params)}"
            )
        batch_args = tuple(batch_args)
        out = jax.eval_shape(loss_fn, params, *batch_args)
        if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(
                f"{fn}: argument `loss_fn` must return a real floating scalar; got {out}"
            )
        p_leaves, p_def = jax.tree.flatten(params)
        m_leaves, m_def = jax.tree.flatten(state.mu)
        if p_def != m_def or [jnp.shape(a) for a in p_leaves] != [a.shape for a in m_leaves]:
            raise ValueError(
                f"{fn}: argument `params` must have the structure and shapes of the params given "
                f"to `init`; got {[jnp.shape(a) for a in p_leaves]} vs {[a.shape for a in m_leaves]}"
            )
        axes = _resolve_axes(fn, spatial_axes, params)
        step_key = jax.random.fold_in(key, state.count)

        if update_every == 1:
            g, d = estimate(params, loss_fn, batch_args, step_key, axes)
            new_hess = None
        else:

            def fresh(_):
                return estimate(params, loss_fn, batch_args, step_key, axes)

            def stale(_):
                g = jax.grad(loss_fn)(vary_if(params, axis_name), *batch_args)
                return pmean_if(g, axis_name), state.hess

            g, d = jax.lax.cond(state.count % update_every == 0, fresh, stale, None)
            new_hess = d

        count_inc = optax.safe_int32_increment(state.count)
        mu = jax.tree.map(lambda m, gi: b1 * m + (1.0 - b1) * gi, state.mu, g)
        nu = jax.tree.map(lambda v, di: b2 * v + (1.0 - b2) * di * di, state.nu, d)

        def direction(m, v):
            t = count_inc.astype(m.dtype)
            bc1, bc2 = _bias_correction(b1, t), _bias_correction(b2, t)
            if hessian_power == 1.0:
                denom = jnp.sqrt(v) / jnp.sqrt(bc2) + eps
            else:
                denom = jnp.sqrt(v) ** hessian_power / jnp.sqrt(bc2) ** hessian_power + eps
            return m / bc1 / denom

        out = jax.tree.map(direction, mu, nu)
        return out, AdaHessianState(count=count_inc, mu=mu, nu=nu, hess=new_hess)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adahessian(
    learning_rate: float | Callable[[Array], Array] = 0.15,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-4,
    weight_decay: float = 0.0,
    hessian_power: float = 1.0,
    spatial_axes: PyTree | Callable[[PyTree], PyTree] | None = None,
    n_samples: int = 1,
    update_every: int = 1,
    axis_name: str | None = None,
    mask: PyTree | Callable[[PyTree], PyTree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The AdaHessian optimizer with decoupled weight decay.

    With :math:`u_t` from :func:`scale_by_adahessian`, learning rate :math:`\eta_t` and weight
    decay :math:`\lambda`, the step of the reference implementation:

    .. math::

        \theta_{t} = \theta_{t-1} - \eta_t \big(u_t + \lambda\, \theta_{t-1}\big)

    (``chain(scale_by_adahessian(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``). Defaults are the paper's.

    Args:
      learning_rate: :math:`\eta`, a float or an optax schedule.
      b1, b2, eps, hessian_power, spatial_axes, n_samples, update_every, axis_name: see
        :func:`scale_by_adahessian`.
      weight_decay: :math:`\lambda \ge 0` (decoupled, AdamW-style: not divided by the Hessian
        scaling).
      mask: optional optax mask (pytree of bools or callable) of the leaves to decay.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; call
      ``tx.update(None, state, params, loss_fn=loss_fn, key=key, batch_args=(x, y))`` and apply
      with ``optax.apply_updates``. With ``nnx.Optimizer``, pass the same keywords to
      ``optimizer.update`` (``loss_fn`` is then a function of the ``nnx.State`` of parameters).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from geomjax.optim._adahessian import adahessian
      >>> loss = lambda w, a: jnp.sum(a * w**2)
      >>> tx = adahessian(learning_rate=0.5)
      >>> w, a = jnp.array([1.0, -2.0]), jnp.array([1.0, 10.0])
      >>> state = tx.init(w)
      >>> for i in range(3):
      ...     u, state = tx.update(None, state, w, loss_fn=loss, key=jax.random.key(i), batch_args=(a,))
      ...     w = optax.apply_updates(w, u)
      >>> w.round(4)
      Array([-0.1251, 0.2503], dtype=float32)

    References:
      Z. Yao, A. Gholami, S. Shen, M. Mustafa, K. Keutzer, M. W. Mahoney, "ADAHESSIAN: An
      Adaptive Second Order Optimizer for Machine Learning", AAAI 2021, arXiv 2006.00719.
      I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
      arXiv 1711.05101.
    """
    fn = "adahessian"
    if not callable(learning_rate):
        _check_float_range(fn, "learning_rate", learning_rate, 0.0, float("inf"), hi_closed=True)
    _check_float_range(fn, "weight_decay", weight_decay, 0.0, float("inf"), hi_closed=True)
    return optax.chain(
        scale_by_adahessian(
            b1=b1,
            b2=b2,
            eps=eps,
            hessian_power=hessian_power,
            spatial_axes=spatial_axes,
            n_samples=n_samples,
            update_every=update_every,
            axis_name=axis_name,
        ),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
