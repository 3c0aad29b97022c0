"""NNX Canonicalizer: same frame as the functional core; makes a backbone equivariant."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from geomjax.equivariant._canonicalization import canonicalized_apply, canonicalizer_frame
from geomjax.nn._canonicalization import Canonicalizer
from geomjax.testing import assert_allclose_dtype, rounding_tolerance
from geomjax.testing._equivariance import assert_equivariant


@pytest.mark.parametrize("dtype, num_vectors, group", [("float32", 2, "SE3"), ("float64", 3, "E3")])
def test_canonicalizer_matches_core_and_wraps_backbone(dtype, num_vectors, group):
    """float64 shows exactness (1e-10); float32 meets 1e-5 for this (two-vector) canonicalizer.

    A learned frame's float32 error depends on how well separated its predicted vectors are
    (see ``canonicalizer_vectors``); three vectors at random init are typically worse conditioned.
    """
    with jax.enable_x64(dtype == "float64"):
        _check_module(jnp.dtype(dtype), num_vectors, group)


def _check_module(dtype, num_vectors, group):
    canon = Canonicalizer(
        in_features=2, hidden=16, num_vectors=num_vectors, rngs=nnx.Rngs(0), param_dtype=dtype
    )
    x = jax.random.normal(jax.random.key(1), (6, 3), dtype)
    h = jax.random.normal(jax.random.key(2), (6, 2), dtype)
    params = jax.tree.map(
        lambda v: v[...], canon.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
    )
    r, t = canon(x, h)
    r_core, t_core = canonicalizer_frame(params, x, h)
    assert_allclose_dtype(r, r_core)
    assert_allclose_dtype(t, t_core)
    w = jax.random.normal(jax.random.key(3), (18, 4), dtype)
    backbone = lambda y: jnp.tanh(y.reshape(-1) @ w)  # noqa: E731  not invariant by itself
    f = jax.jit(lambda x, h: canonicalized_apply(backbone, functools.partial(canon, h=h), x))
    err = assert_equivariant(
        f,
        jax.random.key(4),
        (x, h),
        in_kinds=("position", "scalar"),
        out_kinds="graph_scalar",
        group=group,
        n_trials=4,
    )
    assert err <= rounding_tolerance(dtype, n_ops=x.size + h.size, cond=16.0)  # the default budget


def test_canonicalizer_gets_gradients():
    canon = Canonicalizer(hidden=8, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (5, 3))

    def loss(c):
        return jnp.sum(canonicalized_apply(lambda y: jnp.sin(y), c, x, output="position") ** 2)

    grads = nnx.jit(nnx.grad(loss))(canon)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert max(float(jnp.abs(g).max()) for g in leaves if g.size) > 0
