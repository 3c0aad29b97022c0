"""Equivariant building blocks: graph segment ops, EGNN, Deep Sets, frame averaging, canonicalization."""

from geomjax.equivariant._canonicalization import (
    canonicalize,
    canonicalized_apply,
    canonicalizer_frame,
    canonicalizer_vectors,
    decanonicalize,
    gram_schmidt_frame,
    init_canonicalizer,
)
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

__all__ = [
    "FrameInfo",
    "GraphBatch",
    "batch_graphs",
    "canonicalize",
    "canonicalized_apply",
    "canonicalizer_frame",
    "canonicalizer_vectors",
    "decanonicalize",
    "deep_sets",
    "deep_sets_layer",
    "egnn",
    "egnn_layer",
    "frame_average",
    "fully_connected_graph",
    "gram_schmidt_frame",
    "init_canonicalizer",
    "init_deep_sets",
    "init_deep_sets_layer",
    "init_egnn",
    "init_egnn_layer",
    "pca_frames",
    "radius_graph",
    "segment_max",
    "segment_mean",
    "segment_softmax",
    "segment_sum",
    "set_pool",
]
