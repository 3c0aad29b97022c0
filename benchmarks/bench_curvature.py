"""Second-order optimizers: AdaHessian and M-FAC training steps against optax.adam; the M-FAC product
against the memory-bandwidth floor of its m x d gradient buffer.

Cases:
  * step time: one jit-compiled training step (loss gradient, plus the Hessian-vector product for
    AdaHessian, optimizer update, ``optax.apply_updates``) with the parameters and the optimizer
    state donated (``jax.jit(step, donate_argnums=(0, 1))``, so M-FAC's ring buffer is updated in
    place), for ``geomjax.optim.adahessian`` and ``geomjax.optim.mfac`` with window m in
    {32, 256, 1024}, each timed in alternating rounds with an ``optax.adam`` step on the same model
    and batch (paired baseline). Models (tanh MLPs, softmax cross-entropy, synthetic data):
      - "small", the example MLP: 64 -> 64 -> 64 -> 10, batch 128 (8,970 parameters);
      - GPU: "large", 1024 -> 1536 x 4 -> 1000, batch 256 (10,193,896 parameters);
      - CPU: "medium", 512 -> 768 -> 768 -> 100, batch 128 (1,061,476 parameters), m in {32, 256}
        (m = 1024 would be a 4.3 GB buffer and seconds per step on a shared 2-core machine).
  * M-FAC product: preconditioning one gradient given a full window of m gradients, at the models'
    parameter counts d:
      - ``scale_by_mfac(m).update`` on a flat (d,) gradient with the state donated: the whole
        per-step work of the optimizer (write the row, G g, Gram row, m x m Cholesky, two triangular
        solves, c G);
      - ``MFACInverse.ihvp`` (static: (v - Q^T (Q v)) / damping);
    against the floor: the two passes over the m x d buffer that any product needs (c = G v, then
    c G), timed as one jitted function in the same process. On a GPU with known peak bandwidth the
    bytes / peak floor (2 m d x 4 bytes) is recorded too.

Before timing: M-FAC (dynamic, along a sliding window longer than m) and MFACInverse.ihvp equal a
dense float64 solve on a small case; at the benchmark sizes with m d <= 4e7 the float32 product
matches a float64 Woodbury evaluation of the same window; AdaHessian's and M-FAC's steps give finite parameters and
their 20-step losses on the small model are recorded.

``ratio`` follows the house convention baseline time / geomjax time; ``slowdown_x`` is its
inverse, geomjax / baseline (the issue's goals: AdaHessian step <= 2.5x an Adam step, i.e.
``ratio >= 0.4``; M-FAC product within 2x of the floor on the GPU, i.e. ``ratio >= 0.5``).

Matmul precision: HIGHEST (set below, recorded in the JSON; float32 matmuls are TF32 on the GPU
otherwise), for every optimizer and the floor alike.

Run: python benchmarks/bench_curvature.py [--device gpu] [--out PATH] [--repeats R] [--quick]
"""

from __future__ import annotations

import dataclasses
import os
import sys

# CPU: jaxlib's LAPACK (scipy's OpenBLAS) runs M-FAC's m x m Cholesky; with its own thread pool
# it contends with XLA's on a small machine (measured on 2 cores: a 1024 x 1024 Cholesky inside
# the training loop took 1.2 s instead of 8 ms). One OpenBLAS thread unless the caller says
# otherwise; recorded in the notes. (No effect on the GPU.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# GPU: the m = 1024 window of the ~10M-parameter model is a 41.8 GB buffer; let JAX's allocator
# have 90% of the device instead of the default 75%.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from geomjax.curvature import MFACInverse, hvp  # noqa: E402
from geomjax.optim import MFACState, adahessian, mfac, scale_by_mfac  # noqa: E402

DTYPE = jnp.float32
DAMPING = 1e-5
ROUNDS = 3  # alternating (adam, optimizer) timing rounds per row
# Peak HBM bandwidth by device kind (NVIDIA datasheets), bytes/s; the notes record the one used.
# First match wins (device_kind, e.g. "NVIDIA H100 80GB HBM3").
PEAK_BW = {"H100 PCIe": 2.0e12, "H100 NVL": 3.9e12, "H100": 3.35e12, "H200": 4.8e12}

SMALL = {"name": "small", "sizes": (64, 64, 64, 10), "batch": 128}
MEDIUM = {"name": "medium", "sizes": (512, 768, 768, 100), "batch": 128}
LARGE = {"name": "large", "sizes": (1024, 1536, 1536, 1536, 1536, 1000), "batch": 256}
QUICK_2ND = {"name": "medium-quick", "sizes": (128, 256, 256, 10), "batch": 64}


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


