r"""Verification metrics: area under the ROC and precision-recall curves, ties as scikit-learn.

For scores :math:`s_i` and binary labels :math:`y_i` (:math:`n_+` positives, :math:`n_-`
negatives):

.. math::

    \text{AUROC} = \frac{\sum_{i: y_i = 1} \bar r_i - n_+(n_+ + 1)/2}{n_+ n_-}, \qquad
    \text{AUPRC} = \frac{1}{n_+} \sum_{i: y_i = 1} \frac{\#\{j: y_j = 1, s_j \ge s_i\}}
                   {\#\{j: s_j \ge s_i\}},

with :math:`\bar r_i` the average (1-based) rank of :math:`s_i` among all scores (the
Mann-Whitney statistic; tied pairs count one half, as ``sklearn.metrics.roc_auc_score``), and
the AUPRC the step-wise average precision of ``sklearn.metrics.average_precision_score``
(precision at each distinct threshold, weighted by the recall gained there: tied scores enter
together). Both are sort-based, ``O(n log n)``, fixed-shape and ``jit``-able; NaN when a class
is empty.

References:
  J. Davis, M. Goadrich, "The Relationship Between Precision-Recall and ROC Curves", ICML 2006.
"""

from __future__ import annotations

import jax.numpy as jnp

from geomjax._core import Array, ArrayLike

__all__ = ["auprc", "auroc"]


def _check(fn: str, scores, labels) -> tuple[Array, Array]:
    s = jnp.asarray(scores)
    y = jnp.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(
            f"{fn}: arguments `scores` and `labels` must be 1-D of equal length; got {s.shape} "
            f"and {y.shape}"
        )
    if not jnp.issubdtype(s.dtype, jnp.floating):
        s = s.astype(jnp.result_type(float))
    return s, y.astype(bool)


def auroc(scores: ArrayLike, labels: ArrayLike) -> Array:
    """Area under the ROC curve (ties count one half; ``roc_auc_score``'s value).

    Args:
      scores: ``(n,)``, larger = more likely positive.
      labels: ``(n,)`` booleans or 0/1.

    Returns:
      Scalar in ``[0, 1]`` (NaN when a class is empty).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import auroc
      >>> float(auroc(jnp.array([0.1, 0.4, 0.4, 0.8]), jnp.array([0, 0, 1, 1])))
      0.875
    """
    s, y = _check("auroc", scores, labels)
    srt = jnp.sort(s)
    left = jnp.searchsorted(srt, s, side="left")
    right = jnp.searchsorted(srt, s, side="right")
    rank = (left + 1 + right) / 2.0  # average 1-based rank over ties
    n_pos = jnp.sum(y)
    n_neg = s.shape[0] - n_pos
    u = jnp.sum(jnp.where(y, rank, 0.0)) - n_pos * (n_pos + 1) / 2.0
    return jnp.where((n_pos > 0) & (n_neg > 0), u / jnp.maximum(n_pos * n_neg, 1), jnp.nan)


def auprc(scores: ArrayLike, labels: ArrayLike) -> Array:
    """Area under the precision-recall curve as ``average_precision_score`` (step-wise, tied
    scores as one threshold).

    Args:
      scores: ``(n,)``, larger = more likely positive.
      labels: ``(n,)`` booleans or 0/1.

    Returns:
      Scalar in ``[0, 1]`` (NaN without positives).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import auprc
      >>> round(float(auprc(jnp.array([0.1, 0.4, 0.35, 0.8]), jnp.array([0, 0, 1, 1]))), 4)
      0.8333
    """
    s, y = _check("auprc", scores, labels)
    n = s.shape[0]
    srt = jnp.sort(s)
    at_least = n - jnp.searchsorted(srt, s, side="left")  # #{j: s_j >= s_i}
    pos_sorted = jnp.sort(jnp.where(y, s, jnp.inf))
    n_pos = jnp.sum(y)
    tp = n_pos - jnp.searchsorted(pos_sorted, s, side="left")  # positives with s_j >= s_i
    prec = tp / jnp.maximum(at_least, 1)
    return jnp.where(n_pos > 0, jnp.sum(jnp.where(y, prec, 0.0)) / jnp.maximum(n_pos, 1), jnp.nan)
