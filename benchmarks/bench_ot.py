"""Sliced Wasserstein: geomjax against POT and ott-jax, and against the projection + sort floor.

Cases: SW_2 between two uniform point clouds of n points in d dimensions with L = 256 given
directions (the same directions for every method), n in {1e4, 1e5}, d in {3, 128} on the CPU, and
n = 1e6 (d = 3, 128) on the GPU. Every method gets the directions, so all compute the same number.

* geomjax: ``jax.jit(sliced_wasserstein(None, x, y, projections=dirs))``;
* POT: ``ot.sliced_wasserstein_distance(x, y, projections=dirs.T)`` (numpy; CPU only; POT takes the
  directions as a ``(d, L)`` matrix);
* ott-jax: ``jax.jit(ott.tools.sliced.sliced_wasserstein(x, y, proj_fn=...))`` with a projector that
  applies the same directions; ott returns the mean of the per-direction W_2^2, so its square root
  is compared;
* floor: the work every method must do: the projection matmuls ``dirs @ x.T`` and ``dirs @ y.T``
  (precision HIGHEST, as geomjax) plus the sorts of the two ``L x n`` projected arrays along the
  points (with geomjax's sort, which uses integer keys on the CPU), jitted (its ``ratio`` is floor / geomjax: "within 2x of the floor" reads
  ``ratio >= 0.5``).

Before timing, POT and ott are checked to agree with geomjax (relative difference printed and
recorded). float32 data (POT gets float64 copies of it: in float32 its result was 4e-4 off at n = 1e5).

Run: python benchmarks/bench_ot.py [--device gpu] [--out PATH] [--repeats R] [--quick]
On a shared CPU pin the run to one core:
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_ot.py --device cpu
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomjax.ot import random_projections, sliced_wasserstein  # noqa: E402
from geomjax.ot._sort import sort_last  # noqa: E402

N_PROJ = 256


def try_import(name):
    try:
        return __import__(name), ""
    except Exception as exc:  # noqa: BLE001 - report any import failure and skip
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def make_data(n, d):
    kx, ky, kp = jax.random.split(jax.random.key(n + d), 3)
    x = jax.random.normal(kx, (n, d), jnp.float32)
    y = 1.5 * jax.random.normal(ky, (n, d), jnp.float32) + 0.5
    dirs = random_projections(kp, N_PROJ, d, jnp.float32)
    return x, y, dirs


def rel(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


def bench_case(n, d, args, rows, peers, why):
    x, y, dirs = make_data(n, d)
    ours_fn = jax.jit(lambda x, y, dirs: sliced_wasserstein(None, x, y, projections=dirs))

    @jax.jit
    def floor_fn(x, y, dirs):
        # (L, n) layout, sorted along the last axis: on the GPU about 20x faster than sorting an
        # (n, L) array along axis 0 (the layout ott uses).
        hi = jax.lax.Precision.HIGHEST
        px, py = jnp.matmul(dirs, x.T, precision=hi), jnp.matmul(dirs, y.T, precision=hi)
        # The fastest sort we know: geomjax.ot._sort.sort_last (integer keys on the CPU, where
        # XLA's float comparator costs ~3.5x; jnp.sort elsewhere).
        return sort_last(px), sort_last(py)

    ours = float(ours_fn(x, y, dirs))
    t_ours = _harness.time_fn(lambda: ours_fn(x, y, dirs), repeats=args.repeats)["median_s"]
    slow = max(3, args.repeats // 3)  # for the baselines that take seconds per call on the CPU
    t_floor = _harness.time_fn(lambda: floor_fn(x, y, dirs), repeats=slow, warmup=1)["median_s"]
    case = f"SW_2 n={n:,} d={d} L={N_PROJ} float32"
    rows.append(
        {
            "case": case,
            "baseline": "floor: 2 projection matmuls + 2 sorts (L x n)",
            "geomjax_s": t_ours,
            "baseline_s": t_floor,
            "ratio": t_floor / t_ours,
            "geomjax_over_floor_x": t_ours / t_floor,
        }
    )
    print(f"{case}: geomjax {1e3 * t_ours:.2f} ms, floor {1e3 * t_floor:.2f} ms")

    ott_sliced = peers.get("ott")
    if ott_sliced is not None:

        def ott_fn(x, y, dirs):
            cost, _ = ott_sliced.sliced_wasserstein(x, y, proj_fn=lambda z: z @ dirs.T)
            return jnp.sqrt(cost)

        ott_jit = jax.jit(ott_fn)
        diff = rel(ott_jit(x, y, dirs), ours)
        assert diff < 1e-3, f"ott disagrees: {diff}"
        t = _harness.time_fn(lambda: ott_jit(x, y, dirs), repeats=slow, warmup=1)["median_s"]
        rows.append(
            {
                "case": case,
                "baseline": "ott.tools.sliced (jit)",
                "geomjax_s": t_ours,
                "baseline_s": t,
                "ratio": t / t_ours,
                "max_rel_diff": diff,
            }
        )
        print(f"  ott {1e3 * t:.2f} ms (rel diff {diff:.1e})")
    pot = peers.get("pot")
    if pot is not None:
        # float64 copies: POT keeps float32 inputs in float32 (4e-4 off at n = 1e5).
        xn, yn, dn = (np.asarray(a, np.float64) for a in (x, y, dirs.T))
        ref = pot.sliced_wasserstein_distance(xn, yn, projections=dn)
        diff = rel(ref, ours)
        assert diff < 1e-3, f"POT disagrees: {diff}"
        t = _harness.time_fn(
            lambda: pot.sliced_wasserstein_distance(xn, yn, projections=dn), repeats=slow, warmup=1
        )["median_s"]
        rows.append(
            {
                "case": case,
                "baseline": "POT (numpy)",
                "geomjax_s": t_ours,
                "baseline_s": t,
                "ratio": t / t_ours,
                "max_rel_diff": diff,
            }
        )
        print(f"  POT {1e3 * t:.2f} ms (rel diff {diff:.1e})")


def main():
    args = _harness.parse_args("ot")
    on_gpu = (args.device or jax.default_backend()) == "gpu"
    peers, why = {}, {}
    try:
        from ott.tools import sliced as ott_sliced

        peers["ott"] = ott_sliced
    except Exception as exc:  # noqa: BLE001
        why["ott"] = f"{type(exc).__name__}: {exc}"
    if on_gpu:
        why["POT"] = "numpy peer, CPU only"
    else:
        pot, reason = try_import("ot")
        if pot is not None and hasattr(pot, "sliced_wasserstein_distance"):
            peers["pot"] = pot
        else:
            why["POT"] = reason or "no ot.sliced_wasserstein_distance"
    for name, reason in why.items():
        print(f"skipping {name}: {reason}")
    if args.quick:
        cases = [(2_000, 3)]
    elif on_gpu:
        cases = [(10_000, 3), (100_000, 3), (1_000_000, 3), (100_000, 128), (1_000_000, 128)]
    else:
        cases = [(10_000, 3), (10_000, 128), (100_000, 3), (100_000, 128)]
    rows = []
    for n, d in cases:
        bench_case(n, d, args, rows, peers, why)
    _harness.print_table(rows)
    threads = {
        v: os.environ.get(v) for v in ("XLA_FLAGS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    notes = (
        f"SW_2 between uniform clouds (x ~ N(0, I), y ~ N(0.5, 2.25 I)) with the same {N_PROJ} given "
        "unit directions for every method, float32 data. geomjax: jit(sliced_wasserstein(projections=...)); "
        "ott: jit(ott.tools.sliced.sliced_wasserstein) with a projector applying the same directions "
        "(sqrt of its mean W_2^2); POT: ot.sliced_wasserstein_distance(projections=...) in numpy. Floor: "
        "the two projection matmuls and the two sorts of the n x L projections (geomjax's sort: integer keys on the CPU), jitted; its ratio is "
        "floor/geomjax (goal on the GPU: >= 0.5); the floor sorts an L x n array along its last axis. Agreement checked before timing (max_rel_diff). "
        "Skipped: " + (", ".join(f"{k} ({v})" for k, v in why.items()) or "none") + "."
    )
    if not on_gpu:
        notes += (
            " CPU: XLA's CPU sort (jaxlib 0.10.2) is a comparison sort calling a compiled "
            "comparator; for float keys it is ~14x slower than NumPy's sort, for int keys ~4x, so "
            "geomjax sorts order-preserving integer images of the floats (bitwise the same result). "
            "The sorts still dominate. ott sorts the floats."
        )
        notes += (
            " Threads: "
            + (", ".join(f"{k}={v!r}" for k, v in threads.items() if v) or "defaults")
            + "."
        )
    out = _harness.write_results("ot", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
