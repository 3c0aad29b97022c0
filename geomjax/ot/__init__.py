"""Optimal transport: 1-D and sliced Wasserstein family, Gaussian/Bures closed forms, Sinkhorn facade
over ott-jax, Sinkhorn-Newton-Sparse.

The Sinkhorn names (``sinkhorn``, ``sinkhorn_divergence``, ``SinkhornOutput``,
``SinkhornDivergenceOutput``, ``ManifoldCost``, ``sinkhorn_newton_sparse``,
``SinkhornNewtonSparseOutput``) are imported lazily on first access, so the sliced and
closed-form functions do not pay for importing ott-jax.
"""

from __future__ import annotations

import importlib

from geomjax.ot._amortized import amortized_vmf_location, init_amortized_projection
from geomjax.ot._gaussian import bures_wasserstein, gaussian_fit, gaussian_wasserstein
from geomjax.ot._max_sliced import MaxSlicedResult, max_sliced_wasserstein
from geomjax.ot._sliced import (
    SlicedWassersteinEstimate,
    random_projections,
    sliced_wasserstein,
    sliced_wasserstein_with_error,
)
from geomjax.ot._sliced_cv import SlicedCVResult, sliced_wasserstein_cv
from geomjax.ot._vmf_sampling import sample_von_mises_fisher
from geomjax.ot._vmf_sliced import (
    DistributionalSlicedWassersteinResult,
    distributional_sliced_wasserstein,
    vmf_sliced_wasserstein,
)
from geomjax.ot._wasserstein_1d import wasserstein_1d

_LAZY = {
    "ManifoldCost": "geomjax.ot._sinkhorn",
    "SinkhornDivergenceOutput": "geomjax.ot._sinkhorn",
    "SinkhornNewtonSparseOutput": "geomjax.ot._sns",
    "SinkhornOutput": "geomjax.ot._sinkhorn",
    "sinkhorn": "geomjax.ot._sinkhorn",
    "sinkhorn_divergence": "geomjax.ot._sinkhorn",
    "sinkhorn_newton_sparse": "geomjax.ot._sns",
}

__all__ = [
    "DistributionalSlicedWassersteinResult",
    "ManifoldCost",
    "MaxSlicedResult",
    "SinkhornDivergenceOutput",
    "SinkhornNewtonSparseOutput",
    "SinkhornOutput",
    "SlicedCVResult",
    "SlicedWassersteinEstimate",
    "amortized_vmf_location",
    "bures_wasserstein",
    "distributional_sliced_wasserstein",
    "gaussian_fit",
    "gaussian_wasserstein",
    "init_amortized_projection",
    "max_sliced_wasserstein",
    "random_projections",
    "sample_von_mises_fisher",
    "sinkhorn",
    "sinkhorn_divergence",
    "sinkhorn_newton_sparse",
    "sliced_wasserstein",
    "sliced_wasserstein_cv",
    "sliced_wasserstein_with_error",
    "vmf_sliced_wasserstein",
    "wasserstein_1d",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geomjax.ot' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
