"""Fuzz suite for geomjax.distributed: bad environment variables, options, meshes, specs and leaves
raise a ValueError or TypeError naming the variable or argument; valid edge input (one device,
scalars, empty rows of a replicated leaf, bool and integer leaves) round-trips exactly.

Nothing here starts the multi-process runtime: every bad environment is rejected before
``jax.distributed.initialize`` would be called (the multi-process path is tested by
``tests/multiprocess``).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _fuzz import BAD_DTYPES, expect_named_error, small_shapes
from hypothesis import given
from hypothesis import strategies as st
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from geomjax.distributed import gather, global_mesh, initialize_from_env, shard_batch

COVERED = {"geomjax.distributed": {"gather", "global_mesh", "initialize_from_env", "shard_batch"}}
EXEMPT: dict[str, dict[str, str]] = {"geomjax.distributed": {}}

NOT_AN_INT = st.one_of(
    st.text(max_size=6).filter(lambda s: not s.strip().lstrip("+").isdigit() and s != ""),
    st.floats(allow_nan=True).map(str).filter(lambda s: "." in s or "n" in s),
)
BAD_TIMEOUTS = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)


# -- initialize_from_env ------------------------------------------------------------------------


@given(value=NOT_AN_INT)
def test_initialize_bad_num_processes(value):
    expect_named_error(
        initialize_from_env,
        name="JAX_NUM_PROCESSES",
        jit=False,
        environ={"JAX_NUM_PROCESSES": value},
    )


@given(n=st.integers(2, 64), rank=st.one_of(st.integers(max_value=-1), st.integers(64, 10**6)))
def test_initialize_rank_out_of_range(n, rank):
    env = {"JAX_NUM_PROCESSES": str(n), "JAX_PROCESS_ID": str(rank)}
    expect_named_error(initialize_from_env, name="JAX_PROCESS_ID", jit=False, environ=env)


@given(address=st.one_of(st.just(""), st.text(max_size=8).filter(lambda s: ":" not in s)))
def test_initialize_bad_coordinator(address):
    env = {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1", "JAX_COORDINATOR_ADDRESS": address}
    expect_named_error(initialize_from_env, name="JAX_COORDINATOR_ADDRESS", jit=False, environ=env)


@pytest.mark.parametrize("name", ["initialization_timeout", "heartbeat_timeout_seconds"])
@given(value=BAD_TIMEOUTS)
def test_initialize_bad_timeouts(name, value):
    expect_named_error(initialize_from_env, name=name, jit=False, environ={}, **{name: value})
    assert not jax.distributed.is_initialized()


# -- global_mesh --------------------------------------------------------------------------------

BAD_NAMES = st.one_of(
    st.just(""),
    st.just(()),
    st.integers(),
    st.none(),
    st.lists(st.sampled_from(["a", "b", ""]), min_size=2, max_size=3).filter(
        lambda xs: "" in xs or len(set(xs)) < len(xs)
    ),
    st.lists(st.integers(), min_size=1, max_size=2),
)


@given(names=BAD_NAMES)
def test_global_mesh_bad_names(names):
    expect_named_error(global_mesh, names, name="axis_names", jit=False)


@given(
    shapes=st.one_of(
        st.lists(st.integers(-2, 9), min_size=1, max_size=3).filter(
            lambda s: len(s) != 1 or s[0] != jax.device_count()
        ),
        st.floats(),
        st.text(max_size=3),
        st.lists(st.floats(1, 4), min_size=1, max_size=1),
    )
)
def test_global_mesh_bad_shapes(shapes):
    expect_named_error(global_mesh, "data", shapes, name="axis_shapes", jit=False)


@given(
    types=st.one_of(st.just(("auto",)), st.just((AxisType.Auto,) * 2), st.just(()), st.just((1,)))
)
def test_global_mesh_bad_types(types):
    expect_named_error(global_mesh, "data", name="axis_types", jit=False, axis_types=types)


# -- shard_batch / gather -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh():
    return global_mesh("data")


@given(bad=st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just(jax.devices())))
def test_shard_batch_bad_mesh(bad):
    expect_named_error(shard_batch, np.ones(4), bad, name="mesh", jit=False)


@given(
    spec=st.one_of(
        st.just(("data",)), st.just("data"), st.just(P("model")), st.just(P(("data", "x")))
    )
)
def test_shard_batch_bad_spec(mesh, spec):
    expect_named_error(shard_batch, np.ones(4), mesh, spec, name="spec", jit=False)


@given(
    leaf=st.one_of(
        st.text(max_size=3),
        st.lists(st.text(min_size=1, max_size=2), min_size=1, max_size=3).map(np.asarray),
        st.just(np.asarray([object()], dtype=object)),
    )
)
def test_shard_batch_non_numeric_leaves(mesh, leaf):
    expect_named_error(shard_batch, {"x": leaf}, mesh, name="local_rows", jit=False)


@given(shape=small_shapes(max_dims=1).filter(lambda s: len(s) == 0))
def test_shard_batch_too_few_dims(mesh, shape):
    expect_named_error(shard_batch, np.ones(shape), mesh, P("data"), name="local_rows", jit=False)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_shard_batch_keeps_non_float_dtypes(mesh, dtype):
    # integer, bool and complex rows are data too (labels, masks): placed and read back exactly
    n = 2 * jax.device_count()
    rows = np.arange(n).astype(dtype)
    back = gather(shard_batch(rows, mesh))
    np.testing.assert_array_equal(back, rows)


@given(shape=small_shapes(max_dims=3, max_side=3))
def test_replicated_edge_shapes_round_trip(mesh, shape):
    # replicated leaves of any shape, empty and scalar ones included
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(gather(shard_batch(x, mesh, P())), x)


@given(leaf=st.one_of(st.text(max_size=3), st.just(object()), st.just(slice(1))))
def test_gather_bad_leaves(leaf):
    expect_named_error(gather, {"a": np.ones(2), "b": leaf}, name="x", jit=False)
