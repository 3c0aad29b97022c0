"""Shared machinery of the fuzz suite: bad-input strategies and the outcome checks.

The contract every public function is held to (issue 15, DESIGN.md "Three tiers of errors"):

* structural bad input (wrong rank or shape, mismatched sizes, empty arrays, integer, boolean or
  complex dtypes, unknown option strings) raises ``ValueError`` or ``TypeError`` at trace time
  whose message names the argument in backticks, e.g. "argument `x` must ...";
* value-bad input (NaN or inf entries, zero or negative weights, non-symmetric or indefinite
  "SPD" matrices, points off the manifold) cannot be seen at trace time under ``jit``: the
  function either reports it through a status (``converged=False`` / a nonzero status code), or
  returns what its docstring documents for such input (for example "NaN in, NaN out");
* valid edge input (zeros, identity, repeated eigenvalues, coincident points) returns finite
  values, gradients included.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

STRUCTURAL_ERRORS = (ValueError, TypeError)

BAD_DTYPES = (jnp.int32, jnp.bool_, jnp.complex64)


def expect_named_error(fn, *args, name: str, jit: bool = True, **kwargs) -> Exception:
    """Call ``fn`` (jitted unless ``jit=False``) and require a ValueError/TypeError naming ``name``.

    ``name`` is the argument the message must mention, written in backticks by geomjax's
    validation helpers (`x`). Returns the exception for further checks.
    """
    call = jax.jit(fn, static_argnames=tuple(kwargs)) if jit else fn
    try:
        out = call(*args, **kwargs)
        jax.block_until_ready(out)
    except STRUCTURAL_ERRORS as err:
        message = str(err)
        assert f"`{name}`" in message, f"error does not name `{name}`: {message!r}"
        return err
    raise AssertionError(
        f"{getattr(fn, '__name__', fn)} accepted bad `{name}` without an error "
        f"(returned {jax.tree.map(jnp.shape, out)})"
    )


def leaves_finite(tree) -> bool:
    """True when every floating leaf of ``tree`` is finite (integer and bool leaves pass)."""
    for leaf in jax.tree.leaves(tree):
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            return False
    return True


def leaves_all_nan(tree) -> bool:
    """True when every floating leaf is entirely NaN (a clear "invalid" marker, not a half-answer)."""
    floats = [np.asarray(x) for x in jax.tree.leaves(tree)]
    floats = [x for x in floats if np.issubdtype(x.dtype, np.inexact)]
    return bool(floats) and all(np.all(np.isnan(x)) for x in floats)


def no_silent_nan(out, *, status_ok=None) -> None:
    """Require ``out`` to be finite, unless its status says it is not a valid answer.

    ``status_ok``: a callable on ``out`` returning True when ``out`` claims to be a valid answer
    (e.g. ``lambda r: bool(r.converged)``). Where it claims validity, every float leaf must be
    finite.
    """
    if status_ok is not None and not status_ok(out):
        return
    assert leaves_finite(out), "non-finite values returned as a valid answer"


def has_backticked_name(message: str) -> bool:
    """True when an error message names some argument in backticks."""
    return re.search(r"`[A-Za-z_][A-Za-z0-9_.\[\]]*`", message) is not None


# -- strategies --------------------------------------------------------------------------------


def small_shapes(min_dims: int = 0, max_dims: int = 4, max_side: int = 4):
    """Array shapes with small sides (0 included: empty arrays)."""
    return st.lists(st.integers(0, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def wrong_shape(correct: tuple[int, ...], max_side: int = 5):
    """A shape that differs from ``correct``: a batch dim added, a dim dropped, a side changed,
    or an empty side."""
    correct = tuple(correct)
    options = [st.just((2, *correct))]
    if correct:
        options.append(st.just(correct[:-1]))
        options.append(
            st.integers(0, len(correct) - 1).flatmap(
                lambda i: (
                    st.integers(0, max_side)
                    .filter(lambda s, i=i: s != correct[i])
                    .map(lambda s, i=i: correct[:i] + (s,) + correct[i + 1 :])
                )
            )
        )
    else:
        options.append(st.just((1,)))
    return st.one_of(*options)


def poison(x: np.ndarray, kind: str, index: int = 0) -> np.ndarray:
    """Put one NaN, +inf or -inf into a copy of ``x`` (flat ``index`` modulo its size)."""
    x = np.array(x, copy=True)
    value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
    if x.size:
        x.reshape(-1)[index % x.size] = value
    return x


POISONS = st.sampled_from(["nan", "inf", "-inf"])

UNKNOWN_OPTIONS = st.sampled_from(["", "bogus", "EXACT", "none ", "l2x", "Cholesky"])


def spd(key_int: int, n: int, cond: float = 10.0, dtype=np.float64) -> np.ndarray:
    """A random SPD matrix with condition number ``cond`` (deterministic in ``key_int``)."""
    rng = np.random.default_rng(key_int)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, cond, n) if n > 1 else np.ones(1)
    return ((q * lam) @ q.T).astype(dtype)


def indefinite(key_int: int, n: int, dtype=np.float64) -> np.ndarray:
    """A random symmetric matrix with one negative eigenvalue (n >= 1)."""
    rng = np.random.default_rng(key_int)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, 10.0, n) if n > 1 else np.ones(1)
    lam[0] = -1.0
    return ((q * lam) @ q.T).astype(dtype)
