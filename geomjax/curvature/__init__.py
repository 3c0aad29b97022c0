"""Curvature: Hessian / GGN / Fisher products, Hutchinson estimators, Lanczos, M-FAC, empirical NTK."""

from geomjax.curvature._hvp import hvp

__all__ = ["hvp"]
