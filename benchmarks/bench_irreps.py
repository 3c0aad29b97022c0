"""Irreps ops: geomjax.equivariant against e3nn-jax 0.21 (spherical harmonics, tensor products).

Cases (float32, matmul precision HIGHEST, degrees L in {2, 4, 6, 8}; ``sh(L)`` below is the
irreps ``0e + 1o + 2e + ... + L(-1)^L`` of the spherical harmonics up to degree L):
  * spherical harmonics: ``spherical_harmonics(sh(L), x, normalize=True)`` of B vectors
    (component normalization);
  * full tensor product: ``sh(L) x sh(L)`` of B pairs, all paths with output degree <= L
    (``filter_ir_out``), e3nn-jax's ``tensor_product``;
  * channelwise ("uvu") tensor product, the message of NequIP-style layers: C x sh(L) node
    features times the edge ``sh(L)``, one weight per (path, channel) per edge, outputs
    filtered to the irreps of the features; e3nn-jax: ``tensor_product`` then the product with
    the per-edge weights (``IrrepsArray * (E, num_irreps)``), as in MACE-jax / NequIP-jax;
    L in {2, 4, 6} (L = 8 only with ``--channelwise-l8``);
each timed forward and forward + backward (gradient of sum(out * c), c_k = cos(k) over the
output components, w.r.t. every float input, weights included), jitted, after compilation. The
first call of a fresh ``jax.jit`` (forward + backward: trace, compile, run) is its own row
("first call"; the ``*_s`` fields hold its seconds, the table shows them as milliseconds).

Sizes: GPU B = 1e5 (``--batch``), C = 32 (``--channels``); ``--quick``: B = 256, C = 4,
L in {2, 4} (CPU smoke test). Agreement is checked before timing: the same inputs give the
same outputs and input gradients elementwise (both use e3nn's basis and output order; the
channelwise weight layouts differ, so that check uses unit weights).

e3nn-jax is optional (never a geomjax dependency): without it only geomjax times are printed
and no JSON is written.

Run: python benchmarks/bench_irreps.py [--device gpu] [--out PATH] [--repeats R] [--quick]
On a shared CPU pin it to one core:
  taskset -c 1 python benchmarks/bench_irreps.py --quick --device cpu
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomjax.equivariant import (  # noqa: E402
    Irreps,
    IrrepsArray,
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
    full_tensor_product,
    spherical_harmonics,
)


def try_import_e3nn():
    try:
        import e3nn_jax

        return e3nn_jax, ""
    except Exception as exc:  # noqa: BLE001 - report any import failure and skip
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def sh_irreps(lmax: int) -> str:
    return str(Irreps.spherical_harmonics(lmax))


def keep_up_to(lmax: int) -> list[str]:
    return [f"{deg}{p}" for deg in range(lmax + 1) for p in "eo"]


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def first_call(make_fn, *args) -> float:
    """Seconds of the first call of a fresh jit (trace + compile + run)."""
    fn = make_fn()
    t0 = time.perf_counter()
    _harness.block(fn(*args))
    return time.perf_counter() - t0


def sum_sq(out) -> jax.Array:
    """A scalar loss with a dense cotangent: sum(out * c), c_k = cos(k) over the output's last
    axis (a sum of squares would be constant for normalized spherical harmonics)."""
    c = jnp.cos(jnp.arange(out.array.shape[-1], dtype=out.array.dtype))
    return jnp.sum(out.array * c)


def make_cases(args, e3nn):
    """Yield (name, make_ours, make_theirs, inputs, check_inputs) with ``make_*(grad: bool) ->
    jitted fn``; ``check_inputs`` are the inputs of the agreement check."""
    batch, chans = (256, 4) if args.quick else (args.batch, args.channels)
    ls = (2, 4) if args.quick else (2, 4, 6, 8)
    key = jax.random.key(0)
    for lmax in ls:
        key, k1, k2, k3, k4 = jax.random.split(key, 5)
        irr = sh_irreps(lmax)
        keep = keep_up_to(lmax)

        # spherical harmonics
        x = jax.random.normal(k1, (batch, 3))

        def sh_ours(grad, irr=irr):
            f = lambda x: spherical_harmonics(irr, x, True)  # noqa: E731
            return jax.jit(jax.grad(lambda x: sum_sq(f(x))) if grad else f)

        def sh_theirs(grad, irr=irr):
            f = lambda x: e3nn.spherical_harmonics(irr, x, True)  # noqa: E731
            return jax.jit(jax.grad(lambda x: sum_sq(f(x))) if grad else f)

        yield f"spherical harmonics L={lmax} B={batch}", sh_ours, sh_theirs, (x,), (x,)

        # full tensor product
        d = Irreps(irr).dim
        a = jax.random.normal(k2, (batch, d))
        b = jax.random.normal(k3, (batch, d))

        def full_ours(grad, irr=irr, keep=keep):
            def f(a, b):
                return full_tensor_product(
                    IrrepsArray(irr, a), IrrepsArray(irr, b), filter_ir_out=keep
                )

            return jax.jit(jax.grad(lambda a, b: sum_sq(f(a, b)), argnums=(0, 1)) if grad else f)

        def full_theirs(grad, irr=irr, keep=keep):
            def f(a, b):
                return e3nn.tensor_product(
                    e3nn.IrrepsArray(irr, a), e3nn.IrrepsArray(irr, b), filter_ir_out=keep
                )

            return jax.jit(jax.grad(lambda a, b: sum_sq(f(a, b)), argnums=(0, 1)) if grad else f)

        yield (
            f"full TP sh({lmax}) x sh({lmax}), l_out<={lmax} B={batch}",
            full_ours,
            full_theirs,
            (a, b),
            (a, b),
        )

        # channelwise ("uvu") tensor product
        if lmax == 8 and not args.channelwise_l8:
            continue
        irr1 = str(Irreps("+".join(f"{chans}x{ir}" for _, ir in Irreps(irr))))
        keep1 = [str(ir) for _, ir in Irreps(irr1)]
        _, n_w = channelwise_tensor_product_irreps(irr1, irr, filter_ir_out=keep1)
        h = jax.random.normal(k4, (batch, Irreps(irr1).dim))
        w = jax.random.normal(k1, (batch, n_w))
        y = spherical_harmonics(irr, x, True).array

        def cw_ours(grad, irr1=irr1, irr=irr, keep1=keep1):
            def f(h, y, w):
                return channelwise_tensor_product(
                    IrrepsArray(irr1, h), IrrepsArray(irr, y), w, filter_ir_out=keep1
                )

            return jax.jit(
                jax.grad(lambda h, y, w: sum_sq(f(h, y, w)), argnums=(0, 1, 2)) if grad else f
            )

        def cw_theirs(grad, irr1=irr1, irr=irr, keep1=keep1):
            def f(h, y, w):
                # The second input has multiplicity 1, so "uvu" is the full product with one
                # scalar weight per (path, channel), i.e. per output irrep: n_w == num_irreps.
                out = e3nn.tensor_product(
                    e3nn.IrrepsArray(irr1, h), e3nn.IrrepsArray(irr, y), filter_ir_out=keep1
                )
                return out * w

            return jax.jit(
                jax.grad(lambda h, y, w: sum_sq(f(h, y, w)), argnums=(0, 1, 2)) if grad else f
            )

        yield (
            f"channelwise TP {chans}x[sh({lmax})] x sh({lmax}) E={batch}",
            cw_ours,
            cw_theirs,
            (h, y, w),
            # the two weight layouts differ (per path vs per regrouped output irrep): agreement
            # is checked with unit weights, on the outputs and the gradients w.r.t. h and y
            (h, y, jnp.ones_like(w)),
        )


def main():
    parser = argparse.ArgumentParser(description="geomjax irreps benchmarks")
    parser.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    parser.add_argument("--out", default=None, help="output JSON path")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke test)")
    parser.add_argument("--batch", type=int, default=100_000, help="B (vectors, pairs or edges)")
    parser.add_argument("--channels", type=int, default=32, help="C of the channelwise TP")
    parser.add_argument("--channelwise-l8", action="store_true", help="also L = 8 channelwise")
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    e3nn, why = try_import_e3nn()
    if e3nn is None:
        print(f"skipping the e3nn-jax baseline: {why}")
        peer = None
    else:
        peer = f"e3nn-jax {e3nn.__version__}"
    rows = []
    for name, ours, theirs, inputs, check in make_cases(args, e3nn):
        try:
            fwd, grad = ours(False), ours(True)
            t_first = first_call(lambda: ours(True), *inputs)
            t_fwd = _harness.time_fn(lambda: fwd(*inputs), repeats=args.repeats)
            t_grad = _harness.time_fn(lambda: grad(*inputs), repeats=args.repeats)
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory at the largest sizes
            print(f"{name}: geomjax failed: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        if e3nn is None:
            print(
                f"{name}: geomjax forward {1e3 * t_fwd['median_s']:.3f} ms, forward+backward "
                f"{1e3 * t_grad['median_s']:.3f} ms, first call {t_first:.2f} s (no baseline)"
            )
            continue
        try:
            pfwd, pgrad = theirs(False), theirs(True)
            o_ours, o_theirs = fwd(*check), pfwd(*check)
            if str(o_ours.irreps) != str(o_theirs.irreps):
                raise AssertionError(f"irreps differ: {o_ours.irreps} vs {o_theirs.irreps}")
            err = rel_diff(o_ours.array, o_theirs.array)
            g_ours, g_theirs = jax.tree.leaves(grad(*check)), jax.tree.leaves(pgrad(*check))
            n_g = 2 if len(check) == 3 else len(check)  # not d/dw of the channelwise TP (layout)
            err_g = max(rel_diff(g, h) for g, h in zip(g_ours[:n_g], g_theirs[:n_g]))
            assert max(err, err_g) < 1e-4, (name, err, err_g)
            p_first = first_call(lambda: theirs(True), *inputs)
            p_fwd = _harness.time_fn(lambda: pfwd(*inputs), repeats=args.repeats)
            p_grad = _harness.time_fn(lambda: pgrad(*inputs), repeats=args.repeats)
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001
            print(f"{name}: e3nn-jax failed: {type(exc).__name__}: {str(exc)[:200]}")
            rows.append(
                {
                    "case": f"{name} forward",
                    "baseline": f"{peer} (failed)",
                    "geomjax_s": t_fwd["median_s"],
                    "baseline_s": float("nan"),
                    "ratio": float("nan"),
                }
            )
            continue
        checks = {"rel_diff": err, "rel_diff_grad": err_g}
        for what, o, t in (
            ("forward", t_fwd["median_s"], p_fwd["median_s"]),
            ("forward+backward", t_grad["median_s"], p_grad["median_s"]),
            ("first call fwd+bwd (trace+compile+run)", t_first, p_first),
        ):
            rows.append(
                {
                    "case": f"{name} {what}",
                    "baseline": peer,
                    "geomjax_s": o,
                    "baseline_s": t,
                    "ratio": t / o,
                    **checks,
                    **(
                        {"bwd_over_fwd_x": t_grad["median_s"] / t_fwd["median_s"]}
                        if what == "forward+backward"
                        else {}
                    ),
                }
            )
    if not rows:
        print("no rows written: the e3nn-jax baseline is unavailable")
        return
    _harness.print_table(rows)
    size = "quick sizes (B=256, C=4)" if args.quick else f"B={args.batch}, C={args.channels}"
    notes = (
        f"Irreps ops against e3nn-jax, float32, matmul precision HIGHEST, {size}. sh(L) = "
        "0e+1o+...+L; spherical harmonics normalize=True (component); full TP sh(L) x sh(L) "
        "keeping output degrees <= L; channelwise TP: C x sh(L) features times the edge sh(L), "
        "weights (E, num_paths x C), outputs filtered to the feature irreps (e3nn-jax: "
        "tensor_product then the per-irrep weight product). forward+backward: gradient of "
        "sum(out * c), c_k = cos(k) over the output components, w.r.t. every float input; "
        "bwd_over_fwd_x is geomjax's forward+backward / forward time. 'first call' rows time "
        "the first call of a fresh jax.jit (trace + compile + run) of forward+backward, not the "
        "run time. Agreement (rel_diff of outputs and input gradients; unit weights for the "
        "channelwise TP, whose weight layouts differ) checked before timing."
    )
    out = _harness.write_results("irreps", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
