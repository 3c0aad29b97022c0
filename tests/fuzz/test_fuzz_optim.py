"""Fuzz suite for ``geomjax.optim``: every optimizer and the Newton solver under bad and edge input.

The contract is the one of ``_fuzz.py``. For the optax transformations the structural checks run
in the constructor (options) and in ``init`` / ``update`` (parameters, gradients, the loss and
its keyword arguments); value-bad input follows each docstring's "Input domain" sentence (NaN
in, NaN out for the first-order and Fisher optimizers, a skipped step for the normalized Newton
step, a status code for :func:`gradient_normalized_newton`); valid edge input (zero gradients,
points at the optimum, empty leaves, one parameter, rank-deficient windows) stays finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _fuzz import (
    BAD_DTYPES,
    POISONS,
    UNKNOWN_OPTIONS,
    expect_named_error,
    indefinite,
    leaves_finite,
    no_silent_nan,
    poison,
    spd,
    wrong_shape,
)
from hypothesis import given
from hypothesis import strategies as st

import geomjax.optim as O
from geomjax.manifolds import PoincareBall, Sphere

COVERED = {
    "geomjax.optim": {
        "adahessian",
        "gradient_normalized_newton",
        "mfac",
        "normalized_newton",
        "riemannian_adam",
        "riemannian_sgd",
        "scale_by_adahessian",
        "scale_by_mfac",
        "scale_by_normalized_newton",
    }
}
_RESULT = "a result type (NamedTuple), no input"
EXEMPT = {
    "geomjax.optim": {
        "AdaHessianState": f"{_RESULT}; built by adahessian / scale_by_adahessian init, fuzzed",
        "MFACState": f"{_RESULT}; built by mfac / scale_by_mfac init, fuzzed",
        "NormalizedNewtonHistory": f"{_RESULT}; part of gradient_normalized_newton's output, fuzzed",
        "NormalizedNewtonResult": f"{_RESULT}; returned by gradient_normalized_newton, fuzzed "
        "(its message property is checked for every status)",
        "NormalizedNewtonState": f"{_RESULT}; built by normalized_newton init, fuzzed",
        "RiemannianAdamState": f"{_RESULT}; built by riemannian_adam init, fuzzed",
        "RiemannianSGDState": f"{_RESULT}; built by riemannian_sgd init, fuzzed",
    }
}

KEY = jax.random.key(0)
BAD_KEYS = (0, 1.5, np.zeros(2, np.float32), np.zeros(3, np.uint32), jax.random.split(KEY, 2))
BAD_REALS = ("0.1", None, 1j, True, np.ones(2, np.float32))


def _cast(x, dtype):
    return np.asarray(x).astype(dtype)


# =============================================================================================
# Riemannian SGD / Adam
# =============================================================================================

SPHERE = Sphere(2)  # points (3,)
BALL = PoincareBall(2)  # points (2,)
RIEM = {"riemannian_sgd": O.riemannian_sgd, "riemannian_adam": O.riemannian_adam}
RIEM_NAMES = sorted(RIEM)
XS = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], np.float32)  # two points on the sphere
GS = np.array([[0.1, 0.5, -0.2], [0.3, -0.1, 0.2]], np.float32)
WE = np.array([0.5, -1.0], np.float32)
PARAMS = {"s": XS, "e": WE}
GRADS = {"s": GS, "e": np.array([0.2, 0.1], np.float32)}


def _riem(name, **kw):
    if name == "riemannian_sgd":
        kw.setdefault("momentum", 0.5)
    return RIEM[name](0.1, manifolds={"s": SPHERE, "e": None}, **kw)


_RIEM_STEP = {
    name: jax.jit(lambda g, p, name=name: _riem(name).update(g, _riem(name).init(p), p))
    for name in RIEM_NAMES
}


@pytest.mark.parametrize("name", RIEM_NAMES)
@pytest.mark.parametrize("lr", [-0.1, float("nan"), *BAD_REALS], ids=repr)
def test_riemannian_bad_learning_rate(name, lr):
    expect_named_error(RIEM[name], lr, name="learning_rate", jit=False)


@pytest.mark.parametrize(
    "name,option",
    [("riemannian_sgd", "momentum"), ("riemannian_adam", "b1"), ("riemannian_adam", "b2")],
)
@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan"), *BAD_REALS], ids=repr)
def test_riemannian_bad_moment_options(name, option, value):
    expect_named_error(RIEM[name], 0.1, name=option, jit=False, **{option: value})


@pytest.mark.parametrize("value", [-1e-8, float("nan"), *BAD_REALS], ids=repr)
def test_riemannian_adam_bad_eps(value):
    expect_named_error(O.riemannian_adam, 0.1, name="eps", jit=False, eps=value)


@pytest.mark.parametrize("name", RIEM_NAMES)
@pytest.mark.parametrize("stabilize", [0, -1, 1.5, "2", True])
def test_riemannian_bad_stabilize(name, stabilize):
    expect_named_error(RIEM[name], 0.1, name="stabilize", jit=False, stabilize=stabilize)


@pytest.mark.parametrize("name", RIEM_NAMES)
@pytest.mark.parametrize(
    "manifolds", [3, "sphere", [SPHERE, 3], {"s": Sphere}], ids=["int", "str", "list", "class"]
)
def test_riemannian_bad_manifolds(name, manifolds):
    expect_named_error(RIEM[name], 0.1, name="manifolds", jit=False, manifolds=manifolds)


@given(name=st.sampled_from(RIEM_NAMES), shape=wrong_shape((2, 3)))
def test_riemannian_param_shape(name, shape):
    """A parameter under a manifold is batch_shape + point_shape; anything else is named."""
    tx = _riem(name)
    params = {"s": np.ones(shape, np.float32), "e": WE}
    if shape[-1:] == (3,):  # another batch shape is valid
        jax.eval_shape(tx.init, params)
        return
    expect_named_error(tx.init, params, name="params", jit=False)


@given(
    name=st.sampled_from(RIEM_NAMES),
    leaf=st.sampled_from(["s", "e"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_riemannian_param_dtype(name, leaf, dtype):
    tx = _riem(name)
    params = {**PARAMS, leaf: _cast(PARAMS[leaf], dtype)}
    expect_named_error(tx.init, params, name="params", jit=False)
    expect_named_error(lambda p: tx.update(GRADS, tx.init(PARAMS), p), params, name="params")


@given(
    name=st.sampled_from(RIEM_NAMES),
    leaf=st.sampled_from(["s", "e"]),
    shape=wrong_shape((2, 3)),
)
def test_riemannian_grads_shape(name, leaf, shape):
    tx = _riem(name)
    state = tx.init(PARAMS)
    shape = shape if leaf == "s" else shape[1:]
    if shape == PARAMS[leaf].shape:
        return
    grads = {**GRADS, leaf: np.ones(shape, np.float32)}
    expect_named_error(lambda g: tx.update(g, state, PARAMS), grads, name="grads")


@given(
    name=st.sampled_from(RIEM_NAMES),
    leaf=st.sampled_from(["s", "e"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_riemannian_grads_dtype(name, leaf, dtype):
    tx = _riem(name)
    state = tx.init(PARAMS)
    grads = {**GRADS, leaf: _cast(GRADS[leaf], dtype)}
    expect_named_error(lambda g: tx.update(g, state, PARAMS), grads, name="grads")


@pytest.mark.parametrize("name", RIEM_NAMES)
def test_riemannian_structure_and_missing_params(name):
    tx = _riem(name)
    state = tx.init(PARAMS)
    expect_named_error(tx.update, GRADS, state, name="params", jit=False)
    expect_named_error(tx.update, {"s": GS}, state, PARAMS, name="grads", jit=False)
    expect_named_error(tx.update, [GS, GRADS["e"]], state, PARAMS, name="grads", jit=False)
    expect_named_error(tx.init, {"s": XS}, name="manifolds", jit=False)


@given(
    name=st.sampled_from(RIEM_NAMES),
    leaf=st.sampled_from(["s", "e"]),
    kind=POISONS,
    index=st.integers(0, 5),
)
def test_riemannian_poison_stays_in_its_row(name, leaf, kind, index):
    """Documented: NaN in, NaN out. A non-finite gradient entry spoils its own point (a sphere
    row) or its own entry (Euclidean, elementwise as optax), nothing else."""
    grads = {**GRADS, leaf: poison(GRADS[leaf], kind, index)}
    with jax.debug_nans(False):
        updates, state = _RIEM_STEP[name](grads, PARAMS)
    bad = {k: np.asarray(v) for k, v in updates.items()}
    if leaf == "s":
        row = (index % 6) // 3
        assert not np.all(np.isfinite(bad["s"][row]))
        assert np.all(np.isfinite(np.delete(bad["s"], row, 0))) and np.all(np.isfinite(bad["e"]))
    else:
        i = index % 2
        assert not np.isfinite(bad["e"][i])
        assert np.all(np.isfinite(np.delete(bad["e"], i))) and np.all(np.isfinite(bad["s"]))


@given(name=st.sampled_from(RIEM_NAMES), scale=st.sampled_from([0.0, 1e-20, 0.5, 2.0, 1e10]))
def test_riemannian_off_manifold_points(name, scale):
    """Documented: points are not checked; the step starts from the given array and stays finite
    (sphere points of any norm, zero included, and ball points outside the ball)."""
    params = {"s": np.float32(scale) * XS, "e": WE}
    updates, state = _RIEM_STEP[name](GRADS, params)
    assert leaves_finite((updates, state))
    for point in ([2.0, 0.0], [1.0, 0.0], [0.0, 0.0]):
        tx = RIEM[name](0.1, manifolds=BALL)
        x = np.asarray(point, np.float32)
        assert leaves_finite(tx.update(np.ones(2, np.float32), tx.init(x), x))


def test_riemannian_adam_eps_zero_documented():
    """Documented: with eps=0 a zero gradient on the first step divides 0 by 0 (NaN update)."""
    for manifolds in (None, SPHERE):
        tx = O.riemannian_adam(0.1, eps=0.0, manifolds=manifolds)
        with jax.debug_nans(False):
            u, _ = tx.update(np.zeros(3, np.float32), tx.init(XS[0]), XS[0])
        assert not leaves_finite(u)


@pytest.mark.parametrize("name", RIEM_NAMES)
@pytest.mark.parametrize(
    "kw",
    [{}, {"use_exp": True}, {"stabilize": 1}, {"nesterov": True}, {"amsgrad": True}],
    ids=["plain", "exp", "stabilize", "nesterov", "amsgrad"],
)
def test_riemannian_valid_edges(name, kw):
    """Zero gradients, an empty batch of points, empty Euclidean leaves and several steps:
    finite updates and states."""
    if ("nesterov" in kw and name == "riemannian_adam") or (
        "amsgrad" in kw and name != "riemannian_adam"
    ):
        return
    tx = _riem(name, **kw)
    cases = [
        (PARAMS, {"s": np.zeros_like(GS), "e": np.zeros(2, np.float32)}),
        ({"s": np.zeros((0, 3), np.float32), "e": np.zeros(0, np.float32)},) * 2,
    ]
    for params, grads in cases:
        state = tx.init(params)
        for _ in range(3):
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        assert leaves_finite((params, state))


# =============================================================================================
# AdaHessian
# =============================================================================================

ADA = {"adahessian": O.adahessian, "scale_by_adahessian": O.scale_by_adahessian}
ADA_NAMES = sorted(ADA)
WA = {"w": np.array([1.0, -2.0], np.float32), "k": np.ones((2, 2, 1, 1), np.float32)}


def _loss(p):
    return 3.0 * jnp.sum(p["w"] ** 2) + jnp.sum(p["k"] ** 4) + jnp.sum(p["w"]) * jnp.sum(p["k"])


_ADA_STEP = {
    name: jax.jit(
        lambda p, name=name: ADA[name]().update(
            None, ADA[name]().init(p), p, loss_fn=_loss, key=KEY
        )
    )
    for name in ADA_NAMES
}


@pytest.mark.parametrize("name", ADA_NAMES)
@pytest.mark.parametrize(
    "option,values",
    [
        ("b1", [-0.1, 1.0, float("nan"), "0.9", None, True]),
        ("b2", [-0.1, 1.0, float("nan"), "0.9"]),
        ("eps", [-1e-4, float("nan"), "1e-4"]),
        ("hessian_power", [-0.5, 1.5, float("nan"), "1"]),
        ("n_samples", [0, -1, 1.5, True, "2"]),
        ("update_every", [0, 2.5, False]),
        ("axis_name", [3, ("a",), 1.0]),
        ("spatial_axes", ["bogus", 1.5, b"x"]),
    ],
)
def test_adahessian_bad_options(name, option, values):
    for value in values:
        expect_named_error(ADA[name], name=option, jit=False, **{option: value})


@pytest.mark.parametrize(
    "option,value",
    [("learning_rate", -0.1), ("learning_rate", float("nan")), ("learning_rate", "0.1")]
    + [("weight_decay", -1e-3), ("weight_decay", float("nan")), ("weight_decay", None)],
)
def test_adahessian_bad_outer_options(option, value):
    expect_named_error(O.adahessian, name=option, jit=False, **{option: value})


@given(
    name=st.sampled_from(ADA_NAMES),
    leaf=st.sampled_from(["w", "k"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_adahessian_param_dtype(name, leaf, dtype):
    tx = ADA[name]()
    params = {**WA, leaf: _cast(WA[leaf], dtype)}
    expect_named_error(tx.init, params, name="params", jit=False)
    state = tx.init(WA)
    expect_named_error(
        lambda p: tx.update(None, state, p, loss_fn=_loss, key=KEY), params, name="params"
    )


@given(name=st.sampled_from(ADA_NAMES), shape=wrong_shape((2,)))
def test_adahessian_param_shape_vs_state(name, shape):
    tx = ADA[name]()
    state = tx.init(WA)
    params = {**WA, "w": np.ones(shape, np.float32)}
    expect_named_error(
        lambda p: tx.update(
            None, state, p, loss_fn=lambda q: jnp.sum(q["w"]) + jnp.sum(q["k"] ** 2), key=KEY
        ),
        params,
        name="params",
    )


@pytest.mark.parametrize("name", ADA_NAMES)
@given(bad_key=st.sampled_from(BAD_KEYS))
def test_adahessian_bad_key(name, bad_key):
    tx = ADA[name]()
    state = tx.init(WA)
    expect_named_error(
        tx.update, None, state, WA, name="key", jit=False, loss_fn=_loss, key=bad_key
    )


@pytest.mark.parametrize("name", ADA_NAMES)
def test_adahessian_bad_update_arguments(name):
    tx = ADA[name]()
    state = tx.init(WA)
    upd = tx.update
    expect_named_error(upd, None, state, name="params", jit=False, loss_fn=_loss, key=KEY)
    expect_named_error(upd, None, state, WA, name="loss_fn", jit=False, key=KEY)
    expect_named_error(upd, None, state, WA, name="loss_fn", jit=False, loss_fn="sum", key=KEY)
    expect_named_error(upd, None, state, WA, name="key", jit=False, loss_fn=_loss)
    for bad_loss in (
        lambda p: p["w"],
        lambda p: jnp.sum(p["w"]).astype(jnp.int32),
        lambda p: jnp.sum(p["w"]) * 1j,
    ):
        expect_named_error(
            upd, None, state, WA, name="loss_fn", jit=False, loss_fn=bad_loss, key=KEY
        )
    expect_named_error(
        upd,
        None,
        state,
        WA,
        name="batch_args",
        jit=False,
        loss_fn=_loss,
        key=KEY,
        batch_args=np.ones(2),
    )
    expect_named_error(
        upd, {"w": WA["w"]}, state, WA, name="updates", jit=False, loss_fn=_loss, key=KEY
    )


@pytest.mark.parametrize("name", ADA_NAMES)
@pytest.mark.parametrize(
    "axes",
    [{"w": (1,), "k": None}, {"w": None, "k": (0, 0)}, {"w": None}, {"w": ("0",), "k": None}],
)
def test_adahessian_bad_spatial_axes(name, axes):
    tx = ADA[name](spatial_axes=axes)
    expect_named_error(tx.init, WA, name="spatial_axes", jit=False)


@given(
    name=st.sampled_from(ADA_NAMES),
    leaf=st.sampled_from(["w", "k"]),
    kind=POISONS,
    index=st.integers(0, 3),
)
def test_adahessian_poison(name, leaf, kind, index):
    """Documented: non-finite parameters give non-finite updates (NaN in, NaN out, as optax)."""
    params = {**WA, leaf: poison(WA[leaf], kind, index)}
    with jax.debug_nans(False):
        updates, _ = _ADA_STEP[name](params)
    assert not leaves_finite(updates)


def test_adahessian_eps_zero_documented():
    """Documented: with eps=0 a leaf of exactly zero curvature divides by zero."""
    tx = O.scale_by_adahessian(eps=0.0)
    w = np.array([1.0, 2.0], np.float32)
    with jax.debug_nans(False):
        u, _ = tx.update(None, tx.init(w), w, loss_fn=lambda p: jnp.sum(p), key=KEY)
    assert not leaves_finite(u)


@pytest.mark.parametrize(
    "name,kw,constant",
    [
        ("scale_by_adahessian", {}, True),
        ("scale_by_adahessian", {"n_samples": 3, "update_every": 2}, False),
        (
            "adahessian",
            {"hessian_power": 0.5, "spatial_axes": lambda p: jax.tree.map(lambda _: None, p)},
            False,
        ),
    ],
    ids=["constant_loss", "probes_stale", "power_no_averaging"],
)
def test_adahessian_valid_edges(name, kw, constant):
    """Zero gradient and zero curvature (constant loss), an empty leaf, several probes, stale
    estimates and a 4-D kernel with spatial averaging: finite over a few steps."""
    params = {**WA, "empty": np.zeros((0, 3), np.float32)}
    loss = (lambda p: jnp.float32(1.0) + 0.0 * jnp.sum(p["w"])) if constant else _loss
    tx = ADA[name](**kw)

    def step(carry, key):
        p, state = carry
        u, state = tx.update(None, state, p, loss_fn=loss, key=key)
        return (optax.apply_updates(p, u), state), None

    keys = jax.random.split(KEY, 3)
    (p, state), _ = jax.jit(lambda p, s, ks: jax.lax.scan(step, (p, s), ks))(
        params, tx.init(params), keys
    )
    assert leaves_finite((p, state))


MF = {"mfac": lambda **kw: O.mfac(0.1, **kw), "scale_by_mfac": lambda **kw: O.scale_by_mfac(**kw)}
MF_NAMES = sorted(MF)
WM = {"a": np.array([1.0, -1.0, 0.5], np.float32), "b": np.ones((2, 2), np.float32)}
GM = {"a": np.array([0.3, -0.2, 0.1], np.float32), "b": np.full((2, 2), 0.05, np.float32)}


@pytest.mark.parametrize("name", MF_NAMES)
@pytest.mark.parametrize(
    "option,values",
    [
        ("num_grads", [0, -1, 1.5, True, "4"]),
        ("damping", [0.0, -1e-5, float("nan"), float("inf"), "1e-5", True]),
        ("blocks", ["bogus", "", 0, -2, 1.5, True]),
        ("shard_buffer", [True]),
    ],
)
def test_mfac_bad_options(name, option, values):
    for value in values:
        expect_named_error(MF[name], name=option, jit=False, **{option: value})


@given(option=st.sampled_from(["blocks"]), value=UNKNOWN_OPTIONS)
def test_mfac_unknown_blocks_string(option, value):
    for name in MF_NAMES:
        expect_named_error(MF[name], name=option, jit=False, blocks=value)


@pytest.mark.parametrize(
    "option,value",
    [
        ("learning_rate", -0.1),
        ("learning_rate", "0.1"),
        ("learning_rate", None),
        ("momentum", -0.5),
        ("momentum", 1.0),
        ("momentum", "0.9"),
        ("weight_decay", -1e-4),
        ("weight_decay", float("inf")),
        ("weight_decay", 1j),
    ],
)
def test_mfac_bad_outer_options(option, value):
    kwargs = {"learning_rate": 0.1, option: value}
    expect_named_error(O.mfac, name=option, jit=False, **kwargs)


@given(
    name=st.sampled_from(MF_NAMES),
    blocks=st.sampled_from([None, "leaf", 2]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_mfac_dtypes(name, blocks, dtype):
    tx = MF[name](num_grads=2, blocks=blocks)
    bad = {**WM, "a": _cast(WM["a"], dtype)}
    expect_named_error(tx.init, bad, name="params", jit=False)
    state = tx.init(WM)
    expect_named_error(
        lambda g: tx.update(g, state, WM), {**GM, "a": _cast(GM["a"], dtype)}, name="updates"
    )


@given(
    name=st.sampled_from(MF_NAMES),
    blocks=st.sampled_from([None, "leaf", 2]),
    shape=wrong_shape((3,)),
)
def test_mfac_update_shapes(name, blocks, shape):
    tx = MF[name](num_grads=2, blocks=blocks)
    state = tx.init(WM)
    grads = {**GM, "a": np.ones(shape, np.float32)}
    expect_named_error(lambda g: tx.update(g, state, WM), grads, name="updates")
    if name == "scale_by_mfac" and int(np.prod(shape)) != 3:  # without params: sizes checked
        expect_named_error(lambda g: tx.update(g, state), grads, name="updates")


@pytest.mark.parametrize("name", MF_NAMES)
def test_mfac_no_leaves(name):
    expect_named_error(MF[name]().init, {}, name="params", jit=False)
    tx = MF[name](num_grads=2)
    expect_named_error(tx.update, {}, tx.init(WM), name="updates", jit=False)


_MF_STEPS = jax.jit(
    lambda gs: jax.lax.scan(
        lambda s, g: tuple(reversed(O.scale_by_mfac(num_grads=3, damping=1e-3).update(g, s))),
        O.scale_by_mfac(num_grads=3, damping=1e-3).init(gs[0]),
        gs,
    )
)


@given(kind=POISONS, index=st.integers(0, 3), at=st.integers(0, 2))
def test_mfac_poison_spoils_the_window_for_m_steps(kind, index, at):
    """Documented: a non-finite gradient gives a non-finite update and stays in the window,
    spoiling the next m - 1 updates; after m steps the updates are finite again."""
    grads = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    grads[at] = poison(grads[at], kind, index)
    with jax.debug_nans(False):
        _, updates = _MF_STEPS(grads)
    finite = np.all(np.isfinite(np.asarray(updates)), axis=1)
    expected = np.ones(7, bool)
    expected[at : at + 3] = False
    np.testing.assert_array_equal(finite, expected)


@pytest.mark.parametrize("scale", [1e-15, 1.0, 1e15])
def test_mfac_gradient_scale_within_domain(scale):
    """Inside the documented domain (squared norms representable) the update is the dense
    (lambda I + G^T G / m)^{-1} g: tiny and large gradients, against float64 (float32: relative
    error about eps * cond(K), here cond <= 1 + |g|^2 / (m lambda) ~ 3)."""
    g = np.array([3.0, -4.0], np.float32) * np.float32(scale)
    damping = float(np.dot(g.astype(np.float64), g)) / 2  # keeps the window well conditioned
    tx = O.scale_by_mfac(num_grads=2, damping=damping)
    with jax.default_matmul_precision("highest"):  # GPUs default to TF32 matmuls
        u, _ = tx.update(g, tx.init(np.zeros(2, np.float32)))
    gd = g.astype(np.float64)
    f = damping * np.eye(2) + np.outer(gd, gd) / 2
    np.testing.assert_allclose(np.asarray(u, np.float64), np.linalg.solve(f, gd), rtol=32 * 1.2e-7)


@pytest.mark.parametrize(
    "name,blocks",
    [("scale_by_mfac", b) for b in (None, "leaf", 1, 4)] + [("mfac", None)],
)
def test_mfac_valid_edges(name, blocks):
    """A zero gradient, then the same gradient repeated (a rank-one window), with an empty leaf
    (and a single coordinate): finite updates and states."""
    tx = MF[name](num_grads=3, blocks=blocks, damping=1e-6)
    cases = [({**WM, "e": np.zeros((0, 2), np.float32)}, {**GM, "e": np.zeros((0, 2), np.float32)})]
    if blocks is None:
        cases.append((np.ones(1, np.float32), np.full(1, 0.5, np.float32)))
    for params, grads in cases:
        seq = jax.tree.map(lambda g: np.stack([0 * g, g, g, g]), grads)

        def step(state, g, params=params):
            u, state = tx.update(g, state, params)
            return state, u

        state, us = jax.jit(lambda s, gs: jax.lax.scan(step, s, gs))(tx.init(params), seq)
        assert leaves_finite((us, state))


NN = {
    "normalized_newton": O.normalized_newton,
    "scale_by_normalized_newton": O.scale_by_normalized_newton,
}
NN_NAMES = sorted(NN)
XB = np.array([[1.0, 0.0], [1.0, 3.0], [0.0, 1.0]], np.float32)
YB = np.array([1.0, 2.0, 0.0], np.float32)
W0 = np.zeros(2, np.float32)


def _model(w, x):
    return x @ w


def _out_loss(z, y):
    return 0.5 * jnp.mean((z - y) ** 2)


def _per_example(w, ex):
    return 0.5 * (ex[0] @ w - ex[1]) ** 2


GN_KW = dict(model_fn=_model, output_loss_fn=_out_loss, batch_args=(XB, YB))


@given(
    name=st.sampled_from(NN_NAMES),
    option=st.sampled_from(["curvature", "likelihood"]),
    value=UNKNOWN_OPTIONS,
)
def test_normalized_newton_unknown_options(name, option, value):
    expect_named_error(NN[name], name=option, jit=False, **{option: value})


@pytest.mark.parametrize("name", NN_NAMES)
@pytest.mark.parametrize(
    "option,value",
    [
        ("gamma0", 0.0),
        ("gamma0", -1.0),
        ("gamma0", float("nan")),
        ("gamma0", "1"),
        ("gamma0", 1e9),  # above gamma_max
        ("gamma_min", 0.0),
        ("gamma_min", 2.0),  # above gamma0
        ("gamma_max", float("inf")),
        ("cg_steps", 0),
        ("cg_steps", 2.5),
        ("cg_tol", -1e-6),
        ("cg_tol", float("nan")),
        ("max_trials", 0),
        ("max_trials", True),
        ("axis_name", 3),
    ],
)
def test_normalized_newton_bad_options(name, option, value):
    err = expect_named_error(NN[name], name=option, jit=False, **{option: value})
    assert option in str(err)


@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), "1"])
def test_normalized_newton_bad_learning_rate(value):
    expect_named_error(O.normalized_newton, name="learning_rate", jit=False, learning_rate=value)


@given(name=st.sampled_from(NN_NAMES), dtype=st.sampled_from(BAD_DTYPES))
def test_normalized_newton_param_dtype(name, dtype):
    tx = NN[name]()
    expect_named_error(tx.init, _cast(W0, dtype), name="params", jit=False)
    expect_named_error(
        tx.update, None, tx.init(W0), _cast(W0, dtype), name="params", jit=False, **GN_KW
    )


@pytest.mark.parametrize("name", NN_NAMES)
def test_normalized_newton_bad_update_arguments(name):
    gn, ef, none = NN[name](), NN[name](curvature="empirical_fisher"), NN[name](curvature="none")
    st0 = gn.init(W0)
    expect_named_error(gn.init, {}, name="params", jit=False)
    expect_named_error(gn.update, None, st0, name="params", jit=False, **GN_KW)
    expect_named_error(
        gn.update, None, st0, W0, name="batch_args", jit=False, **{**GN_KW, "batch_args": XB}
    )
    expect_named_error(
        gn.update, None, st0, W0, name="batch_args", jit=False, **{**GN_KW, "batch_args": (XB,)}
    )
    expect_named_error(
        gn.update,
        None,
        st0,
        W0,
        name="model_fn",
        jit=False,
        output_loss_fn=_out_loss,
        batch_args=(XB, YB),
    )
    expect_named_error(
        gn.update,
        None,
        st0,
        W0,
        name="output_loss_fn",
        jit=False,
        model_fn=_model,
        batch_args=(XB, YB),
    )
    expect_named_error(
        gn.update, None, st0, W0, name="loss_fn", jit=False, loss_fn=lambda w: jnp.sum(w)
    )
    expect_named_error(
        gn.update, None, st0, W0, name="loss_fn", jit=False, loss_fn=lambda w: 0.0, **GN_KW
    )
    for bad in (lambda z, y: (z - y) ** 2, lambda z, y: jnp.sum(z).astype(jnp.int32)):
        expect_named_error(
            gn.update,
            None,
            st0,
            W0,
            name="output_loss_fn",
            jit=False,
            **{**GN_KW, "output_loss_fn": bad},
        )
    expect_named_error(
        ef.update, None, st0, W0, name="per_example_loss_fn", jit=False, batch_args=(XB, YB)
    )
    for batch in ((XB, YB[:2]), (XB[:0], YB[:0]), (XB, np.float32(1.0)), ()):
        expect_named_error(
            ef.update,
            None,
            st0,
            W0,
            name="batch_args",
            jit=False,
            per_example_loss_fn=_per_example,
            batch_args=batch,
        )
    expect_named_error(none.update, None, st0, W0, name="loss_fn", jit=False, batch_args=(XB, YB))
    expect_named_error(
        none.update,
        None,
        st0,
        W0,
        name="loss_fn",
        jit=False,
        loss_fn=lambda w, x, y: w,
        batch_args=(XB, YB),
    )


_NN_STEP = {
    name: jax.jit(
        lambda w, x, y, name=name: NN[name](gamma0=0.5).update(
            None,
            NN[name](gamma0=0.5).init(w),
            w,
            model_fn=_model,
            output_loss_fn=_out_loss,
            batch_args=(x, y),
        )
    )
    for name in NN_NAMES
}


@given(
    name=st.sampled_from(NN_NAMES),
    where=st.sampled_from(["params", "inputs", "targets"]),
    kind=POISONS,
    index=st.integers(0, 5),
)
def test_normalized_newton_poison_skips_the_step(name, where, kind, index):
    """Documented: a non-finite gradient or loss skips the call: zero update, gamma unchanged,
    accepted False (the state's loss / grad_norm report the bad values)."""
    w, x, y = W0, XB, YB
    if where == "params":
        w = poison(W0, kind, index)
    elif where == "inputs":
        x = poison(XB, kind, index)
    else:
        y = poison(YB, kind, index)
    with jax.debug_nans(False):
        u, state = _NN_STEP[name](w, x, y)
    state = state[0] if isinstance(state, tuple) and not hasattr(state, "accepted") else state
    assert not np.any(np.asarray(u)) and leaves_finite(u)
    assert not bool(state.accepted) and float(state.gamma) == 0.5 and int(state.n_accepted) == 0


@pytest.mark.parametrize("name", NN_NAMES)
def test_normalized_newton_nonfinite_trial_is_rejected(name):
    """Documented: a non-finite loss at the trial point fails the test (a rejection)."""
    tx = NN[name](curvature="none", gamma0=4.0)
    w = np.array([0.0], np.float32)
    loss = lambda p: -jnp.log1p(-(jnp.sum(p) ** 2) / 1.0) + jnp.sum(p)  # noqa: E731  domain |p| < 1
    with jax.debug_nans(False):
        u, state = tx.update(None, tx.init(w), w, loss_fn=loss)
    state = state[0] if isinstance(state, tuple) and not hasattr(state, "accepted") else state
    assert not bool(state.accepted) and not np.any(np.asarray(u)) and float(state.gamma) == 2.0


@pytest.mark.parametrize(
    "name,curvature",
    [
        ("scale_by_normalized_newton", c)
        for c in ("gauss_newton", "fisher", "empirical_fisher", "none")
    ]
    + [("normalized_newton", "gauss_newton")],
)
def test_normalized_newton_valid_edges(name, curvature):
    """At the optimum (zero gradient: documented skip); one example of one feature with one
    parameter; several trials: finite updates and states."""
    tx = NN[name](curvature=curvature, max_trials=3, likelihood="gaussian")
    w_opt = np.linalg.lstsq(XB, YB, rcond=None)[0].astype(np.float32)
    y_fit = (XB @ w_opt).astype(np.float32)
    for w, x, y in ((w_opt, XB, y_fit), (np.zeros(1, np.float32), XB[1:2, 1:], YB[:1])):
        if curvature == "empirical_fisher":
            kw = dict(per_example_loss_fn=_per_example)
        elif curvature == "none":
            kw = dict(loss_fn=lambda p, a, b: _out_loss(_model(p, a), b))
        else:
            kw = dict(model_fn=_model, output_loss_fn=_out_loss)

        def two_steps(w, x, y, kw=kw):
            state = tx.init(w)
            for _ in range(2):
                u, state = tx.update(None, state, w, batch_args=(x, y), **kw)
                w = optax.apply_updates(w, u)
            return w, state

        assert leaves_finite(jax.jit(two_steps)(w, x, y))


GNN = O.gradient_normalized_newton
X3 = np.zeros(3, np.float32)


def _f(x):
    return jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4)


