"""Fuzz suite for geomjax.manifolds: every public class (constructor and methods) and function.

* Structural bad input (wrong ranks and shapes, empty arrays, bool/int/complex dtypes, unknown
  option strings, bad constructor arguments) raises ValueError/TypeError at trace time naming the
  argument. The per-method shape checks of every manifold are in
  ``tests/manifolds/test_shapes.py``; here: constructors, bool dtypes, stacks and the functions.
* Value-bad input (NaN/inf entries, points off the manifold, indefinite or non-symmetric "SPD"
  matrices, zero or negative weights) gives what the docstrings state ("Input domain" notes):
  manifold methods never raise on values, ``check_point`` flags the point (residual NaN, inf or
  > 0), a poisoned argument never leaks into results that do not read it, and means report
  ``converged=False`` instead of returning NaN as a valid answer.
* Valid edge input (coincident points, zero tangents, identities, repeated eigenvalues, antipodes,
  rotations by pi, tiny sizes) is finite, gradients included (the gradient tests compile one
  gradient per manifold, metric or function and are marked slow).

Shapes are fixed per manifold (float32) and every value test goes through one jitted function
per manifold, so hypothesis varies values and positions without recompiling.
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
from hypothesis import given
from hypothesis import strategies as st

import geomjax.manifolds as gm

F32 = np.float32
EPS = float(np.finfo(F32).eps)

# -- the manifolds -----------------------------------------------------------------------------

FACTORIES = {
    "Euclidean": lambda: gm.Euclidean((2, 2)),
    "Sphere": lambda: gm.Sphere(2),
    "PoincareBall": lambda: gm.PoincareBall(2, 1.0),
    "Lorentz": lambda: gm.Lorentz(2, 1.0),
    "Stiefel": lambda: gm.Stiefel(3, 2),
    "Grassmann": lambda: gm.Grassmann(3, 2),
    "SO3": lambda: gm.SO3(),
    "SE3": lambda: gm.SE3(),
    "Product": lambda: gm.Product((gm.Sphere(2), gm.PoincareBall(2, 1.0))),
    "SPDAffineInvariant": lambda: gm.SPDAffineInvariant(2),
    "SPDBuresWasserstein": lambda: gm.SPDBuresWasserstein(2),
    "SPDGeneralizedBuresWasserstein": lambda: gm.SPDGeneralizedBuresWasserstein(
        jnp.diag(jnp.array([1.0, 2.0]))
    ),
    "SPDLogCholesky": lambda: gm.SPDLogCholesky(2),
    "SPDLogEuclidean": lambda: gm.SPDLogEuclidean(2),
    "PowerDeformed": lambda: gm.PowerDeformed(gm.SPDLogCholesky(2), -0.5),
}
SPD = [n for n in FACTORIES if n.startswith("SPD") or n == "PowerDeformed"]

FUNCTIONS = {
    # name: (callable, {argument: valid value})
    "hat": (gm.hat, {"w": np.array([0.1, -0.2, 0.3], F32)}),
    "vee": (gm.vee, {"m": np.eye(3, dtype=F32)}),
    "exp_so3": (gm.exp_so3, {"w": np.array([0.1, -0.2, 0.3], F32)}),
    "log_so3": (gm.log_so3, {"R": np.eye(3, dtype=F32)}),
    "rotation_angle": (gm.rotation_angle, {"R": np.eye(3, dtype=F32)}),
    "left_jacobian_so3": (gm.left_jacobian_so3, {"w": np.array([0.1, -0.2, 0.3], F32)}),
    "inv_left_jacobian_so3": (gm.inv_left_jacobian_so3, {"w": np.array([0.1, -0.2, 0.3], F32)}),
    "quat_to_matrix": (gm.quat_to_matrix, {"q": np.array([1.0, 0.1, 0.2, 0.3], F32)}),
    "matrix_to_quat": (gm.matrix_to_quat, {"R": np.eye(3, dtype=F32)}),
    "axis_angle_to_matrix": (
        gm.axis_angle_to_matrix,
        {"axis": np.array([0.0, 0.0, 1.0], F32), "angle": np.asarray(0.5, F32)},
    ),
    "matrix_to_axis_angle": (gm.matrix_to_axis_angle, {"R": np.eye(3, dtype=F32)}),
    "hat_se3": (gm.hat_se3, {"xi": np.arange(6, dtype=F32)}),
    "vee_se3": (gm.vee_se3, {"m": np.zeros((4, 4), F32)}),
    "exp_se3": (gm.exp_se3, {"xi": np.arange(6, dtype=F32) / 10}),
    "log_se3": (gm.log_se3, {"T": np.eye(4, dtype=F32)}),
    "mobius_add": (
        gm.mobius_add,
        {"x": np.array([0.1, 0.2], F32), "y": np.array([-0.3, 0.1], F32)},
    ),
    "mobius_matvec": (
        gm.mobius_matvec,
        {"m": np.array([[1.0, 0.5], [0.0, 2.0], [1.0, 1.0]], F32), "x": np.array([0.1, 0.2], F32)},
    ),
    "mobius_scalar_mul": (
        gm.mobius_scalar_mul,
        {"r": np.asarray(2.0, F32), "x": np.array([0.1, 0.2], F32)},
    ),
    "minkowski_inner": (
        gm.minkowski_inner,
        {"u": np.array([1.0, 0.2, 0.3], F32), "v": np.array([0.5, 0.1, 0.0], F32)},
    ),
    "lorentz_to_poincare": (
        gm.lorentz_to_poincare,
        {"x": np.array([np.sqrt(1.0 + 0.25), 0.3, 0.4], F32)},
    ),
    "poincare_to_lorentz": (gm.poincare_to_lorentz, {"p": np.array([0.1, 0.2], F32)}),
    "bures_wasserstein_sqdist": (
        gm.bures_wasserstein_sqdist,
        {"a": spd(0, 2).astype(F32), "b": spd(1, 2).astype(F32)},
    ),
}
# Arguments that are scalars (their wrong shapes are any non-scalar).
SCALAR_ARGS = {("axis_angle_to_matrix", "angle"), ("mobius_scalar_mul", "r")}
# Functions with a curvature argument ``c`` (a positive scalar).
CURVATURE_FUNCTIONS = (
    "mobius_add",
    "mobius_matvec",
    "mobius_scalar_mul",
    "lorentz_to_poincare",
    "poincare_to_lorentz",
)

COVERED = {
    "geomjax.manifolds": set(FACTORIES)
    | set(FUNCTIONS)
    | {"frechet_mean", "loki_predict", "loki_scores"}
}
EXEMPT = {
    "geomjax.manifolds": {
        "FrechetMeanResult": "a result type (NamedTuple), no input; frechet_mean and the SPD "
        ".mean methods that return it are fuzzed",
        "Manifold": "the abstract base class (no constructor arguments, no point_shape); its "
        "default methods are fuzzed through every subclass",
    }
}

CORE = (
    "inner",
    "norm",
    "proj",
    "egrad_to_rgrad",
    "exp",
    "retr",
    "log",
    "transp",
    "dist",
    "geodesic",
    "check_point",
    "check_tangent",
    "projx",
)
# Which of x, y, u each core method reads (the others must not be affected by a poisoned one).
READS = {
    "inner": "xu",
    "norm": "xu",
    "proj": "xu",
    "egrad_to_rgrad": "xu",
    "exp": "xu",
    "retr": "xu",
    "log": "xy",
    "transp": "xyu",
    "dist": "xy",
    "geodesic": "xy",
    "check_point": "x",
    "check_tangent": "xu",
    "projx": "x",
}


def _core(m, x, y, u, t):
    return {
        "inner": m.inner(x, u, u),
        "norm": m.norm(x, u),
        "proj": m.proj(x, u),
        "egrad_to_rgrad": m.egrad_to_rgrad(x, u),
        "exp": m.exp(x, u),
        "retr": m.retr(x, u),
        "log": m.log(x, y),
        "transp": m.transp(x, y, u),
        "dist": m.dist(x, y),
        "geodesic": m.geodesic(x, y, t),
        "check_point": m.check_point(x),
        "check_tangent": m.check_tangent(x, u),
        "projx": m.projx(x),
    }


@functools.cache
def _manifold(name):
    return FACTORIES[name]()


@functools.cache
def _jit_core(name):
    m = _manifold(name)
    return jax.jit(lambda x, y, u, t: _core(m, x, y, u, t))


def _tangent(name, x, key, length):
    """A random tangent at ``x`` of Riemannian norm ``length``."""
    u = _manifold(name).random_tangent(key, x)
    norm = float(_jit_core(name)(x, x, u, 0.3)["norm"])
    return jax.tree.map(lambda a: np.asarray(a * (length / norm), F32), u)


@functools.cache
def _valid(name):
    """A point, a point at distance 0.3 and a tangent of norm 0.5 (numpy float32 pytrees)."""
    m = _manifold(name)
    x = jax.tree.map(lambda a: np.asarray(a, F32), m.random_point(jax.random.key(0)))
    y = _jit_core(name)(x, x, _tangent(name, x, jax.random.key(1), 0.3), 0.3)["exp"]
    u = _tangent(name, x, jax.random.key(2), 0.5)
    return jax.tree.map(lambda a: np.asarray(a, F32), (x, y, u))


def _leaves(tree):
    return jax.tree.leaves(tree)


def _poison_tree(tree, kind, index):
    """Poison one entry (flat ``index`` over all leaves, modulo the total size)."""
    leaves, treedef = jax.tree.flatten(tree)
    sizes = np.cumsum([a.size for a in leaves])
    i = index % int(sizes[-1])
    k = int(np.searchsorted(sizes, i, side="right"))
    offset = i - (int(sizes[k - 1]) if k else 0)
    leaves = list(leaves)
    leaves[k] = poison(leaves[k], kind, offset)
    return jax.tree.unflatten(treedef, leaves)


def _flagged(residual) -> bool:
    """``check_point`` reports the point as off the manifold: NaN, inf or clearly > 0."""
    r = float(residual)
    return not (r <= 1e-3)


# ============================================================ structural: constructors


BAD_CONSTRUCTORS = {
    # name: list of (kwargs, argument the error must name)
    "Euclidean": [
        (dict(shape=s), "shape")
        for s in (0, -2, 1.5, True, "3", None, (2, 0), (2.0,), (2, True), [3, -1])
    ],
    "Sphere": [(dict(dim=d), "dim") for d in (0, -1, 1.5, True, "2", None)],
    "PoincareBall": [(dict(dim=d), "dim") for d in (0, -1, 1.5, True, "2")]
    + [
        (dict(dim=2, c=c), "c")
        for c in (0.0, -1.0, float("nan"), float("inf"), True, "1", np.array([1.0, -1.0]))
    ],
    "Lorentz": [(dict(dim=d), "dim") for d in (0, -1, 1.5, True, "2")]
    + [(dict(dim=2, c=c), "c") for c in (0.0, -1.0, float("nan"), float("inf"), True, "1")],
    "Stiefel": [
        (dict(n=3, p=4), "p"),
        (dict(n=3, p=0), "p"),
        (dict(n=0, p=0), "p"),
        (dict(n=3.0, p=2), "n"),
        (dict(n=True, p=1), "n"),
        (dict(n=3, p="2"), "p"),
        (dict(n=None, p=1), "n"),
    ],
    "Grassmann": [
        (dict(n=3, p=4), "p"),
        (dict(n=2, p=0), "p"),
        (dict(n=2.0, p=1), "n"),
        (dict(n=3, p=True), "p"),
    ],
    "Product": [(dict(manifolds=ms), "manifolds") for ms in ((), [], gm.Sphere(2), None, 3)]
    + [(dict(manifolds="ab"), "manifolds[0]"), (dict(manifolds=(gm.Sphere(2), 3)), "manifolds[1]")],
    "SPDGeneralizedBuresWasserstein": [
        (dict(M=mm), "M")
        for mm in (
            np.zeros((2, 3), F32),
            np.zeros((2, 2, 2), F32),
            np.zeros((0, 0), F32),
            np.eye(2, dtype=np.int32),
            np.eye(2, dtype=np.complex64),
            np.eye(2, dtype=bool),
            "eye",
            1.0,
        )
    ],
    "PowerDeformed": [
        (dict(metric=gm.SPDLogEuclidean(2), theta=t), "theta")
        for t in (0, 0.0, True, float("nan"), float("inf"), np.array([1.0, 2.0]), "1")
    ]
    + [(dict(metric=mm, theta=0.5), "metric") for mm in (gm.Sphere(2), "AIM", 3)],
}
for _spd_name in ("SPDAffineInvariant", "SPDBuresWasserstein", "SPDLogCholesky", "SPDLogEuclidean"):
    BAD_CONSTRUCTORS[_spd_name] = [(dict(n=v), "n") for v in (0, -1, 1.5, True, "3", None)]


@pytest.mark.parametrize("name", sorted(BAD_CONSTRUCTORS))
@given(data=st.data())
def test_bad_constructor_argument_is_named(name, data):
    kwargs, arg = data.draw(st.sampled_from(BAD_CONSTRUCTORS[name]))
    expect_named_error(lambda: getattr(gm, name)(**kwargs), name=arg, jit=False)


@given(
    arg=st.sampled_from(["metric", "retraction"]),
    value=UNKNOWN_OPTIONS | st.sampled_from([None, 1, "QR"]),
)
def test_stiefel_unknown_option_is_named(arg, value):
    expect_named_error(lambda: gm.Stiefel(3, 2, **{arg: value}), name=arg, jit=False)


def test_constructors_accept_numpy_ints_and_lists():
    """Sizes given as numpy ints and shapes as lists are fine (and normalized)."""
    assert gm.Euclidean(np.int64(3)).point_shape == (3,)
    assert gm.Euclidean([2, np.int32(3)]).point_shape == (2, 3)
    assert gm.Stiefel(np.int64(3), np.int64(2)).point_shape == (3, 2)
    assert gm.SPDAffineInvariant(np.int64(2)).point_shape == (2, 2)
    m = gm.SPDGeneralizedBuresWasserstein([[2.0, 0.0], [0.0, 1.0]])
    assert m.point_shape == (2, 2)


# ============================================================ structural: methods


def _core_one(m, method, x, y, u):
    return {
        "inner": lambda: m.inner(x, u, u),
        "norm": lambda: m.norm(x, u),
        "proj": lambda: m.proj(x, u),
        "egrad_to_rgrad": lambda: m.egrad_to_rgrad(x, u),
        "exp": lambda: m.exp(x, u),
        "retr": lambda: m.retr(x, u),
        "log": lambda: m.log(x, y),
        "transp": lambda: m.transp(x, y, u),
        "dist": lambda: m.dist(x, y),
        "geodesic": lambda: m.geodesic(x, y, 0.5),
        "check_point": lambda: m.check_point(x),
        "check_tangent": lambda: m.check_tangent(x, u),
        "projx": lambda: m.projx(x),
    }[method]()


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(
    method=st.sampled_from(CORE), which=st.sampled_from("xyu"), dtype=st.sampled_from(BAD_DTYPES)
)
def test_bad_dtype_point_or_tangent_is_named(name, method, which, dtype):
    """bool, int and complex points and tangents (phase-1 shape tests cover int and complex for
    every method; this adds bool and the jit path)."""
    m = _manifold(name)
    args = dict(zip("xyu", _valid(name)))
    if which not in READS[method]:
        which = "x"
    args[which] = jax.tree.map(lambda a: np.zeros(a.shape, dtype), args[which])
    label = "g" if (method, which) == ("egrad_to_rgrad", "u") else which
    label = f"{label}[0]" if name == "Product" else label
    err = expect_named_error(
        lambda x, y, u: _core_one(m, method, x, y, u), args["x"], args["y"], args["u"], name=label
    )
    assert isinstance(err, TypeError)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(t=st.sampled_from([np.ones(2, F32), np.ones((1,), F32), np.asarray(0.5j), "0.5", None]))
def test_bad_geodesic_time_is_named(name, t):
    m = _manifold(name)
    x, y, _ = _valid(name)
    expect_named_error(m.geodesic, x, y, t, name="t", jit=False)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(
    key=st.sampled_from(
        [np.zeros(2, F32), np.zeros(2, np.int32), np.zeros((2, 2), np.uint32), 0, None, "key"]
    ),
    dtype=st.sampled_from([jnp.int32, jnp.bool_, jnp.complex64, "float", "int8", "bogus"]),
    which=st.sampled_from(["key", "dtype"]),
)
def test_bad_key_or_dtype_of_random_point_is_named(name, key, dtype, which):
    m = _manifold(name)
    if which == "key":
        expect_named_error(m.random_point, key, jnp.float32, name="key", jit=False)
    elif not (dtype == "float"):  # "float" is a valid dtype name (float64 -> float32 here)
        expect_named_error(m.random_point, jax.random.key(0), dtype, name="dtype", jit=False)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_random_tangent_rejects_a_batch_of_keys(name):
    m = _manifold(name)
    x, _, _ = _valid(name)
    expect_named_error(m.random_tangent, jax.random.split(jax.random.key(0), 3), x, name="key")


# ============================================================ value-bad: NaN / inf


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(which=st.sampled_from("xyu"), kind=POISONS, index=st.integers(0, 63))
def test_poisoned_argument_is_flagged_and_does_not_leak(name, which, kind, index):
    """A NaN/inf entry never raises; ``check_point`` flags a poisoned point; results that do not
    read the poisoned argument are exactly the clean ones ("Input domain" of Manifold)."""
    x, y, u = _valid(name)
    args = {"x": x, "y": y, "u": u}
    args[which] = _poison_tree(args[which], kind, index)
    f = _jit_core(name)
    with jax.debug_nans(False):
        clean = f(x, y, u, 0.3)
        out = f(args["x"], args["y"], args["u"], 0.3)
        if which in "xy":
            assert _flagged(f(args[which], y, u, 0.3)["check_point"])
    for method in CORE:
        if which not in READS[method]:
            for a, b in zip(_leaves(out[method]), _leaves(clean[method])):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{method} read `{which}`")


# ============================================================ value-bad: off the manifold


def _off_manifold(name, seed):
    """A finite point off the manifold (and the projx of it must be back on)."""
    rng = np.random.default_rng(seed)
    x, _, _ = _valid(name)
    scale = F32(1.5 + rng.uniform())
    if name in ("Sphere",):
        return x * scale
    if name == "PoincareBall":
        return (x / np.linalg.norm(x) * scale).astype(F32)  # outside the unit ball
    if name == "Lorentz":
        return (x * scale).astype(F32)  # <x, x>_L = -scale^2
    if name in ("Stiefel", "Grassmann"):
        return (x + rng.uniform(0.5, 1.0) * x[:, :1]).astype(F32)  # full rank, not orthonormal
    if name == "SO3":
        return (x * np.array([1.0, 1.0, -1.0], F32)).astype(F32)  # a reflection, det = -1
    if name == "SE3":
        off = x.copy()
        off[3, :3] = rng.uniform(0.5, 1.0, 3)  # bottom row not (0, 0, 0, 1)
        return off
    if name == "Product":
        return (x[0] * scale, (x[1] / np.linalg.norm(x[1]) * scale).astype(F32))
    # SPD metrics: indefinite, or SPD plus a skew part
    if seed % 2:
        return indefinite(seed, 2).astype(F32)
    skew = rng.uniform(0.5, 1.0)
    return (spd(seed, 2) + np.array([[0.0, skew], [-skew, 0.0]])).astype(F32)


OFF = [n for n in FACTORIES if n != "Euclidean"]  # every finite array is a point of R^n


@pytest.mark.parametrize("name", OFF)
@given(seed=st.integers(0, 1000))
def test_off_manifold_point_is_flagged_and_projx_returns_on(name, seed):
    """Methods never raise on an off-manifold point (its values are unspecified, "Input
    domain"); ``check_point`` flags it; ``projx`` maps it back onto the manifold."""
    off = _off_manifold(name, seed)
    _, y, u = _valid(name)
    f = _jit_core(name)
    with jax.debug_nans(False):
        out = f(off, y, u, 0.3)  # no exception; the other values are unspecified
    assert _flagged(out["check_point"])
    back = out["projx"]
    assert leaves_finite(back)
    back_residual = f(back, y, u, 0.3)["check_point"]
    # projx is accurate to rounding: a few eps times the size of the (n <= 4) entries, squared
    # for the quadratic constraints (Lorentz: |c <x, x>_L + 1| with entries up to ~|x|).
    scale = max(1.0, max(float(np.max(np.abs(a))) for a in _leaves(back)) ** 2)
    assert float(back_residual) <= 64 * EPS * scale, f"projx gave residual {float(back_residual)}"


# ============================================================ valid edge input


def _edges(name):
    """Edge triples ``(x, y, u)`` of the manifold's shapes: coincident points with a zero tangent,
    and the manifold's own special points."""
    m = _manifold(name)
    x, y, u = _valid(name)
    zero = jax.tree.map(np.zeros_like, u)
    out = {"coincident": (x, x, zero), "coincident_u": (x, x, u), "zero_u": (x, y, zero)}
    if name == "Sphere":
        e = np.eye(3, dtype=F32)
        out["antipode"] = (e[0], -e[0], np.array([0, 0.5, 0], F32))
    if name == "PoincareBall":
        out["origin"] = (np.zeros(2, F32), np.zeros(2, F32), np.array([0.3, 0], F32))
    if name == "Lorentz":
        o = np.asarray(m.origin(), F32)
        out["origin"] = (o, o, np.zeros(3, F32))
    if name in ("SO3", "SE3"):
        k = 3 if name == "SO3" else 4
        rot_pi = np.diag([1.0, -1.0, -1.0] + [1.0] * (k - 3)).astype(F32)
        out["angle_pi"] = (np.eye(k, dtype=F32), rot_pi, zero)
    if name in SPD:
        eye = np.eye(2, dtype=F32)
        out["identity"] = (eye, eye, zero)
        out["repeated"] = (eye, 3 * eye, eye.copy())  # every eigenvalue repeated
    if name in ("Stiefel", "Grassmann"):
        e = np.eye(3, 2, dtype=F32)
        out["basis"] = (e, e, np.zeros((3, 2), F32))
    return out


def _edge_scalar(m, x, y, u):
    """``dist^2`` (through ``log`` where there is no closed form), ``norm`` at a possibly zero
    tangent and ``exp`` at a possibly zero tangent: the derivatives with removable
    singularities."""
    exp = m.exp(x, u)
    return m.dist(x, y) ** 2 + m.norm(x, u) + sum(jnp.sum(jnp.sin(a)) for a in _leaves(exp))


@functools.cache
def _jit_core_grad(name):
    m = _manifold(name)
    return jax.jit(jax.grad(lambda x, y, u: _edge_scalar(m, x, y, u), argnums=(0, 1, 2)))


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(data=st.data())
def test_edge_input_is_finite(name, data):
    edges = _edges(name)
    kind = data.draw(st.sampled_from(sorted(edges)))
    x, y, u = edges[kind]
    out = _jit_core(name)(x, y, u, 0.3)
    assert leaves_finite(out), kind
    if kind.startswith("coincident"):
        assert float(out["dist"]) == 0.0
        np.testing.assert_allclose(
            np.concatenate([np.ravel(a) for a in _leaves(out["log"])]), 0.0, atol=8 * EPS
        )


@pytest.mark.slow  # one gradient compile per manifold (about 25 s in all on one core)
@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(data=st.data())
def test_edge_input_has_finite_gradient(name, data):
    edges = _edges(name)
    kind = data.draw(st.sampled_from(sorted(edges)))
    assert leaves_finite(_jit_core_grad(name)(*edges[kind])), kind


TINY = {
    "Sphere(1)": lambda: gm.Sphere(1),
    "Grassmann(2, 2)": lambda: gm.Grassmann(2, 2),
    "Euclidean(())": lambda: gm.Euclidean(()),
    "SPDAffineInvariant(1)": lambda: gm.SPDAffineInvariant(1),
}
TINY_SLOW = {
    "Lorentz(1)": lambda: gm.Lorentz(1, 0.5),
    "SPDBuresWasserstein(1)": lambda: gm.SPDBuresWasserstein(1),
    "Stiefel(2, 1)": lambda: gm.Stiefel(2, 1, metric="canonical", retraction="polar"),
    "PoincareBall(1)": lambda: gm.PoincareBall(1, 2.0),
    "SPDLogCholesky(1)": lambda: gm.SPDLogCholesky(1),
    "SPDLogEuclidean(1)": lambda: gm.SPDLogEuclidean(1),
    "PowerDeformed(1)": lambda: gm.PowerDeformed(gm.SPDBuresWasserstein(1), -1.0),
}


@pytest.mark.parametrize(
    "name",
    sorted(TINY) + [pytest.param(n, marks=pytest.mark.slow) for n in sorted(TINY_SLOW)],
)
def test_tiny_sizes_are_finite(name):
    m = {**TINY, **TINY_SLOW}[name]()
    core = jax.jit(lambda x, y, u: _core(m, x, y, u, 0.3))
    x = m.random_point(jax.random.key(0))
    u = m.random_tangent(jax.random.key(1), x)
    y = core(x, x, 0.3 * u)["exp"]
    for args in ((x, y, u), (x, x, 0.0 * u)):
        assert leaves_finite(core(*args)), name


# ============================================================ extra methods


@given(
    method=UNKNOWN_OPTIONS,
    max_iter=st.sampled_from([100, -1, 2.5, True, None]),
    tol=st.sampled_from([None, 0.0, -1.0, float("nan"), "1e-6"]),
    which=st.sampled_from(["method", "max_iter", "tol"]),
)
def test_stiefel_log_with_info_bad_options_are_named(method, max_iter, tol, which):
    m = _manifold("Stiefel")
    x, y, _ = _valid("Stiefel")
    kwargs = {"method": "auto", "max_iter": 100, "tol": None}
    kwargs[which] = {"method": method, "max_iter": max_iter, "tol": tol}[which]
    if kwargs[which] in (100, None) and which != "method":
        return  # the valid value was drawn
    expect_named_error(lambda: m.log_with_info(x, y, **kwargs), name=which, jit=False)


@functools.cache
def _jit_log_with_info(method):
    m = _manifold("Stiefel")
    return jax.jit(lambda x, y: m.log_with_info(x, y, method=method, max_iter=30))


@given(
    method=st.sampled_from(["newton", "shooting"]),
    kind=st.sampled_from(["nan", "inf", "far", "coincident"]),
    index=st.integers(0, 5),
)
def test_stiefel_log_with_info_reports_status(method, kind, index):
    """Non-finite or far input gives converged=False (never NaN as a converged answer);
    coincident points converge to 0."""
    x, y, _ = _valid("Stiefel")
    if kind in ("nan", "inf"):
        y = poison(y, kind, index)
    elif kind == "far":
        y = -x  # distance ~ pi * sqrt(p): beyond the injectivity radius
    else:
        y = x
    with jax.debug_nans(False):
        sol = _jit_log_with_info(method)(x, y)
    no_silent_nan(sol, status_ok=lambda s: bool(s.converged))
    assert bool(sol.converged) == bool(sol.error <= 100 * np.sqrt(2) * EPS)
    if kind == "coincident":
        assert bool(sol.converged)
        np.testing.assert_allclose(sol.value, 0.0, atol=8 * EPS)
    if kind in ("nan", "inf"):
        assert not bool(sol.converged)


@given(which=st.sampled_from(["x", "y"]), dtype=st.sampled_from(BAD_DTYPES))
def test_grassmann_principal_angles_and_sqdist_bad_dtype_are_named(which, dtype):
    m = _manifold("Grassmann")
    x, y, _ = _valid("Grassmann")
    args = {"x": x, "y": y}
    args[which] = args[which].astype(dtype)
    for fn in (m.principal_angles, m.sqdist, _manifold("Stiefel").sqdist):
        expect_named_error(fn, args["x"], args["y"], name=which, jit=False)


def test_grassmann_extras_edge_input_is_finite():
    m = _manifold("Grassmann")
    f = jax.jit(lambda x, y: (m.principal_angles(x, y), m.sqdist(x, y), jax.grad(m.sqdist)(x, y)))
    e = np.eye(3, 2, dtype=F32)
    perp = np.eye(3, dtype=F32)[:, [0, 2]]  # one principal angle of pi/2 (the cut locus)
    for y in (e, perp, -e):
        assert leaves_finite(f(e, y))
    np.testing.assert_allclose(f(e, perp)[0], [0.0, np.pi / 2], atol=8 * EPS)


@pytest.mark.parametrize("name", ["SO3", "SE3"])
@given(
    method=st.sampled_from(["compose", "inverse", "act", "adjoint"]),
    dtype=st.sampled_from(BAD_DTYPES),
    shape_bad=st.booleans(),
)
def test_group_operations_bad_input_is_named(name, method, dtype, shape_bad):
    m = _manifold(name)
    x = _valid(name)[0]
    k = x.shape[0]
    bad = np.zeros((2, k, k), F32) if shape_bad else x.astype(dtype)
    args = {"compose": (x, bad), "inverse": (bad,), "act": (bad, np.ones(3, F32))}
    args["adjoint"] = (bad,)
    label = "y" if method == "compose" else "x"
    expect_named_error(getattr(m, method), *args[method], name=label, jit=False)
    if method == "act":
        expect_named_error(
            m.act, x, np.ones((2, 3), F32) if shape_bad else np.ones(3, dtype), name="p", jit=False
        )


@pytest.mark.parametrize("name", ["SO3", "SE3"])
def test_group_operations_edge_input_is_finite(name):
    m = _manifold(name)
    k = 3 if name == "SO3" else 4
    rot_pi = np.diag([1.0, -1.0, -1.0] + [1.0] * (k - 3)).astype(F32)
    for x in (np.eye(k, dtype=F32), rot_pi, _valid(name)[0]):
        out = (m.compose(x, x), m.inverse(x), m.act(x, np.zeros(3, F32)), m.adjoint(x))
        assert leaves_finite(out)
        np.testing.assert_allclose(m.compose(x, m.inverse(x)), np.eye(k), atol=8 * EPS)
    assert leaves_finite((m.identity(), m.identity(jnp.float32)))
    expect_named_error(m.identity, jnp.int32, name="dtype", jit=False)


# ============================================================ Frechet means

K = 3  # points per stack


@functools.cache
def _stack(name, seed=0):
    """``K`` points near each other (read-only numpy arrays: copy before writing)."""
    keys = jax.random.split(jax.random.key(seed), K)
    x0 = _valid(name)[0]
    core = _jit_core(name)  # compiled once per manifold anyway
    pts = [x0] + [core(x0, x0, _tangent(name, x0, k, 0.3), 0.3)["exp"] for k in keys[1:]]
    return jax.tree.map(lambda *a: np.asarray(jnp.stack(a), F32), *pts)


@functools.cache
def _jit_mean(name):
    m = _manifold(name)
    return jax.jit(lambda p, w: m.mean(p, w))


BAD_KINDS = ["empty", "bool", "int", "complex", "rank", "mismatch"]


@pytest.mark.parametrize("name", SPD)
@given(
    which=st.sampled_from(["points", "weights", "max_iter", "tol"]), bad=st.sampled_from(BAD_KINDS)
)
def test_spd_mean_structural_bad_input_is_named(name, which, bad):
    m = _manifold(name)
    pts, w = _stack(name), np.full(K, 1.0 / K, F32)
    kwargs = {"points": pts, "weights": w}
    if which in ("max_iter", "tol"):
        options = {"max_iter": [0, -1, 2.5, True, "3", None], "tol": [-1.0, float("nan"), "a"]}
        kwargs[which] = options[which][BAD_KINDS.index(bad) % len(options[which])]
    elif bad == "empty":
        kwargs[which] = kwargs[which][:0]
    elif bad == "rank":
        kwargs[which] = kwargs[which][None]
    elif bad in ("bool", "int", "complex"):
        kwargs[which] = kwargs[which].astype(
            {"bool": bool, "int": np.int32, "complex": np.complex64}[bad]
        )
    else:
        kwargs[which] = kwargs[which][:-1]  # mismatched k: reported on `weights`
        which = "weights"
    expect_named_error(lambda: m.mean(**kwargs), name=which, jit=False)


@pytest.mark.parametrize("name", SPD)
@given(
    bad=st.sampled_from(
        ["zero_weights", "cancelling_weights", "nan_weight", "poisoned_point", "indefinite_point"]
    ),
    kind=POISONS,
    index=st.integers(0, K * 4 - 1),
)
def test_spd_mean_bad_values_report_not_converged(name, bad, kind, index):
    """Weights summing to zero, a non-finite weight or point, or an indefinite point: the mean is
    reported ``converged=False`` (never NaN as a converged answer)."""
    pts, w = _stack(name), np.full(K, 1.0 / K, F32)
    if bad == "zero_weights":
        w = np.zeros(K, F32)
    elif bad == "cancelling_weights":
        w = np.array([1.0, -1.0, 0.0], F32)
    elif bad == "nan_weight":
        w = poison(w, kind, index)
    elif bad == "poisoned_point":
        pts = poison(pts, kind, index)
    else:
        pts = pts.copy()
        pts[index % K] = indefinite(index, 2).astype(F32)
    with jax.debug_nans(False):
        res = _jit_mean(name)(pts, w)
    no_silent_nan(res, status_ok=lambda r: bool(r.converged))
    if bad != "indefinite_point":  # an indefinite point may still give a finite mean
        assert not bool(res.converged), f"{name}.mean converged on {bad}"


@functools.cache
def _jit_mean_grad(name):
    m = _manifold(name)
    return jax.jit(jax.grad(lambda p, w: jnp.sum(jnp.sin(m.mean(p, w).mean)), argnums=(0, 1)))


def _edge_stack(name, kind):
    pts, w = _stack(name), np.full(K, 1.0 / K, F32)
    eye = np.eye(2, dtype=F32)
    if kind == "identical":
        pts = np.stack([pts[0]] * K)
    elif kind == "identity":
        pts = np.stack([eye] * K)
    elif kind == "repeated":
        pts = np.stack([eye, 2 * eye, 4 * eye])
    else:
        w = np.array([1.0, 0.0, 0.0], F32)
    return pts, w


@pytest.mark.parametrize("name", SPD)
@given(kind=st.sampled_from(["identical", "identity", "repeated", "one_weight"]))
def test_spd_mean_edge_input_converges_finite(name, kind):
    """Coincident points, identities, repeated eigenvalues, a single non-zero weight: converged
    and finite (derivatives: the slow test below)."""
    pts, w = _edge_stack(name, kind)
    res = _jit_mean(name)(pts, w)
    assert bool(res.converged), kind
    assert leaves_finite(res), kind


@pytest.mark.slow  # one gradient compile per metric (about 18 s in all on one core)
@pytest.mark.parametrize("name", SPD)
@given(kind=st.sampled_from(["identical", "identity", "repeated", "one_weight"]))
def test_spd_mean_edge_input_has_finite_gradient(name, kind):
    pts, w = _edge_stack(name, kind)
    assert leaves_finite(_jit_mean_grad(name)(pts, w)), kind


FRECHET = ["Sphere", "Product"]  # an array and a tuple (pytree) point; the flow is generic


@functools.cache
def _jit_frechet(name):
    m = _manifold(name)
    return jax.jit(lambda p, w: gm.frechet_mean(m, p, w, max_iter=200, tol=1e-5))


@given(
    which=st.sampled_from(
        ["points", "weights", "max_iter", "tol", "step_size", "init", "manifold"]
    ),
    variant=st.integers(0, 4),
)
def test_frechet_mean_structural_bad_input_is_named(which, variant):
    m = _manifold("Sphere")
    pts, w = _stack("Sphere"), np.full(K, 1.0 / K, F32)
    kwargs = {"manifold": m, "points": pts, "weights": w}
    bad = {
        "points": [pts[:0], pts[None], pts[:, :2], pts.astype(np.int32), pts.astype(bool)],
        "weights": [w[:2], w[None], w.astype(np.int32), w.astype(np.complex64), w[:0]],
        "max_iter": [0, -3, 2.5, True, "10"],
        "tol": [-1.0, float("nan"), "1e-6", None, np.ones(2, F32)],
        "step_size": [0.0, -1.0, float("nan"), "1", True],
        "init": [pts, pts[0, :2], (pts[0],), pts[0][None], np.zeros((2, 3), F32)],
        "manifold": [None, "Sphere", 3, gm.Sphere, object()],
    }[which][variant]
    kwargs[which] = bad
    expect_named_error(lambda: gm.frechet_mean(**kwargs), name=which, jit=False)


@pytest.mark.parametrize("name", FRECHET)
@given(
    bad=st.sampled_from(
        ["zero_weights", "cancelling_weights", "poisoned_weight", "poisoned_point"]
    ),
    kind=POISONS,
    index=st.integers(0, 63),
)
def test_frechet_mean_bad_values_report_not_converged(name, bad, kind, index):
    pts, w = _stack(name), np.full(K, 1.0 / K, F32)
    if bad == "zero_weights":
        w = np.zeros(K, F32)
    elif bad == "cancelling_weights":
        w = np.array([1.0, -1.0, 0.0], F32)
    elif bad == "poisoned_weight":
        w = poison(w, kind, index)
    else:
        pts = _poison_tree(pts, kind, index)
    with jax.debug_nans(False):
        res = _jit_frechet(name)(pts, w)
    no_silent_nan(res, status_ok=lambda r: bool(r.converged))
    assert not bool(res.converged), f"frechet_mean({name}) converged on {bad}"


@pytest.mark.parametrize("name", FRECHET)
@given(kind=st.sampled_from(["identical", "one_weight", "spread"]))
def test_frechet_mean_edge_input_converges_finite(name, kind):
    pts, w = _stack(name), np.full(K, 1.0 / K, F32)
    if kind == "identical":
        pts = jax.tree.map(lambda a: np.stack([a[0]] * K), pts)
    elif kind == "one_weight":
        w = np.array([0.0, 1.0, 0.0], F32)
    res = _jit_frechet(name)(pts, w)
    assert leaves_finite(res)
    assert bool(res.converged), kind


def test_frechet_mean_single_point_is_itself():
    pts = _stack("Sphere")[:1]
    res = gm.frechet_mean(_manifold("Sphere"), pts)
    assert bool(res.converged) and int(res.n_iters) == 0
    np.testing.assert_array_equal(res.mean, pts[0])


# ============================================================ Loki


@given(
    which=st.sampled_from(["probs", "label_points_or_distances", "candidates", "metric"]),
    variant=st.integers(0, 3),
)
def test_loki_structural_bad_input_is_named(which, variant):
    probs = np.array([0.2, 0.3, 0.5], F32)
    labels = np.eye(3, dtype=F32)
    kwargs = {"probs": probs, "label_points_or_distances": labels, "metric": _manifold("Sphere")}
    bad = {
        "probs": [probs[:0], probs[None], probs.astype(np.int32), probs.astype(np.complex64)],
        "label_points_or_distances": [labels[:2], labels[:, :2], labels.astype(bool), labels[None]],
        "candidates": [labels[:0], labels[:, :2], labels.astype(np.int32), labels[0]],
        "metric": ["sphere", 3, gm.Sphere, _manifold("Product")],
    }[which][variant]
    kwargs[which] = bad
    for fn in (gm.loki_predict, gm.loki_scores):
        expect_named_error(lambda: fn(**kwargs), name=which, jit=False)


@given(
    which=st.sampled_from(["probs", "label_points_or_distances"]),
    kind=POISONS,
    index=st.integers(0, 8),
)
def test_loki_poisoned_values_give_non_finite_scores(which, kind, index):
    """NaN/inf probabilities or distances give non-finite scores; ``loki_predict`` then returns
    the argmin's documented pick (the first NaN score, else the smallest)."""
    probs = np.array([0.2, 0.3, 0.5], F32)
    dist = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]], F32)
    args = {"probs": probs, "label_points_or_distances": dist}
    args[which] = poison(args[which], kind, index)
    with jax.debug_nans(False):
        scores = np.asarray(gm.loki_scores(**args))
        pick = int(gm.loki_predict(**args))
    assert not leaves_finite(scores) or (which == "probs" and kind == "-inf")
    nan = np.flatnonzero(np.isnan(scores))
    assert pick == (int(nan[0]) if nan.size else int(np.argmin(scores)))


