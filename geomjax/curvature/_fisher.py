"""Fisher-vector products: the true Fisher of softmax / Gaussian models and the empirical Fisher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from geomjax._core import Array, PyTree, check_option, pmean_if, vary_if
from geomjax.curvature._tree import (
    check_callable,
    check_float_leaves,
    check_like,
    scalar_valued,
    tree_vdot,
)

_LIKELIHOODS = ("softmax", "gaussian")


def fisher_vp(
    model_fn: Callable[[PyTree, Any], Array],
    params: PyTree,
    v: PyTree,
    inputs: Any,
    *,
    likelihood: str = "softmax",
    axis_name: str | None = None,
) -> PyTree:
    r"""True Fisher-vector product ``F v`` of a softmax or a unit-variance Gaussian model.

    The Fisher is the expected outer product of the score under the model's own predictive
    distribution, :math:`y \sim p(y \mid z_i)` with :math:`z = m(\theta, X)`
    (``model_fn(params, inputs)``, leading axis the batch of size ``n``):

    .. math::

        F = \frac1n \sum_{i=1}^n J_i^\top\, \Lambda(z_i)\, J_i, \qquad
        \Lambda(z) = \mathbb{E}_{y \sim p(\cdot \mid z)}
          \big[\nabla_z \log p(y \mid z)\, \nabla_z \log p(y \mid z)^\top\big] =
        \begin{cases}
          \operatorname{diag}(p) - p p^\top, & p = \operatorname{softmax}(z)
             \quad (\texttt{"softmax"}),\\
          I & (\texttt{"gaussian"}, \ \mathcal N(z, I)).
        \end{cases}

    For these canonical (exponential-family, natural-parameter) likelihoods :math:`\Lambda` is the
    Hessian of the negative log-likelihood in ``z``, so ``F`` equals the generalized Gauss-Newton
    matrix of the batch-mean cross-entropy (resp. half squared error): ``fisher_vp`` equals
    :func:`ggn_vp` with that loss, and needs no targets. Computed as ``J^T (Lambda (J v)) / n``
    by a linearization and its transpose; no Jacobian is formed.

    Output convention: ``outputs`` has shape ``(n, ..., k)``; axis 0 is the batch (averaged),
    the last axis the classes (``"softmax"``, logits) or output coordinates, and any axes in
    between (tokens, pixels) are summed, i.e. independent predictions of one example.
    With ``axis_name`` the product is ``pmean``-ed over devices (equal shard sizes: the full
    batch Fisher).

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs`` of shape ``(n, ..., k)`` (logits for
        ``"softmax"``; means for ``"gaussian"``, where ``(n,)`` is also accepted).
      params: pytree of floating parameters.
      v: direction, a pytree with the structure and leaf shapes of ``params``.
      inputs: the batch of inputs passed to ``model_fn``.
      likelihood: ``"softmax"`` or ``"gaussian"``.
      axis_name: name of a mapped device axis to average over, or None.

    Returns:
      ``F v``, a pytree like ``params``.

    Raises:
      TypeError: ``model_fn`` not callable or not returning one floating array, non-floating
        leaves in ``params`` or ``v``.
      ValueError: unknown ``likelihood``, ``v`` not shaped like ``params``, outputs without a
        leading batch axis (and a class axis for ``"softmax"``).

    Input domain: values are not checked; a NaN in ``params``, ``v`` or ``inputs`` gives NaN
    in the product (NaN in, NaN out), and an inf goes through the arithmetic like any value
    (a saturating model, e.g. ``tanh``, can make the result finite).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.curvature import fisher_vp
      >>> model = lambda w, x: x @ w          # logits of 2 classes, w: (2, 2)
      >>> x = jnp.array([[1.0, 0.0]])
      >>> fisher_vp(model, jnp.zeros((2, 2)), jnp.array([[1.0, 0.0], [0.0, 0.0]]), x)
      Array([[ 0.25, -0.25],
             [ 0.  ,  0.  ]], dtype=float32)

    References:
      J. Martens, "New insights and perspectives on the natural gradient method", JMLR 21, 2020
      (arXiv:1412.1193), sections 9.2-9.3.
      F. Kunstner, L. Balles, P. Hennig, "Limitations of the empirical Fisher approximation for
      natural gradient descent", NeurIPS 2019 (arXiv:1905.12558).
    """
    fn = "fisher_vp"
    check_callable(fn, "model_fn", model_fn)
    check_option(fn, "likelihood", likelihood, _LIKELIHOODS)
    check_float_leaves(fn, "params", params)
    v = check_like(fn, "v", v, "params", params)
    params, v = vary_if(params, axis_name), vary_if(v, axis_name)

    outputs, f_jvp = jax.linearize(lambda p: model_fn(p, inputs), params)
    if not isinstance(outputs, jax.Array) or not jnp.issubdtype(outputs.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `model_fn` must return one floating array; got "
            f"{type(outputs).__name__} {getattr(outputs, 'dtype', '')}"
        )
    min_ndim = 2 if likelihood == "softmax" else 1
    if outputs.ndim < min_ndim or outputs.shape[0] < 1:
        want = "(n, ..., k)" if likelihood == "softmax" else "(n, ...)"
        raise ValueError(
            f"{fn}: argument `model_fn` must return outputs of shape {want} with a leading "
            f"batch axis for likelihood={likelihood!r}; got shape {outputs.shape}"
        )
    jv = f_jvp(v)
    if likelihood == "softmax":
        p = jax.nn.softmax(outputs, axis=-1)
        pjv = p * jv
        u = pjv - p * jnp.sum(pjv, axis=-1, keepdims=True)
    else:
        u = jv
    u = u / outputs.shape[0]
    (fv,) = jax.linear_transpose(f_jvp, params)(u)
    return pmean_if(fv, axis_name)


def empirical_fisher_vp(
    per_example_loss_fn: Callable[[PyTree, Any], Array],
    params: PyTree,
    v: PyTree,
    batch: Any,
    *,
    axis_name: str | None = None,
) -> PyTree:
    r"""Empirical Fisher-vector product ``(1/n) sum_i g_i (g_i^T v)`` from per-example gradients.

    With :math:`g_i = \nabla_\theta \ell(\theta, b_i)` the gradient of the loss of example
    ``i`` (``per_example_loss_fn(params, example_i)``, with ``example_i`` the ``i``-th slice of
    every leaf of ``batch``),

    .. math::

        \hat F v = \frac1n \sum_{i=1}^n g_i\, \langle g_i, v\rangle .

    The per-example gradients come from ``jax.vmap(jax.grad(...))`` over the leading axis of
    ``batch``, so memory is ``n`` parameter-sized gradients. Unlike :func:`fisher_vp` this uses
    the observed labels; it is the matrix M-FAC and Adam-style preconditioners approximate, and
    it can differ badly from the true Fisher away from a good fit (Kunstner et al., 2019).
    With ``axis_name`` the product is ``pmean``-ed over devices (equal shard sizes: the full
    batch).

    Args:
      per_example_loss_fn: ``per_example_loss_fn(params, example) -> scalar`` for ONE example.
      params: pytree of floating parameters.
      v: direction, a pytree with the structure and leaf shapes of ``params``.
      batch: pytree of arrays sharing a leading batch axis ``n >= 1`` (e.g. ``(inputs, targets)``).
      axis_name: name of a mapped device axis to average over, or None.

    Returns:
      ``F_hat v``, a pytree like ``params``.

    Raises:
      TypeError: ``per_example_loss_fn`` not callable or not returning a real floating scalar
        (ValueError for a non-scalar), non-floating leaves in ``params`` or ``v``.
      ValueError: ``v`` not shaped like ``params``; ``batch`` without leaves, with a scalar
        leaf, or with leaves of different leading sizes (or size 0).

    Input domain: values are not checked; a NaN in ``params``, ``v`` or ``batch`` gives NaN
    in the product (NaN in, NaN out), and an inf goes through the arithmetic like any value
    (a saturating loss, e.g. through ``tanh``, can make the result finite).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.curvature import empirical_fisher_vp
      >>> loss = lambda w, xy: 0.5 * (xy[0] @ w - xy[1]) ** 2
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, 2.0])
      >>> empirical_fisher_vp(loss, jnp.zeros(2), jnp.ones(2), (x, y))  # g = (-1, 0), (0, -2)
      Array([0.5, 2. ], dtype=float32)

    References:
      F. Kunstner, L. Balles, P. Hennig, "Limitations of the empirical Fisher approximation for
      natural gradient descent", NeurIPS 2019 (arXiv:1905.12558).
      E. Frantar, E. Kurtic, D. Alistarh, "M-FAC: Efficient matrix-free approximations of
      second-order information", NeurIPS 2021 (arXiv:2107.03356).
    """
    fn = "empirical_fisher_vp"
    per_example_loss_fn = scalar_valued(fn, "per_example_loss_fn", per_example_loss_fn)
    check_float_leaves(fn, "params", params)
    v = check_like(fn, "v", v, "params", params)
    leaves = jax.tree.leaves(batch)
    if not leaves or any(jnp.ndim(x) < 1 for x in leaves):
        raise ValueError(
            f"{fn}: argument `batch` must be a pytree of arrays with a leading batch axis; got "
            f"shapes {[jnp.shape(x) for x in leaves]}"
        )
    n = jnp.shape(leaves[0])[0]
    if n < 1 or any(jnp.shape(x)[0] != n for x in leaves):
        raise ValueError(
            f"{fn}: every leaf of argument `batch` must share one leading batch size n >= 1; got "
            f"shapes {[jnp.shape(x) for x in leaves]}"
        )
    params, v = vary_if(params, axis_name), vary_if(v, axis_name)
    grads = jax.vmap(jax.grad(per_example_loss_fn), in_axes=(None, 0))(params, batch)
    gv = jax.vmap(tree_vdot, in_axes=(0, None))(grads, v)  # (n,)
    out = jax.tree.map(lambda g: jnp.tensordot(gv, g, axes=1) / n, grads)
    return pmean_if(out, axis_name)
