"""spectral_fn for user functions, and the divided-difference machinery."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.linalg import spectral_fn, sym


def test_polynomial_matches_matrix_power():
    # f(t) = t^3 + 2t: F(X) = X^3 + 2X exactly (independent: matmuls).
    rng = np.random.default_rng(0)
    f = spectral_fn(lambda t: t**3 + 2 * t)
    with jax.enable_x64(True):
        s = rng.normal(size=(5, 5))
        s = jnp.asarray(s + s.T)
        # float64 eigh of a 5x5 matrix (||S|| ~ 4, entries of S^3 ~ 50): 1e-12 = 4500 eps
        np.testing.assert_allclose(f(s), s @ s @ s + 2 * s, rtol=1e-12, atol=1e-12)
        # Derivative of a polynomial matrix function: D(X^3)[E] = E X^2 + X E X + X^2 E.
        e = jnp.asarray(rng.normal(size=(5, 5)))
        e = e + e.T
        _, tangent = jax.jvp(f, (s,), (e,))
        expected = e @ s @ s + s @ e @ s + s @ s @ e + 2 * e
        # divided differences (l_i^3 - l_j^3) / (l_i - l_j): rounding / eigenvalue gap
        np.testing.assert_allclose(tangent, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("point", ["identity", "repeated", "random"])
def test_generic_function_check_grads(point):
    # No user derivative and no stable divided difference: the generic path.
    f = spectral_fn(lambda t: jnp.tanh(t) + t**2)
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        if point == "identity":
            x = np.eye(4)
        elif point == "repeated":
            x = np.diag([0.3, 0.3, -1.0, -1.0])
        else:
            x = rng.normal(size=(4, 4))
            x = x + x.T
        check_grads(f, (jnp.asarray(x),), order=2, modes=("fwd", "rev"))


def test_second_derivative_of_polynomial_at_identity():
    # d^2/dt^2 (I + tE)^3 at t=0 = 6 E^2.
    f = spectral_fn(lambda t: t**3)
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        e = rng.normal(size=(3, 3))
        e = jnp.asarray(e + e.T)
        h = jax.jacrev(jax.jacfwd(lambda t: f(jnp.eye(3) + t * e)))(0.0)
        # float64 second divided differences at a triple eigenvalue: 1e-9 (entries ~10)
        np.testing.assert_allclose(h, 6 * e @ e, rtol=1e-9, atol=1e-9)


def test_near_zero_eigenvalue_cluster():
    # Eigenvalues ~1e-17 apart near zero must not be divided by their gap.
    f = spectral_fn(jnp.exp, jnp.exp)
    with jax.enable_x64(True):
        x = jnp.diag(jnp.array([1e-17, -1e-17, 0.5]))
        check_grads(f, (x,), order=2, modes=("fwd", "rev"))


def test_sym():
    x = jnp.array([[1.0, 2.0], [4.0, 3.0]])
    np.testing.assert_allclose(sym(x), [[1.0, 3.0], [3.0, 3.0]])
    with pytest.raises(ValueError, match="`x`"):
        sym(jnp.ones((2, 3)))
