"""assert_equivariant on IrrepsArray arguments and outputs ('irreps' / 'graph_irreps' kinds):
correct maps pass (spherical harmonics of positions, a pseudoscalar triple product under
reflections, node-permuted irreps features), wrong ones fail (a 1o output declared 1e, a
parity-blind pseudoscalar, a component swap), plain arrays keep their old behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import IrrepsArray, spherical_harmonics
from geomjax.testing import assert_equivariant

KEY = jax.random.key(0)


def _sh(x):
    return spherical_harmonics([0, 1, 2, 3], x, normalize=False)


@pytest.mark.parametrize(
    "dtype,rtol",
    [(jnp.float32, 1e-5), pytest.param(jnp.float64, 1e-10, marks=pytest.mark.slow)],
)
def test_spherical_harmonics_of_positions(dtype, rtol):
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)), dtype)
        err = assert_equivariant(
            _sh, KEY, (x,), in_kinds=("vector",), out_kinds="irreps", group="O3", permute=True
        )
        assert err < rtol
        # default tolerance is the rounding budget of the output dtype; explicit rtol works too
        assert_equivariant(
            _sh, KEY, (x,), in_kinds=("vector",), out_kinds="irreps", group="O3", rtol=rtol
        )


def test_parity_is_checked():
    x = IrrepsArray("3x1o", jnp.asarray(np.random.default_rng(1).standard_normal(9), jnp.float32))

    def triple(v, irreps):
        return IrrepsArray(irreps, jnp.linalg.det(v.array.reshape(3, 3))[None])

    assert_equivariant(
        lambda v: triple(v, "0o"),
        KEY,
        (x,),
        in_kinds=("graph_irreps",),
        out_kinds="graph_irreps",
        group="O3",
    )
    # declared as a true scalar, it fails under a reflection but passes under rotations only
    with pytest.raises(AssertionError, match="det -1"):
        assert_equivariant(
            lambda v: triple(v, "0e"),
            KEY,
            (x,),
            in_kinds=("graph_irreps",),
            out_kinds="graph_irreps",
            group="O3",
        )
    assert_equivariant(
        lambda v: triple(v, "0e"),
        KEY,
        (x,),
        in_kinds=("graph_irreps",),
        out_kinds="graph_irreps",
        group="SO3",
    )
    # a 1o vector relabelled 1e fails under reflections
    with pytest.raises(AssertionError):
        assert_equivariant(
            lambda v: IrrepsArray("1e", v.array[:3]),
            KEY,
            (x,),
            in_kinds=("graph_irreps",),
            out_kinds="graph_irreps",
            group="O3",
        )


def test_wrong_component_order_fails_and_permutations():
    h = IrrepsArray(
        "2x0e + 1o", jnp.asarray(np.random.default_rng(2).standard_normal((4, 5)), jnp.float32)
    )
    swap = lambda v: IrrepsArray(v.irreps, v.array[..., jnp.array([0, 1, 3, 2, 4])])  # noqa: E731
    with pytest.raises(AssertionError):
        assert_equivariant(swap, KEY, (h,), in_kinds=("irreps",), out_kinds="irreps", group="SO3")
    # node permutation acts on axis 0 of 'irreps' features and not on 'graph_irreps'
    pool = lambda v: IrrepsArray(v.irreps, v.array.sum(0))  # noqa: E731
    assert_equivariant(
        pool, KEY, (h,), in_kinds=("irreps",), out_kinds="graph_irreps", group="O3", permute=True
    )
    with pytest.raises(AssertionError):
        assert_equivariant(
            lambda v: v,
            KEY,
            (h,),
            in_kinds=("irreps",),
            out_kinds="graph_irreps",
            group="none",
            permute=True,
        )


def test_irreps_kind_rejects_plain_arrays_and_keeps_plain_behaviour():
    with pytest.raises(ValueError, match="IrrepsArray"):
        assert_equivariant(
            lambda v: v, KEY, (jnp.ones((2, 3)),), in_kinds=("irreps",), out_kinds="irreps"
        )
    x = jnp.asarray(np.random.default_rng(3).standard_normal((4, 3)), jnp.float32)
    assert_equivariant(
        lambda v: v - v.mean(0), KEY, (x,), in_kinds=("position",), out_kinds="vector"
    )
