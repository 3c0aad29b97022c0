"""irreps_linear against a float64 NumPy loop over (input entry, output entry) pairs of equal
irreps, e3nn-jax's Linear (same fan-in normalization) when installed, and equivariance in
float32 (1e-5: a fan-in sum of <= 10 products, ~1e-7, plus Wigner rounding ~1e-6) and float64
(1e-10), under jit, vmap and grad."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import (
    Irreps,
    IrrepsArray,
    init_irreps_linear,
    irreps_linear,
    irreps_linear_num_weights,
)
from geomjax.testing import assert_equivariant

IN, OUT = "3x0e + 2x1o + 1x0e + 1x2e + 1x1o", "2x0e + 3x1o + 1x1e + 2x2e"


def ref_linear(irreps_in, irreps_out, x, w):
    ri, ro = Irreps(irreps_in), Irreps(irreps_out)
    chunks, i = [], 0
    for mul, ir in ri:
        chunks.append(x[..., i : i + mul * ir.dim].reshape(x.shape[:-1] + (mul, ir.dim)))
        i += mul * ir.dim
    outs, k = [], 0
    for mc, irc in ro:
        src = [a for a, (m, ir) in enumerate(ri) if ir == irc]
        fan = sum(ri[a].mul for a in src)
        z = np.zeros(x.shape[:-1] + (mc, irc.dim))
        ws = w[k : k + fan * mc].reshape(fan, mc)
        k += fan * mc
        row = 0
        for a in src:
            m = ri[a].mul
            z += np.einsum("...uk,uw->...wk", chunks[a], ws[row : row + m]) / math.sqrt(fan)
            row += m
        outs.append(z.reshape(x.shape[:-1] + (-1,)))
    return np.concatenate(outs, -1)


def test_matches_numpy_reference_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, Irreps(IN).dim))
    w = rng.standard_normal(irreps_linear_num_weights(IN, OUT))
    with jax.enable_x64(True):
        got = irreps_linear(IrrepsArray(IN, x), w, OUT)
    want = ref_linear(IN, OUT, x, w)
    np.testing.assert_allclose(np.asarray(got.array), want, atol=1e-12 * np.abs(want).max())
    assert np.all(np.asarray(got.array)[:, 2 * 1 + 3 * 3 : 2 + 9 + 3] == 0)  # 1e: no input


def test_per_sample_weights_broadcast():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, Irreps(IN).dim)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, irreps_linear_num_weights(IN, OUT))), jnp.float32)
    batched = irreps_linear(IrrepsArray(IN, x), w, OUT).array
    rows = [irreps_linear(IrrepsArray(IN, x[i]), w[i], OUT).array for i in range(3)]
    np.testing.assert_allclose(np.asarray(batched), np.stack(rows), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "dtype,rtol",
    [(jnp.float32, 1e-5), pytest.param(jnp.float64, 1e-10, marks=pytest.mark.slow)],
)
def test_equivariant_jit_vmap_grad(dtype, rtol):
    with jax.enable_x64(dtype == jnp.float64):
        w = init_irreps_linear(jax.random.key(0), IN, OUT, dtype=dtype)
        x = IrrepsArray(
            IN, jnp.asarray(np.random.default_rng(2).standard_normal((4, Irreps(IN).dim)), dtype)
        )
        f = jax.jit(jax.vmap(lambda v: irreps_linear(v, w, OUT)))
        assert_equivariant(
            f,
            jax.random.key(1),
            (x,),
            in_kinds=("irreps",),
            out_kinds="irreps",
            group="O3",
            rtol=rtol,
        )
        g = jax.jit(jax.grad(lambda v: jnp.sum(irreps_linear(v, w, OUT).array ** 2)))
        assert_equivariant(
            g,
            jax.random.key(2),
            (x,),
            in_kinds=("irreps",),
            out_kinds="irreps",
            group="O3",
            rtol=rtol,
        )


def test_e3nn_jax_linear_agrees():
    """e3nn-jax's Linear regroups its input and keeps one (mul_in, mul_out) matrix per path
    'w[a,c] ...'; on the regrouped input with those matrices as weights the outputs agree."""
    e3nn = pytest.importorskip("e3nn_jax")
    lin = e3nn.flax.Linear(OUT, irreps_in=IN)
    data = jnp.asarray(np.random.default_rng(3).standard_normal((2, Irreps(IN).dim)), jnp.float32)
    params = lin.init(jax.random.key(0), e3nn.IrrepsArray(IN, data))
    ref = lin.apply(params, e3nn.IrrepsArray(IN, data))
    x = IrrepsArray(IN, data).regroup()
    mats = {k.split(" ")[1]: np.asarray(v) for k, v in params["params"].items()}
    w = []
    for out_entry in Irreps(OUT):
        for in_entry in x.irreps:
            if in_entry.ir == out_entry.ir:
                w.append(mats[f"{in_entry},{out_entry}"].reshape(-1))
    got = irreps_linear(x, np.concatenate(w), OUT).filter(drop="1e")  # e3nn-jax drops it
    assert str(got.irreps) == str(ref.irreps)
    scale = float(np.abs(np.asarray(ref.array)).max())
    np.testing.assert_allclose(np.asarray(got.array), np.asarray(ref.array), atol=1e-6 * scale)
