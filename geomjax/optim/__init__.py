"""Optimizers as optax gradient transformations: Riemannian SGD and Riemannian Adam."""

from geomjax.optim._riemannian import (
    RiemannianAdamState,
    RiemannianSGDState,
    riemannian_adam,
    riemannian_sgd,
)

__all__ = [
    "RiemannianAdamState",
    "RiemannianSGDState",
    "riemannian_adam",
    "riemannian_sgd",
]
