"""geomjax: geometric primitives for machine learning in JAX."""

from geomjax import linalg, testing

__version__ = "0.1.0"

__all__ = ["__version__", "linalg", "testing"]
