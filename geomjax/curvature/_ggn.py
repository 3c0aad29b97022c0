"""Generalized Gauss-Newton (GGN) matrix-vector products, J^T H_L J v, without forming J."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from geomjax._core import Array, PyTree, pmean_if, vary_if
from geomjax.curvature._tree import check_callable, check_float_leaves, check_like


def _split_batch(fn: str, batch: Any) -> tuple[Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(
            f"{fn}: argument `batch` must be a pair (inputs, targets); got "
            f"{type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    return batch[0], batch[1]


def ggn_vp(
    model_fn: Callable[[PyTree, Any], Any],
    loss_fn: Callable[[Any, Any], Array],
    params: PyTree,
    v: PyTree,
    batch: tuple[Any, Any],
    *,
    axis_name: str | None = None,
) -> PyTree:
    r"""Generalized Gauss-Newton product ``G v = J^T H_L J v`` (no Jacobian or Hessian formed).

    With :math:`z = m(\theta, X)` the model outputs on the batch (``model_fn(params, inputs)``)
    and :math:`\ell(z, Y)` the loss (``loss_fn(outputs, targets)``),

    .. math::

        G v = J^\top H_\ell\, J v, \qquad J = \frac{\partial m(\theta, X)}{\partial \theta},
        \qquad H_\ell = \nabla_z^2\, \ell(z, Y)\big|_{z = m(\theta, X)} .

    ``J v`` is one forward-mode product (``jax.linearize``), ``H_\ell (J v)`` a Hessian-vector
    product of the loss in output space, and ``J^\top (\cdot)`` the transpose of the same
    linearization: about the cost of one forward and two backward passes. For a loss convex in
    the outputs (cross-entropy on logits, squared error) ``G`` is positive semi-definite, and it
    drops the term :math:`\sum_o \partial_{z_o} \ell\, \nabla^2_\theta z_o` of the Hessian.

    Batch convention: ``batch = (inputs, targets)``; ``model_fn`` maps the whole batch of inputs
    to the whole batch of outputs (vmap inside it if it is written for one example) and
    ``loss_fn`` returns the loss **averaged** over the batch, so ``G`` is the GGN of the mean
    loss. With ``axis_name`` (inside ``jax.shard_map`` or ``pmap``, one shard of the batch per
    device) the local products are ``pmean``-ed over the devices: with equal shard sizes this is
    the GGN of the mean loss over the full batch. ``params`` and ``v`` should be the same on
    every device.

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs`` (an array or a pytree of arrays).
      loss_fn: ``loss_fn(outputs, targets) -> scalar``, the batch-mean loss.
      params: pytree of floating parameters.
      v: direction, a pytree with the structure and leaf shapes of ``params``.
      batch: ``(inputs, targets)``.
      axis_name: name of a mapped device axis to average the product over, or None.

    Returns:
      ``G v``, a pytree like ``params``.

    Raises:
      TypeError: ``model_fn`` or ``loss_fn`` not callable, non-floating leaves in ``params``,
        ``v`` or the model outputs.
      ValueError: ``v`` not shaped like ``params``, ``batch`` not a pair, ``loss_fn`` not
        returning a scalar.

    Input domain: values are not checked; a NaN in ``params``, ``v`` or the batch gives NaN
    in the product (NaN in, NaN out), and an inf goes through the arithmetic like any value
    (a saturating model, e.g. ``tanh``, can make the result finite).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.curvature import ggn_vp
      >>> model = lambda w, x: x @ w
      >>> loss = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.zeros(2)
      >>> ggn_vp(model, loss, jnp.zeros(2), jnp.ones(2), (x, y))  # X^T X v / n
      Array([0.5, 2. ], dtype=float32)

    References:
      N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
      descent", Neural Computation 14(7), 2002.
      J. Martens, "New insights and perspectives on the natural gradient method", JMLR 21, 2020
      (arXiv:1412.1193).
    """
    fn = "ggn_vp"
    check_callable(fn, "model_fn", model_fn)
    check_callable(fn, "loss_fn", loss_fn)
    check_float_leaves(fn, "params", params)
    v = check_like(fn, "v", v, "params", params)
    inputs, targets = _split_batch(fn, batch)
    params, v = vary_if(params, axis_name), vary_if(v, axis_name)

    outputs, f_jvp = jax.linearize(lambda p: model_fn(p, inputs), params)
    check_float_leaves(fn, "model_fn", outputs)  # the outputs are differentiated in the loss
    loss_shape = jax.eval_shape(loss_fn, outputs, targets)
    if not hasattr(loss_shape, "shape") or loss_shape.shape != ():
        raise ValueError(
            f"{fn}: argument `loss_fn` must return a scalar (the batch-mean loss); got "
            f"{getattr(loss_shape, 'shape', loss_shape)}"
        )
    jv = f_jvp(v)
    _, hjv = jax.jvp(jax.grad(lambda z: loss_fn(z, targets)), (outputs,), (jv,))
    (gv,) = jax.linear_transpose(f_jvp, params)(hjv)
    return pmean_if(gv, axis_name)
