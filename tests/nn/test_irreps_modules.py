"""NNX irreps modules: each equals its core function with the module's parameters, and passes
assert_equivariant in float32 (1e-5 per module, as the core ops) under nnx.jit and vmap; a
gradient step through SteerableMessagePassing runs with nnx.Optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from geomjax.equivariant import (
    IrrepsArray,
    channelwise_tensor_product,
    fully_connected_graph,
    fully_connected_tensor_product,
    gate,
    irreps_linear,
    spherical_harmonics,
    steerable_message_passing,
)
from geomjax.nn import (
    FullyConnectedTensorProduct,
    Gate,
    IrrepsLinear,
    SphericalHarmonicsEmbedding,
    SteerableMessagePassing,
    TensorProduct,
)
from geomjax.testing import assert_equivariant

I1, I2 = "2x0e + 1x1o + 1x2e", "0e + 1o"
RNG = np.random.default_rng(0)
X1 = IrrepsArray(I1, jnp.asarray(RNG.standard_normal((3, 10)), jnp.float32))
X2 = IrrepsArray(I2, jnp.asarray(RNG.standard_normal((3, 4)), jnp.float32))


def _check(f, args, kinds):
    err = assert_equivariant(
        f,
        jax.random.key(0),
        args,
        in_kinds=kinds,
        out_kinds="graph_irreps",
        group="O3",
        rtol=1e-5,
        n_trials=2,
    )
    assert err <= 1e-5


def test_linear_tp_gate_modules_match_core_and_are_equivariant():
    lin = IrrepsLinear(I1, "3x0e + 2x1o", rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(
        np.asarray(lin(X1).array),
        np.asarray(irreps_linear(X1, lin.weights[...], "3x0e + 2x1o").array),
    )
    _check(nnx.jit(lin), (X1,), ("graph_irreps",))

    tp = TensorProduct(I1, I2, filter_ir_out="0e + 1o + 1e", rngs=nnx.Rngs(1))
    core = channelwise_tensor_product(X1, X2, tp.weights[...], filter_ir_out="0e + 1o + 1e")
    np.testing.assert_array_equal(np.asarray(tp(X1, X2).array), np.asarray(core.array))
    _check(nnx.jit(tp), (X1, X2), ("graph_irreps", "graph_irreps"))

    fc = FullyConnectedTensorProduct(I1, I2, "2x0e + 1x1o + 1x1e", rngs=nnx.Rngs(2))
    core = fully_connected_tensor_product(X1, X2, fc.weights[...], "2x0e + 1x1o + 1x1e")
    np.testing.assert_array_equal(np.asarray(fc(X1, X2).array), np.asarray(core.array))
    _check(nnx.jit(fc), (X1, X2), ("graph_irreps", "graph_irreps"))

    g = Gate()
    x = IrrepsArray("3x0e + 1o", jnp.asarray(RNG.standard_normal((3, 6)), jnp.float32))
    np.testing.assert_array_equal(np.asarray(g(x).array), np.asarray(gate(x).array))
    _check(jax.vmap(g), (x,), ("graph_irreps",))


def test_spherical_harmonics_embedding():
    emb = SphericalHarmonicsEmbedding(3)
    v = jnp.asarray(RNG.standard_normal((4, 3)), jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(emb(v).array), np.asarray(spherical_harmonics([0, 1, 2, 3], v, True).array)
    )
    err = assert_equivariant(
        emb,
        jax.random.key(1),
        (v,),
        in_kinds=("vector",),
        out_kinds="irreps",
        group="O3",
        rtol=1e-5,
    )
    assert err <= 1e-5


@pytest.mark.slow  # ~8 s: compiles the layer, its E3 check and an Adam step
def test_steerable_module_core_equivariance_and_training_step():
    layer = SteerableMessagePassing(
        "2x0e", "2x0e + 1x1o", lmax_sh=1, num_basis=4, cutoff=3.0, rngs=nnx.Rngs(0)
    )
    s, r = fully_connected_graph(4)
    x = jnp.asarray(RNG.standard_normal((4, 3)), jnp.float32)
    h = IrrepsArray("2x0e", jnp.asarray(RNG.standard_normal((4, 2)), jnp.float32))
    params = jax.tree.map(
        lambda v: v[...], layer.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
    )
    core = steerable_message_passing(params, h, x, s, r, layer.config)
    np.testing.assert_array_equal(np.asarray(layer(h, x, s, r).array), np.asarray(core.array))
    err = assert_equivariant(
        nnx.jit(layer),
        jax.random.key(2),
        (h, x, s, r),
        in_kinds=("irreps", "position", "index", "index"),
        out_kinds="irreps",
        group="E3",
        permute=True,
        rtol=1e-5,
        n_trials=2,
    )
    assert err <= 1e-5
    opt = nnx.Optimizer(layer, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: jnp.sum(m(h, x, s, r).array ** 2))(model)
        opt.update(model, grads)
        return loss

    l0, l1 = float(step(layer, opt)), float(step(layer, opt))
    assert np.isfinite(l0) and l1 < l0


def test_nnx_grad_jit_and_split_through_every_module():
    """``nnx.grad``, ``nnx.jit`` and ``nnx.split``/``merge`` work on every module (``Irreps``
    attributes are static pytrees; as plain tuple subclasses they made ``nnx.grad`` raise
    IndexError), and the gradient equals ``jax.grad`` of the core function in the weights."""
    rngs = nnx.Rngs(0)
    lin = IrrepsLinear(I1, "3x0e + 2x1o", rngs=rngs)
    fc = FullyConnectedTensorProduct(I1, I2, "2x0e + 1x1o + 1x1e", rngs=rngs)
    tp = TensorProduct(I1, I2, rngs=rngs)
    cases = [
        (lin, lambda m: m(X1), lambda w: irreps_linear(X1, w, "3x0e + 2x1o")),
        (
            fc,
            lambda m: m(X1, X2),
            lambda w: fully_connected_tensor_product(X1, X2, w, "2x0e + 1x1o + 1x1e"),
        ),
        (tp, lambda m: m(X1, X2), lambda w: channelwise_tensor_product(X1, X2, w)),
    ]
    for module, call, core in cases:
        grads = nnx.grad(lambda m, call=call: jnp.sum(call(m).array ** 2))(module)
        want = jax.grad(lambda w, core=core: jnp.sum(core(w).array ** 2))(module.weights[...])
        np.testing.assert_allclose(np.asarray(grads.weights[...]), np.asarray(want), rtol=1e-6)
        graphdef, state = nnx.split(module)
        again = nnx.merge(graphdef, state)
        np.testing.assert_array_equal(np.asarray(call(again).array), np.asarray(call(module).array))
    sh = SphericalHarmonicsEmbedding(2)
    vecs = jnp.asarray(RNG.standard_normal((4, 3)), jnp.float32)
    out = nnx.jit(lambda m, v: m(v).array)(sh, vecs)
    _close_to_rounding(out, sh(vecs).array)
    g = Gate()
    out = nnx.jit(lambda m, x: m(x).array)(g, X1)
    _close_to_rounding(out, gate(X1).array)


def _close_to_rounding(got, want):
    """Compiled against eager float32: the same formulas, fused differently (a few roundings
    of O(1) terms): 16 eps times the scale."""
    want = np.asarray(want)
    atol = 16 * np.finfo(np.float32).eps * np.abs(want).max()
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=atol)
