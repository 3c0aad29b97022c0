"""Sinkhorn-Newton-Sparse (geomjax.ot.sinkhorn_newton_sparse) against ott-jax's Sinkhorn (plain,
adaptive momentum, Anderson acceleration) and POT's log-domain Sinkhorn, run to the same
marginal error.

Problems (from Tang et al., ICLR 2024, arXiv:2401.12253, Section 6):

* ``points2d``: two empirical measures of n uniform points in [0, 1]^2 (independent draws),
  uniform weights, squared Euclidean cost;
* ``w2-1d`` / ``w1-1d``: two discretized 1-D densities on the grid t_i = (i + 1/2)/n (Gaussian
  mixtures, different for a and b), cost |t_i - t_j|^2 (W2) or |t_i - t_j| (W1).

epsilon is relative to the cost scale: ``epsilon = eps_rel * mean(C)``, eps_rel in
{1e-2, 1e-3, 1e-4}. Everything in float64 (``jax.enable_x64``); every solver runs to the L1
marginal error 1e-6 (ott: its column-marginal L1 error after the row update, where the row error
is zero; SNS: row + column L1; POT: its stopping rule is an L2 norm checked every 10 iterations,
so it gets ``stopThr = 1e-6 / sqrt(n)`` (L1 <= sqrt(n) L2) and the L1 error of its plan is
recorded). Iterations: SNS = Sinkhorn sweeps + Newton steps (CG matvecs recorded apart; a
matvec costs O(n k) with k = ``--sparsity``, far less than a Sinkhorn sweep's O(n^2) exp/lse
passes); ott/POT = Sinkhorn iterations.

Time budget: each baseline gets at most ``--budget`` seconds: its iteration cap is that budget
divided by its per-iteration time (measured on a 100-iteration run). A baseline that hits the cap
is recorded with ``converged: false`` and its time and iterations are lower bounds
(``lower_bound: true``). Compilation is outside the timing (AOT ``lower().compile()``); times are
medians of repeats (fewer repeats for long runs). The costs are checked to agree (relative
difference recorded) whenever both solvers converged.

Run: python benchmarks/bench_sns.py [--quick] [--gpu-sizes] [--device cpu] [--budget S]
On a shared CPU pin the run: OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_sns.py
GPU sizes (n = 10000, 50000) hold dense n x n float64 matrices (SNS: the cost, the plan and
line-search temporaries; 50000^2 x 8 B = 20 GB each): 50000 needs an 80 GB card.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ott.geometry import geometry as ott_geometry  # noqa: E402
from ott.solvers import linear as ott_linear  # noqa: E402
from ott.solvers.linear import acceleration  # noqa: E402

from geomjax.ot import sinkhorn_newton_sparse  # noqa: E402

TOL = 1e-6
MAX_NEWTON = 200
THRESHOLD = 1e-6  # the dense-masked SNS variant keeps P_ij >= THRESHOLD * max_j P_ij


def parse_args():
    p = argparse.ArgumentParser(description="geomjax Sinkhorn-Newton-Sparse benchmark")
    p.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    p.add_argument("--out", default=None, help="output JSON path")
    p.add_argument("--quick", action="store_true", help="n = 1000, two problems (smoke run)")
    p.add_argument("--gpu-sizes", action="store_true", help="n in {10000, 50000}")
    p.add_argument("--budget", type=float, default=None, help="seconds per baseline run")
    p.add_argument("--sparsity", type=int, default=16)
    p.add_argument("--no-pot", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="override the sizes")
    p.add_argument("--kinds", nargs="+", default=None, help="override the problems")
    p.add_argument("--topk-only", action="store_true", help="skip the dense-masked SNS variant")
    return p.parse_args()


# ----------------------------------------------------------------------------------- problems


def _mixture(t, centers, widths, weights):
    d = sum(w * np.exp(-0.5 * ((t - c) / s) ** 2) for c, s, w in zip(centers, widths, weights))
    d = d + 1e-3  # full support (every grid point has mass)
    return d / d.sum()


def make_problem(kind, n):
    rng = np.random.default_rng(n)
    if kind == "points2d":
        x, y = rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2))
        c = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        a = np.full(n, 1.0 / n)
        b = np.full(n, 1.0 / n)
    else:
        t = (np.arange(n) + 0.5) / n
        a = _mixture(t, (0.25, 0.6), (0.08, 0.12), (0.6, 0.4))
        b = _mixture(t, (0.4, 0.8), (0.1, 0.06), (0.5, 0.5))
        p = 2 if kind == "w2-1d" else 1
        c = np.abs(t[:, None] - t[None, :]) ** p
    return c, a, b


def l1_error(plan, a, b):
    return float(np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum())


def primal_cost(plan, c, a, b, eps):
    """<P, C> + eps KL(P | a b^T) (ott's reg_ot_cost at optimality)."""
    pos = plan > 0
    kl = np.sum(plan[pos] * np.log(plan[pos] / np.outer(a, b)[pos])) - plan.sum() + 1.0
    return float(np.sum(plan * c) + eps * kl)


# ----------------------------------------------------------------------------------- timing


def timed(fn, repeats):
    """Median wall time of fn() (already compiled); fewer repeats for long calls."""
    t0 = time.perf_counter()
    out = _harness.block(fn())
    times = [time.perf_counter() - t0]
    want = repeats if times[0] < 2.0 else (2 if times[0] < 20.0 else 1)
    while len(times) < want:
        t0 = time.perf_counter()
        _harness.block(fn())
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def run_sns(c, a, b, eps, sparsity, args):
    def solve(c, a, b, eps):
        o = sinkhorn_newton_sparse(
            c, a, b, epsilon=eps, tol=TOL, sparsity=sparsity, n_sinkhorn=50, max_newton=MAX_NEWTON
        )
        return o.cost, o.marginal_error, o.converged, o.n_sinkhorn, o.n_newton, o.n_matvecs

    compiled = jax.jit(solve).lower(c, a, b, eps).compile()
    out, t = timed(lambda: compiled(c, a, b, eps), args.repeats)
    cost, err, conv, ns, nn, nmv = (np.asarray(v) for v in out)
    return dict(
        cost=float(cost),
        error=float(err),
        converged=bool(conv),
        iters=int(ns) + int(nn),
        n_sinkhorn=int(ns),
        n_newton=int(nn),
        n_matvecs=int(nmv),
        time_s=t,
    )


def _ott_solver(kwargs, max_iterations, threshold):
    def solve(c, a, b, eps):
        geom = ott_geometry.Geometry(cost_matrix=c, epsilon=eps)
        o = ott_linear.solve(
            geom, a, b, threshold=threshold, max_iterations=max_iterations, **kwargs
        )
        errs = o.errors
        last = errs[jnp.maximum(jnp.sum(errs != -1) - 1, 0)]
        return o.reg_ot_cost, last, jnp.logical_and(o.converged, last < threshold), o.n_iters

    return jax.jit(solve)


def run_ott(c, a, b, eps, kwargs, budget, repeats):
    probe = _ott_solver(kwargs, 100, 0.0).lower(c, a, b, eps).compile()
    _, t100 = timed(lambda: probe(c, a, b, eps), 1)
    cap = int(max(100, min(1_000_000, budget / (t100 / 100))) // 10 * 10)
    compiled = _ott_solver(kwargs, cap, TOL).lower(c, a, b, eps).compile()
    out, t = timed(lambda: compiled(c, a, b, eps), repeats)
    cost, err, conv, iters = (np.asarray(v) for v in out)
    return dict(
        cost=float(cost),
        error=float(err),
        converged=bool(conv),
        iters=int(iters),
        cap=cap,
        time_s=t,
    )


def run_pot(pot, c, a, b, eps, budget, repeats):
    n = len(a)
    t0 = time.perf_counter()
    pot.sinkhorn(a, b, c, eps, method="sinkhorn_log", numItermax=20, stopThr=0.0, warn=False)
    per_iter = (time.perf_counter() - t0) / 20
    cap = int(max(20, min(1_000_000, budget / per_iter)))

    def solve():
        return pot.sinkhorn(
            a,
            b,
            c,
            eps,
            method="sinkhorn_log",
            numItermax=cap,
            stopThr=TOL / np.sqrt(n),
            log=True,
            warn=False,
        )

    (plan, log), t = timed(solve, repeats)
    err = l1_error(plan, a, b)
    return dict(
        cost=primal_cost(plan, c, a, b, eps),
        error=err,
        converged=bool(err <= TOL),
        iters=int(log["niter"]),
        cap=cap,
        time_s=t,
    )


# -------------------------------------------------------------------------------------- main


def main():
    args = parse_args()
    on_gpu = (args.device or jax.default_backend()) == "gpu"
    if args.quick:
        sizes, kinds = [1000], ["points2d", "w2-1d"]
    elif args.gpu_sizes:
        sizes, kinds = [10_000, 50_000], ["points2d", "w2-1d", "w1-1d"]
    else:
        sizes, kinds = [1000, 5000], ["points2d", "w2-1d", "w1-1d"]
    sizes = args.sizes or sizes
    kinds = args.kinds or kinds
    budget = args.budget if args.budget is not None else (10.0 if args.quick else 30.0)
    pot = None
    why = {}
    if on_gpu or args.no_pot:
        why["POT"] = "numpy peer, CPU only" if on_gpu else "--no-pot"
    else:
        pot, reason = None, ""
        try:
            import ot as pot
        except Exception as exc:  # noqa: BLE001
            reason = f"{type(exc).__name__}: {exc}"
        if pot is None:
            why["POT"] = reason
    baselines = {
        "ott Sinkhorn": {},
        "ott Sinkhorn + momentum (Lehmann, from it. 100)": dict(
            momentum=acceleration.Momentum(start=100, inner_iterations=10)
        ),
        "ott Sinkhorn + Anderson (memory 5)": dict(
            anderson=acceleration.AndersonAcceleration(memory=5)
        ),
    }
    rows = []
    for n in sizes:
        for kind in kinds:
            c_np, a_np, b_np = make_problem(kind, n)
            c, a, b = jnp.asarray(c_np), jnp.asarray(a_np), jnp.asarray(b_np)
            for eps_rel in (1e-2, 1e-3, 1e-4):
                eps = eps_rel * float(c_np.mean())
                case = f"{kind} n={n} eps={eps_rel:g}*mean(C)"
                variants = {
                    f"SNS top-{args.sparsity}": args.sparsity,
                    f"SNS threshold {THRESHOLD:g} (dense masked)": THRESHOLD,
                }
                if args.topk_only:
                    variants.popitem()
                sns_runs = {}
                for vname, sparsity in variants.items():
                    sns = run_sns(c, a, b, jnp.asarray(eps), sparsity, args)
                    sns_runs[vname] = sns
                    print(
                        f"{case}: {vname} {sns['time_s']:.3f} s, {sns['n_sinkhorn']} + "
                        f"{sns['n_newton']} it ({sns['n_matvecs']} matvecs), err "
                        f"{sns['error']:.1e}, converged {sns['converged']}",
                        flush=True,
                    )
                results = {}
                for name, kw in baselines.items():
                    results[name] = run_ott(c, a, b, jnp.asarray(eps), kw, budget, args.repeats)
                if pot is not None:
                    results["POT sinkhorn_log (numpy)"] = run_pot(
                        pot, c_np, a_np, b_np, eps, budget, args.repeats
                    )
                for (vname, sns), (name, r) in itertools.product(sns_runs.items(), results.items()):
                    both = sns["converged"] and r["converged"]
                    rel = abs(sns["cost"] - r["cost"]) / abs(r["cost"])
                    row = {
                        "case": f"{case} {vname}",
                        "sns_variant": vname,
                        "baseline": name,
                        "geomjax_s": sns["time_s"],
                        "baseline_s": r["time_s"],
                        "ratio": r["time_s"] / sns["time_s"],
                        "iter_ratio": r["iters"] / max(sns["iters"], 1),
                        "sns_iters": sns["iters"],
                        "sns_sinkhorn": sns["n_sinkhorn"],
                        "sns_newton": sns["n_newton"],
                        "sns_matvecs": sns["n_matvecs"],
                        "sns_error": sns["error"],
                        "sns_converged": sns["converged"],
                        "baseline_iters": r["iters"],
                        "baseline_cap": r["cap"],
                        "baseline_error": r["error"],
                        "baseline_converged": r["converged"],
                        "lower_bound": not r["converged"],
                        "cost_rel_diff": rel if both else None,
                    }
                    rows.append(row)
                    print(
                        f"  [{vname}] {name}: {r['time_s']:.3f} s, {r['iters']} it (cap {r['cap']}), err "
                        f"{r['error']:.1e}, converged {r['converged']}; time ratio "
                        f"{row['ratio']:.1f}, iteration ratio {row['iter_ratio']:.1f}"
                        + (f", cost rel diff {rel:.1e}" if both else ""),
                        flush=True,
                    )
    _harness.print_table(rows)
    losses = [
        f"{r['case']} vs {r['baseline']}"
        for r in rows
        if (not r["sns_converged"]) or (r["baseline_converged"] and r["ratio"] < 1.0)
    ]
    skipped = ", ".join(f"{k} ({v})" for k, v in why.items()) or "none"
    mode = (
        "quick run (n = 1000; points2d, w2-1d)"
        if args.quick
        else f"n in {sizes}; {', '.join(kinds)}"
    )
    notes = (
        f"{mode}. "
        f"SNS (sinkhorn_newton_sparse; two variants: top-{args.sparsity} entries per row, and "
        f"the threshold {THRESHOLD:g} x row max with dense masked CG products; 50 warm-start "
        f"Sinkhorn sweeps, <= {MAX_NEWTON} Newton steps) vs ott-jax Sinkhorn (plain, adaptive momentum, Anderson) "
        f"and POT sinkhorn_log, float64, all to L1 marginal error {TOL:.0e}; epsilon = eps_rel "
        f"* mean(C). Baselines capped at {budget:.0f} s each: rows with lower_bound=true did not "
        "converge within the cap, so their time and iteration ratios are lower bounds. ratio = "
        "baseline time / SNS time; iter_ratio = baseline iterations / (SNS Sinkhorn + Newton "
        "iterations); CG matvecs (O(n k) each) are in sns_matvecs. SNS losses (not converged, "
        f"or slower than a converged baseline): {'; '.join(losses) or 'none'}. "
        f"Skipped: {skipped}."
    )
    ns = argparse.Namespace(device=args.device, out=args.out)
    out = _harness.write_results("sns", ns, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
