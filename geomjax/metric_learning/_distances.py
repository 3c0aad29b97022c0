r"""Pairwise distances and similarities between embeddings, with finite gradients everywhere.

``pairwise_distances(x, y, metric)`` returns the ``(B, R)`` matrix between the rows of ``x``
(queries) and ``y`` (references, default ``x``):

* ``"euclidean"``: :math:`\|x_i - y_j\|_2`, from the differences while the ``(B, R, D)``
  difference array has at most ``2^24`` entries (exact 0 for duplicates), else from
  :math:`\|x\|^2 + \|y\|^2 - 2 x\cdot y` (one matrix product, clamped at 0; round-off of
  about :math:`\sqrt{\epsilon}\,\|x\|` for near-duplicates, as ``torch.cdist``'s own switch);
* ``"squared_euclidean"``: :math:`\|x_i - y_j\|_2^2`;
* ``"lp"``: :math:`\|x_i - y_j\|_p` for ``p >= 1`` (broadcast difference, ``O(B R D)`` memory);
* ``"cosine"``: the similarity :math:`\hat x_i \cdot \hat y_j` of the normalized rows;
* ``"dot"``: the similarity :math:`x_i \cdot y_j`;
* ``"snr"``: the signal-to-noise ratio distance :math:`\operatorname{Var}(x_i - y_j) /
  \operatorname{Var}(x_i)` (variances over the features, unbiased; Yuan et al., "Signal-To-Noise
  Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019), from one matrix
  product of the centred rows;
* a geomjax manifold (e.g. ``PoincareBall(d)``, ``Sphere(d)``): its geodesic ``dist``, every
  pair by ``vmap`` (the rows must be points of the manifold: map embeddings onto it first,
  e.g. with ``manifold.exp`` at the origin).

With ``normalize=True`` the rows are first scaled to unit :math:`p`-norm (pytorch-metric-learning's
``LpDistance`` default; as ``torch.nn.functional.normalize``, by ``max(norm, 1e-12)``). Norms use a double ``where``: at a zero distance (a pair with itself,
duplicate embeddings) and for a zero embedding the value is exact and the gradient 0, never
NaN (the subgradient 0 of the norm at 0, as ``torch.cdist``'s backward).

References:
  K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check", ECCV 2020,
  arXiv:2003.08505 (pytorch-metric-learning's conventions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike
from geomjax.manifolds import Manifold

__all__ = ["SIMILARITIES", "pairwise_distances"]

METRICS = ("euclidean", "squared_euclidean", "lp", "cosine", "dot", "snr")
SIMILARITIES = ("cosine", "dot")
_DIRECT_MAX = 2**24  # entries of the (B, R, D) difference array below which it is formed


def _safe_root(s: Array, p: float) -> Array:
    """``s ** (1/p)`` for ``s >= 0`` with value and gradient 0 at ``s = 0``."""
    pos = s > 0
    return jnp.where(pos, jnp.where(pos, s, 1.0) ** (1.0 / p), 0.0)


def _normalize(x: Array, p: float) -> Array:
    """``x / max(||x||_p, 1e-12)`` row by row (``torch.nn.functional.normalize``: a zero row
    stays zero, with a finite gradient)."""
    n = _safe_root(jnp.sum(jnp.abs(x) ** p, axis=-1, keepdims=True), p)
    return x / jnp.maximum(n, 1e-12)


def check_embeddings(fn: str, name: str, x) -> Array:
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"{fn}: argument `{name}` must be a 2-D array (batch, dim); got shape {x.shape}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `{name}` must be real floating; got {x.dtype}")
    return x


def pairwise_distances(
    x: ArrayLike,
    y: ArrayLike | None = None,
    *,
    metric: str = "euclidean",
    p: float = 2.0,
    normalize: bool = False,
) -> Array:
    r"""Pairwise distance (or similarity) matrix between the rows of ``x`` and ``y``.

    Args:
      x: queries ``(B, D)``.
      y: references ``(R, D)``; ``None`` for ``x``.
      metric: ``"euclidean"``, ``"squared_euclidean"``, ``"lp"``, ``"cosine"`` or ``"dot"``
        (the last two are similarities: larger is closer), or a geomjax ``Manifold`` (its
        geodesic distance).
      p: the norm's ``p >= 1`` for ``"lp"`` and for ``normalize``.
      normalize: scale the rows to unit ``p``-norm first.

    Returns:
      ``(B, R)`` matrix in the embeddings' dtype.

    Raises:
      ValueError: naming ``x``/``y`` (shapes), ``metric`` or ``p``.
      TypeError: naming ``x``/``y`` (non-floating).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.metric_learning import pairwise_distances
      >>> x = jnp.array([[0.0, 0.0], [3.0, 4.0]])
      >>> pairwise_distances(x)
      Array([[0., 5.],
             [5., 0.]], dtype=float32)
      >>> pairwise_distances(x, metric="lp", p=1.0)[0, 1]
      Array(7., dtype=float32)

    References:
      K. Musgrave et al., "A Metric Learning Reality Check", ECCV 2020, arXiv:2003.08505.
    """
    fn = "pairwise_distances"
    x = check_embeddings(fn, "x", x)
    y = x if y is None else check_embeddings(fn, "y", y)
    if isinstance(metric, Manifold):
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"{fn}: arguments `x` and `y` must have the same dimension")
        return jax.vmap(lambda a: jax.vmap(lambda b: metric.dist(a, b))(y))(x)
    if y.shape[1] != x.shape[1]:
        raise ValueError(
            f"{fn}: arguments `x` and `y` must have the same dimension; got {x.shape} and {y.shape}"
        )
    if metric not in METRICS:
        raise ValueError(f"{fn}: argument `metric` must be one of {METRICS}; got {metric!r}")
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not p >= 1:
        raise ValueError(f"{fn}: argument `p` must be a number >= 1; got {p!r}")
    dtype = jnp.result_type(x.dtype, y.dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    if normalize or metric == "cosine":
        q = 2.0 if metric == "cosine" else float(p)
        x, y = _normalize(x, q), _normalize(y, q)
    if metric in SIMILARITIES:
        return x @ y.T
    if metric == "snr":
        d = x.shape[1]
        xc = x - jnp.mean(x, -1, keepdims=True)
        yc = y - jnp.mean(y, -1, keepdims=True)
        var_x = jnp.sum(xc * xc, -1) / (d - 1)
        diff = jnp.sum(xc * xc, -1)[:, None] + jnp.sum(yc * yc, -1)[None, :] - 2.0 * (xc @ yc.T)
        return jnp.maximum(diff, 0.0) / (d - 1) / var_x[:, None]
    q = float(p) if metric == "lp" else 2.0
    if q != 2.0 or x.shape[0] * y.shape[0] * x.shape[1] <= _DIRECT_MAX:
        diff = jnp.abs(x[:, None, :] - y[None, :, :])
        sq = jnp.sum(diff**q, axis=-1)
        if metric == "squared_euclidean":
            return sq
        return _safe_root(sq, q)
    sq = jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :] - 2.0 * (x @ y.T)
    sq = jnp.maximum(sq, 0.0)
    if metric == "squared_euclidean":
        return sq
    return _safe_root(sq, 2.0)


def is_similarity(metric) -> bool:
    return isinstance(metric, str) and metric in SIMILARITIES
