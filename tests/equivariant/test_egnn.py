"""Tests for the EGNN layer and model (geomjax.equivariant._egnn).

* An independent dense float64 numpy re-implementation of one E_GCL / E_GCL_vel layer from the
  paper's equations (explicit loops over edges, concatenated MLP inputs) matches to 1e-10.
* E(3) equivariance (rotations with and without reflections, translations) and node permutation
  equivariance with ``geomjax.testing.assert_equivariant``: float32 <= 1e-5 relative per layer,
  1e-4 for the 4-layer model; float64 <= 1e-10.
* Finite gradients (first and second order) at coincident points and zero velocities.
* Padding nodes / edges do not change the real nodes; batching by vmap equals batch_graphs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant._egnn import egnn, egnn_layer, init_egnn, init_egnn_layer
from geomjax.equivariant._graph import batch_graphs, fully_connected_graph
from geomjax.testing import assert_allclose_dtype, rounding_tolerance
from geomjax.testing._equivariance import assert_equivariant

F, A, H = 5, 2, 16


# ----------------------------------------------------------------------------- reference


def _silu(z):
    return z / (1.0 + np.exp(-z))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _ref_layer(
    params,
    h,
    x,
    senders,
    receivers,
    edge_attr=None,
    edge_mask=None,
    v=None,
    *,
    normalize=False,
    eps=1e-8,
    tanh=False,
    coords_range=1.0,
    agg="mean",
    clamp=None,
):
    """E_GCL(_vel) forward from the paper's equations, one edge at a time, in float64 numpy."""
    p = jax.tree.map(lambda t: np.asarray(t, np.float64), params)
    h, x = np.asarray(h, np.float64), np.asarray(x, np.float64)
    n, d = x.shape
    e_mlp, n_mlp, c_mlp = p["edge_mlp"], p["node_mlp"], p["coord_mlp"]
    hid = e_mlp["w1"].shape[0]
    msg_sum = np.zeros((n, hid))
    coord_sum = np.zeros((n, d))
    degree = np.zeros(n)
    for e in range(len(senders)):
        if edge_mask is not None and not edge_mask[e]:
            continue
        i, j = int(receivers[e]), int(senders[e])
        diff = x[i] - x[j]
        radial = float(diff @ diff)
        parts = [h[i], h[j], [radial]]
        if edge_attr is not None:
            parts.append(np.asarray(edge_attr[e], np.float64))
        inp = np.concatenate(parts)
        m = _silu(_silu(inp @ e_mlp["w0"] + e_mlp["b0"]) @ e_mlp["w1"] + e_mlp["b1"])
        if "att" in p:
            m = m * _sigmoid(m @ p["att"]["w"] + p["att"]["b"])
        phi = _silu(m @ c_mlp["w0"] + c_mlp["b0"]) @ c_mlp["w1"]
        if tanh:
            phi = coords_range * np.tanh(phi)
        if normalize:
            diff = diff / (np.sqrt(radial) + eps)
        term = diff * phi
        if clamp is not None:
            term = np.clip(term, -clamp, clamp)
        msg_sum[i] += m
        coord_sum[i] += term
        degree[i] += 1
    x_new = x.copy()
    for i in range(n):
        x_new[i] += coord_sum[i] / (max(degree[i], 1.0) if agg == "mean" else 1.0)
        if v is not None:
            vm = p["vel_mlp"]
            scale = _silu(h[i] @ vm["w0"] + vm["b0"]) @ vm["w1"] + vm["b1"]
            x_new[i] += scale * np.asarray(v[i], np.float64)
    h_new = np.stack(
        [
            h[i]
            + _silu(np.concatenate([h[i], msg_sum[i]]) @ n_mlp["w0"] + n_mlp["b0"]) @ n_mlp["w1"]
            + n_mlp["b1"]
            for i in range(n)
        ]
    )
    return h_new, x_new


