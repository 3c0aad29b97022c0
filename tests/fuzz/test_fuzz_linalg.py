"""Fuzz suite for geomjax.linalg: bad shapes, dtypes and options raise named errors at trace time;
non-finite, non-symmetric and non-SPD input gives what each docstring's "Input domain" states;
valid edge input (identity, zeros, repeated eigenvalues, n = 1) is finite, gradients included.

The shapes are fixed per test (float32, n = 3, a batch of 2) so that hypothesis varies values and
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
    expect_named_error,
    indefinite,
    leaves_finite,
    poison,
    small_shapes,
    spd,
    wrong_shape,
)
from hypothesis import given
from hypothesis import strategies as st

from geomjax.linalg import (
    expm,
    invsqrtm,
    logm,
    nuclear_norm,
    powm,
    solve_lyapunov,
    spectral_fn,
    sqrtm,
    sym,
)

COVERED = {
    "geomjax.linalg": {
        "expm",
        "invsqrtm",
        "logm",
        "nuclear_norm",
        "powm",
        "solve_lyapunov",
        "spectral_fn",
        "sqrtm",
        "sym",
    }
}
EXEMPT: dict[str, dict[str, str]] = {"geomjax.linalg": {}}

N = 3
F32 = np.float32


def _powm_half(x):
    return powm(x, 0.5)


def _powm_array(x):
    return powm(x, jnp.asarray(0.5, jnp.result_type(x)))


_cube = spectral_fn(lambda t: t**3, name="cube")

# Every one-matrix function, with the name of its matrix argument.
ONE_MATRIX = {
    "sqrtm": (sqrtm, "x"),
    "invsqrtm": (invsqrtm, "x"),
    "logm": (logm, "x"),
    "expm": (expm, "x"),
    "powm": (_powm_half, "x"),
    "powm_array": (_powm_array, "x"),
    "sym": (sym, "x"),
    "nuclear_norm": (nuclear_norm, "c"),
    "spectral_fn": (_cube, "x"),
}
# Functions of SPD matrices whose value is undefined off the SPD cone.
SPD_ONLY = {"sqrtm": sqrtm, "invsqrtm": invsqrtm, "logm": logm, "powm": _powm_half}
SPD_ONLY["powm_array"] = _powm_array
SPECTRAL = {**SPD_ONLY, "expm": expm, "spectral_fn": _cube}

_JIT = {name: jax.jit(fn) for name, (fn, _) in ONE_MATRIX.items()}
_lyap = jax.jit(solve_lyapunov)


def _not_square(shape):
    return len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] == 0


NOT_SQUARE = small_shapes(0, 4).filter(_not_square)


def _no_finite_entry(a) -> bool:
    return not np.any(np.isfinite(np.asarray(a)))


def _spd_batch(seed: int) -> np.ndarray:
    return np.stack([spd(seed, N), spd(seed + 1, N)]).astype(F32)


# -- structural: shapes, dtypes, options -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ONE_MATRIX))
@given(shape=NOT_SQUARE)
def test_not_square_is_named(name, shape):
    fn, arg = ONE_MATRIX[name]
    expect_named_error(fn, np.zeros(shape, F32), name=arg)


@pytest.mark.parametrize("name", sorted(ONE_MATRIX))
@given(dtype=st.sampled_from(BAD_DTYPES))
def test_bad_dtype_is_named(name, dtype):
    fn, arg = ONE_MATRIX[name]
    err = expect_named_error(fn, jnp.eye(N, dtype=dtype), name=arg)
    assert isinstance(err, TypeError)


@given(
    p=st.sampled_from(
        ["0.5", True, 0.5j, float("nan"), float("inf"), -float("inf"), None, [0.5, 0.5]]
    )
)
def test_powm_bad_python_p_is_named(p):
    expect_named_error(powm, jnp.eye(N), p, name="p", jit=False)


@given(
    p=st.sampled_from(
        [
            jnp.asarray(0.5j),
            jnp.asarray(True),
            jnp.ones(3),  # batch is (2,)
            jnp.ones((2, 2)),  # more dims than the batch
            jnp.ones((1, 2)),
        ]
    )
)
def test_powm_bad_array_p_is_named(p):
    expect_named_error(powm, jnp.stack([jnp.eye(N)] * 2), p, name="p", jit=False)


def test_powm_array_p_broadcasts_over_the_batch():
    x = _spd_batch(0)
    for p in (jnp.asarray(0.5), jnp.asarray([0.5]), jnp.asarray([0.5, 0.5])):
        np.testing.assert_allclose(powm(x, p), sqrtm(x), rtol=1e-4, atol=1e-5)  # float32


@given(which=st.sampled_from(["a", "x", "m"]), shape=wrong_shape((N, N)) | NOT_SQUARE)
def test_lyapunov_mismatched_shapes_are_named(which, shape):
    """A wrong rank, a wrong side, an empty side or a batch only one argument has."""
    args = {"a": np.eye(N, dtype=F32), "x": np.ones((N, N), F32), "m": np.eye(N, dtype=F32)}
    args[which] = np.ones(shape, F32)
    expect_named_error(solve_lyapunov, args["a"], args["x"], args["m"], name=which)


@given(which=st.sampled_from(["a", "x", "m"]), dtype=st.sampled_from(BAD_DTYPES))
def test_lyapunov_bad_dtype_is_named(which, dtype):
    args = {"a": jnp.eye(N), "x": jnp.ones((N, N)), "m": jnp.eye(N)}
    args[which] = args[which].astype(dtype)
    err = expect_named_error(solve_lyapunov, args["a"], args["x"], args["m"], name=which)
    assert isinstance(err, TypeError)


@given(
    arg=st.sampled_from(["f", "df", "dd", "name"]),
    bad=st.sampled_from([1, "exp", 2.5, (jnp.exp,)]),
)
def test_spectral_fn_bad_builder_arguments_are_named(arg, bad):
    kwargs = {"f": jnp.exp, "df": None, "dd": None, "name": "f_of_x"}
    if arg == "name" and bad == "exp":
        bad = 3  # a str is a valid name
    kwargs[arg] = bad
    expect_named_error(lambda: spectral_fn(**kwargs), name=arg, jit=False)


@given(f=st.sampled_from([jnp.sum, lambda t: t[..., :1], lambda t: jnp.outer(t, t), jnp.mean]))
def test_spectral_fn_non_elementwise_f_is_named(f):
    expect_named_error(spectral_fn(f, name="bad_f"), jnp.eye(N), name="f")


# -- value-bad input: the documented outcome ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(ONE_MATRIX))
@given(
    kind=POISONS, index=st.integers(0, N * N - 1), which=st.integers(0, 1), seed=st.integers(0, 3)
)
def test_poisoned_matrix_gives_no_finite_entry_and_spares_the_batch(name, kind, index, which, seed):
    """A NaN/inf entry poisons that matrix's output (no finite entry; for sym only the two
    mirrored entries), never a neighbour in the batch."""
    x = _spd_batch(seed)
    x[which] = poison(x[which], kind, index)
    with jax.debug_nans(False):
        out = np.asarray(_JIT[name](x))
    other = 1 - which
    assert leaves_finite(out[other]), "a poisoned matrix leaked into its batch neighbour"
    if name == "sym":
        i, j = divmod(index, N)
        bad = ~np.isfinite(out[which])
        assert bad[i, j] and bad[j, i] and bad.sum() == (1 if i == j else 2)
    else:
        assert _no_finite_entry(out[which])


@pytest.mark.parametrize("name", sorted(SPD_ONLY))
@given(seed=st.integers(0, 50))
def test_indefinite_input_gives_no_finite_entry(name, seed):
    x = np.stack([indefinite(seed, N), spd(seed, N)]).astype(F32)
    with jax.debug_nans(False):
        out = np.asarray(_JIT[name](x))
    assert _no_finite_entry(out[0])
    assert leaves_finite(out[1])


@pytest.mark.parametrize("name", ["invsqrtm", "logm"])
def test_singular_input_gives_no_finite_entry(name):
    with jax.debug_nans(False):
        out = np.asarray(
            _JIT[name](np.stack([np.zeros((N, N), F32), np.diag([0.0, 1.0, 2.0]).astype(F32)]))
        )
    assert _no_finite_entry(out[0]) and _no_finite_entry(out[1])


@given(seed=st.integers(0, 50))
def test_expm_and_nuclear_norm_accept_any_finite_matrix(seed):
    """expm takes any symmetric matrix; nuclear_norm any square one (indefinite, non-symmetric)."""
    rng = np.random.default_rng(seed)
    x = np.stack([indefinite(seed, N), rng.standard_normal((N, N))]).astype(F32)
    assert leaves_finite(_JIT["expm"](x))
    nn = _JIT["nuclear_norm"](x)
    assert leaves_finite(nn)
    ref = np.linalg.svd(x.astype(np.float64), compute_uv=False).sum(-1)
    np.testing.assert_allclose(nn, ref, rtol=20 * np.finfo(F32).eps * N)  # SVD backward error


def test_expm_overflow_gives_no_finite_entry():
    top = np.log(np.finfo(F32).max)  # about 88.7
    x = np.stack([np.diag([0.0, 1.0, top + 1.0]), np.eye(N)]).astype(F32)
    with jax.debug_nans(False):
        out = np.asarray(_JIT["expm"](x))
    assert _no_finite_entry(out[0]) and leaves_finite(out[1])


@pytest.mark.parametrize("name", sorted(SPECTRAL))
@given(seed=st.integers(0, 50))
def test_only_the_symmetric_part_is_used(name, seed):
    x = _spd_batch(seed)
    skew = np.random.default_rng(seed).standard_normal((2, N, N)).astype(F32)
    skew = skew - np.swapaxes(skew, -1, -2)
    got, want = _JIT[name](x + skew), _JIT[name](x)
    # eigh symmetrizes its input first: the same matrix up to rounding of (x + x^T) / 2.
    scale = np.max(np.abs(want))
    np.testing.assert_allclose(got, want, atol=100 * np.finfo(F32).eps * N * scale)


@given(
    which=st.sampled_from(["a", "x", "m"]),
    kind=POISONS,
    index=st.integers(0, N * N - 1),
    seed=st.integers(0, 3),
)
def test_lyapunov_poisoned_argument_gives_no_finite_entry(which, kind, index, seed):
    args = {"a": spd(seed, N).astype(F32), "x": spd(seed + 7, N).astype(F32)}
    args["m"] = spd(seed + 3, N).astype(F32)
    args[which] = poison(args[which], kind, index)
    with jax.debug_nans(False):
        out = _lyap(args["a"], args["x"], args["m"])
    assert _no_finite_entry(out)


@given(seed=st.integers(0, 50))
def test_lyapunov_indefinite_m_or_zero_a_gives_no_finite_entry(seed):
    a, x = spd(seed, N).astype(F32), spd(seed + 1, N).astype(F32)
    with jax.debug_nans(False):
        assert _no_finite_entry(_lyap(a, x, indefinite(seed, N).astype(F32)))
        assert _no_finite_entry(_lyap(np.zeros((N, N), F32), x, None))


@given(seed=st.integers(0, 50))
def test_lyapunov_indefinite_a_still_solves_a_regular_equation(seed):
    """An indefinite ``a`` whose eigenvalue sums stay away from 0 still gives the solution."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    a = ((q * np.array([-1.0, 2.0, 3.0])) @ q.T).astype(F32)  # mu_i + mu_j in {-2, 1, 2, ...}
    x = rng.standard_normal((N, N)).astype(F32)
    k = np.asarray(_lyap(a, x, None), np.float64)
    assert leaves_finite(k)
    residual = a @ k + k @ a - x
    # |residual| <~ eps * |a| |k| per product; cond of the operator is max|mu_i + mu_j| / 1 = 6.
    tol = 50 * np.finfo(F32).eps * N * np.abs(a).max() * np.abs(k).max()
    np.testing.assert_allclose(residual, 0.0, atol=tol)


