r"""Deep Sets: the permutation-equivariant set layer and the invariant model :math:`\rho(\sum_i \phi(x_i))`.

A set of ``N`` elements with ``F`` features is a matrix :math:`X \in \mathbb{R}^{N \times F}`
whose row order carries no meaning. Zaheer et al. show that a linear map
:math:`\mathbb{R}^{N \times F} \to \mathbb{R}^{N \times F'}` commuting with every row
permutation is :math:`X \Gamma + \mathbf{1} \mathrm{pool}(X) \Lambda'` (one weight for the
element itself, one for the pooled set), and that every permutation-invariant function of a
set is :math:`\rho(\sum_i \phi(x_i))`.

Padded sets (fixed capacity ``N``, the real elements marked by a boolean ``node_mask``) are
supported: padding rows are excluded from every pooling and set to zero in the layer's output,
so the result does not depend on what the padding rows hold.

Parameters are plain pytrees (dicts and lists of arrays) created by the ``init_*`` functions,
so the functional core is usable without Flax; :mod:`geomjax.nn` wraps them as NNX modules.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    check_key,
    check_option,
    safe_div,
)
from geomjax.equivariant._graph import check_node_mask

__all__ = ["deep_sets", "deep_sets_layer", "init_deep_sets", "init_deep_sets_layer", "set_pool"]

_POOLS = ("mean", "sum", "max")


def _check_features(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{fn}: argument `{name}` must be a positive integer; got {value!r}")
    return int(value)


def _check_dtype(fn: str, dtype) -> None:
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise TypeError(f"{fn}: argument `dtype` must be a real floating dtype; got {dtype}")


def _check_set(fn: str, x: ArrayLike, node_mask: ArrayLike | None) -> tuple[Array, Array | None]:
    x = as_float_array(fn, "x", x)
    if x.ndim != 2:
        raise ValueError(
            f"{fn}: argument `x` must be one set of shape (N, F) (vmap for batches); "
            f"got shape {x.shape}"
        )
    return x, check_node_mask(fn, node_mask, x.shape[0])


def _pool(x: Array, node_mask: Array | None, pool: str) -> Array:
    """Masked pooling over the rows of ``x (N, F)``; an empty set pools to zeros."""
    if x.shape[0] == 0:
        return jnp.zeros(x.shape[1:], x.dtype)
    if node_mask is None:
        if pool == "sum":
            return jnp.sum(x, axis=0)
        if pool == "mean":
            return jnp.mean(x, axis=0)
        return jnp.max(x, axis=0)
    m = node_mask[:, None]
    if pool == "max":
        low = jnp.asarray(jnp.finfo(x.dtype).min, x.dtype)
        pooled = jnp.max(jnp.where(m, x, low), axis=0)
        return jnp.where(jnp.any(node_mask), pooled, jnp.zeros_like(pooled))
    total = jnp.sum(jnp.where(m, x, jnp.zeros_like(x)), axis=0)
    if pool == "sum":
        return total
    count = jnp.sum(node_mask).astype(x.dtype)
    return safe_div(total, count)


def set_pool(x: ArrayLike, pool: str = "sum", node_mask: ArrayLike | None = None) -> Array:
    r"""Permutation-invariant pooling of the rows of a (padded) set.

    .. math::

        \mathrm{sum}(X) = \sum_{i: m_i} x_i, \qquad
        \mathrm{mean}(X) = \frac{1}{|\{i: m_i\}|} \sum_{i: m_i} x_i, \qquad
        \mathrm{max}(X) = \max_{i: m_i} x_i \ \text{(per feature)},

    with :math:`m` = ``node_mask`` (all true when omitted). An empty set pools to zeros.
    Non-finite entries propagate (NaN in, NaN out).

    Args:
      x: set, shape ``(N, F)``.
      pool: ``"sum"``, ``"mean"`` or ``"max"`` (static).
      node_mask: optional boolean ``(N,)``; ``False`` rows are padding and ignored.

    Returns:
      Pooled features, shape ``(F,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant._deep_sets import set_pool
      >>> x = jnp.array([[1.0, 5.0], [3.0, -1.0], [100.0, 100.0]])
      >>> set_pool(x, "mean", node_mask=jnp.array([True, True, False]))
      Array([2., 2.], dtype=float32)

    References:
      M. Zaheer, S. Kottur, S. Ravanbakhsh, B. Poczos, R. Salakhutdinov, A. Smola, "Deep Sets",
      NeurIPS 2017, arXiv:1703.06114.
    """
    fn = "set_pool"
    check_option(fn, "pool", pool, _POOLS)
    x, node_mask = _check_set(fn, x, node_mask)
    return _pool(x, node_mask, pool)


def init_deep_sets_layer(
    key: PRNGKey, in_features: int, out_features: int, dtype=jnp.float32
) -> dict:
    r"""Initial parameters of :func:`deep_sets_layer`.

    :math:`\Gamma` and :math:`\Lambda` are LeCun-normal (standard deviation
    :math:`1 / \sqrt{F}`), the bias is zero.

    Args:
      key: PRNG key.
      in_features: ``F``, features per input element.
      out_features: ``F'``, features per output element.
      dtype: floating dtype of the parameters.

    Returns:
      ``{"gamma": (F, F'), "lambda": (F, F'), "bias": (F',)}``.

    Examples:
      >>> import jax
      >>> from geomjax.equivariant._deep_sets import init_deep_sets_layer
      >>> p = init_deep_sets_layer(jax.random.key(0), 3, 8)
      >>> {k: v.shape for k, v in p.items()}
      {'gamma': (3, 8), 'lambda': (3, 8), 'bias': (8,)}
    """
    fn = "init_deep_sets_layer"
    check_key(fn, "key", key)
    f_in = _check_features(fn, "in_features", in_features)
    f_out = _check_features(fn, "out_features", out_features)
    _check_dtype(fn, dtype)
    k_gamma, k_lambda = jax.random.split(key)
    scale = 1.0 / math.sqrt(f_in)
    return {
        "gamma": scale * jax.random.normal(k_gamma, (f_in, f_out), dtype),
        "lambda": scale * jax.random.normal(k_lambda, (f_in, f_out), dtype),
        "bias": jnp.zeros((f_out,), dtype),
    }


def deep_sets_layer(
    params: dict,
    x: ArrayLike,
    *,
    pool: str = "mean",
    node_mask: ArrayLike | None = None,
    activation: Callable[[Array], Array] | None = jax.nn.relu,
) -> Array:
    r"""Permutation-equivariant Deep Sets layer.

    .. math::

        Y = \sigma\big(X \Gamma + \mathbf{1} b^\top - \mathbf{1}\, \mathrm{pool}(X) \Lambda\big),

    with :math:`X` = ``x``, :math:`\Gamma` = ``params["gamma"]``, :math:`\Lambda` =
    ``params["lambda"]``, :math:`b` = ``params["bias"]``, :math:`\sigma` = ``activation`` and
    pool one of sum / mean / max over the real (unmasked) rows (see :func:`set_pool`). Permuting
    the rows of ``x`` (and ``node_mask``) permutes the rows of the output. Padding rows
    (``node_mask`` false) do not enter the pooling and are zero in the output. Non-finite
    entries of real rows propagate (NaN in, NaN out).

    Args:
      params: ``{"gamma": (F, F'), "lambda": (F, F'), "bias": (F',)}`` from
        :func:`init_deep_sets_layer`.
      x: one set, shape ``(N, F)`` (vmap for batches of sets).
      pool: ``"mean"`` (default), ``"sum"`` or ``"max"`` (static).
      node_mask: optional boolean ``(N,)`` marking the real elements of a padded set.
      activation: elementwise nonlinearity :math:`\sigma` (default ReLU); ``None`` for the
        identity (a linear equivariant layer).

    Returns:
      ``(N, F')``, with zero rows where ``node_mask`` is false.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant._deep_sets import deep_sets_layer, init_deep_sets_layer
      >>> params = init_deep_sets_layer(jax.random.key(0), 3, 4)
      >>> x = jax.random.normal(jax.random.key(1), (5, 3))
      >>> y = deep_sets_layer(params, x, pool="max")
      >>> y.shape
      (5, 4)
      >>> bool(jnp.allclose(deep_sets_layer(params, x[::-1], pool="max"), y[::-1]))
      True

    References:
      M. Zaheer, S. Kottur, S. Ravanbakhsh, B. Poczos, R. Salakhutdinov, A. Smola, "Deep Sets",
      NeurIPS 2017, arXiv:1703.06114 (equation (4) and Section 3).
    """
    fn = "deep_sets_layer"
    check_option(fn, "pool", pool, _POOLS)
    x, node_mask = _check_set(fn, x, node_mask)
    gamma, lam, bias = _layer_params(fn, params, x.shape[1])
    pooled = _pool(x, node_mask, pool)
    y = x @ gamma.astype(x.dtype) + bias.astype(x.dtype) - (pooled @ lam.astype(x.dtype))[None, :]
    if activation is not None:
        y = activation(y)
    if node_mask is not None:
        y = jnp.where(node_mask[:, None], y, jnp.zeros_like(y))
    return y


def _layer_params(fn: str, params, f_in: int) -> tuple[Array, Array, Array]:
    if not isinstance(params, dict) or not {"gamma", "lambda", "bias"} <= set(params):
        raise TypeError(
            f"{fn}: argument `params` must be a dict with keys 'gamma', 'lambda', 'bias' "
            f"(see init_deep_sets_layer); got {type(params).__name__}"
        )
    gamma, lam, bias = (
        as_float_array(fn, "params", params[k]) for k in ("gamma", "lambda", "bias")
    )
    if gamma.ndim != 2 or gamma.shape[0] != f_in or lam.shape != gamma.shape:
        raise ValueError(
            f"{fn}: `params['gamma']` and `params['lambda']` must have shape ({f_in}, F_out) to "
            f"match `x`; got {gamma.shape} and {lam.shape}"
        )
    if bias.shape != (gamma.shape[1],):
        raise ValueError(
            f"{fn}: `params['bias']` must have shape ({gamma.shape[1]},); got {bias.shape}"
        )
    return gamma, lam, bias


def _init_mlp(key: PRNGKey, sizes: Sequence[int], dtype) -> list[dict]:
    keys = jax.random.split(key, max(len(sizes) - 1, 1))
    layers = []
    for k, f_in, f_out in zip(keys, sizes[:-1], sizes[1:]):
        w = jax.random.normal(k, (f_in, f_out), dtype) / math.sqrt(f_in)
        layers.append({"w": w, "b": jnp.zeros((f_out,), dtype)})
    return layers


def _check_mlp(fn: str, name: str, layers, f_in: int) -> int:
    """Require a non-empty list of ``{"w": (a, b), "b": (b,)}`` chaining from ``f_in``; return
    the output size. Errors name ``params``."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"{fn}: argument `params`: '{name}' must be a non-empty list of layers")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not {"w", "b"} <= set(layer):
            raise ValueError(
                f"{fn}: argument `params`: layer {i} of '{name}' must be a dict with 'w' and 'b'"
            )
        w = as_float_array(fn, "params", layer["w"])
        b = as_float_array(fn, "params", layer["b"])
        if w.ndim != 2 or w.shape[0] != f_in or b.shape != (w.shape[1],):
            raise ValueError(
                f"{fn}: argument `params`: layer {i} of '{name}' must have w ({f_in}, F) and b "
                f"(F,); got w {w.shape} and b {b.shape}"
            )
        f_in = w.shape[1]
    return f_in


def _mlp(layers: Sequence[dict], x: Array, activation, final_activation: bool) -> Array:
    for i, layer in enumerate(layers):
        x = x @ jnp.asarray(layer["w"]).astype(x.dtype) + jnp.asarray(layer["b"]).astype(x.dtype)
        if activation is not None and (final_activation or i < len(layers) - 1):
            x = activation(x)
    return x


def init_deep_sets(
    key: PRNGKey,
    in_features: int,
    phi_features: Sequence[int] = (64, 64),
    rho_features: Sequence[int] = (64, 1),
    dtype=jnp.float32,
) -> dict:
    r"""Initial parameters of the invariant Deep Sets model :func:`deep_sets`.

    :math:`\phi` maps ``in_features -> phi_features[0] -> ... -> phi_features[-1]`` and
    :math:`\rho` maps ``phi_features[-1] -> rho_features[0] -> ... -> rho_features[-1]``;
    weights are LeCun-normal, biases zero.

    Args:
      key: PRNG key.
      in_features: ``F``, features per element.
      phi_features: output sizes of the layers of :math:`\phi` (non-empty).
      rho_features: output sizes of the layers of :math:`\rho` (non-empty; the last one is the
        model's output size).
      dtype: floating dtype of the parameters.

    Returns:
      ``{"phi": [{"w", "b"}, ...], "rho": [{"w", "b"}, ...]}``.

    Examples:
      >>> import jax
      >>> from geomjax.equivariant._deep_sets import init_deep_sets
      >>> p = init_deep_sets(jax.random.key(0), 3, (16, 16), (16, 2))
      >>> [l["w"].shape for l in p["phi"]], [l["w"].shape for l in p["rho"]]
      ([(3, 16), (16, 16)], [(16, 16), (16, 2)])
    """
    fn = "init_deep_sets"
    check_key(fn, "key", key)
    f_in = _check_features(fn, "in_features", in_features)
    _check_dtype(fn, dtype)
    for name, sizes in (("phi_features", phi_features), ("rho_features", rho_features)):
        if not isinstance(sizes, Sequence) or isinstance(sizes, str):
            raise TypeError(f"{fn}: argument `{name}` must be a sequence of ints; got {sizes!r}")
    phi_sizes = [_check_features(fn, "phi_features", s) for s in phi_features]
    rho_sizes = [_check_features(fn, "rho_features", s) for s in rho_features]
    if not phi_sizes or not rho_sizes:
        raise ValueError(f"{fn}: `phi_features` and `rho_features` must be non-empty")
    k_phi, k_rho = jax.random.split(key)
    return {
        "phi": _init_mlp(k_phi, [f_in, *phi_sizes], dtype),
        "rho": _init_mlp(k_rho, [phi_sizes[-1], *rho_sizes], dtype),
    }


def deep_sets(
    params: dict,
    x: ArrayLike,
    *,
    pool: str = "sum",
    node_mask: ArrayLike | None = None,
    activation: Callable[[Array], Array] | None = jax.nn.relu,
) -> Array:
    r"""Permutation-invariant Deep Sets model :math:`\rho\big(\sum_i \phi(x_i)\big)`.

    .. math::

        f(X) = \rho\Big(\mathrm{pool}_{i: m_i}\, \phi(x_i)\Big),

    with :math:`\phi`, :math:`\rho` multilayer perceptrons (``params["phi"]``,
    ``params["rho"]``), pool the sum (the paper's form; ``"mean"`` and ``"max"`` also
    accepted) over the real rows (:math:`m` = ``node_mask``). ``activation`` follows every
    layer of :math:`\phi` and every layer but the last of :math:`\rho` (the output is linear).
    Non-finite entries of real rows propagate (NaN in, NaN out).

    Args:
      params: from :func:`init_deep_sets`.
      x: one set, shape ``(N, F)`` (vmap for batches of sets).
      pool: ``"sum"`` (default), ``"mean"`` or ``"max"`` (static).
      node_mask: optional boolean ``(N,)`` marking the real elements of a padded set.
      activation: nonlinearity (default ReLU); ``None`` for the identity.

    Returns:
      Set-level output, shape ``(rho_features[-1],)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant._deep_sets import deep_sets, init_deep_sets
      >>> params = init_deep_sets(jax.random.key(0), 2, (8,), (8, 1))
      >>> x = jax.random.normal(jax.random.key(1), (6, 2))
      >>> bool(jnp.allclose(deep_sets(params, x), deep_sets(params, x[::-1])))
      True

    References:
      M. Zaheer, S. Kottur, S. Ravanbakhsh, B. Poczos, R. Salakhutdinov, A. Smola, "Deep Sets",
      NeurIPS 2017, arXiv:1703.06114 (Theorem 2).
    """
    fn = "deep_sets"
    check_option(fn, "pool", pool, _POOLS)
    x, node_mask = _check_set(fn, x, node_mask)
    if not isinstance(params, dict) or "phi" not in params or "rho" not in params:
        raise TypeError(
            f"{fn}: argument `params` must be a dict with keys 'phi' and 'rho' (see init_deep_sets)"
        )
    phi, rho = params["phi"], params["rho"]
    _check_mlp(fn, "rho", rho, _check_mlp(fn, "phi", phi, x.shape[1]))
    h = _mlp(phi, x, activation, final_activation=True)
    return _mlp(rho, _pool(h, node_mask, pool), activation, final_activation=False)