def test_loki_edge_input():
    one = gm.loki_predict(np.ones(1, F32), np.zeros((1, 1), F32))
    assert int(one) == 0
    ties = gm.loki_predict(np.full(3, 1 / 3, F32), np.zeros((3, 3), F32))
    assert int(ties) == 0  # ties go to the lowest index
    zero = gm.loki_scores(np.zeros(3, F32), np.eye(3, dtype=F32), metric=_manifold("Sphere"))
    np.testing.assert_array_equal(zero, 0.0)


# ============================================================ functions


def _shape_ok(name, arg, shape, args):
    """Whether ``shape`` is a valid shape of argument ``arg`` (the others as in ``args``)."""
    if (name, arg) in SCALAR_ARGS:
        return shape == ()
    variable = {  # functions of any dimension d
        ("mobius_scalar_mul", "x"): lambda s: len(s) == 1 and s[0] >= 1,
        ("poincare_to_lorentz", "p"): lambda s: len(s) == 1 and s[0] >= 1,
        ("lorentz_to_poincare", "x"): lambda s: len(s) == 1 and s[0] >= 2,
        ("mobius_matvec", "m"): lambda s: len(s) == 2 and s[0] >= 1 and s[1] == 2,
    }
    if (name, arg) in variable:
        return variable[(name, arg)](shape)
    return shape == np.shape(args[arg])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(data=st.data())
