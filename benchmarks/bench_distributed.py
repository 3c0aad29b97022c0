"""Multi-device and multi-process scaling of geomjax on JAX's distributed runtime.

One script, three modes on the same machine, with K devices (``--devices``, default 2):

  1. one process, one device;
  2. one process, K devices;
  3. K processes, one device each (``jax.distributed`` through ``geomjax.distributed``;
     ``JAX_LOCAL_DEVICE_IDS`` picks each process's GPU).

The driver (no ``--worker``) launches each mode as fresh worker processes of this script,
collects their JSON parts and writes ``results/distributed-<label>.json`` (rows in the format of
``make_results.py``; the psum bandwidth, the M-FAC memory search and the environment in the
record). Measured in each mode:

  * ``psum`` bus bandwidth (the ceiling): an all-reduce of S bytes over the mesh, bus bandwidth
    ``2 (k - 1) / k * S / t`` (NCCL's convention);
  * weak scaling (per-device size fixed; efficiency ``t_1(n) / t_K(K n)``) and strong scaling
    (global size fixed; speedup ``t_1(K n) / t_K(K n)``) of:
      - the EGNN training step (graphs sharded, gradients ``pmean``-ed, Adam; segment sums stay
        inside ``shard_map``),
      - the AdaHessian step (MLP, ``axis_name``),
      - sliced Wasserstein value and gradient (points sharded, ``axis_name``: ``all_to_all``),
      - the M-FAC update with the buffer sharded (``shard_buffer=True``), plus the per-device
        buffer bytes and the largest ``d`` that fits at window ``m`` (search over ``d``),
      - Sinkhorn through ott-jax on row-sharded clouds (``jax.jit`` on an Auto mesh; strong only);
  * agreement: the K-device outputs of modes 2 and 3 against mode 1 on the same global problem
    (relative to each output's scale; the issue's goal 1e-5).

Goals of issue 20 (2 GPUs of one host): weak-scaling efficiency >= 0.90 for the EGNN and AdaHessian
steps (with per-GPU batches whose 1-GPU step is >= 10 ms) and >= 0.85 for sliced Wasserstein;
M-FAC per-GPU buffer <= 0.55x one GPU's and the largest d at m = 1024 >= 1.9x; Sinkhorn speedup
>= 1.6 at n = 2^17; modes 2 and 3 agree with mode 1 to 1e-5. Every configuration is recorded,
met or not (``met`` in the row).

Sizes: the defaults are the issue's GPU sizes (sliced Wasserstein 2^20 points per GPU, d = 64,
L = 256; M-FAC m = 1024, d searched up to 2^26; Sinkhorn n = 2^17); ``--quick`` picks small CPU
sizes (the CPU devices then share the machine's cores, so the CPU "scaling" measures overheads,
not speedups). Every size has its own flag.

GPU runs set ``NCCL_NVLS_ENABLE=0`` (NVLink multicast off) in every worker and record
``nvidia-smi topo -m``, the XLA flags and the versions.

Run: python benchmarks/bench_distributed.py [--devices 2] [--quick] [--device gpu] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

GOALS = {
    "egnn_step": ("weak", 0.90),
    "adahessian_step": ("weak", 0.90),
    "sliced_wasserstein": ("weak", 0.85),
    "sinkhorn": ("strong", 1.6),
}
AGREEMENT_GOAL = 1e-5


# ------------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=2, help="K, devices of modes 2 and 3")
    ap.add_argument("--quick", action="store_true", help="small CPU sizes")
    ap.add_argument("--device", default=None, help="label of the results file (cpu, gpu)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--cases", default="all", help="comma-separated subset of the cases")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per mode")
    # sizes (None: the GPU default, or the --quick default)
    for name, kind in (
        ("psum-bytes", str),
        ("egnn-graphs", int),
        ("egnn-nodes", int),
        ("egnn-hidden", int),
        ("egnn-layers", int),
        ("ada-batch", int),
        ("ada-width", int),
        ("sw-points", int),
        ("sw-dim", int),
        ("sw-projections", int),
        ("mfac-m", int),
        ("mfac-d", int),
        ("mfac-max-d", int),
        ("sinkhorn-n", int),
    ):
        ap.add_argument(f"--{name}", type=kind, default=None)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    gpu = {
        "psum_bytes": "1048576,16777216,268435456",
        "egnn_graphs": 512,  # per device
        "egnn_nodes": 5,
        "egnn_hidden": 64,
        "egnn_layers": 4,
        "ada_batch": 2048,  # per device
        "ada_width": 1024,
        "sw_points": 2**20,  # per device
        "sw_dim": 64,
        "sw_projections": 256,
        "mfac_m": 1024,
        "mfac_d": 2**22,  # per device, timed
        "mfac_max_d": 2**26,  # the search stops here (m = 1024: 256 GiB over all devices)
        "sinkhorn_n": 2**17,  # global
    }
    quick = {
        "psum_bytes": "65536,1048576",
        "egnn_graphs": 16,
        "egnn_nodes": 5,
        "egnn_hidden": 16,
        "egnn_layers": 2,
        "ada_batch": 64,
        "ada_width": 64,
        "sw_points": 2**11,
        "sw_dim": 8,
        "sw_projections": 32,
        "mfac_m": 32,
        "mfac_d": 2**14,
        "mfac_max_d": 2**17,
        "sinkhorn_n": 2**9,
    }
    defaults = quick if args.quick else gpu
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# ------------------------------------------------------------------------------------------------
# worker: one mode, every process of it runs the same programs in the same order
# ------------------------------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    from geomjax.distributed import initialize_from_env

    initialize_from_env(initialization_timeout=300, heartbeat_timeout_seconds=60)

    sys.path.insert(0, str(HERE))
    import _harness
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    from geomjax.distributed import gather, global_mesh, shard_batch

    mode = args.worker
    k = 1 if mode == 1 else args.devices
    if jax.device_count() < k:
        raise SystemExit(f"mode {mode} needs {k} devices; found {jax.device_count()}")
    mesh = (
        global_mesh("data")
        if mode == 3
        else jax.make_mesh((k,), ("data",), devices=jax.devices()[:k])
    )
    auto = jax.sharding.Mesh(mesh.devices, ("data",), axis_types=(AxisType.Auto,))
    pid, n_proc = jax.process_index(), jax.process_count()
    K = args.devices
    log = print if pid == 0 else (lambda *a, **kw: None)
    log(f"mode {mode}: {n_proc} process(es), {k} device(s): {mesh.devices.flat[0].device_kind}")

    def rows(mesh_, *arrays):
        """Global arrays from this process's block of rows (same seeds in every process)."""
        out = []
        for a in arrays:
            n = a.shape[0] // n_proc
            out.append(shard_batch(a[pid * n : (pid + 1) * n], mesh_, P("data")))
        return out

    def replicated(tree):
        return shard_batch(tree, mesh, P())

    def smap(fn, in_specs, out_specs, donate=()):
        return jax.jit(
            jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs),
            donate_argnums=donate,
        )

    def host_norm(tree):
        """Euclidean norm of every leaf together, on the host (no eager op on global arrays)."""
        leaves = [gather(a) if isinstance(a, jax.Array) else a for a in jax.tree.leaves(tree)]
        return float(np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in leaves)))

    def timed(fn):
        # a fixed number of calls (no time-based loop): every process makes the same calls
        return _harness.time_fn(fn, repeats=args.repeats, warmup=2)["median_s"]

    part = {"mode": mode, "processes": n_proc, "devices": k, "cases": {}, "psum": []}

    # -- psum bus bandwidth ---------------------------------------------------------------------
    if k > 1:
        for size in (int(s) for s in args.psum_bytes.split(",")):
            n = size // 4 // k * k
            x = shard_batch(
                np.ones(n // n_proc, np.float32), mesh, P("data")
            )  # n floats, n / k per device
            allreduce = smap(lambda a: jax.lax.psum(a, "data"), P("data"), P("data"))
            t = timed(lambda: allreduce(x))
            nbytes = 4 * n // k  # each device's buffer: the all-reduced message
            busbw = 2 * (k - 1) / k * nbytes / t
            part["psum"].append({"bytes": nbytes, "time_s": t, "busbw_GBps": busbw / 1e9})
            log(f"  psum {nbytes / 2**20:8.2f} MiB: {1e3 * t:8.3f} ms, bus {busbw / 1e9:7.2f} GB/s")

    selected = None if args.cases == "all" else set(args.cases.split(","))

    def want(name):
        return selected is None or name in selected

    @contextlib.contextmanager
    def guarded(name):
        """A case that fails (e.g. out of memory at the largest sizes) is recorded, not fatal:
        every process fails alike (same programs, same shapes), so all go on together."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - recorded in the JSON
            first = (str(err).splitlines() or [""])[0][:300]
            part.setdefault("errors", {})[name] = f"{type(err).__name__}: {first}"
            log(f"  {name}: FAILED {type(err).__name__}: {first}")

    def record(name, size_label, per_device, t, output, **extra):
        entry = {"time_s": t, "output": np.asarray(output, np.float64).reshape(-1).tolist()}
        entry.update(extra)
        part["cases"].setdefault(name, {})[size_label] = entry
        log(f"  {name:20s} {size_label:6s} per-device {per_device}: {1e3 * t:9.3f} ms")

    # global sizes: mode 1 runs the per-device size ("weak1") and the K-device global size
    # ("global"); modes 2 and 3 run the global size on K devices
    labels = [("weak1", 1), ("global", K)] if mode == 1 else [("global", K)]

    # -- EGNN data-parallel training step -------------------------------------------------------
    if want("egnn_step"):
        with guarded("egnn_step"):
            from geomjax.equivariant import egnn, fully_connected_graph, init_egnn

            nn, hd = args.egnn_nodes, args.egnn_hidden
            params0 = init_egnn(
                jax.random.key(0), 1, hd, 1, n_layers=args.egnn_layers, velocity=True
            )
            params0 = jax.tree.map(np.asarray, params0)
            s, r = fully_connected_graph(nn)
            tx = optax.adam(1e-3)

            def loss_one(p, ex):
                x, v, t = ex
                h = jnp.linalg.norm(v, axis=-1, keepdims=True)
                return jnp.mean((egnn(p, h, x, s, r, v=v)[1] - t) ** 2)

            def local(p, st, x, v, t):
                def loss(q):
                    return jnp.mean(jax.vmap(loss_one, in_axes=(None, 0))(q, (x, v, t)))

                val, g = jax.value_and_grad(loss)(jax.lax.pcast(p, "data", to="varying"))
                g, val = jax.lax.pmean((g, val), "data")
                u, st = tx.update(g, st, p)
                return optax.apply_updates(p, u), st, val

            step = smap(local, (P(), P(), P("data"), P("data"), P("data")), (P(), P(), P()), (0, 1))
            for label, mult in labels:
                b = args.egnn_graphs * mult
                rng = np.random.default_rng(1)
                x = rng.normal(size=(b, nn, 3)).astype(np.float32)
                v = rng.normal(size=(b, nn, 3)).astype(np.float32)
                t = (x + 0.1 * v).astype(np.float32)
                batch = rows(mesh, x, v, t)
                state = {"p": replicated(params0)}
                state["s"] = smap(tx.init, P(), P())(state["p"])
                first = step(
                    jax.tree.map(jnp.copy, state["p"]), jax.tree.map(jnp.copy, state["s"]), *batch
                )
                out = float(np.asarray(first[2]))  # the loss, then one step's parameters' norm
                pnorm = host_norm(first[0])

                def run():
                    state["p"], state["s"], val = step(state["p"], state["s"], *batch)
                    return val

                record("egnn_step", label, args.egnn_graphs, timed(run), [out, pnorm])

    # -- AdaHessian step ------------------------------------------------------------------------
    if want("adahessian_step"):
        with guarded("adahessian_step"):
            from geomjax.optim import adahessian

            w = args.ada_width
            rng = np.random.default_rng(2)
            params0 = {
                "w1": (rng.normal(size=(32, w)) / np.sqrt(32)).astype(np.float32),
                "b1": np.zeros(w, np.float32),
                "w2": (rng.normal(size=(w, w)) / np.sqrt(w)).astype(np.float32),
                "b2": np.zeros(w, np.float32),
                "w3": (rng.normal(size=(w, 10)) / np.sqrt(w)).astype(np.float32),
            }

            def ce(p, x, y):
                h = jnp.tanh(jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])
                z = h @ p["w3"]
                return jnp.mean(
                    jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, y[:, None], -1)[:, 0]
                )

            tx = adahessian(0.1, axis_name="data")

            def local(p, st, key, x, y):
                u, st = tx.update(None, st, p, loss_fn=ce, key=key, batch_args=(x, y))
                return optax.apply_updates(p, u), st

            step = smap(local, (P(), P(), P(), P("data"), P("data")), (P(), P()), (0, 1))
            key = jax.random.key(3)
            for label, mult in labels:
                b = args.ada_batch * mult
                drng = np.random.default_rng(20)  # the same data for the same global size
                x = drng.normal(size=(b, 32)).astype(np.float32)
                y = (np.abs(x[:, :10]).argmax(1)).astype(np.int32)
                batch = rows(mesh, x, y)
                state = {"p": replicated(params0)}
                state["s"] = smap(tx.init, P(), P())(state["p"])
                p1, _ = step(
                    jax.tree.map(jnp.copy, state["p"]),
                    jax.tree.map(jnp.copy, state["s"]),
                    key,
                    *batch,
                )
                # the parameters' norm and the step's norm (its entries divide by Hessian-diagonal
                # estimates, some near 0: entrywise they are too sensitive to compare across modes)
                step_tree = jax.tree.map(lambda a, b: np.asarray(gather(a)) - b, p1, params0)
                out = [host_norm(p1), host_norm(step_tree)]

                def run():
                    state["p"], state["s"] = step(state["p"], state["s"], key, *batch)
                    return state["p"]

                record("adahessian_step", label, args.ada_batch, timed(run), out)

    # -- sliced Wasserstein ---------------------------------------------------------------------
    if want("sliced_wasserstein"):
        with guarded("sliced_wasserstein"):
            from geomjax.ot import sliced_wasserstein

            d, L = args.sw_dim, args.sw_projections
            key = jax.random.key(4)
            sw = smap(
                jax.value_and_grad(
                    lambda x, y: sliced_wasserstein(key, x, y, n_projections=L, axis_name="data")
                ),
                (P("data"), P("data")),
                (P(), P("data")),
            )
            for label, mult in labels:
                n = args.sw_points * mult
                rng = np.random.default_rng(5)
                x = rng.normal(size=(n, d)).astype(np.float32)
                y = (rng.normal(size=(n, d)) + 0.5).astype(np.float32)
                xs, ys = rows(mesh, x, y)
                val, g = sw(xs, ys)
                out = [float(np.asarray(val)), host_norm(g)]
                record("sliced_wasserstein", label, args.sw_points, timed(lambda: sw(xs, ys)), out)

    # -- M-FAC with the buffer sharded ----------------------------------------------------------
    if want("mfac_shard_buffer"):
        with guarded("mfac_shard_buffer"):
            from geomjax.optim import scale_by_mfac

            m = args.mfac_m
            tx = scale_by_mfac(m, 1e-4, axis_name="data", shard_buffer=True)
            from geomjax.optim import MFACState

            def local_update(g, count, buf, gram):  # the buffer is the only sharded state
                u, st = tx.update(g, MFACState(count, buf, gram))
                return u, st.count, st.grads, st.gram

            specs = (P(), P(), P(None, "data"), P())
            upd = smap(local_update, specs, specs, (2,))
            init = smap(lambda g: tuple(tx.init(g)), P(), specs[1:])

            def fill_and_time(d):
                # three different gradients (a window of equal ones is singular up to the damping:
                # its float32 solve would lose all digits and the modes could not be compared)
                rng = np.random.default_rng(6)
                gs = [replicated(rng.normal(size=d).astype(np.float32)) for _ in range(3)]
                count, buf, gram = init(gs[0])
                for g in gs:
                    u, count, buf, gram = upd(g, count, buf, gram)
                out = [host_norm(u)]
                holder = {"c": count, "b": buf, "k": gram, "i": 0}

                def run():
                    g = gs[holder["i"] % 3]
                    holder["i"] += 1
                    u, holder["c"], holder["b"], holder["k"] = upd(
                        g, holder["c"], holder["b"], holder["k"]
                    )
                    return u

                t = timed(run)
                local_bytes = int(holder["b"].addressable_shards[0].data.nbytes)
                return t, out, local_bytes

            for label, mult in labels:
                d = args.mfac_d * mult
                t, out, local_bytes = fill_and_time(d)
                record(
                    "mfac_shard_buffer",
                    label,
                    args.mfac_d,
                    t,
                    out,
                    buffer_bytes_per_device=local_bytes,
                    d=d,
                    m=m,
                )
            # the largest d that fits (steps of 2^(1/4)), last: an out-of-memory error may leave the
            # allocator fragmented
            largest, d = 0, max(1024 * k, args.mfac_d // 4)
            while d <= args.mfac_max_d:
                try:
                    fill_and_time(d)
                    largest = d
                except Exception as err:  # noqa: BLE001 - RESOURCE_EXHAUSTED ends the search
                    log(f"  mfac d={d}: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
                    break
                d = -(-int(d * 2**0.25) // (1024 * k)) * (1024 * k)  # rounded up: always grows
            part["mfac_largest_d"] = {"m": m, "largest_d": largest, "cap": args.mfac_max_d}
            log(f"  mfac largest d at m={m}: {largest} (cap {args.mfac_max_d})")

    # -- Sinkhorn (ott-jax, row-sharded clouds, jax.jit on an Auto mesh) ------------------------
    if want("sinkhorn"):
        with guarded("sinkhorn"):
            from geomjax.ot import sinkhorn

            n = args.sinkhorn_n
            rng = np.random.default_rng(7)
            x = rng.normal(size=(n, 3)).astype(np.float32)
            y = (rng.normal(size=(n, 3)) + 1.0).astype(np.float32)
            xs, ys = rows(auto, x, y)
            solve = jax.jit(
                lambda a, b: sinkhorn(a, b, epsilon=0.5, threshold=1e-3, max_iterations=200)
            )
            out = solve(xs, ys)
            res = [float(np.asarray(out.cost)), float(np.asarray(out.n_iters))]
            record("sinkhorn", "global", n, timed(lambda: solve(xs, ys).cost), res)

    if pid == 0:
        Path(args.part).write_text(json.dumps(part))


# ------------------------------------------------------------------------------------------------
# driver: launch the three modes, combine
# ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gpu_count() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _run_mode(args, mode: int, gpu: bool, tmp: Path, passthrough: list[str]) -> dict:
    K = args.devices
    n_proc = K if mode == 3 else 1
    port = _free_port()
    part = tmp / f"mode{mode}.json"
    procs = []
    for i in range(n_proc):
        env = dict(os.environ)
        env.pop("JAX_NUM_PROCESSES", None)
        if gpu:
            env["NCCL_NVLS_ENABLE"] = "0"
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(j) for j in range(1 if mode == 1 else K))
            if mode == 3:
                env["JAX_LOCAL_DEVICE_IDS"] = str(i)
        else:
            env["JAX_PLATFORMS"] = "cpu"
            count = K if mode == 2 else 1
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
            ).strip()
        if mode == 3:
            env.update(
                JAX_NUM_PROCESSES=str(K),
                JAX_PROCESS_ID=str(i),
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            )
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).strip(
            os.pathsep
        )
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            str(mode),
            "--part",
            str(part),
        ]
        procs.append(subprocess.Popen(cmd + passthrough, env=env, start_new_session=True, cwd=ROOT))
    deadline = time.monotonic() + args.timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)  # our own child's process group
                p.wait()
    rcs = [p.returncode for p in procs]
    if any(rc != 0 for rc in rcs) or not part.exists():
        return {"mode": mode, "failed": f"return codes {rcs}"}
    out = json.loads(part.read_text())
    out["env"] = {
        k: env[k]
        for k in ("XLA_FLAGS", "NCCL_NVLS_ENABLE", "CUDA_VISIBLE_DEVICES", "JAX_LOCAL_DEVICE_IDS")
        if k in env
    }
    return out


def _max_rel(a: list[float], b: list[float]) -> float:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    scale = np.maximum(np.abs(a), 1e-30)
    return float(np.max(np.abs(a - b) / scale, initial=0.0))


def driver(args: argparse.Namespace, argv: list[str]) -> None:
    gpu = _gpu_count() > 0 and os.environ.get("JAX_PLATFORMS", "") != "cpu"
    if gpu and _gpu_count() < args.devices:
        raise SystemExit(f"--devices {args.devices}: only {_gpu_count()} GPUs")
    passthrough, skip = [], False
    for a in argv:  # the workers get every option but the driver's own --out / --device
        if skip:
            skip = False
        elif a in ("--out", "--device"):
            skip = True
        elif not a.startswith(("--out=", "--device=")):
            passthrough.append(a)
    tmp = Path(tempfile.mkdtemp(prefix="geomjax-bench-dist-"))
    modes = {}
    for mode in (1, 2, 3):
        print(f"== mode {mode}", flush=True)
        modes[mode] = _run_mode(args, mode, gpu, tmp, passthrough)
    K = args.devices
    rows = []
    m1 = modes[1]
    mode_name = {2: f"1 process x {K} devices", 3: f"{K} processes x 1 device"}
    for mode in (2, 3):
        mk = modes[mode]
        if "failed" in mk or "failed" in m1:
            rows.append(
                {
                    "case": f"mode {mode}",
                    "baseline": "mode 1",
                    "geomjax_s": 0.0,
                    "baseline_s": 0.0,
                    "ratio": 0.0,
                    "failed": mk.get("failed") or m1.get("failed"),
                }
            )
            continue
        for name, sizes in mk["cases"].items():
            ref = m1["cases"].get(name, {})
            got = sizes["global"]
            err = (
                _max_rel(ref["global"]["output"], got["output"])
                if "global" in ref
                else float("nan")
            )
            kinds = (["weak"] if "weak1" in ref else []) + (["strong"] if "global" in ref else [])
            for kind in kinds:
                base = ref["weak1" if kind == "weak" else "global"]
                ratio = base["time_s"] / got["time_s"]
                row = {
                    "case": f"{name} {kind}, {mode_name[mode]} (mode {mode})",
                    "baseline": "1 device (mode 1)"
                    + (", per-device size" if kind == "weak" else ", same global size"),
                    "geomjax_s": got["time_s"],
                    "baseline_s": base["time_s"],
                    "ratio": ratio,
                    "max_rel_err_vs_mode1": err,
                    "agree": bool(err <= AGREEMENT_GOAL),
                }
                goal = GOALS.get(name)
                if goal and goal[0] == kind:
                    row["goal"] = f">= {goal[1]}"
                    row["met"] = bool(ratio >= goal[1] and err <= AGREEMENT_GOAL)
                if name == "mfac_shard_buffer":
                    row["buffer_per_device_vs_1_x"] = (
                        got["buffer_bytes_per_device"] / ref["global"]["buffer_bytes_per_device"]
                    )
                    l1 = m1.get("mfac_largest_d", {}).get("largest_d", 0)
                    lk = mk.get("mfac_largest_d", {}).get("largest_d", 0)
                    row["largest_d_1"] = l1
                    row["largest_d_k"] = lk
                    row["largest_d_vs_1_x"] = lk / l1 if l1 else float("nan")
                    row["met"] = bool(
                        row["buffer_per_device_vs_1_x"] <= 0.55 and row["largest_d_vs_1_x"] >= 1.9
                    )
                rows.append(row)
    for mode in (1, 2, 3):
        for name, error in modes[mode].get("errors", {}).items():
            rows.append(
                {
                    "case": f"{name}, mode {mode}",
                    "baseline": "-",
                    "geomjax_s": 0.0,
                    "baseline_s": 0.0,
                    "ratio": 0.0,
                    "failed": error,
                    "met": False,
                }
            )
    env = _environment(gpu)
    psum = {f"mode {m}": modes[m].get("psum", []) for m in (2, 3)}
    notes = _notes(args, modes, psum, env)
    label = args.device or ("gpu" if gpu else "cpu")
    record = {
        "area": "distributed",
        "environment": env,
        "rows": rows,
        "notes": notes,
        "psum": psum,
        "modes": modes,
        "args": {k: v for k, v in vars(args).items() if k not in ("worker", "part")},
    }
    out = Path(args.out) if args.out else HERE / "results" / f"distributed-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"{'case':64s} {'ratio':>7s} {'rel err':>9s} met")
    for r in rows:
        print(
            f"{r['case']:64s} {r['ratio']:7.3f} {r.get('max_rel_err_vs_mode1', float('nan')):9.2e} {r.get('met', '')}"
        )
    print(f"wrote {out}")


def _environment(gpu: bool) -> dict:
    import jax
    import jaxlib
    import numpy as np

    env = {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "backend": "gpu" if gpu else "cpu",
        "device": "cpu",
        "matmul_precision": "default",
        "NCCL_NVLS_ENABLE": "0" if gpu else None,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }
    if gpu:
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        env["device"] = q.stdout.splitlines()[0].split(",")[0].strip() if q.stdout else "gpu"
        env["nvidia_smi"] = q.stdout.strip()
        topo = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True)
        env["nvidia_smi_topo"] = topo.stdout
    return env


def _notes(args, modes, psum, env) -> str:
    lines = [
        f"Modes: 1 = one process, one device; 2 = one process, {args.devices} devices; "
        f"3 = {args.devices} processes, one device each (jax.distributed via "
        "geomjax.distributed.initialize_from_env). Weak rows: ratio = t(1 device, per-device "
        "size) / t(K devices, K x per-device size), the efficiency; strong rows: ratio = t(1 "
        "device) / t(K devices) on the same global problem, the speedup. max_rel_err_vs_mode1: "
        "the K-device outputs (loss and parameter norms after a step, SW value and gradient "
        "norm, M-FAC update norm, Sinkhorn cost) against mode 1 on the same global problem.",
        f"Sizes: EGNN {args.egnn_graphs} graphs of {args.egnn_nodes} nodes per device, hidden "
        f"{args.egnn_hidden}, {args.egnn_layers} layers, Adam; AdaHessian MLP 32-{args.ada_width}-"
        f"{args.ada_width}-10, batch {args.ada_batch} per device; sliced Wasserstein "
        f"{args.sw_points} points per device, d={args.sw_dim}, L={args.sw_projections} (value and "
        f"gradient); M-FAC m={args.mfac_m}, d={args.mfac_d} per device (timed), largest d "
        f"searched in steps of 2^(1/4) up to {args.mfac_max_d}; Sinkhorn n=m={args.sinkhorn_n} "
        "(global), epsilon 0.5, threshold 1e-3, at most 200 iterations.",
    ]
    for name, entries in psum.items():
        if entries:
            bw = ", ".join(
                f"{e['bytes'] / 2**20:.2f} MiB {e['busbw_GBps']:.2f} GB/s" for e in entries
            )
            lines.append(f"psum bus bandwidth, {name}: {bw}.")
    for m in (1, 2, 3):
        if "mfac_largest_d" in modes[m]:
            lines.append(f"M-FAC largest d, mode {m}: {modes[m]['mfac_largest_d']}.")
        if "failed" in modes[m]:
            lines.append(f"Mode {m} failed: {modes[m]['failed']}.")
        if modes[m].get("env"):
            lines.append(f"Mode {m} environment: {modes[m]['env']}.")
    if env.get("nvidia_smi_topo"):
        lines.append("nvidia-smi topo -m:\n\n```\n" + env["nvidia_smi_topo"].strip() + "\n```")
    return "\n\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker is not None:
        worker(args)
    else:
        driver(args, argv)


if __name__ == "__main__":
    main()
