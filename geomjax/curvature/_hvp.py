"""Hessian-vector products by forward-over-reverse differentiation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from geomjax._core import Array, PyTree
from geomjax.curvature._tree import check_float_leaves, check_like, scalar_valued


def hvp(f: Callable[..., Array], params: PyTree, v: PyTree, *args: Any) -> tuple[PyTree, PyTree]:
    r"""Gradient and Hessian-vector product of a scalar function, in one forward-over-reverse pass.

    .. math::

        g = \nabla_\theta f(\theta), \qquad H v = \nabla^2_\theta f(\theta)\, v
          = \frac{d}{dt} \nabla_\theta f(\theta + t v)\Big|_{t=0}

    (a JVP of ``jax.grad(f)``: about the cost of two gradients, no Hessian formed).

    Args:
      f: scalar function ``f(params, *args)``.
      params: pytree of parameters.
      v: direction, a pytree with the structure, shapes and dtypes of ``params``.
      *args: further arguments of ``f`` (a batch), not differentiated.

    Returns:
      ``(grad, hv)``: two pytrees like ``params``.

    Raises:
      TypeError: ``f`` not callable or not returning a real floating scalar (ValueError for a
        non-scalar), non-floating leaves in ``params`` or ``v``.
      ValueError: ``v`` not of the structure and leaf shapes of ``params``, ``params`` with no
        leaf.

    Input domain: values are not checked; a NaN in ``params``, ``v`` or ``args`` gives NaN in
    the result (NaN in, NaN out), and an inf goes through ``f``'s derivatives like any value
    (a saturating ``f``, e.g. through ``tanh``, can make the result finite).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.curvature import hvp
      >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 2.0]) * w**2) + w[0] * w[1]
      >>> g, hv = hvp(f, jnp.array([1.0, 1.0]), jnp.array([1.0, 0.0]))
      >>> g, hv
      (Array([2., 3.], dtype=float32), Array([1., 1.], dtype=float32))

    References:
      B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1),
      1994.
    """
    fn = "hvp"
    f = scalar_valued(fn, "f", f)
    check_float_leaves(fn, "params", params)
    v = check_like(fn, "v", v, "params", params)
    return jax.jvp(lambda p: jax.grad(f)(p, *args), (params,), (v,))
