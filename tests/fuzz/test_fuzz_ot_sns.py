"""Fuzz suite for ``geomjax.ot.sinkhorn_newton_sparse`` under the contract of ``_fuzz.py``:
structural bad input raises naming the argument; NaN/inf in the cost never comes back as a
converged answer with non-finite values; a valid problem converges with finite outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _fuzz import POISONS, expect_named_error, no_silent_nan, poison
from hypothesis import given, settings
from hypothesis import strategies as st

from geomjax import ot

COVERED = {"geomjax.ot": {"sinkhorn_newton_sparse"}}
EXEMPT = {
    "geomjax.ot": {
        "SinkhornNewtonSparseOutput": "a result type (NamedTuple), no input; "
        "sinkhorn_newton_sparse returns it and is fuzzed",
    }
}

_RNG = np.random.default_rng(0)
_C = ((_RNG.random((6, 1)) - _RNG.random((1, 5))) ** 2).astype(np.float64)


def _sns(c, a=None, b=None, **kw):
    kw.setdefault("epsilon", 0.05)
    kw.setdefault("sparsity", 3)
    return ot.sinkhorn_newton_sparse(c, a, b, **kw)


@pytest.mark.parametrize(
    "name,args,kw",
    [
        ("geom_or_cost_matrix", (np.ones(5),), {}),
        ("geom_or_cost_matrix", (np.ones((6, 5), np.int32),), {}),
        ("a", (_C, np.ones(5) / 5), {}),
        ("a", (_C, np.array([1.0, 0, 0, 0, 0, 0])), {}),
        ("b", (_C, None, np.ones(6) / 6), {}),
        ("epsilon", (_C,), {"epsilon": -1.0}),
        ("epsilon", (_C,), {"epsilon": float("nan")}),
        ("sparsity", (_C,), {"sparsity": 1.5}),
        ("n_sinkhorn", (_C,), {"n_sinkhorn": -1}),
        ("max_newton", (_C,), {"max_newton": 1.5}),
    ],
)
def test_bad_arguments_name_the_argument(name, args, kw):
    expect_named_error(_sns, *args, name=name, jit=False, **kw)


@settings(max_examples=10, deadline=None)
@given(kind=POISONS, i=st.integers(0, 5), j=st.integers(0, 4))
def test_poisoned_cost_is_never_a_converged_half_answer(kind, i, j):
    c = _C.copy()
    c[i, j] = poison(np.array([c[i, j]]), kind)[0]
    with jax.debug_nans(False), jax.enable_x64(True):
        out = _sns(jnp.asarray(c))
    no_silent_nan(out, status_ok=lambda r: bool(r.converged))


def test_valid_problem_converges_finite():
    with jax.enable_x64(True):
        out = _sns(jnp.asarray(_C), return_plan=True)
    assert bool(out.converged)
    no_silent_nan(out, status_ok=lambda r: True)
