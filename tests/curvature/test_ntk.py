"""Empirical NTK against explicit Jacobian products J(x1) J(x2)^T in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.curvature._ntk import empirical_ntk


@pytest.mark.parametrize("method", ["jacobian_contraction", "ntk_vector_products"])
def test_ntk_equals_explicit_jacobian_products(mlp64, method):
    m = mlp64
    rng = np.random.default_rng(3)
    x1 = jnp.asarray(rng.normal(size=(4, 3)))
    x2 = jnp.asarray(rng.normal(size=(5, 3)))

    def jac(x):  # (n, k, d) by one dense jacobian of the flat parameters
        return np.asarray(jax.jacobian(lambda t: m.mlp(m.unravel(t), x))(m.flat))

    j1, j2 = jac(x1), jac(x2)
    want = np.einsum("aop,bqp->aboq", j1, j2)
    ntk = jax.jit(
        lambda a, b: (
            empirical_ntk(m.mlp_one, m.params, a, b, method=method),
            empirical_ntk(m.mlp_one, m.params, a, b, method=method, trace=True),
        )
    )
    full, tr = ntk(x1, x2)
    assert full.shape == (4, 5, 3, 3) and tr.shape == (4, 5)
    np.testing.assert_allclose(full, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        tr, np.einsum("aoo->a", want.reshape(20, 3, 3)).reshape(4, 5), atol=1e-12
    )


def test_ntk_is_symmetric_psd_on_one_set(mlp64):
    m = mlp64
    x = jnp.asarray(np.random.default_rng(4).normal(size=(6, 3)))
    k = np.asarray(empirical_ntk(m.mlp_one, m.params, x, x)).transpose(0, 2, 1, 3).reshape(18, 18)
    np.testing.assert_allclose(k, k.T, rtol=0, atol=1e-12)
    assert np.linalg.eigvalsh(k).min() > -1e-10


def test_validation_errors(mlp64):
    m = mlp64
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="`x1` and `x2`"):
        empirical_ntk(m.mlp_one, m.params, x, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="`f`"):
        empirical_ntk(lambda p, x: jnp.sum(m.mlp_one(p, x)), m.params, x, x)
    with pytest.raises(ValueError, match="`method`"):
        empirical_ntk(m.mlp_one, m.params, x, x, method="svd")
    with pytest.raises(ValueError, match="`x1`"):
        empirical_ntk(m.mlp_one, m.params, jnp.ones(()), x)
    with pytest.raises(TypeError, match="`x2`"):
        empirical_ntk(m.mlp_one, m.params, x, jnp.ones((2, 3), jnp.int32))