def init_mlp(key, sizes):
    params = []
    for k, a, b in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        params.append(
            {"w": jax.random.normal(k, (a, b), DTYPE) / np.sqrt(a), "b": jnp.zeros(b, DTYPE)}
        )
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(mlp(params, x), y).mean()


def num_params(params):
    return sum(int(a.size) for a in jax.tree.leaves(params))


def make_batch(key, sizes, batch):
    """Synthetic inputs labelled by a random linear teacher (learnable, so losses can fall)."""
    kx, kt = jax.random.split(key)
    x = jax.random.normal(kx, (batch, sizes[0]), DTYPE)
    y = jnp.argmax(x @ jax.random.normal(kt, (sizes[0], sizes[-1]), DTYPE), axis=-1)
    return x, y


def make_step(kind, tx):
    """The jitted training step (params, state, x, y, key) -> (params, state), both donated."""
    if kind == "adahessian":

        def step(params, state, x, y, key):
            u, state = tx.update(None, state, params, loss_fn=loss_fn, key=key, batch_args=(x, y))
            return optax.apply_updates(params, u), state

    else:

        def step(params, state, x, y, key):
            g = jax.grad(loss_fn)(params, x, y)
            u, state = tx.update(g, state, params)
            return optax.apply_updates(params, u), state

    return jax.jit(step, donate_argnums=(0, 1))


def optimizers(ms):
    out = {"adam": ("adam", optax.adam(1e-3)), "adahessian": ("adahessian", adahessian(0.15))}
    for m in ms:
        out[f"mfac m={m}"] = ("mfac", mfac(1e-4, num_grads=m, damping=DAMPING))
    return out


class Trainer:
    """Holds (params, state) for one optimizer and threads them through the donating step."""

    def __init__(self, kind, tx, params0, x, y):
        self.step = make_step(kind, tx)
        self.params = jax.tree.map(jnp.copy, params0)
        self.state = tx.init(self.params)
        self.x, self.y, self.key = x, y, jax.random.key(7)

    def __call__(self):
        self.params, self.state = self.step(self.params, self.state, self.x, self.y, self.key)
        return self.params, self.state

    def finite(self):
        return bool(all(jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(self.params)))


def interleaved(fns, repeats):
    """Median time of each callable, timed in ROUNDS alternating rounds (robust to a shared
    machine's drift); the first round compiles (warmup)."""
    meds = {k: [] for k in fns}
    per_round = max(3, repeats // ROUNDS)
    for r in range(ROUNDS):
        for k, f in fns.items():
            t = _harness.time_fn(f, repeats=per_round, warmup=2 if r == 0 else 1, min_time=0.2)
            meds[k].append(t["median_s"])
    return {k: float(np.median(v)) for k, v in meds.items()}


# --------------------------------------------------------------------------------------------
# correctness
# --------------------------------------------------------------------------------------------


def check_mfac_dense(key):
    """Max relative error of dynamic M-FAC (every step of a window longer than m) and of
    MFACInverse.ihvp against a dense float64 solve of (damping I + G^T G / m) x = g."""
    d, m, steps, damping = 40, 6, 11, 1e-3
    with jax.enable_x64(True):
        gs = np.asarray(jax.random.normal(key, (steps, d), jnp.float64))
        tx = scale_by_mfac(m, damping)
        state = tx.init(jnp.zeros(d, jnp.float64))
        err_dyn = 0.0
        for t in range(steps):
            u, state = tx.update(jnp.asarray(gs[t]), state)
            window = gs[max(0, t - m + 1) : t + 1]
            f = damping * np.eye(d) + window.T @ window / m
            ref = np.linalg.solve(f, gs[t])
            err_dyn = max(err_dyn, float(np.max(np.abs(np.asarray(u) - ref)) / np.max(np.abs(ref))))
        G = gs[-m:]
        v = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (d,), jnp.float64))
        ref = np.linalg.solve(damping * np.eye(d) + G.T @ G / m, v)
        got = np.asarray(MFACInverse.from_gradients(jnp.asarray(G), damping).ihvp(jnp.asarray(v)))
        err_static = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    return err_dyn, err_static


