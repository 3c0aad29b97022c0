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


def test_float32_sliced_accuracy_at_large_n():
    """Float32 SW_2 at n = 50,000 (NumPy-sorted on the CPU) against a float64 NumPy evaluation."""
    from geomjax.ot import random_projections, sliced_wasserstein

    kx, ky, kp = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(kx, (50_000, 3))
    y = 1.5 * jax.random.normal(ky, (50_000, 3)) + 0.5
    d = random_projections(kp, 8, 3)
    v32 = float(sliced_wasserstein(None, x, y, projections=d))
    px, py = np.asarray(x, np.float64) @ np.asarray(d, np.float64).T, np.asarray(y, np.float64) @ np.asarray(d, np.float64).T
    ref = np.sqrt(np.mean((np.sort(px, axis=0) - np.sort(py, axis=0)) ** 2))
    assert abs(v32 - ref) / ref < 1e-5, (v32, ref)
