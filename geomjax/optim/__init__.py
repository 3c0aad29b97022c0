"""Optimizers: optax gradient transformations (Riemannian SGD/Adam, AdaHessian, M-FAC, stochastic
normalized Newton) and the gradient-normalized regularized Newton solver."""

from geomjax.optim._adahessian import AdaHessianState, adahessian, scale_by_adahessian
from geomjax.optim._gradient_normalized_newton import (
    NormalizedNewtonHistory,
    NormalizedNewtonResult,
    gradient_normalized_newton,
)
from geomjax.optim._mfac import MFACState, mfac, scale_by_mfac
from geomjax.optim._normalized_newton_optax import (
    NormalizedNewtonState,
    normalized_newton,
    scale_by_normalized_newton,
)
from geomjax.optim._riemannian import (
    RiemannianAdamState,
    RiemannianSGDState,
    riemannian_adam,
    riemannian_sgd,
)

__all__ = [
    "AdaHessianState",
    "MFACState",
    "NormalizedNewtonHistory",
    "NormalizedNewtonResult",
    "NormalizedNewtonState",
    "RiemannianAdamState",
    "RiemannianSGDState",
    "adahessian",
    "gradient_normalized_newton",
    "mfac",
    "normalized_newton",
    "riemannian_adam",
    "riemannian_sgd",
    "scale_by_adahessian",
    "scale_by_mfac",
    "scale_by_normalized_newton",
]
