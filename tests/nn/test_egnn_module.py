"""Tests for the NNX wrappers geomjax.nn.EGNNLayer / EGNN.

The modules hold nnx.Param leaves in the core's pytree layout and make one call into
geomjax.equivariant._egnn: outputs equal the core with the extracted parameters, the module
is E(3)- and permutation-equivariant, and an nnx.Optimizer step lowers a loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from geomjax.equivariant._egnn import egnn, egnn_layer, init_egnn, init_egnn_layer
from geomjax.equivariant._graph import fully_connected_graph
from geomjax.nn._egnn import EGNN, EGNNLayer
from geomjax.testing import rounding_tolerance
from geomjax.testing._equivariance import assert_equivariant


def _pure(module):
    return jax.tree.map(
        lambda v: v[...], module.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
    )


def _data(n=5, seed=0):
    s, r = fully_connected_graph(n)
    k = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k[0], (n, 3))
    v = jax.random.normal(k[1], (n, 3))
    a = jax.random.normal(k[2], (len(s), 2))
    return x, v, s, r, a


def test_layer_params_layout_and_single_core_call():
    layer = EGNNLayer(4, 2, 16, attention=True, velocity=True, normalize=True, rngs=nnx.Rngs(0))
    core = init_egnn_layer(jax.random.key(0), 4, 2, 16, attention=True, velocity=True)
    params = _pure(layer)
    assert jax.tree.structure(params) == jax.tree.structure(core)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(core)))
    assert len(jax.tree.leaves(nnx.state(layer, nnx.Param))) == len(jax.tree.leaves(core))
    x, v, s, r, a = _data()
    h = jnp.ones((5, 4))
    got = nnx.jit(lambda m, *args: m(*args[:4], edge_attr=args[4], v=args[5]))(
        layer, h, x, s, r, a, v
    )
    want = jax.jit(
        lambda p, *args: egnn_layer(p, *args[:4], edge_attr=args[4], v=args[5], normalize=True)
    )(params, h, x, s, r, a, v)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_model_matches_core_and_is_equivariant():
    model = EGNN(1, 16, 2, edge_dim=2, n_layers=4, velocity=True, coord_gain=0.3, rngs=nnx.Rngs(1))
    params = _pure(model)
    assert jax.tree.structure(params) == jax.tree.structure(
        init_egnn(jax.random.key(0), 1, 16, 2, edge_dim=2, n_layers=4, velocity=True)
    )
    x, v, s, r, a = _data(seed=1)

    @nnx.jit
    def f(model, x, v, s, r, a):
        return model(jnp.linalg.norm(v, axis=1, keepdims=True), x, s, r, edge_attr=a, v=v)

    got = f(model, x, v, s, r, a)
    want = jax.jit(egnn)(
        params, jnp.linalg.norm(v, axis=1, keepdims=True), x, s, r, edge_attr=a, v=v
    )
    for g, w in zip(got, want):  # the same float32 layer through the module: 8 eps
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    err = assert_equivariant(
        lambda *args: f(model, *args),
        jax.random.key(2),
        (x, v, s, r, a),
        in_kinds=("position", "vector", "index", "index", "edge"),
        out_kinds=("scalar", "position"),
        group="E3",
        permute=True,
        n_trials=4,
    )
    assert err <= rounding_tolerance(jnp.float32, n_ops=x.size + v.size, cond=16.0)


def test_optimizer_step_reduces_loss():
    model = EGNN(1, 16, 1, edge_dim=2, n_layers=2, velocity=True, coord_gain=0.1, rngs=nnx.Rngs(3))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x, v, s, r, a = _data(seed=3)
    target = x + 0.1 * v

    def loss_fn(model):
        _, x_out = model(jnp.linalg.norm(v, axis=1, keepdims=True), x, s, r, edge_attr=a, v=v)
        return jnp.mean((x_out - target) ** 2)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(5)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_module_option_validation():
    with pytest.raises(ValueError, match="coords_agg"):
        EGNNLayer(4, 0, 8, coords_agg="max", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="coords_agg"):
        EGNN(1, 8, 1, coords_agg="median", rngs=nnx.Rngs(0))
