"""Tests for the amortized v-DSW location model (geomjax.nn.AmortizedVMFProjection and its core
geomjax.ot._amortized.amortized_vmf_location).

Properties: unit-norm output, invariance to permutations of each set, oddness under swapping
the sets, jit, gradients reaching every parameter, and a dense float64 reference forward pass
written independently with numpy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from geomjax.nn._amortized_projection import AmortizedVMFProjection
from geomjax.ot._amortized import amortized_vmf_location, init_amortized_projection
from geomjax.ot._vmf_sliced import vmf_sliced_wasserstein
from geomjax.testing import matmul_eps


@pytest.fixture
def sets():
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (12, 3))
    y = jax.random.normal(ky, (9, 3)) * 0.5 + jnp.array([1.0, -0.5, 0.2])
    return x, y


def _numpy_forward(params, x, y):
    """Dense float64 numpy reference of the documented forward pass."""
    p = jax.tree.map(lambda t: np.asarray(t, np.float64), params)

    def softmax(s):
        s = s - s.max(axis=-1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=-1, keepdims=True)

    def att(a, q_in, kv_in):
        h = q_in.shape[-1]
        s = (q_in @ a["wq"]) @ (kv_in @ a["wk"]).T / np.sqrt(h)
        return softmax(s) @ (kv_in @ a["wv"]) @ a["wo"]

    def pool(z):
        s = (z @ p["pool"]["wk"]) @ p["pool"]["seed"] / np.sqrt(z.shape[-1])
        return softmax(s) @ (z @ p["pool"]["wv"])

    def gelu(t):  # tanh approximation, as jax.nn.gelu's default
        return 0.5 * t * (1 + np.tanh(np.sqrt(2 / np.pi) * (t + 0.044715 * t**3)))

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    z = np.concatenate([x, y]) @ p["embed"]["w"] + p["embed"]["b"]
    m = p["inducing"] + att(p["attn_in"], p["inducing"], z)
    z = z + att(p["attn_out"], z, m)
    z = z + gelu(z @ p["ff"]["w"] + p["ff"]["b"])
    u = (pool(z[: len(x)]) - pool(z[len(x) :])) @ p["out"]["w"]
    return u / np.linalg.norm(u)


def test_core_matches_numpy_reference(x64, sets):
    x, y = (np.asarray(s, np.float64) for s in sets)
    params = init_amortized_projection(jax.random.key(1), 3, 8, n_inducing=4, dtype=jnp.float64)
    out = amortized_vmf_location(params, x, y)
    np.testing.assert_allclose(out, _numpy_forward(params, x, y), rtol=1e-10, atol=1e-12)


def test_unit_norm_and_shape(sets):
    x, y = sets
    model = AmortizedVMFProjection(3, 16, rngs=nnx.Rngs(0))
    loc = model(x, y)
    assert loc.shape == (3,) and loc.dtype == jnp.float32
    np.testing.assert_allclose(jnp.linalg.norm(loc), 1.0, rtol=0, atol=1e-6)
    # identical sets: the pooled difference is zero; still a unit vector, finite gradients
    same = model(x, x)
    np.testing.assert_allclose(jnp.linalg.norm(same), 1.0, rtol=0, atol=1e-6)
    g = nnx.grad(lambda m: jnp.sum(m(x, x) * jnp.array([1.0, 2.0, 3.0])))(model)
    assert all(bool(jnp.all(jnp.isfinite(t))) for t in jax.tree.leaves(g))


def test_permutation_invariance_and_swap(sets):
    x, y = sets
    model = AmortizedVMFProjection(3, 16, rngs=nnx.Rngs(1))
    loc = model(x, y)
    px = jax.random.permutation(jax.random.key(2), x.shape[0])
    py = jax.random.permutation(jax.random.key(3), y.shape[0])
    np.testing.assert_allclose(model(x[px], y), loc, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model(x, y[py]), loc, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model(x[px], y[py]), loc, rtol=0, atol=1e-5)
    # odd under swapping the sets: vMF(-loc) gives the same sliced value
    np.testing.assert_allclose(model(y, x), -loc, rtol=0, atol=1e-5)


def test_jit_and_vmap_over_pairs(sets):
    x, y = sets
    model = AmortizedVMFProjection(3, 8, n_inducing=4, rngs=nnx.Rngs(0))
    # jit and eager evaluate the same network with different fusion: a few roundings of the
    # matrix products per layer, at the backend's float32 product precision (TF32 on GPUs)
    tol = 16 * matmul_eps(jnp.float32)
    eager = model(x, y)
    jitted = nnx.jit(lambda m, a, b: m(a, b))(model, x, y)
    np.testing.assert_allclose(jitted, eager, rtol=tol, atol=tol)
    xs = jnp.stack([x, x + 1.0])
    ys = jnp.stack([y[:9], y[:9] * 2.0])
    batched = jax.vmap(lambda a, b: model(a, b))(xs, ys)
    np.testing.assert_allclose(batched[0], model(x, y[:9]), rtol=tol, atol=tol)
    assert batched.shape == (2, 3)


def test_gradient_flows_to_every_parameter(sets):
    x, y = sets
    model = AmortizedVMFProjection(3, 8, n_inducing=4, rngs=nnx.Rngs(0))

    def loss(m):
        loc = m(x, y)
        key = jax.random.key(5)
        return -vmf_sliced_wasserstein(key, x, y, location=loc, kappa=10.0, n_projections=16)

    grads = nnx.grad(loss)(model)
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    for g in leaves:
        assert bool(jnp.all(jnp.isfinite(g)))
        assert float(jnp.max(jnp.abs(g))) > 0


@pytest.mark.slow
def test_training_aligns_with_translation():
    """A few Adam steps maximizing v-SW on translated pairs turn the predicted location toward
    the translation (the maximizer of the objective)."""
    v = jnp.array([0.0, 0.0, 2.0])
    x = jax.random.normal(jax.random.key(0), (16, 3))
    model = AmortizedVMFProjection(3, 8, n_inducing=4, rngs=nnx.Rngs(3))
    opt = nnx.Optimizer(model, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, k):
        def loss(m):
            loc = m(x, x + v)
            return -vmf_sliced_wasserstein(k, x, x + v, location=loc, kappa=20.0, n_projections=16)

        val, g = nnx.value_and_grad(loss)(model)
        opt.update(model, g)
        return val

    before = abs(float(model(x, x + v)[2]))
    for i in range(40):
        step(model, opt, jax.random.key(i))
    after = abs(float(model(x, x + v)[2]))
    assert after > max(before, 0.95)


def test_dimension_mismatch():
    params = init_amortized_projection(jax.random.key(0), 3, 4)
    with pytest.raises(ValueError, match="dimension"):
        amortized_vmf_location(params, jnp.zeros((4, 2)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="x"):
        amortized_vmf_location(params, jnp.zeros((4, 3)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="hidden"):
        init_amortized_projection(jax.random.key(0), 3, 0)
