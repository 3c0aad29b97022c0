"""Tolerance helpers: the round-off model of rounding_tolerance, matmul_eps per backend and
precision, and that the float32 summation model covers sums in any order."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.testing import (
    assert_allclose_dtype,
    default_tolerance,
    matmul_eps,
    rounding_tolerance,
)

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def test_default_tolerance_values():
    assert default_tolerance(jnp.float32) == 1e-5
    assert default_tolerance(jnp.float64, 10) == pytest.approx(1e-9)
    assert default_tolerance(np.float16) == 1e-2
    # the float32 default is the sqrt-growth of ~441 rounding steps with safety 4
    assert rounding_tolerance(jnp.float32, n_ops=441) == pytest.approx(84 * EPS32)
    assert 80 * EPS32 < default_tolerance(jnp.float32) < 90 * EPS32
    with pytest.raises(ValueError, match="`dtype`"):
        default_tolerance(jnp.int32)


def test_rounding_tolerance_formula():
    assert rounding_tolerance(jnp.float32) == 4 * EPS32
    assert rounding_tolerance(jnp.float64, n_ops=100, cond=10) == pytest.approx(4 * EPS64 * 100)
    assert rounding_tolerance(jnp.float32, n_ops=100, growth="linear") == pytest.approx(400 * EPS32)
    assert rounding_tolerance(jnp.float32, n_ops=1000, growth="log2") == pytest.approx(40 * EPS32)
    assert rounding_tolerance(jnp.float32, n_ops=1, growth="log2") == 4 * EPS32
    assert rounding_tolerance(jnp.float32, safety=1, eps=0.5, n_ops=16) == 2.0
    # growth orders: log2 <= sqrt <= linear for n >= 16 (equal at n = 16 for log2 and sqrt)
    for n in (16, 1000, 10**6):
        logs, sq, lin = (rounding_tolerance(jnp.float32, n_ops=n, growth=g) for g in _growths())
        assert logs <= sq <= lin


def _growths():
    return ("log2", "sqrt", "linear")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_ops": 0}, "`n_ops`"),
        ({"n_ops": True}, "`n_ops`"),
        ({"cond": 0.5}, "`cond`"),
        ({"cond": float("nan")}, "`cond`"),
        ({"growth": "cubic"}, "`growth`"),
        ({"safety": 0}, "`safety`"),
        ({"eps": -1.0}, "`eps`"),
    ],
)
def test_rounding_tolerance_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rounding_tolerance(jnp.float32, **kwargs)


def test_rounding_tolerance_dtype_validation():
    with pytest.raises(ValueError, match="`dtype`"):
        rounding_tolerance(jnp.int32)
    with pytest.raises(ValueError, match="`dtype`"):
        rounding_tolerance("not a dtype")


def test_matmul_eps_per_backend_and_precision():
    hi = jax.lax.Precision.HIGHEST
    for backend in ("cpu", "gpu", "cuda", "tpu"):
        assert matmul_eps(jnp.float64, backend=backend) == EPS64
        assert matmul_eps(jnp.float32, hi, backend=backend) == EPS32
        assert matmul_eps(jnp.float32, "F32_F32_F32", backend=backend) == EPS32
        assert matmul_eps(jnp.float32, "tensorfloat32", backend=backend) == 2.0**-10
        assert matmul_eps(jnp.float32, "bfloat16", backend=backend) == 2.0**-7
    assert matmul_eps(jnp.float32, backend="cpu") == EPS32
    assert matmul_eps(jnp.float32, jax.lax.Precision.DEFAULT, backend="cpu") == EPS32
    for p in (None, "default", "high", jax.lax.Precision.HIGH):
        assert matmul_eps(jnp.float32, p, backend="gpu") == 2.0**-10
    assert matmul_eps(jnp.float32, backend="tpu") == 2.0**-7
    assert matmul_eps(jnp.float32, (hi, jax.lax.Precision.DEFAULT), backend="gpu") == 2.0**-10
    assert matmul_eps(jnp.float16) == float(np.finfo(np.float16).eps)
    assert matmul_eps(jnp.bfloat16) == 2.0**-7
    with pytest.raises(ValueError, match="`precision`"):
        matmul_eps(jnp.float32, "quadruple")
    with pytest.raises(ValueError, match="`dtype`"):
        matmul_eps(jnp.int32)


def test_matmul_eps_follows_config():
    """``jax_default_matmul_precision`` is read when ``precision`` is not given."""
    with jax.default_matmul_precision("highest"):
        assert matmul_eps(jnp.float32, backend="gpu") == EPS32
    with jax.default_matmul_precision("tensorfloat32"):
        assert matmul_eps(jnp.float32, backend="cpu") == 2.0**-10
    expected = 2.0**-10 if jax.default_backend() == "gpu" else matmul_eps(jnp.float32)
    assert matmul_eps(jnp.float32) == expected


def test_matmul_eps_bounds_the_actual_product(key):
    """The measured float32 product error is within the model at the effective precision."""
    n = 256
    a = jax.random.normal(key, (64, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, 64), jnp.float32)
    got = np.asarray(a @ b, np.float64)
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    # entrywise: |err| <= tol * (|a| |b|)_ij, the sum of the magnitudes of the n products
    scale = np.abs(an) @ np.abs(bn)
    tol = rounding_tolerance(jnp.float32, n_ops=n, eps=matmul_eps(jnp.float32))
    assert np.all(np.abs(got - an @ bn) <= tol * scale)


@pytest.mark.parametrize("n", [1000, 50_000])
def test_sqrt_model_covers_float32_sums_in_any_order(n):
    """A float32 sum of n positive terms, accumulated in the orders XLA or a BLAS may choose
    (sequential, reversed, shuffled, 8 or 16 interleaved lanes, pairwise), stays within
    ``rounding_tolerance(float32, n_ops=n)`` of the exact sum; the worst case of the model's
    own sqrt growth is far below the linear bound."""
    rng = np.random.default_rng(n)
    x = (rng.random(n) + 0.1).astype(np.float32)
    exact = math.fsum(x.astype(np.float64))
    tol = rounding_tolerance(np.float32, n_ops=n)

    def sequential(v):
        return float(np.cumsum(v, dtype=np.float32)[-1])

    def lanes(v, k):
        pad = np.concatenate([v, np.zeros(-len(v) % k, np.float32)]).reshape(-1, k)
        return sequential(np.cumsum(pad, axis=0, dtype=np.float32)[-1])

    orders = {
        "sequential": sequential(x),
        "reversed": sequential(x[::-1]),
        "shuffled": sequential(rng.permutation(x)),
        "8 lanes": lanes(x, 8),
        "16 lanes": lanes(x, 16),
        "pairwise": float(np.sum(x, dtype=np.float32)),
        "xla": float(jnp.sum(jnp.asarray(x))),
    }
    for name, s in orders.items():
        assert abs(s - exact) <= tol * exact, (name, abs(s - exact) / exact, tol)


def test_assert_allclose_dtype_rtol():
    x = np.float32([1.0, 2.0, 3.0])
    assert_allclose_dtype(x * (1 + 1e-4), x, rtol=2e-4)
    with pytest.raises(AssertionError, match="rtol 1.0e-05"):
        assert_allclose_dtype(x * (1 + 1e-4), x)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_allclose_dtype(np.float32([np.nan, 2.0, 3.0]), x, rtol=1.0)
