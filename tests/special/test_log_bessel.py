"""Tests for geomjax.special.log_iv / log_kv.

Oracle: mpmath at 50 digits (``tests/special/_bessel_reference.py``: mpmath's own besseli/besselk
for v < 50, positive integral representations by mpmath.quad above), computed here, on a
(v, x) grid that covers every regime of the implementation (power series, Debye expansion,
Debye plus recurrence, trapezoidal integral) and the cells where ``scipy.special.ive`` over- or
underflows (v = d/2 - 1 for d in {2048, 8192, 32768}, x in [1, 1e5]). Grid values are exactly
representable in float32, so float32 results are compared at the same inputs.

Tolerances: 1e-13 (float64) and 1e-5 (float32) of ``max(1, |log f|)``: about 500 float64 ulps
and 80 float32 ulps, room for the O(10)-term sums and recurrences and for the O(v) cancellation
in ``s + v log(x / (v + s))`` of the Debye exponent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.special import log_iv, log_kv

mpmath = pytest.importorskip("mpmath")
import _bessel_reference as ref  # noqa: E402  (pytest puts tests/special on sys.path)

V_GRID = (
    0.0,
    0.5,
    1.0,
    2.5,
    10.0,
    19.5,
    20.0,
    50.0,
    100.0,
    500.0,
    1023.0,
    4095.0,
    16383.0,
    20000.0,
)
# Powers of two from 2^-20 (~1e-6) to 2^20 (~1e6), the series/recurrence switch at 12, and
# the decades where scipy.special.ive fails for large orders.
X_GRID = tuple(2.0**k for k in range(-20, 21, 3)) + (12.0, 1e3, 1e4, 1e5)

TOL = {np.float64: 1e-13, np.float32: 1e-5}


def _err(got, want):
    got = np.asarray(got, np.float64)
    return np.abs(got - want) / np.maximum(1.0, np.abs(want))


@pytest.fixture(scope="module")
def grid():
    v, x = np.meshgrid(np.asarray(V_GRID), np.asarray(X_GRID), indexing="ij")
    v, x = v.ravel(), x.ravel()
    want_i = np.array([ref.log_iv(a, b) for a, b in zip(v, x)])
    want_k = np.array([ref.log_kv(a, b) for a, b in zip(v, x)])
    return v, x, want_i, want_k


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("which", ["iv", "kv"])
def test_against_mpmath(grid, dtype, which):
    v, x, want_i, want_k = grid
    fn, want = (log_iv, want_i) if which == "iv" else (log_kv, want_k)
    with jax.enable_x64(dtype == np.float64):
        got = jax.jit(fn)(jnp.asarray(v, dtype), jnp.asarray(x, dtype))
        assert got.dtype == dtype
        got = np.asarray(got)
    assert np.all(np.isfinite(got))
    err = _err(got, want)
    worst = int(np.argmax(err))
    assert err[worst] <= TOL[dtype], (err[worst], v[worst], x[worst])


def test_scipy_fails_where_log_iv_does_not(grid):
    """The motivating cells: scipy's exponentially scaled ive still over/underflows there."""
    scipy_special = pytest.importorskip("scipy.special")
    v, x, want_i, _ = grid
    cells = np.isin(v, (1023.0, 4095.0, 16383.0)) & (x >= 1.0) & (x <= 1e5)
    with np.errstate(all="ignore"):
        scipy_log = np.log(scipy_special.ive(v[cells], x[cells])) + x[cells]
    assert np.sum(~np.isfinite(scipy_log)) >= cells.sum() // 2
    with jax.enable_x64(True):
        got = np.asarray(log_iv(v[cells], x[cells]))
    assert np.all(_err(got, want_i[cells]) <= TOL[np.float64])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_half_integer_closed_forms(dtype):
    """I_{1/2}(x) = sqrt(2/(pi x)) sinh x, K_{1/2}(x) = sqrt(pi/(2x)) e^{-x}, in log form."""
    x = np.array([1e-3, 0.7, 5.0, 12.0, 40.0, 900.0, 3e5])
    want_i = 0.5 * np.log(2 / (np.pi * x)) + x + np.log(-np.expm1(-2 * x)) - np.log(2)
    want_k = 0.5 * np.log(np.pi / (2 * x)) - x
    with jax.enable_x64(dtype == np.float64):
        got_i = np.asarray(log_iv(jnp.asarray(0.5, dtype), jnp.asarray(x, dtype)))
        got_k = np.asarray(log_kv(jnp.asarray(0.5, dtype), jnp.asarray(x, dtype)))
        x_used = np.asarray(jnp.asarray(x, dtype), np.float64)
    want_i = (
        0.5 * np.log(2 / (np.pi * x_used)) + x_used + np.log(-np.expm1(-2 * x_used)) - np.log(2)
    )
    want_k = 0.5 * np.log(np.pi / (2 * x_used)) - x_used
    assert np.max(_err(got_i, want_i)) <= TOL[dtype]
    assert np.max(_err(got_k, want_k)) <= TOL[dtype]