def _ok(result) -> bool:
    return bool(result.converged)


@given(dtype=st.sampled_from(BAD_DTYPES), shape=st.sampled_from([(3,), (2, 2)]))
def test_gnn_x0_dtype(dtype, shape):
    expect_named_error(GNN, _f, np.zeros(shape, dtype), name="x0", jit=False)
    expect_named_error(
        GNN, lambda p: _f(p["a"]), {"a": X3, "b": np.zeros(2, dtype)}, name="x0", jit=False
    )


@pytest.mark.parametrize(
    "x0",
    [np.zeros(0, np.float32), {}, {"a": np.zeros((2, 0), np.float32)}],
    ids=["empty", "no_leaves", "empty_leaf"],
)
def test_gnn_empty_x0(x0):
    expect_named_error(GNN, lambda x: jnp.float32(0.0), x0, name="x0", jit=False)


@given(option=st.sampled_from(["hessian", "linear_solver"]), value=UNKNOWN_OPTIONS)
def test_gnn_unknown_options(option, value):
    expect_named_error(GNN, _f, X3, name=option, jit=False, **{option: value})


@pytest.mark.parametrize(
    "option,value",
    [
        ("gamma0", 0.0),
        ("gamma0", -1.0),
        ("gamma0", float("nan")),
        ("gamma0", float("inf")),
        ("max_steps", -1),
        ("max_steps", 2.0),
        ("max_steps", True),
        ("max_trials", 0),
        ("max_trials", "3"),
        ("cg_max_iter", 0),
        ("cg_max_iter", 1.5),
        ("cg_tol", 0.0),
        ("cg_tol", float("nan")),
        ("tol", -1.0),
        ("tol", float("nan")),
    ],
)
def test_gnn_bad_scalar_options(option, value):
    expect_named_error(GNN, _f, X3, name=option, jit=False, **{option: value})


