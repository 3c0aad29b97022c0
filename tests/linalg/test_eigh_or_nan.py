"""``eigh_or_nan``: ``jnp.linalg.eigh`` with NaN out for a matrix with a non-finite entry.

cuSOLVER (GPU) can return finite eigenvalues for a NaN matrix (seen on an H100, jax 0.11.2, in
the platform check of df0eed7); every SPD function decomposes through ``eigh_or_nan`` so NaN in
gives NaN out on every backend. On the CPU the finite matrices must give exactly what
``jnp.linalg.eigh`` gives (same call on the same matrix), and the derivatives agree to the
rounding of a differently fused evaluation (64 eps times their scale).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax._core import eigh_or_nan
from geomjax.linalg import logm


def _spd_batch(dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 4))
    return jnp.asarray(a @ a.transpose(0, 2, 1) + 4 * np.eye(4), dtype)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_nonfinite_matrix_gives_nan_and_others_unchanged(bad, dtype):
    with jax.enable_x64(dtype == jnp.float64), jax.debug_nans(False):  # NaN is the point here
        x = _spd_batch(dtype)
        x_bad = x.at[1, 2, 3].set(bad).at[1, 3, 2].set(bad)
        lam, u = jax.jit(eigh_or_nan)(x_bad)
        assert bool(jnp.all(jnp.isnan(lam[1]))) and bool(jnp.all(jnp.isnan(u[1])))
        ref_lam, ref_u = jnp.linalg.eigh(x[jnp.array([0, 2])])
        np.testing.assert_array_equal(np.asarray(lam[jnp.array([0, 2])]), np.asarray(ref_lam))
        np.testing.assert_array_equal(np.asarray(u[jnp.array([0, 2])]), np.asarray(ref_u))
        assert bool(jnp.all(jnp.isnan(logm(x_bad)[1])))
        assert bool(jnp.all(jnp.isfinite(logm(x_bad)[jnp.array([0, 2])])))


def test_gradient_equals_eigh_gradient():
    with jax.enable_x64(True):
        x = _spd_batch(jnp.float64)[0]
        w = jnp.arange(4.0)

        def loss(eig):
            return lambda m: jnp.sum(w * eig(m)[0]) + jnp.sum(eig(m)[1][:, 0] ** 2)

        g = jax.grad(loss(eigh_or_nan))(x)
        g_ref = jax.grad(loss(jnp.linalg.eigh))(x)
        # the same formula, fused differently: rounding of a few operations on O(|g|) terms
        atol = 64 * np.finfo(np.float64).eps * float(jnp.abs(g_ref).max())
        np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=0, atol=atol)
