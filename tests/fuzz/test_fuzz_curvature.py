"""Fuzz suite for ``geomjax.curvature``: every public name against bad and edge input.

The contract is in ``_fuzz.py``: structural bad input (pytrees of the wrong structure or leaf
shapes, empty or scalar batches, integer, boolean and complex dtypes, unknown options, bad keys,
non-callables, functions returning the wrong shape) raises ``ValueError`` / ``TypeError`` at
trace time naming the argument; value-bad input gives what the docstring's "Input domain" note
says (NaN in, NaN out for the products; ``converged`` all False for a non-finite operator in
Lanczos; unchecked traced ``sigma`` / ``damping`` / ``indices``); valid edge input (zeros,
identity and zero operators, repeated eigenvalues, n = 1, one parameter, empty leaves) is
finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _fuzz import (
    BAD_DTYPES,
    POISONS,
    UNKNOWN_OPTIONS,
    expect_named_error,
    leaves_finite,
    no_silent_nan,
    poison,
    spd,
    wrong_shape,
)
from hypothesis import given
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from geomjax import curvature as cv

EXEMPT = {
    "geomjax.curvature": {
        "EigenResult": "a result type, no input",
        "HutchinsonDiagResult": "a result type, no input",
        "HutchinsonTraceResult": "a result type, no input",
        "LanczosResult": "a result type, no input",
        "SpectralDensity": "a result type, no input",
    }
}

COVERED = {
    "geomjax.curvature": {
        "MFACInverse",
        "empirical_fisher_vp",
        "empirical_ntk",
        "fisher_vp",
        "ggn_vp",
        "hutchinson_diag",
        "hutchinson_trace",
        "hvp",
        "lanczos",
        "slq_density",
        "top_eigenvalues",
    }
}

KEY = jax.random.key(0)
NB, DIN, K = 4, 3, 2  # batch size, input dimension, outputs (classes)
_rng = np.random.default_rng(0)
P = {
    "w": _rng.standard_normal((DIN, K)).astype(np.float32),
    "b": _rng.standard_normal((K,)).astype(np.float32),
}
V = jax.tree.map(lambda t: np.ones_like(t), P)
XB = _rng.standard_normal((NB, DIN)).astype(np.float32)
TB = _rng.standard_normal((NB, K)).astype(np.float32)
DIM = ravel_pytree(P)[0].shape[0]  # 8
A = spd(0, DIM, cond=10.0, dtype=np.float32)
_FLAT, _UNRAVEL = ravel_pytree(jax.tree.map(jnp.asarray, P))


def model(p, x):
    return jnp.tanh(x @ p["w"] + p["b"])


def mse(z, t):
    return 0.5 * jnp.mean(jnp.sum((z - t) ** 2, axis=-1))


def loss(p, x, t):
    return mse(model(p, x), t)


def per_example_loss(p, xt):
    return 0.5 * jnp.sum((model(p, xt[0]) - xt[1]) ** 2)


def net(p, x):
    """One input ``(DIN,)`` to ``(K,)`` outputs (for the NTK)."""
    return model(p, x)


def mvp(v):
    return _UNRAVEL(jnp.asarray(A) @ ravel_pytree(v)[0])


# Each public function called with (params-like, v-like) in the argument named by the key.
PRODUCTS = {
    "hvp": lambda p, v: cv.hvp(loss, p, v, XB, TB),
    "ggn_vp": lambda p, v: cv.ggn_vp(model, mse, p, v, (XB, TB)),
    "fisher_vp": lambda p, v: cv.fisher_vp(model, p, v, XB),
    "empirical_fisher_vp": lambda p, v: cv.empirical_fisher_vp(per_example_loss, p, v, (XB, TB)),
}
PARAM_FNS = dict(
    PRODUCTS,
    hutchinson_diag=lambda p, v: cv.hutchinson_diag(loss, p, KEY, 2, XB, TB),
    hutchinson_trace=lambda p, v: cv.hutchinson_trace(loss, p, KEY, 2, XB, TB),
    empirical_ntk=lambda p, v: cv.empirical_ntk(net, p, XB, XB[:2]),
    lanczos=lambda p, v: cv.lanczos(lambda u: u, p, KEY, 2),
    top_eigenvalues=lambda p, v: cv.top_eigenvalues(lambda u: u, p, KEY, 1, 2),
    slq_density=lambda p, v: cv.slq_density(lambda u: u, p, KEY, 2, 1, jnp.zeros(3), 0.5),
)
PARAM_NAME = {"lanczos": "params_like", "top_eigenvalues": "params_like"}
PARAM_NAME["slq_density"] = "params_like"


def _cast(x, dtype):
    x = np.asarray(x)
    if dtype == jnp.bool_:
        return jnp.asarray(x > 0)
    return jnp.asarray(np.round(x) if jnp.issubdtype(dtype, jnp.integer) else x, dtype)


def _with_leaf(tree, leaf, value):
    out = dict(tree)
    out[leaf] = value
    return out


# -- structural: pytrees, dtypes, callables, options, keys --------------------------------------


@given(
    name=st.sampled_from(sorted(PARAM_FNS)),
    leaf=st.sampled_from(["w", "b"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_params_with_non_floating_leaves_are_named(name, leaf, dtype):
    p = _with_leaf(P, leaf, _cast(P[leaf], dtype))
    arg = PARAM_NAME.get(name, "params")
    expect_named_error(lambda: PARAM_FNS[name](p, V), name=arg, jit=False)


@pytest.mark.parametrize("name", sorted(PARAM_FNS))
@pytest.mark.parametrize("params", [{}, [], None], ids=["dict", "list", "none"])
def test_params_without_leaves_are_named(name, params):
    arg = PARAM_NAME.get(name, "params")
    expect_named_error(lambda: PARAM_FNS[name](params, V), name=arg, jit=False)


@given(
    name=st.sampled_from(sorted(PRODUCTS)),
    bad=st.one_of(
        st.sampled_from(["w", "b"]).flatmap(
            lambda leaf: st.tuples(st.just(leaf), wrong_shape(P[leaf].shape))
        ),
        st.sampled_from(["missing", "extra", "list", "array"]),
        st.tuples(st.sampled_from(["w", "b"]), st.sampled_from(BAD_DTYPES)),
    ),
)
def test_directions_of_the_wrong_structure_shape_or_dtype_are_named(name, bad):
    if bad == "missing":
        v = {"w": V["w"]}
    elif bad == "extra":
        v = dict(V, c=np.ones(2, np.float32))
    elif bad == "list":
        v = [V["b"], V["w"]]
    elif bad == "array":
        v = np.ones(DIM, np.float32)
    elif isinstance(bad[1], tuple):
        v = _with_leaf(V, bad[0], np.ones(bad[1], np.float32))
    else:
        leaf, dtype = bad
        v = _with_leaf(V, leaf, _cast(V[leaf], dtype))
    expect_named_error(PRODUCTS[name], P, v, name="v")


NOT_CALLABLE = [3, "f", None, np.ones(3)]
CALLABLE_ARGS = {
    ("hvp", "f"): lambda g: cv.hvp(g, P, V, XB, TB),
    ("ggn_vp", "model_fn"): lambda g: cv.ggn_vp(g, mse, P, V, (XB, TB)),
    ("ggn_vp", "loss_fn"): lambda g: cv.ggn_vp(model, g, P, V, (XB, TB)),
    ("fisher_vp", "model_fn"): lambda g: cv.fisher_vp(g, P, V, XB),
    ("empirical_fisher_vp", "per_example_loss_fn"): lambda g: cv.empirical_fisher_vp(
        g, P, V, (XB, TB)
    ),
    ("hutchinson_diag", "f"): lambda g: cv.hutchinson_diag(g, P, KEY, 1, XB, TB),
    ("hutchinson_trace", "f"): lambda g: cv.hutchinson_trace(g, P, KEY, 1, XB, TB),
    ("empirical_ntk", "f"): lambda g: cv.empirical_ntk(g, P, XB, XB),
    ("lanczos", "mvp"): lambda g: cv.lanczos(g, P, KEY, 2),
    ("top_eigenvalues", "mvp"): lambda g: cv.top_eigenvalues(g, P, KEY, 1, 2),
    ("slq_density", "mvp"): lambda g: cv.slq_density(g, P, KEY, 2, 1, jnp.zeros(3), 0.5),
}


@given(case=st.sampled_from(sorted(CALLABLE_ARGS)), value=st.sampled_from(NOT_CALLABLE))
def test_non_callables_are_named(case, value):
    expect_named_error(CALLABLE_ARGS[case], value, name=case[1], jit=False)


# Functions whose output has the wrong shape or dtype: the argument that returned it is named.
WRONG_OUTPUTS = {
    ("hvp", "f"): [
        lambda p, x, t: model(p, x),  # not a scalar
        lambda p, x, t: jnp.sum(x @ p["w"]).astype(jnp.int32),
        lambda p, x, t: (loss(p, x, t), 0.0),
        lambda p, x, t: jnp.sum(x @ p["w"]).astype(jnp.complex64),
    ],
    ("hutchinson_diag", "f"): [lambda p, x, t: model(p, x)[0], lambda p, x, t: None],
    ("hutchinson_trace", "f"): [lambda p, x, t: jnp.stack([loss(p, x, t)] * 2)],
    ("empirical_fisher_vp", "per_example_loss_fn"): [
        lambda p, xt: model(p, xt[0]),
        lambda p, xt: jnp.sum(model(p, xt[0])).astype(jnp.int32),
    ],
    ("ggn_vp", "loss_fn"): [lambda z, t: z, lambda z, t: jnp.sum(z, axis=0)],
    ("ggn_vp", "model_fn"): [lambda p, x: jnp.round(model(p, x)).astype(jnp.int32)],
    ("fisher_vp", "model_fn"): [
        lambda p, x: jnp.sum(model(p, x)),  # no batch axis
        lambda p, x: model(p, x)[:, 0],  # softmax needs a class axis
        lambda p, x: (model(p, x), model(p, x)),
        lambda p, x: jnp.round(model(p, x)).astype(jnp.int32),
    ],
    ("empirical_ntk", "f"): [
        lambda p, x: jnp.sum(net(p, x)),  # a scalar, not (k,)
        lambda p, x: jnp.outer(net(p, x), net(p, x)),
        lambda p, x: jnp.round(net(p, x)).astype(jnp.int32),
    ],
}


def _call_with(case, g):
    name, arg = case
    if name == "hvp":
        return cv.hvp(g, P, V, XB, TB)
    if name.startswith("hutchinson"):
        return getattr(cv, name)(g, P, KEY, 1, XB, TB)
    if name == "empirical_fisher_vp":
        return cv.empirical_fisher_vp(g, P, V, (XB, TB))
    if name == "ggn_vp":
        return (
            cv.ggn_vp(g, mse, P, V, (XB, TB))
            if arg == "model_fn"
            else cv.ggn_vp(model, g, P, V, (XB, TB))
        )
    if name == "fisher_vp":
        return cv.fisher_vp(g, P, V, XB)
    return cv.empirical_ntk(g, P, XB, XB[:2])


@given(
    case=st.sampled_from(sorted(WRONG_OUTPUTS)),
    i=st.integers(0, 3),
)
def test_functions_returning_the_wrong_shape_or_dtype_are_named(case, i):
    g = WRONG_OUTPUTS[case][i % len(WRONG_OUTPUTS[case])]
    expect_named_error(lambda: _call_with(case, g), name=case[1], jit=False)


@given(
    name=st.sampled_from(["lanczos", "top_eigenvalues", "slq_density"]),
    out=st.sampled_from(["shape", "missing", "array", "int", "complex"]),
)
def test_operators_returning_the_wrong_pytree_are_named(name, out):
    def bad_mvp(v):
        if out == "shape":
            return {"w": v["w"][:1], "b": v["b"]}
        if out == "missing":
            return {"w": v["w"]}
        if out == "array":
            return ravel_pytree(v)[0]
        dtype = jnp.int32 if out == "int" else jnp.complex64
        return jax.tree.map(lambda t: t.astype(dtype), v)

    call = {
        "lanczos": lambda: cv.lanczos(bad_mvp, P, KEY, 2),
        "top_eigenvalues": lambda: cv.top_eigenvalues(bad_mvp, P, KEY, 1, 2),
        "slq_density": lambda: cv.slq_density(bad_mvp, P, KEY, 2, 1, jnp.zeros(3), 0.5),
    }[name]
    expect_named_error(call, name="mvp(v)", jit=False)


@given(
    batch=st.sampled_from(
        [
            "dict",
            "triple",
            "single",
            "array",
        ]
    )
)
def test_ggn_batch_not_a_pair_is_named(batch):
    value = {"dict": {"x": XB}, "triple": (XB, TB, TB), "single": (XB,), "array": XB}[batch]
    expect_named_error(lambda: cv.ggn_vp(model, mse, P, V, value), name="batch", jit=False)


@given(
    case=st.sampled_from(["mismatch", "scalar_leaf", "empty", "no_leaves", "zero_batch"]),
)
def test_empirical_fisher_bad_batches_are_named(case):
    batch = {
        "mismatch": (XB, TB[:2]),
        "scalar_leaf": (XB, np.float32(1.0)),
        "empty": (),
        "no_leaves": {"x": None},
        "zero_batch": (XB[:0], TB[:0]),
    }[case]
    expect_named_error(
        lambda: cv.empirical_fisher_vp(per_example_loss, P, V, batch), name="batch", jit=False
    )


OPTIONS = {
    ("fisher_vp", "likelihood"): lambda o: cv.fisher_vp(model, P, V, XB, likelihood=o),
    ("empirical_ntk", "method"): lambda o: cv.empirical_ntk(net, P, XB, XB, method=o),
    ("top_eigenvalues", "which"): lambda o: cv.top_eigenvalues(mvp, P, KEY, 1, 2, which=o),
}


@given(case=st.sampled_from(sorted(OPTIONS)), option=UNKNOWN_OPTIONS)
def test_unknown_options_are_named(case, option):
    expect_named_error(OPTIONS[case], option, name=case[1], jit=False)


BAD_COUNTS = [0, -1, DIM + 1, 2.5, True, "2", None]
COUNT_ARGS = {
    ("hutchinson_diag", "n_samples"): lambda n: cv.hutchinson_diag(loss, P, KEY, n, XB, TB),
    ("hutchinson_trace", "n_samples"): lambda n: cv.hutchinson_trace(loss, P, KEY, n, XB, TB),
    ("lanczos", "n_iter"): lambda n: cv.lanczos(mvp, P, KEY, n),
    ("top_eigenvalues", "n_iter"): lambda n: cv.top_eigenvalues(mvp, P, KEY, 1, n),
    ("top_eigenvalues", "k"): lambda n: cv.top_eigenvalues(mvp, P, KEY, n, 4),
    ("slq_density", "n_iter"): lambda n: cv.slq_density(mvp, P, KEY, n, 1, jnp.zeros(3), 0.5),
    ("slq_density", "n_probes"): lambda n: cv.slq_density(mvp, P, KEY, 2, n, jnp.zeros(3), 0.5),
}


@given(case=st.sampled_from(sorted(COUNT_ARGS)), value=st.sampled_from(BAD_COUNTS))
def test_bad_counts_are_named(case, value):
    if value == DIM + 1 and case[1] in ("n_samples", "n_probes"):
        value = 0  # no upper bound on these
    if case == ("top_eigenvalues", "k") and value == DIM + 1:
        value = 5  # k <= n_iter = 4
    expect_named_error(COUNT_ARGS[case], value, name=case[1], jit=False)


BAD_KEYS = [0, 1.5, "key", None, jax.random.split(KEY, 2), np.zeros(3, np.float32)]
KEYED = {
    "hutchinson_diag": lambda k: cv.hutchinson_diag(loss, P, k, 1, XB, TB),
    "hutchinson_trace": lambda k: cv.hutchinson_trace(loss, P, k, 1, XB, TB),
    "lanczos": lambda k: cv.lanczos(mvp, P, k, 2),
    "top_eigenvalues": lambda k: cv.top_eigenvalues(mvp, P, k, 1, 2),
    "slq_density": lambda k: cv.slq_density(mvp, P, k, 2, 1, jnp.zeros(3), 0.5),
}


@given(name=st.sampled_from(sorted(KEYED)), key=st.sampled_from(BAD_KEYS))
def test_bad_keys_are_named(name, key):
    expect_named_error(KEYED[name], key, name="key", jit=False)


BAD_SCALARS = {
    ("lanczos", "tol"): (
        lambda t: cv.lanczos(mvp, P, KEY, 2, tol=t),
        [-1.0, np.nan, "a", 1j, np.ones(2), True],
    ),
    ("top_eigenvalues", "tol"): (
        lambda t: cv.top_eigenvalues(mvp, P, KEY, 1, 2, tol=t),
        [-1e-3, np.nan, "tol", [1e-3]],
    ),
    ("slq_density", "sigma"): (
        lambda s: cv.slq_density(mvp, P, KEY, 2, 1, jnp.zeros(3), s),
        [0.0, -1.0, np.inf, np.nan, "a", 1j, np.ones(2), None],
    ),
}


@given(case=st.sampled_from(sorted(BAD_SCALARS)), i=st.integers(0, 10))
def test_bad_scalar_options_are_named(case, i):
    call, values = BAD_SCALARS[case]
    expect_named_error(call, values[i % len(values)], name=case[1], jit=False)


@given(
    bad=st.one_of(
        st.sampled_from([(), (3, 1), (2, 2, 2)]),
        st.sampled_from(BAD_DTYPES),
    )
)
def test_slq_bad_grids_are_named(bad):
    grid = np.ones(bad, np.float32) if isinstance(bad, tuple) else _cast(np.zeros(3), bad)
    expect_named_error(
        lambda g: cv.slq_density(mvp, P, KEY, 2, 1, g, 0.5), grid, name="grid", jit=False
    )


@given(
    bad=st.one_of(
        st.tuples(st.sampled_from(["w", "b"]), st.sampled_from([(1,), (9, 9), ()])),
        st.tuples(st.sampled_from(["w", "b"]), st.sampled_from(BAD_DTYPES)),
        st.just("missing"),
    )
)
def test_lanczos_bad_init_is_named(bad):
    if bad == "missing":
        init = {"w": V["w"]}
    elif isinstance(bad[1], tuple):
        init = _with_leaf(V, bad[0], np.ones(bad[1], np.float32))
    else:
        init = _with_leaf(V, bad[0], _cast(V[bad[0]], bad[1]))
    expect_named_error(lambda: cv.lanczos(mvp, P, KEY, 2, init=init), name="init", jit=False)


def test_params_like_without_entries_is_named():
    for p in ({"w": np.zeros((0,), np.float32)}, np.zeros((2, 0), np.float32)):
        expect_named_error(lambda p=p: cv.lanczos(mvp, p, KEY, 1), name="params_like", jit=False)


@given(
    arg=st.sampled_from(["x1", "x2"]),
    bad=st.one_of(
        st.sampled_from([(), (0, DIN), (NB, DIN + 1), (NB, DIN, 1)]),
        st.sampled_from(BAD_DTYPES),
    ),
)
def test_ntk_bad_inputs_are_named(arg, bad):
    value = np.ones(bad, np.float32) if isinstance(bad, tuple) else _cast(XB, bad)
    if arg == "x1":
        call = lambda: cv.empirical_ntk(net, P, value, XB)  # noqa: E731
    else:
        call = lambda: cv.empirical_ntk(net, P, XB, value)  # noqa: E731
    # A trailing-shape mismatch names both stacks; an empty x1 is reported together with `f`
    # (its output shape cannot be probed): either way the message names the stack.
    expect_named_error(call, name=arg, jit=False)


# -- MFACInverse: constructor and methods --------------------------------------------------------

G = _rng.standard_normal((3, 5)).astype(np.float32)
FINV = cv.MFACInverse.from_gradients(G, 0.1)
FINV_TREE = cv.MFACInverse.from_gradients(
    {"a": G[:, :2], "b": G[:, 2:].reshape(3, 3, 1)}, 0.1, block_size=2
)


@given(
    bad=st.one_of(
        wrong_shape((3, 5)).filter(lambda s: len(s) != 2 or 0 in s),
        st.sampled_from(BAD_DTYPES),
        st.sampled_from(["mismatched_tree", "empty_tree", "scalar_leaves", "int_leaf"]),
    )
)
def test_mfac_bad_gradients_are_named(bad):
    if isinstance(bad, tuple):
        grads = np.ones(bad, np.float32)
    elif isinstance(bad, str):
        grads = {
            "mismatched_tree": {"a": G[:, :2], "b": G[:2, 2:]},
            "empty_tree": {},
            "scalar_leaves": [np.float32(1.0), np.float32(2.0)],
            "int_leaf": {"a": G[:, :2], "b": np.ones((3, 3), np.int32)},
        }[bad]
    else:
        grads = _cast(G, bad)
    expect_named_error(lambda: cv.MFACInverse.from_gradients(grads, 0.1), name="grads", jit=False)


@given(
    arg=st.sampled_from(["damping", "block_size"]),
    i=st.integers(0, 10),
)
def test_mfac_bad_damping_or_block_size_is_named(arg, i):
    values = {
        "damping": [0.0, -1.0, np.inf, np.nan, "a", 1j, None, np.ones(2), True],
        "block_size": [0, -1, 2.5, True, "2", np.int32(0)],
    }[arg]
    kw = {"damping": 0.1, "block_size": None, arg: values[i % len(values)]}
    expect_named_error(
        lambda: cv.MFACInverse.from_gradients(G, kw["damping"], block_size=kw["block_size"]),
        name=arg,
        jit=False,
    )


MFAC_METHODS = {
    "ihvp": ("v", lambda f, w: f.ihvp(w)),
    "obs_scores": ("weights", lambda f, w: f.obs_scores(w)),
    "obs_update": ("weights", lambda f, w: f.obs_update(w, np.array([0, 2]))),
}


@given(
    method=st.sampled_from(sorted(MFAC_METHODS)),
    tree=st.booleans(),
    bad=st.one_of(
        st.sampled_from([(4,), (6,), (5, 1), (), "pytree", "array"]),
        st.sampled_from(BAD_DTYPES),
    ),
)
def test_mfac_methods_with_bad_vectors_are_named(method, tree, bad):
    arg, call = MFAC_METHODS[method]
    finv = FINV_TREE if tree else FINV
    good = {"a": np.ones(2, np.float32), "b": np.ones((3, 1), np.float32)}
    if bad == "pytree":
        w = good if not tree else {"a": good["a"]}
    elif bad == "array":
        w = np.ones(5, np.float32) if tree else [np.ones(5, np.float32)]
    elif isinstance(bad, tuple):
        w = np.ones(bad, np.float32) if not tree else dict(good, b=np.ones(bad, np.float32))
    else:
        w = _cast(np.ones(5), bad) if not tree else dict(good, a=_cast(good["a"], bad))
    expect_named_error(lambda: call(finv, w), name=arg, jit=False)


@given(
    bad=st.sampled_from(
        [[5], [-1], [0, 0], [1, 2, 1], np.array([1.0]), np.array([[0]]), np.array([True])]
    )
)
def test_mfac_obs_update_bad_indices_are_named(bad):
    expect_named_error(
        lambda: FINV.obs_update(np.ones(5, np.float32), np.asarray(bad)),
        name="indices",
        jit=False,
    )


# -- value-bad input: NaN in, NaN out; status for Lanczos ----------------------------------------

_PRODUCTS_JIT = {name: jax.jit(f) for name, f in PRODUCTS.items()}
_HUTCH = {
    "hutchinson_diag": jax.jit(lambda p, x: cv.hutchinson_diag(loss, p, KEY, 2, x, TB)),
    "hutchinson_trace": jax.jit(lambda p, x: cv.hutchinson_trace(loss, p, KEY, 2, x, TB)),
}
_NTK = jax.jit(lambda p, x1, x2: cv.empirical_ntk(net, p, x1, x2))


@given(
    name=st.sampled_from(sorted(PRODUCTS) + sorted(_HUTCH) + ["empirical_ntk"]),
    where=st.sampled_from(["params", "v", "data"]),
    index=st.integers(0, 31),
)
def test_nan_values_propagate(name, where, index):
    """NaN in, NaN out: a NaN in the parameters, the direction or the data shows up in the
    result (never silently finite everywhere). An inf is not asserted on: it goes through the
    model's arithmetic, and tanh saturates it to a finite value, as documented."""
    kind = "nan"
    p, v, x = P, V, XB
    leaf = "w" if index % 2 else "b"
    if where == "params":
        p = _with_leaf(P, leaf, poison(P[leaf], kind, index // 2))
    elif where == "v":
        v = _with_leaf(V, leaf, poison(V[leaf], kind, index // 2))
    else:
        x = poison(XB, kind, index)
    if where == "v" and name not in PRODUCTS:
        where, p = "params", _with_leaf(P, leaf, poison(P[leaf], kind, index // 2))
    with jax.debug_nans(False):
        if name in PRODUCTS:
            if where == "data":
                # the data of the products is closed over: poison it through a fresh wrapper
                out = {
                    "hvp": lambda: cv.hvp(loss, p, v, x, TB),
                    "ggn_vp": lambda: cv.ggn_vp(model, mse, p, v, (x, TB)),
                    "fisher_vp": lambda: cv.fisher_vp(model, p, v, x),
                    "empirical_fisher_vp": lambda: cv.empirical_fisher_vp(
                        per_example_loss, p, v, (x, TB)
                    ),
                }[name]()
            else:
                out = _PRODUCTS_JIT[name](p, v)
        elif name in _HUTCH:
            out = _HUTCH[name](p, x)
        else:
            out = _NTK(p, x, XB[:2])
    assert not leaves_finite(out), f"{name}: a NaN in {where} gave an all-finite result"


_LANCZOS = jax.jit(lambda a: cv.lanczos(lambda v: _UNRAVEL(a @ ravel_pytree(v)[0]), P, KEY, 4))
_TOP = jax.jit(
    lambda a: cv.top_eigenvalues(lambda v: _UNRAVEL(a @ ravel_pytree(v)[0]), P, KEY, 2, 4)
)
_SLQ = jax.jit(
    lambda a, grid, sigma: cv.slq_density(
        lambda v: _UNRAVEL(a @ ravel_pytree(v)[0]), P, KEY, 3, 2, grid, sigma
    )
)
GRID = np.linspace(0.0, 12.0, 7).astype(np.float32)


@given(
    name=st.sampled_from(["lanczos", "top_eigenvalues", "slq_density"]),
    kind=POISONS,
    index=st.integers(0, DIM * DIM - 1),
)
def test_non_finite_operators_are_reported(name, kind, index):
    """Lanczos / top_eigenvalues: ``converged`` all False (NaN Ritz values); SLQ: NaN nodes and
    density."""
    a = poison(A, kind, index)
    with jax.debug_nans(False):
        if name == "slq_density":
            out = _SLQ(a, GRID, np.float32(0.5))
            assert np.all(np.isnan(out.nodes)) and np.all(np.isnan(out.density))
            return
        out = (_LANCZOS if name == "lanczos" else _TOP)(a)
    assert not np.any(out.converged), f"{name}: a non-finite operator reported converged"
    values = out.ritz_values if name == "lanczos" else out.eigenvalues
    assert np.all(np.isnan(values))
    no_silent_nan(out, status_ok=lambda r: bool(np.any(r.converged)))


@given(seed=st.integers(0, 100), name=st.sampled_from(["lanczos", "top_eigenvalues"]))
def test_non_symmetric_operators_are_not_detected_but_finite(seed, name):
    a = np.random.default_rng(seed).standard_normal((DIM, DIM)).astype(np.float32)
    out = (_LANCZOS if name == "lanczos" else _TOP)(a)
    assert leaves_finite(out)


@given(index=st.integers(0, GRID.size - 1))
def test_slq_nan_grid_point_gives_nan_density_there_only(index):
    grid = poison(GRID, "nan", index)
    with jax.debug_nans(False):
        out = _SLQ(A, grid, np.float32(0.5))
    density = np.asarray(out.density)
    assert np.isnan(density[index])
    assert np.all(np.isfinite(np.delete(density, index)))


@given(sigma=st.sampled_from([-0.5, -1e-3, 0.0]))
def test_slq_traced_sigma_is_not_checked(sigma):
    """Documented: a negative traced sigma gives a negative density, zero a NaN one."""
    with jax.debug_nans(False):
        out = _SLQ(A, GRID, np.float32(sigma))
    if sigma < 0:
        assert np.all(np.asarray(out.density) <= 0) and leaves_finite(out)
    else:
        assert np.any(np.isnan(out.density))


_MFAC_IHVP = jax.jit(lambda g, damping, v: cv.MFACInverse.from_gradients(g, damping).ihvp(v))
_MFAC_ALL = jax.jit(
    lambda g, damping, w: (
        cv.MFACInverse.from_gradients(g, damping).ihvp(w),
        cv.MFACInverse.from_gradients(g, damping).inverse_diag(),
        cv.MFACInverse.from_gradients(g, damping).obs_scores(w),
        cv.MFACInverse.from_gradients(g, damping).obs_update(w, jnp.array([0, 3])),
    )
)


@given(where=st.sampled_from(["grads", "v"]), kind=POISONS, index=st.integers(0, 14))
def test_mfac_non_finite_values_propagate(where, kind, index):
    g, w = G, np.ones(5, np.float32)
    if where == "grads":
        g = poison(G, kind, index)
    else:
        w = poison(w, kind, index)
    with jax.debug_nans(False):
        out = _MFAC_ALL(g, np.float32(0.1), w)
    assert not leaves_finite(out[0]) and not leaves_finite(out[2])


@given(damping=st.sampled_from([-1.0, -1e-3, 0.0, -np.inf, np.nan]))
def test_mfac_traced_non_positive_damping_gives_nan(damping):
    with jax.debug_nans(False):
        out = _MFAC_ALL(G, np.float32(damping), np.ones(5, np.float32))
    assert all(np.all(np.isnan(leaf)) for leaf in jax.tree.leaves(out))


_OBS = jax.jit(lambda idx: FINV.obs_update(jnp.ones(5), idx))


@given(
    idx=st.one_of(
        st.integers(0, 4).map(lambda i: [i, i]),
        st.sampled_from([[-3], [-1], [5], [7], [100], [0, 1, 0]]),
    )
)
def test_mfac_traced_repeated_or_out_of_range_indices_give_nan(idx):
    with jax.debug_nans(False):
        delta, dl = _OBS(np.array(idx))
    assert np.all(np.isnan(delta)) and np.isnan(dl)


# -- valid edge input ----------------------------------------------------------------------------

Z = jax.tree.map(np.zeros_like, P)


@pytest.mark.parametrize("name", sorted(PRODUCTS))
@pytest.mark.parametrize("case", ["zero_params", "zero_v", "one_example", "empty_leaf"])
def test_products_at_edge_inputs_are_finite(name, case):
    p, v, x, t = P, V, XB, TB
    if case == "zero_params":
        p = Z
    elif case == "zero_v":
        v = Z
    elif case == "one_example":
        x, t = XB[:1], TB[:1]
    else:
        p = dict(P, e=np.zeros((0,), np.float32))
        v = dict(V, e=np.zeros((0,), np.float32))
    out = {
        "hvp": lambda: cv.hvp(loss, p, v, x, t),
        "ggn_vp": lambda: cv.ggn_vp(model, mse, p, v, (x, t)),
        "fisher_vp": lambda: cv.fisher_vp(model, p, v, x),
        "empirical_fisher_vp": lambda: cv.empirical_fisher_vp(per_example_loss, p, v, (x, t)),
    }[name]()
    assert leaves_finite(out)
    if case == "zero_v":
        assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(out)[-2:])


@pytest.mark.parametrize("likelihood", ["softmax", "gaussian"])
def test_fisher_smallest_shapes_are_finite(likelihood):
    """One example, one output (a single class for softmax: Lambda = 0), a scalar parameter."""
    out = cv.fisher_vp(
        lambda w, x: (x * w)[:, None],
        np.float32(0.5),
        np.float32(1.0),
        XB[:1, 0],
        likelihood=likelihood,
    )
    assert leaves_finite(out)
    if likelihood == "softmax":
        assert float(out) == 0.0


@pytest.mark.parametrize("name", ["hutchinson_diag", "hutchinson_trace"])
def test_hutchinson_on_a_scalar_parameter_is_exact(name):
    """One parameter: z^2 = 1, so one probe gives the exact second derivative."""
    f = lambda w: 1.5 * w**2  # noqa: E731
    out = getattr(cv, name)(f, np.float32(2.0), KEY, 1)
    np.testing.assert_array_equal(out[0], 3.0)


@pytest.mark.parametrize("method", ["jacobian_contraction", "ntk_vector_products"])
@pytest.mark.parametrize("trace", [False, True])
def test_ntk_smallest_inputs_are_finite(method, trace):
    f = lambda w, x: (x * w)[None]  # noqa: E731  # k = 1, one parameter
    out = cv.empirical_ntk(
        f,
        np.float32(0.0),
        np.ones((1,), np.float32),
        np.zeros((1,), np.float32),
        trace=trace,
        method=method,
    )
    assert leaves_finite(out)
    np.testing.assert_array_equal(out, 0.0)  # x1 x2 = 1 * 0


@pytest.mark.parametrize(
    "case", ["identity", "zero", "repeated", "n_iter_1", "full", "zero_init", "scalar_param"]
)
def test_lanczos_edge_operators_are_finite(case):
    """Invariant subspaces found at once (identity, zero, repeated eigenvalues) restart instead
    of dividing by a zero beta; the smallest and the full Krylov spaces; a zero start vector."""
    mats = {
        "identity": np.eye(DIM, dtype=np.float32),
        "zero": np.zeros((DIM, DIM), np.float32),
        "repeated": np.diag(np.array([1, 1, 1, 2, 2, 2, 3, 3], np.float32)),
    }
    a = mats.get(case, A)
    op = lambda v: _UNRAVEL(jnp.asarray(a) @ ravel_pytree(v)[0])  # noqa: E731
    if case == "scalar_param":
        out = cv.lanczos(lambda v: 2.0 * v, np.float32(0.0), KEY, 1)
        np.testing.assert_allclose(out.ritz_values, [2.0])
    elif case == "n_iter_1":
        out = cv.lanczos(op, P, KEY, 1)
    elif case == "zero_init":
        out = cv.lanczos(op, P, KEY, DIM, init=Z)
    else:
        out = cv.lanczos(op, P, KEY, DIM, return_vectors=True)
    assert leaves_finite(out)
    if case in mats:
        want = np.sort(np.linalg.eigvalsh(mats[case]))
        # the whole spectrum at m = d: float32 eigh of a tridiagonal of norm <= 3
        np.testing.assert_allclose(out.ritz_values, want, atol=64 * 1.2e-7 * 3)


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_top_eigenvalues_edges_are_finite(which):
    a = np.diag(np.array([-3, 1, 1, 1, 2, 2, 3, 3], np.float32))  # ties in |lambda| and lambda
    op = lambda v: _UNRAVEL(jnp.asarray(a) @ ravel_pytree(v)[0])  # noqa: E731
    out = cv.top_eigenvalues(op, P, KEY, DIM, DIM, which=which)
    assert leaves_finite(out)
    assert np.all(out.converged)


@pytest.mark.parametrize("case", ["identity", "zero", "n_iter_1", "empty_grid"])
def test_slq_edges_are_finite(case):
    a = {"identity": np.eye(DIM, dtype=np.float32), "zero": np.zeros((DIM, DIM), np.float32)}
    a = a.get(case, A)
    op = lambda v: _UNRAVEL(jnp.asarray(a) @ ravel_pytree(v)[0])  # noqa: E731
    grid = np.zeros((0,), np.float32) if case == "empty_grid" else GRID
    out = cv.slq_density(op, P, KEY, 1 if case == "n_iter_1" else 4, 2, grid, 0.5)
    assert leaves_finite(out)
    # each probe's quadrature weights sum to 1 (float32, m terms)
    np.testing.assert_allclose(np.sum(out.weights, axis=1), 1.0, atol=8 * 1.2e-7 * 4)


@pytest.mark.parametrize(
    "case", ["zero_grads", "one_grad", "one_coordinate", "block_1", "block_big", "pytree"]
)
def test_mfac_edges_are_finite(case):
    g, kw = G, {}
    if case == "zero_grads":
        g = np.zeros_like(G)
    elif case == "one_grad":
        g = G[:1]
    elif case == "one_coordinate":
        g = G[:, :1]
    elif case == "block_1":
        kw = {"block_size": 1}
    elif case == "block_big":
        kw = {"block_size": 50}
    else:
        g = {"a": G[:, :2], "b": G[:, 2:].reshape(3, 3, 1)}
    finv = cv.MFACInverse.from_gradients(g, 0.1, **kw)
    w = jax.tree.map(lambda t: np.ones(t.shape[1:], np.float32), g)
    out = (finv.ihvp(w), finv.inverse_diag(), finv.obs_scores(w), finv.obs_update(w, [0]))
    assert leaves_finite(out)
    empty = finv.obs_update(w, np.zeros((0,), np.int32))  # k = 0: a zero correction
    assert leaves_finite(empty) and float(empty[1]) == 0.0
    if case == "zero_grads":
        np.testing.assert_allclose(out[0], np.ones(5) / 0.1, rtol=1e-6)  # F = damping * I
