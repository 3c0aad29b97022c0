"""The public axiom suite on every manifold, in float32 and float64 (issue: manifolds, done-when 1)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from geomjax import manifolds as M
from geomjax.testing import check_manifold_axioms

# (manifold, options): vector transports that are not isometries opt out of that check.
CASES = {
    "euclidean": (M.Euclidean((2, 3)), {}),
    "sphere": (M.Sphere(3), {}),
    "poincare": (M.PoincareBall(3, 0.7), {}),
    "lorentz": (M.Lorentz(3, 1.3), {}),
    "so3": (M.SO3(), {}),
    "se3": (M.SE3(), {}),
    "product": (M.Product((M.Sphere(2), M.PoincareBall(2, 1.0), M.Euclidean(2))), {}),
}
if hasattr(M, "Stiefel"):
    CASES["stiefel"] = (M.Stiefel(5, 2), {"transport_isometry": False})
if hasattr(M, "Grassmann"):
    CASES["grassmann"] = (M.Grassmann(5, 2), {})

# SPD metrics (issue: SPD geometry). tangent_scale 0.3 keeps BW's exp inside its injectivity
# domain (I + L_X[U] positive definite) for the random points (condition numbers ~10-50).
_M_GBW = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]], np.float32)
_SPD = {"tangent_scale": 0.3}
CASES["spd_affine"] = (M.SPDAffineInvariant(3), _SPD)
CASES["spd_log_euclidean"] = (M.SPDLogEuclidean(3), _SPD)
CASES["spd_log_cholesky"] = (M.SPDLogCholesky(3), _SPD)
CASES["spd_bures"] = (M.SPDBuresWasserstein(3), _SPD)
CASES["spd_gen_bures"] = (M.SPDGeneralizedBuresWasserstein(_M_GBW), _SPD)
CASES["spd_power_bures"] = (M.PowerDeformed(M.SPDBuresWasserstein(3), 0.5), _SPD)
CASES["spd_power_gen_bures"] = (
    M.PowerDeformed(M.SPDGeneralizedBuresWasserstein(_M_GBW), -0.7),
    _SPD,
)
CASES["spd_power_affine"] = (M.PowerDeformed(M.SPDAffineInvariant(3), 1.5), _SPD)


# Hyperboloid coordinates grow like cosh(distance from the origin), and the Minkowski inner
# product cancels terms of size |x|^2: in float32 the constraint residuals of random points
# (distance ~3 from the origin, |x|^2 ~ 1e2) are ~1e2 eps ~ 1e-5 relative, up to ~3e-4 absolute.
FLOAT32_OPTIONS = {"lorentz": {"rtol": 1e-3, "atol": 1e-3}}


@pytest.mark.parametrize("name", list(CASES))
def test_axioms(name, dtype):
    manifold, options = CASES[name]
    if dtype == jax.numpy.float32:
        options = {**options, **FLOAT32_OPTIONS.get(name, {})}
    errors = check_manifold_axioms(manifold, jax.random.key(1), dtype=dtype, n_samples=4, **options)
    assert errors, "no measurements returned"
