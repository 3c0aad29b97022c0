"""E(n)-equivariant graph neural network layer (EGNN, E_GCL / E_GCL_vel) and the stacked model.

Parameters are explicit pytrees (nested dicts of arrays, weights stored ``(fan_in, fan_out)`` so
a layer is ``y = x @ w + b``), created by :func:`init_egnn_layer` / :func:`init_egnn`; the
forward passes are pure functions. Graphs follow the padded convention of
:mod:`geomjax.equivariant._graph`: messages flow ``senders -> receivers`` (``j -> i``) and are
aggregated at the receivers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    check_key,
    check_option,
    check_scalar,
    safe_norm,
)

__all__ = ["egnn", "egnn_layer", "init_egnn", "init_egnn_layer"]

_AGGS = ("mean", "sum")


def _count(fn: str, name: str, value, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: argument `{name}` must be a Python int; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{fn}: argument `{name}` must be a {kind} int; got {value}")
    return int(value)


def _layer_specs(prefix, f, a, hdim, o, attention, velocity, coord_gain) -> list:
    """``(path, shape, bound)`` of every parameter of one layer, drawn uniform in ``+-bound``.

    PyTorch ``nn.Linear`` initialisation (weights and biases: bound ``1/sqrt(fan_in)``), except
    the last layer of phi_x: Xavier-uniform with gain ``coord_gain`` (bound
    ``gain * sqrt(6 / (fan_in + fan_out))``), no bias.
    """
    specs = []

    def linear(path, fan_in, fan_out, *, bias=True, gain=None):
        w, b = path
        if gain is not None:
            specs.append(
                (prefix + w, (fan_in, fan_out), gain * math.sqrt(6.0 / (fan_in + fan_out)))
            )
            return
        bound = 1.0 / math.sqrt(fan_in)
        specs.append((prefix + w, (fan_in, fan_out), bound))
        if bias:
            specs.append((prefix + b, (fan_out,), bound))

    def mlp(name, sizes, last_gain=None):
        for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
            g = last_gain if i == len(sizes) - 2 else None
            linear(((name, f"w{i}"), (name, f"b{i}")), fi, fo, gain=g)

    mlp("edge_mlp", (2 * f + 1 + a, hdim, hdim))
    mlp("node_mlp", (hdim + f, hdim, o))
    mlp("coord_mlp", (hdim, hdim, 1), last_gain=coord_gain)
    if attention:
        linear((("att", "w"), ("att", "b")), hdim, 1)
    if velocity:
        mlp("vel_mlp", (f, hdim, 1))
    return specs


def _draw(key, specs, dtype):
    """All parameters from one uniform draw, split into the leaves (few dispatches; traceable)."""
    sizes = [math.prod(shape) for _, shape, _ in specs]
    bounds = np.repeat(np.array([bound for _, _, bound in specs], dtype), sizes)
    u = jax.random.uniform(key, (sum(sizes),), dtype, -1.0, 1.0) * jnp.asarray(bounds)
    out = {}
    for (path, shape, _), leaf in zip(specs, jax.lax.split(u, sizes)):
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = leaf.reshape(shape)
    return out


def init_egnn_layer(
    key: PRNGKey,
    node_dim: int,
    edge_dim: int,
    hidden_dim: int,
    *,
    out_dim: int | None = None,
    attention: bool = False,
    velocity: bool = False,
    coord_gain: float = 0.001,
    dtype=jnp.float32,
) -> dict:
    r"""Initial parameters of :func:`egnn_layer` (the official E_GCL / E_GCL_vel architecture).

    Linear layers use PyTorch's default ``nn.Linear`` initialisation (weights and biases uniform
    in :math:`\pm 1/\sqrt{\text{fan\_in}}`); the last layer of :math:`\phi_x` has no bias and is
    Xavier-uniform with gain ``coord_gain`` (0.001 in the official code), so coordinate updates
    start small.

    Args:
      key: PRNG key.
      node_dim: node feature size ``F``.
      edge_dim: edge attribute size ``A`` (0 for none).
      hidden_dim: message / hidden size ``H``.
      out_dim: node output size (default ``F``; must equal ``F`` for the residual update).
      attention: add the attention gate :math:`\sigma(m_{ij} w_a + b_a)`.
      velocity: add :math:`\phi_v` for the velocity variant.
      coord_gain: Xavier gain of the last layer of :math:`\phi_x`.
      dtype: floating dtype of the parameters.

    Returns:
      A nested dict: ``edge_mlp`` (``w0 (2F+1+A, H), b0, w1 (H, H), b1``), ``node_mlp``
      (``w0 (H+F, H), b0, w1 (H, out_dim), b1``), ``coord_mlp`` (``w0 (H, H), b0, w1 (H, 1)``),
      and optionally ``att`` (``w (H, 1), b (1,)``) and ``vel_mlp`` (``w0 (F, H), b0, w1 (H, 1),
      b1``).

    Examples:
      >>> import jax
      >>> from geomjax.equivariant._egnn import init_egnn_layer
      >>> p = init_egnn_layer(jax.random.key(0), 8, 2, 16)
      >>> sorted(p), p["edge_mlp"]["w0"].shape
      (['coord_mlp', 'edge_mlp', 'node_mlp'], (19, 16))
    """
    fn = "init_egnn_layer"
    check_key(fn, "key", key)
    f = _count(fn, "node_dim", node_dim)
    a = _count(fn, "edge_dim", edge_dim, allow_zero=True)
    hdim = _count(fn, "hidden_dim", hidden_dim)
    o = f if out_dim is None else _count(fn, "out_dim", out_dim)
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise TypeError(f"{fn}: argument `dtype` must be a floating dtype; got {dtype}")
    check_scalar(fn, "coord_gain", coord_gain, positive=False)
    specs = _layer_specs((), f, a, hdim, o, bool(attention), bool(velocity), float(coord_gain))
    return _draw(key, tuple(specs), jnp.dtype(dtype))


def _check_params(fn: str, params) -> tuple[int, int, int]:
    try:
        w0 = params["edge_mlp"]["w0"]
        hdim = params["edge_mlp"]["w1"].shape[0]
        f = params["node_mlp"]["w0"].shape[0] - hdim
        params["coord_mlp"]["w1"]
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"{fn}: argument `params` must be a dict from init_egnn_layer (edge_mlp, node_mlp, "
            f"coord_mlp); missing {exc}"
        ) from None
    a = w0.shape[0] - 2 * f - 1
    if a < 0:
        raise ValueError(f"{fn}: argument `params` is inconsistent: edge_mlp.w0 {w0.shape}")
    # Every leaf against the shapes init_egnn_layer gives for these sizes.
    try:
        o = params["node_mlp"]["w1"].shape[1]
        specs = _layer_specs((), f, a, hdim, o, "att" in params, "vel_mlp" in params, 1.0)
        for path, shape, _ in specs:
            leaf = params[path[0]][path[1]]
            as_float_array(fn, "params", leaf)
            if jnp.shape(leaf) != shape:
                raise ValueError(
                    f"{fn}: argument `params`: {path[0]}.{path[1]} must have shape {shape} "
                    f"(node_dim {f}, edge_dim {a}, hidden_dim {hdim}); got {jnp.shape(leaf)}"
                )
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        if isinstance(exc, TypeError) and "`params`" in str(exc):
            raise
        raise ValueError(
            f"{fn}: argument `params` must be a dict from init_egnn_layer; missing or malformed "
            f"entry {exc}"
        ) from None
    return f, a, hdim


def _node_index(fn, name, idx, e=None):
    idx = jnp.asarray(idx)
    if idx.ndim != 1 or not jnp.issubdtype(idx.dtype, jnp.integer):
        raise ValueError(
            f"{fn}: argument `{name}` must be a 1-D integer array; got shape {idx.shape}, "
            f"dtype {idx.dtype}"
        )
    if e is not None and idx.shape[0] != e:
        raise ValueError(f"{fn}: argument `{name}` must have shape ({e},); got {idx.shape}")
    return idx


def _bool_mask(fn, name, mask, size):
    mask = jnp.asarray(mask)
    if mask.shape != (size,) or mask.dtype != jnp.bool_:
        raise ValueError(
            f"{fn}: argument `{name}` must be a boolean array of shape ({size},); got shape "
            f"{mask.shape}, dtype {mask.dtype}"
        )
    return mask


def egnn_layer(
    params: dict,
    h: ArrayLike,
    x: ArrayLike,
    senders: ArrayLike,
    receivers: ArrayLike,
    *,
    edge_attr: ArrayLike | None = None,
    edge_mask: ArrayLike | None = None,
    node_mask: ArrayLike | None = None,
    v: ArrayLike | None = None,
    residual: bool = True,
    normalize: bool = False,
    epsilon: float = 1e-8,
    tanh: bool = False,
    coords_range: float = 1.0,
    coords_agg: str = "mean",
    clamp: float | None = None,
    act: Callable[[Array], Array] = jax.nn.silu,
) -> tuple[Array, Array]:
    r"""One E(n)-equivariant graph convolutional layer (EGNN, E_GCL; velocity variant E_GCL_vel).

    For each edge ``j -> i`` (``senders[e] = j``, ``receivers[e] = i``) with attributes
    :math:`a_{ij}` (``edge_attr``), over the real neighbours :math:`\mathcal N(i)` of ``i``:

    .. math::

        m_{ij} &= \phi_e\big(h_i, h_j, \|x_i - x_j\|^2, a_{ij}\big)
                  \quad [\times\, \sigma(w_a^\top m_{ij} + b_a) \text{ with attention}], \\
        x_i' &= x_i + \frac{1}{|\mathcal N(i)|} \sum_{j \in \mathcal N(i)}
                (x_i - x_j)\, \phi_x(m_{ij})
                \quad [+\, \phi_v(h_i)\, v_i \text{ with velocities}], \\
        h_i' &= h_i + \phi_h\Big(h_i, \sum_{j \in \mathcal N(i)} m_{ij}\Big).

    :math:`\phi_e` is Linear-act-Linear-act, :math:`\phi_h` Linear-act-Linear, :math:`\phi_x`
    Linear-act-Linear (no bias), :math:`\phi_v` Linear-act-Linear. The coordinate update
    *averages* over neighbours (``coords_agg="mean"``, the official code; ``"sum"`` sums), an
    isolated node keeps its position. Options of the official code: ``normalize`` replaces
    :math:`x_i - x_j` in the update by :math:`(x_i - x_j) / (\operatorname{sg}\|x_i - x_j\| +
    \epsilon)` (stop-gradient norm; finite at coincident points); ``tanh`` bounds
    :math:`\phi_x` to ``coords_range * tanh(...)``; ``clamp`` clips each term
    :math:`(x_i - x_j)\phi_x(m_{ij})` to :math:`\pm` ``clamp`` (the N-body code uses 100).
    ``v`` is the *initial* velocity, given unchanged to every layer as in EGNN_vel.

    The output is E(n)-equivariant (``x`` rotates/reflects and translates, ``v`` rotates, ``h``
    invariant) and node-permutation equivariant. Padding edges (``edge_mask`` False, or touching a
    node with ``node_mask`` False) take no part; padding nodes keep their ``h`` and ``x``.
    Non-finite ``h``, ``x`` or ``v`` of a real node propagate to it and its neighbours (NaN in,
    NaN out); coincident points are fine (``normalize`` needs ``epsilon > 0`` for them).

    Args:
      params: from :func:`init_egnn_layer`.
      h: node features, shape ``(N, F)``.
      x: positions, shape ``(N, d)`` (any ``d``).
      senders, receivers: int arrays ``(E,)``.
      edge_attr: optional ``(E, A)`` (required when the params have ``A > 0``).
      edge_mask: optional bool ``(E,)``.
      node_mask: optional bool ``(N,)``.
      v: velocities ``(N, d)``; required iff the params have ``vel_mlp``.
      residual: ``h' = h + phi_h(...)`` (else ``h' = phi_h(...)``).
      normalize, epsilon, tanh, coords_range, coords_agg, clamp: see above (static).
      act: activation (SiLU by default).

    Returns:
      ``(h', x')`` of shapes ``(N, out_dim)`` and ``(N, d)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant._egnn import egnn_layer, init_egnn_layer
      >>> from geomjax.equivariant._graph import fully_connected_graph
      >>> s, r = fully_connected_graph(5)
      >>> params = init_egnn_layer(jax.random.key(0), 4, 0, 16)
      >>> h, x = jnp.ones((5, 4)), jax.random.normal(jax.random.key(1), (5, 3))
      >>> h2, x2 = egnn_layer(params, h, x, s, r)
      >>> h2.shape, x2.shape
      ((5, 4), (5, 3))

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021, arXiv:2102.09844.
    """
    fn = "egnn_layer"
    check_option(fn, "coords_agg", coords_agg, _AGGS)
    check_scalar(fn, "epsilon", epsilon)
    check_scalar(fn, "coords_range", coords_range, positive=False)
    if clamp is not None:
        check_scalar(fn, "clamp", clamp)
    f, a, hdim = _check_params(fn, params)
    h = as_float_array(fn, "h", h)
    x = as_float_array(fn, "x", x)
    if h.ndim != 2 or h.shape[1] != f:
        raise ValueError(f"{fn}: argument `h` must have shape (N, {f}); got shape {h.shape}")
    n = h.shape[0]
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"{fn}: argument `x` must have shape ({n}, d); got shape {x.shape}")
    senders = _node_index(fn, "senders", senders)
    e = senders.shape[0]
    receivers = _node_index(fn, "receivers", receivers, e)
    out_dim = params["node_mlp"]["w1"].shape[1]
    if residual and out_dim != f:
        raise ValueError(
            f"{fn}: `residual=True` needs node_mlp output size {out_dim} == node_dim {f}"
        )
    if a > 0:
        if edge_attr is None:
            raise ValueError(f"{fn}: argument `edge_attr` of shape ({e}, {a}) is required")
        edge_attr = as_float_array(fn, "edge_attr", edge_attr)
        if edge_attr.shape != (e, a):
            raise ValueError(
                f"{fn}: argument `edge_attr` must have shape ({e}, {a}); got {edge_attr.shape}"
            )
    elif edge_attr is not None and jnp.shape(edge_attr) != (e, 0):
        raise ValueError(
            f"{fn}: the params take no edge attributes; got `edge_attr` {jnp.shape(edge_attr)}"
        )
    has_vel = "vel_mlp" in params
    if has_vel != (v is not None):
        raise ValueError(
            f"{fn}: argument `v` must be given exactly when the params have `vel_mlp` "
            f"(init_egnn_layer(..., velocity=True)); params {'have' if has_vel else 'lack'} it"
        )
    if v is not None:
        v = as_float_array(fn, "v", v)
        if v.shape != x.shape:
            raise ValueError(f"{fn}: argument `v` must have shape {x.shape}; got {v.shape}")
    dtype = jnp.result_type(h.dtype, x.dtype, *jax.tree.leaves(params))
    p = jax.tree.map(lambda t: jnp.asarray(t, dtype), params)
    h, x = h.astype(dtype), x.astype(dtype)

    # Edges in use: real, both ends real and in range.
    inside = (senders >= 0) & (senders < n) & (receivers >= 0) & (receivers < n)
    s = jnp.where(inside, senders, 0)
    r = jnp.where(inside, receivers, 0)
    keep = inside
    if edge_mask is not None:
        keep = keep & _bool_mask(fn, "edge_mask", edge_mask, e)
    if node_mask is not None:
        node_mask = _bool_mask(fn, "node_mask", node_mask, n)
        keep = keep & node_mask[s] & node_mask[r]

    diff = x[r] - x[s]  # x_i - x_j
    radial = jnp.sum(diff * diff, axis=-1, keepdims=True)
    if normalize:
        norm = safe_norm(jax.lax.stop_gradient(diff), axis=-1, keepdims=True)
        diff = diff / (norm + epsilon)

    # phi_e: the first linear layer is split per input block, so h is projected per node
    # (N F H flops) before the gather instead of per edge (E F H).
    pe = p["edge_mlp"]
    w0 = pe["w0"]
    pre = (h @ w0[:f])[r] + (h @ w0[f : 2 * f])[s] + radial * w0[2 * f] + pe["b0"]
    if a > 0:
        pre = pre + edge_attr.astype(dtype) @ w0[2 * f + 1 :]
    m = act(act(pre) @ pe["w1"] + pe["b1"])
    if "att" in p:
        m = m * jax.nn.sigmoid(m @ p["att"]["w"] + p["att"]["b"])

    pc = p["coord_mlp"]
    phi_x = act(m @ pc["w0"] + pc["b0"]) @ pc["w1"]
    if tanh:
        phi_x = coords_range * jnp.tanh(phi_x)
    trans = diff * phi_x
    if clamp is not None:
        trans = jnp.clip(trans, -clamp, clamp)

    # One scatter for the coordinate update, the messages and the degrees.
    d = x.shape[1]
    packed = jnp.concatenate([trans, m, jnp.ones((e, 1), dtype)], axis=-1)
    ids = jnp.where(keep, r, n)  # masked edges go out of range and are dropped
    agg = jax.ops.segment_sum(packed, ids, n)
    agg_x, agg_m, deg = agg[:, :d], agg[:, d : d + hdim], agg[:, d + hdim :]
    if coords_agg == "mean":
        agg_x = agg_x / jnp.maximum(deg, 1)
    x_new = x + agg_x
    if v is not None:
        pv = p["vel_mlp"]
        x_new = x_new + (act(h @ pv["w0"] + pv["b0"]) @ pv["w1"] + pv["b1"]) * v.astype(dtype)

    pn = p["node_mlp"]
    out = act(jnp.concatenate([h, agg_m], axis=-1) @ pn["w0"] + pn["b0"]) @ pn["w1"] + pn["b1"]
    h_new = h + out if residual else out
    if node_mask is not None:
        keep_node = node_mask[:, None]
        h_new = jnp.where(keep_node, h_new, h if residual else jnp.zeros_like(h_new))
        x_new = jnp.where(keep_node, x_new, x)
    return h_new, x_new


def init_egnn(
    key: PRNGKey,
    in_node_dim: int,
    hidden_dim: int,
    out_node_dim: int,
    *,
    edge_dim: int = 0,
    n_layers: int = 4,
    attention: bool = False,
    velocity: bool = False,
    coord_gain: float = 0.001,
    dtype=jnp.float32,
) -> dict:
    r"""Initial parameters of :func:`egnn`: embedding in, ``n_layers`` EGNN layers, embedding out.

    Args:
      key: PRNG key.
      in_node_dim: input node feature size.
      hidden_dim: width ``H`` of every layer (node features and messages).
      out_node_dim: output node feature size.
      edge_dim: edge attribute size (0 for none), shared by all layers.
      n_layers: number of layers.
      attention, velocity, coord_gain: as in :func:`init_egnn_layer`.
      dtype: floating dtype of the parameters.

    Returns:
      ``{"embedding_in": {"w", "b"}, "layers": [layer params, ...], "embedding_out": {"w", "b"}}``.

    Examples:
      >>> import jax
      >>> from geomjax.equivariant._egnn import init_egnn
      >>> p = init_egnn(jax.random.key(0), 1, 64, 1, edge_dim=2, velocity=True)
      >>> len(p["layers"]), p["embedding_in"]["w"].shape
      (4, (1, 64))
    """
    fn = "init_egnn"
    check_key(fn, "key", key)
    fin = _count(fn, "in_node_dim", in_node_dim)
    hdim = _count(fn, "hidden_dim", hidden_dim)
    fout = _count(fn, "out_node_dim", out_node_dim)
    n_layers = _count(fn, "n_layers", n_layers)
    edge_dim = _count(fn, "edge_dim", edge_dim, allow_zero=True)
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise TypeError(f"{fn}: argument `dtype` must be a floating dtype; got {dtype}")
    check_scalar(fn, "coord_gain", coord_gain, positive=False)
    bound_in, bound_out = 1.0 / math.sqrt(fin), 1.0 / math.sqrt(hdim)
    specs = [
        (("embedding_in", "w"), (fin, hdim), bound_in),
        (("embedding_in", "b"), (hdim,), bound_in),
        (("embedding_out", "w"), (hdim, fout), bound_out),
        (("embedding_out", "b"), (fout,), bound_out),
    ]
    for i in range(n_layers):
        specs += _layer_specs(
            ("layers", i),
            hdim,
            edge_dim,
            hdim,
            hdim,
            bool(attention),
            bool(velocity),
            float(coord_gain),
        )
    params = _draw(key, tuple(specs), jnp.dtype(dtype))
    params["layers"] = [params["layers"][i] for i in range(n_layers)]
    return params


def egnn(
    params: dict,
    h: ArrayLike,
    x: ArrayLike,
    senders: ArrayLike,
    receivers: ArrayLike,
    *,
    edge_attr: ArrayLike | None = None,
    edge_mask: ArrayLike | None = None,
    node_mask: ArrayLike | None = None,
    v: ArrayLike | None = None,
    residual: bool = True,
    normalize: bool = False,
    epsilon: float = 1e-8,
    tanh: bool = False,
    coords_range: float = 1.0,
    coords_agg: str = "mean",
    clamp: float | None = None,
    act: Callable[[Array], Array] = jax.nn.silu,
) -> tuple[Array, Array]:
    r"""The EGNN model: linear embedding, ``L`` :func:`egnn_layer`\ s, linear read-out.

    .. math::

        h^0 = h W_{in} + b_{in}, \qquad (h^{l+1}, x^{l+1}) = \mathrm{EGCL}_l(h^l, x^l, v),
        \qquad \text{out} = (h^L W_{out} + b_{out},\ x^L).

    With velocity layers (``init_egnn(..., velocity=True)``) every layer receives the same
    initial velocity ``v`` (EGNN_vel, used for the N-body experiment, whose prediction is
    :math:`x^L`). Equivariance and masking are those of :func:`egnn_layer`; padding nodes
    output ``h = 0`` and their input ``x``.

    Args:
      params: from :func:`init_egnn`.
      h: node features ``(N, in_node_dim)``.
      x: positions ``(N, d)``.
      senders, receivers, edge_attr, edge_mask, node_mask, v: as in :func:`egnn_layer`.
      residual, normalize, epsilon, tanh, coords_range, coords_agg, clamp, act: per-layer
        options of :func:`egnn_layer`.

    Returns:
      ``(h_out, x_out)`` of shapes ``(N, out_node_dim)`` and ``(N, d)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant._egnn import egnn, init_egnn
      >>> from geomjax.equivariant._graph import fully_connected_graph
      >>> s, r = fully_connected_graph(5)
      >>> params = init_egnn(jax.random.key(0), 1, 32, 1, velocity=True)
      >>> x, v = jax.random.normal(jax.random.key(1), (2, 5, 3))
      >>> h = jnp.linalg.norm(v, axis=1, keepdims=True)  # invariant node feature ||v||
      >>> h_out, x_out = jax.jit(egnn)(params, h, x, s, r, v=v)
      >>> h_out.shape, x_out.shape
      ((5, 1), (5, 3))

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021, arXiv:2102.09844.
    """
    fn = "egnn"
    try:
        emb_in, layers, emb_out = params["embedding_in"], params["layers"], params["embedding_out"]
        w_in, b_in = (as_float_array(fn, "params", emb_in[k]) for k in ("w", "b"))
        w_out, b_out = (as_float_array(fn, "params", emb_out[k]) for k in ("w", "b"))
    except (KeyError, TypeError) as exc:
        if isinstance(exc, TypeError) and "`params`" in str(exc):
            raise
        raise ValueError(
            f"{fn}: argument `params` must be a dict from init_egnn (embedding_in, layers, "
            "embedding_out, each embedding with 'w' and 'b')"
        ) from None
    if (
        w_in.ndim != 2
        or b_in.shape != w_in.shape[1:]
        or w_out.ndim != 2
        or b_out.shape != w_out.shape[1:]
    ):
        raise ValueError(
            f"{fn}: argument `params`: embeddings must be w (F_in, F_out), b (F_out,); got "
            f"embedding_in {w_in.shape}, {b_in.shape} and embedding_out {w_out.shape}, {b_out.shape}"
        )
    if not isinstance(layers, (list, tuple)):
        raise ValueError(f"{fn}: argument `params`: 'layers' must be a list of layer dicts")
    h = as_float_array(fn, "h", h)
    if h.ndim != 2 or h.shape[1] != w_in.shape[0]:
        raise ValueError(
            f"{fn}: argument `h` must have shape (N, {w_in.shape[0]}); got shape {h.shape}"
        )
    hh = h @ w_in + b_in
    options = dict(
        edge_attr=edge_attr,
        edge_mask=edge_mask,
        node_mask=node_mask,
        v=v,
        residual=residual,
        normalize=normalize,
        epsilon=epsilon,
        tanh=tanh,
        coords_range=coords_range,
        coords_agg=coords_agg,
        clamp=clamp,
        act=act,
    )
    for layer in layers:
        hh, x = egnn_layer(layer, hh, x, senders, receivers, **options)
    if hh.shape[1] != w_out.shape[0]:
        raise ValueError(
            f"{fn}: argument `params`: embedding_out.w must have shape ({hh.shape[1]}, F_out) to "
            f"take the last layer's features; got {w_out.shape}"
        )
    out = hh @ w_out + b_out
    if node_mask is not None:
        out = jnp.where(jnp.asarray(node_mask)[:, None], out, jnp.zeros_like(out))
    return out, x