def test_gnn_bad_callables():
    expect_named_error(GNN, 3, X3, name="f", jit=False)
    expect_named_error(GNN, lambda x: x, X3, name="f", jit=False)
    expect_named_error(GNN, lambda x: jnp.sum(x).astype(jnp.int32), X3, name="f", jit=False)
    expect_named_error(GNN, lambda x: jnp.sum(x) * 1j, X3, name="f", jit=False)
    expect_named_error(
        GNN, _f, X3, name="model_fn", jit=False, hessian="gauss_newton", loss_fn=jnp.sum
    )
    expect_named_error(
        GNN, _f, X3, name="loss_fn", jit=False, hessian="gauss_newton", model_fn=lambda x: x
    )
    expect_named_error(
        GNN,
        _f,
        X3,
        name="loss_fn",
        jit=False,
        hessian="gauss_newton",
        model_fn=lambda x: x,
        loss_fn=lambda z: z,
    )
    expect_named_error(GNN, _f, X3, name="per_example_fn", jit=False, hessian="fisher")
    for per in (jnp.sum, lambda x: x[:0], lambda x: x.astype(jnp.int32), lambda x: jnp.outer(x, x)):
        expect_named_error(
            GNN, _f, X3, name="per_example_fn", jit=False, hessian="fisher", per_example_fn=per
        )


