"""SPD geometry: batched affine-invariant and Bures-Wasserstein distances, the affine-invariant mean.

Cases (geomjax runs jit(vmap(dist)) and jit(mean)):
  * AIM distance between B pairs of 32x32 SPD matrices;
  * Bures-Wasserstein distance between the same B pairs;
  * affine-invariant (Karcher) mean of K 16x16 SPD matrices, every method run to a Riemannian
    gradient norm <= 1e-10 (float64) so they do the same job;
  * a floor row per case: the batched ``jnp.linalg.eigh`` the computation cannot avoid (one eigh per
    pair for AIM, two for BW, one batched eigh of the K points per Newton step plus the final evaluation),
    timed in the same process. Its ``ratio`` is eigh time / geomjax time, so the GPU goal "within
    2x of the batched eigh" reads as ratio >= 0.5.

Peers (CPU only, numpy float64, imported only on CPU; a missing or broken one is skipped with the
reason): pyriemann (distance_riemann, distance_wasserstein, mean_riemann) and geomstats
(SPDAffineMetric, SPDBuresWassersteinMetric, FrechetMean; geomstats 2.8 needs numpy < 2.4).
Before timing, each peer is checked to agree with geomjax on the same inputs, and on every device
the distances of the first 64 pairs are checked against a float64 numpy/scipy reference.

CPU: float64 (the peers' dtype), B = K = 1000. GPU: float32 with matmul precision HIGHEST, at
B = K = 1000 and at 100x (100000), geomjax and the eigh floor only.

Run: python benchmarks/bench_spd.py [--device gpu] [--out PATH] [--repeats R] [--quick]

On a shared CPU pin the run to one core, both sides single-threaded, for stable ratios (recorded
in the notes; XLA_FLAGS=intra_op_parallelism_threads=1 is not a substitute: with it, XLA:CPU
runs sometimes deadlocked in block_until_ready here):
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_spd.py --device cpu
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomjax.manifolds import SPDAffineInvariant, SPDBuresWasserstein  # noqa: E402

MEAN_TOL = {"float64": 1e-10, "float32": 1e-5}


def short_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def load_peers() -> tuple[dict, dict]:
    """The peer functions that import, and the reason for each that does not."""
    peers, why = {}, {}
    try:
        try:
            from pyriemann.geometry.distance import distance_riemann, distance_wasserstein
            from pyriemann.geometry.mean import mean_riemann
        except ImportError:  # pyriemann < 0.12
            from pyriemann.utils.distance import distance_riemann, distance_wasserstein
            from pyriemann.utils.mean import mean_riemann
        peers["pyriemann"] = {
            "aim_dist": distance_riemann,
            "bw_dist": distance_wasserstein,
            "aim_mean": lambda pts, tol: mean_riemann(pts, tol=tol, maxiter=100),
        }
    except Exception as exc:  # noqa: BLE001 - report any import failure and skip
        why["pyriemann"] = short_reason(exc)
    try:
        from geomstats.geometry.spd_matrices import (
            SPDAffineMetric,
            SPDBuresWassersteinMetric,
            SPDMatrices,
        )
        from geomstats.learning.frechet_mean import FrechetMean

        def space(n, metric):
            s = SPDMatrices(n, equip=False)
            s.equip_with_metric(metric)
            return s

        def gs_mean(pts, tol):
            sp = space(pts.shape[-1], SPDAffineMetric)
            # GradientDescent stops when |mean log|^2 <= epsilon * dim: gradient norm <= tol.
            est = FrechetMean(sp).set(max_iter=100, epsilon=tol**2 / sp.dim)
            return est.fit(pts).estimate_

        peers["geomstats"] = {
            "aim_dist": lambda x, y: space(x.shape[-1], SPDAffineMetric).metric.dist(x, y),
            "bw_dist": lambda x, y: space(x.shape[-1], SPDBuresWassersteinMetric).metric.dist(x, y),
            "aim_mean": gs_mean,
        }
    except Exception as exc:  # noqa: BLE001
        why["geomstats"] = short_reason(exc)
    return peers, why


def random_spd(key, count: int, n: int, dtype) -> jax.Array:
    """``count`` SPD matrices ``Q diag(exp(g)) Q^T`` (SPDAffineInvariant.random_point)."""
    m = SPDAffineInvariant(n)
    return jax.jit(jax.vmap(lambda k: m.random_point(k, dtype)))(jax.random.split(key, count))


def rel_diff(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert np.all(np.isfinite(ours)), "NaN in geomjax output"
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def reference_dist(tag: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float64 numpy/scipy reference distances (AIM: generalized eigenvalues; BW: trace formula)."""
    import scipy.linalg as sla

    out = []
    for a, b in zip(x, y):
        if tag == "aim":
            out.append(np.sqrt(np.sum(np.log(sla.eigvalsh(b, a)) ** 2)))
        else:
            lam, u = np.linalg.eigh(a)
            ra = (u * np.sqrt(lam)) @ u.T
            fid = np.sum(np.sqrt(np.maximum(np.linalg.eigvalsh(ra @ b @ ra), 0.0)))
            out.append(np.sqrt(max(np.trace(a) + np.trace(b) - 2.0 * fid, 0.0)))
    return np.asarray(out)