# -- valid edge input: finite values and gradients ---------------------------------------------


def _edge_matrices(n: int) -> dict[str, np.ndarray]:
    rep = np.full(n, 2.0)
    rep[-1] = 5.0 if n > 1 else 2.0
    q, _ = np.linalg.qr(np.random.default_rng(n).standard_normal((n, n)))
    return {
        "identity": np.eye(n),
        "scaled_identity": 1e-3 * np.eye(n),
        "repeated": (q * rep) @ q.T,  # a repeated eigenvalue, not diagonal
        "ill_conditioned": spd(n, n, cond=1e5) / 1e5,  # eigenvalues 1e-5 ... 1
    }


_GRAD = {
    name: jax.jit(jax.grad(lambda x, fn=fn: jnp.sum(jnp.sin(fn(x)))))
    for name, (fn, _) in ONE_MATRIX.items()
}


@pytest.mark.parametrize("name", sorted(ONE_MATRIX))
@given(
    n=st.sampled_from([1, 3]),
    kind=st.sampled_from(["identity", "scaled_identity", "repeated", "ill_conditioned"]),
)
def test_edge_input_is_finite_with_finite_gradient(name, n, kind):
    x = _edge_matrices(n)[kind].astype(F32)
    assert leaves_finite(_JIT[name](x))
    assert leaves_finite(_GRAD[name](x))


