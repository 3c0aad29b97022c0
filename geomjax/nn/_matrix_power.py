"""NNX wrapper: a matrix power ``X -> X^theta`` of SPD inputs with a learnable exponent."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.linalg import powm


class MatrixPower(nnx.Module):
    """``X -> X^theta`` for SPD ``X`` with a learnable scalar ``theta`` (power deformation).

    A thin wrapper of :func:`geomjax.linalg.powm` with an array exponent, so ``theta`` gets exact
    gradients (also at repeated eigenvalues). The power deformation of SPD metrics
    (``d_theta(A, B) = d(A^theta, B^theta) / |theta|``) uses it.

    Args:
      theta: initial exponent.
      param_dtype: dtype of ``theta``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.nn import MatrixPower
      >>> layer = MatrixPower(theta=0.5)
      >>> layer(jnp.diag(jnp.array([4.0, 9.0])))
      Array([[2., 0.],
             [0., 3.]], dtype=float32)
    """

    def __init__(self, theta: float = 1.0, *, param_dtype=jnp.float32):
        self.theta = nnx.Param(jnp.asarray(theta, param_dtype))

    def __call__(self, x: ArrayLike) -> Array:
        """Apply to SPD matrices of shape ``(..., n, n)``."""
        return powm(x, self.theta[...])
