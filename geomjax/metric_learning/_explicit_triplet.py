r"""The triplet margin loss on explicit (anchor, positive, negative) triplets, as PyTorch's.

``torch.nn.functional.triplet_margin_loss`` semantics, including its ``eps`` inside the norm:

.. math::

    \ell_i = \big[\, d(a_i, p_i) - d(a_i, n_i) + m \,\big]_+, \qquad
    d(x, y) = \|x - y + \epsilon\|_p,

with ``swap`` replacing :math:`d(a_i, n_i)` by :math:`\min(d(a_i, n_i), d(p_i, n_i))`. optax
0.2.8's ``triplet_margin_loss`` computes :math:`(\sum (x - y + \epsilon)^p)^{1/p}` without the
absolute value, so its ``p = 1`` values are wrong and ``p = 3`` gives NaN; this one takes
:math:`|x - y + \epsilon|` and has a finite gradient (0) when a difference is exactly 0.

References:
  F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
  Recognition and Clustering", CVPR 2015, arXiv:1503.03832.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.metric_learning._distances import _safe_root

__all__ = ["explicit_triplet_margin_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _pnorm(v: Array, p: float) -> Array:
    return _safe_root(jnp.sum(jnp.abs(v) ** p, axis=-1), p)


def explicit_triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> Array:
    r"""Triplet margin loss of explicit triplets, ``torch.nn.functional.triplet_margin_loss``.

    Args:
      anchor, positive, negative: ``(N, D)`` (or ``(D,)`` for one triplet).
      margin: :math:`m`.
      p: the norm's :math:`p > 0`.
      eps: :math:`\epsilon`, added to the differences (PyTorch's ``pairwise_distance``).
      swap: use the positive-negative distance when smaller.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      Scalar, or ``(N,)`` for ``reduction="none"``.

    Raises:
      ValueError: naming the arguments (shapes differ), ``p`` or ``reduction``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import explicit_triplet_margin_loss
      >>> a, pos, neg = jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.5]])
      >>> explicit_triplet_margin_loss(a, pos, neg, p=1.0).round(4)
      Array(0.5, dtype=float32)

    References:
      F. Schroff et al., "FaceNet", CVPR 2015, arXiv:1503.03832.
    """
    fn = "explicit_triplet_margin_loss"
    a, pp, n = jnp.asarray(anchor), jnp.asarray(positive), jnp.asarray(negative)
    if not (a.shape == pp.shape == n.shape) or a.ndim not in (1, 2):
        raise ValueError(
            f"{fn}: arguments `anchor`, `positive` and `negative` must have the same shape (N, D) "
            f"or (D,); got {a.shape}, {pp.shape}, {n.shape}"
        )
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
        raise ValueError(f"{fn}: argument `p` must be a number > 0; got {p!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{fn}: argument `reduction` must be one of {_REDUCTIONS}; got {reduction!r}"
        )
    d_ap = _pnorm(a - pp + eps, float(p))
    d_an = _pnorm(a - n + eps, float(p))
    if swap:
        d_an = jnp.minimum(d_an, _pnorm(pp - n + eps, float(p)))
    loss = jax.nn.relu(d_ap - d_an + margin)
    if reduction == "none":
        return loss
    return jnp.sum(loss) if reduction == "sum" else jnp.mean(loss)
