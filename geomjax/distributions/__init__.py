"""Distributions on manifolds: the von Mises-Fisher distribution and vMF mixtures."""

from geomjax.distributions._mixture import (
    VMFMixtureFit,
    fit_vmf_mixture,
    vmf_mixture_log_responsibilities,
)
from geomjax.distributions._vmf_sampling import sample_von_mises_fisher
from geomjax.distributions._von_mises_fisher import (
    VMFFit,
    VonMisesFisher,
    fit_von_mises_fisher,
    kappa_from_mean_resultant,
    mean_resultant_length,
    vmf_log_normalizer,
)

__all__ = [
    "VMFFit",
    "VMFMixtureFit",
    "VonMisesFisher",
    "fit_vmf_mixture",
    "fit_von_mises_fisher",
    "kappa_from_mean_resultant",
    "mean_resultant_length",
    "sample_von_mises_fisher",
    "vmf_log_normalizer",
    "vmf_mixture_log_responsibilities",
]
