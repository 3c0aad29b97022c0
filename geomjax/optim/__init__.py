"""Optimizers as optax gradient transformations: Riemannian SGD/Adam, AdaHessian, M-FAC."""

from geomjax.optim._adahessian import AdaHessianState, adahessian, scale_by_adahessian
from geomjax.optim._mfac import MFACState, mfac, scale_by_mfac
from geomjax.optim._riemannian import (
    RiemannianAdamState,
    RiemannianSGDState,
    riemannian_adam,
    riemannian_sgd,
)

__all__ = [
    "AdaHessianState",
    "MFACState",
    "RiemannianAdamState",
    "RiemannianSGDState",
    "adahessian",
    "mfac",
    "riemannian_adam",
    "riemannian_sgd",
    "scale_by_adahessian",
    "scale_by_mfac",
]
