"""A small random tanh MLP shared by the frame-averaging and canonicalization tests (a
deliberately non-equivariant backbone)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def random_mlp(key, sizes, dtype):
    """``apply(z)``: dense layers ``sizes[0] -> ... -> sizes[-1]``, tanh between them."""
    keys = jax.random.split(key, len(sizes) - 1)
    params = [
        (jax.random.normal(k, (a, b), dtype) / np.sqrt(a), jnp.full((b,), 0.1, dtype))
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]

    def apply(z):
        for i, (w, b) in enumerate(params):
            z = z @ w + b
            if i < len(params) - 1:
                z = jnp.tanh(z)
        return z

    return apply