def _graph(n=6, seed=0, d=3, dtype=jnp.float32):
    """A random sparse directed graph (node 0 receives nothing, duplicates allowed) and data."""
    rng = np.random.default_rng(seed)
    pairs = [(j, i) for i in range(1, n) for j in range(n) if i != j and rng.random() < 0.6]
    pairs += [(2, 1)]  # a duplicate edge
    senders = np.array([s for s, _ in pairs], np.int32)
    receivers = np.array([r for _, r in pairs], np.int32)
    e = len(pairs)
    h = rng.normal(size=(n, F))
    x = rng.normal(size=(n, d)) * 1.5
    v = rng.normal(size=(n, d))
    a = rng.normal(size=(e, A))
    cast = lambda t: jnp.asarray(t, dtype)  # noqa: E731
    return cast(h), cast(x), jnp.asarray(senders), jnp.asarray(receivers), cast(a), cast(v)


VARIANTS = {
    "plain": ({}, {}),
    "attention": ({"attention": True}, {}),
    "velocity": ({"velocity": True}, {}),
    "normalize_tanh": ({}, {"normalize": True, "tanh": True, "coords_range": 3.0}),
    "sum_clamp": ({"attention": True}, {"coords_agg": "sum", "clamp": 0.05}),
    "all": ({"attention": True, "velocity": True}, {"normalize": True, "tanh": True}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_layer_matches_dense_reference_float64(variant, x64):
    init_kw, opts = VARIANTS[variant]
    h, x, s, r, a, v = _graph(dtype=jnp.float64)
    # A large coordinate gain so the coordinate update is not negligible in the comparison.
    params = init_egnn_layer(
        jax.random.key(1), F, A, H, coord_gain=1.0, dtype=jnp.float64, **init_kw
    )
    vel = v if init_kw.get("velocity") else None
    got_h, got_x = jax.jit(functools.partial(egnn_layer, **opts))(
        params, h, x, s, r, edge_attr=a, v=vel
    )
    ref_opts = {k: val for k, val in opts.items() if k != "coords_agg"}
    want_h, want_x = _ref_layer(
        params, h, x, s, r, a, v=vel, agg=opts.get("coords_agg", "mean"), **ref_opts
    )
    assert got_h.dtype == jnp.float64
    assert_allclose_dtype(got_h, want_h)
    assert_allclose_dtype(got_x - x, want_x - np.asarray(x))  # the update itself, not just x
    if vel is None:
        np.testing.assert_array_equal(got_x[0], x[0])  # node 0 has no neighbours
    if variant == "sum_clamp":
        assert np.max(np.abs(np.asarray(got_x - x))) <= 0.05 * 2 * len(s)


def test_layer_any_dimension_and_no_edge_attr(x64):
    h, x, s, r, _, _ = _graph(seed=2, d=2, dtype=jnp.float64)
    params = init_egnn_layer(jax.random.key(2), F, 0, H, coord_gain=1.0, dtype=jnp.float64)
    got_h, got_x = jax.jit(egnn_layer)(params, h, x, s, r)
    want_h, want_x = _ref_layer(params, h, x, s, r)
    assert_allclose_dtype(got_h, want_h)
    assert_allclose_dtype(got_x - x, want_x - np.asarray(x))


def test_model_matches_stacked_reference(x64):
    n = 5
    s, r = fully_connected_graph(n)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(n, 3)))
    v = jnp.asarray(rng.normal(size=(n, 3)))
    h = jnp.linalg.norm(v, axis=1, keepdims=True)
    a = jnp.asarray(rng.normal(size=(len(s), 2)))
    params = init_egnn(
        jax.random.key(3),
        1,
        8,
        3,
        edge_dim=2,
        n_layers=3,
        velocity=True,
        coord_gain=0.5,
        dtype=jnp.float64,
    )
    got_h, got_x = jax.jit(egnn)(params, h, x, s, r, edge_attr=a, v=v)
    p = jax.tree.map(np.asarray, params)
    hh = np.asarray(h) @ p["embedding_in"]["w"] + p["embedding_in"]["b"]
    xx = np.asarray(x)
    for layer in params["layers"]:
        hh, xx = _ref_layer(layer, hh, xx, s, r, a, v=v)
    assert_allclose_dtype(got_h, hh @ p["embedding_out"]["w"] + p["embedding_out"]["b"])
    assert_allclose_dtype(got_x - x, xx - np.asarray(x))


