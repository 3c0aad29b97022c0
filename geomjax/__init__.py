"""geomjax: geometric primitives for machine learning in JAX.

Subpackages are imported lazily on first attribute access (``geomjax.nn``), so that importing
``geomjax.linalg`` or ``geomjax.manifolds`` never pulls in flax or ott (the dependency direction of
DESIGN.md); ``import geomjax.nn`` works as usual.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "curvature",
    "datasets",
    "distributed",
    "distributions",
    "equivariant",
    "linalg",
    "manifolds",
    "metric_learning",
    "nn",
    "optim",
    "ot",
    "spdnet",
    "special",
    "testing",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"geomjax.{name}")
    raise AttributeError(f"module 'geomjax' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
