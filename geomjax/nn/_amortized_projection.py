"""NNX wrapper: the amortized (attention-pooling) predictor of the v-DSW location."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike
from geomjax.ot._amortized import amortized_vmf_location, init_amortized_projection

__all__ = ["AmortizedVMFProjection"]


class AmortizedVMFProjection(nnx.Module):
    r"""Permutation-invariant attention model predicting a von Mises-Fisher location from two sets.

    ``model(x, y)`` returns a unit vector :math:`\epsilon = f_\psi(X, Y) \in S^{d-1}` to be
    used as the ``location`` of :func:`geomjax.ot.vmf_sliced_wasserstein` (amortized v-DSW):
    the model is trained to *maximize* the sliced objective (e.g. by descending its negative,
    or with a gradient-reversal), while the rest of the model minimizes it. The parameters
    and the forward pass are those of :func:`geomjax.ot._amortized.amortized_vmf_location`
    (embedding, induced set attention over the union of both sets, attention pooling of each
    set, difference, normalization; cost linear in ``n + m``); this module only holds them as
    ``nnx.Param`` and makes one call.

    Args:
      d: dimension of the points.
      hidden: width of the attention features.
      n_inducing: number of inducing points of the set-attention block.
      rngs: ``nnx.Rngs`` (``params`` stream).
      param_dtype: dtype of the parameters.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn._amortized_projection import AmortizedVMFProjection
      >>> model = AmortizedVMFProjection(3, 16, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (32, 3))
      >>> loc = model(x, x + 1.0)
      >>> loc.shape, round(float(jnp.linalg.norm(loc)), 5)
      ((3,), 1.0)

    References:
      K. Nguyen, D. Nguyen, N. Ho, "Self-Attention Amortized Distributional Projection
      Optimization for Sliced Wasserstein Point-Cloud Reconstruction", ICML 2023,
      arXiv:2301.04791.
    """

    def __init__(
        self,
        d: int,
        hidden: int,
        *,
        n_inducing: int = 16,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        params = init_amortized_projection(rngs.params(), d, hidden, n_inducing, param_dtype)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def __call__(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Location for the point sets ``x (n, d)`` and ``y (m, d)``; returns ``(d,)``."""
        params = jax.tree.map(
            lambda v: v[...], self.params, is_leaf=lambda v: isinstance(v, nnx.Variable)
        )
        return amortized_vmf_location(params, x, y)