# ----------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("variant", ["plain", "all"])
def test_layer_is_e3_and_permutation_equivariant(variant, dtype):
    init_kw, opts = VARIANTS[variant]
    h, x, s, r, a, v = _graph(seed=4, dtype=dtype)
    params = init_egnn_layer(jax.random.key(4), F, A, H, coord_gain=1.0, dtype=dtype, **init_kw)
    if init_kw.get("velocity"):

        def f(h, x, s, r, a, v):
            return egnn_layer(params, h, x, s, r, edge_attr=a, v=v, **opts)

        args, kinds = (h, x, s, r, a, v), ("scalar", "position", "index", "index", "edge", "vector")
    else:

        def f(h, x, s, r, a):
            return egnn_layer(params, h, x, s, r, edge_attr=a, **opts)

        args, kinds = (h, x, s, r, a), ("scalar", "position", "index", "index", "edge")
    f = jax.jit(f)
    # 4 trials: reflections on trials 0 and 2, proper rotations on 1 and 3, all translated.
    err = assert_equivariant(
        f,
        jax.random.key(5),
        args,
        in_kinds=kinds,
        out_kinds=("scalar", "position"),
        group="E3",
        permute=True,
        n_trials=4,
    )
    # float32 1e-7 measured; the default round-off budget is the bound
    assert err <= rounding_tolerance(dtype, n_ops=x.size + h.size, cond=16.0)
    # Rotations alone (no translation), with and without permutations.
    assert_equivariant(
        f,
        jax.random.key(6),
        args,
        in_kinds=kinds,
        out_kinds=("scalar", "position"),
        group="SO3",
        n_trials=2,
    )


def test_four_layer_model_is_equivariant(dtype):
    n = 5
    s, r = fully_connected_graph(n)
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(n, 3)), dtype)
    v = jnp.asarray(rng.normal(size=(n, 3)), dtype)
    a = jnp.asarray(rng.normal(size=(len(s), 2)), dtype)
    params = init_egnn(
        jax.random.key(7),
        1,
        32,
        2,
        edge_dim=2,
        n_layers=4,
        velocity=True,
        coord_gain=0.3,
        dtype=dtype,
    )

    @jax.jit
    def f(x, v, s, r, a):
        h = jnp.sqrt(jnp.sum(v * v, axis=1, keepdims=True))  # ||v||, invariant
        return egnn(params, h, x, s, r, edge_attr=a, v=v)

    err = assert_equivariant(
        f,
        jax.random.key(8),
        (x, v, s, r, a),
        in_kinds=("position", "vector", "index", "index", "edge"),
        out_kinds=("scalar", "position"),
        group="E3",
        permute=True,
        n_trials=4,
    )
    assert err <= rounding_tolerance(dtype, n_ops=x.size + v.size, cond=16.0)  # as above


def test_layer_is_not_equivariant_with_absolute_positions_as_features():
    """Sanity check of the test itself: feeding raw x into h breaks E(3) equivariance."""
    h, x, s, r, a, _ = _graph(seed=9)
    params = init_egnn_layer(jax.random.key(9), 3, A, H, coord_gain=1.0)
    f = lambda x, s, r, a: egnn_layer(params, x, x, s, r, edge_attr=a)  # noqa: E731
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(
            f,
            jax.random.key(0),
            (x, s, r, a),
            in_kinds=("position", "index", "index", "edge"),
            out_kinds=("scalar", "position"),
            group="E3",
        )


# ----------------------------------------------------------------------------- gradients


def _all_finite(tree):
    return all(np.all(np.isfinite(np.asarray(t))) for t in jax.tree.leaves(tree))


