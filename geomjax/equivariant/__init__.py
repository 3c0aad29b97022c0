"""Equivariant building blocks: graph segment ops, EGNN, Deep Sets, frame averaging, canonicalization;
irreps of O(3), irreps arrays, spherical harmonics, Clebsch-Gordan coefficients and Wigner-D matrices;
tensor products (full, channelwise, fully connected; Gaunt products on an exact sphere grid), SO(2)
(eSCN) convolutions, MACE's symmetric contraction and
interaction block, irreps linear maps, gate and norm activations, and a steerable message-passing layer.

Float32 accuracy on GPUs. NVIDIA GPUs run float32 matrix products as TF32 by default (10 mantissa
bits, relative rounding about 1e-3). Every product with coordinates, frames or rotations in this
package (centroids, covariances, PCA and Gram-Schmidt frames, mapping into and out of a frame,
canonicalizer vectors) runs at ``Precision.HIGHEST``, so the geometric maps are float32-accurate
and equivariant to float32 round-off under any ``jax_default_matmul_precision``. Products on
learned features (the MLPs of EGNN, Deep Sets and the canonicalizer) follow the default: under
TF32 a network's equivariance error is bounded by TF32 round-off (``assert_equivariant(...,
matmul_precision=None)`` checks that bound); wrap the model in
``jax.default_matmul_precision("highest")`` for float32-grade equivariance (about 1e-6 relative
for a well-conditioned network). On CPUs float32 products are always full float32.
"""

from geomjax.equivariant._canonicalization import (
    canonicalize,
    canonicalized_apply,
    canonicalizer_frame,
    canonicalizer_vectors,
    decanonicalize,
    gram_schmidt_frame,
    init_canonicalizer,
)
from geomjax.equivariant._clebsch_gordan import clebsch_gordan, so3_generators, su2_generators
from geomjax.equivariant._deep_sets import (
    deep_sets,
    deep_sets_layer,
    init_deep_sets,
    init_deep_sets_layer,
    set_pool,
)
from geomjax.equivariant._egnn import (
    egnn,
    egnn_layer,
    init_egnn,
    init_egnn_layer,
)
from geomjax.equivariant._frame_averaging import (
    FrameInfo,
    frame_average,
    pca_frames,
)
from geomjax.equivariant._gate import gate, gate_irreps_in, norm_activation, soft_odd
from geomjax.equivariant._gaunt import gaunt_coefficients, gaunt_tensor_product
from geomjax.equivariant._graph import (
    GraphBatch,
    batch_graphs,
    fully_connected_graph,
    radius_graph,
    segment_max,
    segment_mean,
    segment_softmax,
    segment_sum,
)
from geomjax.equivariant._irreps import Irrep, Irreps, MulIrrep
from geomjax.equivariant._irreps_array import IrrepsArray, concatenate, from_chunks, zeros
from geomjax.equivariant._linear import init_irreps_linear, irreps_linear, irreps_linear_num_weights
from geomjax.equivariant._mace import MACEConfig, init_mace_interaction, mace_interaction
from geomjax.equivariant._so2_conv import (
    channelwise_to_so2_weights,
    init_so2_convolution,
    so2_convolution,
    so2_convolution_num_weights,
)
from geomjax.equivariant._spherical_harmonics import spherical_harmonics
from geomjax.equivariant._steerable_mp import (
    SteerableMPConfig,
    bessel_basis,
    init_steerable_mp,
    polynomial_cutoff,
    steerable_message_passing,
)
from geomjax.equivariant._symmetric_contraction import (
    init_symmetric_contraction,
    symmetric_contraction,
    symmetric_contraction_num_weights,
)
from geomjax.equivariant._tensor_product import (
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
    full_tensor_product,
    fully_connected_tensor_product,
    fully_connected_tensor_product_num_weights,
    init_channelwise_tensor_product,
    init_fully_connected_tensor_product,
)
from geomjax.equivariant._wigner import wigner_d, wigner_d_from_angles, wigner_d_from_quaternion

__all__ = [
    "FrameInfo",
    "GraphBatch",
    "Irrep",
    "Irreps",
    "IrrepsArray",
    "MACEConfig",
    "MulIrrep",
    "SteerableMPConfig",
    "batch_graphs",
    "bessel_basis",
    "canonicalize",
    "canonicalized_apply",
    "canonicalizer_frame",
    "canonicalizer_vectors",
    "channelwise_tensor_product",
    "channelwise_tensor_product_irreps",
    "channelwise_to_so2_weights",
    "clebsch_gordan",
    "concatenate",
    "decanonicalize",
    "deep_sets",
    "deep_sets_layer",
    "egnn",
    "egnn_layer",
    "frame_average",
    "from_chunks",
    "full_tensor_product",
    "fully_connected_graph",
    "fully_connected_tensor_product",
    "fully_connected_tensor_product_num_weights",
    "gate",
    "gaunt_coefficients",
    "gaunt_tensor_product",
    "gate_irreps_in",
    "gram_schmidt_frame",
    "init_canonicalizer",
    "init_channelwise_tensor_product",
    "init_deep_sets",
    "init_deep_sets_layer",
    "init_egnn",
    "init_egnn_layer",
    "init_fully_connected_tensor_product",
    "init_irreps_linear",
    "init_mace_interaction",
    "init_so2_convolution",
    "init_steerable_mp",
    "init_symmetric_contraction",
    "irreps_linear",
    "irreps_linear_num_weights",
    "mace_interaction",
    "norm_activation",
    "pca_frames",
    "polynomial_cutoff",
    "radius_graph",
    "segment_max",
    "segment_mean",
    "segment_softmax",
    "segment_sum",
    "set_pool",
    "so2_convolution",
    "so2_convolution_num_weights",
    "so3_generators",
    "soft_odd",
    "spherical_harmonics",
    "steerable_message_passing",
    "su2_generators",
    "symmetric_contraction",
    "symmetric_contraction_num_weights",
    "wigner_d",
    "wigner_d_from_angles",
    "wigner_d_from_quaternion",
    "zeros",
]