def woodbury64(G, g, damping):
    """F^{-1} g in float64 numpy, F = damping I + G^T G / m, by the general Woodbury formula."""
    G = np.asarray(G, np.float64)
    g = np.asarray(g, np.float64)
    m = G.shape[0]
    K = m * damping * np.eye(m) + G @ G.T
    return (g - G.T @ np.linalg.solve(K, G @ g)) / damping


# --------------------------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------------------------


def bench_steps(cfg, ms, args, rows, info):
    key = jax.random.key(0)
    params0 = init_mlp(key, cfg["sizes"])
    d = num_params(params0)
    x, y = make_batch(jax.random.key(1), cfg["sizes"], cfg["batch"])
    arch = " -> ".join(map(str, cfg["sizes"]))
    print(f"model {cfg['name']}: {arch}, batch {cfg['batch']}, d = {d:,} parameters")
    info[cfg["name"]] = {"d": d, "arch": arch, "batch": cfg["batch"]}
    # Components: loss + gradient, and gradient + HVP (AdaHessian's estimator, one probe).
    grad_fn = jax.jit(jax.grad(loss_fn))
    z = jax.tree.map(lambda p: jax.random.rademacher(jax.random.key(3), p.shape, p.dtype), params0)
    hvp_fn = jax.jit(lambda p, v: hvp(loss_fn, p, v, x, y))
    leaves, treedef = jax.tree.flatten(params0)
    sample_fn = jax.jit(
        lambda k: treedef.unflatten(
            [  # one probe, a key per leaf (as AdaHessian)
                jax.random.rademacher(kk, a.shape, a.dtype)
                for kk, a in zip(jax.random.split(k, len(leaves)), leaves)
            ]
        )
    )
    t = interleaved(
        {
            "grad": lambda: grad_fn(params0, x, y),
            "hvp": lambda: hvp_fn(params0, z),
            "sample": lambda: sample_fn(jax.random.key(4)),
        },
        args.repeats,
    )
    t_grad, t_hvp, t_sample = t["grad"], t["hvp"], t["sample"]
    info[cfg["name"]].update(grad_s=t_grad, grad_hvp_s=t_hvp, sample_s=t_sample)
    opts = optimizers(ms)
    losses = {}
    for name, (kind, tx) in opts.items():
        if name == "adam":
            continue
        try:
            adam_tr, tr = Trainer(*opts["adam"], params0, x, y), Trainer(kind, tx, params0, x, y)
            t = interleaved({"adam": adam_tr, name: tr}, args.repeats)
            t_adam, t_opt = t["adam"], t[name]
            ok = tr.finite() and adam_tr.finite()
            assert ok, f"{cfg['name']} {name}: non-finite parameters after the timed steps"
            row = {
                "case": f"{cfg['name']} MLP (d={d:,}) step {name}",
                "baseline": "optax.adam step",
                "geomjax_s": t_opt,
                "baseline_s": t_adam,
                "ratio": t_adam / t_opt,
                "slowdown_x": t_opt / t_adam,
                "grad_s": t_grad,
                "finite": ok,
            }
            if kind == "adahessian":
                row["grad_hvp_s"] = t_hvp
                row["probe_sample_s"] = t_sample
            rows.append(row)
            print(
                f"  {name:16s} {1e3 * t_opt:9.3f} ms  adam {1e3 * t_adam:8.3f} ms  -> {t_opt / t_adam:5.2f}x adam"
            )
            del adam_tr, tr
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is skipped, with the reason
            if not out_of_memory(exc):
                raise
            info.setdefault("skipped", []).append(f"{cfg['name']} step {name} (out of memory)")
            print(f"  {name}: skipped, out of memory")
    if cfg is SMALL:  # short training run: losses after 20 steps from the same start
        for name, (kind, tx) in opts.items():
            tr = Trainer(kind, tx, params0, x, y)
            for _ in range(20):
                tr()
            losses[name] = float(loss_fn(tr.params, x, y))
        losses["initial"] = float(loss_fn(params0, x, y))
        info["losses"] = losses
        print("  loss after 20 steps: " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items()))
    return d


