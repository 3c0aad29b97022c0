"""Metric-learning losses: loss + gradient against pytorch-metric-learning, time and peak memory.

Cases (float32, matmul precision HIGHEST on both sides: jax's ``highest`` and
``torch.backends.cuda.matmul.allow_tf32 = False``): B embeddings of D = 512 (standard normal),
4 samples per class, loss and gradient w.r.t. the embeddings, for contrastive, triplet margin
(all triplets), multi-similarity, NT-Xent and SupCon, B in {1024, 4096, 16384, 65536}
(``--quick``: {256, 1024} on the CPU). geomjax runs dense up to B = 4096 and row-chunked
(``chunk_size=1024``; the triplet loss picks its own chunk and gets ``max_positives=3``) above; the chunked rows are also
run at B = 2048 against the dense ones (agreement checked first). PML runs its losses as users
call them; its failures (out of memory) are recorded as such, not skipped silently.

Each timed: jitted (geomjax) / eager (PML), median of ``--repeats`` calls after 2 warm-up calls.
Peak memory: on GPUs ``jax.devices()[0].memory_stats()['peak_bytes_in_use']`` after resetting
nothing (each case runs in a fresh subprocess, ``--one``) and
``torch.cuda.max_memory_allocated()``; on the CPU peak memory is not reported. Ratio =
PML time / geomjax time (> 1: geomjax faster).

Run: python benchmarks/bench_metric_learning.py [--device gpu] [--quick] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomjax import metric_learning as ml  # noqa: E402

LOSSES = {
    "contrastive": (ml.contrastive_loss, "ContrastiveLoss"),
    "triplet": (ml.triplet_margin_loss, "TripletMarginLoss"),
    "multi_similarity": (ml.multi_similarity_loss, "MultiSimilarityLoss"),
    "ntxent": (ml.ntxent_loss, "NTXentLoss"),
    "supcon": (ml.supcon_loss, "SupConLoss"),
}
D = 512


def data(b: int):
    rng = np.random.default_rng(b)
    return rng.standard_normal((b, D)).astype(np.float32), np.arange(b) // 4


def ours(name: str, b: int, repeats: int) -> dict:
    fn = LOSSES[name][0]
    chunk = None if b <= 4096 else 1024
    kw = {}
    if name == "triplet":
        chunk = None  # its own chunk from the 2^24-entry grid bound
        kw["max_positives"] = 3  # 4 samples per class
    x, y = data(b)
    g = jax.jit(jax.value_and_grad(lambda e: fn(e, jnp.asarray(y), chunk_size=chunk, **kw)))
    xj = jnp.asarray(x)
    t = _harness.time_fn(lambda: g(xj), repeats=repeats)["median_s"]
    out = {"seconds": t, "value": float(g(xj)[0])}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["peak_bytes"] = int(stats["peak_bytes_in_use"])
    return out


def pml(name: str, b: int, repeats: int) -> dict:
    import torch
    from pytorch_metric_learning import losses

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = data(b)
    xt = torch.tensor(x, device=dev, requires_grad=True)
    yt = torch.tensor(y, device=dev)
    loss_fn = getattr(losses, LOSSES[name][1])()

    def run():
        xt.grad = None
        v = loss_fn(xt, yt)
        v.backward()
        if dev == "cuda":
            torch.cuda.synchronize()
        return float(v.detach())

    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    value = run()
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    out = {"seconds": float(np.median(times)), "value": value}
    if dev == "cuda":
        out["peak_bytes"] = int(torch.cuda.max_memory_allocated())
    return out


def one(args) -> None:
    """Run one (library, loss, B) in this process and print its JSON (fresh peak memory)."""
    lib, name, b = args.one.split(",")
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        res = (ours if lib == "geomjax" else pml)(name, int(b), args.repeats)
    except Exception as exc:  # noqa: BLE001 - out of memory and friends are results here
        res = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    print("RESULT " + json.dumps(res))


def run_sub(lib: str, name: str, b: int, args) -> dict:
    cmd = [sys.executable, __file__, "--one", f"{lib},{name},{b}", "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}


def check_chunked(b: int = 2048) -> dict:
    """Chunked vs dense at B = 2048 (loss and gradient), before any timing."""
    x, y = data(b)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    out = {}
    for name in ("contrastive", "multi_similarity", "ntxent", "supcon"):
        fn = LOSSES[name][0]
        v0, g0 = jax.jit(jax.value_and_grad(lambda e: fn(e, yj)))(xj)
        v1, g1 = jax.jit(jax.value_and_grad(lambda e: fn(e, yj, chunk_size=256)))(xj)
        rel = max(
            abs(float(v1 - v0)) / abs(float(v0)),
            float(jnp.max(jnp.abs(g1 - g0)) / jnp.max(jnp.abs(g0))),
        )
        assert rel < 1e-5, (name, rel)
        out[name] = rel
    return out


def main():
    parser = argparse.ArgumentParser(description="metric-learning losses vs PML")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    if args.one:
        return one(args)
    jax.config.update("jax_default_matmul_precision", "highest")
    chunk_err = check_chunked()
    print("chunked vs dense (B = 2048, rel err of loss and grad):", chunk_err)
    sizes = (256, 1024) if args.quick else (1024, 4096, 16384, 65536)
    rows = []
    for b in sizes:
        for name in LOSSES:
            mine = run_sub("geomjax", name, b, args)
            theirs = run_sub("pml", name, b, args)
            print(f"B={b} {name}: geomjax {mine} | PML {theirs}", flush=True)
            if "error" in mine:
                continue
            row = {
                "case": f"{name} loss+grad B={b} D={D}",
                "baseline": "pytorch-metric-learning 2.9",
                "geomjax_s": mine["seconds"],
                "baseline_s": theirs.get("seconds", float("nan")),
                "ratio": theirs.get("seconds", float("nan")) / mine["seconds"],
            }
            if "error" in theirs:
                row["baseline_error"] = theirs["error"]
            elif abs(theirs["value"] - mine["value"]) > 1e-4 * abs(theirs["value"]) + 1e-6:
                row["value_mismatch"] = f"{mine['value']} vs {theirs['value']}"
            for key, res in (("geomjax_peak_bytes", mine), ("baseline_peak_bytes", theirs)):
                if "peak_bytes" in res:
                    row[key] = res["peak_bytes"]
            rows.append(row)
    _harness.print_table(rows)
    notes = (
        "Loss + gradient w.r.t. the embeddings, float32, D = 512, 4 samples per class, full "
        "float32 matmuls on both sides (jax highest, torch TF32 off). geomjax dense up to "
        "B = 4096, row-chunked (1024 anchors) above; PML as users call it. Each (library, "
        f"loss, B) in a fresh process; peak memory on GPUs only. Chunked vs dense at B = 2048: "
        f"{', '.join(f'{k} {v:.1e}' for k, v in chunk_err.items())}."
    )
    out = _harness.write_results("metric_learning", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
