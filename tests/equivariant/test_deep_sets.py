"""Deep Sets layer and invariant model: numpy loop references, permutation symmetry, masks, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant._deep_sets import (
    deep_sets,
    deep_sets_layer,
    init_deep_sets,
    init_deep_sets_layer,
    set_pool,
)
from geomjax.testing import (
    assert_allclose_dtype,
    check_grads_finite,
    matmul_eps,
    rounding_tolerance,
)
from geomjax.testing._equivariance import assert_equivariant

POOLS = ("mean", "sum", "max")


def _set(key, n, f, dtype):
    return jax.random.normal(key, (n, f), dtype)


def _np_pool(x, mask, pool):
    """Loop reference: pool the rows i with mask[i] true (zeros for an empty set)."""
    rows = [x[i] for i in range(x.shape[0]) if mask[i]]
    if not rows:
        return np.zeros(x.shape[1])
    out = rows[0].copy()
    if pool == "max":
        for r in rows[1:]:
            out = np.maximum(out, r)
        return out
    for r in rows[1:]:
        out = out + r
    return out / len(rows) if pool == "mean" else out


def _np_layer(params, x, mask, pool, act):
    gamma, lam, bias = (np.asarray(params[k], np.float64) for k in ("gamma", "lambda", "bias"))
    x = np.asarray(x, np.float64)
    pooled = _np_pool(x, mask, pool)
    out = np.zeros((x.shape[0], gamma.shape[1]))
    for i in range(x.shape[0]):
        if not mask[i]:
            continue
        for j in range(gamma.shape[1]):
            s = bias[j]
            for k in range(x.shape[1]):
                s += x[i, k] * gamma[k, j] - pooled[k] * lam[k, j]
            out[i, j] = act(s)
    return out


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("masked", [False, True])
def test_layer_matches_numpy_loop(pool, masked, dtype, key):
    k1, k2 = jax.random.split(key)
    params = init_deep_sets_layer(k1, 3, 4, dtype)
    params["bias"] = jnp.linspace(-0.5, 0.5, 4, dtype=dtype)
    x = _set(k2, 6, 3, dtype)
    mask = np.array([True, False, True, True, False, True]) if masked else np.ones(6, bool)
    y = deep_sets_layer(
        params, x, pool=pool, node_mask=jnp.asarray(mask) if masked else None, activation=jnp.tanh
    )
    assert y.dtype == dtype
    assert_allclose_dtype(y, _np_layer(params, x, mask, pool, np.tanh))


def test_layer_default_relu_and_identity(key):
    params = init_deep_sets_layer(key, 2, 3)
    x = _set(jax.random.key(3), 5, 2, jnp.float32)
    mask = np.ones(5, bool)
    assert_allclose_dtype(
        deep_sets_layer(params, x),
        _np_layer(params, x, mask, "mean", lambda s: max(s, 0.0)),
        atol=1e-6,
    )
    assert_allclose_dtype(
        deep_sets_layer(params, x, activation=None), _np_layer(params, x, mask, "mean", lambda s: s)
    )


@pytest.mark.parametrize("pool", POOLS)
def test_set_pool_matches_loop(pool, key):
    x = _set(key, 7, 3, jnp.float32)
    mask = np.array([1, 0, 1, 1, 0, 0, 1], bool)
    assert_allclose_dtype(
        set_pool(x, pool, jnp.asarray(mask)), _np_pool(np.asarray(x, np.float64), mask, pool)
    )
    assert_allclose_dtype(
        set_pool(x, pool), _np_pool(np.asarray(x, np.float64), np.ones(7, bool), pool)
    )


@pytest.mark.parametrize("pool", POOLS)
def test_layer_permutation_equivariant(pool, dtype, key):
    params = init_deep_sets_layer(key, 3, 5, dtype)
    x = _set(jax.random.key(1), 7, 3, dtype)
    mask = jnp.array([True, True, False, True, True, False, True])
    err = assert_equivariant(
        lambda x, m: deep_sets_layer(params, x, pool=pool, node_mask=m, activation=jnp.tanh),
        jax.random.key(2),
        (x, mask),
        in_kinds=("scalar", "node_mask"),
        out_kinds="scalar",
        group="none",
        permute=True,
    )
    assert err <= rounding_tolerance(dtype, n_ops=7)  # the pool sums 7 rows in another order


def test_layer_not_equivariant_without_pool_symmetry(key):
    """Sanity of the check: a layer that mixes rows by position is caught."""
    params = init_deep_sets_layer(key, 3, 3)
    x = _set(jax.random.key(1), 5, 3, jnp.float32)

    def bad(x):
        return deep_sets_layer(params, x) + jnp.arange(5.0)[:, None]

    with pytest.raises(AssertionError):
        assert_equivariant(
            bad,
            jax.random.key(2),
            (x,),
            in_kinds=("scalar",),
            out_kinds="scalar",
            group="none",
            permute=True,
        )


@pytest.mark.parametrize("pool", POOLS)
def test_padding_rows_are_ignored_and_zeroed(pool, key):
    params = init_deep_sets_layer(key, 3, 4)
    x = _set(jax.random.key(1), 6, 3, jnp.float32)
    mask = jnp.array([True, True, True, True, False, False])
    garbage = x.at[4:].set(1e3)
    y1 = deep_sets_layer(params, x, pool=pool, node_mask=mask)
    y2 = deep_sets_layer(params, garbage, pool=pool, node_mask=mask)
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    np.testing.assert_array_equal(np.asarray(y1[4:]), 0.0)
    assert_allclose_dtype(y1[:4], deep_sets_layer(params, x[:4], pool=pool))


@pytest.mark.parametrize("pool", POOLS)
def test_empty_set_is_finite(pool, key):
    params = init_deep_sets_layer(key, 2, 3)
    x = _set(jax.random.key(1), 4, 2, jnp.float32)
    mask = jnp.zeros(4, bool)
    y = deep_sets_layer(params, x, pool=pool, node_mask=mask)
    np.testing.assert_array_equal(np.asarray(y), 0.0)
    np.testing.assert_array_equal(np.asarray(set_pool(x, pool, mask)), 0.0)
    model = init_deep_sets(key, 2, (4,), (4, 2))
    assert np.all(np.isfinite(np.asarray(deep_sets(model, x, pool=pool, node_mask=mask))))


def _np_mlp(layers, z, act, final):
    z = np.asarray(z, np.float64)
    for i, layer in enumerate(layers):
        z = z @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64)
        if final or i < len(layers) - 1:
            z = act(z)
    return z


@pytest.mark.parametrize("pool", POOLS)
def test_invariant_model_matches_numpy(pool, dtype, key):
    params = init_deep_sets(key, 3, (8, 6), (5, 2), dtype)
    params = jax.tree.map(lambda a: a + 0.05, params)  # non-zero biases
    x = _set(jax.random.key(1), 5, 3, dtype)
    mask = np.array([True, True, False, True, True])
    got = deep_sets(params, x, pool=pool, node_mask=jnp.asarray(mask), activation=jnp.tanh)
    h = _np_mlp(params["phi"], x, np.tanh, True)
    want = _np_mlp(params["rho"], _np_pool(h, mask, pool), np.tanh, False)
    assert got.shape == (2,)
    # two small tanh MLPs around a pool of 5 rows: the network budget of assert_equivariant
    tol = rounding_tolerance(dtype, n_ops=x.size, cond=16.0, eps=matmul_eps(dtype))
    assert_allclose_dtype(got, want, rtol=tol)


@pytest.mark.parametrize("pool", POOLS)
def test_invariant_model_permutation_invariant(pool, dtype, key):
    params = init_deep_sets(key, 3, (8,), (8, 2), dtype)
    x = _set(jax.random.key(1), 6, 3, dtype)
    mask = jnp.array([True, False, True, True, True, False])
    err = assert_equivariant(
        lambda x, m: deep_sets(params, x, pool=pool, node_mask=m),
        jax.random.key(2),
        (x, mask),
        in_kinds=("scalar", "node_mask"),
        out_kinds="graph_scalar",
        group="none",
        permute=True,
    )
    assert err <= rounding_tolerance(dtype, n_ops=6, cond=16.0)  # assert_equivariant's budget


def test_vmap_matches_loop(key):
    params = init_deep_sets_layer(key, 3, 4)
    xs = jax.random.normal(jax.random.key(1), (4, 5, 3))
    masks = jax.random.bernoulli(jax.random.key(2), 0.7, (4, 5))
    batched = jax.jit(jax.vmap(lambda x, m: deep_sets_layer(params, x, pool="max", node_mask=m)))(
        xs, masks
    )
    for b in range(4):
        assert_allclose_dtype(
            batched[b], deep_sets_layer(params, xs[b], pool="max", node_mask=masks[b])
        )


@pytest.mark.parametrize("pool", POOLS)
def test_gradients_finite_at_coincident_points(pool, x64, key):
    """All rows equal: max pooling has ties everywhere; mean of a zero-variance set."""
    layer = init_deep_sets_layer(key, 3, 2, jnp.float64)
    model = init_deep_sets(key, 3, (4,), (4, 1), jnp.float64)
    x = jnp.ones((4, 3), jnp.float64)
    mask = jnp.array([True, True, True, False])

    def loss(x, layer, model):
        y = deep_sets_layer(layer, x, pool=pool, node_mask=mask, activation=jnp.tanh)
        return jnp.sum(y**2) + jnp.sum(
            deep_sets(model, x, pool=pool, node_mask=mask, activation=jnp.tanh)
        )

    loss = jax.jit(loss)
    check_grads_finite(loss, (x, layer, model), order=1)
    loss_x = jax.jit(lambda x: loss(x, layer, model))
    check_grads_finite(loss_x, (x,), order=2, hessian="hvp")
    check_grads_finite(loss_x, (jnp.zeros((4, 3)),), order=2, hessian="hvp")


def test_gradients_match_finite_differences(x64, key):
    from jax.test_util import check_grads

    params = init_deep_sets_layer(key, 3, 2, jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    for pool in POOLS:
        check_grads(
            lambda x, p: deep_sets_layer(p, x, pool=pool, activation=jnp.tanh),
            (x, params),
            order=2,
            modes=("rev",),
        )


def test_validation_errors(key):
    params = init_deep_sets_layer(key, 3, 4)
    x = jnp.ones((5, 3))
    with pytest.raises(ValueError, match="pool"):
        deep_sets_layer(params, x, pool="median")
    with pytest.raises(ValueError, match="`x`"):
        deep_sets_layer(params, jnp.ones((2, 5, 3)))
    with pytest.raises(TypeError, match="`x`"):
        deep_sets_layer(params, jnp.ones((5, 3), jnp.int32))
    with pytest.raises(TypeError, match="node_mask"):
        deep_sets_layer(params, x, node_mask=jnp.ones(5))
    with pytest.raises(ValueError, match="node_mask"):
        deep_sets_layer(params, x, node_mask=jnp.ones(4, bool))
    with pytest.raises(ValueError, match="gamma"):
        deep_sets_layer(params, jnp.ones((5, 2)))
    with pytest.raises(TypeError, match="params"):
        deep_sets_layer({"w": 1}, x)
    with pytest.raises(ValueError, match="in_features"):
        init_deep_sets_layer(key, 0, 4)
    with pytest.raises(ValueError, match="phi_features"):
        init_deep_sets(key, 3, (), (4,))
    with pytest.raises(ValueError, match="phi"):
        deep_sets(init_deep_sets(key, 2, (4,), (1,)), x)