# One point per regime: series, recurrence, Debye; trapezoid + forward recurrence for K.
GRAD_POINTS = [
    (0.0, 1e-3),
    (0.5, 5.0),
    (2.5, 13.0),
    (10.0, 100.0),
    (19.5, 1e4),
    (50.0, 30.0),
    (1023.0, 1000.0),
    (16383.0, 1e5),
]


@pytest.mark.parametrize("v,x", GRAD_POINTS)
@pytest.mark.parametrize("fn", [log_iv, log_kv], ids=["iv", "kv"])
def test_x_gradient_matches_finite_differences(fn, v, x, x64):
    # Relative step in x (u -> x (1 + u)): central-difference truncation ~ eps^2 = 1e-8 in
    # the scaled variable, far above float64 rounding; tolerance 1e-6.
    def f(u):
        return fn(v, x * (1.0 + u))

    check_grads(
        f, (jnp.asarray(0.0),), order=1, modes=("fwd", "rev"), eps=1e-4, atol=1e-6, rtol=1e-6
    )


@pytest.mark.parametrize("v,x", [(0.0, 0.3), (2.5, 13.0), (20.0, 5.0), (1023.0, 1000.0)])
def test_x_derivative_against_mpmath_ratio(v, x, x64):
    """d/dx log I_v = I_{v+1}/I_v + v/x and d/dx log K_v = -K_{v-1}/K_v - v/x, at 50 digits."""
    di = float(jax.grad(log_iv, argnums=1)(v, x))
    dk = float(jax.grad(log_kv, argnums=1)(v, x))
    want_i = float(mpmath.exp(ref.log_iv(v + 1, x) - mpmath.mpf(ref.log_iv(v, x)))) + v / x
    km1 = ref.log_kv(abs(v - 1), x)  # K_{-a} = K_a
    want_k = -float(mpmath.exp(km1 - mpmath.mpf(ref.log_kv(v, x)))) - v / x
    # The references are float64-rounded logs: their difference carries ~|log f| * 1e-16.
    tol = 1e-13 * max(1.0, abs(ref.log_iv(v, x)))
    assert abs(di - want_i) <= tol * abs(want_i)
    assert abs(dk - want_k) <= tol * abs(want_k)


@pytest.mark.parametrize("v,x", [(0.7, 3.0), (500.0, 2000.0)])
@pytest.mark.parametrize("fn", [log_iv, log_kv], ids=["iv", "kv"])
def test_v_gradient_finite_difference(fn, v, x, x64):
    # The v-derivative is itself a finite difference (error ~ eps^(2/3) |f| ~ 1e-11 |f|):
    # compared with check_grads' own differences at tolerance 1e-6.
    check_grads(
        lambda a, b: fn(a, b),
        (jnp.asarray(v), jnp.asarray(x)),
        order=1,
        modes=("fwd", "rev"),
        eps=1e-3,
        atol=1e-6,
        rtol=1e-6,
    )


def test_limits_at_zero(x64):
    assert float(log_iv(0.0, 0.0)) == 0.0
    assert float(log_iv(1.5, 0.0)) == -np.inf
    assert float(log_kv(0.0, 0.0)) == np.inf
    assert float(log_kv(3.0, 0.0)) == np.inf
    assert float(jax.grad(log_iv, argnums=1)(0.0, 0.0)) == 0.0
    assert float(log_iv(2.0, np.inf)) == np.inf
    assert float(log_kv(2.0, np.inf)) == -np.inf


