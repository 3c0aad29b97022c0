"""Steerable message passing: the radial basis and cutoff against closed forms, the layer
against a per-edge NumPy loop (float64) built from the public ops, E(3) x permutation
equivariance of one layer (float32 1e-5, float64 1e-10) and of a 4-layer model (float32
1e-4: four layers each adding ~1e-6-relative rounding amplified by at most the layer gains),
finite gradients at coincident nodes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import (
    IrrepsArray,
    SteerableMPConfig,
    bessel_basis,
    channelwise_tensor_product,
    fully_connected_graph,
    gate,
    init_steerable_mp,
    irreps_linear,
    polynomial_cutoff,
    spherical_harmonics,
    steerable_message_passing,
)
from geomjax.testing import assert_equivariant

CFG = SteerableMPConfig(
    "2x0e + 1x1o",
    "2x0e + 1x1o",
    lmax_sh=2,
    num_basis=4,
    cutoff=3.0,
    radial_hidden=8,
    avg_num_neighbors=4.0,
)


def test_bessel_and_cutoff_closed_forms():
    r = np.array([1e-3, 0.3, 1.7, 2.9])
    with jax.enable_x64(True):
        b = np.asarray(bessel_basis(jnp.asarray(r), 5, 3.0))
        u = np.asarray(
            polynomial_cutoff(jnp.asarray(np.array([0.0, 1.5, 2.999999, 3.0, 4.0])), 3.0)
        )
        du = jax.grad(lambda t: polynomial_cutoff(t, 3.0))(jnp.asarray(3.0 - 1e-9))
    n = np.arange(1, 6)
    want = math.sqrt(2 / 3.0) * np.sin(n * np.pi * r[:, None] / 3.0) / r[:, None]
    np.testing.assert_allclose(b, want, rtol=1e-12)
    d = 0.5
    assert u[0] == 1.0 and abs(u[1] - (1 - 28 * d**6 + 48 * d**7 - 21 * d**8)) < 1e-14
    assert abs(u[2]) < 1e-12 and u[3] == 0.0 and u[4] == 0.0 and abs(float(du)) < 1e-12


def _graph(n=5, seed=0):
    s, r = fully_connected_graph(n)
    x = np.random.default_rng(seed).standard_normal((n, 3))
    h = np.random.default_rng(seed + 1).standard_normal((n, CFG.irreps_in.dim))
    return np.asarray(s), np.asarray(r), x, h


def test_layer_matches_per_edge_loop_float64():
    s, r, x, h = _graph(n=3)
    with jax.enable_x64(True):
        params = jax.tree.map(
            lambda a: a.astype(jnp.float64), init_steerable_mp(jax.random.key(0), CFG)
        )
        got = steerable_message_passing(params, IrrepsArray(CFG.irreps_in, h), x, s, r, CFG)
        hh = IrrepsArray(CFG.irreps_in, h)
        up = irreps_linear(hh, params["up"], CFG.irreps_in)
        irreps_mid, _ = CFG.tp
        agg = np.zeros((3, irreps_mid.dim))
        for e in range(len(s)):
            vec = x[s[e]] - x[r[e]]
            d = float(np.linalg.norm(vec))
            sh = spherical_harmonics(CFG.irreps_sh, jnp.asarray(vec), normalize=True)
            basis = bessel_basis(jnp.asarray(d), CFG.num_basis, CFG.cutoff)
            hid = jax.nn.silu(basis @ params["radial_w1"] / 2.0)
            w = hid @ params["radial_w2"] / math.sqrt(8) * polynomial_cutoff(jnp.asarray(d), 3.0)
            msg = channelwise_tensor_product(
                up[s[e]], sh, w, filter_ir_out=[ir for _, ir in CFG.irreps_gate_in]
            )
            agg[r[e]] += np.asarray(msg.array)
        agg = IrrepsArray(irreps_mid, agg / 2.0)
        pre = irreps_linear(agg, params["down"], CFG.irreps_gate_in) + irreps_linear(
            hh, params["self"], CFG.irreps_gate_in
        )
        want = gate(pre) + hh
    np.testing.assert_allclose(
        np.asarray(got.array), np.asarray(want.array), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "dtype,rtol",
    [(jnp.float32, 1e-5), pytest.param(jnp.float64, 1e-10, marks=pytest.mark.slow)],
)
def test_layer_equivariant_e3_permutations(dtype, rtol):
    s, r, x, h = _graph(seed=2)
    with jax.enable_x64(dtype == jnp.float64):
        params = jax.tree.map(lambda a: a.astype(dtype), init_steerable_mp(jax.random.key(0), CFG))
        f = jax.jit(lambda hh, xx, ss, rr: steerable_message_passing(params, hh, xx, ss, rr, CFG))
        args = (IrrepsArray(CFG.irreps_in, jnp.asarray(h, dtype)), jnp.asarray(x, dtype), s, r)
        err = assert_equivariant(
            f,
            jax.random.key(1),
            args,
            in_kinds=("irreps", "position", "index", "index"),
            out_kinds="irreps",
            group="E3",
            permute=True,
            rtol=rtol,
            n_trials=2,
        )
        assert err <= rtol
        # gradient with respect to positions is a vector field (transforms as positions do)
        g = jax.jit(jax.grad(lambda xx, hh: jnp.sum(f(hh, xx, s, r).array ** 2)))
        assert_equivariant(
            g,
            jax.random.key(2),
            (args[1], args[0]),
            in_kinds=("position", "irreps"),
            out_kinds="vector",
            group="E3",
            rtol=rtol,
            n_trials=2,
        )


@pytest.mark.slow
def test_four_layer_model_equivariant_float32():
    hidden = "4x0e + 2x0o + 2x1o + 2x1e + 1x2e"
    cfgs = [
        SteerableMPConfig(
            "2x0e + 1x1o", hidden, lmax_sh=2, num_basis=4, cutoff=3.0, avg_num_neighbors=4.0
        )
    ]
    cfgs += [
        SteerableMPConfig(hidden, hidden, lmax_sh=2, num_basis=4, cutoff=3.0, avg_num_neighbors=4.0)
    ] * 3
    keys = jax.random.split(jax.random.key(3), 4)
    params = [init_steerable_mp(k, c) for k, c in zip(keys, cfgs)]

    @jax.jit
    def model(hh, xx):
        for p, c in zip(params, cfgs):
            hh = steerable_message_passing(p, hh, xx, s, r, c)
        return hh

    s, r, x, h = _graph(seed=4)
    args = (IrrepsArray(CFG.irreps_in, jnp.asarray(h, jnp.float32)), jnp.asarray(x, jnp.float32))
    err = assert_equivariant(
        model,
        jax.random.key(5),
        args,
        in_kinds=("graph_irreps", "position"),
        out_kinds="graph_irreps",
        group="E3",
        rtol=1e-4,
        n_trials=2,
    )
    assert err <= 1e-4


def test_coincident_nodes_finite_value_and_grads():
    s, r, x, h = _graph()
    x = x.copy()
    x[1] = x[0]  # zero-length edges 0 -> 1 and 1 -> 0
    params = init_steerable_mp(jax.random.key(0), CFG)

    def loss(p, xx):
        return jnp.sum(
            steerable_message_passing(
                p, IrrepsArray(CFG.irreps_in, jnp.asarray(h, jnp.float32)), xx, s, r, CFG
            ).array
            ** 2
        )

    val, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
        params, jnp.asarray(x, jnp.float32)
    )
    assert np.isfinite(float(val))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
