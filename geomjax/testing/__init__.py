"""Public test helpers: gradient checks, dtype-aware tolerances, and (later) manifold and
equivariance property suites."""

from geomjax.testing._grads import check_grads_finite
from geomjax.testing._manifold_axioms import check_manifold_axioms
from geomjax.testing._tolerances import assert_allclose_dtype, default_tolerance

__all__ = [
    "assert_allclose_dtype",
    "check_grads_finite",
    "check_manifold_axioms",
    "default_tolerance",
]
