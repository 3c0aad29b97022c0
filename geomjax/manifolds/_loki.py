"""Loki: geometry-aware prediction from class probabilities (Frechet mean over the label set)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, as_float_array, full_precision
from geomjax.manifolds._base import Manifold


def _distance_matrix(fn: str, probs: Array, labels, metric, candidates) -> Array:
    k = probs.shape[0]
    if metric is None:
        if candidates is not None:
            raise ValueError(
                f"{fn}: argument `candidates` needs `metric` (with a distance matrix, pass the "
                "candidate rows in `label_points_or_distances` instead)"
            )
        dist = as_float_array(fn, "label_points_or_distances", labels)
        if dist.ndim != 2 or dist.shape[1] != k or dist.shape[0] < 1:
            raise ValueError(
                f"{fn}: without `metric`, argument `label_points_or_distances` must be a distance "
                f"matrix of shape (n_candidates, {k}) (e.g. ({k}, {k})); got shape {dist.shape}"
            )
        return dist
    if not isinstance(metric, Manifold):
        raise TypeError(f"{fn}: argument `metric` must be a Manifold or None; got {metric!r}")
    points = as_float_array(fn, "label_points_or_distances", labels)
    pshape = tuple(metric.point_shape)
    if not all(isinstance(s, int) for s in pshape):
        raise TypeError(
            f"{fn}: argument `metric` must have array points (a Product manifold's tuple points "
            f"are not supported); got {type(metric).__name__}"
        )
    if points.shape != (k, *pshape):
        raise ValueError(
            f"{fn}: with `metric`, argument `label_points_or_distances` must be a stack of {k} label "
            f"points of {type(metric).__name__}, shape {(k, *pshape)}; got shape {points.shape}"
        )
    cands = points if candidates is None else as_float_array(fn, "candidates", candidates)
    if cands.ndim != points.ndim or cands.shape[1:] != points.shape[1:] or cands.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `candidates` must be a stack of points shaped like the labels, "
            f"(m, {', '.join(map(str, points.shape[1:]))}); got shape {cands.shape}".replace(
                ", )", ")"
            )
        )
    return jax.vmap(lambda y: jax.vmap(lambda lab: metric.dist(y, lab))(points))(cands)


def _scores(fn: str, probs, labels, metric, candidates) -> Array:
    p = as_float_array(fn, "probs", probs)
    if p.ndim != 1 or p.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `probs` must have shape (K,), K >= 1; got shape {p.shape}"
        )
    dist = _distance_matrix(fn, p, labels, metric, candidates)
    dtype = jnp.result_type(p, dist)
    return (dist.astype(dtype) ** 2) @ p.astype(dtype)


@full_precision
def loki_scores(
    probs: ArrayLike,
    label_points_or_distances: ArrayLike,
    *,
    metric: Manifold | None = None,
    candidates: ArrayLike | None = None,
) -> Array:
    r"""Expected squared distance of each candidate label under the predicted class distribution.

    .. math::

        s_y = \sum_{i=1}^{K} p_i\, d(y, \lambda_i)^2

    for each candidate :math:`y` (by default the :math:`K` labels :math:`\lambda_i` themselves);
    :func:`loki_predict` returns its argmin.

    Args:
      probs: class probabilities :math:`p`, shape ``(K,)`` (any non-negative weights; only
        their ratios matter for the argmin).
      label_points_or_distances: without ``metric``, a distance matrix
        :math:`D_{yi} = d(y, \lambda_i)` of shape ``(m, K)`` between ``m`` candidates and the
        ``K`` labels (``(K, K)`` when the candidates are the labels); with ``metric``, the
        label points :math:`\lambda_i`, shape ``(K, *point_shape)``.
      metric: a :class:`~geomjax.manifolds.Manifold` whose ``dist`` measures label distances.
      candidates: with ``metric``, candidate points ``(m, *point_shape)``; default the labels.

    Returns:
      Scores, shape ``(m,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._loki import loki_scores
      >>> d = jnp.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])  # labels on a line
      >>> loki_scores(jnp.array([0.375, 0.25, 0.375]), d)
      Array([1.75, 0.75, 1.75], dtype=float32)

    References:
      N. Roberts, X. Li, D. Adila, S. Cromp, T.-H. Huang, J. Zhao, F. Sala, "Geometry-aware
      adaptation for pretrained models", NeurIPS 2023, arXiv:2307.12226.
    """
    return _scores("loki_scores", probs, label_points_or_distances, metric, candidates)


@full_precision
def loki_predict(
    probs: ArrayLike,
    label_points_or_distances: ArrayLike,
    *,
    metric: Manifold | None = None,
    candidates: ArrayLike | None = None,
) -> Array:
    r"""Loki prediction: the label minimizing the expected squared distance (a Frechet mean).

    Given a classifier's probabilities :math:`p` over :math:`K` labels :math:`\lambda_i` that live
    in a metric space, Loki predicts the (sample) Frechet mean restricted to the candidate set
    :math:`\mathcal{Y}` (by default the labels):

    .. math::

        \hat y = \arg\min_{y \in \mathcal{Y}} \sum_{i=1}^{K} p_i\, d(y, \lambda_i)^2 .

    With the discrete metric (:math:`d(y, \lambda) = 1` for :math:`y \ne \lambda`) this is the
    usual :math:`\arg\max_i p_i`; with a label geometry (a tree, a graph metric, embeddings on a
    sphere, SPD matrices, ...) it can predict a label that is close to every likely class, and
    candidates outside the training labels (unobserved classes). Ties go to the lowest index.
    One example in; batch with ``jax.vmap(loki_predict, in_axes=(0, None))``.

    Args:
      probs: class probabilities :math:`p`, shape ``(K,)``.
      label_points_or_distances: a distance matrix ``(m, K)`` (``(K, K)`` for the labels
        themselves) without ``metric``; label points ``(K, *point_shape)`` with ``metric``.
      metric: a :class:`~geomjax.manifolds.Manifold` whose ``dist`` measures label distances.
      candidates: with ``metric``, candidate points ``(m, *point_shape)``; default the labels.

    Returns:
      int32 scalar, the index of the predicted candidate in ``[0, m)``. With NaN scores (NaN in
      ``probs`` or the distances) it is the index of the first NaN score (``jnp.argmin``'s
      rule): check ``loki_scores`` for finiteness where the input may be invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds._loki import loki_predict
      >>> d = jnp.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])  # labels on a line
      >>> p = jnp.array([0.375, 0.25, 0.375])
      >>> int(jnp.argmax(p)), int(loki_predict(p, d))  # argmax picks an end; Loki the middle
      (0, 1)

    References:
      N. Roberts, X. Li, D. Adila, S. Cromp, T.-H. Huang, J. Zhao, F. Sala, "Geometry-aware
      adaptation for pretrained models", NeurIPS 2023, arXiv:2307.12226.
    """
    scores = _scores("loki_predict", probs, label_points_or_distances, metric, candidates)
    return jnp.argmin(scores).astype(jnp.int32)