@given(shape=wrong_shape((3, 3)), dtype=st.sampled_from([np.float32, *BAD_DTYPES]))
def test_gnn_bad_hessian_callable(shape, dtype):
    expect_named_error(
        GNN, _f, X3, name="hessian", jit=False, hessian=lambda x: jnp.ones(shape, dtype)
    )
    if dtype != np.float32:
        expect_named_error(
            GNN, _f, X3, name="hessian", jit=False, hessian=lambda x: jnp.eye(3, dtype=dtype)
        )


@given(shape=wrong_shape((3, 3)), dtype=st.sampled_from([np.float32, *BAD_DTYPES]))
def test_gnn_bad_metric_structure(shape, dtype):
    if shape == (3,):
        return  # a diagonal metric
    expect_named_error(GNN, _f, X3, name="metric", jit=False, metric=np.ones(shape, np.float32))
    if dtype != np.float32:
        expect_named_error(GNN, _f, X3, name="metric", jit=False, metric=np.eye(3, dtype=dtype))


@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["indefinite", "nonsymmetric", "zero", "negative", "nan", "inf"]),
)
def test_gnn_bad_metric_values_concrete(seed, kind):
    """A concrete metric is checked: not positive (definite), not symmetric, or non-finite
    raises ValueError naming it."""
    dense = spd(seed, 3, cond=10.0).astype(np.float32)
    metric = {
        "indefinite": indefinite(seed, 3).astype(np.float32),
        "nonsymmetric": dense + np.triu(np.ones((3, 3), np.float32), 1),
        "zero": np.zeros(3, np.float32),
        "negative": -np.ones(3, np.float32),
        "nan": poison(dense, "nan", seed),
        "inf": poison(np.ones(3, np.float32), "inf", seed),
    }[kind]
    with jax.debug_nans(False):
        expect_named_error(GNN, _f, X3, name="metric", jit=False, metric=metric)