def bench_product(d, m, args, rows, bw_peak, label, window_dtype=DTYPE):
    """scale_by_mfac update and MFACInverse.ihvp at (m, d) against the two-pass floor.

    One m x d buffer only (41.8 GB at m = 1024, d = 10.2M in float32; half in bfloat16): the
    floor and ihvp read the buffer of the donated optimizer state as it stands, interleaved with
    the updates. ``window_dtype`` bfloat16: the ``window_dtype`` option of scale_by_mfac; its
    floor is the same two passes over the bfloat16 buffer accumulating in float32, and the
    static MFACInverse (float32 only) is not timed."""
    low = jnp.dtype(window_dtype) != jnp.dtype(DTYPE)
    key = jax.random.key(11)
    # row by row (lax.map): no m x d temporaries besides the buffer itself
    G = jax.jit(
        lambda k: jax.lax.map(
            lambda kk: (jax.random.normal(kk, (d,), DTYPE) / np.sqrt(d)).astype(window_dtype),
            jax.random.split(k, m),
        )
    )(key)
    g = jax.random.normal(jax.random.key(12), (d,), DTYPE) / np.sqrt(d)  # not one of the rows
    adt = jnp.promote_types(DTYPE, jax.dtypes.canonicalize_dtype(jnp.float64))
    gram = jax.jit(lambda G: jax.lax.dot(G, G.T, preferred_element_type=DTYPE).astype(adt))(G)
    k_mat = gram + m * DAMPING * jnp.eye(m, dtype=adt)
    # Correctness at this size (before the buffer is donated): the product for g entering row 0,
    # against float64 Woodbury of the stored (rounded) window and, for a low-precision window,
    # of the float32 window it rounds (regenerated from the same keys).
    check = d * m <= 40_000_000
    if check:
        G_new = np.asarray(G.astype(jnp.float32), np.float64).copy()
        G_new[0] = np.asarray(g.astype(window_dtype).astype(jnp.float32), np.float64)
        ref = woodbury64(G_new, G_new[0], DAMPING)
        if low:
            G32 = np.asarray(
                jax.vmap(lambda kk: jax.random.normal(kk, (d,), DTYPE) / np.sqrt(d))(
                    jax.random.split(key, m)
                ),
                np.float64,
            )
            G32[0] = np.asarray(g, np.float64)
            ref32 = woodbury64(G32, G32[0], DAMPING)
    tx = scale_by_mfac(m, DAMPING, window_dtype=window_dtype)
    state = MFACState(jnp.asarray(m, jnp.int32), G, gram)  # full window; next row written: 0
    del G
    upd = jax.jit(tx.update, donate_argnums=(1,))
    u, state = upd(g, state)

    def rel(a, b):
        return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))

    err = rel(u, ref) if check else float("nan")
    more = {}
    if check:
        print(
            f"  mfac product m={m} d={d} window {jnp.dtype(window_dtype).name}: vs float64 "
            f"Woodbury of the stored window rel err {err:.1e}"
        )
        assert err < 1e-4, err
        more["rel_err_vs_f64_woodbury"] = err
        if low:
            more["rel_err_vs_f32_window"] = rel(u, ref32)
            print(f"    vs the float32 window (f64 Woodbury): {more['rel_err_vs_f32_window']:.1e}")
    del u
    holder = [state]
    del state

    def run_update():
        out, holder[0] = upd(g, holder[0])
        return out, holder[0]

    # Static inverse: a factor of the same shape (the values do not change the cost).
    small = MFACInverse.from_gradients(jnp.ones((1, 1), DTYPE), DAMPING)
    layout = dataclasses.replace(small.layout, dim=d)
    ihvp = jax.jit(
        lambda Q, v: dataclasses.replace(small, factor=Q[None], layout=layout, block_size=d).ihvp(v)
    )

    def dot32(a, b):
        return jax.lax.dot(a.astype(b.dtype) if a.ndim == 1 else a, b, preferred_element_type=DTYPE)

    # the two unavoidable passes, accumulating in float32
    floor = jax.jit(lambda G, v: dot32(dot32(G, v.astype(G.dtype)).astype(G.dtype), G))
    one_pass = jax.jit(lambda G, v: dot32(G, v.astype(G.dtype)))
    chol = jax.jit(jnp.linalg.cholesky)
    fns = {
        "update": run_update,
        "floor": lambda: floor(holder[0].grads, g),
        "one_pass": lambda: one_pass(holder[0].grads, g),
        "chol": lambda: chol(k_mat),
    }
    if not low:
        fns["ihvp"] = lambda: ihvp(holder[0].grads, g)
    t = interleaved(fns, args.repeats)
    holder.clear()  # free the window before the next size
    t_upd, t_floor, t_one, t_chol = (t[k] for k in ("update", "floor", "one_pass", "chol"))
    t_ihvp = t.get("ihvp")
    extra = {"one_pass_s": t_one, "chol_mxm_s": t_chol}
    bw = None
    if bw_peak:
        bw = 2 * m * d * jnp.dtype(window_dtype).itemsize / bw_peak
        extra["bw_floor_s"] = bw
    tag = f" window {jnp.dtype(window_dtype).name}" if low else ""
    cases = [(f"mfac product ({label}) m={m} d={d:,}{tag}: scale_by_mfac update", t_upd, more)]
    if t_ihvp is not None:
        cases.append((f"mfac product ({label}) m={m} d={d:,}: MFACInverse.ihvp", t_ihvp, {}))
    for case, t, more in cases:
        row = {
            "case": case,
            "baseline": "floor: 2 passes (G v, c G)",
            "geomjax_s": t,
            "baseline_s": t_floor,
            "ratio": t_floor / t,
            "slowdown_x": t / t_floor,
            **extra,
            **more,
        }
        if bw:
            row["over_bw_floor_x"] = t / bw
        rows.append(row)
    ihvp_ms = f"{1e3 * t_ihvp:9.3f} ms" if t_ihvp is not None else "not timed"
    print(
        f"  m={m:5d} d={d:>11,}{tag}: update {1e3 * t_upd:9.3f} ms, ihvp {ihvp_ms}, "
        f"floor {1e3 * t_floor:9.3f} ms (one pass {1e3 * t_one:.3f}), chol {1e3 * t_chol:.3f} ms"
        + (f", bytes/peak {1e3 * bw:.3f} ms" if bw else "")
    )


