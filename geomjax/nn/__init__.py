"""Flax NNX wrappers: manifold-constrained parameters and thin modules over the core."""

from geomjax.nn._hyperbolic_embedding import HyperbolicEmbedding
from geomjax.nn._manifold_param import ManifoldParam, manifold_tree
from geomjax.nn._matrix_power import MatrixPower

__all__ = ["HyperbolicEmbedding", "ManifoldParam", "MatrixPower", "manifold_tree"]
