"""Gate and norm activations against direct NumPy formulas, e3nn-jax's gate
(normalize_act=False) when installed, and equivariance (odd gates flip parity) in float32
(1e-5: elementwise ops add one rounding to the Wigner rounding ~1e-6) and float64 (1e-10)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import Irreps, IrrepsArray, gate, gate_irreps_in, norm_activation
from geomjax.testing import assert_equivariant

IRREPS = "3x0e + 1x0o + 2x0e + 1x0o + 2x1o + 1x2e"  # extra 0e,0e,0e,0o ; gates 0e,0e,0o


def _x(dtype=np.float32, lead=(4,)):
    return np.random.default_rng(0).standard_normal(lead + (Irreps(IRREPS).dim,)).astype(dtype)


def test_gate_formula_and_parities():
    x = _x(np.float64)
    with jax.enable_x64(True):
        y = gate(IrrepsArray(IRREPS, x))
    # odd gate (last gate 0o) on the 2e copy flips it to 2o
    assert y.irreps == Irreps("3x0e + 1x0o + 2x1o + 1x2o")
    gelu = lambda t: 0.5 * t * (1 + np.tanh(np.sqrt(2 / np.pi) * (t + 0.044715 * t**3)))  # noqa: E731
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    soft_odd = lambda t: (1 - np.exp(-(t**2))) * t  # noqa: E731
    want = np.concatenate(
        [
            gelu(x[:, :3]),
            soft_odd(x[:, 3:4]),
            sig(x[:, 4:5]) * x[:, 7:10],
            sig(x[:, 5:6]) * x[:, 10:13],
            np.tanh(x[:, 6:7]) * x[:, 13:18],
        ],
        -1,
    )
    np.testing.assert_allclose(np.asarray(y.array), want, rtol=1e-12, atol=1e-12)


def test_gate_matches_e3nn_jax():
    e3nn = pytest.importorskip("e3nn_jax")
    x = _x()
    ref = e3nn.gate(e3nn.IrrepsArray(IRREPS, x), normalize_act=False)
    got = gate(IrrepsArray(IRREPS, x))
    assert str(got.irreps.simplify()) == str(ref.irreps.simplify())
    np.testing.assert_allclose(np.asarray(got.array), np.asarray(ref.array), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "dtype,rtol",
    [(jnp.float32, 1e-5), pytest.param(jnp.float64, 1e-10, marks=pytest.mark.slow)],
)
def test_equivariant_jit_vmap_grad(dtype, rtol):
    with jax.enable_x64(dtype == jnp.float64):
        x = IrrepsArray(IRREPS, jnp.asarray(_x(np.float64), dtype))
        acts = [None, jnp.tanh, None, jax.nn.sigmoid, jax.nn.softplus, lambda n: 1 / (1 + n)]
        for f in (
            jax.jit(jax.vmap(gate)),
            jax.jit(jax.grad(lambda v: jnp.sum(gate(v).array ** 2))),
            jax.jit(lambda v: norm_activation(v, acts)),
        ):
            assert_equivariant(
                f,
                jax.random.key(0),
                (x,),
                in_kinds=("irreps",),
                out_kinds="irreps",
                group="O3",
                rtol=rtol,
            )


def test_norm_activation_formula_and_zero():
    x = np.array([[3.0, 0.0, 4.0, 0.0, 0.0, 0.0]])
    with jax.enable_x64(True):
        y = norm_activation(IrrepsArray("2x1o", x), [lambda n: n])
        np.testing.assert_allclose(np.asarray(y.array), [[15.0, 0.0, 20.0, 0.0, 0.0, 0.0]])
        g = jax.grad(
            lambda v: jnp.sum(norm_activation(IrrepsArray("2x1o", v), [lambda n: n]).array)
        )(jnp.zeros((1, 6)))
    assert np.all(np.isfinite(np.asarray(g)))


def test_gate_irreps_in_roundtrip():
    out = Irreps("4x0e + 1x0o + 2x1o + 1x2e")
    zin = IrrepsArray(gate_irreps_in(out), jnp.ones(gate_irreps_in(out).dim))
    assert gate(zin).irreps.simplify() == out.simplify()
