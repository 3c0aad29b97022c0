"""Hessian-vector products by forward-over-reverse differentiation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from geomjax._core import Array, PyTree


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
    leaves_p, tree_p = jax.tree.flatten(params)
    leaves_v, tree_v = jax.tree.flatten(v)
    if tree_p != tree_v or [jax.numpy.shape(a) for a in leaves_p] != [
        jax.numpy.shape(b) for b in leaves_v
    ]:
        raise ValueError(
            "hvp: argument `v` must have the pytree structure and leaf shapes of `params`; got "
            f"{tree_v} {[jax.numpy.shape(b) for b in leaves_v]} vs {tree_p} {[jax.numpy.shape(a) for a in leaves_p]}"
        )
    v = jax.tree.map(lambda p, t: jax.numpy.asarray(t, jax.numpy.result_type(p)), params, v)
    return jax.jvp(lambda p: jax.grad(f)(p, *args), (params,), (v,))
