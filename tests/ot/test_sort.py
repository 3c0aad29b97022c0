"""sort_last: NumPy-backed sort on the CPU equals jnp.sort, in float64 under jax.enable_x64 too
(callback operands are exchanged as raw words), with gather derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from geomjax.ot._sort import sort_last


def test_float64_inside_enable_x64_is_exact():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (3, 500), jnp.float64) * 1e-9 + 1.0  # needs float64
        s = jax.jit(sort_last)(x)
        assert s.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(s), np.sort(np.asarray(x), axis=-1))


def test_float32_vmap_and_ties():
    x = jnp.array([[3.0, 1.0, 2.0, 1.0], [0.0, -0.5, 0.0, 7.0]])
    np.testing.assert_array_equal(np.asarray(jax.vmap(sort_last)(x)), np.sort(np.asarray(x), axis=-1))


def test_gradients_are_the_inverse_permutation(x64):
    x = jax.random.normal(jax.random.key(1), (2, 7), jnp.float64)
    w = jnp.arange(7.0)
    g = jax.grad(lambda x: jnp.sum(sort_last(x) * w))(x)
    rank = np.argsort(np.argsort(np.asarray(x), axis=-1), axis=-1)
    np.testing.assert_array_equal(np.asarray(g), rank.astype(float))
    check_grads(lambda x: jnp.sum(jnp.sin(sort_last(x)) * w), (x,), order=2, modes=("fwd", "rev"))
