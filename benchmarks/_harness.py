"""Shared benchmark harness: compile outside the timing, block_until_ready, repeat, median, JSON record.

Every benchmark checks that geomjax and the baseline agree before timing them, times both in the
same process and reports the ratio ``baseline_time / geomjax_time`` (> 1 means geomjax is faster).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def block(x):
    """Wait for every array in a pytree (no-op for numpy)."""
    for leaf in jax.tree.leaves(x):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
    return x


def time_fn(
    fn: Callable[[], object], *, repeats: int = 20, warmup: int = 2, min_time: float = 0.0
) -> dict:
    """Median wall time of ``fn()`` in seconds after ``warmup`` untimed calls (which compile).

    Returns a dict with ``median_s``, ``min_s``, ``repeats``.
    """
    for _ in range(warmup):
        block(fn())
    times = []
    start_all = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start_all) < min_time:
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeats:
            break
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def environment() -> dict:
    """Device and version information recorded with every result."""
    dev = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
    }


def parse_args(area: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"geomjax {area} benchmarks")
    parser.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    parser.add_argument("--out", default=None, help="output JSON path")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    return parser.parse_args()


def write_results(area: str, args: argparse.Namespace, rows: list[dict], notes: str = "") -> Path:
    """Write the JSON record; ``notes`` (markdown) is copied under the table in RESULTS.md."""
    label = args.device or jax.default_backend()
    out = Path(args.out) if args.out else RESULTS_DIR / f"{area}-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"area": area, "environment": environment(), "rows": rows, "notes": notes}
    out.write_text(json.dumps(record, indent=2))
    return out


def print_table(rows: list[dict]) -> None:
    """Rows: dicts with ``case``, ``geomjax_s``, ``baseline``, ``baseline_s``, ``ratio``."""
    print(f"{'case':46s} {'baseline':30s} {'geomjax ms':>11s} {'baseline ms':>12s} {'ratio':>8s}")
    for r in rows:
        print(
            f"{r['case']:46s} {r['baseline']:30s} {1e3 * r['geomjax_s']:11.3f} "
            f"{1e3 * r['baseline_s']:12.3f} {r['ratio']:8.2f}"
        )
