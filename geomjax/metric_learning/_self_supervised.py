r"""Two-view (self-supervised) losses: VICReg, Barlow Twins, alignment and uniformity.

Each takes the embeddings of two views of the same ``N`` samples, ``z1`` and ``z2`` of shape
``(N, D)`` (row ``i`` of both views is a positive pair).

References:
  A. Bardes, J. Ponce, Y. LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
  Self-Supervised Learning", ICLR 2022, arXiv:2105.04906.
  J. Zbontar, L. Jing, I. Misra, Y. LeCun, S. Deny, "Barlow Twins: Self-Supervised Learning via
  Redundancy Reduction", ICML 2021, arXiv:2103.03230.
  T. Wang, P. Isola, "Understanding Contrastive Representation Learning through Alignment and
  Uniformity on the Hypersphere", ICML 2020, arXiv:2005.10242.
"""

from __future__ import annotations

import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.metric_learning._distances import check_embeddings

__all__ = ["alignment_loss", "barlow_twins_loss", "uniformity_loss", "vicreg_loss"]


def _views(fn: str, z1, z2) -> tuple[Array, Array]:
    z1 = check_embeddings(fn, "z1", z1)
    z2 = check_embeddings(fn, "z2", z2)
    if z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(
            f"{fn}: arguments `z1` and `z2` must have the same shape (N >= 2, D); got {z1.shape} "
            f"and {z2.shape}"
        )
    dtype = jnp.result_type(z1.dtype, z2.dtype)
    return z1.astype(dtype), z2.astype(dtype)


def vicreg_loss(
    z1: ArrayLike,
    z2: ArrayLike,
    *,
    invariance_lambda: float = 25.0,
    variance_mu: float = 25.0,
    covariance_v: float = 1.0,
    eps: float = 1e-4,
) -> Array:
    r"""VICReg, as pytorch-metric-learning's ``VICRegLoss`` (``loss(z1, ref_emb=z2)``):

    .. math::

        L = \lambda \frac{1}{N} \sum_i \frac{\|z_{1i} - z_{2i}\|^2}{D}
          + \mu \sum_{v} \frac{1}{2D} \sum_k [1 - \sqrt{\operatorname{Var}(z_{v,\cdot k}) + \epsilon}]_+
          + \nu \sum_v \frac{1}{D} \sum_{k \ne l} C(z_v)_{kl}^2,

    with unbiased batch variances and covariances :math:`C`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.metric_learning import vicreg_loss
      >>> z = jax.random.normal(jax.random.key(0), (64, 8))
      >>> bool(vicreg_loss(z, z) < vicreg_loss(z, -z))
      True

    References:
      A. Bardes et al., "VICReg", ICLR 2022, arXiv:2105.04906.
    """
    z1, z2 = _views("vicreg_loss", z1, z2)
    n, d = z1.shape
    invariance = jnp.mean(jnp.mean((z1 - z2) ** 2, axis=1))

    def var_term(z):
        std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
        return jnp.mean(jnp.maximum(1.0 - std, 0.0) / 2.0)

    def cov_term(z):
        zc = z - jnp.mean(z, axis=0)
        cov = zc.T @ zc / (n - 1)
        off = cov * (1.0 - jnp.eye(d, dtype=z.dtype))
        return jnp.sum(off**2) / d

    return (
        invariance_lambda * invariance
        + variance_mu * (var_term(z1) + var_term(z2))
        + covariance_v * (cov_term(z1) + cov_term(z2))
    )


def barlow_twins_loss(
    z1: ArrayLike, z2: ArrayLike, *, lambd: float = 5e-3, eps: float = 1e-5
) -> Array:
    r"""Barlow Twins: with :math:`\hat z_v` the batch-standardized views (biased variance plus
    ``eps``, as the paper's ``BatchNorm1d(affine=False)``) and the cross-correlation
    :math:`c = \hat z_1^\top \hat z_2 / N`,

    .. math::

        L = \sum_k (1 - c_{kk})^2 + \lambda \sum_{k \ne l} c_{kl}^2.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.metric_learning import barlow_twins_loss
      >>> z = jax.random.normal(jax.random.key(0), (256, 4))
      >>> bool(barlow_twins_loss(z, z) < 0.1)
      True

    References:
      J. Zbontar et al., "Barlow Twins", ICML 2021, arXiv:2103.03230.
    """
    z1, z2 = _views("barlow_twins_loss", z1, z2)
    n, d = z1.shape

    def standardize(z):
        return (z - jnp.mean(z, 0)) / jnp.sqrt(jnp.var(z, 0) + eps)

    c = standardize(z1).T @ standardize(z2) / n
    on = jnp.sum((1.0 - jnp.diagonal(c)) ** 2)
    off = jnp.sum((c * (1.0 - jnp.eye(d, dtype=c.dtype))) ** 2)
    return on + lambd * off


def alignment_loss(z1: ArrayLike, z2: ArrayLike, *, alpha: float = 2.0) -> Array:
    r"""Alignment :math:`\frac1N \sum_i \|z_{1i} - z_{2i}\|_2^\alpha` (Wang & Isola), finite
    gradient for identical views.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import alignment_loss
      >>> float(alignment_loss(jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([[0.0, 1.0], [0.0, 1.0]])))
      1.0

    References:
      T. Wang, P. Isola, ICML 2020, arXiv:2005.10242.
    """
    z1, z2 = _views("alignment_loss", z1, z2)
    sq = jnp.sum((z1 - z2) ** 2, axis=1)
    pos = sq > 0
    return jnp.mean(jnp.where(pos, jnp.where(pos, sq, 1.0) ** (alpha / 2.0), 0.0))


def uniformity_loss(z: ArrayLike, *, t: float = 2.0) -> Array:
    r"""Uniformity :math:`\log \frac{2}{N(N-1)} \sum_{i<j} e^{-t \|z_i - z_j\|_2^2}` (Wang &
    Isola), over all distinct pairs, evaluated stably.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import uniformity_loss
      >>> round(float(uniformity_loss(jnp.array([[1.0, 0.0], [-1.0, 0.0]]))), 4)
      -8.0

    References:
      T. Wang, P. Isola, ICML 2020, arXiv:2005.10242.
    """
    z = check_embeddings("uniformity_loss", "z", z)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"uniformity_loss: argument `z` needs at least 2 rows; got {z.shape}")
    sq = jnp.maximum(jnp.sum((z[:, None, :] - z[None, :, :]) ** 2, -1), 0.0)
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    logits = jnp.where(upper, -t * sq, -jnp.inf)
    m = jnp.max(logits)
    return (
        m
        + jnp.log(jnp.sum(jnp.where(upper, jnp.exp(logits - m), 0.0)))
        - jnp.log(n * (n - 1) / 2.0)
    )
