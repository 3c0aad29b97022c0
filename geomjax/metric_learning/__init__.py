"""Metric learning: pairwise distances, batch losses with pytorch-metric-learning's semantics
(fixed-shape masks, row-chunked evaluation, cross-device negatives) and explicit-triplet losses."""

from geomjax.metric_learning._distances import pairwise_distances
from geomjax.metric_learning._explicit_triplet import explicit_triplet_margin_loss
from geomjax.metric_learning._losses import (
    contrastive_loss,
    multi_similarity_loss,
    ntxent_loss,
    supcon_loss,
    triplet_margin_loss,
)
from geomjax.metric_learning._losses_more import circle_loss, generalized_lifted_structure_loss
from geomjax.metric_learning._miners import (
    Miner,
    batch_hard_miner,
    multi_similarity_miner,
    pair_margin_miner,
    triplet_margin_miner,
)
from geomjax.metric_learning._proxy_losses import arcface_loss, cosface_loss, proxy_anchor_loss
from geomjax.metric_learning._retrieval import RetrievalMetrics, max_bin_count, retrieval_metrics
from geomjax.metric_learning._self_supervised import (
    alignment_loss,
    barlow_twins_loss,
    uniformity_loss,
    vicreg_loss,
)
from geomjax.metric_learning._verification import auprc, auroc

__all__ = [
    "Miner",
    "alignment_loss",
    "arcface_loss",
    "barlow_twins_loss",
    "uniformity_loss",
    "vicreg_loss",
    "batch_hard_miner",
    "circle_loss",
    "multi_similarity_miner",
    "pair_margin_miner",
    "proxy_anchor_loss",
    "triplet_margin_miner",
    "RetrievalMetrics",
    "auprc",
    "auroc",
    "contrastive_loss",
    "cosface_loss",
    "explicit_triplet_margin_loss",
    "generalized_lifted_structure_loss",
    "max_bin_count",
    "multi_similarity_loss",
    "ntxent_loss",
    "pairwise_distances",
    "retrieval_metrics",
    "supcon_loss",
    "triplet_margin_loss",
]