_GNN_TRACED_METRIC = jax.jit(lambda m: GNN(_f, X3, metric=m, max_steps=5))


@given(seed=st.integers(0, 2**16), kind=st.sampled_from(["indefinite", "nan"]))
def test_gnn_bad_metric_values_traced(seed, kind):
    """A traced metric cannot be checked: a failed factorization is status 3, converged False,
    and nothing non-finite is returned as the answer."""
    metric = (
        indefinite(seed, 3).astype(np.float32)
        if kind == "indefinite"
        else poison(spd(seed, 3), "nan", seed).astype(np.float32)
    )
    with jax.debug_nans(False):
        res = _GNN_TRACED_METRIC(metric)
    assert int(res.status) == 3 and not bool(res.converged)
    assert leaves_finite(res.x)


_GNN_HESS = jax.jit(lambda h, x0: GNN(_f, x0, hessian=lambda x: h, max_steps=5), static_argnums=())


@given(seed=st.integers(0, 2**16), kind=st.sampled_from(["indefinite", "nan", "inf"]))
def test_gnn_bad_hessian_values(seed, kind):
    """Documented statuses: an indefinite Hessian approximation stops with status 4, a
    non-finite one with status 3; converged is False and x stays the last (finite) iterate."""
    h = {
        "indefinite": indefinite(seed, 3),
        "nan": poison(spd(seed, 3), "nan", seed),
        "inf": poison(spd(seed, 3), "inf", seed),
    }[kind].astype(np.float32)
    with jax.debug_nans(False):
        res = _GNN_HESS(h, X3)
    assert int(res.status) == (3 if kind in ("nan", "inf") else 4), res.message
    assert not bool(res.converged) and leaves_finite(res.x)
    no_silent_nan(res, status_ok=_ok)


