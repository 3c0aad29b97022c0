"""The output convention of iterative routines: a value plus an honest convergence report."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class Solution(NamedTuple):
    """Result of an iterative routine (means, Newton, Sinkhorn, Lanczos, ...).

    Attributes:
      value: the answer (any pytree).
      converged: boolean scalar, True when the stopping criterion was met within ``max_iter``.
      n_iters: integer scalar, iterations performed.
      error: floating scalar, the routine's error measure at the returned value (e.g. the
        Riemannian gradient norm, the marginal violation, the residual norm).
    """

    value: Any
    converged: jax.Array
    n_iters: jax.Array
    error: jax.Array
