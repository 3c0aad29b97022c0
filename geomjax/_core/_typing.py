"""Typing aliases shared across geomjax."""

from __future__ import annotations

from typing import Any

import jax
from jax.typing import ArrayLike

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any
Scalar = ArrayLike

__all__ = ["Array", "ArrayLike", "PRNGKey", "PyTree", "Scalar"]