@given(seed=st.integers(0, 2**16))
def test_gnn_nonsymmetric_hessian_uses_symmetric_part(seed):
    """Documented: the dense solver uses the symmetric part of a callable's matrix."""
    sym = spd(seed, 3)
    skew = np.triu(np.ones((3, 3)), 1)
    with jax.default_matmul_precision("highest"):  # GPUs default to TF32 matmuls
        a = _GNN_HESS((sym + skew - skew.T).astype(np.float32), X3)
        b = _GNN_HESS(sym.astype(np.float32), X3)
    assert int(a.status) == int(b.status) and int(a.n_steps) == int(b.n_steps)
    # float32 eps 1.2e-7 times a few solves of cond(H + lam I) <= 10
    np.testing.assert_allclose(a.x, b.x, rtol=64 * 1.2e-7 * 10, atol=64 * 1.2e-7 * 10)


_GNN_X0 = jax.jit(lambda x0: GNN(_f, x0, max_steps=5))


@given(kind=POISONS, index=st.integers(0, 2))
def test_gnn_nonfinite_x0(kind, index):
    """Documented: a non-finite x0 is status 3 at x0 (converged False); everything but x (which
    is x0 itself) is finite."""
    with jax.debug_nans(False):
        res = _GNN_X0(poison(X3, kind, index))
    assert int(res.status) == 3 and not bool(res.converged) and int(res.n_steps) == 0
    assert leaves_finite(res._replace(x=np.zeros(3)))
    assert res.message == O._gradient_normalized_newton.STATUS_MESSAGES[3]