def test_function_wrong_shape_is_named(name, data):
    fn, args = FUNCTIONS[name]
    arg = data.draw(st.sampled_from(sorted(args)))
    good = np.asarray(args[arg])
    if (name, arg) in SCALAR_ARGS:
        shape = data.draw(small_shapes(1, 3))
    else:
        shape = data.draw(wrong_shape(good.shape))
    bad = dict(args, **{arg: np.full(shape, 0.1, F32)})
    if _shape_ok(name, arg, shape, args):
        assert leaves_finite(fn(**bad))  # another valid size
    else:
        expect_named_error(lambda: fn(**bad), name=arg, jit=False)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(data=st.data(), dtype=st.sampled_from(BAD_DTYPES))
def test_function_bad_dtype_is_named(name, data, dtype):
    fn, args = FUNCTIONS[name]
    arg = data.draw(st.sampled_from(sorted(args)))
    if (name, arg) in SCALAR_ARGS and dtype != jnp.complex64:
        return  # an int or bool scalar angle / factor is cast (documented "scalar")
    bad = dict(args, **{arg: np.asarray(args[arg]).astype(dtype)})
    err = expect_named_error(lambda: fn(**bad), name=arg, jit=False)
    assert isinstance(err, TypeError)


@pytest.mark.parametrize("name", CURVATURE_FUNCTIONS)
@given(c=st.sampled_from([0.0, -1.0, float("nan"), float("inf"), "1", np.ones(2, F32), 1j, True]))
def test_bad_curvature_is_named(name, c):
    fn, args = FUNCTIONS[name]
    expect_named_error(lambda: fn(**args, c=c), name="c", jit=False)


