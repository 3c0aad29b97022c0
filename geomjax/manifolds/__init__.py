"""Riemannian manifolds as frozen pytree dataclasses, and Frechet means on them."""

from geomjax.manifolds._base import Manifold
from geomjax.manifolds._euclidean import Euclidean
from geomjax.manifolds._grassmann import Grassmann
from geomjax.manifolds._loki import loki_predict, loki_scores
from geomjax.manifolds._lorentz import (
    Lorentz,
    lorentz_to_poincare,
    minkowski_inner,
    poincare_to_lorentz,
)
from geomjax.manifolds._mean import FrechetMeanResult, frechet_mean
from geomjax.manifolds._poincare import PoincareBall, mobius_add, mobius_matvec, mobius_scalar_mul
from geomjax.manifolds._product import Product
from geomjax.manifolds._se3 import SE3, exp_se3, hat_se3, log_se3, vee_se3
from geomjax.manifolds._so3 import (
    SO3,
    axis_angle_to_matrix,
    exp_so3,
    hat,
    inv_left_jacobian_so3,
    left_jacobian_so3,
    log_so3,
    matrix_to_axis_angle,
    matrix_to_quat,
    quat_to_matrix,
    rotation_angle,
    vee,
)
from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import (
    SPDBuresWasserstein,
    SPDGeneralizedBuresWasserstein,
    bures_wasserstein_sqdist,
)
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed
from geomjax.manifolds._sphere import Sphere
from geomjax.manifolds._stiefel import Stiefel

__all__ = [
    "Euclidean",
    "FrechetMeanResult",
    "Grassmann",
    "Lorentz",
    "Manifold",
    "PoincareBall",
    "PowerDeformed",
    "Product",
    "SPDAffineInvariant",
    "SPDBuresWasserstein",
    "SPDGeneralizedBuresWasserstein",
    "SPDLogCholesky",
    "SPDLogEuclidean",
    "bures_wasserstein_sqdist",
    "SE3",
    "SO3",
    "Sphere",
    "Stiefel",
    "axis_angle_to_matrix",
    "exp_se3",
    "exp_so3",
    "frechet_mean",
    "hat",
    "hat_se3",
    "inv_left_jacobian_so3",
    "left_jacobian_so3",
    "log_se3",
    "loki_predict",
    "loki_scores",
    "log_so3",
    "matrix_to_axis_angle",
    "matrix_to_quat",
    "quat_to_matrix",
    "rotation_angle",
    "vee",
    "vee_se3",
    "lorentz_to_poincare",
    "minkowski_inner",
    "mobius_add",
    "mobius_matvec",
    "mobius_scalar_mul",
    "poincare_to_lorentz",
]
