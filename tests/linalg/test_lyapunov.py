"""solve_lyapunov against scipy.linalg.solve_sylvester and through its residual."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from jax.test_util import check_grads

from geomjax.linalg import solve_lyapunov
from geomjax.testing import assert_allclose_dtype, check_grads_finite, rounding_tolerance


def random_spd(rng, n, cond):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.logspace(0.0, np.log10(cond), n)) @ q.T


def test_identity_metric_matches_scipy_sylvester():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        a = random_spd(rng, 5, 1e3)
        x = rng.normal(size=(5, 5))
        k = solve_lyapunov(jnp.asarray(a), jnp.asarray(x))
        # float64 solve of a system with condition number cond(A) = 1e3 (eigenbasis of A)
        tol = rounding_tolerance(np.float64, n_ops=5, cond=1e3, growth="linear")
        assert_allclose_dtype(k, sla.solve_sylvester(a, a, x), rtol=tol)


def test_generalized_matches_kronecker_solve():
    # vec(A K M + M K A) = (M^T kron A + A^T kron M) vec(K): dense, independent.
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        n = 4
        a, m = random_spd(rng, n, 1e2), random_spd(rng, n, 10.0)
        x = rng.normal(size=(n, n))
        op = np.kron(m.T, a) + np.kron(a.T, m)
        expected = np.linalg.solve(op, x.reshape(-1, order="F")).reshape(n, n, order="F")
        # float64 solves of a Kronecker operator with condition number <= cond(A) cond(M) = 1e3
        tol = rounding_tolerance(np.float64, n_ops=n * n, cond=1e3, growth="linear")
        assert_allclose_dtype(solve_lyapunov(a, x, m), expected, rtol=tol)


def test_float32_residual_and_batch():
    rng = np.random.default_rng(2)
    a = np.stack([random_spd(rng, 3, 10.0) for _ in range(5)]).astype(np.float32)
    m = np.stack([random_spd(rng, 3, 10.0) for _ in range(5)]).astype(np.float32)
    x = rng.normal(size=(5, 3, 3)).astype(np.float32)
    k = jax.jit(solve_lyapunov)(a, x, m)
    assert k.dtype == jnp.float32
    # backward error of a float32 solve through 3x3 eigendecompositions: the residual (in
    # float64) is round-off relative to ||A|| ||K|| ||M||, with n = 3 (linear growth)
    a64, m64, k64 = (np.asarray(t, np.float64) for t in (a, m, k))
    resid = np.linalg.norm(a64 @ k64 @ m64 + m64 @ k64 @ a64 - x, axis=(1, 2))
    scale = 2 * np.prod([np.linalg.norm(t, axis=(1, 2)) for t in (a64, k64, m64)], axis=0)
    assert np.all(resid <= rounding_tolerance(np.float32, n_ops=3, growth="linear") * scale)
    # same float32 algorithm batched by vmap instead of jit's batching: the float32 default
    np.testing.assert_allclose(jax.vmap(solve_lyapunov)(a, x, m), k, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("point", ["random", "identity", "shared_repeated"])
def test_check_grads_order2(point):
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        if point == "random":
            a, m = random_spd(rng, 3, 10.0), random_spd(rng, 3, 5.0)
        elif point == "identity":
            a, m = np.eye(3), np.eye(3)
        else:
            a = m = np.diag([1.0, 1.0, 2.0])
        x = rng.normal(size=(3, 3))
        check_grads(
            lambda a, m, x: solve_lyapunov(a, x, m), (a, m, x), order=2, modes=("fwd", "rev")
        )
        check_grads(lambda a, x: solve_lyapunov(a, x), (a, x), order=2, modes=("fwd", "rev"))


def test_gradients_finite_at_identity_float32():
    x = jnp.arange(9.0).reshape(3, 3)
    check_grads_finite(lambda a: jnp.sum(solve_lyapunov(a, x, a) ** 2), (jnp.eye(3),), order=2)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="`a`"):
        solve_lyapunov(jnp.ones(3), jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        solve_lyapunov(jnp.eye(3), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="`m`"):
        solve_lyapunov(jnp.eye(3), jnp.ones((3, 3)), jnp.ones((3, 2)))
