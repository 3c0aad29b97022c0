"""Tests for the exact 1-D Wasserstein distance (geomjax.ot._wasserstein_1d)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.ot._measures import check_measures
from geomjax.ot._wasserstein_1d import wasserstein_1d, wasserstein_1d_pp, wpp_batched
from geomjax.testing import check_grads_finite, rounding_tolerance

EPS32 = float(np.finfo(np.float32).eps)


def _weights(rng, n):
    w = rng.random(n) + 0.1
    return w / w.sum()


@pytest.mark.parametrize("n,m", [(7, 5), (1, 4), (6, 6), (12, 3)])
def test_vs_scipy_p1(x64, n, m):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n * 10 + m)
    u, v = rng.normal(size=n), rng.normal(size=m) + 0.3
    a, b = _weights(rng, n), _weights(rng, m)
    got = float(wasserstein_1d(u, v, a, b, p=1))
    # float64 sums of n + m <= 15 terms by two algorithms (CDF differences vs quantiles)
    tol = rounding_tolerance(np.float64, n_ops=n + m, growth="linear")
    np.testing.assert_allclose(got, stats.wasserstein_distance(u, v, a, b), rtol=tol, atol=tol)
    got_u = float(wasserstein_1d(u, v, p=1))
    np.testing.assert_allclose(got_u, stats.wasserstein_distance(u, v), rtol=tol, atol=tol)


@pytest.mark.parametrize("p", [2.0, 1.5, 3.0])
@pytest.mark.parametrize("weighted", ["both", "a_only", "none"])
def test_vs_pot_emd2(x64, p, weighted):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(3)
    n, m = 9, 6
    u, v = rng.normal(size=n), 0.5 * rng.normal(size=m) - 0.2
    a = _weights(rng, n) if weighted in ("both", "a_only") else None
    b = _weights(rng, m) if weighted == "both" else None
    cost = np.abs(u[:, None] - v[None, :]) ** p
    ref = ot.emd2(
        np.full(n, 1 / n) if a is None else a, np.full(m, 1 / m) if b is None else b, cost
    )
    got = float(wasserstein_1d_pp(u, v, a, b, p=p))
    # float64 vs POT's network simplex (an exact LP): the float64 default 1e-10
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(wasserstein_1d(u, v, a, b, p=p)), ref ** (1 / p), rtol=1e-10)


def test_zero_weights_and_duplicates(x64):
    """Zero weights / repeated atoms equal the measure with them removed / merged (LP oracle)."""
    ot = pytest.importorskip("ot")
    u = np.array([0.3, -1.0, 2.0, 0.3, 5.0])
    a = np.array([0.2, 0.3, 0.1, 0.4, 0.0])
    v = np.array([1.0, -0.5, 0.3])
    b = np.array([0.5, 0.25, 0.25])
    ref = ot.emd2(a, b, (u[:, None] - v[None]) ** 2)
    # float64 vs an exact LP: the float64 default 1e-10
    np.testing.assert_allclose(float(wasserstein_1d_pp(u, v, a, b, p=2)), ref, rtol=1e-10)


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
def test_sorted_formula_equal_sizes(dtype, p):
    """Uniform equal sizes: mean |u_(i) - v_(i)|^p of sorted samples (numpy, float64)."""
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=16), rng.normal(size=16) * 2.0
    ref = np.mean(np.abs(np.sort(u) - np.sort(v)) ** p) ** (1 / p)
    got = wasserstein_1d(jnp.asarray(u, dtype), jnp.asarray(v, dtype), p=p)
    assert got.dtype == dtype
    # a mean of 16 terms |d|^p (a few roundings each, pow by exp/log), then a p-th root
    np.testing.assert_allclose(float(got), ref, rtol=rounding_tolerance(dtype, n_ops=16))


def test_float32_accuracy_large_unequal():
    """Batched float32, n + m = 5e4 (static grid and merge paths) vs float64 on the same inputs.

    The float32 result differs from the float64 one by round-off alone: each of the K = n + m
    positive terms ``delta_k |d_k|^2`` carries a few roundings (together ~2 eps32 relative),
    and XLA sums the K terms in an order of its choosing (vector lanes, sequential within a
    lane; it differs between CPUs). A sequential sum of K similar positive terms has, in the
    random-rounding model, a relative standard deviation of ``eps sqrt(K) / 6`` (roundings
    ``u S_i delta_i`` with ``u = eps / 2`` and partial sums ``S_i ~ i S / K``); pairwise or
    blocked orders do better. The bound is four standard deviations plus the per-term part,
    1.8e-5 here (measured: 7e-7 on one CPU, 1.03e-6 on another). It catches the merge path's regression of a plain
    float32 cumulative sum of the weights (a drift of ~4e-5); an ``@`` for the final sum (~5e-6
    at this size, 1e-3 at n + m = 5e5) is within round-off here.
    """
    rng = np.random.default_rng(5)
    n, m = 30_000, 20_000
    u32 = jnp.asarray(rng.normal(size=(2, n)), jnp.float32)
    v32 = jnp.asarray(rng.normal(size=(2, m)) * 1.3 + 0.2, jnp.float32)
    b32 = jnp.full(m, 1 / m, jnp.float32)
    got_grid = wpp_batched(u32, v32, None, None, 2.0)
    got_merge = wpp_batched(u32, v32, None, b32, 2.0)
    with jax.enable_x64(True):
        u64, v64 = jnp.asarray(u32, jnp.float64), jnp.asarray(v32, jnp.float64)
        ref_grid = np.asarray(wpp_batched(u64, v64, None, None, 2.0))
        # the float32 weights 1/m are a (slightly) different measure: use them in the reference
        ref_merge = np.asarray(wpp_batched(u64, v64, None, jnp.asarray(b32, jnp.float64), 2.0))
    sigma = rounding_tolerance(np.float32, n_ops=n + m, safety=1 / 6)  # sequential-sum std
    rtol = 4 * sigma + 2 * EPS32
    np.testing.assert_allclose(np.asarray(got_grid), ref_grid, rtol=rtol)
    np.testing.assert_allclose(np.asarray(got_merge), ref_merge, rtol=rtol)


def test_float32_gradients_match_float64():
    """The float32 merge path (compensated cumulative sums) has the float64 gradients."""
    rng = np.random.default_rng(6)
    u, v = rng.normal(size=7), rng.normal(size=5)
    wa, wb = rng.random(7) + 0.5, rng.random(5) + 0.5

    def f(u, v, wa, wb):
        return wasserstein_1d_pp(u, v, wa / jnp.sum(wa), wb / jnp.sum(wb), p=1.5)

    g32 = jax.grad(f, argnums=(0, 1, 2, 3))(*(jnp.asarray(t, jnp.float32) for t in (u, v, wa, wb)))
    with jax.enable_x64(True):
        g64 = jax.grad(f, argnums=(0, 1, 2, 3))(*(jnp.asarray(t) for t in (u, v, wa, wb)))
        for a32, a64 in zip(g32, g64):
            assert a32.dtype == jnp.float32
            # entries are sums over <= n + m = 12 intervals of differences of O(max |g|)
            # terms: round-off relative to the largest entry
            atol = rounding_tolerance(jnp.float32, n_ops=12) * float(np.max(np.abs(a64)))
            np.testing.assert_allclose(np.asarray(a32), np.asarray(a64), rtol=0, atol=atol)


def test_uniform_grid_equals_explicit_weights(x64):
    """The static merged grid (uniform, n != m) equals the traced-merge path with 1/n weights."""
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=6), rng.normal(size=4)
    fast = wasserstein_1d_pp(u, v, p=1.5)
    slow = wasserstein_1d_pp(u, v, np.full(6, 1 / 6), np.full(4, 1 / 4), p=1.5)
    # float64, the same 10 terms with weights from integers or from cumulative sums
    np.testing.assert_allclose(
        float(fast), float(slow), rtol=rounding_tolerance(np.float64, n_ops=10)
    )


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
def test_check_grads_generic(x64, p):
    rng = np.random.default_rng(2)
    u, v = jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=4) + 0.1)
    wa, wb = jnp.asarray(rng.random(5) + 0.5), jnp.asarray(rng.random(4) + 0.5)

    @jax.jit
    def f(u, v, wa, wb):
        return wasserstein_1d(u, v, wa / jnp.sum(wa), wb / jnp.sum(wb), p=p)

    # float64 central differences (step 1e-4): truncation ~1e-8, round-off ~1e-12
    check_grads(f, (u, v, wa, wb), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
    g = jax.jit(lambda u, v: wasserstein_1d(u, v, p=p))
    check_grads(g, (u, v), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
def test_finite_gradients_at_ties(x64, p):
    u = jnp.array([0.0, 1.0, 1.0, 2.0])
    v = jnp.array([1.0, 0.0, 2.0, 1.0])  # same measure: W = 0, all atoms tied
    f = jax.jit(lambda u, v: wasserstein_1d(u, v, p=p))
    check_grads_finite(f, (u, v), order=2, hessian="hvp")
    w = jnp.full(4, 0.25)
    g = jax.jit(lambda u, v, a: wasserstein_1d(u, v, a / jnp.sum(a), w, p=p))
    check_grads_finite(g, (u, v, w), order=1)
    # partial ties between the clouds (W > 0), uniform unequal sizes (static grid)
    v2 = jnp.array([1.0, 1.0, 3.0])
    check_grads_finite(f, (u, v2), order=2, hessian="hvp")


def test_jit_vmap_traced_weights(key):
    u = jax.random.normal(key, (3, 5))
    v = jax.random.normal(jax.random.key(1), (3, 4))
    a = jax.nn.softmax(jax.random.normal(jax.random.key(2), (3, 5)))
    batched = jax.jit(jax.vmap(lambda u, v, a: wasserstein_1d(u, v, a, p=2)))(u, v, a)
    loop = jnp.stack([wasserstein_1d(u[i], v[i], a[i], p=2) for i in range(3)])
    # same float32 algorithm, compiled batched or not: sums of 9 terms in another order
    np.testing.assert_allclose(batched, loop, rtol=rounding_tolerance(jnp.float32, n_ops=9))


def test_validation_errors():
    u, v = jnp.zeros(3), jnp.ones(2)
    with pytest.raises(ValueError, match="`u`"):
        wasserstein_1d(jnp.zeros((3, 1)), v)
    with pytest.raises(ValueError, match="`p`"):
        wasserstein_1d(u, v, p=0.5)
    with pytest.raises(TypeError, match="`p`"):
        wasserstein_1d(u, v, p="2")
    with pytest.raises(ValueError, match="`u_weights`"):
        wasserstein_1d(u, v, jnp.ones(2) / 2)
    with pytest.raises(ValueError, match="`v_weights`.*non-negative"):
        wasserstein_1d(u, v, None, jnp.array([1.5, -0.5]))
    with pytest.raises(ValueError, match="`v_weights`.*sum to one"):
        wasserstein_1d(u, v, None, jnp.array([0.5, 0.6]))
    with pytest.raises(TypeError, match="`u`"):
        wasserstein_1d(jnp.arange(3), v)


def test_check_measures_errors():
    x, y = jnp.zeros((3, 2)), jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="same dimension"):
        check_measures("f", x, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="`x`"):
        check_measures("f", jnp.zeros(3), y)
    with pytest.raises(ValueError, match="`b`.*shape"):
        check_measures("f", x, y, None, jnp.ones(3) / 3)
    with pytest.raises(ValueError, match="`a`.*sum to one"):
        check_measures("f", x, y, jnp.ones(3))
    # traced weights are not value-checked
    out = jax.jit(lambda a: check_measures("f", x, y, a)[2])(jnp.ones(3))
    np.testing.assert_allclose(out, 1.0)
    _, _, a, b = check_measures("f", x, y)
    np.testing.assert_allclose(a, 1 / 3, rtol=EPS32)  # 1/3 rounded to float32 once
    np.testing.assert_allclose(b, 1 / 4, rtol=0)  # exact
