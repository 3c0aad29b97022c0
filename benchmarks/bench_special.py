"""geomjax.special.log_iv on a large batch of (v, x) pairs against scipy.special.ive.

Baselines, in the same process:
  * ``scipy.special.ive(v, x)`` (the exponentially scaled I_v; ``log(ive) + x``) over the same
    pairs, float64 (scipy has no float32 path for ive; its float32 input is upcast). Where scipy
    over/underflows (inf or 0, e.g. v = 16383 and x = 1e4) it has no answer at all;
    the fraction of such pairs is recorded;
  * a plain elementwise jnp kernel ``jnp.log(x) * v`` of the same size: the memory-bandwidth /
    launch floor that any elementwise function pays.
Before timing, log_iv and scipy are checked to agree where scipy's ive is a normal number.

Pairs: v log-uniform in [0.1, 20000] (a tenth of them v = 0), x log-uniform in [1e-3, 1e5].

Run: python benchmarks/bench_special.py [--device gpu] [--out PATH] [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special as sps  # noqa: E402

from geomjax.special import log_iv  # noqa: E402


def pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = 10.0 ** rng.uniform(-1.0, np.log10(20000.0), n)
    v[rng.random(n) < 0.1] = 0.0
    x = 10.0 ** rng.uniform(-3.0, 5.0, n)
    return v, x


def scipy_log_iv(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.log(sps.ive(v, x)) + x


def main():
    args = _harness.parse_args("special")
    n = 100_000 if args.quick else 1_000_000
    v_np, x_np = pairs(n)
    with np.errstate(all="ignore"):
        ive = sps.ive(v_np, x_np)
    finite = np.isfinite(ive) & (ive > 0)
    normal = finite & (ive > 1e-290)
    print(f"{n} pairs; scipy.special.ive finite and nonzero on {finite.mean():.1%} of them")
    rows = []
    with jax.enable_x64(True):
        for dtype in (jnp.float64, jnp.float32):
            name = jnp.dtype(dtype).name
            v = jnp.asarray(v_np, dtype)
            x = jnp.asarray(x_np, dtype)
            fn = jax.jit(log_iv)
            floor = jax.jit(lambda v, x: jnp.log(x) * v)
            got = np.asarray(fn(v, x), np.float64)
            assert np.all(np.isfinite(got)), "log_iv must be finite on every pair"
            # Compare at the inputs actually used (float32-rounded for float32).
            v64, x64 = np.asarray(v, np.float64), np.asarray(x, np.float64)
            ref = scipy_log_iv(v64, x64)
            err = np.abs(got - ref)[normal] / np.maximum(1.0, np.abs(ref[normal]))
            max_err = float(np.max(err))
            # log I_v(x) has absolute condition number ~ hypot(v, x) for relative perturbations
            # of v and x; a backward-stable evaluation (and scipy) errs by a few eps times it.
            eps = float(jnp.finfo(dtype).eps)
            budget = 64 * eps * (1.0 + np.hypot(v64, x64)[normal]) + 1e-12 * np.abs(ref[normal])
            worst = float(np.max(np.abs(got - ref)[normal] / budget))
            print(
                f"{name}: max error vs scipy where ive is normal: {max_err:.1e} relative; "
                f"{worst:.2f} of the budget 64 eps (1 + hypot(v, x))"
            )
            assert worst < 1.0, (name, max_err, worst)
            t_g = _harness.time_fn(lambda: fn(v, x), repeats=args.repeats)
            t_f = _harness.time_fn(lambda: floor(v, x), repeats=args.repeats)
            t_s = _harness.time_fn(
                lambda: scipy_log_iv(v_np, x_np), repeats=max(3, args.repeats // 2), warmup=1
            )
            common = {
                "n_pairs": n,
                "geomjax_evals_per_s": n / t_g["median_s"],
                "scipy_finite_fraction": float(finite.mean()),
                "max_rel_err_vs_scipy_where_normal": max_err,
                "max_err_over_condition_budget": worst,
            }
            rows.append(
                {
                    "case": f"log_iv {n} pairs {name}",
                    "baseline": "scipy.special.ive (f64)",
                    "geomjax_s": t_g["median_s"],
                    "baseline_s": t_s["median_s"],
                    "ratio": t_s["median_s"] / t_g["median_s"],
                    "baseline_evals_per_s": n / t_s["median_s"],
                    **common,
                }
            )
            rows.append(
                {
                    "case": f"log_iv {n} pairs {name}",
                    "baseline": "jnp.log(x) * v (floor)",
                    "geomjax_s": t_g["median_s"],
                    "baseline_s": t_f["median_s"],
                    "ratio": t_f["median_s"] / t_g["median_s"],
                    "baseline_evals_per_s": n / t_f["median_s"],
                    **common,
                }
            )
    _harness.print_table(rows)
    notes = (
        "log_iv evaluates every regime (power series, Debye expansion, 20-step recurrence) for "
        "every pair and selects with masks, so its cost is the sum of the regimes; scipy's ive "
        "has no answer (inf or 0) on the pairs counted in `scipy_finite_fraction`'s complement. "
        "The floor row is a single log and multiply over the same arrays."
    )
    out = _harness.write_results("special", args, rows, notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