@pytest.mark.parametrize("normalize, dtype", [(False, jnp.float32), (True, jnp.float32)])
def test_gradients_finite_at_coincident_points_and_zero_velocity(normalize, dtype):
    n = 4
    s, r = fully_connected_graph(n)
    params = init_egnn_layer(
        jax.random.key(10), 2, 0, 8, velocity=True, attention=True, coord_gain=1.0, dtype=dtype
    )
    h = jnp.ones((n, 2), dtype)
    v = jnp.zeros((n, 3), dtype)

    def loss(p, h, x, v):
        h2, x2 = egnn_layer(p, h, x, s, r, v=v, normalize=normalize, tanh=normalize)
        return jnp.sum(h2**2) + jnp.sum(x2**2)

    grad = jax.grad(loss, argnums=(0, 1, 2, 3))

    @jax.jit
    def derivatives(p, h, x, v):
        # Gradient w.r.t. everything, and a Hessian-vector product (forward-over-reverse) in
        # (h, x, v) along a dense direction: a NaN anywhere in the Hessian reaches it.
        dirs = tuple(
            jnp.linspace(0.5, 1.5, t.size, dtype=dtype).reshape(t.shape) for t in (h, x, v)
        )
        hvp = jax.jvp(lambda *a: grad(p, *a)[1:], (h, x, v), dirs)[1]
        return loss(p, h, x, v), grad(p, h, x, v), hvp

    x_some = jnp.zeros((n, 3), dtype).at[3].set(jnp.array([1.0, 0.0, 0.0], dtype))  # 0-2 coincide
    x_all = jnp.zeros((n, 3), dtype)  # all coincide
    for x in (x_some, x_all):
        assert _all_finite(derivatives(params, h, x, v))


def test_model_gradients_finite_zero_velocity():
    s, r = fully_connected_graph(5)
    params = init_egnn(jax.random.key(11), 1, 8, 1, n_layers=2, velocity=True)
    x = jnp.zeros((5, 3))
    v = jnp.zeros((5, 3))

    def loss(params, x, v):
        h = jnp.sum(v * v, axis=1, keepdims=True)
        return jnp.sum(egnn(params, h, x, s, r, v=v, normalize=True)[1] ** 2)

    assert _all_finite(jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, x, v))


# ----------------------------------------------------------------------------- padding, batching