@functools.cache
def _jit_function(name):
    fn, _ = FUNCTIONS[name]
    return jax.jit(lambda kw: fn(**kw))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(data=st.data(), kind=POISONS, index=st.integers(0, 15))
def test_function_poisoned_input_gives_non_finite_output(name, data, kind, index):
    """Never an exception; NaN in, NaN out (a NaN entry that is read gives a non-finite output);
    an infinite entry gives unspecified values ("Input domain" of the module docstrings: e.g.
    ``lorentz_to_poincare`` maps an infinite ``x_0`` to the origin)."""
    fn, args = FUNCTIONS[name]
    arg = data.draw(st.sampled_from(sorted(args)))
    bad = dict(args, **{arg: poison(np.asarray(args[arg]), kind, index)})
    with jax.debug_nans(False):
        out = _jit_function(name)(bad)
    if kind == "nan" and not _unread_entry(name, index, bad[arg]):
        assert not leaves_finite(out), (name, arg)


def _unread_entry(name, index, value):
    """The bottom row of ``vee_se3``'s and ``log_se3``'s input is not read (documented)."""
    return name in ("vee_se3", "log_se3") and index % value.size >= 12


EDGE_FUNCTION_INPUTS = {
    "hat": [{"w": np.zeros(3, F32)}],
    "vee": [{"m": np.zeros((3, 3), F32)}],
    "exp_so3": [{"w": np.zeros(3, F32)}, {"w": np.array([0, 0, np.pi], F32)}],
    "log_so3": [{"R": np.eye(3, dtype=F32)}, {"R": np.diag([1.0, -1.0, -1.0]).astype(F32)}],
    "rotation_angle": [{"R": np.eye(3, dtype=F32)}, {"R": np.diag([-1.0, -1.0, 1.0]).astype(F32)}],
    "left_jacobian_so3": [{"w": np.zeros(3, F32)}],
    "inv_left_jacobian_so3": [{"w": np.zeros(3, F32)}, {"w": np.array([0, 0, np.pi], F32)}],
    "quat_to_matrix": [{"q": np.array([1, 0, 0, 0], F32)}, {"q": np.array([0, 0, 0, 1], F32)}],
    "matrix_to_quat": [{"R": np.eye(3, dtype=F32)}, {"R": np.diag([-1.0, -1.0, 1.0]).astype(F32)}],
    "axis_angle_to_matrix": [{"axis": np.array([0, 0, 1], F32), "angle": np.asarray(0.0, F32)}],
    "matrix_to_axis_angle": [
        {"R": np.eye(3, dtype=F32)},
        {"R": np.diag([-1.0, -1.0, 1.0]).astype(F32)},
    ],
    "hat_se3": [{"xi": np.zeros(6, F32)}],
    "vee_se3": [{"m": np.zeros((4, 4), F32)}],
    "exp_se3": [{"xi": np.zeros(6, F32)}],
    "log_se3": [{"T": np.eye(4, dtype=F32)}, {"T": np.diag([1.0, -1.0, -1.0, 1.0]).astype(F32)}],
    "mobius_add": [
        {"x": np.zeros(2, F32), "y": np.zeros(2, F32)},
        {"x": np.array([0.5, 0], F32), "y": np.array([-0.5, 0], F32)},
    ],
    "mobius_matvec": [
        {"m": np.zeros((3, 2), F32), "x": np.zeros(2, F32)},
        {"m": np.ones((3, 2), F32), "x": np.zeros(2, F32)},
    ],
    "mobius_scalar_mul": [
        {"r": np.asarray(0.0, F32), "x": np.zeros(2, F32)},
        {"r": np.asarray(3.0, F32), "x": np.zeros(2, F32)},
    ],
    "minkowski_inner": [{"u": np.zeros(3, F32), "v": np.zeros(3, F32)}],
    "lorentz_to_poincare": [{"x": np.array([1.0, 0.0, 0.0], F32)}],
    "poincare_to_lorentz": [{"p": np.zeros(2, F32)}],
    "bures_wasserstein_sqdist": [
        {"a": np.eye(2, dtype=F32), "b": np.eye(2, dtype=F32)},
        {"a": np.eye(2, dtype=F32), "b": 4 * np.eye(2, dtype=F32)},
        {"a": spd(3, 2).astype(F32), "b": spd(3, 2).astype(F32)},
    ],
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_edge_input_is_finite(name):
    for kwargs in EDGE_FUNCTION_INPUTS[name]:
        assert leaves_finite(_jit_function(name)(kwargs)), (name, kwargs)


@functools.cache
def _jit_function_grad(name):
    fn, _ = FUNCTIONS[name]
    scalar = lambda kw: sum(jnp.sum(jnp.sin(a)) for a in jax.tree.leaves(fn(**kw)))  # noqa: E731
    return jax.jit(jax.grad(scalar))


@pytest.mark.slow  # one gradient compile per function (about 10 s in all on one core)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_edge_input_has_finite_gradient(name):
    for kwargs in EDGE_FUNCTION_INPUTS[name]:
        assert leaves_finite(_jit_function_grad(name)(kwargs)), (name, kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("quat_to_matrix", {"q": np.zeros(4, F32)}),
        ("axis_angle_to_matrix", {"axis": np.zeros(3, F32), "angle": np.asarray(0.5, F32)}),
        (
            "bures_wasserstein_sqdist",
            {"a": indefinite(0, 2).astype(F32), "b": np.eye(2, dtype=F32)},
        ),
    ],
)
def test_documented_invalid_input_gives_nan(name, kwargs):
    """Outside the documented domain (a zero quaternion or axis; an indefinite matrix) the result
    is NaN, as the docstrings state, not a finite wrong answer."""
    with jax.debug_nans(False):
        out = _jit_function(name)(kwargs)
    assert np.all(np.isnan(np.asarray(out)))


@pytest.mark.parametrize("name", ["PoincareBall", "Lorentz"])
@given(scale=st.sampled_from(["1", None, np.ones(2, F32), 1j, np.asarray(True)]))
def test_bad_random_point_scale_is_named(name, scale):
    m = _manifold(name)
    expect_named_error(
        lambda: m.random_point(jax.random.key(0), scale=scale), name="scale", jit=False
    )