@pytest.mark.parametrize("name", ["sqrtm", "expm", "sym", "nuclear_norm", "spectral_fn"])
def test_zero_matrix_is_finite_with_finite_gradient(name):
    z = np.zeros((N, N), F32)
    assert leaves_finite(_JIT[name](z))
    if name != "sqrtm":  # d sqrt(t) / dt is infinite at t = 0
        assert leaves_finite(_GRAD[name](z))


def test_lyapunov_edge_input_is_finite_with_finite_gradient():
    grad = jax.jit(jax.grad(lambda a, x, m: jnp.sum(solve_lyapunov(a, x, m)), argnums=(0, 1, 2)))
    for n in (1, 2, 3):
        for a in _edge_matrices(n).values():
            a = a.astype(F32)
            eye = np.eye(n, dtype=F32)
            assert leaves_finite(_lyap(a, np.zeros((n, n), F32), eye))
            assert leaves_finite(_lyap(a, eye, a))
            assert leaves_finite(grad(a, eye, a))


def test_empty_batch_keeps_its_shape():
    """A batch dimension of size 0 is not an error for the batched (..., n, n) functions."""
    x = np.zeros((0, N, N), F32)
    for name, fn in ((k, v[0]) for k, v in ONE_MATRIX.items()):
        want = (0,) if name == "nuclear_norm" else (0, N, N)
        assert fn(x).shape == want, name
    assert solve_lyapunov(x, x, x).shape == (0, N, N)
