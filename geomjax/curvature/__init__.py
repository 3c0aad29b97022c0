"""Curvature: Hessian / GGN / Fisher products, Hutchinson estimators, Lanczos, M-FAC, empirical NTK."""

from geomjax.curvature._fisher import empirical_fisher_vp, fisher_vp
from geomjax.curvature._ggn import ggn_vp
from geomjax.curvature._hutchinson import (
    HutchinsonDiagResult,
    HutchinsonTraceResult,
    hutchinson_diag,
    hutchinson_trace,
)
from geomjax.curvature._hvp import hvp
from geomjax.curvature._lanczos import EigenResult, LanczosResult, lanczos, top_eigenvalues
from geomjax.curvature._mfac import MFACInverse
from geomjax.curvature._ntk import empirical_ntk
from geomjax.curvature._slq import SpectralDensity, slq_density

__all__ = [
    "EigenResult",
    "HutchinsonDiagResult",
    "HutchinsonTraceResult",
    "LanczosResult",
    "MFACInverse",
    "SpectralDensity",
    "empirical_fisher_vp",
    "empirical_ntk",
    "fisher_vp",
    "ggn_vp",
    "hutchinson_diag",
    "hutchinson_trace",
    "hvp",
    "lanczos",
    "slq_density",
    "top_eigenvalues",
]
