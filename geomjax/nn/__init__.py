"""Flax NNX wrappers: manifold-constrained parameters and thin modules over the core."""

from geomjax.nn._hyperbolic_embedding import HyperbolicEmbedding
from geomjax.nn._manifold_param import ManifoldParam, manifold_tree
from geomjax.nn._matrix_power import MatrixPower
from geomjax.nn._spdnet import BiMap, LogEig, ReEig, SPDBatchNorm

__all__ = [
    "BiMap",
    "HyperbolicEmbedding",
    "LogEig",
    "ManifoldParam",
    "MatrixPower",
    "ReEig",
    "SPDBatchNorm",
    "manifold_tree",
]
