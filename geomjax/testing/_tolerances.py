"""Tolerances justified by dtype: about 1e-5 relative in float32, 1e-10 in float64."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_RTOL = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def default_tolerance(dtype, scale: float = 1.0) -> float:
    """Default relative tolerance for ``dtype`` (float32 1e-5, float64 1e-10), times ``scale``."""
    dtype = np.dtype(jnp.dtype(dtype))
    if dtype not in _RTOL:
        raise ValueError(f"default_tolerance: argument `dtype` must be a float dtype; got {dtype}")
    return _RTOL[dtype] * scale


def assert_allclose_dtype(actual, desired, *, scale: float = 1.0, err_msg: str = "") -> None:
    """Assert ``actual`` matches ``desired`` in relative Frobenius norm, with a dtype-aware tolerance.

    The tolerance is ``default_tolerance(actual.dtype, scale)``; NaN or inf in ``actual`` always
    fails. The error is ``||actual - desired|| / max(||desired||, tiny)`` over the whole array.

    Raises:
      AssertionError: with the measured error and the tolerance.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    if actual.shape != desired.shape:
        raise AssertionError(f"shape mismatch: {actual.shape} vs {desired.shape}. {err_msg}")
    if not np.all(np.isfinite(actual)):
        raise AssertionError(f"non-finite values in actual. {err_msg}")
    tol = default_tolerance(actual.dtype, scale)
    denom = max(float(np.linalg.norm(desired.astype(np.float64))), np.finfo(np.float64).tiny)
    err = float(np.linalg.norm((actual.astype(np.float64) - desired.astype(np.float64)))) / denom
    if not err <= tol:
        raise AssertionError(f"relative error {err:.3e} > tolerance {tol:.1e}. {err_msg}")