def row(case, baseline, t_ours, t_base, **checks):
    return {
        "case": case,
        "baseline": baseline,
        "geomjax_s": t_ours,
        "baseline_s": t_base,
        "ratio": t_base / t_ours,
        **checks,
    }


def bench_distances(args, batch, n, dtype, peers, rows):
    dname = jnp.dtype(dtype).name
    key_x, key_y = jax.random.split(jax.random.key(batch))
    x, y = random_spd(key_x, batch, n, dtype), random_spd(key_y, batch, n, dtype)
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    eigh = jax.jit(jnp.linalg.eigh)
    xy = jnp.concatenate([x, y])
    floors = {  # the eigh each distance needs: one per pair (AIM), two per pair (BW)
        "aim": (lambda: eigh(x), f"floor: jnp.linalg.eigh {batch}x{n}x{n}"),
        "bw": (lambda: eigh(xy), f"floor: jnp.linalg.eigh {2 * batch}x{n}x{n}"),
    }
    for tag, label, manifold in (
        ("aim", "AIM", SPDAffineInvariant(n)),
        ("bw", "BW", SPDBuresWasserstein(n)),
    ):
        fn = jax.jit(jax.vmap(manifold.dist))
        ours = np.asarray(fn(x, y), np.float64)
        t_ours = _harness.time_fn(lambda: fn(x, y), repeats=args.repeats)["median_s"]
        case = f"{label} dist {batch} pairs {n}x{n} {dname}"
        # Agreement with a float64 reference on the first pairs (every device, peers or not).
        err_ref = rel_diff(ours[:64], reference_dist(tag, xn[:64], yn[:64]))
        assert err_ref < (1e-8 if dname == "float64" else 1e-3), (case, err_ref)
        floor_fn, floor_label = floors[tag]
        t_floor = _harness.time_fn(floor_fn, repeats=args.repeats)["median_s"]
        rows.append(
            row(
                case,
                floor_label,
                t_ours,
                t_floor,
                geomjax_over_eigh=t_ours / t_floor,
                max_rel_err_vs_f64_ref=err_ref,
            )
        )
        for peer, ops in peers.items():
            fn_peer = ops[f"{tag}_dist"]
            err = rel_diff(ours, fn_peer(xn, yn))
            assert err < (1e-8 if dname == "float64" else 1e-4), (case, peer, err)
            t_peer = _harness.time_fn(
                lambda: fn_peer(xn, yn), repeats=max(3, args.repeats // 2), warmup=1
            )
            rows.append(
                row(case, f"{peer} (numpy f64)", t_ours, t_peer["median_s"], max_rel_diff=err)
            )


def bench_mean(args, k, n, dtype, peers, rows):
    dname = jnp.dtype(dtype).name
    tol = MEAN_TOL[dname]
    pts = random_spd(jax.random.key(k + 1), k, n, dtype)
    pts_np = np.asarray(pts, np.float64)
    manifold = SPDAffineInvariant(n)
    fn = jax.jit(lambda p: manifold.mean(p, tol=tol))
    res = fn(pts)
    n_iters = int(res.n_iters)
    converged = bool(res.converged)
    if dname == "float64":
        assert converged, ("geomjax mean did not converge", float(res.grad_norm))
    t_ours = _harness.time_fn(lambda: fn(pts), repeats=args.repeats)["median_s"]
    ours = np.asarray(res.mean, np.float64)
    case = f"AIM mean of {k} {n}x{n} {dname} (grad norm <= {tol:.0e})"
    eigh = jax.jit(jnp.linalg.eigh)
    t_eigh = _harness.time_fn(lambda: eigh(pts), repeats=args.repeats)["median_s"]
    # One batched eigh of the K (whitened) points per Newton step, plus the final evaluation.
    rows.append(
        row(
            case,
            f"floor: (n_iters+1) x jnp.linalg.eigh {k}x{n}x{n}",
            t_ours,
            (n_iters + 1) * t_eigh,
            geomjax_over_eigh=t_ours / ((n_iters + 1) * t_eigh),
            geomjax_n_iters=n_iters,
            converged=converged,
        )
    )
    for peer, ops in peers.items():
        theirs = ops["aim_mean"](pts_np, tol)
        err = rel_diff(ours, theirs)
        assert err < 1e-6, (case, peer, err)
        t_peer = _harness.time_fn(
            lambda: ops["aim_mean"](pts_np, tol), repeats=max(3, args.repeats // 4), warmup=1
        )
        rows.append(
            row(
                case,
                f"{peer} (numpy f64)",
                t_ours,
                t_peer["median_s"],
                max_rel_diff=err,
                geomjax_n_iters=n_iters,
            )
        )


def main():
    args = _harness.parse_args("spd")
    on_gpu = (args.device or jax.default_backend()) == "gpu"
    if on_gpu:
        # float32 accuracy needs full-precision matmuls (TF32 by default on H100).
        jax.config.update("jax_default_matmul_precision", "highest")
        peers, why = (
            {},
            {
                "pyriemann": "CPU-only peer, not run on gpu",
                "geomstats": "CPU-only peer, not run on gpu",
            },
        )
        dtype = jnp.float32
        sizes = [(1000, 1000)] if args.quick else [(1000, 1000), (100_000, 100_000)]
    else:
        peers, why = load_peers()
        dtype = jnp.float64
        sizes = [(100, 100)] if args.quick else [(1000, 1000)]
    for peer, reason in why.items():
        print(f"skipping {peer}: {reason}")
    dist_n, mean_n = (8, 8) if args.quick else (32, 16)
    rows = []
    with jax.enable_x64(dtype == jnp.float64):
        for batch, k in sizes:
            bench_distances(args, batch, dist_n, dtype, peers, rows)
            bench_mean(args, k, mean_n, dtype, peers, rows)
    _harness.print_table(rows)
    notes = (
        f"geomjax: jit(vmap(dist)) and jit(mean), {jnp.dtype(dtype).name}"
        f"{', matmul precision HIGHEST' if on_gpu else ''}; peers in numpy float64. "
        "Floor rows: baseline = the batched jnp.linalg.eigh the computation needs (AIM dist: one "
        "eigh per pair; BW dist: two; mean: one batched eigh of the points per Newton step plus "
        "the final evaluation, i.e. (n_iters+1) x the measured eigh time); their ratio is eigh/geomjax, so "
        "'within 2x of eigh' means ratio >= 0.5. Means: every method run to Riemannian gradient "
        f"norm <= {MEAN_TOL[jnp.dtype(dtype).name]:.0e} (pyriemann tol, geomstats epsilon = tol^2/dim). "
        "Skipped peers: " + (", ".join(f"{p} ({w})" for p, w in why.items()) or "none") + "."
    )
    if not on_gpu:
        threads = {
            v: os.environ.get(v) for v in ("XLA_FLAGS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        }
        settings = [f"{k}={v}" for k, v in threads.items() if v]
        if hasattr(os, "sched_getaffinity"):
            settings.append(
                f"CPU affinity {len(os.sched_getaffinity(0))} of {os.cpu_count()} cores"
            )
        notes += f" Threads: {', '.join(settings) or 'defaults'}."
    out = _harness.write_results("spd", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
