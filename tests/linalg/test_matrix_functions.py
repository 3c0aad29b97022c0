"""geomjax.linalg matrix functions against scipy.linalg, and their derivatives at singular points."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from jax.test_util import check_grads

from geomjax.linalg import expm, invsqrtm, logm, powm, sqrtm
from geomjax.testing import assert_allclose_dtype, check_grads_finite, rounding_tolerance


def random_spd(rng, n, cond):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.logspace(0.0, np.log10(cond), n)
    return (q * lam) @ q.T


def repeated_spd(rng, spectrum):
    q, _ = np.linalg.qr(rng.normal(size=(len(spectrum), len(spectrum))))
    return (q * np.asarray(spectrum)) @ q.T


# (name, geomjax function, scipy reference): references computed independently (Schur-based
# sqrtm, inverse scaling-and-squaring logm, Pade expm, fractional_matrix_power).
CASES = [
    ("sqrtm", sqrtm, lambda a: sla.sqrtm(a)),
    ("invsqrtm", invsqrtm, lambda a: np.linalg.inv(sla.sqrtm(a))),
    ("logm", logm, lambda a: sla.logm(a)),
    ("powm(0.3)", lambda a: powm(a, 0.3), lambda a: sla.fractional_matrix_power(a, 0.3)),
    ("powm(-1.7)", lambda a: powm(a, -1.7), lambda a: sla.fractional_matrix_power(a, -1.7)),
    (
        "powm(traced 0.3)",
        lambda a: powm(a, jnp.asarray(0.3)),
        lambda a: sla.fractional_matrix_power(a, 0.3),
    ),
]


@pytest.mark.parametrize("name,fn,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("cond", [1.0, 1e2, 1e6])
def test_against_scipy_float64(name, fn, ref, cond):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for n in (1, 3, 8):
            a = random_spd(rng, n, cond)
            if cond == 1.0:
                # A = Q Q^T is I up to rounding: compare with f(I) (scipy at the exact identity;
                # logm(I) = 0), up to |f'(1)| <= 2 times ||A - I|| plus eigh's round-off
                expected = np.real(ref(np.eye(n)))
                atol = 2 * np.linalg.norm(a - np.eye(n))
                atol += rounding_tolerance(np.float64, n_ops=n, growth="linear")
                rtol = 0.0
            else:
                # eigh: eigenvalue errors ~eps ||A||, so relative errors of f at the smallest
                # eigenvalue grow with cond(A) (times |p| <= 2 for powers)
                expected, atol = np.real(ref(a)), 0.0
                rtol = rounding_tolerance(np.float64, n_ops=n, cond=2 * cond)
            assert_allclose_dtype(
                fn(jnp.asarray(a)), expected, rtol=rtol, atol=atol, err_msg=f"{name} n={n}"
            )


def test_expm_against_scipy_float64():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        for n in (1, 4, 8):
            s = rng.normal(size=(n, n))
            s = 2.0 * (s + s.T)  # indefinite symmetric
            # eigh-based vs Pade; ||S|| ~ 10: the float64 default
            assert_allclose_dtype(expm(jnp.asarray(s)), sla.expm(s))


@pytest.mark.parametrize("name,fn,ref", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_against_scipy_float32(name, fn, ref):
    rng = np.random.default_rng(2)
    a = random_spd(rng, 6, 10.0)
    # float32 eigh of a 6x6 matrix with cond 10 (the float32 input is A rounded: the same)
    tol = rounding_tolerance(jnp.float32, n_ops=6, cond=2 * 10.0, growth="linear")
    assert_allclose_dtype(fn(jnp.asarray(a, jnp.float32)), np.real(ref(a)), rtol=tol)


POINTS = {
    "random": lambda rng: random_spd(rng, 4, 20.0),
    "identity": lambda rng: np.eye(4),
    "repeated": lambda rng: repeated_spd(rng, [0.5, 0.5, 2.0, 3.0]),
    "two_pairs": lambda rng: np.diag([1.0, 1.0, 4.0, 4.0]),
    "scaled_identity": lambda rng: 3.0 * np.eye(4),
}
FUNCS = {
    "sqrtm": sqrtm,
    "invsqrtm": invsqrtm,
    "logm": logm,
    "expm": expm,
    "powm": lambda a: powm(a, 0.7),
    "powm_traced": lambda a: powm(a, jnp.asarray(-0.4)),
}


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("fname", list(FUNCS))
def test_check_grads_order2(point, fname):
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        a = jnp.asarray(POINTS[point](rng))
        check_grads(FUNCS[fname], (a,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("fname", list(FUNCS))
def test_gradients_finite_at_identity(fname):
    f = FUNCS[fname]
    check_grads_finite(lambda a: jnp.sum(f(a) ** 2), (jnp.eye(3),), order=2)


def test_first_derivative_at_identity_matches_closed_form():
    # D sqrt(I)[E] = E / 2, D log(I)[E] = E, D exp(0)[E] = E: independent closed forms.
    rng = np.random.default_rng(4)
    e = rng.normal(size=(3, 3))
    e = jnp.asarray(e + e.T)
    with jax.enable_x64(True):
        e = jnp.asarray(e, jnp.float64)
        eye = jnp.eye(3)
        # float64 divided differences at equal eigenvalues: a few roundings; 1e-12 = 4500 eps
        np.testing.assert_allclose(jax.jvp(sqrtm, (eye,), (e,))[1], e / 2, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jax.jvp(logm, (eye,), (e,))[1], e, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jax.jvp(expm, (0 * eye,), (e,))[1], e, rtol=1e-12, atol=1e-12)


def test_second_derivative_at_identity_closed_form():
    # d^2/dt^2 log(I + tE) at t=0 = -E^2 (series log(I + tE) = tE - t^2 E^2 / 2 + ...).
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        e = rng.normal(size=(4, 4))
        e = jnp.asarray(e + e.T)
        second = jax.jacfwd(jax.jacrev(lambda t: logm(jnp.eye(4) + t * e)))(0.0)
        # float64 second divided differences at a 4-fold eigenvalue (||E||^2 ~ 10): 1e-9
        np.testing.assert_allclose(second, -e @ e, rtol=1e-9, atol=1e-9)
        second_rr = jax.jacrev(jax.jacrev(lambda t: sqrtm(jnp.eye(4) + t * e)))(0.0)
        # sqrt(I + tE) = I + tE/2 - t^2 E^2 / 8 + ...
        np.testing.assert_allclose(second_rr, -e @ e / 4, rtol=1e-9, atol=1e-9)


def test_gradient_matches_finite_difference_of_scipy():
    # Independent: central differences of scipy.linalg.logm in float64.
    rng = np.random.default_rng(6)
    a = random_spd(rng, 4, 50.0)
    w = rng.normal(size=(4, 4))

    def loss_np(m):
        return float(np.sum(w * np.real(sla.logm(m))))

    h = 1e-6
    fd = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            d = np.zeros((4, 4))
            d[i, j] = h
            fd[i, j] = (loss_np(a + d) - loss_np(a - d)) / (2 * h)
    with jax.enable_x64(True):
        g = jax.grad(lambda m: jnp.sum(jnp.asarray(w) * logm(m)))(jnp.asarray(a))
    # logm reads only the symmetric part: compare symmetrised gradients. Central differences
    # with h = 1e-6 of a float64 logm (cond 50): truncation ~h^2, round-off ~eps * 50 / h ~ 1e-8
    np.testing.assert_allclose(np.asarray(g), 0.5 * (fd + fd.T), rtol=1e-6, atol=1e-8)


def test_powm_gradient_in_p():
    # d/dp tr(A^p) = sum lam^p log lam.
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        a = repeated_spd(rng, [0.5, 0.5, 2.0])
        g = jax.grad(lambda p: jnp.trace(powm(jnp.asarray(a), p)))(1.3)
        lam = np.array([0.5, 0.5, 2.0])
        np.testing.assert_allclose(g, np.sum(lam**1.3 * np.log(lam)), rtol=1e-10)  # f64 default
        check_grads(lambda p: powm(jnp.asarray(a), p), (1.3,), order=2)


@pytest.mark.parametrize("fname", list(FUNCS))
def test_jit_vmap_batch_consistency(fname, dtype):
    f = FUNCS[fname]
    rng = np.random.default_rng(8)
    batch = np.stack([random_spd(rng, 3, 5.0) for _ in range(4)]).astype(dtype)
    batched = jax.jit(f)(jnp.asarray(batch))
    mapped = jax.vmap(f)(jnp.asarray(batch))
    assert batched.dtype == dtype
    # the same eigh-based algorithm batched differently: 3x3, cond 5 (exp/log/pow amplify <= 2)
    tol = rounding_tolerance(dtype, n_ops=3, cond=2 * 5.0, growth="linear")
    assert_allclose_dtype(batched, np.asarray(mapped), rtol=tol)
    single = f(jnp.asarray(batch[2]))
    assert_allclose_dtype(batched[2], np.asarray(single), rtol=tol)


def test_grad_under_jit_and_vmap_float32():
    g = jax.jit(jax.vmap(jax.grad(lambda a: jnp.trace(sqrtm(a)))))(jnp.stack([jnp.eye(3)] * 2))
    tol = rounding_tolerance(jnp.float32, n_ops=3)  # float32 divided differences at I
    np.testing.assert_allclose(g, np.stack([0.5 * np.eye(3)] * 2), rtol=tol, atol=tol)


@pytest.mark.parametrize("fn", [sqrtm, invsqrtm, logm, expm, lambda a: powm(a, 2.0)])
@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 3)), np.ones((2, 0, 0))])
def test_bad_shapes_raise(fn, bad):
    with pytest.raises(ValueError, match="`x`"):
        fn(jnp.asarray(bad, jnp.float32))


def test_integer_input_raises_type_error():
    with pytest.raises(TypeError, match="`x`"):
        sqrtm(jnp.eye(2, dtype=jnp.int32))


def test_powm_bad_p_shape():
    with pytest.raises(ValueError, match="`p`"):
        powm(jnp.stack([jnp.eye(2)] * 3), jnp.ones((3, 2)))
