"""Private helpers shared by every geomjax area (not public API)."""

from geomjax._core._distributed import (
    all_gather_invariant,
    match_varying,
    pmean_if,
    psum_if,
    vary_if,
)
from geomjax._core._numerics import (
    eps,
    precise_matmul,
    safe_div,
    safe_norm,
    series_in_square,
    sinc,
    sinhc,
    stop_gradient_like,
    taylor_threshold,
    where_small,
)
from geomjax._core._random import normal_like, rademacher_like, split_like_tree
from geomjax._core._solution import Solution
from geomjax._core._typing import Array, ArrayLike, PRNGKey, PyTree, Scalar
from geomjax._core._validation import (
    as_float_array,
    as_float_array_of_shape,
    check_key,
    check_min_ndim,
    check_ndim,
    check_option,
    check_positive,
    check_same_shape,
    check_scalar,
    check_square,
)

__all__ = [
    "Array",
    "ArrayLike",
    "PRNGKey",
    "PyTree",
    "Scalar",
    "Solution",
    "all_gather_invariant",
    "as_float_array",
    "as_float_array_of_shape",
    "check_key",
    "check_min_ndim",
    "check_ndim",
    "check_option",
    "check_positive",
    "check_same_shape",
    "check_scalar",
    "check_square",
    "eps",
    "match_varying",
    "normal_like",
    "pmean_if",
    "precise_matmul",
    "psum_if",
    "rademacher_like",
    "safe_div",
    "safe_norm",
    "series_in_square",
    "sinc",
    "sinhc",
    "split_like_tree",
    "stop_gradient_like",
    "taylor_threshold",
    "vary_if",
    "where_small",
]