@pytest.mark.parametrize(
    "f",
    [
        lambda x: jnp.sum(x) * jnp.nan,
        lambda x: jnp.sum(jnp.log(x - 1.0)),  # NaN at x0 = 0
        lambda x: 1.0 / jnp.sum(x),  # inf at x0 = 0
    ],
    ids=["nan", "log_domain", "pole"],
)
def test_gnn_nonfinite_objective(f):
    with jax.debug_nans(False):
        res = GNN(f, X3, max_steps=5)
    assert int(res.status) == 3 and not bool(res.converged)
    assert leaves_finite(res)


def test_gnn_domain_edge_and_nonconvex():
    """A trial leaving the domain is rejected (finite answer); a non-convex exact Hessian is
    status 4 (require_psd) or handled by the radius (require_psd=False)."""
    barrier = lambda x: jnp.sum(-jnp.log(1.0 - x**2)) + jnp.sum(x)  # noqa: E731  |x| < 1
    with jax.debug_nans(False):
        res = jax.jit(lambda x0: GNN(barrier, x0, gamma0=10.0, max_steps=20))(X3)
    assert leaves_finite(res) and bool(res.converged), res.message
    nonconvex = lambda x: -jnp.sum(x**2) + jnp.sum(x**4)  # noqa: E731
    both = jax.jit(
        lambda x0: (GNN(nonconvex, x0), GNN(nonconvex, x0, require_psd=False, max_steps=20))
    )
    strict, relaxed = both(X3 + 0.1)
    assert int(strict.status) == 4 and leaves_finite(strict)
    no_silent_nan(relaxed, status_ok=_ok)
    assert leaves_finite(relaxed.x)


