"""Fuzz suite for ``geomjax.ot``: every public name against bad and edge input.

The contract is in ``_fuzz.py``: structural bad input (shapes, ranks, empty arrays, integer,
boolean and complex dtypes, unknown options, bad keys) raises ``ValueError`` / ``TypeError`` at
trace time naming the argument; value-bad input (NaN / inf entries, bad traced weights,
indefinite or non-symmetric covariances, off-manifold points, invalid traced parameters) gives
what the docstring's "Input domain" note says (a non-finite result, ``converged=False``, or a
finite value); valid edge input (coincident clouds, one point, one dimension, zero weights,
zero or identity covariances) is finite, gradients included.

Shapes are fixed per function so that each jitted wrapper compiles once; structural checks
fail before anything is compiled.
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
    spd,
    wrong_shape,
)
from hypothesis import given
from hypothesis import strategies as st

from geomjax import ot
from geomjax.manifolds import Sphere

EXEMPT = {
    "geomjax.ot": {
        "DistributionalSlicedWassersteinResult": "a result type, no input",
        "MaxSlicedResult": "a result type, no input",
        "SinkhornDivergenceOutput": "a result type, no input",
        "SinkhornOutput": "a result type, no input",
        "SlicedCVResult": "a result type, no input",
        "SlicedWassersteinEstimate": "a result type, no input",
    }
}

COVERED = {
    "geomjax.ot": {
        "ManifoldCost",
        "amortized_vmf_location",
        "bures_wasserstein",
        "distributional_sliced_wasserstein",
        "gaussian_fit",
        "gaussian_wasserstein",
        "init_amortized_projection",
        "max_sliced_wasserstein",
        "random_projections",
        "sample_von_mises_fisher",
        "sinkhorn",
        "sinkhorn_divergence",
        "sliced_wasserstein",
        "sliced_wasserstein_cv",
        "sliced_wasserstein_with_error",
        "vmf_sliced_wasserstein",
        "wasserstein_1d",
    }
}

KEY = jax.random.key(0)
N, M, D = 5, 4, 3
X = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
Y = (np.random.default_rng(1).standard_normal((M, D)) + 1.0).astype(np.float32)
LOC = np.array([1.0, 0.0, 0.0], np.float32)
PARAMS = ot.init_amortized_projection(jax.random.key(1), D, 4, 2)

# Every function over two point clouds: (x, y, a, b) -> output, and whether it takes weights.
MEASURE_FNS = {
    "sliced_wasserstein": (
        lambda x, y, a=None, b=None: ot.sliced_wasserstein(KEY, x, y, a, b, n_projections=4),
        True,
    ),
    "sliced_wasserstein_with_error": (
        lambda x, y, a=None, b=None: ot.sliced_wasserstein_with_error(
            KEY, x, y, a, b, n_projections=4
        ),
        True,
    ),
    "sliced_wasserstein_cv": (
        lambda x, y, a=None, b=None: ot.sliced_wasserstein_cv(KEY, x, y, a, b, n_projections=4),
        True,
    ),
    "max_sliced_wasserstein": (
        lambda x, y, a=None, b=None: ot.max_sliced_wasserstein(
            KEY, x, y, a, b, n_iter=3, n_restarts=2
        ),
        True,
    ),
    "vmf_sliced_wasserstein": (
        lambda x, y, a=None, b=None: ot.vmf_sliced_wasserstein(
            KEY, x, y, a, b, location=LOC, kappa=2.0, n_projections=4
        ),
        True,
    ),
    "distributional_sliced_wasserstein": (
        lambda x, y, a=None, b=None: ot.distributional_sliced_wasserstein(
            KEY, x, y, a, b, kappa=2.0, n_projections=4, max_iter=3
        ),
        True,
    ),
    "sinkhorn": (lambda x, y, a=None, b=None: ot.sinkhorn(x, y, a, b, epsilon=0.5), True),
    "sinkhorn_divergence": (
        lambda x, y, a=None, b=None: ot.sinkhorn_divergence(x, y, a, b, epsilon=0.5),
        True,
    ),
    "amortized_vmf_location": (
        lambda x, y, a=None, b=None: ot.amortized_vmf_location(PARAMS, x, y),
        False,
    ),
}
WEIGHTED = sorted(name for name, (_, w) in MEASURE_FNS.items() if w)
KEYED = {
    "sliced_wasserstein": lambda k: ot.sliced_wasserstein(k, X, Y, n_projections=4),
    "sliced_wasserstein_with_error": lambda k: ot.sliced_wasserstein_with_error(
        k, X, Y, n_projections=4
    ),
    "sliced_wasserstein_cv": lambda k: ot.sliced_wasserstein_cv(k, X, Y, n_projections=4),
    "max_sliced_wasserstein": lambda k: ot.max_sliced_wasserstein(k, X, Y, n_iter=2),
    "vmf_sliced_wasserstein": lambda k: ot.vmf_sliced_wasserstein(
        k, X, Y, location=LOC, kappa=2.0, n_projections=4
    ),
    "distributional_sliced_wasserstein": lambda k: ot.distributional_sliced_wasserstein(
        k, X, Y, kappa=2.0, n_projections=4, max_iter=2
    ),
    "random_projections": lambda k: ot.random_projections(k, 4, D),
    "sample_von_mises_fisher": lambda k: ot.sample_von_mises_fisher(k, LOC, 2.0, (3,)),
    "init_amortized_projection": lambda k: ot.init_amortized_projection(k, D, 4),
}
BAD_KEYS = [0, 1.5, "key", None, jax.random.split(KEY, 2), np.zeros(3, np.float32)]


def _bad_cloud_shape(s) -> bool:
    """Not an ``(n, D)`` cloud with ``n >= 1`` (a different ``n`` is a valid cloud)."""
    return len(s) != 2 or s[0] == 0 or s[1] != D


BAD_CLOUD_SHAPES = wrong_shape((N, D)).filter(_bad_cloud_shape)


def _cast(x, dtype):
    x = np.asarray(x)
    if dtype == jnp.bool_:
        return jnp.asarray(x > 0)
    return jnp.asarray(np.round(x) if jnp.issubdtype(dtype, jnp.integer) else x, dtype)


# -- structural: shapes, dtypes, options, keys -------------------------------------------------


@given(
    name=st.sampled_from(sorted(MEASURE_FNS)),
    arg=st.sampled_from(["x", "y"]),
    shape=BAD_CLOUD_SHAPES,
)
def test_point_clouds_of_the_wrong_shape_are_named(name, arg, shape):
    fn = MEASURE_FNS[name][0]
    bad = np.ones(shape, np.float32)
    if arg == "x":
        expect_named_error(lambda x: fn(x, Y), bad, name="x")
    else:
        expect_named_error(lambda y: fn(X, y), bad, name="y")


@given(
    name=st.sampled_from(sorted(MEASURE_FNS)),
    arg=st.sampled_from(["x", "y"]),
    dtype=st.sampled_from(BAD_DTYPES),
)
def test_point_clouds_of_a_bad_dtype_are_named(name, arg, dtype):
    fn = MEASURE_FNS[name][0]
    if arg == "x":
        expect_named_error(lambda x: fn(x, Y), _cast(X, dtype), name="x")
    else:
        expect_named_error(lambda y: fn(X, y), _cast(Y, dtype), name="y")


@given(
    name=st.sampled_from(WEIGHTED),
    arg_bad=st.sampled_from([("a", N), ("b", M)]).flatmap(
        lambda an: st.tuples(
            st.just(an[0]),
            st.one_of(
                wrong_shape((an[1],)).map(lambda s: ("shape", s)), st.sampled_from(BAD_DTYPES)
            ),
        )
    ),
)
def test_weights_of_the_wrong_shape_or_dtype_are_named(name, arg_bad):
    arg, bad = arg_bad
    fn = MEASURE_FNS[name][0]
    n = N if arg == "a" else M
    if isinstance(bad, tuple):
        w = np.full(bad[1], 1.0 / n, np.float32)
    else:
        w = _cast(np.full((n,), 1.0 / n), bad)
    if arg == "a":
        expect_named_error(lambda a: fn(X, Y, a, None), w, name="a")
    else:
        expect_named_error(lambda b: fn(X, Y, None, b), w, name="b")


@given(
    name=st.sampled_from(WEIGHTED + ["gaussian_fit"]),
    kind=st.sampled_from(["negative", "sum", "nan", "inf", "zero"]),
)
def test_concrete_weights_of_bad_values_are_named(name, kind):
    """Concrete (not traced) weights are value-checked eagerly: negative, non-finite, or not
    summing to one (all zero included)."""
    w = np.full((N,), 1.0 / N, np.float32)
    if kind == "negative":
        w[0], w[1] = -0.1, w[1] + 0.1
    elif kind == "sum":
        w *= 2.0
    elif kind == "zero":
        w[:] = 0.0
    else:
        w = poison(w, kind)
    if name == "gaussian_fit":
        expect_named_error(ot.gaussian_fit, X, w, name="a", jit=False)
    else:
        fn = MEASURE_FNS[name][0]
        expect_named_error(lambda a: fn(X, Y, a, None), w, name="a", jit=False)


@given(
    arg=st.sampled_from(["u", "v", "u_weights", "v_weights"]),
    bad=st.one_of(
        st.sampled_from([(), (0,), (2, 3), (4, 1)]).map(lambda s: ("shape", s)),
        st.sampled_from(BAD_DTYPES),
    ),
)
def test_wasserstein_1d_bad_arrays_are_named(arg, bad):
    u, v = X[:, 0], Y[:, 0]
    good = {"u": u, "v": v, "u_weights": np.full(N, 1.0 / N), "v_weights": np.full(M, 1.0 / M)}
    if isinstance(bad, tuple):
        value = np.ones(bad[1], np.float32)
    else:
        value = _cast(good[arg], bad)
    args = dict(good, **{arg: value})
    expect_named_error(lambda t: ot.wasserstein_1d(**dict(args, **{arg: t})), args[arg], name=arg)


BAD_P = [0.5, 0, -1.0, np.nan, np.inf, "2", True, None, 2j, np.array([2.0, 2.0])]


P_FNS = [
    "wasserstein_1d",
    "sliced_wasserstein",
    "sliced_wasserstein_with_error",
    "sliced_wasserstein_cv",
    "max_sliced_wasserstein",
    "vmf_sliced_wasserstein",
    "distributional_sliced_wasserstein",
]


@given(name=st.sampled_from(P_FNS), p=st.sampled_from(BAD_P))
def test_bad_order_p_is_named(name, p):
    if name == "wasserstein_1d":
        call = lambda: ot.wasserstein_1d(X[:, 0], Y[:, 0], p=p)  # noqa: E731
    else:
        fn = getattr(ot, name)
        kw = {"location": LOC, "kappa": 2.0} if name == "vmf_sliced_wasserstein" else {}
        kw = {"kappa": 2.0} if name == "distributional_sliced_wasserstein" else kw
        call = lambda: fn(KEY, X, Y, p=p, **kw)  # noqa: E731
    expect_named_error(call, name="p", jit=False)


def test_sliced_cv_rejects_any_p_but_two():
    expect_named_error(lambda: ot.sliced_wasserstein_cv(KEY, X, Y, p=3), name="p", jit=False)


BAD_COUNTS = [0, -1, 2.5, True, "4", None]
COUNT_ARGS = [
    ("sliced_wasserstein", "n_projections"),
    ("sliced_wasserstein", "chunk_size"),
    ("sliced_wasserstein_with_error", "n_projections"),
    ("sliced_wasserstein_cv", "chunk_size"),
    ("max_sliced_wasserstein", "n_iter"),
    ("max_sliced_wasserstein", "n_restarts"),
    ("vmf_sliced_wasserstein", "n_projections"),
    ("distributional_sliced_wasserstein", "max_iter"),
    ("distributional_sliced_wasserstein", "chunk_size"),
    ("sinkhorn", "max_iterations"),
    ("sinkhorn_divergence", "max_iterations"),
]


@given(case=st.sampled_from(COUNT_ARGS), value=st.sampled_from(BAD_COUNTS))
def test_bad_counts_are_named(case, value):
    name, arg = case
    if value is None and arg == "chunk_size":
        value = 0  # None is the valid "automatic" chunk
    fn = getattr(ot, name)
    if name.startswith("sinkhorn"):
        call = lambda: fn(X, Y, epsilon=0.5, **{arg: value})  # noqa: E731
    else:
        kw = {"location": LOC, "kappa": 2.0} if name == "vmf_sliced_wasserstein" else {}
        kw = {"kappa": 2.0} if name == "distributional_sliced_wasserstein" else kw
        call = lambda: fn(KEY, X, Y, **kw, **{arg: value})  # noqa: E731
    expect_named_error(call, name=arg, jit=False)


@given(name=st.sampled_from(sorted(KEYED)), key=st.sampled_from(BAD_KEYS))
def test_bad_keys_are_named(name, key):
    expect_named_error(KEYED[name], key, name="key", jit=False)


def test_missing_key_without_projections_is_named():
    expect_named_error(lambda: ot.sliced_wasserstein(None, X, Y), name="key", jit=False)


@given(option=UNKNOWN_OPTIONS, arg=st.sampled_from(["control_variate", "coefficient"]))
def test_unknown_control_variate_options_are_named(option, arg):
    expect_named_error(
        lambda: ot.sliced_wasserstein_cv(KEY, X, Y, **{arg: option}), name=arg, jit=False
    )


@given(
    name=st.sampled_from(["sinkhorn", "sinkhorn_divergence"]),
    keyword=st.sampled_from(["bogus", "tau", "inner_iteration", "epsilon_scale", "rank"]),
)
def test_unknown_solver_keywords_are_named(name, keyword):
    fn = getattr(ot, name)
    expect_named_error(lambda: fn(X, Y, epsilon=0.5, **{keyword: 1}), name=keyword, jit=False)


@given(
    name=st.sampled_from(["sinkhorn", "sinkhorn_divergence"]),
    cost=st.one_of(UNKNOWN_OPTIONS, st.sampled_from([3, jnp.eye(3)])),
)
def test_unknown_costs_are_named(name, cost):
    fn = getattr(ot, name)
    expect_named_error(lambda: fn(X, Y, epsilon=0.5, cost=cost), name="cost", jit=False)


BAD_SCALARS = {  # (function name, argument): bad values, each must raise naming the argument
    ("sinkhorn", "epsilon"): [0.0, -1.0, np.nan, np.inf, "0.1", None, np.ones(2)],
    ("sinkhorn_divergence", "epsilon"): [0.0, -0.5, np.nan, "x", 1j],
    ("sinkhorn", "threshold"): [-1.0, np.nan, "1e-3", None],
    ("max_sliced_wasserstein", "learning_rate"): [0.0, -1.0, np.inf, np.nan, "a", True],
    ("max_sliced_wasserstein", "tol"): [-1.0, np.nan, "a"],
    ("distributional_sliced_wasserstein", "learning_rate"): [0.0, np.inf, "a", True, 1j],
    ("distributional_sliced_wasserstein", "tol"): [-1e-3, np.nan, "a"],
    ("distributional_sliced_wasserstein", "kappa"): [0.0, -1.0, np.inf, np.nan, "a", np.ones(2)],
    ("vmf_sliced_wasserstein", "kappa"): [0.0, -2.0, np.inf, np.nan, None, 1j, np.ones(3)],
    ("sample_von_mises_fisher", "kappa"): [0.0, -2.0, np.inf, np.nan, None, 1j, np.ones(3)],
}


@given(case=st.sampled_from(sorted(BAD_SCALARS)), i=st.integers(0, 10))
def test_bad_scalar_options_are_named(case, i):
    name, arg = case
    value = BAD_SCALARS[case][i % len(BAD_SCALARS[case])]
    fn = getattr(ot, name)
    if name.startswith("sinkhorn"):
        kw = {"epsilon": 0.5, arg: value}
        call = lambda: fn(X, Y, **kw)  # noqa: E731
    elif name == "sample_von_mises_fisher":
        call = lambda: fn(KEY, LOC, value, (2,))  # noqa: E731
    else:
        kw = {"kappa": 2.0, "location": LOC} if name == "vmf_sliced_wasserstein" else {}
        kw = {"kappa": 2.0} if name == "distributional_sliced_wasserstein" else kw
        kw[arg] = value
        call = lambda: fn(KEY, X, Y, **kw)  # noqa: E731
    expect_named_error(call, name=arg, jit=False)


@given(
    name=st.sampled_from(["sliced_wasserstein", "sliced_wasserstein_cv"]),
    bad=st.one_of(
        st.sampled_from([(0, D), (4,), (4, D + 1), (2, 4, D)]).map(lambda s: ("shape", s)),
        st.sampled_from(BAD_DTYPES),
    ),
)
def test_bad_projections_are_named(name, bad):
    th = np.eye(D, dtype=np.float32)
    th = np.ones(bad[1], np.float32) if isinstance(bad, tuple) else _cast(th, bad)
    fn = getattr(ot, name)
    expect_named_error(lambda t: fn(None, X, Y, projections=t), th, name="projections")


@given(
    name=st.sampled_from(["vmf_sliced_wasserstein", "distributional_sliced_wasserstein"]),
    bad=st.one_of(
        st.sampled_from(["zero", (2,), (D, 1), (0,), ()]),
        st.sampled_from(BAD_DTYPES),
    ),
)
def test_bad_locations_are_named(name, bad):
    arg = "location" if name == "vmf_sliced_wasserstein" else "init"
    if isinstance(bad, str):
        value = np.zeros(D, np.float32)
    elif isinstance(bad, tuple):
        value = np.ones(bad, np.float32)
    else:
        value = _cast(LOC, bad)
    fn = getattr(ot, name)
    expect_named_error(lambda: fn(KEY, X, Y, kappa=2.0, **{arg: value}), name=arg, jit=False)


BAD_INTS = [0, -2, 1.5, True, "3", None, np.ones(2)]
BAD_DTYPE_ARGS = [jnp.int32, jnp.complex64, jnp.bool_, "int8", "bogus", 3, object]


def _cases(table):
    return [(arg, v) for arg, values in table.items() for v in range(len(values))]


RP_BAD = {"n_projections": BAD_INTS, "d": BAD_INTS, "dtype": BAD_DTYPE_ARGS}


@given(case=st.sampled_from(_cases(RP_BAD)))
def test_random_projections_bad_arguments_are_named(case):
    arg, i = case
    kw = {"n_projections": 4, "d": D, "dtype": None, arg: RP_BAD[arg][i]}
    expect_named_error(lambda: ot.random_projections(KEY, **kw), name=arg, jit=False)


INIT_BAD = {"d": BAD_INTS, "hidden": BAD_INTS, "n_inducing": BAD_INTS, "dtype": BAD_DTYPE_ARGS}


@given(case=st.sampled_from(_cases(INIT_BAD)))
def test_init_amortized_projection_bad_arguments_are_named(case):
    arg, i = case
    kw = {"d": D, "hidden": 4, "n_inducing": 2, "dtype": jnp.float32, arg: INIT_BAD[arg][i]}
    expect_named_error(lambda: ot.init_amortized_projection(KEY, **kw), name=arg, jit=False)


def _broken_params(kind):
    p = jax.tree.map(lambda t: t, PARAMS)
    if kind == "missing":
        del p["ff"]
    elif kind == "shape":
        p["ff"] = {"w": jnp.ones((5, 5)), "b": jnp.ones(5)}
    elif kind == "extra":
        p["extra"] = jnp.ones(2)
    elif kind == "int":
        p["out"] = {"w": jnp.ones((4, D), jnp.int32)}
    elif kind == "complex":
        p = jax.tree.map(lambda t: t.astype(jnp.complex64), p)
    elif kind == "list":
        p = list(jax.tree.leaves(p))
    elif kind == "none":
        p = None
    return p


@pytest.mark.parametrize("kind", ["missing", "shape", "extra", "int", "complex", "list", "none"])
def test_amortized_params_of_the_wrong_structure_are_named(kind):
    expect_named_error(
        lambda: ot.amortized_vmf_location(_broken_params(kind), X, Y), name="params", jit=False
    )


def test_amortized_points_of_another_dimension_are_named():
    x = np.ones((3, D + 1), np.float32)
    expect_named_error(lambda: ot.amortized_vmf_location(PARAMS, x, x), name="x", jit=False)


@given(
    arg=st.sampled_from(["mu", "shape"]),
    bad=st.sampled_from(["zero", (0,), (2, 3), (), jnp.int32, jnp.complex64, jnp.bool_]),
)
def test_sample_von_mises_fisher_bad_arguments_are_named(arg, bad):
    mu, shape = LOC, (2,)
    if arg == "mu":
        if isinstance(bad, str):
            mu = np.zeros(D, np.float32)
        elif isinstance(bad, tuple):
            mu = np.ones(bad, np.float32)
        else:
            mu = _cast(LOC, bad)
    else:
        shape = {"zero": (-1,), (0,): 2.5, (2, 3): "23", (): (True,)}.get(bad, (1, -3))
    expect_named_error(lambda: ot.sample_von_mises_fisher(KEY, mu, 2.0, shape), name=arg, jit=False)


COV_FNS = {
    "bures_wasserstein": lambda c1, c2: ot.bures_wasserstein(c1, c2),
    "gaussian_wasserstein": lambda c1, c2: ot.gaussian_wasserstein(
        np.zeros(D, np.float32), c1, np.ones(D, np.float32), c2
    ),
}


@given(
    name=st.sampled_from(sorted(COV_FNS)),
    arg=st.sampled_from(["cov1", "cov2"]),
    bad=st.one_of(wrong_shape((D, D)), st.sampled_from(BAD_DTYPES)),
)
def test_covariances_of_the_wrong_shape_or_dtype_are_named(name, arg, bad):
    good = np.eye(D, dtype=np.float32)
    value = np.ones(bad, np.float32) if isinstance(bad, tuple) else _cast(good, bad)
    fn = COV_FNS[name]
    if arg == "cov1":
        expect_named_error(lambda c: fn(c, good), value, name="cov1")
    else:
        expect_named_error(lambda c: fn(good, c), value, name="cov2")


@given(
    arg=st.sampled_from(["m1", "m2"]),
    bad=st.one_of(wrong_shape((D,)), st.sampled_from(BAD_DTYPES)),
)
def test_gaussian_means_of_the_wrong_shape_or_dtype_are_named(arg, bad):
    good = np.zeros(D, np.float32)
    value = np.ones(bad, np.float32) if isinstance(bad, tuple) else _cast(good, bad)
    eye = np.eye(D, dtype=np.float32)

    def call(m):
        m1, m2 = (m, good) if arg == "m1" else (good, m)
        return ot.gaussian_wasserstein(m1, eye, m2, eye)

    expect_named_error(call, value, name=arg)


@given(
    bad=st.one_of(
        wrong_shape((N, D)).filter(lambda s: len(s) != 2 or 0 in s),
        st.sampled_from(BAD_DTYPES),
    )
)
def test_gaussian_fit_bad_points_are_named(bad):
    value = np.ones(bad, np.float32) if isinstance(bad, tuple) else _cast(X, bad)
    expect_named_error(ot.gaussian_fit, value, name="x")


@pytest.mark.parametrize("manifold", ["Sphere(2)", None, 3, np.eye(3)])
def test_manifold_cost_rejects_non_manifolds(manifold):
    expect_named_error(ot.ManifoldCost, manifold, name="manifold", jit=False)


@given(
    arg=st.sampled_from(["x", "y"]),
    shape=st.sampled_from([(2,), (4,), (0,), (3, 3)]),
)
def test_manifold_cost_call_with_a_point_of_the_wrong_size_is_named(arg, shape):
    cost = ot.ManifoldCost(Sphere(2))
    good = np.array([0.0, 1.0, 0.0], np.float32)
    bad = np.ones(shape, np.float32)
    if arg == "x":
        expect_named_error(lambda z: cost(z, good), bad, name="x")
    else:
        expect_named_error(lambda z: cost(good, z), bad, name="y")


@given(arg=st.sampled_from(["x", "y"]), shape=st.sampled_from([(N, 2), (N, 4), (N, 3, 1)]))
def test_sinkhorn_manifold_points_off_point_shape_are_named(arg, shape):
    pts = np.ones(shape, np.float32)
    good = np.eye(3, dtype=np.float32)
    x, y = (pts, good) if arg == "x" else (good, pts)
    expect_named_error(lambda: ot.sinkhorn(x, y, epsilon=0.5, cost=Sphere(2)), name=arg, jit=False)


# -- value-bad input: what each docstring's "Input domain" note says ---------------------------
#
# One jitted wrapper per function with every array argument traced (points, weights, and the
# traced parameters: location, kappa, init, epsilon), so each compiles once for all of these
# tests and the value checks that only run on concrete input are out of the way.

A_UNI = np.full((N,), 1.0 / N, np.float32)
B_UNI = np.full((M,), 1.0 / M, np.float32)
INIT = np.array([0.0, 0.6, 0.8], np.float32)

_TRACED = {
    "sliced_wasserstein": lambda x, y, a, b, **_: ot.sliced_wasserstein(
        KEY, x, y, a, b, n_projections=4
    ),
    "sliced_wasserstein_with_error": lambda x, y, a, b, **_: ot.sliced_wasserstein_with_error(
        KEY, x, y, a, b, n_projections=4
    ),
    "sliced_wasserstein_cv": lambda x, y, a, b, **_: ot.sliced_wasserstein_cv(
        KEY, x, y, a, b, n_projections=4
    ),
    "max_sliced_wasserstein": lambda x, y, a, b, **_: ot.max_sliced_wasserstein(
        KEY, x, y, a, b, n_iter=3, n_restarts=2
    ),
    "vmf_sliced_wasserstein": lambda x, y, a, b, loc, kappa, **_: ot.vmf_sliced_wasserstein(
        KEY, x, y, a, b, location=loc, kappa=kappa, n_projections=4
    ),
    "distributional_sliced_wasserstein": lambda x, y, a, b, loc, kappa, **_: (
        ot.distributional_sliced_wasserstein(
            KEY, x, y, a, b, kappa=kappa, n_projections=4, max_iter=3, init=loc
        )
    ),
    "sinkhorn": lambda x, y, a, b, epsilon, **_: ot.sinkhorn(x, y, a, b, epsilon=epsilon),
    "sinkhorn_divergence": lambda x, y, a, b, epsilon, **_: ot.sinkhorn_divergence(
        x, y, a, b, epsilon=epsilon
    ),
    "amortized_vmf_location": lambda x, y, a, b, **_: ot.amortized_vmf_location(PARAMS, x, y),
    "wasserstein_1d": lambda x, y, a, b, **_: ot.wasserstein_1d(x[:, 0], y[:, 0], a, b),
    "gaussian_fit": lambda x, y, a, b, **_: ot.gaussian_fit(x, a),
}
_JIT = {name: jax.jit(f) for name, f in _TRACED.items()}
_DEFAULTS = {"loc": LOC, "kappa": np.float32(2.0), "epsilon": np.float32(0.5)}


def _run(name, x=X, y=Y, a=A_UNI, b=B_UNI, **params):
    """The jitted wrapper of ``name`` on traced inputs, with jax_debug_nans off (the NaN is the
    documented answer being checked)."""
    kw = dict(_DEFAULTS, **params)
    if name == "distributional_sliced_wasserstein" and "loc" not in params:
        kw["loc"] = INIT
    with jax.debug_nans(False):
        return _JIT[name](x, y, a, b, **kw)


_STATUS = {"max_sliced_wasserstein", "distributional_sliced_wasserstein"}
_STATUS |= {"sinkhorn", "sinkhorn_divergence"}
_VALUE = {
    "sliced_wasserstein_with_error": lambda o: o.value,
    "sliced_wasserstein_cv": lambda o: o.value,
    "max_sliced_wasserstein": lambda o: o.value,
    "distributional_sliced_wasserstein": lambda o: o.value,
    "sinkhorn": lambda o: o.cost,
    "sinkhorn_divergence": lambda o: o.divergence,
}


def _value(name, out):
    return _VALUE.get(name, lambda o: o)(out)


def _finite(x) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x))))


@given(
    name=st.sampled_from(sorted(_TRACED)),
    arg=st.sampled_from(["x", "y"]),
    kind=POISONS,
    index=st.integers(0, 64),
)
def test_non_finite_points_give_a_non_finite_value_or_a_failed_status(name, arg, kind, index):
    if name in ("wasserstein_1d", "gaussian_fit"):
        index = index % N * D  # a point of the first coordinate (the one these read)
        arg = "x" if name == "gaussian_fit" else arg
    x, y = (poison(X, kind, index), Y) if arg == "x" else (X, poison(Y, kind, index))
    out = _run(name, x, y)
    if name in _STATUS:
        assert not bool(out.converged), f"{name}: non-finite points reported as converged"
        if name == "max_sliced_wasserstein":
            assert not _finite(out.value)
    elif name == "amortized_vmf_location":
        assert np.all(np.isnan(out)), "the location of non-finite points must be NaN"
    elif name == "gaussian_fit":
        assert not leaves_finite(out)
    else:
        assert not _finite(_value(name, out)), f"{name}: NaN in, finite out"


WEIGHTED_TRACED = WEIGHTED + ["wasserstein_1d", "gaussian_fit"]


@given(
    name=st.sampled_from(WEIGHTED_TRACED),
    weights=st.lists(st.floats(-2.0, 2.0, width=32), min_size=N, max_size=N),
    nan_at=st.one_of(st.none(), st.integers(0, N - 1)),
)
def test_traced_weights_are_used_as_given(name, weights, nan_at):
    """Under jit the weight values are not checked: finite weights of any sign or sum give a
    finite value (Sinkhorn: ``converged=False`` for a negative one); a NaN weight gives a
    non-finite value or ``converged=False``."""
    a = np.asarray(weights, np.float32)
    if nan_at is not None:
        a[nan_at] = np.nan
    out = _run(name, a=a)
    if nan_at is not None:
        if name in _STATUS:
            assert not bool(out.converged)
        elif name == "gaussian_fit":
            assert not leaves_finite(out)
        else:
            assert not _finite(_value(name, out))
    elif name in _STATUS:
        if name.startswith("sinkhorn") and np.any(a < 0):
            assert not bool(out.converged)
        no_silent_nan(out, status_ok=lambda r: bool(r.converged))
    else:
        assert leaves_finite(out), f"{name}: finite traced weights gave a non-finite output"


@given(
    name=st.sampled_from(["vmf_sliced_wasserstein", "distributional_sliced_wasserstein"]),
    bad=st.one_of(
        st.tuples(POISONS, st.integers(0, D - 1)),
        st.sampled_from([-3.0, -1e-20, np.inf, -np.inf, np.nan]),
    ),
)
def test_non_finite_location_or_traced_invalid_kappa(name, bad):
    """vMF slicing: a non-finite location / init, or a traced kappa that is negative, infinite
    or NaN, gives a non-finite value (v-SW) or ``converged=False`` (v-DSW)."""
    if isinstance(bad, tuple):
        out = _run(name, loc=poison(LOC if name.startswith("vmf") else INIT, *bad))
    else:
        out = _run(name, kappa=np.float32(bad))
    if name == "vmf_sliced_wasserstein":
        assert not _finite(out)
    else:
        assert not bool(out.converged)


@given(
    name=st.sampled_from(["sinkhorn", "sinkhorn_divergence"]),
    epsilon=st.sampled_from([0.0, -0.5, -1e-3, np.nan, -np.inf]),
)
def test_traced_non_positive_epsilon_is_not_converged(name, epsilon):
    assert not bool(_run(name, epsilon=np.float32(epsilon)).converged)


_COV_JIT = {name: jax.jit(fn) for name, fn in COV_FNS.items()}


@given(
    name=st.sampled_from(sorted(COV_FNS)),
    kind=st.sampled_from(["indefinite", "nan", "inf", "nonsym"]),
    seed=st.integers(0, 50),
    which=st.sampled_from([0, 1]),
)
def test_bad_covariances_give_the_documented_result(name, kind, seed, which):
    """Indefinite or non-finite covariances give NaN; a non-symmetric one is read as its
    symmetric part."""
    c_good = spd(seed + 100, D, cond=5.0, dtype=np.float32)
    if kind == "indefinite":
        c_bad = indefinite(seed, D, np.float32)
    elif kind == "nonsym":
        c_bad = spd(seed, D, dtype=np.float32) + np.triu(np.ones((D, D), np.float32), 1)
    else:
        c_bad = poison(spd(seed, D, dtype=np.float32), kind, seed)
    fn = _COV_JIT[name]
    with jax.debug_nans(False):
        out = fn(*((c_bad, c_good) if which == 0 else (c_good, c_bad)))
    if kind == "nonsym":
        sym = 0.5 * (c_bad + c_bad.T)
        ref = fn(*((sym, c_good) if which == 0 else (c_good, sym)))
        # float32, the same factorizations of the same symmetric matrices: a few ulps apart
        np.testing.assert_allclose(out, ref, rtol=32 * 1.2e-7, atol=32 * 1.2e-7)
    else:
        assert np.isnan(out), f"{name}: {kind} covariance gave {out}"


_GW = jax.jit(ot.gaussian_wasserstein)


@given(mean=st.sampled_from(["m1", "m2", "both"]), kind=POISONS, index=st.integers(0, D - 1))
def test_non_finite_gaussian_means_give_a_non_finite_distance(mean, kind, index):
    m = poison(np.zeros(D, np.float32), kind, index)
    z, eye = np.zeros(D, np.float32), np.eye(D, dtype=np.float32)
    m1, m2 = {"m1": (m, z), "m2": (z, m), "both": (m, m)}[mean]
    with jax.debug_nans(False):
        out = _GW(m1, eye, m2, eye)
    assert not _finite(out)


_SAMPLE = jax.jit(ot.sample_von_mises_fisher, static_argnums=3)


@given(
    d=st.sampled_from([1, 3]),
    bad=st.one_of(
        st.sampled_from([-1e6, -2.0, -1e-30, np.inf, -np.inf, np.nan]),
        st.tuples(POISONS, st.integers(0, 2)),
    ),
)
def test_traced_invalid_kappa_or_non_finite_mean_give_nan_samples(d, bad):
    mu, kappa = np.ones(d, np.float32), np.float32(2.0)
    if isinstance(bad, tuple):
        mu = poison(mu, *bad)
    else:
        kappa = np.float32(bad)
    with jax.debug_nans(False):
        out = _SAMPLE(KEY, mu, kappa, (4,))
    assert np.all(np.isnan(out))


@given(scale=st.floats(0.0, 3.0), seed=st.integers(0, 100))
def test_manifold_cost_off_manifold_points_are_what_dist_computes(scale, seed):
    """Off-manifold points are neither checked nor projected: the cost is ``dist ** 2`` of the
    points as given (finite for the sphere, whose dist clips its cosine)."""
    sphere = Sphere(2)
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(3)).astype(np.float32)
    y = rng.standard_normal(3).astype(np.float32)
    out = ot.ManifoldCost(sphere)(x, y)
    assert _finite(out)
    np.testing.assert_allclose(out, sphere.dist(x, y) ** 2, rtol=1e-6)


# -- valid edge input: finite values (and gradients) --------------------------------------------


@pytest.mark.parametrize("name", sorted(_TRACED))
@pytest.mark.parametrize("case", ["dirac", "coincident_points", "zero_weights"])
def test_edge_measures_give_finite_output(name, case):
    """Ties and equal measures on the shapes of the value tests (no new compilation): every
    point at one place (both measures the same Dirac), x and y sharing points, zero weights."""
    x, y, a, b = X, Y, A_UNI, B_UNI
    if case == "dirac":
        x, y = np.broadcast_to(X[0], X.shape), np.broadcast_to(X[0], Y.shape)
    elif case == "coincident_points":
        y = X[:M]
    else:
        a = np.array([0.0, 0.5, 0.0, 0.5, 0.0], np.float32)
        b = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    with jax.debug_nans(True):  # no NaN anywhere, not even a masked one
        out = _JIT[name](x, y, a, b, **dict(_DEFAULTS, loc=LOC if "vmf" in name else INIT))
    assert leaves_finite(out)
    if case == "dirac" and name in _STATUS:
        assert bool(out.converged), f"{name}: did not converge on two equal Diracs"
    if case == "dirac" and name not in ("amortized_vmf_location", "gaussian_fit"):
        np.testing.assert_allclose(_value(name, out), 0.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MEASURE_FNS))
def test_one_point_in_one_dimension_gives_finite_output(name):
    """The smallest valid input: one point per measure (in one dimension where the function's
    fixed parameters allow it)."""
    fn = MEASURE_FNS[name][0]
    d = D if name in ("vmf_sliced_wasserstein", "amortized_vmf_location") else 1
    x, y = X[:1, :d], Y[:1, :d]
    if name.startswith("sinkhorn"):
        out = jax.jit(fn)(x, y)
    else:
        out = fn(x, y)
    assert leaves_finite(out)


@pytest.mark.parametrize(
    "name", ["sliced_wasserstein", "sliced_wasserstein_cv", "vmf_sliced_wasserstein"]
)
def test_gradients_at_coincident_clouds_are_finite(name):
    fn = MEASURE_FNS[name][0]
    g = jax.grad(lambda x: _value(name, fn(x, X)))(jnp.asarray(X))
    assert leaves_finite(g)
    np.testing.assert_array_equal(g, 0.0)  # documented: value 0 and gradient 0 at x == y


@pytest.mark.parametrize("n,m", [(1, 1), (1, 3), (4, 4)])
def test_wasserstein_1d_ties_are_finite(n, m):
    u, v = np.zeros(n, np.float32), np.zeros(m, np.float32)  # ties everywhere
    assert float(ot.wasserstein_1d(u, v)) == 0.0
    g = jax.grad(lambda t: ot.wasserstein_1d(t, v, p=1.5))(jnp.asarray(u))
    assert leaves_finite(g)


@pytest.mark.parametrize("name", sorted(COV_FNS))
@pytest.mark.parametrize("case", ["identity", "repeated", "zero_vs_zero", "zero_vs_identity"])
def test_edge_covariances_give_finite_distances(name, case):
    eye = np.eye(D, dtype=np.float32)
    zero = np.zeros((D, D), np.float32)
    pairs = {
        "identity": (eye, eye),
        "repeated": (2.0 * eye, np.diag(np.array([1.0, 1.0, 4.0], np.float32))),
        "zero_vs_zero": (zero, zero),
        "zero_vs_identity": (zero, eye),
    }
    out = _COV_JIT[name](*pairs[case])
    assert _finite(out)
    if name == "bures_wasserstein" and case != "repeated":
        expect = {"identity": 0.0, "zero_vs_zero": 0.0, "zero_vs_identity": np.sqrt(D)}[case]
        # float32 Cholesky / SVD route: a few eps of the scale tr(cov1) + tr(cov2) = 2 D
        np.testing.assert_allclose(out, expect, atol=16 * 1.2e-7 * 2 * D)


def test_gaussian_fit_edges_are_finite():
    for x in (X[:1], np.zeros((4, 2), np.float32), X[:, :1]):
        assert leaves_finite(ot.gaussian_fit(x))
    mean, cov = ot.gaussian_fit(X, np.array([1.0, 0.0, 0.0, 0.0, 0.0], np.float32))
    np.testing.assert_array_equal(mean, X[0])
    np.testing.assert_array_equal(cov, np.zeros((D, D), np.float32))


@given(d=st.sampled_from([1, 3]), kappa=st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 1e4, 1e8]))
def test_sample_von_mises_fisher_edges_are_unit_vectors(d, kappa):
    """Tiny and huge concentrations (0 is the uniform limit, reachable traced), a tiny mean."""
    mu = np.zeros(d, np.float32)
    mu[-1] = 1e-30  # a tiny, valid mean direction
    out = _SAMPLE(KEY, mu, np.float32(kappa), (4,))
    assert leaves_finite(out)
    # unit norm to float32 rounding of a handful of operations
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=16 * 1.2e-7)


@pytest.mark.parametrize("shape", [(), (0,), 1, [2, 1]])
def test_sample_von_mises_fisher_batch_shapes(shape):
    out = ot.sample_von_mises_fisher(KEY, LOC, 2.0, shape)
    want = (shape,) if isinstance(shape, int) else tuple(shape)
    assert out.shape == (*want, D) and leaves_finite(out)


@pytest.mark.parametrize("n_projections,d", [(1, 1), (1, 5), (7, 1)])
def test_random_projections_edges(n_projections, d):
    th = ot.random_projections(KEY, n_projections, d)
    assert th.shape == (n_projections, d)
    np.testing.assert_allclose(np.linalg.norm(th, axis=1), 1.0, atol=4 * 1.2e-7)


def test_init_amortized_projection_smallest_sizes():
    params = ot.init_amortized_projection(KEY, 1, 1, 1)
    assert leaves_finite(params)
    out = ot.amortized_vmf_location(params, X[:2, :1], Y[:1, :1])
    np.testing.assert_allclose(np.abs(out), 1.0, atol=4 * 1.2e-7)


def test_amortized_location_at_coincident_clouds_is_e1():
    out = ot.amortized_vmf_location(PARAMS, X, X)  # u = 0: the documented e_1
    np.testing.assert_array_equal(out, np.array([1.0, 0.0, 0.0], np.float32))


def test_manifold_cost_at_coincident_points_is_zero_with_finite_gradient():
    cost = ot.ManifoldCost(Sphere(2))
    x = jnp.array([0.0, 0.6, 0.8])
    assert float(cost(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert leaves_finite(jax.grad(lambda t: cost(t, x))(x))
