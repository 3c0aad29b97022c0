"""Functions of symmetric / SPD matrices with stable derivatives, batched over ``(..., n, n)``."""

from geomjax.linalg._lyapunov import solve_lyapunov
from geomjax.linalg._matrix_functions import expm, invsqrtm, logm, powm, sqrtm
from geomjax.linalg._nuclear import nuclear_norm
from geomjax.linalg._spectral import spectral_fn, sym

__all__ = [
    "expm",
    "invsqrtm",
    "logm",
    "nuclear_norm",
    "powm",
    "solve_lyapunov",
    "spectral_fn",
    "sqrtm",
    "sym",
]
