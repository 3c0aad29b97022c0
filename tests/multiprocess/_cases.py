"""The primitives run by the multi-process workers (``_worker.py``), one function per case.

Each case takes the global mesh (axis ``"data"``, all devices of all processes) and a dtype, builds
its global data with NumPy from a fixed seed (the same in every process), hands each process its
own rows (:func:`rows`) and returns a dict of global ``jax.Array`` outputs. The same code runs as
1 process x 8 devices (the reference), 2 processes x 4 devices, 1 x 2 and 2 x 1; only the topology
differs. Sizes are multiples of 8 rows so that every topology splits them evenly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from geomjax.distributed import global_mesh, shard_batch

AXIS = "data"


def rows(mesh, *arrays):
    """Global arrays sharded along axis 0 from this process's contiguous block of rows."""
    k, i = jax.process_count(), jax.process_index()
    local = []
    for a in arrays:
        n = a.shape[0] // k
        local.append(a[i * n : (i + 1) * n])
    out = shard_batch(tuple(local), mesh, P(AXIS))
    return out if len(out) > 1 else out[0]


def replicated(mesh, tree):
    """Every leaf replicated on all devices (each process passes the same full value)."""
    return shard_batch(tree, mesh, P())


def smap(fn, mesh, in_specs, out_specs):
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs))


def _cast(tree, dtype):
    return jax.tree.map(lambda a: np.asarray(a, dtype), tree)


# -- a small tanh MLP shared by the curvature and optimizer cases ---------------------------------


