"""Equivariance of a bilinear irreps product, value and gradient, shared by the product tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax.testing import assert_equivariant


def assert_product_equivariant(op, x, y, rtol, *, kind="graph_irreps", permute=False):
    """``jit(vmap(op))`` and the ``x``-gradient of the invariant ``|op(x, y)|^2`` (which
    transforms like ``x``) both pass :func:`assert_equivariant` under O(3) within ``rtol``;
    returns the two errors."""

    def grad_x(a, b):
        return jax.grad(lambda u: jnp.sum(op(u, b).array ** 2))(a)

    errors = []
    for fn, key, kinds, perm in [
        (jax.jit(jax.vmap(op)), 1, kind, permute),
        (jax.jit(grad_x), 2, "graph_irreps", False),
    ]:
        err = assert_equivariant(
            fn,
            jax.random.key(key),
            (x, y),
            in_kinds=(kinds,) * 2,
            out_kinds=kinds,
            group="O3",
            permute=perm,
            n_trials=2,
            rtol=rtol,
        )
        assert err <= rtol
        errors.append(err)
    return errors
