"""Empirical (finite-width) neural tangent kernel: Jacobian contraction or NTK-vector products."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, PyTree, as_float_array, check_min_ndim, check_option
from geomjax.curvature._tree import check_callable, check_float_leaves

_METHODS = ("jacobian_contraction", "ntk_vector_products")


def empirical_ntk(
    f: Callable[[PyTree, Array], Array],
    params: PyTree,
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    trace: bool = False,
    method: str = "jacobian_contraction",
) -> Array:
    r"""Empirical neural tangent kernel :math:`\Theta(x_1, x_2) = J(x_1) J(x_2)^\top`.

    For a network ``f(params, x) -> (k,)`` written for ONE input, with
    :math:`J(x) = \partial f(\theta, x) / \partial \theta \in \mathbb R^{k \times P}`,

    .. math::

        \Theta_{ab}^{\,o o'} = \sum_{p} \frac{\partial f_o(\theta, x_{1a})}{\partial \theta_p}
          \frac{\partial f_{o'}(\theta, x_{2b})}{\partial \theta_p}, \qquad
        \operatorname{tr}\Theta_{ab} = \sum_o \Theta_{ab}^{\,o o},

    summed over every leaf of ``params``. ``x1`` and ``x2`` are stacks of inputs (the function
    is over the collection). Two strategies of Novak et al. (2022):

    * ``"jacobian_contraction"`` (default): per-example Jacobians by ``vmap(jacrev)``, then one
      contraction per leaf; memory ``(n1 + n2) k P``.
    * ``"ntk_vector_products"``: the rows of :math:`J(x_2)^\top` by ``vjp`` and their images
      :math:`J(x_1) J(x_2)^\top e` by ``jvp`` (vmapped over the ``n2 k`` basis cotangents); no
      Jacobian of ``x1`` is stored.

    Args:
      f: ``f(params, x) -> outputs`` of shape ``(k,)`` for one input ``x``.
      params: pytree of floating parameters.
      x1: ``(n1, ...)`` stack of inputs.
      x2: ``(n2, ...)`` stack of inputs, with the same trailing shape as ``x1``.
      trace: if True return the output-trace-reduced kernel ``(n1, n2)``.
      method: ``"jacobian_contraction"`` or ``"ntk_vector_products"``.

    Returns:
      ``(n1, n2, k, k)`` (``[a, b, o, o']``), or ``(n1, n2)`` with ``trace=True``.

    Raises:
      TypeError: ``f`` not callable or with non-floating outputs, non-floating ``params``
        leaves, ``x1`` or ``x2``.
      ValueError: unknown ``method``; ``x1``, ``x2`` not stacks of inputs of one shape with
        ``n1, n2 >= 1``; ``f`` not returning a ``(k,)`` vector for one input.

    Input domain: values are not checked; a NaN in ``params``, ``x1`` or ``x2`` gives NaN in
    the kernel (NaN in, NaN out), and an inf goes through ``f``'s arithmetic like any value.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.curvature import empirical_ntk
      >>> f = lambda w, x: jnp.array([x @ w])      # linear model: Theta = x1 x2^T
      >>> x = jnp.array([[1.0, 0.0], [1.0, 2.0]])
      >>> empirical_ntk(f, jnp.zeros(2), x, x, trace=True)
      Array([[1., 1.],
             [1., 5.]], dtype=float32)

    References:
      A. Jacot, F. Gabriel, C. Hongler, "Neural tangent kernel: Convergence and generalization
      in neural networks", NeurIPS 2018 (arXiv:1806.07572).
      R. Novak, J. Sohl-Dickstein, S. S. Schoenholz, "Fast finite width neural tangent kernel",
      ICML 2022 (arXiv:2206.08720).
    """
    fn = "empirical_ntk"
    check_callable(fn, "f", f)
    check_option(fn, "method", method, _METHODS)
    check_float_leaves(fn, "params", params)
    x1 = as_float_array(fn, "x1", x1)
    x2 = as_float_array(fn, "x2", x2)
    check_min_ndim(fn, "x1", x1, 1)
    check_min_ndim(fn, "x2", x2, 1)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"{fn}: arguments `x1` and `x2` must be stacks of inputs of the same shape, "
            f"(n1, ...) and (n2, ...); got shapes {x1.shape} and {x2.shape}"
        )
    out = jax.eval_shape(f, params, x1[0]) if x1.shape[0] else None
    if out is None or not hasattr(out, "shape") or len(out.shape) != 1:
        raise ValueError(
            f"{fn}: argument `f` must map (params, one input of shape {x1.shape[1:]}) to outputs "
            f"of shape (k,), and `x1` must hold n1 >= 1 inputs; got "
            f"{getattr(out, 'shape', out)} with x1 of shape {x1.shape}"
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `f` must return real floating outputs; got {out.dtype}")
    if x2.shape[0] < 1:
        raise ValueError(f"{fn}: argument `x2` must hold n2 >= 1 inputs; got shape {x2.shape}")
    k = out.shape[0]
    batched = jax.vmap(f, in_axes=(None, 0))

    if method == "jacobian_contraction":
        j1 = jax.vmap(jax.jacrev(f), in_axes=(None, 0))(params, x1)  # leaves (n1, k, *leaf)
        j2 = jax.vmap(jax.jacrev(f), in_axes=(None, 0))(params, x2)

        def contract(a, b):
            a = a.reshape(a.shape[0], k, -1)
            b = b.reshape(b.shape[0], k, -1)
            if trace:
                return jnp.einsum("aop,bop->ab", a, b)
            return jnp.einsum("aop,bqp->aboq", a, b)

        parts = jax.tree.leaves(jax.tree.map(contract, j1, j2))
        return sum(parts[1:], parts[0])

    n2 = x2.shape[0]
    _, pullback = jax.vjp(lambda p: batched(p, x2), params)
    basis = jnp.eye(n2 * k, dtype=out.dtype).reshape(n2 * k, n2, k)
    rows = jax.vmap(lambda c: pullback(c)[0])(basis)  # J(x2)^T e, leaves (n2 k, *leaf)

    def push(t):
        return jax.jvp(lambda p: batched(p, x1), (params,), (t,))[1]  # (n1, k)

    theta = jax.vmap(push)(rows).reshape(n2, k, x1.shape[0], k)  # [b, o', a, o]
    theta = jnp.transpose(theta, (2, 0, 3, 1))  # [a, b, o, o']
    if trace:
        return jnp.trace(theta, axis1=2, axis2=3)
    return theta
