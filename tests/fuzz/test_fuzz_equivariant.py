"""Fuzz suite for ``geomjax.equivariant``: every public function under bad and edge input.

The contract is the one of ``_fuzz.py``: structural bad input raises ``ValueError``/``TypeError``
at trace time naming the argument; value-bad input (NaN/inf entries, negative radii, out-of-range
indices, non-orthogonal frames) gives what the docstring says ("NaN in, NaN out", "no edges",
"not checked", a ``FrameInfo.degenerate`` flag); valid edge input (empty graphs and sets, one
node, coincident points, repeated eigenvalues, zero vectors) is finite, gradients included.

Shapes are fixed per function so that the jitted value checks compile once; hypothesis draws the
wrong shapes, dtypes, option strings and poison positions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _fuzz import (
    BAD_DTYPES,
    POISONS,
    STRUCTURAL_ERRORS,
    UNKNOWN_OPTIONS,
    expect_named_error,
    leaves_finite,
    poison,
    wrong_shape,
)
from hypothesis import given
from hypothesis import strategies as st

import geomjax.equivariant as E

COVERED = {
    "geomjax.equivariant": {
        "Irrep",
        "Irreps",
        "IrrepsArray",
        "SteerableMPConfig",
        "batch_graphs",
        "bessel_basis",
        "canonicalize",
        "canonicalized_apply",
        "canonicalizer_frame",
        "canonicalizer_vectors",
        "channelwise_tensor_product",
        "channelwise_tensor_product_irreps",
        "channelwise_to_so2_weights",
        "clebsch_gordan",
        "concatenate",
        "decanonicalize",
        "deep_sets",
        "deep_sets_layer",
        "egnn",
        "egnn_layer",
        "frame_average",
        "from_chunks",
        "full_tensor_product",
        "fully_connected_graph",
        "fully_connected_tensor_product",
        "fully_connected_tensor_product_num_weights",
        "gate",
        "gate_irreps_in",
        "gaunt_coefficients",
        "gaunt_tensor_product",
        "gram_schmidt_frame",
        "init_canonicalizer",
        "init_channelwise_tensor_product",
        "init_deep_sets",
        "init_deep_sets_layer",
        "init_egnn",
        "init_egnn_layer",
        "init_fully_connected_tensor_product",
        "init_irreps_linear",
        "init_so2_convolution",
        "init_steerable_mp",
        "irreps_linear",
        "irreps_linear_num_weights",
        "norm_activation",
        "pca_frames",
        "polynomial_cutoff",
        "radius_graph",
        "segment_max",
        "segment_mean",
        "segment_softmax",
        "segment_sum",
        "set_pool",
        "so2_convolution",
        "so2_convolution_num_weights",
        "so3_generators",
        "soft_odd",
        "spherical_harmonics",
        "steerable_message_passing",
        "su2_generators",
        "wigner_d",
        "wigner_d_from_angles",
        "wigner_d_from_quaternion",
        "zeros",
    }
}
EXEMPT = {
    "geomjax.equivariant": {
        "FrameInfo": "a result type (NamedTuple), no input; pca_frames and frame_average return "
        "it and are fuzzed",
        "GraphBatch": "a result type (NamedTuple), no input; batch_graphs returns it and is fuzzed",
        "MulIrrep": "a (mul, irrep) NamedTuple entry of Irreps, no computation; Irreps parsing "
        "creates and validates it and is fuzzed",
    }
}

KEY = jax.random.key(0)
BAD_KEYS = (0, 1.5, np.zeros(2, np.float32), np.zeros(3, np.uint32), jax.random.split(KEY, 2))
BAD_COUNTS = (0, -2, 2.5, True, "3", None)


def _init(init_fn, *args, **kwargs):
    """Parameters with the structure, shapes and dtypes of ``init_fn(KEY, *args, **kwargs)``
    (traced abstractly: no compilation at import), filled with seeded normal draws * 0.3."""
    rng = np.random.default_rng(11)
    shapes = jax.eval_shape(lambda k: init_fn(k, *args, **kwargs), KEY)
    return jax.tree.map(lambda a: (0.3 * rng.standard_normal(a.shape)).astype(a.dtype), shapes)


def _cast(x, dtype):
    return np.asarray(x).astype(dtype)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _accepts(fn, *args, **kwargs) -> None:
    """A valid call traces (abstractly, no compilation) to floating outputs."""
    out = jax.eval_shape(functools.partial(fn, **kwargs), *args)
    assert jax.tree.leaves(out)


def _value_and_grad(fn, *args):
    """Jitted ``(fn(*args), d sum(fn) / d args[0])``: one compilation for values and gradient."""

    def total(x, *rest):
        out = fn(x, *rest)
        leaves = [jnp.sum(a) for a in jax.tree.leaves(out) if jnp.issubdtype(a.dtype, jnp.inexact)]
        return sum(leaves), out

    (_, out), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(*args)
    return out, grad


def _orthogonality_error(r) -> float:
    r = np.asarray(r, np.float64)
    return float(np.max(np.abs(r.T @ r - np.eye(r.shape[-1]))))


# =============================================================================================
# segment reductions
# =============================================================================================

SEGMENT_FNS = {
    "segment_sum": E.segment_sum,
    "segment_mean": E.segment_mean,
    "segment_max": E.segment_max,
    "segment_softmax": E.segment_softmax,
}
SEG_NAMES = sorted(SEGMENT_FNS)
IDS = np.array([0, 0, 2, 1, 2], np.int32)  # E = 5 rows, N = 3 segments; segment 1 has one row
DATA = (np.arange(10, dtype=np.float32).reshape(5, 2) - 4.0) / 7.0
_SEG_JIT = {k: jax.jit(f, static_argnums=2) for k, f in SEGMENT_FNS.items()}


def _segment_reference(name: str, data: np.ndarray) -> np.ndarray:
    """The reductions in NumPy (float64), row by row; empty segments give 0."""
    data = np.asarray(data, np.float64)
    out = np.zeros((3, *data.shape[1:]))
    for k in range(3):
        rows = data[IDS == k]
        if name == "segment_sum":
            out[k] = rows.sum(axis=0)
        elif name == "segment_mean":
            out[k] = rows.mean(axis=0)
        else:
            out[k] = rows.max(axis=0)
    return out


@given(name=st.sampled_from(SEG_NAMES), shape=wrong_shape((5, 2)))
def test_segment_data_shape(name, shape):
    fn = SEGMENT_FNS[name]
    data = np.ones(shape, np.float32)
    if shape[:1] == (5,):  # trailing axes are free: a valid call
        _accepts(fn, data, IDS, num_segments=3)
        return
    expect_named_error(lambda d: fn(d, IDS, 3), data, name="data")


@given(name=st.sampled_from(SEG_NAMES), dtype=st.sampled_from(BAD_DTYPES))
def test_segment_data_dtype(name, dtype):
    fn = SEGMENT_FNS[name]
    data = _cast(DATA * 7, dtype)
    if name in ("segment_sum", "segment_max") and dtype == jnp.int32:
        # documented: integer data is summed / maximized exactly
        np.testing.assert_array_equal(fn(data, IDS, 3), _segment_reference(name, data))
        return
    expect_named_error(lambda d: fn(d, IDS, 3), data, name="data")


@pytest.mark.parametrize("name", SEG_NAMES)
@pytest.mark.parametrize(
    "ids",
    [IDS.astype(np.float32), IDS.reshape(5, 1), IDS.astype(bool), np.int32(0), IDS[:4]],
    ids=["float", "2d", "bool", "scalar", "short"],
)
def test_segment_ids_structure(name, ids):
    fn = SEGMENT_FNS[name]
    # a short ids vector is reported as a mismatch of `data` against it: both are named
    err = expect_named_error(
        lambda i: fn(DATA, i, 3), ids, name="data" if ids.shape == (4,) else "segment_ids"
    )
    assert "segment_ids" in str(err) or "one row per segment id" in str(err)


@pytest.mark.parametrize("name", SEG_NAMES)
@pytest.mark.parametrize("num_segments", BAD_COUNTS)
def test_segment_num_segments(name, num_segments):
    expect_named_error(SEGMENT_FNS[name], DATA, IDS, num_segments, name="num_segments", jit=False)


@given(name=st.sampled_from(SEG_NAMES), shape=wrong_shape((5,)), as_float=st.booleans())
def test_segment_mask_structure(name, shape, as_float):
    mask = np.ones(shape, np.float32 if as_float else bool)
    fn = SEGMENT_FNS[name]
    expect_named_error(lambda m: fn(DATA, IDS, 3, mask=m), mask, name="mask")
    if shape != (5,):
        return
    expect_named_error(lambda m: fn(DATA, IDS, 3, mask=m), mask.astype(np.float32), name="mask")


@given(
    name=st.sampled_from(["segment_sum", "segment_mean", "segment_max"]),
    kind=POISONS,
    index=st.integers(0, 9),
)
def test_segment_poison_propagates(name, kind, index):
    """Documented: NaN in, NaN out within the poisoned segment; infinities give the IEEE result
    (the maximum may be +-inf); other segments are untouched."""
    data = poison(DATA, kind, index)
    with jax.debug_nans(False):
        out = np.asarray(_SEG_JIT[name](data, IDS, 3))
    np.testing.assert_allclose(out, _segment_reference(name, data), rtol=1e-6, equal_nan=True)


@given(kind=POISONS, index=st.integers(0, 4))
def test_segment_softmax_poison(kind, index):
    """Documented: a NaN logit makes its segment NaN; a +inf logit gets a NaN weight and the
    finite rows of its segment 0; a -inf logit gets weight 0 unless every kept logit of the
    segment is -inf (then the segment is NaN). Other segments stay finite."""
    logits = poison(DATA[:, 0], kind, index)
    with jax.debug_nans(False):
        w = np.asarray(_SEG_JIT["segment_softmax"](logits, IDS, 3))
    seg = IDS[index]
    rows = IDS == seg
    alone = rows.sum() == 1
    if kind == "nan" or (kind == "-inf" and alone):
        assert np.all(np.isnan(w[rows]))
    elif kind == "inf":
        others = rows & (np.arange(5) != index)
        assert np.isnan(w[index]) and np.all(w[others] == 0.0)
    else:
        assert w[index] == 0.0
        assert np.all(np.isfinite(w[rows])) and abs(w[rows].sum() - 1.0) < 4 * 1.2e-7 * rows.sum()
    assert np.all(np.isfinite(w[~rows]))


@pytest.mark.parametrize("name", SEG_NAMES)
def test_segment_valid_edges(name):
    """Empty graphs, all rows masked, empty segments and tied maxima: finite values and
    gradients (jax_debug_nans is on)."""
    fn = SEGMENT_FNS[name]
    empty = fn(np.zeros((0, 2), np.float32), np.zeros((0,), np.int32), 3)
    assert empty.shape == ((0, 2) if name == "segment_softmax" else (3, 2)) and leaves_finite(empty)
    ties = np.ones((5, 2), np.float32)
    some = np.array([True, False, True, False, True])

    def probe(d):  # 4 segments (one always empty); no, all or some rows masked; tied values
        outs = [fn(d, IDS, 4, mask=m) for m in (None, np.zeros(5, bool), some)]
        return [o * jnp.arange(o.size, dtype=o.dtype).reshape(o.shape) for o in outs]

    outs, grad = _value_and_grad(probe, ties)
    assert leaves_finite((outs, grad)) and not np.any(np.asarray(outs[1]))


@pytest.mark.parametrize("n_nodes", BAD_COUNTS)
def test_fully_connected_graph_bad_count(n_nodes):
    expect_named_error(E.fully_connected_graph, n_nodes, name="n_nodes", jit=False)


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("self_loops", [False, True])
def test_fully_connected_graph_edges(n, self_loops):
    s, r = E.fully_connected_graph(n, self_loops)
    assert s.shape == r.shape == (n * n if self_loops else n * (n - 1),)
    pairs = {(int(a), int(b)) for a, b in zip(s, r)}
    assert pairs == {(j, i) for i in range(n) for j in range(n) if self_loops or i != j}


X4 = _rng(1).standard_normal((4, 3)).astype(np.float32)
_RADIUS_JIT = jax.jit(E.radius_graph, static_argnums=2)


@given(shape=wrong_shape((4, 3)))
def test_radius_graph_x_shape(shape):
    x = np.ones(shape, np.float32)
    if len(shape) == 2:  # any (N, d) is valid, N = 0 and d = 0 included
        s, r, m = jax.eval_shape(lambda y: E.radius_graph(y, 1.0, 2), x)
        assert s.shape == r.shape == m.shape == (shape[0] * 2,)
        return
    expect_named_error(lambda y: E.radius_graph(y, 1.0, 2), x, name="x")


@given(dtype=st.sampled_from(BAD_DTYPES))
def test_radius_graph_x_dtype(dtype):
    expect_named_error(lambda y: E.radius_graph(y, 1.0, 2), _cast(X4, dtype), name="x")


@pytest.mark.parametrize(
    "r", [np.ones(2, np.float32), 1.0 + 1.0j, True, np.bool_(True), np.ones((1, 1))]
)
def test_radius_graph_bad_r(r):
    expect_named_error(E.radius_graph, X4, r, 2, name="r", jit=False)


@pytest.mark.parametrize("k", BAD_COUNTS)
def test_radius_graph_bad_max_neighbors(k):
    expect_named_error(E.radius_graph, X4, 1.0, k, name="max_neighbors", jit=False)


@given(shape=wrong_shape((4,)), as_float=st.booleans())
def test_radius_graph_node_mask(shape, as_float):
    mask = np.ones(shape, np.float32 if as_float else bool)
    if shape == (4,) and not as_float:
        return
    expect_named_error(lambda m: E.radius_graph(X4, 1.0, 2, m), mask, name="node_mask")


@given(kind=POISONS, index=st.integers(0, 11))
def test_radius_graph_poisoned_node_has_no_edges(kind, index):
    """Documented: a node with a non-finite coordinate has no edges."""
    x = poison(X4, kind, index)
    with jax.debug_nans(False):
        s, r, m = (np.asarray(a) for a in _RADIUS_JIT(x, 10.0, 3))
    bad = index // 3
    assert not np.any(m & ((s == bad) | (r == bad)))
    # every other pair is within the radius 10 of these unit-scale points: 2 neighbours each
    assert all(m[r == i].sum() == 2 for i in range(4) if i != bad)


@pytest.mark.parametrize("r", [-1.0, float("nan"), -np.inf])
def test_radius_graph_negative_or_nan_radius_has_no_edges(r):
    with jax.debug_nans(False):
        _, _, m = _RADIUS_JIT(X4, r, 3)
    assert not np.any(np.asarray(m))


def test_radius_graph_valid_edges():
    # coincident points: all within r = 0; the cap K applies; one node; no nodes; r = inf
    s, r, m = _RADIUS_JIT(np.zeros((5, 2), np.float32), 0.0, 3)
    assert np.asarray(m).reshape(5, 3).all() and np.all(np.asarray(s) != np.asarray(r))
    _, _, m1 = _RADIUS_JIT(np.zeros((1, 3), np.float32), 1.0, 2)
    assert not np.any(np.asarray(m1))
    s0, _, _ = jax.eval_shape(lambda x: E.radius_graph(x, 1.0, 2), np.zeros((0, 3), np.float32))
    assert s0.shape == (0,)
    _, _, mi = _RADIUS_JIT(X4, np.inf, 3)
    assert np.asarray(mi).all()


S2, R2 = (np.asarray(a) for a in E.fully_connected_graph(2))


@pytest.mark.parametrize("which", ["senders", "receivers"])
@given(dtype=st.sampled_from((np.float32, np.bool_, np.complex64)), stacked=st.booleans())
def test_batch_graphs_index_dtype(which, dtype, stacked):
    good = np.stack([S2, S2]) if stacked else [S2, S2]
    bad = np.stack([S2, S2]).astype(dtype) if stacked else [S2.astype(dtype), S2.astype(dtype)]
    args = {"senders": good, "receivers": good, which: bad}
    expect_named_error(E.batch_graphs, args["senders"], args["receivers"], 2, name=which, jit=False)


@given(shape=wrong_shape((2, 2)))
def test_batch_graphs_index_shapes(shape):
    """A stacked index array must be 2-D (n_graphs, E) and match the other one."""
    bad = np.zeros(shape, np.int32)
    good = np.stack([S2, S2])
    if len(shape) != 2:
        expect_named_error(E.batch_graphs, bad, good, 2, name="senders", jit=False)
        expect_named_error(E.batch_graphs, good, bad, 2, name="receivers", jit=False)
    elif shape[0] == 0:
        expect_named_error(E.batch_graphs, bad, bad, 2, name="senders", jit=False)
    else:
        expect_named_error(E.batch_graphs, good, bad, 2, name="receivers", jit=False)


@pytest.mark.parametrize("n_nodes", [*BAD_COUNTS, [2], [2, 2, 2], [2, 0]])
def test_batch_graphs_n_nodes(n_nodes):
    expect_named_error(E.batch_graphs, [S2, S2], [R2, R2], n_nodes, name="n_nodes", jit=False)


@pytest.mark.parametrize("which", ["edge_mask", "node_mask"])
@pytest.mark.parametrize(
    "bad", ["float", "short", "one_graph", "scalar"], ids=["float", "short", "count", "scalar"]
)
def test_batch_graphs_masks(which, bad):
    size = 2
    mask = {
        "float": [np.ones(size, np.float32)] * 2,
        "short": [np.ones(size - 1, bool)] * 2,
        "one_graph": [np.ones(size, bool)],
        "scalar": np.array(True),
    }[bad]
    expect_named_error(
        E.batch_graphs, [S2, S2], [R2, R2], 2, name=which, jit=False, **{which: mask}
    )


def test_batch_graphs_valid_and_documented_range():
    g = E.batch_graphs([S2, np.zeros(0, np.int32)], [R2, np.zeros(0, np.int32)], [2, 3])
    assert g.senders.tolist() == [1, 0] and g.node_graph.tolist() == [0, 0, 1, 1, 1]
    assert g.edge_graph.shape == (2,) and g.node_mask.all()
    # Input domain (documented, not checked): an out-of-range index lands in the next block.
    g = E.batch_graphs([np.array([2], np.int32)] * 2, [np.array([0], np.int32)] * 2, 2)
    assert g.senders.tolist() == [2, 4]


# =============================================================================================
# Deep Sets
# =============================================================================================

DS_LAYER = _init(E.init_deep_sets_layer, 3, 4)
DS_MODEL = _init(E.init_deep_sets, 3, (4,), (4, 2))
XS = _rng(2).standard_normal((5, 3)).astype(np.float32)
MASK5 = np.array([True, True, False, True, False])
POOLS = ("mean", "sum", "max")
SET_FNS = {
    "set_pool": lambda x, **kw: E.set_pool(x, **kw),
    "deep_sets_layer": lambda x, **kw: E.deep_sets_layer(DS_LAYER, x, **kw),
    "deep_sets": lambda x, **kw: E.deep_sets(DS_MODEL, x, **kw),
}
SET_NAMES = sorted(SET_FNS)
_SET_JIT = {k: jax.jit(f, static_argnames="pool") for k, f in SET_FNS.items()}


@given(name=st.sampled_from(SET_NAMES), shape=wrong_shape((5, 3)))
def test_sets_x_shape(name, shape):
    fn = SET_FNS[name]
    x = np.ones(shape, np.float32)
    if len(shape) != 2:
        expect_named_error(fn, x, name="x")
    elif shape[1] != 3 and name != "set_pool":
        # the feature axis must match the parameters: reported naming them
        expect_named_error(fn, x, name="params['gamma']" if name == "deep_sets_layer" else "params")
    else:
        for pool in POOLS:
            _accepts(fn, x, pool=pool)


@given(name=st.sampled_from(SET_NAMES), dtype=st.sampled_from(BAD_DTYPES))
def test_sets_x_dtype(name, dtype):
    expect_named_error(SET_FNS[name], _cast(XS, dtype), name="x")


@given(name=st.sampled_from(SET_NAMES), pool=UNKNOWN_OPTIONS)
def test_sets_unknown_pool(name, pool):
    expect_named_error(SET_FNS[name], XS, name="pool", jit=False, pool=pool)


@given(name=st.sampled_from(SET_NAMES), shape=wrong_shape((5,)), as_float=st.booleans())
def test_sets_node_mask(name, shape, as_float):
    if shape == (5,) and not as_float:
        return
    mask = np.ones(shape, np.float32 if as_float else bool)
    expect_named_error(lambda m: SET_FNS[name](XS, node_mask=m), mask, name="node_mask")


_LAYER_CORRUPTIONS = {
    "not a dict": ([DS_LAYER["gamma"]], "params"),
    "missing bias": ({"gamma": DS_LAYER["gamma"], "lambda": DS_LAYER["lambda"]}, "params"),
    "lambda shape": ({**DS_LAYER, "lambda": np.ones((3, 5), np.float32)}, "params['gamma']"),
    "bias shape": ({**DS_LAYER, "bias": np.ones(5, np.float32)}, "params['bias']"),
    "int gamma": ({**DS_LAYER, "gamma": np.ones((3, 4), np.int32)}, "params"),
    "complex lambda": ({**DS_LAYER, "lambda": np.ones((3, 4), np.complex64)}, "params"),
}


@pytest.mark.parametrize("case", sorted(_LAYER_CORRUPTIONS))
def test_deep_sets_layer_bad_params(case):
    params, name = _LAYER_CORRUPTIONS[case]
    expect_named_error(lambda p: E.deep_sets_layer(p, XS), params, name=name, jit=False)


def _corrupt_mlp(params, part, layer, what):
    bad = jax.tree.map(lambda a: a, params)
    entry = dict(bad[part][layer])
    if what == "drop_w":
        del entry["w"]
    elif what == "w_rows":
        entry["w"] = np.ones((entry["w"].shape[0] + 1, entry["w"].shape[1]), np.float32)
    elif what == "b_size":
        entry["b"] = np.ones(entry["b"].shape[0] + 1, np.float32)
    elif what == "complex":
        entry["w"] = np.asarray(entry["w"]).astype(np.complex64)
    bad[part] = list(bad[part])
    bad[part][layer] = entry
    return bad


@given(
    part=st.sampled_from(["phi", "rho"]),
    layer=st.integers(0, 1),
    what=st.sampled_from(["drop_w", "w_rows", "b_size", "complex", "empty"]),
)
def test_deep_sets_bad_params(part, layer, what):
    layer = min(layer, len(DS_MODEL[part]) - 1)
    if what == "empty":
        bad = {**DS_MODEL, part: []}
    else:
        bad = _corrupt_mlp(DS_MODEL, part, layer, what)
    expect_named_error(lambda p: E.deep_sets(p, XS), bad, name="params", jit=False)
    expect_named_error(lambda p: E.deep_sets(p, XS), [DS_MODEL], name="params", jit=False)


@pytest.mark.parametrize("bad_key", BAD_KEYS, ids=lambda k: type(k).__name__)
def test_deep_sets_init_bad_key(bad_key):
    expect_named_error(E.init_deep_sets_layer, bad_key, 3, 4, name="key", jit=False)
    expect_named_error(E.init_deep_sets, bad_key, 3, name="key", jit=False)


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_deep_sets_init_bad_sizes(bad):
    expect_named_error(E.init_deep_sets_layer, KEY, bad, 4, name="in_features", jit=False)
    expect_named_error(E.init_deep_sets_layer, KEY, 3, bad, name="out_features", jit=False)
    expect_named_error(E.init_deep_sets, KEY, bad, name="in_features", jit=False)
    expect_named_error(E.init_deep_sets, KEY, 3, (4, bad), name="phi_features", jit=False)
    expect_named_error(E.init_deep_sets, KEY, 3, (4,), (bad,), name="rho_features", jit=False)


@pytest.mark.parametrize("features", [4, "44", None, ()], ids=str)
def test_deep_sets_init_bad_feature_lists(features):
    expect_named_error(E.init_deep_sets, KEY, 3, features, name="phi_features", jit=False)
    expect_named_error(E.init_deep_sets, KEY, 3, (4,), features, name="rho_features", jit=False)


@pytest.mark.parametrize("dtype", BAD_DTYPES)
def test_deep_sets_init_bad_dtype(dtype):
    expect_named_error(E.init_deep_sets_layer, KEY, 3, 4, name="dtype", jit=False, dtype=dtype)
    expect_named_error(E.init_deep_sets, KEY, 3, name="dtype", jit=False, dtype=dtype)


@given(
    name=st.sampled_from(SET_NAMES),
    pool=st.sampled_from(POOLS),
    kind=POISONS,
    index=st.integers(0, 14),
)
def test_sets_poison(name, pool, kind, index):
    """Documented: non-finite entries of real rows propagate; padding rows never matter."""
    x = poison(XS, kind, index)
    row = index // 3
    fn = _SET_JIT[name]
    with jax.debug_nans(False):
        out = fn(x, pool=pool, node_mask=MASK5)
        clean = fn(XS, pool=pool, node_mask=MASK5)
    if not MASK5[row]:
        np.testing.assert_array_equal(out, clean)  # padding rows do not enter
    elif name != "deep_sets" or pool != "max":
        # the poisoned row reaches the output (ReLU and max can hide -inf, so only NaN/+inf are
        # required to show for the max pool; -inf is legitimately absorbed by the max)
        if not (pool == "max" and kind == "-inf"):
            assert not leaves_finite(out)


@pytest.mark.parametrize(
    "x,mask",
    [
        (np.zeros((0, 3), np.float32), None),
        (np.zeros((0, 3), np.float32), np.zeros(0, bool)),
        (XS, np.zeros(5, bool)),
        (XS[:1], None),
        (np.ones((4, 3), np.float32), None),
    ],
    ids=["empty", "empty_masked", "all_padding", "one", "ties"],
)
def test_sets_valid_edges(x, mask):
    """Empty set, every row padding, one element, tied rows: finite values and gradients, for
    every function and pool (one compilation per case)."""

    def probe(y):
        return {(n, p): SET_FNS[n](y, pool=p, node_mask=mask) for n in SET_NAMES for p in POOLS}

    outs, grad = _value_and_grad(probe, x)
    assert leaves_finite((outs, grad))
    if x.shape[0] == 0 or (mask is not None and not mask.any()):
        for p in POOLS:  # documented: an empty set pools to zeros
            assert not np.any(np.asarray(outs[("set_pool", p)]))


N_E, F_E, A_E, H_E = 4, 3, 2, 8
SE, RE = (np.asarray(a) for a in E.fully_connected_graph(N_E))
N_EDGES = SE.shape[0]
EG_LAYER = _init(E.init_egnn_layer, F_E, A_E, H_E, attention=True)
EG_VEL = _init(E.init_egnn_layer, F_E, 0, H_E, velocity=True)
EG_MODEL = _init(E.init_egnn, F_E, H_E, 2, edge_dim=A_E, n_layers=2)
HE = _rng(3).standard_normal((N_E, F_E)).astype(np.float32)
XE = _rng(4).standard_normal((N_E, 3)).astype(np.float32)
AE = _rng(5).standard_normal((N_EDGES, A_E)).astype(np.float32)
EGNN_FNS = {
    "egnn_layer": lambda h, x, s, r, **kw: E.egnn_layer(EG_LAYER, h, x, s, r, **kw),
    "egnn": lambda h, x, s, r, **kw: E.egnn(EG_MODEL, h, x, s, r, **kw),
}
EGNN_NAMES = sorted(EGNN_FNS)
_EGNN_JIT = {k: jax.jit(f, static_argnames=("normalize",)) for k, f in EGNN_FNS.items()}


def _egnn_call(name, **over):
    args = {"h": HE, "x": XE, "senders": SE, "receivers": RE, "edge_attr": AE, **over}
    return EGNN_FNS[name], args


@given(
    name=st.sampled_from(EGNN_NAMES),
    which=st.sampled_from(["h", "x"]),
    shape=wrong_shape((N_E, 3)),
)
def test_egnn_node_array_shapes(name, which, shape):
    fn, args = _egnn_call(name)
    bad = np.ones(shape, np.float32)
    if which == "x" and len(shape) == 2 and shape[0] == N_E:
        _accepts(fn, args["h"], bad, SE, RE, edge_attr=AE)  # any d is valid
        return
    args[which] = bad
    # an h with the right features but another node count is reported against x (both named)
    name = "x" if which == "h" and len(shape) == 2 and shape[1] == F_E else which
    expect_named_error(lambda a: fn(a["h"], a["x"], SE, RE, edge_attr=AE), args, name=name)


@given(
    name=st.sampled_from(EGNN_NAMES),
    which=st.sampled_from(["h", "x", "edge_attr"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_egnn_float_dtypes(name, which, dtype):
    fn, args = _egnn_call(name)
    args[which] = _cast(args[which], dtype)
    expect_named_error(
        lambda a: fn(a["h"], a["x"], SE, RE, edge_attr=a["edge_attr"]), args, name=which
    )


@given(
    name=st.sampled_from(EGNN_NAMES),
    which=st.sampled_from(["senders", "receivers"]),
    shape=wrong_shape((N_EDGES,)),
    dtype=st.sampled_from([np.int32, np.float32, np.bool_]),
)
def test_egnn_index_arrays(name, which, shape, dtype):
    fn, args = _egnn_call(name)
    if dtype == np.int32 and shape[:1] == (N_EDGES,) and len(shape) == 1:
        return
    args[which] = np.zeros(shape, dtype)
    if which == "senders" and len(shape) == 1 and dtype == np.int32:
        # senders fixes E: the mismatch shows on the next argument, which is named
        expect_named_error(
            lambda a: fn(
                a["h"],
                a["x"],
                a["senders"],
                a["receivers"],
                edge_attr=np.zeros((shape[0], A_E), np.float32),
            ),
            args,
            name="receivers",
        )
        return
    expect_named_error(
        lambda a: fn(a["h"], a["x"], a["senders"], a["receivers"], edge_attr=AE), args, name=which
    )


@given(name=st.sampled_from(EGNN_NAMES), shape=wrong_shape((N_EDGES, A_E)))
def test_egnn_edge_attr_shape(name, shape):
    fn, _ = _egnn_call(name)
    expect_named_error(
        lambda a: fn(HE, XE, SE, RE, edge_attr=a), np.ones(shape, np.float32), name="edge_attr"
    )


@pytest.mark.parametrize("name", EGNN_NAMES)
def test_egnn_edge_attr_missing_or_unexpected(name):
    fn, _ = _egnn_call(name)
    expect_named_error(fn, HE, XE, SE, RE, name="edge_attr", jit=False)
    expect_named_error(
        lambda a: E.egnn_layer(EG_VEL, HE, XE, SE, RE, v=XE, edge_attr=a), AE, name="edge_attr"
    )


@given(
    name=st.sampled_from(EGNN_NAMES),
    which=st.sampled_from(["edge_mask", "node_mask"]),
    shape=wrong_shape((N_EDGES,)),
    as_float=st.booleans(),
)
def test_egnn_masks(name, which, shape, as_float):
    size = N_EDGES if which == "edge_mask" else N_E
    shape = tuple(size if s == N_EDGES else s for s in shape)
    if shape == (size,) and not as_float:
        return
    fn, _ = _egnn_call(name)
    mask = np.ones(shape, np.float32 if as_float else bool)
    expect_named_error(lambda m: fn(HE, XE, SE, RE, edge_attr=AE, **{which: m}), mask, name=which)


@pytest.mark.parametrize("name", EGNN_NAMES)
def test_egnn_velocity_mismatch(name):
    fn, _ = _egnn_call(name)
    expect_named_error(lambda v: fn(HE, XE, SE, RE, edge_attr=AE, v=v), XE, name="v")
    expect_named_error(lambda v: E.egnn_layer(EG_VEL, HE, XE, SE, RE, v=v), XE[:, :2], name="v")
    expect_named_error(
        lambda v: E.egnn_layer(EG_VEL, HE, XE, SE, RE, v=v), XE.astype(np.int32), name="v"
    )


@given(name=st.sampled_from(EGNN_NAMES), agg=UNKNOWN_OPTIONS)
def test_egnn_unknown_coords_agg(name, agg):
    fn, _ = _egnn_call(name)
    expect_named_error(
        fn, HE, XE, SE, RE, name="coords_agg", jit=False, edge_attr=AE, coords_agg=agg
    )


@pytest.mark.parametrize("name", EGNN_NAMES)
@pytest.mark.parametrize(
    "option,value",
    [
        ("epsilon", 0.0),
        ("epsilon", -1e-8),
        ("epsilon", float("nan")),
        ("epsilon", "1e-8"),
        ("clamp", 0.0),
        ("clamp", -1.0),
        ("clamp", 1j),
        ("coords_range", -1.0),
        ("coords_range", np.ones(2)),
    ],
)
def test_egnn_bad_float_options(name, option, value):
    fn, _ = _egnn_call(name)
    expect_named_error(fn, HE, XE, SE, RE, name=option, jit=False, edge_attr=AE, **{option: value})


_EG_LEAVES = [(part, leaf) for part in sorted(EG_LAYER) for leaf in sorted(EG_LAYER[part])]


@given(
    leaf=st.sampled_from(_EG_LEAVES),
    what=st.sampled_from(["drop", "rows", "cols", "complex", "int"]),
)
def test_egnn_layer_bad_params(leaf, what):
    part, name = leaf
    params = {k: dict(v) for k, v in EG_LAYER.items()}
    arr = np.asarray(params[part][name])
    if what == "drop":
        del params[part][name]
    elif what == "rows":
        params[part][name] = np.ones((arr.shape[0] + 1, *arr.shape[1:]), np.float32)
    elif what == "cols":
        params[part][name] = np.ones((*arr.shape[:-1], arr.shape[-1] + 1), np.float32)
    else:
        params[part][name] = arr.astype(np.complex64 if what == "complex" else np.int32)
    try:
        E.egnn_layer(params, HE, XE, SE, RE, edge_attr=AE)
    except (ValueError, TypeError) as err:
        # a resized shared dimension may show as a mismatch of `h` or `edge_attr` first
        assert any(f"`{n}`" in str(err) for n in ("params", "h", "edge_attr")), str(err)
        return
    raise AssertionError(f"egnn_layer accepted a corrupted params[{part!r}][{name!r}] ({what})")


@pytest.mark.parametrize(
    "params",
    [
        [],
        {"layers": []},
        {**EG_MODEL, "embedding_in": {}},
        {**EG_MODEL, "embedding_in": {"w": np.ones((F_E, H_E), np.complex64), "b": np.ones(H_E)}},
        {**EG_MODEL, "embedding_out": {"w": np.ones((H_E + 1, 2), np.float32), "b": np.ones(2)}},
        {**EG_MODEL, "embedding_out": {"w": np.ones((H_E, 2), np.float32), "b": np.ones(3)}},
        {**EG_MODEL, "layers": {"a": 1}},
    ],
    ids=["list", "no_embedding", "empty_embedding", "complex", "out_rows", "out_bias", "layers"],
)
def test_egnn_bad_model_params(params):
    # jitted: the checks run while tracing, nothing is computed
    expect_named_error(lambda p: E.egnn(p, HE, XE, SE, RE, edge_attr=AE), params, name="params")


@pytest.mark.parametrize("bad_key", BAD_KEYS, ids=lambda k: type(k).__name__)
def test_egnn_init_bad_key(bad_key):
    expect_named_error(E.init_egnn_layer, bad_key, 3, 0, 8, name="key", jit=False)
    expect_named_error(E.init_egnn, bad_key, 3, 8, 2, name="key", jit=False)


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_egnn_init_bad_sizes(bad):
    expect_named_error(E.init_egnn_layer, KEY, bad, 0, 8, name="node_dim", jit=False)
    expect_named_error(E.init_egnn_layer, KEY, 3, 0, bad, name="hidden_dim", jit=False)
    if bad is not None:  # out_dim=None is the default (node_dim)
        expect_named_error(E.init_egnn_layer, KEY, 3, 0, 8, name="out_dim", jit=False, out_dim=bad)
    expect_named_error(E.init_egnn, KEY, bad, 8, 2, name="in_node_dim", jit=False)
    expect_named_error(E.init_egnn, KEY, 3, 8, bad, name="out_node_dim", jit=False)
    expect_named_error(E.init_egnn, KEY, 3, 8, 2, name="n_layers", jit=False, n_layers=bad)
    if bad not in (0,):  # edge_dim = 0 is valid
        expect_named_error(E.init_egnn_layer, KEY, 3, bad, 8, name="edge_dim", jit=False)
        expect_named_error(E.init_egnn, KEY, 3, 8, 2, name="edge_dim", jit=False, edge_dim=bad)


@pytest.mark.parametrize("dtype", BAD_DTYPES)
def test_egnn_init_bad_dtype(dtype):
    expect_named_error(E.init_egnn_layer, KEY, 3, 0, 8, name="dtype", jit=False, dtype=dtype)
    expect_named_error(E.init_egnn, KEY, 3, 8, 2, name="dtype", jit=False, dtype=dtype)


@pytest.mark.parametrize("gain", [-1.0, float("nan"), "0.1", None, 1j])
def test_egnn_init_bad_gain(gain):
    expect_named_error(
        E.init_egnn_layer, KEY, 3, 0, 8, name="coord_gain", jit=False, coord_gain=gain
    )
    expect_named_error(E.init_egnn, KEY, 3, 8, 2, name="coord_gain", jit=False, coord_gain=gain)


@given(
    name=st.sampled_from(EGNN_NAMES),
    which=st.sampled_from(["h", "x"]),
    kind=POISONS,
    index=st.integers(0, 11),
)
def test_egnn_poison(name, which, kind, index):
    """Documented: a non-finite h or x of a real node propagates (NaN in, NaN out); on a padding
    node it reaches no real node."""
    fn = _EGNN_JIT[name]
    node = index // 3
    mask = np.ones(N_E, bool)
    args = {"h": HE, "x": XE}
    args[which] = poison(args[which], kind, index)
    with jax.debug_nans(False):
        out = fn(args["h"], args["x"], SE, RE, edge_attr=AE)
        assert not leaves_finite(out)
        mask[node] = False
        h_out, x_out = fn(args["h"], args["x"], SE, RE, edge_attr=AE, node_mask=mask)
    assert leaves_finite((np.asarray(h_out)[mask], np.asarray(x_out)[mask]))


def test_egnn_valid_edges():
    """Coincident points (normalize on and off, gradients too), no edges, out-of-range edges, one
    node: finite, for the layer and the model (one compilation per graph size)."""
    zeros = np.zeros((N_E, 3), np.float32)
    none = np.zeros(0, np.int32)
    no_attr = np.zeros((0, A_E), np.float32)

    def probe(x):
        out = {}
        for name in EGNN_NAMES:
            fn = EGNN_FNS[name]
            for normalize in (False, True):
                out[name, f"normalize={normalize}"] = fn(
                    HE, x, SE, RE, edge_attr=AE, normalize=normalize
                )
            out[name, "no_edges"] = fn(HE, x, none, none, edge_attr=no_attr)
            out[name, "out_of_range"] = fn(HE, x, SE + N_E, RE - N_E, edge_attr=AE)
        return out

    outs, grad = _value_and_grad(probe, zeros)
    assert leaves_finite((outs, grad))
    for name in EGNN_NAMES:  # documented: an isolated node keeps its position
        np.testing.assert_array_equal(outs[name, "no_edges"][1], zeros)
    s1, r1 = E.fully_connected_graph(1)
    one = {n: EGNN_FNS[n](HE[:1], XE[:1], s1, r1, edge_attr=no_attr) for n in EGNN_NAMES}
    assert leaves_finite(one)


XF = (_rng(6).standard_normal((6, 3)) * np.array([3.0, 2.0, 1.0])).astype(np.float32)
GROUPS = ("O3", "SO3", "E3", "SE3")


def _inv(y):
    return jnp.sum(y[:, 0] ** 3)


def _vec(y, v):
    return y + v


@given(shape=wrong_shape((6, 3)))
def test_frames_x_shape(shape):
    x = np.ones(shape, np.float32)
    if len(shape) == 2 and min(shape) >= 1:
        _accepts(E.pca_frames, x)
        _accepts(functools.partial(E.frame_average, _inv), x)
        return
    expect_named_error(E.pca_frames, x, name="x")
    expect_named_error(lambda y: E.frame_average(_inv, y), x, name="x")


@given(dtype=st.sampled_from(BAD_DTYPES))
def test_frames_x_dtype(dtype):
    x = _cast(XF, dtype)
    expect_named_error(E.pca_frames, x, name="x")
    expect_named_error(lambda y: E.frame_average(_inv, y), x, name="x")


@given(option=UNKNOWN_OPTIONS)
def test_frames_unknown_options(option):
    expect_named_error(E.pca_frames, XF, option, name="group", jit=False)
    expect_named_error(E.frame_average, _inv, XF, name="group", jit=False, group=option)
    expect_named_error(E.frame_average, _inv, XF, name="output", jit=False, output=option)
    expect_named_error(
        E.frame_average, _inv, XF, name="output", jit=False, output=("vector", option)
    )
    expect_named_error(
        E.frame_average, _vec, XF, XF, name="arg_kinds", jit=False, arg_kinds=(option,)
    )


@given(shape=wrong_shape((6,)), as_float=st.booleans())
def test_frames_node_mask(shape, as_float):
    if shape == (6,) and not as_float:
        return
    mask = np.ones(shape, np.float32 if as_float else bool)
    expect_named_error(lambda m: E.pca_frames(XF, node_mask=m), mask, name="node_mask")
    expect_named_error(lambda m: E.frame_average(_inv, XF, node_mask=m), mask, name="node_mask")


@pytest.mark.parametrize("gap_tol", [-1e-3, float("nan"), "0.1", True, 1j])
def test_frames_bad_gap_tol(gap_tol):
    expect_named_error(E.pca_frames, XF, name="gap_tol", jit=False, gap_tol=gap_tol)
    expect_named_error(E.frame_average, _inv, XF, name="gap_tol", jit=False, gap_tol=gap_tol)


@given(
    kind=st.sampled_from(["vector", "position"]),
    shape=wrong_shape((6, 3)),
    dtype=st.sampled_from([np.float32, *BAD_DTYPES]),
)
def test_frame_average_bad_args(kind, shape, dtype):
    arg = np.ones(shape, dtype)
    if dtype == np.float32 and len(shape) >= 1 and shape[-1] == 3:
        return  # any leading shape is fine for a vector / position argument
    expect_named_error(
        lambda a: E.frame_average(_vec, XF, a, arg_kinds=(kind,), output=kind), arg, name="args"
    )
    expect_named_error(
        E.frame_average, _vec, XF, XF, XF, name="arg_kinds", jit=False, arg_kinds=(kind,)
    )


def test_frame_average_bad_callable_and_outputs():
    """Checked while tracing: jitted, nothing is computed."""
    expect_named_error(E.frame_average, "f", XF, name="f", jit=False)
    for f, output in (
        (lambda y: y[:, :2], "vector"),
        (lambda y: jnp.sum(y), "position"),
        (_inv, ("invariant", "vector")),
    ):
        expect_named_error(lambda x, f=f, o=output: E.frame_average(f, x, output=o), XF, name="f")
    expect_named_error(lambda x: E.frame_average(_inv, x, stochastic=True), XF, name="key")
    for bad_key in BAD_KEYS:
        expect_named_error(
            E.frame_average, _inv, XF, name="key", jit=False, stochastic=True, key=bad_key
        )


_PCA_JIT = jax.jit(functools.partial(E.pca_frames, return_info=True), static_argnums=1)
_FA_JIT = jax.jit(
    functools.partial(E.frame_average, return_info=True), static_argnums=0, static_argnames="group"
)


@given(group=st.sampled_from(GROUPS), kind=POISONS, index=st.integers(0, 17))
def test_frames_poison(group, kind, index):
    """Documented: non-finite points give NaN (rotations, averaged output) and
    FrameInfo.degenerate True, not a silently wrong frame."""
    x = poison(XF, kind, index)
    with jax.debug_nans(False):
        rots, t, info = _PCA_JIT(x, group)
        out, info2 = _FA_JIT(_inv, x, group=group)
    assert bool(info.degenerate) and bool(info2.degenerate)
    assert not leaves_finite(rots) and not leaves_finite(out)


@pytest.mark.parametrize(
    "x,mask,degenerate",
    [
        (np.ones((4, 3), np.float32), None, True),
        (XF[:1], None, True),
        (XF[:, :1], None, False),
        (XF, np.zeros(6, bool), True),
        (np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], np.float32), None, True),
    ],
    ids=["coincident", "one_point", "one_dim", "all_padding", "repeated_eigenvalues"],
)
def test_frames_valid_edges(x, mask, degenerate):
    """Coincident points, one point, one dimension, every row padding, repeated eigenvalues:
    finite frames (orthogonal) for every group, the degenerate flag set where the frame is
    ill-defined, and finite gradients through the frame (with and without frame_grad)."""

    def probe(y):
        # the frames of every group (values only), one averaged function differentiated through
        # the eigenvectors (frame_grad) and one through f only
        frames = {
            g: E.pca_frames(jax.lax.stop_gradient(y), g, mask, return_info=True) for g in GROUPS
        }
        avg = {
            (g, fg): E.frame_average(_inv, y, group=g, node_mask=mask, frame_grad=fg)
            for g, fg in (("E3", True), ("SO3", False))
        }
        return frames, avg

    (frames, avg), grad = _value_and_grad(probe, x)
    assert leaves_finite((frames, avg, grad))
    for rots, _, info in frames.values():
        assert bool(info.degenerate) == degenerate
        # float32 eps 1.2e-7, a few rounding steps per entry of R^T R
        assert max(_orthogonality_error(r) for r in np.asarray(rots)) < 8 * 1.2e-7 * x.shape[1]


V1, V2, V3 = (
    np.asarray(v, np.float32) for v in ([1.0, 0.2, 0.0], [0.3, 1.0, 0.1], [0.0, 0.4, 1.0])
)
_GS_JIT = jax.jit(E.gram_schmidt_frame)


@given(which=st.integers(0, 2), shape=wrong_shape((3,)))
def test_gram_schmidt_shapes(which, shape):
    vs = [V1, V2, V3]
    vs[which] = np.ones(shape, np.float32)
    expect_named_error(E.gram_schmidt_frame, *vs, name=f"v{which + 1}")


@given(which=st.integers(0, 2), dtype=st.sampled_from(BAD_DTYPES))
def test_gram_schmidt_dtypes(which, dtype):
    vs = [V1, V2, V3]
    vs[which] = _cast(vs[which], dtype)
    expect_named_error(E.gram_schmidt_frame, *vs, name=f"v{which + 1}")


@given(which=st.integers(0, 2), kind=POISONS, index=st.integers(0, 2), three=st.booleans())
def test_gram_schmidt_poison(which, kind, index, three):
    """Documented: NaN in, NaN out (the whole frame); the fallback is for degenerate finite
    vectors only."""
    vs = [V1, V2, V3] if three or which == 2 else [V1, V2]
    vs[which] = poison(vs[which], kind, index)
    with jax.debug_nans(False):
        r = np.asarray(_GS_JIT(*vs) if len(vs) == 3 else jax.jit(E.gram_schmidt_frame)(*vs))
    assert np.all(np.isnan(r))


_GS_EDGES = {
    2: [(np.zeros(3), np.zeros(3)), (V1, 2 * V1), (1e-30 * V1, 1e-30 * V2), (1e15 * V1, -V2)],
    3: [
        (np.zeros(3), np.zeros(3), np.zeros(3)),
        (V1, 2 * V1, -V1),
        (V1, V2, V1 + V2),
        (1e15 * V1, 1e15 * V2, 1e-15 * V3),
    ],
}


@pytest.mark.parametrize("n_vectors", [2, 3])
def test_gram_schmidt_valid_edges(n_vectors):
    """Zero, parallel, coplanar, tiny and large vectors: the documented fallback gives an
    orthogonal frame with finite derivatives (all cases of a kind in one vmapped compilation)."""
    cases = _GS_EDGES[n_vectors]
    stacked = [np.stack([np.asarray(c[i], np.float32) for c in cases]) for i in range(n_vectors)]
    argnums = tuple(range(n_vectors))

    def frame_and_jacobian(*vs):
        return E.gram_schmidt_frame(*vs), jax.jacfwd(E.gram_schmidt_frame, argnums=argnums)(*vs)

    rs, jac = jax.jit(jax.vmap(frame_and_jacobian))(*stacked)
    assert leaves_finite((rs, jac))
    # float32 eps 1.2e-7; a few rounding steps per entry of R^T R
    assert max(_orthogonality_error(r) for r in np.asarray(rs)) < 16 * 1.2e-7


@pytest.mark.parametrize("scale", [1e20, 1e30, 3e38])
def test_gram_schmidt_overflowing_norm_is_nan(scale):
    """Documented: a norm that overflows float32 gives a NaN frame, not a non-orthogonal one."""
    with jax.debug_nans(False):
        r = np.asarray(_GS_JIT(np.float32(scale) * V1, V2, V3))
    assert np.all(np.isnan(r))


FRAME = np.asarray(_GS_JIT(V1, V2))
PTS = _rng(7).standard_normal((5, 3)).astype(np.float32)
CANON_FNS = {"canonicalize": E.canonicalize, "decanonicalize": E.decanonicalize}


@given(
    name=st.sampled_from(sorted(CANON_FNS)),
    which=st.sampled_from(["frame", "translation"]),
    shape=wrong_shape((3, 3)),
)
def test_canonicalize_shapes(name, which, shape):
    fn = CANON_FNS[name]
    args = {"points": PTS, "frame": FRAME, "translation": np.zeros(3, np.float32)}
    args[which] = np.ones(shape if which == "frame" else shape[1:], np.float32)
    if which == "translation" and args[which].shape == (3,):
        return
    expect_named_error(lambda a: fn(a["points"], a["frame"], a["translation"]), args, name=which)
    # points whose last axis does not match the frame (or a scalar): both are named
    expect_named_error(lambda p: fn(p, FRAME), np.ones((*shape[:-1], 4), np.float32), name="frame")
    expect_named_error(lambda p: fn(p, FRAME), np.float32(1.0), name="points")


@given(
    name=st.sampled_from(sorted(CANON_FNS)),
    which=st.sampled_from(["points", "frame", "translation"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_canonicalize_dtypes(name, which, dtype):
    args = {"points": PTS, "frame": FRAME, "translation": np.zeros(3, np.float32)}
    args[which] = _cast(args[which], dtype)
    fn = CANON_FNS[name]
    expect_named_error(lambda a: fn(a["points"], a["frame"], a["translation"]), args, name=which)


@given(
    name=st.sampled_from(sorted(CANON_FNS)),
    seed=st.integers(0, 2**16),
    kind=POISONS,
    index=st.integers(0, 14),
)
def test_canonicalize_value_domain(name, seed, kind, index):
    """Documented: orthogonality of the frame is not checked (a general matrix gives the finite
    product); non-finite points propagate row-wise."""
    fn = CANON_FNS[name]
    frame = _rng(seed).standard_normal((3, 3)).astype(np.float32)
    t = _rng(seed + 1).standard_normal(3).astype(np.float32)
    out = np.asarray(fn(PTS, frame, t))
    expected = (PTS - t) @ frame if name == "canonicalize" else PTS @ frame.T + t
    scale = np.abs(PTS).max() * np.abs(frame).max() * 3 + np.abs(t).max()
    np.testing.assert_allclose(out, expected, atol=8 * 1.2e-7 * scale)
    with jax.debug_nans(False):
        bad = np.asarray(fn(poison(PTS, kind, index), FRAME, t))
    row = index // 3
    assert not np.all(np.isfinite(bad[row])) and np.all(np.isfinite(np.delete(bad, row, 0)))


CAN_PARAMS = _init(E.init_canonicalizer, hidden=4)
CAN_PARAMS_H = _init(E.init_canonicalizer, in_features=2, hidden=4, num_vectors=3)
CAN_FNS = {
    "canonicalizer_vectors": E.canonicalizer_vectors,
    "canonicalizer_frame": E.canonicalizer_frame,
}
CAN_NAMES = sorted(CAN_FNS)
HC = _rng(8).standard_normal((5, 2)).astype(np.float32)


@given(name=st.sampled_from(CAN_NAMES), shape=wrong_shape((5, 3)))
def test_canonicalizer_x_shape(name, shape):
    fn = CAN_FNS[name]
    x = np.ones(shape, np.float32)
    if shape[-1:] == (3,) and len(shape) == 2 and shape[0] >= 1:
        _accepts(fn, CAN_PARAMS, x)
        return
    expect_named_error(lambda y: fn(CAN_PARAMS, y), x, name="x")


@given(
    name=st.sampled_from(CAN_NAMES),
    shape=wrong_shape((5, 2)),
    dtype=st.sampled_from([np.float32, *BAD_DTYPES]),
)
def test_canonicalizer_h(name, shape, dtype):
    fn = CAN_FNS[name]
    expect_named_error(lambda h: fn(CAN_PARAMS_H, PTS, h), np.ones(shape, dtype), name="h")
    expect_named_error(
        lambda h: fn(CAN_PARAMS_H, PTS, h),
        HC.astype(dtype) if dtype != np.float32 else HC[:, :1],
        name="h",
    )
    expect_named_error(lambda y: fn(CAN_PARAMS_H, y), PTS, name="h")  # h required by the params


@given(name=st.sampled_from(CAN_NAMES), dtype=st.sampled_from(BAD_DTYPES))
def test_canonicalizer_x_dtype(name, dtype):
    expect_named_error(lambda y: CAN_FNS[name](CAN_PARAMS, y), _cast(PTS, dtype), name="x")


def _corrupt_canonicalizer(part, layer, leaf, what):
    params = {k: [dict(d) for d in v] for k, v in CAN_PARAMS.items()}
    entry = params[part][layer]
    leaf = leaf if leaf in entry else sorted(entry)[0]
    arr = np.asarray(entry[leaf])
    if what == "drop":
        del entry[leaf]
    elif what == "grow":
        entry[leaf] = np.ones((arr.shape[0] + 1, *arr.shape[1:]), np.float32)
    elif what == "complex":
        entry[leaf] = arr.astype(np.complex64)
    elif what == "int":
        entry[leaf] = arr.astype(np.int32)
    elif what == "short":
        params[part] = params[part][:1]
    return params


@given(
    name=st.sampled_from(CAN_NAMES),
    part=st.sampled_from(["phi", "psi"]),
    layer=st.integers(0, 1),
    leaf=st.sampled_from(["w", "b", "w_rbf", "w_h"]),
    what=st.sampled_from(["drop", "grow", "complex", "int", "short"]),
)
def test_canonicalizer_bad_params(name, part, layer, leaf, what):
    bad = _corrupt_canonicalizer(part, layer, leaf, what)
    expect_named_error(lambda p: CAN_FNS[name](p, PTS), bad, name="params", jit=False)
    expect_named_error(lambda p: CAN_FNS[name](p, PTS), [CAN_PARAMS], name="params", jit=False)


@pytest.mark.parametrize("bad_key", BAD_KEYS, ids=lambda k: type(k).__name__)
def test_init_canonicalizer_bad_key(bad_key):
    expect_named_error(E.init_canonicalizer, bad_key, name="key", jit=False)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"in_features": -1}, "in_features"),
        ({"in_features": 1.5}, "in_features"),
        ({"hidden": 0}, "hidden"),
        ({"hidden": True}, "hidden"),
        ({"num_vectors": 1}, "num_vectors"),
        ({"num_vectors": 4}, "num_vectors"),
        ({"num_rbf": 1}, "num_rbf"),
        ({"dtype": jnp.int32}, "dtype"),
        ({"dtype": jnp.complex64}, "dtype"),
        ({"dtype": jnp.bool_}, "dtype"),
    ],
)
def test_init_canonicalizer_bad_options(kwargs, name):
    expect_named_error(E.init_canonicalizer, KEY, name=name, jit=False, **kwargs)


_CAN_JIT = {k: jax.jit(f) for k, f in CAN_FNS.items()}


@given(
    name=st.sampled_from(CAN_NAMES), kind=POISONS, index=st.integers(0, 14), padded=st.booleans()
)
def test_canonicalizer_poison(name, kind, index, padded):
    """Documented: a non-finite point of a real row gives NaN; a padding row is ignored."""
    x = poison(PTS, kind, index)
    mask = np.ones(5, bool)
    mask[index // 3] = not padded
    with jax.debug_nans(False):
        out = _CAN_JIT[name](CAN_PARAMS, x, None, mask)
    assert leaves_finite(out) == padded


@pytest.mark.parametrize(
    "x,mask",
    [(np.ones((4, 3), np.float32), None), (PTS[:1], None), (PTS, np.zeros(5, bool))],
    ids=["coincident", "one_point", "all_padding"],
)
def test_canonicalizer_valid_edges(x, mask):
    """Coincident points, one point, every row padding: finite (the fallback frame), orthogonal,
    gradients finite."""

    def probe(y):
        return {n: CAN_FNS[n](CAN_PARAMS, y, None, mask) for n in CAN_NAMES}

    outs, grad = _value_and_grad(probe, x)
    assert leaves_finite((outs, grad))
    # float32 eps 1.2e-7; a few rounding steps per entry of R^T R
    assert _orthogonality_error(outs["canonicalizer_frame"][0]) < 16 * 1.2e-7


CANON = functools.partial(E.canonicalizer_frame, CAN_PARAMS)


def test_canonicalized_apply_structure():
    backbone = lambda y: jnp.sum(y**2)  # noqa: E731
    expect_named_error(E.canonicalized_apply, "f", CANON, PTS, name="backbone", jit=False)
    expect_named_error(E.canonicalized_apply, backbone, None, PTS, name="canonicalizer", jit=False)
    for bad in (
        lambda x: np.eye(3, dtype=np.float32),
        lambda x: (np.eye(2, dtype=np.float32), np.zeros(2, np.float32)),
        lambda x: (np.eye(3, dtype=np.complex64), np.zeros(3, np.float32)),
        lambda x: (np.eye(3, dtype=np.int32), np.zeros(3, np.int32)),
        lambda x: (np.eye(3, dtype=np.float32), np.zeros(4, np.float32)),
    ):
        expect_named_error(
            E.canonicalized_apply, backbone, bad, PTS, name="canonicalizer", jit=False
        )
    cheap = lambda x: (jnp.eye(3, dtype=x.dtype), jnp.mean(x, axis=0))  # noqa: E731
    for output in ("vector", ("vector",), ("invariant", "vector")):
        expect_named_error(
            E.canonicalized_apply, backbone, cheap, PTS, name="backbone", jit=False, output=output
        )


@given(
    option=UNKNOWN_OPTIONS,
    shape=wrong_shape((5, 3)),
    dtype=st.sampled_from([np.float32, *BAD_DTYPES]),
)
def test_canonicalized_apply_options_and_args(option, shape, dtype):
    def backbone(y, a):
        return jnp.sum(y) + jnp.sum(a)

    expect_named_error(
        E.canonicalized_apply, backbone, CANON, PTS, PTS, name="output", jit=False, output=option
    )
    expect_named_error(
        E.canonicalized_apply,
        backbone,
        CANON,
        PTS,
        PTS,
        name="arg_kinds",
        jit=False,
        arg_kinds=(option,),
    )
    arg = np.ones(shape, dtype)
    if dtype == np.float32 and shape[-1:] == (3,):
        return
    expect_named_error(
        E.canonicalized_apply,
        backbone,
        CANON,
        PTS,
        arg,
        name="args",
        jit=False,
        arg_kinds=("vector",),
    )
    x = np.ones(shape, np.float32)
    if len(shape) != 2 or min(shape) < 1:
        expect_named_error(E.canonicalized_apply, backbone, CANON, x, PTS, name="x", jit=False)


_CA_JIT = jax.jit(lambda x: E.canonicalized_apply(lambda y: jnp.sum(jnp.tanh(y)), CANON, x))


@given(kind=POISONS, index=st.integers(0, 14))
def test_canonicalized_apply_poison_and_edges(kind, index):
    """NaN in, NaN out through the canonicalizer; coincident points stay finite."""
    with jax.debug_nans(False):
        out = _CA_JIT(poison(PTS, kind, index))
    assert not leaves_finite(out)
    assert leaves_finite(_CA_JIT(np.ones((5, 3), np.float32)))


# =============================================================================================
# irreps, irreps arrays, spherical harmonics, Clebsch-Gordan, Wigner-D (issue 16)
# =============================================================================================

IRREPS_TEXT = st.text(alphabet="0123456789xeoy+ .-", max_size=12)
BAD_DEGREES = (-1, -7, 1.5, True, "2", None, float("nan"))


@given(text=IRREPS_TEXT)
def test_irreps_strings(text):
    """Any string parses (and round-trips through its repr) or raises ValueError naming
    `irreps`; Irrep strings likewise name `l`."""
    try:
        irreps = E.Irreps(text)
    except STRUCTURAL_ERRORS as err:
        assert isinstance(err, ValueError) and "`irreps`" in str(err), str(err)
    else:
        assert all(mul >= 0 and ir.l >= 0 and ir.p in (1, -1) for mul, ir in irreps)
        assert not irreps or E.Irreps(repr(irreps)) == irreps
    try:
        ir = E.Irrep(text)
    except STRUCTURAL_ERRORS as err:
        assert "`l`" in str(err), str(err)
    else:
        assert ir.l >= 0 and E.Irrep(repr(ir)) == ir


@pytest.mark.parametrize("bad", BAD_DEGREES)
def test_irrep_bad_degree(bad):
    expect_named_error(E.Irrep, bad, 1, name="l", jit=False)
    expect_named_error(lambda lmax: E.Irreps.spherical_harmonics(lmax), bad, name="lmax", jit=False)


IA_IRREPS = "0e + 1o"  # dimension 4


@given(shape=wrong_shape((2, 4)))
def test_irreps_array_shape(shape):
    data = np.ones(shape, np.float32)
    if len(shape) >= 1 and shape[-1] == 4:  # any leading shape is valid
        _accepts(lambda a: E.IrrepsArray(IA_IRREPS, a).array, data)
        return
    expect_named_error(lambda a: E.IrrepsArray(IA_IRREPS, a).array, data, name="array")


@given(dtype=st.sampled_from(BAD_DTYPES), text=IRREPS_TEXT)
def test_irreps_array_dtype_and_irreps(dtype, text):
    expect_named_error(
        lambda a: E.IrrepsArray(IA_IRREPS, a).array, np.ones((2, 4), dtype), name="array"
    )
    try:
        irreps = E.Irreps(text)
    except ValueError:
        expect_named_error(E.IrrepsArray, text, np.ones(4, np.float32), name="irreps", jit=False)
        return
    data = np.ones((2, irreps.dim), np.float32)
    assert E.IrrepsArray(text, data).irreps == irreps


@given(which=st.integers(0, 1), shape=wrong_shape((3, 1, 1)), dtype=st.sampled_from(BAD_DTYPES))
def test_from_chunks_and_zeros(which, shape, dtype):
    good = [np.ones((3, 1, 1), np.float32), np.ones((3, 1, 3), np.float32)]
    bad = list(good)
    bad[which] = np.ones(shape if which == 0 else shape[:-1] + (3,), np.float32)
    if bad[which].shape != good[which].shape:
        expect_named_error(E.from_chunks, IA_IRREPS, bad, (3,), name="chunks", jit=False)
    typed = list(good)
    typed[which] = good[which].astype(dtype)
    expect_named_error(E.from_chunks, IA_IRREPS, typed, (3,), name="chunks", jit=False)
    expect_named_error(E.from_chunks, IA_IRREPS, good[:1], (3,), name="chunks", jit=False)
    expect_named_error(E.zeros, IA_IRREPS, (3,), dtype, name="dtype", jit=False)
    expect_named_error(E.zeros, IA_IRREPS, (-1,), name="leading_shape", jit=False)
    expect_named_error(E.zeros, "1q", (2,), name="irreps", jit=False)


def test_concatenate_structure():
    a = E.IrrepsArray("0e", np.ones((2, 1), np.float32))
    b = E.IrrepsArray("1o", np.ones((3, 3), np.float32))
    expect_named_error(E.concatenate, [], name="arrays", jit=False)
    expect_named_error(E.concatenate, [a, np.ones((2, 1))], name="arrays", jit=False)
    expect_named_error(E.concatenate, [a, b], name="arrays", jit=False)
    a3 = E.IrrepsArray("0e", np.ones((1, 2, 1), np.float32))
    expect_named_error(E.concatenate, [a, a3], name="arrays", jit=False, axis=0)
    for axis in (2, -3, 1.0, True):
        expect_named_error(E.concatenate, [a, a], name="axis", jit=False, axis=axis)


def test_irreps_array_arithmetic_value_domain():
    """NaN in, NaN out for sums and scalings; a zero divisor gives inf/NaN (IEEE), no error."""
    with jax.debug_nans(False):
        x = E.IrrepsArray(IA_IRREPS, poison(np.ones((2, 4), np.float32), "nan", 5))
        y = jax.jit(lambda a: (a + a) * 2.0 / E.IrrepsArray("0e", jnp.zeros((2, 1))))(x)
    assert np.isnan(np.asarray(y.array)[1, 1]) and not np.any(np.isfinite(np.asarray(y.array)))


SH_X = _rng(21).standard_normal((6, 3)).astype(np.float32)
SH_LS = [0, 1, 2, 5]
_SH_JIT = {
    n: jax.jit(lambda x, n=n: E.spherical_harmonics(SH_LS, x, n).array) for n in (True, False)
}


@given(shape=wrong_shape((6, 3)))
def test_sh_x_shape(shape):
    x = np.ones(shape, np.float32)
    if len(shape) >= 1 and shape[-1] == 3:
        _accepts(lambda v: E.spherical_harmonics(SH_LS, v, True).array, x)
        return
    expect_named_error(lambda v: E.spherical_harmonics(SH_LS, v, True).array, x, name="x")


@given(dtype=st.sampled_from(BAD_DTYPES), option=UNKNOWN_OPTIONS)
def test_sh_dtype_and_options(dtype, option):
    expect_named_error(
        lambda v: E.spherical_harmonics(SH_LS, v, True).array, _cast(SH_X, dtype), name="x"
    )
    expect_named_error(
        E.spherical_harmonics,
        SH_LS,
        SH_X,
        True,
        name="normalization",
        jit=False,
        normalization=option,
    )
    for normalize in (1, None, "yes"):
        expect_named_error(
            E.spherical_harmonics, SH_LS, SH_X, normalize, name="normalize", jit=False
        )


@given(text=IRREPS_TEXT)
def test_sh_irreps_out(text):
    """Irreps strings: accepted when they parse with the harmonics' parities (p = (-1)^l for a
    polar vector), else a ValueError naming `irreps_out`."""
    try:
        irreps = E.Irreps(text)
        ok = all(ir.p == (-1) ** ir.l for _, ir in irreps)
    except ValueError:
        ok = False
    if ok:
        out = jax.eval_shape(lambda v: E.spherical_harmonics(text, v, True), SH_X)
        assert out.shape == (6, irreps.dim)
    else:
        expect_named_error(E.spherical_harmonics, text, SH_X, True, name="irreps_out", jit=False)


@given(kind=POISONS, index=st.integers(0, 17), normalize=st.booleans())
def test_sh_poison(kind, index, normalize):
    """Documented: a non-finite entry makes the l >= 1 harmonics of its row non-finite (NaN
    with normalize=True), Y_0 stays 1, other rows are unaffected."""
    x = poison(SH_X, kind, index)
    with jax.debug_nans(False):
        out = np.asarray(_SH_JIT[normalize](x))
        ref = np.asarray(_SH_JIT[normalize](SH_X))
    row = index // 3
    assert np.all(out[row, 0] == 1.0) and not np.all(np.isfinite(out[row, 1:]))
    if normalize:
        assert np.all(np.isnan(out[row, 1:]))
    np.testing.assert_array_equal(np.delete(out, row, 0), np.delete(ref, row, 0))


def test_sh_valid_edges():
    """Zero vector, poles, axes, tiny and huge vectors: finite values and gradients (with and
    without normalization; jax_debug_nans is on)."""
    edges = np.array(
        [[0, 0, 0], [0, 1, 0], [0, -1, 0], [1, 0, 0], [0, 0, -1], [1e-30, 0, 0], [3e38, 1, -3e38]],
        np.float32,
    )
    for normalize in (True, False):
        scale = 1.0 if normalize else 0.0  # huge rows overflow the unnormalized polynomials

        def probe(x, normalize=normalize, scale=scale):
            y = E.spherical_harmonics(SH_LS, x[:-1] if not normalize else x, normalize).array
            return y * jnp.arange(y.shape[-1], dtype=y.dtype) * (scale if normalize else 1.0)

        outs, grad = _value_and_grad(probe, edges)
        assert leaves_finite((outs, grad))


WIGNER_FNS = {
    "wigner_d": lambda deg, r: E.wigner_d(deg, r),
    "D_from_matrix": lambda deg, r: E.Irreps(f"2x{deg}y + 0e").D_from_matrix(r),
}
R0 = np.asarray(
    [[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]], np.float32
)  # a rotation (rows orthonormal, det +1)


@given(name=st.sampled_from(sorted(WIGNER_FNS)), shape=wrong_shape((3, 3)))
def test_wigner_matrix_shape(name, shape):
    expect_named_error(lambda r: WIGNER_FNS[name](2, r), np.ones(shape, np.float32), name="R")


@given(name=st.sampled_from(sorted(WIGNER_FNS)), dtype=st.sampled_from(BAD_DTYPES))
def test_wigner_matrix_dtype(name, dtype):
    expect_named_error(lambda r: WIGNER_FNS[name](2, r), _cast(R0, dtype), name="R")


@pytest.mark.parametrize("bad", [*BAD_DEGREES, "2x", E.Irreps("1o")])
def test_wigner_bad_irrep(bad):
    for fn, args in (
        (E.wigner_d, (R0,)),
        (E.wigner_d_from_angles, (0.1, 0.2, 0.3)),
        (E.wigner_d_from_quaternion, (np.ones(4, np.float32),)),
    ):
        expect_named_error(fn, bad, *args, name="irrep", jit=False)


@given(
    which=st.integers(0, 2), shape=wrong_shape(()), dtype=st.sampled_from((np.bool_, np.complex64))
)
def test_wigner_angles_structure(which, shape, dtype):
    names = ("alpha", "beta", "gamma")
    args = [np.float32(0.1), np.float32(0.2), np.float32(0.3)]
    args[which] = np.ones(shape, np.float32)
    expect_named_error(lambda *a: E.wigner_d_from_angles(2, *a), *args, name=names[which])
    args[which] = np.ones((), dtype)
    expect_named_error(lambda *a: E.wigner_d_from_angles(2, *a), *args, name=names[which])


@given(shape=wrong_shape((4,)), dtype=st.sampled_from(BAD_DTYPES))
def test_wigner_quaternion_structure(shape, dtype):
    q = np.ones(shape, np.float32)
    expect_named_error(lambda v: E.wigner_d_from_quaternion(2, v), q, name="q")
    expect_named_error(lambda v: E.wigner_d_from_quaternion(2, v), np.ones(4, dtype), name="q")


_WD_JIT = {deg: jax.jit(lambda r, deg=deg: E.wigner_d(deg, r)) for deg in (0, 1, 3)}
_WA_JIT = jax.jit(lambda a: E.wigner_d_from_angles(3, a[0], a[1], a[2]))
_WQ_JIT = jax.jit(lambda q: E.wigner_d_from_quaternion(3, q))


@given(kind=POISONS, index=st.integers(0, 8))
def test_wigner_poison(kind, index):
    """Documented: a non-finite entry of R (or an angle, or the quaternion) gives an all-NaN
    matrix for l >= 1; D^0 = [[1]] whatever R; q = 0 is not a rotation (NaN)."""
    with jax.debug_nans(False):
        for deg in (1, 3):
            assert np.all(np.isnan(np.asarray(_WD_JIT[deg](poison(R0, kind, index)))))
        np.testing.assert_array_equal(np.asarray(_WD_JIT[0](poison(R0, kind, index))), [[1.0]])
        angles = poison(np.float32([0.1, -0.2, 0.3]), kind, index)
        assert np.all(np.isnan(np.asarray(_WA_JIT(angles))))
        q = poison(np.float32([0.5, 0.5, -0.5, 0.5]), kind, index)
        assert np.all(np.isnan(np.asarray(_WQ_JIT(q))))
        assert np.all(np.isnan(np.asarray(_WQ_JIT(np.zeros(4, np.float32)))))


def test_wigner_valid_edges():
    """The identity, the inversion, half-turns, reflections and permutations: finite,
    orthogonal matrices with finite derivatives (jax_debug_nans is on)."""
    mats = np.stack(
        [
            np.eye(3),
            -np.eye(3),
            np.diag([-1.0, 1.0, -1.0]),
            np.diag([1.0, 1.0, -1.0]),
            np.eye(3)[[1, 2, 0]],
            np.eye(3)[[1, 0, 2]],
            R0,
        ]
    ).astype(np.float32)

    def probe(r):
        ds = [E.wigner_d(ir, r) for ir in ("0o", "1o", "1e", "4e", "4o")]
        return [d * jnp.arange(d.size, dtype=d.dtype).reshape(d.shape) for d in ds]

    outs, grad = jax.jit(jax.vmap(lambda r: _value_and_grad(probe, r)))(mats)
    assert leaves_finite((outs, grad))
    d4 = np.asarray(jax.jit(jax.vmap(lambda r: E.wigner_d(4, r)))(mats))
    # float32 eps 1.2e-7; after the Newton-Schulz step the round-off of 9-term sums
    assert max(_orthogonality_error(d.T) for d in d4) < 4 * 1.2e-7 * 3


@given(
    args=st.tuples(
        st.one_of(st.integers(-3, 5), st.sampled_from(BAD_DEGREES)),
        st.integers(0, 4),
        st.integers(0, 4),
    )
)
def test_clebsch_gordan_degrees(args):
    """Valid degrees give finite read-only (2l1+1, 2l2+1, 2l3+1) arrays (zero outside the
    triangle); anything else a named error."""
    l1, l2, l3 = args
    if isinstance(l1, int) and not isinstance(l1, bool) and l1 >= 0:
        c = E.clebsch_gordan(l1, l2, l3)
        assert c.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1) and np.all(np.isfinite(c))
        assert not c.flags.writeable
        assert c.any() == (abs(l1 - l2) <= l3 <= l1 + l2)
        return
    expect_named_error(E.clebsch_gordan, l1, l2, l3, name="l1", jit=False)
    expect_named_error(E.clebsch_gordan, l2, l1, l3, name="l2", jit=False)
    expect_named_error(E.clebsch_gordan, l2, l3, l1, name="l3", jit=False)


@given(value=st.one_of(st.integers(-3, 6), st.sampled_from([*BAD_DEGREES, 0.5, 2.5, 0.25, np.inf])))
def test_generators_degrees(value):
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and value >= 0:
        g = E.so3_generators(value)
        assert g.shape == (3, 2 * value + 1, 2 * value + 1) and np.all(np.isfinite(g))
    else:
        expect_named_error(E.so3_generators, value, name="l", jit=False)
    half = isinstance(value, (int, float)) and not isinstance(value, bool)
    if half and np.isfinite(value) and value >= 0 and float(2 * value).is_integer():
        x = E.su2_generators(value)
        assert x.shape == (3, int(2 * value) + 1, int(2 * value) + 1) and np.all(np.isfinite(x))
    else:
        expect_named_error(E.su2_generators, value, name="j", jit=False)


# -- tensor products, linear, gate, steerable message passing ---------------------------------

_X1 = E.IrrepsArray("2x0e + 1o", np.linspace(-1.0, 1.0, 10, dtype=np.float32).reshape(2, 5))
_X2 = E.IrrepsArray("0e + 1o", np.linspace(0.5, -0.5, 8, dtype=np.float32).reshape(2, 4))
_N_UVU = E.channelwise_tensor_product_irreps(_X1.irreps, _X2.irreps)[1]
_IO = "2x0e + 1x1o + 1x1e"
_N_UVW = E.fully_connected_tensor_product_num_weights(_X1.irreps, _X2.irreps, _IO)
_N_LIN = E.irreps_linear_num_weights(_X1.irreps, "3x0e + 2x1o")

_TP_CALLS = {
    "full_tensor_product": lambda x1, x2, **kw: E.full_tensor_product(x1, x2, **kw),
    "channelwise_tensor_product": lambda x1, x2, **kw: E.channelwise_tensor_product(
        x1, x2, np.ones(_N_UVU, np.float32), **kw
    ),
    "fully_connected_tensor_product": lambda x1, x2, **kw: E.fully_connected_tensor_product(
        x1, x2, np.ones(_N_UVW, np.float32), _IO, **kw
    ),
}


@pytest.mark.parametrize("name", sorted(_TP_CALLS))
@pytest.mark.parametrize("which", ["x1", "x2"])
@pytest.mark.parametrize("bad", [np.ones((2, 5), np.float32), "1o", None])
def test_tensor_products_need_irreps_arrays(name, which, bad):
    args = {"x1": _X1, "x2": _X2}
    args[which] = bad
    expect_named_error(_TP_CALLS[name], args["x1"], args["x2"], name=which, jit=False)


@pytest.mark.parametrize("name", sorted(_TP_CALLS))
@pytest.mark.parametrize("option", ["irrep_normalization", "path_normalization"])
@pytest.mark.parametrize("value", ["", "bogus", "Component", None])
def test_tensor_products_unknown_options(name, option, value):
    if name == "full_tensor_product" and option == "path_normalization":
        return  # unweighted: no path normalization
    expect_named_error(_TP_CALLS[name], _X1, _X2, name=option, jit=False, **{option: value})


@pytest.mark.parametrize("bad", ["nonsense", "1x", ["1o", "zz"], 3.5])
def test_tensor_products_bad_filter(bad):
    expect_named_error(
        E.full_tensor_product, _X1, _X2, name="filter_ir_out", jit=False, filter_ir_out=bad
    )
    expect_named_error(
        E.channelwise_tensor_product_irreps,
        "0e",
        "1o",
        name="filter_ir_out",
        jit=False,
        filter_ir_out=bad,
    )


@pytest.mark.parametrize(
    "fn,n_w",
    [
        (lambda w: E.channelwise_tensor_product(_X1, _X2, w), _N_UVU),
        (lambda w: E.fully_connected_tensor_product(_X1, _X2, w, _IO), _N_UVW),
        (lambda w: E.irreps_linear(_X1, w, "3x0e + 2x1o"), _N_LIN),
    ],
)
@pytest.mark.parametrize("kind", ["short", "long", "int", "scalar", "lead"])
def test_weighted_ops_bad_weights(fn, n_w, kind):
    w = {
        "short": np.ones(n_w - 1, np.float32),
        "long": np.ones(n_w + 1, np.float32),
        "int": np.ones(n_w, np.int32),
        "scalar": np.float32(1.0),
        "lead": np.ones((3, n_w), np.float32),
    }[kind]
    expect_named_error(fn, w, name="weights", jit=False)


@pytest.mark.parametrize("bad", ["1x", "2y2", 1.5, {"a": 1}])
def test_irreps_arguments_named(bad):
    expect_named_error(
        E.fully_connected_tensor_product, _X1, _X2, np.ones(3), bad, name="irreps_out", jit=False
    )
    expect_named_error(E.irreps_linear, _X1, np.ones(3), bad, name="irreps_out", jit=False)
    expect_named_error(E.irreps_linear_num_weights, bad, "0e", name="irreps_in", jit=False)
    expect_named_error(
        E.fully_connected_tensor_product_num_weights, "0e", bad, "0e", name="irreps2", jit=False
    )
    expect_named_error(E.channelwise_tensor_product_irreps, bad, "0e", name="irreps1", jit=False)
    expect_named_error(E.gate_irreps_in, bad, name="irreps_out", jit=False)


@pytest.mark.parametrize(
    "init",
    [
        lambda k: E.init_irreps_linear(k, "2x0e", "1x0e"),
        lambda k: E.init_channelwise_tensor_product(k, "2x0e", "1o"),
        lambda k: E.init_fully_connected_tensor_product(k, "2x0e", "1o", "1o"),
        lambda k: E.init_steerable_mp(k, E.SteerableMPConfig("0e", "2x0e + 1o")),
    ],
)
@pytest.mark.parametrize("bad_key", BAD_KEYS)
def test_irreps_inits_need_one_key(init, bad_key):
    expect_named_error(init, bad_key, name="key", jit=False)


@pytest.mark.parametrize("which", ["x1", "x2"])
@pytest.mark.parametrize("bad", [np.ones((2, 5), np.float32), "1o", None])
def test_gaunt_tensor_product_needs_irreps_arrays(which, bad):
    args = {"x1": _X1, "x2": _X2}
    args[which] = bad
    expect_named_error(E.gaunt_tensor_product, args["x1"], args["x2"], name=which, jit=False)


@pytest.mark.parametrize(
    "option,value",
    [(o, v) for o in ("normalization", "method") for v in ("", "bogus", "Component", None)]
    + [("odd_paths", v) for v in ("", "CG", "vector", 1)]
    + [("lmax_out", v) for v in (-1, 1.5, True, "2")]
    + [("resolution", v) for v in ((1, 1), (3,), (0, 9), (3.0, 9), "3x9", (True, 9), 2)]
    + [("filter_ir_out", v) for v in ("nonsense", "1x", ["1o", "zz"], 3.5)],
)
def test_gaunt_tensor_product_bad_options(option, value):
    expect_named_error(E.gaunt_tensor_product, _X1, _X2, name=option, jit=False, **{option: value})


@pytest.mark.parametrize("value", [-1, 1.5, True, None, "2", np.nan])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_gaunt_coefficients_bad_degrees(value, which):
    args = [1, 1, 2]
    args[which] = value
    expect_named_error(E.gaunt_coefficients, *args, name=("l1", "l2", "l3")[which], jit=False)


def test_gaunt_tensor_product_nan_in_nan_out_zero_finite_empty():
    """NaN inputs give NaN outputs; zero inputs finite values and gradients (both variants,
    both methods); inputs with no path give an empty output."""
    with jax.debug_nans(False):
        bad = E.IrrepsArray(_X1.irreps, np.full((2, 5), np.nan, np.float32))
        assert np.isnan(np.asarray(E.gaunt_tensor_product(bad, _X2).array)).all()
    zero = E.IrrepsArray(_X1.irreps, np.zeros((2, 5), np.float32))
    for kw in ({}, {"odd_paths": "cg"}, {"odd_paths": "grid"}, {"method": "dense"}):
        g = jax.grad(lambda a, kw=kw: jnp.sum(E.gaunt_tensor_product(a, _X2, **kw).array ** 2))(
            zero
        )
        assert leaves_finite(g), kw
    out = E.gaunt_tensor_product(_X1, _X2, filter_ir_out="3e")
    assert out.shape == (2, 0)


def test_irreps_ops_nan_in_nan_out_and_zero_inputs_finite():
    """NaN entries propagate to the outputs they feed (no silent fill); zero inputs give finite
    values and gradients through every op, the norm activation at v = 0 included."""
    with jax.debug_nans(False):
        bad = E.IrrepsArray(_X1.irreps, np.full((2, 5), np.nan, np.float32))
        assert np.isnan(np.asarray(E.full_tensor_product(bad, _X2).array)).all()
        assert np.isnan(float(E.soft_odd(jnp.nan)))
    zero = E.IrrepsArray(_X1.irreps, np.zeros((2, 5), np.float32))
    for name, call in _TP_CALLS.items():
        g = jax.grad(lambda a, call=call: jnp.sum(call(a, _X2).array ** 2))(zero)
        assert leaves_finite(g), name
    g = jax.grad(lambda a: jnp.sum(E.norm_activation(a, [None, jnp.tanh]).array))(zero)
    assert leaves_finite(g)
    g = jax.grad(lambda a: jnp.sum(E.gate(E.IrrepsArray("2x0e + 1o", a)).array))(jnp.zeros(5))
    assert leaves_finite(g)
    assert np.isnan(float(E.soft_odd(jnp.nan))) and float(E.soft_odd(-1.0)) == -float(
        E.soft_odd(1.0)
    )


def test_gate_and_norm_activation_errors():
    expect_named_error(E.gate, np.ones(5, np.float32), name="x", jit=False)
    expect_named_error(
        E.gate, E.IrrepsArray("0e + 2x1o", np.ones(7, np.float32)), name="x", jit=False
    )
    expect_named_error(E.norm_activation, _X1, [None], name="acts", jit=False)
    expect_named_error(E.norm_activation, _X1.array, [None, None], name="x", jit=False)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: E.bessel_basis(np.ones(3, np.float32), 0, 1.0), "num_basis"),
        (lambda: E.bessel_basis(np.ones(3, np.float32), 2.5, 1.0), "num_basis"),
        (lambda: E.bessel_basis(np.ones(3, np.float32), 4, -1.0), "cutoff"),
        (lambda: E.bessel_basis(np.ones(3, np.int32), 4, 1.0), "r"),
        (lambda: E.polynomial_cutoff(np.ones(3, np.float32), 0.0), "cutoff"),
        (lambda: E.polynomial_cutoff(np.ones(3, np.float32), 1.0, p=0), "p"),
        (lambda: E.polynomial_cutoff(np.ones(3, np.int32), 1.0), "r"),
        (lambda: E.SteerableMPConfig("0e", "1o + 0e"), "irreps_out"),
        (lambda: E.SteerableMPConfig("zz", "0e"), "irreps_in"),
        (lambda: E.SteerableMPConfig("0e", "0e", cutoff=-1.0), "cutoff"),
        (lambda: E.SteerableMPConfig("0e", "0e", num_basis=0), "num_basis"),
        (lambda: E.SteerableMPConfig("0e", "0e", avg_num_neighbors=0), "avg_num_neighbors"),
    ],
)
def test_radial_and_config_errors(call, name):
    expect_named_error(call, name=name, jit=False)


_CFG = E.SteerableMPConfig(
    "2x0e", "2x0e + 1x1o", lmax_sh=1, num_basis=4, cutoff=2.0, radial_hidden=4
)


@functools.cache
def _mp_params():
    return _init(E.init_steerable_mp, _CFG)


def _mp(h, pos, s, r, **kw):
    return E.steerable_message_passing(_mp_params(), h, pos, s, r, _CFG, **kw)


_H = E.IrrepsArray("2x0e", np.ones((3, 2), np.float32))
_POS = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
_S = np.array([0, 1, 2, 1], np.int32)
_R = np.array([1, 0, 0, 2], np.int32)


@pytest.mark.parametrize(
    "args,name",
    [
        ((_H.array, _POS, _S, _R), "h"),
        ((E.IrrepsArray("2x0e + 0o", np.ones((3, 3), np.float32)), _POS, _S, _R), "h"),
        ((_H, _POS[:2], _S, _R), "positions"),
        ((_H, _POS.astype(np.int32), _S, _R), "positions"),
        ((_H, _POS, _S[:2], _R), "senders"),
        ((_H, _POS, _S.astype(np.float32), _R), "senders"),
    ],
)
def test_steerable_mp_bad_inputs(args, name):
    expect_named_error(_mp, *args, name=name, jit=False)
    expect_named_error(
        E.steerable_message_passing, _mp_params(), *args, "cfg", name="config", jit=False
    )


def test_steerable_mp_coincident_nodes_and_zero_edges_finite():
    """Two nodes at the same place (zero-length edges) and a self loop: finite outputs and
    finite gradients with respect to positions and parameters."""
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], np.float32)
    s = np.array([0, 1, 2, 0], np.int32)
    r = np.array([1, 0, 0, 0], np.int32)

    def loss(p, x):
        return jnp.sum(E.steerable_message_passing(p, _H, x, s, r, _CFG).array ** 2)

    out = _mp(_H, pos, s, r)
    assert leaves_finite(out.array)
    gp, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(_mp_params(), pos)
    assert leaves_finite(gp) and leaves_finite(gx)
    masked = _mp(_H, pos, s, r, edge_mask=np.array([True, False, True, True]))
    assert leaves_finite(masked.array)


# -- SO(2) convolution -------------------------------------------------------------------------

_SO2_X = E.IrrepsArray("2x0e + 2x1o", np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(3, 8))
_SO2_R = np.array([[0.3, -0.4, 1.2], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
_SO2_NW = 10


@pytest.mark.parametrize(
    "name,value",
    [("x", np.ones((3, 8), np.float32)), ("x", E.IrrepsArray("2x0e + 3x1o", np.ones((3, 11))))]
    + [("edge_vec", v) for v in (np.ones((3, 2), np.float32), np.ones((3, 3), np.int32), "y")]
    + [("weights", v) for v in (np.ones((3, 5), np.float32), np.ones((3, 10), np.int32))],
)
def test_so2_convolution_bad_arrays(name, value):
    args = {"x": _SO2_X, "edge_vec": _SO2_R, "weights": np.ones((3, _SO2_NW), np.float32)}
    args[name] = value
    expect_named_error(
        E.so2_convolution,
        args["x"],
        args["edge_vec"],
        args["weights"],
        name=name,
        jit=False,
        irreps_out=1,
    )


@pytest.mark.parametrize(
    "option,value",
    [("irreps_out", v) for v in (-1, "3x1o", "nonsense", 1.5, None)]
    + [("m_max", v) for v in (-1, 1.5, True, "1")],
)
def test_so2_convolution_bad_options(option, value):
    kw = {"irreps_out": 1, option: value}
    w = np.ones((3, _SO2_NW), np.float32)
    expect_named_error(E.so2_convolution, _SO2_X, _SO2_R, w, name=option, jit=False, **kw)


def test_so2_helpers_bad_arguments():
    expect_named_error(E.so2_convolution_num_weights, "2x0e + 3x1o", 1, name="x", jit=False)
    expect_named_error(E.so2_convolution_num_weights, "nonsense", 1, name="irreps_in", jit=False)
    for bad_key in BAD_KEYS:
        expect_named_error(E.init_so2_convolution, bad_key, "2x0e", 0, name="key", jit=False)
    w = np.ones(12, np.float32)
    for sh in (-1, "1e", "0e + 0e", "2x1o"):
        expect_named_error(
            E.channelwise_to_so2_weights, w, "2x0e + 2x1o", sh, name="irreps_sh", jit=False
        )
    expect_named_error(
        E.channelwise_to_so2_weights, w[:5], "2x0e + 2x1o", 1, name="weights", jit=False
    )
    expect_named_error(
        E.channelwise_to_so2_weights, w, "2x0e + 2x1o", 1, name="m_max", jit=False, m_max=-2
    )


def test_so2_convolution_nan_in_nan_out_edge_cases_finite():
    """A NaN edge poisons its own edge only; edges along +y, -y and of zero length give finite
    values and gradients; an output no block reaches is zero."""
    w = np.asarray(E.init_so2_convolution(jax.random.key(0), "2x0e + 2x1o", 1))
    w = np.broadcast_to(w, (3, _SO2_NW))
    with jax.debug_nans(False):
        r = _SO2_R.copy()
        r[0, 1] = np.nan
        out = np.asarray(E.so2_convolution(_SO2_X, r, w, irreps_out=1).array)
        assert np.isnan(out[0]).all() and np.isfinite(out[1:]).all()
    for r in (_SO2_R, -_SO2_R):
        g = jax.grad(
            lambda a, b: jnp.sum(E.so2_convolution(a, b, w, irreps_out=1).array ** 2),
            argnums=(0, 1),
        )(_SO2_X, r)
        assert leaves_finite(g)
    out = E.so2_convolution(_SO2_X, _SO2_R, np.zeros((3, 0), np.float32), irreps_out="2x0o")
    assert out.shape == (3, 2) and not np.asarray(out.array).any()
