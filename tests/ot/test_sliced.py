"""Tests for the Monte-Carlo sliced Wasserstein distance (geomjax.ot._sliced)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.ot._sliced import (
    default_chunk_size,
    projected_wpp,
    random_projections,
    sliced_wasserstein,
    sliced_wasserstein_with_error,
)
from geomjax.testing import check_grads_finite, matmul_eps, rounding_tolerance


def _clouds(n=24, m=24, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) @ np.diag(np.linspace(0.5, 1.5, d)) + 0.7
    return x, y


def _weights(rng, n):
    w = rng.random(n) + 0.1
    return w / w.sum()


def _pot():
    ot = pytest.importorskip("ot")
    assert hasattr(ot, "sliced_wasserstein_distance"), "`ot` resolved to a non-POT package"
    return ot


@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("case", ["equal_uniform", "unequal_uniform", "weighted"])
def test_vs_pot_same_projections(x64, p, case):
    ot = _pot()
    rng = np.random.default_rng(1)
    m = 24 if case == "equal_uniform" else 17
    x, y = _clouds(24, m, 4)
    a, b = (_weights(rng, 24), _weights(rng, m)) if case == "weighted" else (None, None)
    th = np.asarray(random_projections(jax.random.key(3), 40, 4, jnp.float64))
    ref = ot.sliced_wasserstein_distance(x, y, a, b, projections=th.T, p=p)
    got = sliced_wasserstein(None, x, y, a, b, projections=th, p=p)
    # float64 vs POT (an LP per direction for weighted measures): the float64 default 1e-10
    np.testing.assert_allclose(float(got), ref, rtol=1e-10)
    # per-direction values against POT's log
    _, log = ot.sliced_wasserstein_distance(x, y, a, b, projections=th.T, p=p, log=True)
    est = sliced_wasserstein_with_error(None, x, y, a, b, projections=th, p=p)
    np.testing.assert_allclose(est.projected, log["projected_emds"], rtol=1e-10, atol=1e-14)
    se = np.std(log["projected_emds"], ddof=1) / np.sqrt(40)
    np.testing.assert_allclose(float(est.std_error), se, rtol=1e-10)
    np.testing.assert_allclose(float(est.value), ref, rtol=1e-10)


def test_float32_vs_float64_reference(dtype):
    """Both dtypes agree with a float64 numpy sorted-sample formula (fast path)."""
    x, y = _clouds(32, 32, 5)
    th = np.asarray(random_projections(jax.random.key(0), 16, 5, jnp.float32), np.float64)
    th /= np.linalg.norm(th, axis=1, keepdims=True)
    px, py = np.sort(x @ th.T, axis=0), np.sort(y @ th.T, axis=0)
    ref = np.sqrt(np.mean((px - py) ** 2))
    got = sliced_wasserstein(
        None, jnp.asarray(x, dtype), jnp.asarray(y, dtype), projections=jnp.asarray(th, dtype)
    )
    assert got.dtype == dtype
    # projections are 5-term products (matmul precision; relative to |x|, and px - py cancels
    # by |x| / W), then a mean of 32 * 16 squared differences
    cond = np.sqrt(np.mean(np.concatenate([x, y]) ** 2)) / ref
    tol = rounding_tolerance(dtype, n_ops=5, cond=max(cond, 1.0), eps=matmul_eps(dtype))
    tol += rounding_tolerance(dtype, n_ops=32 * 16)
    np.testing.assert_allclose(float(got), ref, rtol=tol)


@pytest.mark.parametrize("weighted", [False, True])
def test_chunked_equals_unchunked(x64, key, weighted):
    rng = np.random.default_rng(2)
    x, y = _clouds(20, 20 if not weighted else 13, 3)
    a, b = (_weights(rng, 20), _weights(rng, 13)) if weighted else (None, None)
    th = random_projections(key, 50, 3, jnp.float64)
    full = projected_wpp(jnp.asarray(x), jnp.asarray(y), a, b, th, 2.0)
    for c in (7, 25, 1):
        chunked = projected_wpp(jnp.asarray(x), jnp.asarray(y), a, b, th, 2.0, chunk_size=c)
        # float64, the same terms reduced in chunks: 450 eps64 on values ~1
        np.testing.assert_allclose(chunked, full, rtol=1e-13, atol=1e-15)
    x = jnp.asarray(x)
    g_full = jax.grad(lambda x: sliced_wasserstein(None, x, y, a, b, projections=th))(x)
    g_chunk = jax.grad(
        lambda x: sliced_wasserstein(None, x, y, a, b, projections=th, chunk_size=7)
    )(x)
    np.testing.assert_allclose(g_chunk, g_full, rtol=1e-12, atol=1e-14)


def test_default_chunk_size():
    assert default_chunk_size(128, 100, 100) == 128
    assert default_chunk_size(10_000, 2**20, 2**20) == 64
    assert default_chunk_size(10_000, 2**20, 2**20, weighted=True) == 16
    assert default_chunk_size(5, 2**28, 2**28) == 1


def test_random_projections(x64):
    th = random_projections(jax.random.key(0), 200_000, 3, jnp.float64)
    assert th.shape == (200_000, 3) and th.dtype == jnp.float64
    # float64 normalization: a few roundings (45 eps64)
    np.testing.assert_allclose(jnp.linalg.norm(th, axis=1), 1.0, rtol=1e-14)
    # E[theta theta^T] = I / d, Monte-Carlo error ~ 0.3 / sqrt(2e5) ~ 7e-4
    np.testing.assert_allclose(th.T @ th / th.shape[0], np.eye(3) / 3, rtol=0, atol=5e-3)


def test_translation_closed_form(x64, key):
    """y = x + t: every projection is a translate, W_p^p(theta) = |<theta, t>|^p exactly."""
    x, _ = _clouds(15, 15, 4)
    t = np.array([0.3, -1.0, 2.0, 0.5])
    th = random_projections(key, 64, 4, jnp.float64)
    for p in (1.0, 2.0, 3.0):
        ref = np.mean(np.abs(np.asarray(th) @ t) ** p) ** (1 / p)
        got = sliced_wasserstein(None, x, x + t, projections=th, p=p)
        np.testing.assert_allclose(float(got), ref, rtol=1e-12)  # float64, 64 directions


def test_jit_vmap(key):
    xs = jax.random.normal(key, (4, 16, 3))
    ys = jax.random.normal(jax.random.key(1), (4, 16, 3)) + 1.0
    f = jax.jit(lambda k, x, y: sliced_wasserstein(k, x, y, n_projections=32))
    keys = jax.random.split(jax.random.key(2), 4)
    batched = jax.vmap(f)(keys, xs, ys)
    loop = jnp.stack([f(keys[i], xs[i], ys[i]) for i in range(4)])
    # the same float32 computation batched or looped: the float32 default
    np.testing.assert_allclose(batched, loop, rtol=1e-5)
    assert batched.shape == (4,)


def test_check_grads_generic(x64, key):
    rng = np.random.default_rng(4)
    x, y = _clouds(6, 5, 2)
    th = random_projections(key, 8, 2, jnp.float64)
    wa, wb = jnp.asarray(rng.random(6) + 0.5), jnp.asarray(rng.random(5) + 0.5)

    @jax.jit
    def f(x, y, wa, wb):
        return sliced_wasserstein(None, x, y, wa / wa.sum(), wb / wb.sum(), projections=th, p=1.5)

    args = (jnp.asarray(x), jnp.asarray(y), wa, wb)
    # float64 central differences (step 1e-4): truncation ~1e-8
    check_grads(f, args, order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_grads_finite_at_identical_clouds(x64, key):
    x, _ = _clouds(8, 8, 3)
    x = jnp.asarray(x)
    w = jnp.full(8, 1 / 8)
    for p in (1.0, 2.0):  # fast path (uniform, n == m)
        f = lambda x, y: sliced_wasserstein(key, x, y, n_projections=16, p=p)  # noqa: E731
        assert float(f(x, x)) == 0.0
        check_grads_finite(f, (x, x), order=1)
        np.testing.assert_allclose(jax.grad(f)(x, x), 0.0)
    # merged-grid path (weights given), p = 1.5: double-where power and root
    g = lambda x, y, a: sliced_wasserstein(key, x, y, a, w, n_projections=16, p=1.5)  # noqa: E731
    assert float(g(x, x, w)) == 0.0
    check_grads_finite(g, (x, x, w), order=1)


def test_validation_errors(key):
    x, y = jnp.zeros((4, 3)), jnp.ones((5, 3))
    with pytest.raises(ValueError, match="`key`"):
        sliced_wasserstein(None, x, y)
    with pytest.raises(ValueError, match="`projections`"):
        sliced_wasserstein(None, x, y, projections=jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="`chunk_size`"):
        sliced_wasserstein(key, x, y, chunk_size=0)
    with pytest.raises(ValueError, match="`n_projections`"):
        sliced_wasserstein(key, x, y, n_projections=0)
    with pytest.raises(ValueError, match="`p`"):
        sliced_wasserstein(key, x, y, p=0.5)
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(key, x, jnp.ones((5, 2)))
    with pytest.raises(ValueError, match="`a`"):
        sliced_wasserstein(key, x, y, jnp.ones(4))