def _mlp_problem(dtype, n=32, d=3, h=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labels = ((x[:, 0] * x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)).astype(np.int32)
    params = {
        "w1": rng.normal(size=(d, h)) / np.sqrt(d),
        "b1": 0.1 * rng.normal(size=h),
        "w2": rng.normal(size=(h, k)) / np.sqrt(h),
        "b2": np.zeros(k),
    }
    v = jax.tree.map(lambda a: rng.normal(size=a.shape), params)
    return _cast(params, dtype), np.asarray(x, dtype), labels, _cast(v, dtype)


def _mlp(p, x):
    return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _ce(z, labels):
    logp = jax.nn.log_softmax(z, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def _ce_loss(p, x, labels):
    return _ce(_mlp(p, x), labels)


# -- the cases ------------------------------------------------------------------------------------


def frechet_mean(mesh, dtype):
    from geomjax.manifolds import Sphere
    from geomjax.manifolds import frechet_mean as fm

    rng = np.random.default_rng(1)
    v = rng.normal(size=(32, 2)) * 0.3
    r = np.linalg.norm(v, axis=-1, keepdims=True)
    pts = np.concatenate([np.sin(r) * v / r, np.cos(r)], axis=-1).astype(dtype)
    w = rng.uniform(0.1, 1.0, size=32).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    res = smap(
        lambda p, ww: fm(Sphere(2), p, ww, tol=tol, axis_name=AXIS),
        mesh,
        (P(AXIS), P(AXIS)),
        P(),
    )(*rows(mesh, pts, w))
    return {"mean": res.mean, "grad_norm": res.grad_norm, "n_iters": res.n_iters}


def riemannian_batch_norm(mesh, dtype):
    from geomjax.manifolds import SPDAffineInvariant
    from geomjax.spdnet import rbn_init
    from geomjax.spdnet import riemannian_batch_norm as rbn

    rng = np.random.default_rng(2)
    a = rng.normal(size=(16, 3, 3))
    x = (a @ a.transpose(0, 2, 1) / 3 + 0.5 * np.eye(3)).astype(dtype)
    state = replicated(mesh, rbn_init(3, dtype))
    y, st = smap(
        lambda xs, s: rbn(
            xs, s, SPDAffineInvariant(3), scale=0.4, training=True, mean_iter=20, axis_name=AXIS
        ),
        mesh,
        (P(AXIS), P()),
        (P(AXIS), P()),
    )(rows(mesh, x), state)
    return {"y": y, "running_mean": st.running_mean, "running_var": st.running_var}


def hutchinson_diag(mesh, dtype):
    from geomjax.curvature import hutchinson_diag as hd

    params, x, labels, _ = _mlp_problem(dtype)
    key = jax.random.key(3)  # the same probes in every process and on every device
    res = smap(
        lambda p, xs, ls: hd(_ce_loss, p, key, 3, xs, ls, axis_name=AXIS),
        mesh,
        (P(), P(AXIS), P(AXIS)),
        P(),
    )(replicated(mesh, params), *rows(mesh, x, labels))
    return {"diag": res.diag, "grad": res.grad}


def ggn_vp(mesh, dtype):
    from geomjax.curvature import ggn_vp as gvp

    params, x, labels, v = _mlp_problem(dtype)
    out = smap(
        lambda p, vv, xs, ls: gvp(_mlp, _ce, p, vv, (xs, ls), axis_name=AXIS),
        mesh,
        (P(), P(), P(AXIS), P(AXIS)),
        P(),
    )(replicated(mesh, params), replicated(mesh, v), *rows(mesh, x, labels))
    return {"ggn_v": out}


def adahessian(mesh, dtype):
    from geomjax.optim import adahessian as ah

    params, x, labels, _ = _mlp_problem(dtype)
    tx = ah(0.1, weight_decay=0.01, n_samples=2, axis_name=AXIS)
    step = smap(
        lambda p, s, key, xs, ls: tx.update(
            None, s, p, loss_fn=_ce_loss, key=key, batch_args=(xs, ls)
        ),
        mesh,
        (P(), P(), P(), P(AXIS), P(AXIS)),
        P(),
    )
    apply = jax.jit(optax.apply_updates)
    p = replicated(mesh, params)
    s = smap(tx.init, mesh, P(), P())(p)
    xs, ls = rows(mesh, x, labels)
    for i in range(5):
        u, s = step(p, s, jax.random.key(10 + i), xs, ls)
        p = apply(p, u)
    return {"params": p}


def _mfac(mesh, dtype, blocks):
    from geomjax.optim import mfac

    params, x, labels, _ = _mlp_problem(dtype)
    tx = mfac(
        0.1,
        num_grads=4,
        damping=1e-3,
        momentum=0.5,
        blocks=blocks,
        axis_name=AXIS,
        shard_buffer=True,
    )

    def local(p, xs, ls):
        # replicated params and a pmean-ed loss (the gradient is the full-batch one, typed
        # replicated); the window is split over the devices and built inside the mapped function
        loss = lambda q: jax.lax.pmean(_ce_loss(q, xs, ls), AXIS)  # noqa: E731

        def one(carry, _):
            q, st = carry
            u, st = tx.update(jax.grad(loss)(q), st, q)
            return (optax.apply_updates(q, u), st), loss(q)

        (q, _), losses = jax.lax.scan(one, (p, tx.init(p)), length=5)
        return q, losses

    q, losses = smap(local, mesh, (P(), P(AXIS), P(AXIS)), (P(), P()))(
        replicated(mesh, params), *rows(mesh, x, labels)
    )
    return {"params": q, "losses": losses}


def mfac_shard_buffer(mesh, dtype):
    return _mfac(mesh, dtype, None)


def mfac_blocks_round_robin(mesh, dtype):
    return _mfac(mesh, dtype, 7)  # 42 parameters: 6 blocks of 7


def normalized_newton(mesh, dtype):
    from geomjax.optim import normalized_newton as nn_

    params, x, labels, _ = _mlp_problem(dtype)
    tx = nn_(curvature="gauss_newton", gamma0=2.0, cg_steps=6, max_trials=2, axis_name=AXIS)
    step = smap(
        lambda p, s, xs, ls: tx.update(
            None, s, p, model_fn=_mlp, output_loss_fn=_ce, batch_args=(xs, ls)
        ),
        mesh,
        (P(), P(), P(AXIS), P(AXIS)),
        P(),
    )
    apply = jax.jit(optax.apply_updates)
    p = replicated(mesh, params)
    s = smap(tx.init, mesh, P(), P())(p)
    xs, ls = rows(mesh, x, labels)
    for _ in range(3):
        u, s = step(p, s, xs, ls)
        p = apply(p, u)
    return {"params": p}


def _data_parallel_step(mesh, params, batch, loss_one, n_steps=2, lr=1e-2):
    """Adam steps on a batch sharded over the devices: per-device gradients of the local mean
    loss (at a varying copy of the replicated params), averaged with one ``pmean``; the update
    is replicated."""
    tx = optax.adam(lr)

    def local(p, opt, *b):
        def one(carry, _):
            q, st = carry
            loss = lambda qq: jnp.mean(jax.vmap(loss_one, in_axes=(None, 0))(qq, b))  # noqa: E731
            val, g = jax.value_and_grad(loss)(jax.lax.pcast(q, AXIS, to="varying"))
            g, val = jax.lax.pmean((g, val), AXIS)
            u, st = tx.update(g, st, q)
            return (optax.apply_updates(q, u), st), val

        (q, _), losses = jax.lax.scan(one, (p, opt), length=n_steps)
        return q, losses

    p = replicated(mesh, params)
    opt = smap(tx.init, mesh, P(), P())(p)
    n = len(batch)
    return smap(local, mesh, (P(), P()) + (P(AXIS),) * n, (P(), P()))(p, opt, *rows(mesh, *batch))


def egnn_step(mesh, dtype):
    from geomjax.equivariant import egnn, fully_connected_graph, init_egnn

    n_graphs, n_nodes = 16, 5
    rng = np.random.default_rng(4)
    x = rng.normal(size=(n_graphs, n_nodes, 3)).astype(dtype)
    v = rng.normal(size=(n_graphs, n_nodes, 3)).astype(dtype)
    target = (x + 0.1 * v + 0.01 * rng.normal(size=x.shape)).astype(dtype)
    params = jax.tree.map(
        np.asarray,
        init_egnn(jax.random.key(5), 1, 16, 1, n_layers=2, velocity=True, dtype=dtype),
    )
    s, r = fully_connected_graph(n_nodes)

    def loss_one(p, example):
        xg, vg, tg = example
        h = jnp.linalg.norm(vg, axis=-1, keepdims=True)
        _, x_out = egnn(p, h, xg, s, r, v=vg)
        return jnp.mean((x_out - tg) ** 2)

    q, losses = _data_parallel_step(mesh, params, (x, v, target), loss_one)
    return {"params": q, "losses": losses}


def deep_sets_step(mesh, dtype):
    from geomjax.equivariant import deep_sets, init_deep_sets

    rng = np.random.default_rng(6)
    sets = rng.normal(size=(32, 6, 2)).astype(dtype)
    target = np.sum(sets**2, axis=(1, 2))[:, None].astype(dtype)
    params = jax.tree.map(
        np.asarray, init_deep_sets(jax.random.key(7), 2, (8, 8), (8, 1), dtype=dtype)
    )

    def loss_one(p, example):
        xs, t = example
        return jnp.sum((deep_sets(p, xs) - t) ** 2)

    q, losses = _data_parallel_step(mesh, params, (sets, target), loss_one)
    return {"params": q, "losses": losses}


def sliced_wasserstein(mesh, dtype):
    from geomjax.ot import sliced_wasserstein as sw

    rng = np.random.default_rng(8)
    x = rng.normal(size=(64, 4)).astype(dtype)
    y = (rng.normal(size=(64, 4)) * np.linspace(0.5, 1.5, 4) + 0.7).astype(dtype)
    key = jax.random.key(9)
    val, grad = smap(
        jax.value_and_grad(lambda xs, ys: sw(key, xs, ys, n_projections=24, axis_name=AXIS)),
        mesh,
        (P(AXIS), P(AXIS)),
        (P(), P(AXIS)),
    )(*rows(mesh, x, y))
    return {"value": val, "grad_x": grad}


def sinkhorn(mesh, dtype):
    from geomjax.ot import sinkhorn as sk

    # ott-jax has no axis_name: jax.jit over row-sharded clouds on an Auto axis (GSPMD)
    auto = global_mesh(AXIS, axis_types=(AxisType.Auto,))
    rng = np.random.default_rng(10)
    x = rng.normal(size=(64, 3)).astype(dtype)
    y = (rng.normal(size=(48, 3)) + 1.0).astype(dtype)
    threshold = 1e-10 if dtype == np.float64 else 1e-4
    out = jax.jit(lambda a, b: sk(a, b, epsilon=0.5, threshold=threshold, return_potentials=True))(
        *rows(auto, x, y)
    )
    return {"cost": out.cost, "f": out.f, "g": out.g, "n_iters": out.n_iters}


CASES = {
    f.__name__: f
    for f in (
        frechet_mean,
        riemannian_batch_norm,
        hutchinson_diag,
        ggn_vp,
        adahessian,
        mfac_shard_buffer,
        mfac_blocks_round_robin,
        normalized_newton,
        egnn_step,
        deep_sets_step,
        sliced_wasserstein,
        sinkhorn,
    )
}