def test_tiny_and_huge_arguments_are_finite(x64):
    v = jnp.array([0.0, 0.3, 1.0, 7.5, 19.9, 20.0, 300.0, 20000.0])
    for x in (1e-300, 1e-30, 1e-9, 1e30, 1e300):
        for fn in (log_iv, log_kv):
            out = fn(v, x)
            assert bool(jnp.all(jnp.isfinite(out))), (fn.__name__, x, out)
    # Leading terms: log I_v(x) ~ v log(x/2) - lgamma(v + 1) for tiny x.
    got = np.asarray(log_iv(v, 1e-30))
    want = np.asarray(v) * np.log(0.5e-30) - np.array(
        [float(mpmath.loggamma(float(a) + 1)) for a in v]
    )
    assert np.max(_err(got, want)) <= 1e-13


def test_invalid_values_give_nan():
    with jax.debug_nans(False), jax.enable_x64(True):
        for fn in (log_iv, log_kv):
            out = np.asarray(
                fn(jnp.array([-1.0, 1.0, np.nan, 1.0]), jnp.array([1.0, -1.0, 1.0, np.nan]))
            )
            assert np.all(np.isnan(out))
            g = jax.grad(fn, argnums=1)(1.0, -1.0)
            assert np.isnan(float(g))


def test_shapes_dtypes_and_transforms(x64):
    v = jnp.array([0.0, 2.5, 30.0], jnp.float32)
    x = jnp.array([[1.0], [100.0]], jnp.float32)
    out = log_iv(v, x)
    assert out.shape == (2, 3) and out.dtype == jnp.float32
    assert log_kv(1, 2).dtype == jnp.float64  # integers promote to the default float
    assert log_iv(jnp.float32(1.0), 2.0).dtype == jnp.float32  # weak Python float
    ref64 = np.asarray(log_iv(np.array([0.0, 2.5, 30.0]), np.array([[1.0], [100.0]])))
    np.testing.assert_allclose(np.asarray(out), ref64, rtol=1e-5)
    vm = jax.vmap(log_kv, in_axes=(0, None))(jnp.array([0.5, 25.0]), 3.0)
    np.testing.assert_allclose(
        np.asarray(vm), np.asarray(log_kv(jnp.array([0.5, 25.0]), 3.0)), rtol=1e-15
    )
    g = jax.vmap(jax.grad(log_iv, argnums=1))(jnp.array([0.5, 25.0]), jnp.array([3.0, 3.0]))
    assert g.shape == (2,) and bool(jnp.all(jnp.isfinite(g)))


def test_bad_input_raises():
    with pytest.raises(TypeError, match="`x`"):
        log_iv(1.0, jnp.array([1.0 + 1.0j]))
    with pytest.raises(TypeError, match="`v`"):
        log_kv(jnp.array([1.0j]), 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        log_iv(jnp.ones(3), jnp.ones(4))


@pytest.mark.slow
def test_dense_grid_against_mpmath():
    """1200 points, v log-spaced in [0.1, 20000] (plus v = 0), x log-spaced in [1e-6, 1e6].

    Bound: 1e-13 of max(1, |log f|), or, near the zero crossing of log I_v / log K_v at large
    v, 64 eps (1 + hypot(v, x)) absolute: log f has absolute condition number ~hypot(v, x)
    for relative perturbations of v and x, so float64 arithmetic on the O(v) terms of the
    Debye exponent cannot do better there (measured on the default grid: 5e-15 relative).
    """
    rng = np.random.default_rng(1)
    v = np.concatenate([[0.0], 10.0 ** rng.uniform(-1, np.log10(20000.0), 29)])
    x = 10.0 ** rng.uniform(-6, 6, 40)
    v, x = (a.ravel() for a in np.meshgrid(v, x, indexing="ij"))
    for fn, reference in ((log_iv, ref.log_iv), (log_kv, ref.log_kv)):
        want = np.array([reference(a, b) for a, b in zip(v, x)])
        with jax.enable_x64(True):
            got = np.asarray(jax.jit(fn)(v, x))
        assert np.all(np.isfinite(got))
        err = np.abs(got - want)
        budget = np.maximum(
            1e-13 * np.maximum(1.0, np.abs(want)), 64 * 2.2e-16 * (1 + np.hypot(v, x))
        )
        worst = int(np.argmax(err / budget))
        assert err[worst] <= budget[worst], (
            fn.__name__,
            v[worst],
            x[worst],
            err[worst],
            want[worst],
        )
        print(fn.__name__, "max relative error", float(np.max(err / np.maximum(1.0, np.abs(want)))))