_GNN_EDGE_X0 = np.stack([np.ones(3, np.float32), X3, X3])  # at the minimum, away, away
_GNN_EDGE_C = np.array([0.0, 0.0, 1.0], np.float32)  # quadratic (Hessian 2 I), + quartic


@pytest.mark.parametrize(
    "kw",
    [
        {"record_iterates": True},
        {"hessian": "none", "max_steps": 0},
        {"hessian": "diagonal", "metric": np.full(3, 2.0, np.float32)},
        {"linear_solver": "cg", "metric": spd(0, 3).astype(np.float32)},
        {
            "hessian": "gauss_newton",
            "model_fn": lambda x: x - 1.0,
            "loss_fn": lambda z: jnp.sum(z**2),
        },
        {"hessian": "fisher", "per_example_fn": lambda x: (x - 1.0) ** 2},
    ],
    ids=[
        "exact_record",
        "none_no_steps",
        "diagonal_diag_metric",
        "cg_dense_metric",
        "gn",
        "fisher",
    ],
)
def test_gnn_valid_edges(kw):
    """Start at the minimum (zero gradient), the repeated-eigenvalue Hessian 2I of a quadratic,
    a quartic, every Hessian kind and solver: finite results with a documented status (the three
    starts vmapped: one compilation per option set)."""

    def run(x0, c):
        return GNN(lambda x: jnp.sum((x - 1.0) ** 2) + c * 0.1 * jnp.sum(x**4), x0, **kw)

    res = jax.jit(jax.vmap(run))(_GNN_EDGE_X0, _GNN_EDGE_C)
    assert leaves_finite(res)
    assert set(np.asarray(res.status).tolist()) <= set(
        O._gradient_normalized_newton.STATUS_MESSAGES
    )
    if kw.get("max_steps") != 0:
        assert np.all(np.asarray(res.converged)), np.asarray(res.status)


def test_gnn_one_variable_and_messages():
    """One variable converges; every status code has a message."""
    one = GNN(lambda x: (x[0] - 2.0) ** 2, np.zeros(1, np.float32))
    assert bool(one.converged) and leaves_finite(one) and one.message
    for code, text in O._gradient_normalized_newton.STATUS_MESSAGES.items():
        assert one._replace(status=np.int32(code)).message == text
