"""Curvature: Hessian / GGN / Fisher products, Hutchinson estimators, Lanczos, M-FAC, empirical NTK."""

from geomjax.curvature._hvp import hvp
from geomjax.curvature._mfac import MFACInverse

__all__ = ["MFACInverse", "hvp"]
