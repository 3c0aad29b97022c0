"""Fuzz suite for geomjax.spdnet: bad shapes, dtypes and options raise named errors at trace time;
non-finite and off-manifold input gives the status or the value each docstring states; valid edge
input (coincident points, identity, n = 1, constant signals) is finite, gradients included.

Shapes are fixed per test (float32, n = 3, a batch of 4) so that hypothesis varies values and
positions without recompiling.
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
    indefinite,
    leaves_finite,
    no_silent_nan,
    poison,
    small_shapes,
    spd,
    wrong_shape,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from geomjax.manifolds import (
    SPDAffineInvariant,
    SPDLogCholesky,
    SPDLogEuclidean,
    Sphere,
)
from geomjax.spdnet import (
    MDMState,
    RBNState,
    augmented_covariance,
    batch_frechet_stats,
    bimap,
    covariance,
    delay_embedding,
    ledoit_wolf_shrinkage,
    logeig,
    mdm_distances,
    mdm_fit,
    mdm_predict,
    rbn_init,
    reeig,
    riemannian_batch_norm,
    tangent_space,
    untangent_space,
)

COVERED = {
    "geomjax.spdnet": {
        "augmented_covariance",
        "batch_frechet_stats",
        "bimap",
        "covariance",
        "delay_embedding",
        "ledoit_wolf_shrinkage",
        "logeig",
        "mdm_distances",
        "mdm_fit",
        "mdm_predict",
        "rbn_init",
        "reeig",
        "riemannian_batch_norm",
        "tangent_space",
        "untangent_space",
    }
}
EXEMPT = {
    "geomjax.spdnet": {
        "MDMState": "a result type, no input (mdm_fit returns it; mdm_distances/mdm_predict "
        "validate it and are fuzzed with malformed states)",
        "RBNState": "a state type, no input (rbn_init builds it; riemannian_batch_norm validates "
        "it and is fuzzed with malformed states)",
    }
}

N = 3
K = 4  # matrices in a batch / training set
F32 = np.float32
AIM = SPDAffineInvariant(N)
METRICS = {"aim": AIM, "le": SPDLogEuclidean(N), "lc": SPDLogCholesky(N)}
LABELS = np.array([0, 0, 1, 1], np.int32)
BAD_METRICS = (None, "riemann", Sphere(2), SPDAffineInvariant(N + 1))


def _batch(seed: int, k: int = K) -> np.ndarray:
    return np.stack([spd(seed + i, N, cond=5.0) for i in range(k)]).astype(F32)


def _signal(seed: int, channels: int = N, times: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, times)).astype(F32)


def _no_finite_entry(a) -> bool:
    return not np.any(np.isfinite(np.asarray(a)))


def _not_a_square_matrix(shape) -> bool:
    return len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0


NOT_ONE_MATRIX = small_shapes(0, 3).filter(_not_a_square_matrix)
NOT_A_SIGNAL = small_shapes(0, 3).filter(lambda s: len(s) != 2 or 0 in s)


# -- structural: shapes, dtypes, options -------------------------------------------------------


@given(shape=NOT_ONE_MATRIX)
def test_bimap_bad_x_shape_is_named(shape):
    expect_named_error(bimap, np.zeros(shape, F32), np.eye(N, 2, dtype=F32), name="x")


@given(shape=wrong_shape((N, 2)).filter(lambda s: len(s) != 2 or not 1 <= s[1] <= s[0] == N))
def test_bimap_bad_w_shape_is_named(shape):
    expect_named_error(bimap, np.eye(N, dtype=F32), np.zeros(shape, F32), name="w")


@given(which=st.sampled_from(["x", "w"]), dtype=st.sampled_from(BAD_DTYPES))
def test_bimap_bad_dtype_is_named(which, dtype):
    args = {"x": jnp.eye(N), "w": jnp.eye(N, 2)}
    args[which] = args[which].astype(dtype)
    expect_named_error(bimap, args["x"], args["w"], name=which)


@pytest.mark.parametrize("fn", [reeig, logeig], ids=["reeig", "logeig"])
@given(shape=small_shapes(0, 4).filter(lambda s: len(s) < 2 or s[-1] != s[-2] or s[-1] == 0))
def test_layer_bad_x_shape_is_named(fn, shape):
    expect_named_error(fn, np.zeros(shape, F32), name="x")


@pytest.mark.parametrize("fn", [reeig, logeig], ids=["reeig", "logeig"])
@given(dtype=st.sampled_from(BAD_DTYPES))
def test_layer_bad_dtype_is_named(fn, dtype):
    err = expect_named_error(fn, jnp.eye(N, dtype=dtype), name="x")
    assert str(err).startswith(fn.__name__), "the error names another function"


@given(eps=st.sampled_from([0.0, -1e-3, float("nan"), float("inf"), "1e-4", True, None, 1j]))
def test_reeig_bad_eps_is_named(eps):
    expect_named_error(reeig, jnp.eye(N), eps, name="eps", jit=False)


@given(vectorize=st.sampled_from(["yes", 1, 0, None, jnp.asarray(True)]))
def test_logeig_non_bool_vectorize_is_named(vectorize):
    expect_named_error(logeig, jnp.eye(N), vectorize=vectorize, name="vectorize", jit=False)


SIGNAL_FNS = {
    "covariance": covariance,
    "ledoit_wolf_shrinkage": ledoit_wolf_shrinkage,
    "delay_embedding": lambda x: delay_embedding(x, order=1, lag=1),
    "augmented_covariance": lambda x: augmented_covariance(x, order=2, lag=1),
}


@pytest.mark.parametrize("name", sorted(SIGNAL_FNS))
@given(shape=NOT_A_SIGNAL)
def test_signal_bad_shape_is_named(name, shape):
    expect_named_error(SIGNAL_FNS[name], np.zeros(shape, F32), name="x")


@pytest.mark.parametrize("name", sorted(SIGNAL_FNS))
@given(dtype=st.sampled_from(BAD_DTYPES))
def test_signal_bad_dtype_is_named(name, dtype):
    expect_named_error(SIGNAL_FNS[name], jnp.ones((N, 12), dtype), name="x")


@pytest.mark.parametrize("fn", [covariance, augmented_covariance], ids=["cov", "aug"])
@given(
    shrinkage=UNKNOWN_OPTIONS
    | st.sampled_from([-0.1, 1.5, float("nan"), True, 0.5j, [0.5], jnp.ones(2), jnp.asarray(1)])
)
def test_bad_shrinkage_is_named(fn, shrinkage):
    kw = {"order": 2, "lag": 1} if fn is augmented_covariance else {}
    expect_named_error(fn, _signal(0), shrinkage=shrinkage, name="shrinkage", jit=False, **kw)


@pytest.mark.parametrize("name", ["covariance", "ledoit_wolf_shrinkage", "augmented_covariance"])
@given(assume_centered=st.sampled_from(["no", 0, 1, None]))
def test_non_bool_assume_centered_is_named(name, assume_centered):
    fn = {"covariance": covariance, "ledoit_wolf_shrinkage": ledoit_wolf_shrinkage}.get(
        name, lambda x, **kw: augmented_covariance(x, order=2, lag=1, **kw)
    )
    expect_named_error(
        fn, _signal(0), assume_centered=assume_centered, name="assume_centered", jit=False
    )


@pytest.mark.parametrize("fn", [delay_embedding, augmented_covariance], ids=["delay", "aug"])
@given(
    which=st.sampled_from(["order", "lag"]),
    bad=st.sampled_from([0, -1, 2.0, True, "2", None, 100]),
)
def test_bad_order_or_lag_is_named(fn, which, bad):
    kw = {"order": 2, "lag": 1}
    kw[which] = bad
    # 100 is a valid int but leaves no sample: that error names `x` (too short for order, lag).
    name = "x" if bad == 100 and not isinstance(bad, bool) else which
    expect_named_error(fn, _signal(0), name=name, jit=False, **kw)


@given(
    n=st.sampled_from([0, -1, 2.5, True, "3", None]),
    dtype=st.sampled_from([jnp.float32, jnp.int32, jnp.bool_, jnp.complex64, "bogus", "f4x"]),
)
def test_rbn_init_bad_arguments_are_named(n, dtype):
    if n is True or not isinstance(n, int) or n < 1:
        expect_named_error(rbn_init, n, jnp.float32, name="n", jit=False)
    if dtype is not jnp.float32:
        expect_named_error(rbn_init, N, dtype, name="dtype", jit=False)


@given(
    shape=(wrong_shape((K, N, N)) | small_shapes(0, 4)).filter(
        lambda s: len(s) != 3 or s[0] < 1 or s[1:] != (N, N)
    )
)
def test_batch_stats_bad_x_shape_is_named(shape):
    for fn in (batch_frechet_stats, _rbn_train):
        expect_named_error(fn, np.ones(shape, F32), AIM, name="x", jit=False)


@given(dtype=st.sampled_from(BAD_DTYPES))
def test_batch_stats_bad_dtype_is_named(dtype):
    for fn in (batch_frechet_stats, _rbn_train):
        expect_named_error(fn, jnp.stack([jnp.eye(N)] * K).astype(dtype), AIM, name="x", jit=False)


@given(metric=st.sampled_from(BAD_METRICS))
def test_batch_stats_bad_metric_is_named(metric):
    # A metric of another size names `x` (the batch does not match it); anything else `metric`.
    name = "x" if isinstance(metric, SPDAffineInvariant) else "metric"
    for fn in (batch_frechet_stats, _rbn_train):
        expect_named_error(fn, _batch(0), metric, name=name, jit=False)


@given(
    which=st.sampled_from(["mean_iter", "tol"]),
    bad=st.sampled_from([0, -1, 2.5, True, "3", float("nan")]),
)
def test_batch_stats_bad_iteration_options_are_named(which, bad):
    if which == "tol" and bad in (0, 2.5):
        bad = -1.0  # 0 and 2.5 are valid tolerances
    for fn in (batch_frechet_stats, _rbn_train):
        expect_named_error(fn, _batch(0), AIM, name=which, jit=False, **{which: bad})


def _rbn_train(x, metric, **kw):
    return riemannian_batch_norm(x, rbn_init(N), metric, training=True, **kw)


def _bad_states():
    eye = jnp.eye(N)
    return [
        (1.0, 2.0),
        {"running_mean": eye, "running_var": jnp.ones(())},
        RBNState(eye[:2, :2], jnp.ones(())),
        RBNState(eye, jnp.ones(2)),
        RBNState(eye.astype(jnp.int32), jnp.ones(())),
        RBNState(eye, jnp.ones((), jnp.int32)),
        RBNState(eye.astype(jnp.complex64), jnp.ones(())),
        None,
    ]


@given(state=st.sampled_from(_bad_states()), training=st.booleans())
def test_rbn_bad_state_is_named(state, training):
    expect_named_error(
        riemannian_batch_norm, _batch(0), state, AIM, training=training, name="state", jit=False
    )


@given(
    arg=st.sampled_from(["bias", "scale", "training", "momentum", "eps"]),
    data=st.data(),
)
def test_rbn_bad_options_are_named(arg, data):
    bad = {
        "bias": [jnp.eye(2), jnp.eye(N)[None], jnp.eye(N, dtype=jnp.int32), jnp.ones(N)],
        "scale": [jnp.ones(N), jnp.ones((N, N)), 0.5j, True, jnp.asarray(True), "1"],
        "training": ["yes", 1, None, jnp.asarray(True)],
        "momentum": [-0.1, 1.5, float("nan"), True, "0.1", None],
        "eps": [-1e-5, float("nan"), True, "0", None],
    }[arg]
    kw = {"training": True, arg: data.draw(st.sampled_from(bad))}
    expect_named_error(
        riemannian_batch_norm, _batch(0), rbn_init(N), AIM, name=arg, jit=False, **kw
    )


def _fit2(x, labels, sample_weight):
    return mdm_fit(x, labels, 2, sample_weight=sample_weight)


def _bad_stack(shape) -> bool:
    return len(shape) != 3 or shape[0] < 1 or shape[1] != shape[2] or shape[1] < 1


@given(shape=(wrong_shape((K, N, N)) | small_shapes(0, 4)).filter(_bad_stack))
def test_mdm_bad_x_shape_is_named(shape):
    x = np.ones(shape, F32)
    labels = np.zeros(shape[:1] if shape else (1,), np.int32)
    expect_named_error(mdm_fit, x, labels, 2, name="x", jit=False)
    for fn in (mdm_distances, mdm_predict):
        expect_named_error(fn, _fitted_state(), x, name="x")


@given(m=st.sampled_from([1, 2, N + 1]))
def test_mdm_matrices_of_another_size_are_named(m):
    x = np.stack([np.eye(m, dtype=F32)] * K)
    for fn in (mdm_distances, mdm_predict):
        expect_named_error(fn, _fitted_state(), x, name="state.means")


@given(
    arg=st.sampled_from(["x", "labels", "sample_weight"]),
    dtype=st.sampled_from((*BAD_DTYPES, jnp.float32)),
)
def test_mdm_fit_bad_dtype_is_named(arg, dtype):
    args = {"x": _batch(0), "labels": LABELS, "sample_weight": np.ones(K, F32)}
    if arg == "labels" and dtype == jnp.int32:
        dtype = jnp.float32  # int labels are right; float ones are not
    if arg != "labels" and dtype == jnp.float32:
        dtype = jnp.int32
    args[arg] = jnp.asarray(args[arg]).astype(dtype)
    expect_named_error(_fit2, args["x"], args["labels"], args["sample_weight"], name=arg)


@given(
    arg=st.sampled_from(["labels", "sample_weight"]),
    shape=st.sampled_from([(), (K - 1,), (K + 1,), (K, 1), (0,)]),
)
def test_mdm_fit_mismatched_sizes_are_named(arg, shape):
    args = {"labels": LABELS, "sample_weight": np.ones(K, F32)}
    args[arg] = np.zeros(shape, args[arg].dtype)
    expect_named_error(_fit2, _batch(0), args["labels"], args["sample_weight"], name=arg)


@given(
    arg=st.sampled_from(["n_classes", "metric", "max_iter", "tol"]),
    bad=st.sampled_from([0, -1, 2.5, True, "2", None]),
)
def test_mdm_fit_bad_options_are_named(arg, bad):
    if arg == "tol" and bad in (0, 2.5, None):
        bad = -1.0  # valid tolerances
    if arg == "max_iter" and bad is None:
        bad = 0
    kw = {"n_classes": 2}
    kw[arg] = bad
    if arg == "metric" and bad in (0, True):
        kw["metric"] = Sphere(2)
    if arg == "metric" and bad is None:
        kw["metric"] = SPDAffineInvariant(N + 1)
    n_classes = kw.pop("n_classes")
    expect_named_error(mdm_fit, _batch(0), LABELS, n_classes, name=arg, jit=False, **kw)


_STATE_CACHE: list[MDMState] = []


def _fitted_state() -> MDMState:
    if not _STATE_CACHE:
        _STATE_CACHE.append(_MDM_FIT["aim"](_batch(0), np.ones(K, F32)))
    return _STATE_CACHE[0]


@given(
    which=st.sampled_from(["state", "state.means", "state.class_weights"]),
    data=st.data(),
)
def test_mdm_bad_state_is_named(which, data):
    state = _fitted_state()
    bad = {
        "state": [(state.means, state.class_weights), None, state._asdict()],
        "state.means": [
            state.means[0],
            state.means[:, :2, :2],
            state.means[:0],
            state.means.astype(jnp.int32),
            state.means.astype(jnp.complex64),
        ],
        "state.class_weights": [
            jnp.ones(3),
            jnp.ones(()),
            jnp.ones((2, 1)),
            jnp.ones(2, jnp.int32),
        ],
    }[which]
    value = data.draw(st.sampled_from(bad))
    if which == "state.means":
        value = state._replace(means=value)
    elif which == "state.class_weights":
        value = state._replace(class_weights=value)
    for fn in (mdm_distances, mdm_predict):
        expect_named_error(fn, value, _batch(1), name=which, jit=False)


@given(metric=st.sampled_from(BAD_METRICS[1:]))
def test_mdm_distances_bad_metric_is_named(metric):
    for fn in (mdm_distances, mdm_predict):
        expect_named_error(fn, _fitted_state(), _batch(1), metric=metric, name="metric", jit=False)


@given(
    arg=st.sampled_from(["x", "reference"]),
    shape=wrong_shape((N, N)),
)
def test_tangent_space_bad_shapes_are_named(arg, shape):
    args = {"x": np.eye(N, dtype=F32), "reference": np.eye(N, dtype=F32)}
    args[arg] = np.ones(shape, F32)
    # A reference of another (valid) size makes `x` the odd one out.
    name = "x" if arg == "reference" and not _not_a_square_matrix(shape) else arg
    expect_named_error(tangent_space, args["x"], args["reference"], name=name)


@given(
    arg=st.sampled_from(["v", "reference"]),
    shape=wrong_shape((N * (N + 1) // 2,)) | NOT_ONE_MATRIX,
)
def test_untangent_space_bad_shapes_are_named(arg, shape):
    args = {"v": np.zeros(N * (N + 1) // 2, F32), "reference": np.eye(N, dtype=F32)}
    args[arg] = np.ones(shape, F32)
    name = "v" if arg == "reference" and not _not_a_square_matrix(shape) else arg
    expect_named_error(untangent_space, args["v"], args["reference"], name=name)


@given(
    fn=st.sampled_from(["tangent_space", "untangent_space"]),
    arg=st.sampled_from(["first", "reference"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_tangent_space_bad_dtype_is_named(fn, arg, dtype):
    first = jnp.eye(N) if fn == "tangent_space" else jnp.zeros(N * (N + 1) // 2)
    ref = jnp.eye(N)
    if arg == "first":
        first = first.astype(dtype)
    else:
        ref = ref.astype(dtype)
    call = tangent_space if fn == "tangent_space" else untangent_space
    name = arg if arg == "reference" else ("x" if fn == "tangent_space" else "v")
    expect_named_error(call, first, ref, name=name)


@given(metric=st.sampled_from(BAD_METRICS[1:]))
def test_tangent_space_bad_metric_is_named(metric):
    v = jnp.zeros(N * (N + 1) // 2)
    expect_named_error(
        tangent_space, jnp.eye(N), jnp.eye(N), metric=metric, name="metric", jit=False
    )
    expect_named_error(untangent_space, v, jnp.eye(N), metric=metric, name="metric", jit=False)


# -- value-bad input: the documented outcome ---------------------------------------------------

_bimap = jax.jit(bimap)
_reeig = jax.jit(reeig, static_argnames="eps")
_logeig = jax.jit(logeig, static_argnames="vectorize")
_cov = jax.jit(covariance, static_argnames="shrinkage")
_lw = jax.jit(ledoit_wolf_shrinkage)
_aug = jax.jit(augmented_covariance, static_argnames=("order", "lag", "shrinkage"))
_bfs = {k: jax.jit(lambda x, m=m: batch_frechet_stats(x, m)) for k, m in METRICS.items()}
_rbn = jax.jit(
    lambda x, state, bias, *, training, eps=1e-5: riemannian_batch_norm(
        x, state, AIM, bias=bias, training=training, eps=eps
    ),
    static_argnames=("training", "eps"),
)
_MDM_FIT = {
    k: jax.jit(lambda x, w, m=m: mdm_fit(x, LABELS, 2, metric=m, sample_weight=w))
    for k, m in METRICS.items()
}
_mdm_dist = jax.jit(mdm_distances)
_mdm_pred = jax.jit(mdm_predict)
_ts = {k: jax.jit(lambda x, c, m=m: tangent_space(x, c, metric=m)) for k, m in METRICS.items()}
_uts = {k: jax.jit(lambda v, c, m=m: untangent_space(v, c, metric=m)) for k, m in METRICS.items()}


@given(
    which=st.sampled_from(["x", "w"]),
    kind=POISONS,
    index=st.integers(0, N * N - 1),
    seed=st.integers(0, 20),
)
def test_bimap_value_domain(which, kind, index, seed):
    """Finite x and any finite w (orthonormal or not) give a finite symmetric result; a NaN/inf
    entry gives non-finite entries."""
    x = spd(seed, N).astype(F32)
    w = np.random.default_rng(seed).standard_normal((N, 2)).astype(F32)  # not orthonormal
    y = np.asarray(_bimap(x, w))
    assert leaves_finite(y) and np.array_equal(y, y.T)
    args = {"x": x, "w": w}
    args[which] = poison(args[which], kind, index)
    with jax.debug_nans(False):
        assert not leaves_finite(np.asarray(_bimap(args["x"], args["w"])))


@given(kind=POISONS, index=st.integers(0, N * N - 1), seed=st.integers(0, 50))
def test_reeig_value_domain(kind, index, seed):
    """Any symmetric input (indefinite included) gives a finite SPD result with eigenvalues at
    least eps; a NaN/inf entry gives an all-NaN matrix."""
    x = indefinite(seed, N).astype(F32)
    y = np.asarray(_reeig(x, 1e-4), np.float64)
    assert leaves_finite(y)
    # eigh's absolute error is about eps * |x| (|x| <= 10 here).
    assert np.linalg.eigvalsh(y).min() >= 1e-4 - 20 * np.finfo(F32).eps * N * 10
    with jax.debug_nans(False):
        assert np.all(np.isnan(np.asarray(_reeig(poison(x, kind, index), 1e-4))))


@given(
    vectorize=st.booleans(),
    bad=st.sampled_from(["indefinite", "singular", "nan", "inf", "-inf"]),
    seed=st.integers(0, 50),
)
def test_logeig_value_domain(vectorize, bad, seed):
    if bad == "indefinite":
        x = indefinite(seed, N)
    elif bad == "singular":
        x = np.zeros((N, N))
    else:
        x = poison(spd(seed, N), bad, seed)
    with jax.debug_nans(False):
        assert _no_finite_entry(_logeig(x.astype(F32), vectorize=vectorize))


@given(
    kind=POISONS,
    index=st.integers(0, 3 * 12 - 1),
    shrinkage=st.sampled_from([None, "ledoit_wolf"]),
)
def test_covariance_value_domain(kind, index, shrinkage):
    x = poison(_signal(index), kind, index)
    with jax.debug_nans(False):
        c = np.asarray(_cov(x, shrinkage=shrinkage))
        s = np.asarray(_lw(x))
        a = np.asarray(_aug(x, order=2, lag=1, shrinkage=shrinkage))
    assert not leaves_finite(c) and not leaves_finite(a)
    if shrinkage == "ledoit_wolf":
        assert _no_finite_entry(c) and _no_finite_entry(a)
    assert np.isnan(s)


@given(s=st.floats(-2.0, 3.0, allow_nan=False))
def test_covariance_array_shrinkage_extrapolates(s):
    """An array shrinkage is not range-checked: outside [0, 1] the same formula applies."""
    x = _signal(0)
    emp = np.asarray(_cov(x, shrinkage=None), np.float64)
    want = (1 - s) * emp + s * np.trace(emp) / N * np.eye(N)
    got = jax.jit(lambda x, s: covariance(x, shrinkage=s))(x, jnp.asarray(s, jnp.float32))
    np.testing.assert_allclose(got, want, atol=10 * np.finfo(F32).eps * N * np.abs(want).max())


@pytest.mark.parametrize("metric", sorted(METRICS))
@given(
    bad=st.sampled_from(["nan", "inf", "-inf", "indefinite"]),
    which=st.integers(0, K - 1),
    seed=st.integers(0, 20),
)
def test_batch_frechet_stats_reports_bad_input(metric, bad, which, seed):
    x = _batch(seed)
    x[which] = indefinite(seed, N) if bad == "indefinite" else poison(x[which], bad, seed)
    with jax.debug_nans(False):
        mean, var, res = _bfs[metric](x)
        out = jax.tree.map(np.asarray, (mean, var, res))
    assert not bool(out[2].converged)
    no_silent_nan(out, status_ok=lambda o: bool(o[2].converged))


@given(
    bad=st.sampled_from(["nan", "inf", "-inf", "indefinite"]),
    which=st.integers(0, K - 1),
    seed=st.integers(0, 20),
)
def test_rbn_bad_matrix_poisons_as_documented(bad, which, seed):
    x = _batch(seed)
    x[which] = indefinite(seed, N) if bad == "indefinite" else poison(x[which], bad, seed)
    state, bias = rbn_init(N), jnp.eye(N)
    with jax.debug_nans(False):
        y_eval, _ = jax.tree.map(np.asarray, _rbn(x, state, bias, training=False))
        y_train, new = jax.tree.map(np.asarray, _rbn(x, state, bias, training=True))
    # Evaluation: a non-finite matrix poisons only its own output (an indefinite one gives an
    # unspecified output: the logarithm floors its eigenvalues); training: every output and the
    # running variance.
    if bad != "indefinite":
        assert not leaves_finite(y_eval[which])
    assert leaves_finite(np.delete(y_eval, which, axis=0))
    assert np.all(np.isnan(y_train)) and np.isnan(new.running_var)


@given(bad=st.sampled_from(["bias", "running_mean", "running_var"]), seed=st.integers(0, 20))
def test_rbn_bad_bias_or_state_gives_nan(bad, seed):
    x, bias, state = _batch(seed), jnp.eye(N), rbn_init(N)
    if bad == "bias":
        bias = jnp.asarray(indefinite(seed, N), jnp.float32)
    elif bad == "running_mean":
        state = state._replace(running_mean=jnp.asarray(indefinite(seed, N), jnp.float32))
    else:
        state = state._replace(running_var=-jnp.ones(()))
    with jax.debug_nans(False):
        y, _ = jax.tree.map(np.asarray, _rbn(x, state, bias, training=False))
    assert not leaves_finite(y)


def test_rbn_zero_dispersion_with_eps_zero_is_nan():
    x = np.stack([spd(0, N)] * K).astype(F32)
    with jax.debug_nans(False):
        y, _ = jax.tree.map(np.asarray, _rbn(x, rbn_init(N), jnp.eye(N), training=True, eps=0.0))
    assert np.all(np.isnan(y))


def _check_mdm_state(state: MDMState) -> None:
    """The status contract of MDMState: a converged class has a finite mean."""
    means, conv = np.asarray(state.means), np.asarray(state.converged)
    for c in range(means.shape[0]):
        if conv[c]:
            assert leaves_finite(means[c]), f"class {c}: converged=True with a non-finite mean"


@pytest.mark.parametrize("metric", sorted(METRICS))
@given(
    bad=st.sampled_from(["nan", "inf", "-inf", "indefinite"]),
    which=st.integers(0, K - 1),
    seed=st.integers(0, 20),
)
def test_mdm_fit_bad_matrix_is_not_converged(metric, bad, which, seed):
    x = _batch(seed)
    x[which] = indefinite(seed, N) if bad == "indefinite" else poison(x[which], bad, seed)
    with jax.debug_nans(False):
        state = jax.tree.map(np.asarray, _MDM_FIT[metric](x, np.ones(K, F32)))
    _check_mdm_state(state)
    assert not state.converged[LABELS[which]]


@given(
    weights=st.lists(
        st.sampled_from([1.0, 0.5, 0.0, -0.5, -3.0, float("nan"), float("inf")]),
        min_size=K,
        max_size=K,
    ),
    seed=st.integers(0, 20),
)
@settings(max_examples=8)  # three compiled fits (one per metric) run each example
def test_mdm_fit_bad_weights_keep_the_status_honest(weights, seed):
    w = np.asarray(weights, F32)
    for metric in METRICS:
        with jax.debug_nans(False):
            state = jax.tree.map(np.asarray, _MDM_FIT[metric](_batch(seed), w))
        _check_mdm_state(state)
        totals = np.array([w[:2].sum(), w[2:].sum()])
        for c in range(2):
            if not totals[c] > 0 or not np.all(np.isfinite(w[2 * c : 2 * c + 2])):
                # An empty class or NaN/inf weights: never converged.
                assert not state.converged[c], (metric, c, w)


@given(
    bad=st.sampled_from(["nan", "inf", "-inf", "indefinite"]),
    which=st.integers(0, K - 1),
    seed=st.integers(0, 20),
)
def test_mdm_predict_bad_matrix_gets_label_minus_one(bad, which, seed):
    state = _fitted_state()
    x = _batch(seed + 10)
    x[which] = indefinite(seed, N) if bad == "indefinite" else poison(x[which], bad, seed)
    with jax.debug_nans(False):
        d = np.asarray(_mdm_dist(state, x))
        labels = np.asarray(_mdm_pred(state, x))
    assert np.all(np.isnan(d[which])) and leaves_finite(np.delete(d, which, axis=0))
    assert labels[which] == -1
    assert np.all(np.delete(labels, which) >= 0)


@given(seed=st.integers(0, 20), nan_class=st.integers(0, 1))
def test_mdm_predict_never_picks_a_nan_class(seed, nan_class):
    state = _fitted_state()
    means = np.array(state.means)
    means[nan_class] = np.nan
    with jax.debug_nans(False):
        state = state._replace(means=jnp.asarray(means))
        labels = np.asarray(_mdm_pred(state, _batch(seed)))
    assert np.all(labels == 1 - nan_class)


def test_mdm_predict_without_classes_is_minus_one():
    state = _fitted_state()
    state = state._replace(class_weights=jnp.zeros(2))
    assert np.all(np.asarray(_mdm_pred(state, _batch(3))) == -1)


@pytest.mark.parametrize("metric", sorted(METRICS))
@given(
    arg=st.sampled_from(["x", "reference"]),
    bad=st.sampled_from(["nan", "inf", "-inf", "indefinite"]),
    seed=st.integers(0, 20),
)
def test_tangent_space_bad_input_is_not_finite(metric, arg, bad, seed):
    args = {"x": spd(seed, N).astype(F32), "reference": spd(seed + 1, N).astype(F32)}
    args[arg] = (
        indefinite(seed, N).astype(F32) if bad == "indefinite" else poison(args[arg], bad, seed)
    )
    with jax.debug_nans(False):
        assert not leaves_finite(np.asarray(_ts[metric](args["x"], args["reference"])))


@pytest.mark.parametrize("metric", sorted(METRICS))
@given(
    bad=st.sampled_from(["nan", "inf", "-inf", "indefinite_reference"]),
    index=st.integers(0, 5),
    seed=st.integers(0, 20),
)
def test_untangent_space_bad_input_is_not_finite(metric, bad, index, seed):
    v = np.random.default_rng(seed).standard_normal(N * (N + 1) // 2).astype(F32)
    ref = spd(seed, N).astype(F32)
    if bad == "indefinite_reference":
        ref = indefinite(seed, N).astype(F32)
    else:
        v = poison(v, bad, index)
    with jax.debug_nans(False):
        assert _not_spd(_uts[metric](v, ref))


def _not_spd(a) -> bool:
    """Not finite, or not positive definite (a -inf log-diagonal coordinate of log-Cholesky
    gives a finite singular matrix)."""
    a = np.asarray(a, np.float64)
    return not leaves_finite(a) or np.linalg.eigvalsh(a).min() <= 0.0


def test_untangent_space_overflow_is_not_finite():
    v = np.zeros(N * (N + 1) // 2, F32)
    v[0] = 1.1 * np.log(np.finfo(F32).max)
    with jax.debug_nans(False):
        assert not leaves_finite(np.asarray(_uts["aim"](v, np.eye(N, dtype=F32))))


# -- valid edge input: finite values and gradients ---------------------------------------------


_bimap_grad = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(bimap(x, w)))))
_reeig_grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(reeig(x, 1e-4)))))


def test_layers_edge_input_is_finite_with_finite_gradient():
    """Identity, zero and repeated-eigenvalue matrices, n = 1 and n = 3 (logeig's derivatives at
    the identity are checked in tests/spdnet/test_layers.py)."""
    for n in (1, N):
        eye, zero = np.eye(n, dtype=F32), np.zeros((n, n), F32)
        rep = 2.0 * eye  # all eigenvalues equal
        for x in (eye, zero, rep):
            assert leaves_finite(_bimap(x, eye[:, :1])) and leaves_finite(
                _bimap_grad(x, eye[:, :1])
            )
            assert leaves_finite(_reeig(x, 1e-4)) and leaves_finite(_reeig_grad(x))
        for x in (eye, rep):
            assert leaves_finite(_logeig(x, vectorize=True))


@pytest.mark.parametrize("shrinkage", [None, "ledoit_wolf", 0.3])
def test_covariance_edge_input_is_finite_with_finite_gradient(shrinkage):
    """A constant signal, a zero signal, a single sample, a single channel."""

    def value_and_grads(x):
        cov = covariance(x, shrinkage=shrinkage)
        g_cov = jax.grad(lambda x: jnp.sum(jnp.sin(covariance(x, shrinkage=shrinkage))))(x)
        return cov, g_cov, ledoit_wolf_shrinkage(x), jax.grad(ledoit_wolf_shrinkage)(x)

    fn = jax.jit(value_and_grads)
    for x in (np.ones((N, 12), F32), np.zeros((N, 12), F32), np.ones((N, 1), F32)):
        assert leaves_finite(fn(x))
    assert leaves_finite(fn(_signal(0, channels=1)))
    assert leaves_finite(_aug(np.ones((N, 3), F32), order=3, lag=1, shrinkage=shrinkage))


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_coincident_batch_is_finite(metric):
    x = np.stack([spd(0, N)] * K).astype(F32)
    mean, var, res = _bfs[metric](x)
    assert bool(res.converged) and leaves_finite((mean, var, res))
    np.testing.assert_allclose(var, 0.0, atol=100 * np.finfo(F32).eps * N)
    if metric == "aim":
        assert leaves_finite(_rbn(x, rbn_init(N), jnp.eye(N), training=True))


@pytest.mark.slow
@pytest.mark.parametrize("metric", sorted(METRICS))
def test_coincident_batch_gradients_are_finite(metric):
    x = np.stack([spd(0, N)] * K).astype(F32)

    def loss(x):
        y, _ = riemannian_batch_norm(x, rbn_init(N), METRICS[metric], training=True)
        return jnp.sum(jnp.sin(y)) + jnp.sum(mdm_fit(x, LABELS, 2, metric=METRICS[metric]).means)

    assert leaves_finite(jax.jit(jax.grad(loss))(x))


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_mdm_edge_input_is_finite(metric):
    """Coincident training points, an empty class, and prediction at a class mean."""
    x = np.stack([spd(0, N)] * K).astype(F32)
    state = _MDM_FIT[metric](x, np.ones(K, F32))
    assert leaves_finite(state) and bool(np.all(state.converged))
    assert leaves_finite(_mdm_dist(state, x)) and np.all(np.asarray(_mdm_pred(state, x)) >= 0)
    empty = _MDM_FIT[metric](_batch(0), np.array([1.0, 1.0, 0.0, 0.0], F32))
    assert list(np.asarray(empty.converged)) == [True, False]
    d = np.asarray(_mdm_dist(empty, _batch(1)))
    assert np.all(np.isinf(d[:, 1])) and leaves_finite(d[:, 0])
    assert np.all(np.asarray(_mdm_pred(empty, _batch(1))) == 0)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_tangent_space_edge_input_is_finite(metric):
    """x = reference gives 0 and v = 0 gives the reference (their derivatives there are checked
    in tests/spdnet/test_tangent_space.py); the identity reference."""
    c = spd(0, N).astype(F32)
    v = np.asarray(_ts[metric](c, c))
    np.testing.assert_allclose(v, 0.0, atol=100 * np.finfo(F32).eps * N)  # |log(I + O(eps))|
    back = np.asarray(_uts[metric](np.zeros_like(v), c))
    # exp_C(0) = C up to rounding of about eps * cond(C) |C| (cond(C) = 10 here).
    np.testing.assert_allclose(back, c, atol=100 * np.finfo(F32).eps * N * np.abs(c).max())
    eye = np.eye(N, dtype=F32)
    assert leaves_finite(_ts[metric](eye, eye)) and leaves_finite(_uts[metric](v, eye))


def test_tangent_space_of_one_by_one_matrices_is_finite():
    one, m1 = np.ones((1, 1), F32), SPDAffineInvariant(1)
    assert leaves_finite(tangent_space(one, one, metric=m1))
    assert leaves_finite(untangent_space(np.zeros(1, F32), one, metric=m1))
