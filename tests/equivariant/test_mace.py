"""MACE interaction block: against a per-edge / per-node float64 loop built from the public ops
(the edge sum by hand, the contraction node by node), E(3) x permutation equivariance of the
features with an invariant readout and equivariant forces (float32 1e-5 relative: one layer
of float32 products, as the steerable layer's test), finite values and gradients at
coincident nodes, the NNX module equal to the core call, and argument errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import (
    Irreps,
    IrrepsArray,
    MACEConfig,
    bessel_basis,
    channelwise_tensor_product,
    fully_connected_graph,
    init_mace_interaction,
    irreps_linear,
    mace_interaction,
    polynomial_cutoff,
    spherical_harmonics,
    symmetric_contraction,
)
from geomjax.testing import assert_equivariant

CFG = MACEConfig(
    "3x0e + 1x1o",
    3,
    "0e + 1o",
    n_species=2,
    lmax_sh=2,
    correlation=3,
    num_basis=4,
    cutoff=3.0,
    radial_hidden=8,
    avg_num_neighbors=4.0,
)


def _graph(n=5, seed=0):
    s, r = fully_connected_graph(n)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    h = rng.standard_normal((n, CFG.irreps_in.dim))
    species = rng.integers(0, CFG.n_species, n)
    return np.asarray(s), np.asarray(r), x, h, species


def test_block_matches_per_edge_and_per_node_loops_float64():
    s, r, x, h, z = _graph(n=3)
    with jax.enable_x64(True):
        params = jax.tree.map(
            lambda a: a.astype(jnp.float64), init_mace_interaction(jax.random.key(0), CFG)
        )
        hh = IrrepsArray(CFG.irreps_in, h)
        got, energy = jax.jit(lambda p: mace_interaction(p, hh, z, x, s, r, CFG))(params)
        up = irreps_linear(hh, params["up"], CFG.irreps_in)
        irreps_mid, _ = CFG.tp
        keep = [ir for _, ir in CFG.irreps_a]

        @jax.jit  # one edge's message (compiled once, called per edge)
        def message(u, vec, d):
            sh = spherical_harmonics(Irreps.spherical_harmonics(2), vec, True)
            hid = jax.nn.silu(bessel_basis(d, 4, 3.0) @ params["radial_w1"] / 2.0)
            w = hid @ params["radial_w2"] / np.sqrt(8) * polynomial_cutoff(d, 3.0)
            return channelwise_tensor_product(u, sh, w, filter_ir_out=keep).array

        @jax.jit  # one node's contraction, update and readout
        def node(a_i, z_i, h_i):
            b = symmetric_contraction(
                a_i, z_i, params["contraction"], irreps_out="0e + 1o", correlation=3
            )
            out = irreps_linear(b, params["b"], CFG.irreps_out) + irreps_linear(
                h_i, params["self"], CFG.irreps_out
            )
            return out.array, irreps_linear(out, params["readout"], "0e").array[0]

        agg = np.zeros((3, irreps_mid.dim))
        for e in range(len(s)):
            vec = x[s[e]] - x[r[e]]
            agg[r[e]] += np.asarray(message(up[s[e]], vec, np.linalg.norm(vec)))
        a = irreps_linear(IrrepsArray(irreps_mid, agg / 4.0), params["a"], CFG.irreps_a)
        for i in range(3):
            want, e_want = node(a[i], z[i], hh[i])
            np.testing.assert_allclose(got.array[i], want, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(energy[i], e_want, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # ~10 s: two compiled functions, two trials each
def test_block_equivariant_with_invariant_readout_and_equivariant_forces():
    s, r, x, h, z = _graph(seed=2)
    params = init_mace_interaction(jax.random.key(0), CFG)
    species = jnp.asarray(z)

    def f(hh, xx, zz, ss, rr):
        out, e = mace_interaction(params, hh, zz, xx, ss, rr, CFG)
        return out, e

    args = (
        IrrepsArray(CFG.irreps_in, jnp.asarray(h, jnp.float32)),
        jnp.asarray(x, jnp.float32),
        species,
        s,
        r,
    )
    err = assert_equivariant(
        jax.jit(f),
        jax.random.key(1),
        args,
        in_kinds=("irreps", "position", "scalar", "index", "index"),
        out_kinds=("irreps", "scalar"),
        group="E3",
        permute=True,
        rtol=1e-5,
        n_trials=2,
    )
    assert err <= 1e-5
    forces = jax.jit(jax.grad(lambda xx, hh: -jnp.sum(f(hh, xx, species, s, r)[1])))
    err = assert_equivariant(
        forces,
        jax.random.key(2),
        (args[1], args[0]),
        in_kinds=("position", "irreps"),
        out_kinds="vector",
        group="E3",
        rtol=1e-5,
        n_trials=2,
    )
    assert err <= 1e-5


def test_coincident_nodes_finite_value_and_grads():
    s, r, x, h, z = _graph()
    x = x.copy()
    x[1] = x[0]  # zero-length edges 0 -> 1 and 1 -> 0
    params = init_mace_interaction(jax.random.key(0), CFG)

    def loss(p, xx):
        out, e = mace_interaction(
            p, IrrepsArray(CFG.irreps_in, jnp.asarray(h, jnp.float32)), z, xx, s, r, CFG
        )
        return jnp.sum(out.array**2) + jnp.sum(e)

    with jax.debug_nans(True):
        val, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
            params, jnp.asarray(x, jnp.float32)
        )
    assert np.isfinite(float(val))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_nnx_module_equals_core_and_trains():
    from flax import nnx

    from geomjax.nn import MACEInteraction

    s, r, x, h, z = _graph()
    layer = MACEInteraction(
        "3x0e + 1x1o",
        3,
        "0e + 1o",
        n_species=2,
        lmax_sh=2,
        num_basis=4,
        cutoff=3.0,
        radial_hidden=8,
        avg_num_neighbors=4.0,
        rngs=nnx.Rngs(0),
    )
    assert layer.config == CFG
    hh = IrrepsArray(CFG.irreps_in, jnp.asarray(h, jnp.float32))
    out, e = nnx.jit(lambda m: m(hh, z, x, s, r))(layer)
    params = jax.tree.map(
        lambda v: v[...], layer.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
    )
    want, e_want = jax.jit(lambda p: mace_interaction(p, hh, z, x, s, r, CFG))(params)
    np.testing.assert_allclose(out.array, want.array, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(e, e_want, rtol=1e-6, atol=1e-6)
    grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(hh, z, x, s, r)[1] ** 2)))(layer)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_channels": 0}, "n_channels"),
        ({"irreps_hidden": "0e + 0e"}, "irreps_hidden"),
        ({"correlation": 0}, "correlation"),
        ({"cutoff": -1.0}, "cutoff"),
        ({"irreps_in": "1x"}, "irreps_in"),
    ],
)
def test_config_errors_name_the_argument(kwargs, name):
    args = {"irreps_in": "2x0e", "n_channels": 2, "irreps_hidden": "0e", "n_species": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"`{name}`"):
        cfg = MACEConfig(**args)
        init_mace_interaction(jax.random.key(0), cfg)


def test_call_errors_name_the_argument():
    s, r, x, h, z = _graph()
    params = init_mace_interaction(jax.random.key(0), CFG)
    hh = IrrepsArray(CFG.irreps_in, jnp.asarray(h, jnp.float32))
    with pytest.raises(ValueError, match="`species`"):
        mace_interaction(params, hh, z[:3], x, s, r, CFG)
    with pytest.raises(ValueError, match="`h`"):
        mace_interaction(params, IrrepsArray("4x0e", jnp.ones((5, 4))), z, x, s, r, CFG)
    with pytest.raises(TypeError, match="`config`"):
        mace_interaction(params, hh, z, x, s, r, None)
