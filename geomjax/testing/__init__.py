"""Public test helpers: gradient checks, dtype-aware tolerances, manifold axioms and equivariance."""

from geomjax.testing._equivariance import (
    assert_equivariant,
    random_orthogonal,
    random_permutation,
    random_rotation,
)
from geomjax.testing._grads import (
    check_grads_finite,
)
from geomjax.testing._manifold_axioms import (
    check_manifold_axioms,
)
from geomjax.testing._tolerances import (
    assert_allclose_dtype,
    default_tolerance,
    matmul_eps,
    rounding_tolerance,
)

__all__ = [
    "assert_allclose_dtype",
    "assert_equivariant",
    "check_grads_finite",
    "check_manifold_axioms",
    "default_tolerance",
    "matmul_eps",
    "random_orthogonal",
    "random_permutation",
    "random_rotation",
    "rounding_tolerance",
]
