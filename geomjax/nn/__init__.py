"""Flax NNX wrappers: manifold-constrained parameters and thin modules over the core."""

from geomjax.nn._amortized_projection import (
    AmortizedVMFProjection,
)
from geomjax.nn._canonicalization import (
    Canonicalizer,
)
from geomjax.nn._deep_sets import (
    DeepSets,
    DeepSetsLayer,
)
from geomjax.nn._egnn import (
    EGNN,
    EGNNLayer,
)
from geomjax.nn._hyperbolic_embedding import (
    HyperbolicEmbedding,
)
from geomjax.nn._irreps_modules import (
    FullyConnectedTensorProduct,
    Gate,
    IrrepsLinear,
    SphericalHarmonicsEmbedding,
    SteerableMessagePassing,
    TensorProduct,
)
from geomjax.nn._mace import (
    MACEInteraction,
)
from geomjax.nn._manifold_param import (
    ManifoldParam,
    manifold_tree,
)
from geomjax.nn._matrix_power import (
    MatrixPower,
)
from geomjax.nn._metric_learning import (
    ArcFaceLoss,
    CosFaceLoss,
    ProxyAnchorLoss,
)
from geomjax.nn._spdnet import (
    BiMap,
    LogEig,
    ReEig,
    SPDBatchNorm,
)

__all__ = [
    "AmortizedVMFProjection",
    "ArcFaceLoss",
    "BiMap",
    "Canonicalizer",
    "CosFaceLoss",
    "DeepSets",
    "DeepSetsLayer",
    "EGNN",
    "EGNNLayer",
    "FullyConnectedTensorProduct",
    "Gate",
    "HyperbolicEmbedding",
    "IrrepsLinear",
    "LogEig",
    "MACEInteraction",
    "ManifoldParam",
    "MatrixPower",
    "ProxyAnchorLoss",
    "ReEig",
    "SPDBatchNorm",
    "SphericalHarmonicsEmbedding",
    "SteerableMessagePassing",
    "TensorProduct",
    "manifold_tree",
]
