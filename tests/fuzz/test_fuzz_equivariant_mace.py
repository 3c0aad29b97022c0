"""Fuzz suite for MACE's symmetric contraction and interaction block (geomjax.equivariant),
under the contract of ``_fuzz.py``: structural bad input raises naming the argument; a NaN/inf
entry in one node's features poisons that node's output only (channels never mix across nodes);
zero features and coincident nodes are finite, gradients included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _fuzz import POISONS, expect_named_error, leaves_finite, poison
from hypothesis import given
from hypothesis import strategies as st

import geomjax.equivariant as E

COVERED = {
    "geomjax.equivariant": {
        "MACEConfig",
        "init_mace_interaction",
        "init_symmetric_contraction",
        "mace_interaction",
        "symmetric_contraction",
        "symmetric_contraction_num_weights",
    }
}

_IRREPS = "2x0e + 2x1o"
_X = E.IrrepsArray(_IRREPS, np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(3, 8))
_S = np.array([0, 1, 0])
_W = np.asarray(
    E.init_symmetric_contraction(
        jax.random.key(0), "0e + 1o", "0e + 1o", 3, n_species=2, n_channels=2
    )
)


def _sc(x, s=_S, w=_W, **kw):
    kw.setdefault("irreps_out", "0e + 1o")
    kw.setdefault("correlation", 3)
    return E.symmetric_contraction(x, s, w, **kw)


@pytest.mark.parametrize(
    "name,value",
    [("x", np.ones((3, 8), np.float32)), ("x", E.IrrepsArray("2x0e + 3x1o", np.ones((3, 11))))]
    + [("species", v) for v in (np.zeros(2, int), np.zeros(3, np.float32))]
    + [("weights", v) for v in (np.ones((2, 5, 2), np.float32), np.ones((9, 2), np.float32))],
)
def test_symmetric_contraction_bad_arrays(name, value):
    args = {"x": _X, "species": _S, "weights": _W}
    args[name] = value
    expect_named_error(
        E.symmetric_contraction,
        args["x"],
        args["species"],
        args["weights"],
        name=name,
        jit=False,
        irreps_out="0e + 1o",
        correlation=3,
    )


@pytest.mark.parametrize(
    "option,value",
    [("irreps_out", v) for v in ("0e + 0e", "nonsense", "")]
    + [("correlation", v) for v in (0, 5, 1.5, True, "3")],
)
def test_symmetric_contraction_bad_options(option, value):
    kw = {"irreps_out": "0e + 1o", "correlation": 3, option: value}
    expect_named_error(E.symmetric_contraction, _X, _S, _W, name=option, jit=False, **kw)


def test_helpers_bad_arguments():
    expect_named_error(
        E.symmetric_contraction_num_weights, "0e + 0e", "0e", 2, name="irreps_in", jit=False
    )
    expect_named_error(
        E.symmetric_contraction_num_weights, "0e", "0e", 0, name="correlation", jit=False
    )
    for bad_key in (0, "key", np.zeros(3)):
        expect_named_error(
            E.init_symmetric_contraction,
            bad_key,
            "0e",
            "0e",
            1,
            name="key",
            jit=False,
            n_species=1,
            n_channels=1,
        )
    expect_named_error(
        E.init_symmetric_contraction,
        jax.random.key(0),
        "0e",
        "0e",
        1,
        name="n_species",
        jit=False,
        n_species=0,
        n_channels=1,
    )
    for kwargs, name in [
        ({"n_channels": 0}, "n_channels"),
        ({"lmax_sh": -1}, "lmax_sh"),
        ({"avg_num_neighbors": 0.0}, "avg_num_neighbors"),
    ]:
        args = {"irreps_in": "2x0e", "n_channels": 2, "irreps_hidden": "0e", "n_species": 1}
        args.update(kwargs)
        with pytest.raises(ValueError, match=f"`{name}`"):
            E.MACEConfig(**args)


@given(kind=POISONS, node=st.integers(0, 2), index=st.integers(0, 7))
def test_symmetric_contraction_poison_stays_in_its_node(kind, node, index):
    data = np.asarray(_X.array).copy()
    data[node] = poison(data[node], kind, index)
    with jax.debug_nans(False):
        out = np.asarray(jax.jit(lambda a: _sc(E.IrrepsArray(_IRREPS, a)).array)(data))
    others = [i for i in range(3) if i != node]
    assert np.all(np.isfinite(out[others]))
    assert not np.all(np.isfinite(out[node]))


def test_zero_features_and_coincident_nodes_are_finite():
    zero = E.IrrepsArray(_IRREPS, np.zeros((3, 8), np.float32))
    with jax.debug_nans(True):
        g = jax.grad(lambda a, w: jnp.sum(_sc(a, w=w).array ** 2), argnums=(0, 1))(zero, _W)
    assert leaves_finite(g)
    cfg = E.MACEConfig("2x0e", 2, "0e + 1o", 2, lmax_sh=1, cutoff=2.0)
    params = E.init_mace_interaction(jax.random.key(1), cfg)
    s, r = E.fully_connected_graph(3)
    pos = np.zeros((3, 3), np.float32)  # all nodes coincide
    h = E.IrrepsArray("2x0e", np.ones((3, 2), np.float32))
    with jax.debug_nans(True):
        out, e = E.mace_interaction(params, h, _S, pos, s, r, cfg)
        gp = jax.grad(lambda p: jnp.sum(E.mace_interaction(params, h, _S, p, s, r, cfg)[1]))(pos)
    assert leaves_finite((out.array, e, gp))


def test_mace_interaction_bad_arguments():
    cfg = E.MACEConfig("2x0e", 2, "0e", 2, lmax_sh=1)
    params = E.init_mace_interaction(jax.random.key(1), cfg)
    s, r = E.fully_connected_graph(3)
    h = E.IrrepsArray("2x0e", np.ones((3, 2), np.float32))
    pos = np.zeros((3, 3), np.float32)
    expect_named_error(
        E.mace_interaction, params, h, _S[:2], pos, s, r, cfg, name="species", jit=False
    )
    expect_named_error(
        E.mace_interaction, params, h, _S, pos[:, :2], s, r, cfg, name="positions", jit=False
    )
    expect_named_error(
        E.mace_interaction, params, np.ones((3, 2)), _S, pos, s, r, cfg, name="h", jit=False
    )
    expect_named_error(E.init_mace_interaction, jax.random.key(0), "cfg", name="config", jit=False)