def test_padding_nodes_and_edges_do_not_change_real_nodes():
    n, n_pad = 5, 3
    s, r = fully_connected_graph(n)
    rng = np.random.default_rng(12)
    h = jnp.asarray(rng.normal(size=(n, F)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    a = jnp.asarray(rng.normal(size=(len(s), A)), jnp.float32)
    params = init_egnn_layer(
        jax.random.key(12), F, A, H, velocity=True, attention=True, coord_gain=1.0
    )
    want_h, want_x = jax.jit(egnn_layer)(params, h, x, s, r, edge_attr=a, v=v)

    # Padding: 3 extra nodes with garbage, and edges that are masked, point out of range or touch
    # padding nodes (those are dropped by node_mask even though edge_mask says True).
    garbage = lambda shape: jnp.asarray(rng.normal(size=shape) * 50, jnp.float32)  # noqa: E731
    hp = jnp.concatenate([h, garbage((n_pad, F))])
    xp = jnp.concatenate([x, garbage((n_pad, 3))])
    vp = jnp.concatenate([v, garbage((n_pad, 3))])
    extra_s = jnp.array([5, 0, 7, 1, 99, -3, 2], jnp.int32)
    extra_r = jnp.array([0, 6, 7, 99, 2, 1, 3], jnp.int32)
    extra_m = jnp.array([True, True, True, False, True, True, False])
    sp = jnp.concatenate([s, extra_s])
    rp = jnp.concatenate([r, extra_r])
    ap = jnp.concatenate([a, garbage((7, A))])
    em = jnp.concatenate([jnp.ones(len(s), bool), extra_m])
    nm = jnp.arange(n + n_pad) < n
    got_h, got_x = jax.jit(
        lambda *args: egnn_layer(
            params, *args[:4], edge_attr=args[4], edge_mask=args[5], node_mask=args[6], v=args[7]
        )
    )(hp, xp, sp, rp, ap, em, nm, vp)
    assert_allclose_dtype(got_h[:n], want_h)
    assert_allclose_dtype(got_x[:n], want_x)
    np.testing.assert_array_equal(got_h[n:], hp[n:])  # padding nodes untouched
    np.testing.assert_array_equal(got_x[n:], xp[n:])


def test_vmap_over_graphs_equals_batch_graphs():
    b, n = 3, 5
    s, r = fully_connected_graph(n)
    keys = jax.random.split(jax.random.key(13), 3)
    h = jax.random.normal(keys[0], (b, n, F))
    x = jax.random.normal(keys[1], (b, n, 3))
    params = init_egnn_layer(keys[2], F, 0, 16, coord_gain=1.0)
    per = jax.jit(jax.vmap(lambda hh, xx: egnn_layer(params, hh, xx, s, r)))(h, x)
    g = batch_graphs(jnp.stack([s] * b), jnp.stack([r] * b), n)
    flat = jax.jit(egnn_layer)(
        params,
        h.reshape(b * n, F),
        x.reshape(b * n, 3),
        g.senders,
        g.receivers,
        edge_mask=g.edge_mask,
        node_mask=g.node_mask,
    )
    assert_allclose_dtype(flat[0], per[0].reshape(b * n, F))
    assert_allclose_dtype(flat[1], per[1].reshape(b * n, 3))


# ----------------------------------------------------------------------------- init, validation


def test_init_shapes_and_small_coordinate_gain():
    p = init_egnn_layer(jax.random.key(0), F, A, H, attention=True, velocity=True)
    assert p["edge_mlp"]["w0"].shape == (2 * F + 1 + A, H)
    assert p["node_mlp"]["w0"].shape == (H + F, H) and p["node_mlp"]["w1"].shape == (H, F)
    assert p["coord_mlp"]["w1"].shape == (H, 1) and "b1" not in p["coord_mlp"]
    assert p["att"]["w"].shape == (H, 1) and p["vel_mlp"]["w0"].shape == (F, H)
    bound = 0.001 * np.sqrt(6.0 / (H + 1))  # Xavier-uniform, gain 0.001
    assert 0 < np.max(np.abs(p["coord_mlp"]["w1"])) <= bound
    w0 = np.asarray(p["edge_mlp"]["w0"])  # torch nn.Linear default: U(+-1/sqrt(fan_in))
    assert np.max(np.abs(w0)) <= 1 / np.sqrt(2 * F + 1 + A) and np.std(w0) > 0.3 / np.sqrt(
        2 * F + 1 + A
    )
    with jax.enable_x64(True):
        p64 = init_egnn_layer(jax.random.key(0), F, 0, H, dtype=jnp.float64)
        assert all(t.dtype == jnp.float64 for t in jax.tree.leaves(p64))


def test_validation_errors():
    h, x, s, r, a, v = _graph()
    params = init_egnn_layer(jax.random.key(0), F, A, H)
    with pytest.raises(ValueError, match="`h`"):
        egnn_layer(params, h[:, :3], x, s, r, edge_attr=a)
    with pytest.raises(ValueError, match="`x`"):
        egnn_layer(params, h, x[:3], s, r, edge_attr=a)
    with pytest.raises(ValueError, match="edge_attr"):
        egnn_layer(params, h, x, s, r)
    with pytest.raises(ValueError, match="`v`"):
        egnn_layer(params, h, x, s, r, edge_attr=a, v=v)
    with pytest.raises(ValueError, match="receivers"):
        egnn_layer(params, h, x, s, r[:-1], edge_attr=a)
    with pytest.raises(ValueError, match="coords_agg"):
        egnn_layer(params, h, x, s, r, edge_attr=a, coords_agg="max")
    with pytest.raises(ValueError, match="edge_mask"):
        egnn_layer(params, h, x, s, r, edge_attr=a, edge_mask=jnp.ones(len(s)))
    with pytest.raises(ValueError, match="residual"):
        egnn_layer(init_egnn_layer(jax.random.key(0), F, A, H, out_dim=3), h, x, s, r, edge_attr=a)
    with pytest.raises(ValueError, match="params"):
        egnn_layer({"edge_mlp": {}}, h, x, s, r)
    with pytest.raises(TypeError, match="hidden_dim"):
        init_egnn_layer(jax.random.key(0), F, A, 2.5)