def out_of_memory(exc):
    msg = str(exc)
    return "RESOURCE_EXHAUSTED" in msg or "out of memory" in msg.lower()


def peak_bandwidth(env):
    for kind, bw in PEAK_BW.items():
        if env["backend"] == "gpu" and kind in env["device"]:
            return kind, bw
    return None, None


def parse_args():
    """The harness flags plus ``--models`` and ``--ms``, to run the GPU sizes in pieces that fit the
    per-command time limit (each piece writes its own ``--out``, e.g. ``results/curvature-gpu-m1024.json``;
    ``make_results.py`` gives every JSON its own section)."""
    import argparse

    parser = argparse.ArgumentParser(description="geomjax curvature benchmarks")
    parser.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    parser.add_argument("--out", default=None, help="output JSON path")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--models", default="small,second", help="comma list of: small, second")
    parser.add_argument(
        "--window-dtypes",
        default="float32,bfloat16",
        help="comma list of M-FAC window dtypes for the product rows (scale_by_mfac window_dtype)",
    )
    parser.add_argument(
        "--ms", default=None, help="comma list of M-FAC windows (default: all of the device's)"
    )
    return parser.parse_args()


def main():
    args = parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    on_gpu = (args.device or jax.default_backend()) == "gpu"
    if args.quick:
        second, ms, ms_second = QUICK_2ND, (32,), (32,)
    elif on_gpu:
        second, ms, ms_second = LARGE, (32, 256, 1024), (32, 256, 1024)
    else:
        second, ms, ms_second = MEDIUM, (32, 256, 1024), (32, 256)
    if args.ms:
        keep = {int(m) for m in args.ms.split(",")}
        ms, ms_second = tuple(m for m in ms if m in keep), tuple(m for m in ms_second if m in keep)
    models = set(args.models.split(","))
    env = _harness.environment()
    bw_kind, bw_peak = peak_bandwidth(env)
    print(
        f"jax {env['jax']} on {env['device']} ({env['backend']}); matmul precision {env['matmul_precision']}"
    )

    err_dyn, err_static = check_mfac_dense(jax.random.key(5))
    print(
        f"M-FAC vs dense float64 solve (d=40, m=6, 11 steps): dynamic {err_dyn:.1e}, "
        f"MFACInverse.ihvp {err_static:.1e}"
    )
    assert err_dyn < 1e-8 and err_static < 1e-8, (err_dyn, err_static)

    rows, info = [], {}
    parts = []
    if "small" in models:
        parts.append((bench_steps(SMALL, ms, args, rows, info), SMALL["name"], ms))
    if "second" in models:
        parts.append((bench_steps(second, ms_second, args, rows, info), second["name"], ms_second))
    print("M-FAC product vs the two-pass floor:")
    windows = [jnp.dtype(w) for w in args.window_dtypes.split(",")]
    for d, label, mlist in parts:
        for m in mlist:
            for wd in windows:
                try:
                    bench_product(d, m, args, rows, bw_peak, label, window_dtype=wd)
                except Exception as exc:  # noqa: BLE001 - only out-of-memory is skipped
                    if not out_of_memory(exc):
                        raise
                    info.setdefault("skipped", []).append(
                        f"product m={m} d={d:,} window {wd.name} (out of memory)"
                    )
                    print(f"  m={m} d={d:,} window {wd.name}: skipped, out of memory")
    rows[0]["mfac_dense_f64_err_dynamic"] = err_dyn
    rows[0]["mfac_dense_f64_err_ihvp"] = err_static
    _harness.print_table(rows)

    comp = "; ".join(
        f"{name} (d={v['d']:,}, {v['arch']}, batch {v['batch']}): loss+grad {1e3 * v['grad_s']:.3f} ms, "
        f"grad+HVP {1e3 * v['grad_hvp_s']:.3f} ms ({v['grad_hvp_s'] / v['grad_s']:.2f}x), Rademacher probe "
        f"sampling (threefry) {1e3 * v['sample_s']:.3f} ms"
        for name, v in info.items()
        if name not in ("losses", "skipped")
    )
    losses = ", ".join(f"{k} {v:.3f}" for k, v in info.get("losses", {}).items())
    notes = (
        "Steps: jax.jit(step, donate_argnums=(0, 1)) of loss gradient (+ HVP for AdaHessian) + "
        "optimizer update + optax.apply_updates; tanh MLPs, softmax cross-entropy, synthetic float32 "
        "data; each optimizer timed in "
        f"{ROUNDS} rounds alternating with an optax.adam step on the same model (paired baseline). "
        "`ratio` = baseline/geomjax as everywhere; `slowdown_x` = geomjax/baseline: the goals are "
        "AdaHessian <= 2.5x an Adam step and the M-FAC product <= 2x the floor on the GPU. "
        "adahessian(0.15) with one Rademacher probe per step; mfac(1e-4, damping 1e-5). "
        f"Components (`grad_s`, `grad_hvp_s`, `probe_sample_s`), timed alone: {comp}. "
        f"Small model, loss after 20 steps from the same start: {losses}. "
        "Product rows: a full window of m random gradients; `scale_by_mfac update` is the whole "
        "optimizer work per step on a flat (d,) gradient with the state donated (row write, G g, "
        "Gram row, m x m Cholesky `chol_mxm_s`, two triangular solves, c G); `MFACInverse.ihvp` the "
        "static (v - Q^T Q v)/damping. Floor = the measured time of the two passes (G v, then c G) "
        "over the m x d buffer, jitted, same process (`one_pass_s`: G v alone). Rows 'window "
        "bfloat16': scale_by_mfac(window_dtype=bfloat16), the buffer in bfloat16 (half the "
        "memory), float32 accumulation, floor = the same two passes over the bfloat16 buffer; "
        "`rel_err_vs_f64_woodbury` against the stored (rounded) window, `rel_err_vs_f32_window` "
        "against the float32 window of the same gradients (max-abs relative). "
        f"M-FAC vs a dense float64 solve (d=40, m=6, every step of an 11-step sliding window): "
        f"{err_dyn:.1e}; MFACInverse.ihvp {err_static:.1e}. Matmul precision HIGHEST."
    )
    notes += " Skipped: " + (", ".join(info.get("skipped", [])) or "none") + "."
    if bw_peak:
        notes += (
            f" `bw_floor_s` = 2 m d x (4 or 2) bytes / {bw_peak / 1e12:.2f} TB/s, the assumed peak HBM "
            f"bandwidth of the {bw_kind} (NVIDIA datasheet); `over_bw_floor_x` = product / bw_floor_s."
        )
    elif on_gpu:
        notes += " No peak bandwidth known for this device: bw_floor_s omitted."
    if not on_gpu:
        threads = {
            v: os.environ.get(v) for v in ("XLA_FLAGS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        }
        notes += (
            " CPU: the ~10M-parameter GPU model is replaced by the medium one, m = 1024 omitted "
            "there. Thread settings: "
            f"{', '.join(f'{k}={v!r}' for k, v in threads.items() if v) or 'defaults'}."
        )
    if on_gpu and os.environ.get("XLA_FLAGS"):
        notes += (
            f" XLA_FLAGS={os.environ['XLA_FLAGS']!r} (the m = 1024 piece: with autotuning on, its "
            "41.8 GB buffer plus the autotuner's 38.9 GiB redzone copy do not fit in 80 GB; "
            "compare its rows only with each other)."
        )
    if args.quick:
        notes += " --quick sizes (smoke test)."
    out = _harness.write_results("curvature", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
