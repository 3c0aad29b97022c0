"""NNX Deep Sets modules: same numbers as the functional core, batching, masks, training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from geomjax.equivariant._deep_sets import deep_sets, deep_sets_layer
from geomjax.nn._deep_sets import DeepSets, DeepSetsLayer
from geomjax.testing import assert_allclose_dtype, rounding_tolerance
from geomjax.testing._equivariance import assert_equivariant


def _raw(module):
    return jax.tree.map(
        lambda v: v[...], module.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
    )


@pytest.mark.parametrize("pool", ["mean", "sum", "max"])
def test_layer_matches_core_and_batches(pool):
    layer = DeepSetsLayer(3, 5, pool=pool, activation=jnp.tanh, rngs=nnx.Rngs(0))
    xs = jax.random.normal(jax.random.key(1), (2, 4, 6, 3))
    masks = jax.random.bernoulli(jax.random.key(2), 0.7, (2, 4, 6))
    out = layer(xs, node_mask=masks)
    assert out.shape == (2, 4, 6, 5)
    params = _raw(layer)
    for a in range(2):
        for b in range(4):
            want = deep_sets_layer(
                params, xs[a, b], pool=pool, node_mask=masks[a, b], activation=jnp.tanh
            )
            assert_allclose_dtype(out[a, b], want)
    assert_allclose_dtype(
        layer(xs[0, 0]), deep_sets_layer(params, xs[0, 0], pool=pool, activation=jnp.tanh)
    )


def test_invariant_model_matches_core_and_is_invariant():
    model = DeepSets(2, (8, 8), (8, 3), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (7, 2))
    mask = jnp.array([True, True, False, True, True, True, False])
    assert_allclose_dtype(model(x, node_mask=mask), deep_sets(_raw(model), x, node_mask=mask))
    err = assert_equivariant(
        lambda x, m: model(x, node_mask=m),
        jax.random.key(2),
        (x, mask),
        in_kinds=("scalar", "node_mask"),
        out_kinds="graph_scalar",
        group="none",
        permute=True,
    )
    assert err <= rounding_tolerance(jnp.float32, n_ops=x.size, cond=16.0)  # the default budget
    assert model(jnp.stack([x, x, x])).shape == (3, 3)


def test_layer_permutation_equivariant_float64():
    with jax.enable_x64(True):
        layer = DeepSetsLayer(3, 4, pool="max", rngs=nnx.Rngs(0), param_dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(1), (6, 3), jnp.float64)
        err = assert_equivariant(
            layer,
            jax.random.key(2),
            (x,),
            in_kinds=("scalar",),
            out_kinds="scalar",
            group="none",
            permute=True,
        )
        assert err <= rounding_tolerance(jnp.float64, n_ops=6)  # a max pool over 6 rows


def test_stack_trains_with_nnx_optimizer():
    """An equivariant stack followed by the invariant model fits a set-sum target."""

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.layer = DeepSetsLayer(1, 16, rngs=rngs)
            self.head = DeepSets(16, (16,), (16, 1), rngs=rngs)

        def __call__(self, x):
            return self.head(self.layer(x))[..., 0]

    net = Net(nnx.Rngs(0))
    opt = nnx.Optimizer(net, optax.adam(1e-2), wrt=nnx.Param)
    x = jax.random.uniform(jax.random.key(1), (32, 5, 1))
    y = jnp.sum(x[..., 0] ** 2, axis=-1)

    @nnx.jit
    def step(net, opt):
        loss, grads = nnx.value_and_grad(lambda n: jnp.mean((n(x) - y) ** 2))(net)
        opt.update(net, grads)
        return loss

    losses = [float(step(net, opt)) for _ in range(150)]
    assert np.isfinite(losses).all() and losses[-1] < 0.1 * losses[0]
