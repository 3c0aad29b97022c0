"""sort_last: bitwise equal to numpy's sort (integer keys on the CPU), derivative of jnp.sort."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.ot._sort import sort_last


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_sort_last_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 257)) * np.exp(rng.uniform(-10, 10, (3, 5, 257)))
    x[0, 0, :8] = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        1e-40,
        -1e-40,
        2.0,
        2.0,
    ]  # zeros, infinities, subnormals, ties
    xj = jnp.asarray(x, dtype)
    ref = np.sort(np.asarray(xj, np.float32), axis=-1)
    got = np.asarray(jax.jit(sort_last)(xj), np.float32)
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == np.float32 and sort_last(xj).dtype == xj.dtype


def test_sort_last_float64(x64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1000)) * 1e300
    x[0, :3] = [-0.0, 0.0, -5e-324]
    got = np.asarray(sort_last(jnp.asarray(x)))
    np.testing.assert_array_equal(got, np.sort(x, axis=-1))
    assert got.dtype == np.float64


def test_sort_last_derivative_is_the_permutation(x64):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((3, 50)))
    t = jnp.asarray(rng.standard_normal((3, 50)))
    order = np.argsort(np.asarray(x), axis=-1)
    values, tangent = jax.jvp(sort_last, (x,), (t,))
    np.testing.assert_array_equal(np.asarray(tangent), np.take_along_axis(np.asarray(t), order, -1))
    w = jnp.asarray(rng.standard_normal((3, 50)))
    g = jax.grad(lambda z: jnp.sum(w * sort_last(z) ** 2))(x)
    expected = np.zeros((3, 50))
    np.put_along_axis(expected, order, np.asarray(w) * 2 * np.sort(np.asarray(x), -1), -1)
    np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-13)  # float64, 2 roundings each
    # Values at least 0.1 apart, so the finite differences never cross a reordering.
    spread = jnp.asarray(rng.permuted(np.tile(np.linspace(-2.5, 2.5, 50), (3, 1)), axis=-1))
    check_grads(lambda z: jnp.sum(jnp.sin(sort_last(z))), (spread,), order=2, modes=("fwd", "rev"))
