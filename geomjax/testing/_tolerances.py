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


def assert_allclose_dtype(
    actual, desired, *, scale: float = 1.0, atol: float = 0.0, err_msg: str = ""
) -> None:
    """Assert ``||actual - desired|| <= rtol ||desired|| + atol`` (Frobenius norms over the array).

    ``rtol = default_tolerance(actual.dtype, scale)``; NaN or inf in ``actual`` always fails.
    ``atol`` is for references that are (close to) zero.

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
    ref_norm = float(np.linalg.norm(desired.astype(np.float64)))
    diff = float(np.linalg.norm(actual.astype(np.float64) - desired.astype(np.float64)))
    if not diff <= tol * ref_norm + atol:
        rel = diff / max(ref_norm, np.finfo(np.float64).tiny)
        raise AssertionError(
            f"error {diff:.3e} (relative {rel:.3e}) > rtol {tol:.1e} * {ref_norm:.3e} + atol {atol:.1e}. "
            f"{err_msg}"
        )
