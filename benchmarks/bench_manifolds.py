"""Batched dist / exp / log on the sphere, the Poincare ball and the hyperboloid.

Baselines, in the same process, whichever import:
  * geoopt (PyTorch; on the GPU machine with CUDA tensors): Sphere, PoincareBall, Lorentz;
  * geomstats (numpy backend; needs numpy < 2.4 for geomstats 2.8): Hypersphere, PoincareBall.
A missing or broken peer is skipped with a printed reason. Before timing, each pair is checked
to agree on the same float32 inputs; geomjax runs jit(vmap(method)).

Run: python benchmarks/bench_manifolds.py [--device gpu] [--out PATH] [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomjax.manifolds import Lorentz, PoincareBall, Sphere  # noqa: E402


def try_import(name):
    try:
        return __import__(name), ""
    except Exception as exc:  # noqa: BLE001 - report any import failure and skip
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def make_data(manifold, key, batch, scale):
    k1, k2, k3 = jax.random.split(key, 3)
    keys = jax.random.split(k1, batch)
    x = jax.vmap(lambda k: manifold.random_point(k, jnp.float32, **scale))(keys)
    y = jax.vmap(lambda k: manifold.random_point(k, jnp.float32, **scale))(
        jax.random.split(k2, batch)
    )
    u = jax.vmap(lambda k, p: 0.1 * manifold.random_tangent(k, p))(jax.random.split(k3, batch), x)
    return x, y, u


def geomjax_ops(manifold):
    return {
        "dist": jax.jit(jax.vmap(manifold.dist)),
        "exp": jax.jit(jax.vmap(manifold.exp)),
        "log": jax.jit(jax.vmap(manifold.log)),
    }


def main():
    args = _harness.parse_args("manifolds")
    jax.config.update("jax_default_matmul_precision", "highest")
    batch = 1000 if args.quick else 100_000
    dim = 16
    torch, why_torch = try_import("torch")
    geoopt, why_geoopt = try_import("geoopt") if torch is not None else (None, why_torch)
    gs_hyper = gs_ball = None
    try:
        from geomstats.geometry.hypersphere import Hypersphere
        from geomstats.geometry.poincare_ball import PoincareBall as GsBall

        gs_hyper, gs_ball = Hypersphere(dim=dim), GsBall(dim=dim)
        why_gs = ""
    except Exception as exc:  # noqa: BLE001
        why_gs = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    dev = "cuda" if (torch is not None and torch.cuda.is_available()) else "cpu"
    for peer, why in (("geoopt", why_geoopt), ("geomstats", why_gs)):
        if why:
            print(f"skipping {peer}: {why}")

    cases = {
        "Sphere": (Sphere(dim), {}),
        "PoincareBall": (PoincareBall(dim, 1.0), {"scale": 0.3}),
        "Lorentz": (Lorentz(dim, 1.0), {"scale": 0.3}),
    }
    rows = []
    for mname, (manifold, scale) in cases.items():
        x, y, u = make_data(manifold, jax.random.key(0), batch, scale)
        ops = geomjax_ops(manifold)
        args_of = {"dist": (x, y), "exp": (x, u), "log": (x, y)}
        peers = {}
        if geoopt is not None:
            gm = {
                "Sphere": geoopt.Sphere(),
                "PoincareBall": geoopt.PoincareBall(c=1.0),
                "Lorentz": geoopt.Lorentz(k=1.0),
            }[mname]
            to_t = lambda a: torch.as_tensor(np.asarray(a), device=dev)  # noqa: E731
            tx, ty, tu = to_t(x), to_t(y), to_t(u)
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

            def timed(fn):
                def run():
                    out = fn()
                    sync()
                    return out

                return run

            peers["geoopt (torch " + dev + ")"] = {
                "dist": timed(lambda: gm.dist(tx, ty)),
                "exp": timed(lambda: gm.expmap(tx, tu)),
                "log": timed(lambda: gm.logmap(tx, ty)),
            }
        gs = {"Sphere": gs_hyper, "PoincareBall": gs_ball}.get(mname)
        if gs is not None:
            nx, ny, nu = (np.asarray(a, np.float64) for a in (x, y, u))
            peers["geomstats (numpy f64)"] = {
                "dist": lambda: gs.metric.dist(nx, ny),
                "exp": lambda: gs.metric.exp(nu, base_point=nx),
                "log": lambda: gs.metric.log(ny, base_point=nx),
            }
        for op, fn in ops.items():
            ours = np.asarray(fn(*args_of[op]), np.float64)
            t_ours = _harness.time_fn(lambda: fn(*args_of[op]), repeats=args.repeats)
            for peer, pops in peers.items():
                theirs = pops[op]()
                theirs = np.asarray(
                    theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else theirs,
                    np.float64,
                )
                err = float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30))
                assert err < 1e-3, (mname, op, peer, err)
                t_peer = _harness.time_fn(pops[op], repeats=max(3, args.repeats // 2), warmup=1)
                rows.append(
                    {
                        "case": f"{mname}({dim}) {op} batch {batch} f32",
                        "baseline": peer,
                        "geomjax_s": t_ours["median_s"],
                        "baseline_s": t_peer["median_s"],
                        "ratio": t_peer["median_s"] / t_ours["median_s"],
                        "max_rel_diff": err,
                    }
                )
    _harness.print_table(rows)
    notes = "geomjax: jit(vmap(method)), float32, one point per call vmapped. Skipped peers: " + (
        ", ".join(f"{p} ({w})" for p, w in (("geoopt", why_geoopt), ("geomstats", why_gs)) if w)
        or "none"
    )
    out = _harness.write_results("manifolds", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
