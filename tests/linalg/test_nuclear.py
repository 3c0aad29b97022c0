"""nuclear_norm against numpy singular values; its derivatives against the polar factor and the
closed-form second derivative, at generic matrices and at repeated singular values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.linalg._nuclear import nuclear_norm
from geomjax.testing import assert_allclose_dtype, check_grads_finite


@pytest.fixture(autouse=True)
def _op_by_op():
    """Run op by op: these tests call each function a few times, so compiling whole functions
    costs more than it saves (and jax_debug_nans then checks every intermediate)."""
    with jax.disable_jit():
        yield


def test_value_float64(x64):
    rng = np.random.default_rng(0)
    for n in (1, 2, 5):
        c = rng.normal(size=(4, n, n))  # batched (..., n, n), indefinite / non-symmetric
        ref = np.linalg.svd(c, compute_uv=False).sum(-1)
        assert_allclose_dtype(nuclear_norm(jnp.asarray(c)), ref, err_msg=f"n={n}")


def test_value_float32():
    rng = np.random.default_rng(1)
    c = rng.normal(size=(3, 4, 4)).astype(np.float32)
    ref = np.linalg.svd(c.astype(np.float64), compute_uv=False).sum(-1)
    got = nuclear_norm(jnp.asarray(c))
    assert got.dtype == jnp.float32
    assert_allclose_dtype(got, ref)


def test_value_ill_conditioned_float64(x64):
    """Relative accuracy of the SVD: no squaring of the condition number."""
    rng = np.random.default_rng(2)
    u, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    v, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    s = np.array([1.0, 1e-4, 1e-8, 1e-12])
    c = (u * s) @ v.T
    # SVD: absolute errors eps ||C|| per singular value, 4 of them: 1e-14 = 45 eps64
    assert abs(float(nuclear_norm(jnp.asarray(c))) - s.sum()) <= 1e-14 * s.sum()


def test_gradient_is_the_polar_factor(x64):
    rng = np.random.default_rng(3)
    c = rng.normal(size=(4, 4))
    u, _, vt = np.linalg.svd(c)
    assert_allclose_dtype(jax.grad(nuclear_norm)(jnp.asarray(c)), u @ vt)


def _orthogonal(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q


REPEATED = {
    "orthogonal": lambda: _orthogonal(3, 4),
    "identity": lambda: np.eye(3),
    "diag(1,1,3)": lambda: np.diag([1.0, 1.0, 3.0]),
    "generic": lambda: np.random.default_rng(5).normal(size=(3, 3)),
}


@pytest.mark.parametrize("name", list(REPEATED))
def test_second_order_at_repeated_singular_values(name, x64):
    c = jnp.asarray(REPEATED[name]())
    check_grads(nuclear_norm, (c,), order=2, modes=("fwd", "rev"))
    check_grads_finite(nuclear_norm, (c,), order=2)


def test_second_derivative_closed_form(x64):
    """D^2 ||C||_*[E, E] = 1/2 sum_ij (X_ij - X_ji)^2 / (s_i + s_j), X = U^T E V (numpy)."""
    rng = np.random.default_rng(6)
    for c in (_orthogonal(3, 7), rng.normal(size=(3, 3))):
        e = rng.normal(size=(3, 3))
        u, s, vt = np.linalg.svd(c)
        x = u.T @ e @ vt.T
        ref = 0.5 * np.sum((x - x.T) ** 2 / np.add.outer(s, s))

        def along(t, c=c, e=e):
            return nuclear_norm(jnp.asarray(c) + t * jnp.asarray(e))

        got = jax.jvp(lambda t: jax.jvp(along, (t,), (1.0,))[1], (0.0,), (1.0,))[1]
        np.testing.assert_allclose(float(got), ref, rtol=1e-10)  # float64 default
        hess = jax.hessian(nuclear_norm)(jnp.asarray(c))
        np.testing.assert_allclose(float(jnp.einsum("ij,ijkl,kl->", e, hess, e)), ref, rtol=1e-10)


def test_validation():
    with pytest.raises(ValueError, match="`c`"):
        nuclear_norm(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="`c`"):
        nuclear_norm(jnp.ones(3))


def test_finite_derivatives_with_one_zero_singular_value(x64):
    """Not differentiable there (a subgradient is returned), but nothing is NaN or inf."""
    check_grads_finite(nuclear_norm, (jnp.diag(jnp.array([0.0, 1.0, 2.0])),), order=2)
