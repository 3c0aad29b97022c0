"""Fast tensor products: geomjax's Gaunt tensor product against its CG product and e3nn-jax's grid.

Cases (float32, matmul precision HIGHEST, L in {2, 4, 6, 8}; ``sh(L)`` is the irreps
``0e + 1o + 2e + ... + L(-1)^L``), B pairs of ``sh(L) x sh(L)``, outputs up to degree L:
  * ``gaunt_tensor_product(x1, x2, lmax_out=L)`` (the exact sphere grid,
    ``ceil((3L+1)/2) x (3L+1)`` points) against
      - ``full_tensor_product(x1, x2, filter_ir_out=<l <= L, both parities>)`` (every CG path:
        a different, richer operation; the comparison of the issue),
      - e3nn-jax 0.21's S2-grid recipe: ``to_s2grid`` of both inputs (Gauss-Legendre,
        ``normalization="integral"``, the same grid, ``res_alpha`` odd as its FFT needs),
        their product, ``from_s2grid`` (FFT along the longitudes, its default) — the same
        operation, checked elementwise against ours first;
  * ``gaunt_tensor_product(..., method="dense")``, ``odd_paths="cg"`` (the Gaunt paths plus
    the CG paths with l1 + l2 + l3 odd, evaluated densely) and ``odd_paths="grid"`` (the odd
    paths from the Poisson bracket on the same grid) against the CG product (which has the
    same paths as the two completed variants, with other constants);
  * message passing, L <= 6: ``C x sh(L)`` features times the edge ``sh(L)``, the Gaunt
    product (channels broadcast) times one weight per output copy and edge, against
    ``channelwise_tensor_product`` (one weight per path and channel and edge, outputs filtered
    to the feature irreps); C = 32 (``--channels``; 4 with ``--quick``).
Each timed forward and forward + backward (gradient of sum(out * c), c_k = cos(k), w.r.t.
both inputs), jitted, median of ``--repeats`` (default 20) calls after 2 warm-up calls; the
first call of a fresh ``jax.jit`` (trace + compile + run of forward + backward) is its own row.
Ratios are baseline time / geomjax time (> 1: geomjax faster).

Sizes: B = 1e4 by default (``--batch``; the Price of Freedom's JAX benchmark); ``--quick``:
B = 256 and L in {2, 4} (CPU smoke test). e3nn-jax is optional (rows skipped without it).

Run: python benchmarks/bench_fast_tp.py [--device gpu] [--out PATH] [--repeats R] [--quick]
On a shared CPU pin it to one core:
  taskset -c 1 python benchmarks/bench_fast_tp.py --quick --device cpu
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from bench_irreps import first_call, rel_diff, sum_sq, try_import_e3nn  # noqa: E402

from geomjax.equivariant import (  # noqa: E402
    Irreps,
    IrrepsArray,
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
    full_tensor_product,
    gaunt_tensor_product,
)


def exact_grid(lmax: int) -> tuple[int, int]:
    """The exact grid of the Gaunt product of two sh(L) onto degrees <= L."""
    s = 3 * lmax
    return (s + 2) // 2, s + 1


def make_cases(args, e3nn):
    """Yield (name, make_ours, baselines, inputs) with ``make_*(grad: bool) -> jitted fn`` and
    ``baselines`` a list of (label, make_theirs, same_operation, their_inputs or None)."""
    batch = 256 if args.quick else args.batch
    ls = (2, 4) if args.quick else (2, 4, 6, 8)
    key = jax.random.key(0)
    for lmax in ls:
        key, k1, k2 = jax.random.split(key, 3)
        irr = str(Irreps.spherical_harmonics(lmax))
        d = Irreps(irr).dim
        a = jax.random.normal(k1, (batch, d))
        b = jax.random.normal(k2, (batch, d))
        keep = [f"{deg}{p}" for deg in range(lmax + 1) for p in "eo"]
        n_lat, n_lon = exact_grid(lmax)

        def jit(f, grad):
            return jax.jit(jax.grad(lambda a, b: sum_sq(f(a, b)), argnums=(0, 1)) if grad else f)

        def gaunt(grad, irr=irr, lmax=lmax, **kw):
            def f(a, b):
                return gaunt_tensor_product(
                    IrrepsArray(irr, a), IrrepsArray(irr, b), lmax_out=lmax, **kw
                )

            return jit(f, grad)

        def cg(grad, irr=irr, keep=keep):
            def f(a, b):
                return full_tensor_product(
                    IrrepsArray(irr, a), IrrepsArray(irr, b), filter_ir_out=keep
                )

            return jit(f, grad)

        baselines = [("geomjax full CG TP", cg, False, None)]
        if e3nn is not None:

            def s2grid(grad, irr=irr, lmax=lmax, n_lat=n_lat, n_lon=n_lon, fft=True):
                res_alpha = n_lon + (n_lon % 2 == 0)  # e3nn's FFT needs an odd count

                def f(a, b):
                    kw = dict(quadrature="gausslegendre", normalization="integral", fft=fft)
                    f1 = e3nn.to_s2grid(e3nn.IrrepsArray(irr, a), n_lat, res_alpha, **kw)
                    f2 = e3nn.to_s2grid(e3nn.IrrepsArray(irr, b), n_lat, res_alpha, **kw)
                    return e3nn.from_s2grid(
                        f1 * f2,
                        e3nn.Irreps(irr),
                        normalization="integral",
                        lmax_in=2 * lmax,
                        fft=fft,
                    )

                return jit(f, grad)

            baselines.append((f"e3nn-jax {e3nn.__version__} S2 grid (fft)", s2grid, True, None))
            baselines.append(
                (
                    f"e3nn-jax {e3nn.__version__} S2 grid (no fft)",
                    lambda grad, s2grid=s2grid: s2grid(grad, fft=False),
                    True,
                    None,
                )
            )
        yield f"Gaunt grid sh({lmax})^2 l<={lmax} B={batch}", gaunt, baselines, (a, b)
        dense = lambda grad, gaunt=gaunt: gaunt(grad, method="dense")  # noqa: E731
        yield f"Gaunt dense sh({lmax})^2 l<={lmax} B={batch}", dense, baselines[:1], (a, b)
        odd = lambda grad, gaunt=gaunt: gaunt(grad, odd_paths="cg")  # noqa: E731
        yield f"Gaunt+odd CG sh({lmax})^2 l<={lmax} B={batch}", odd, baselines[:1], (a, b)
        bracket = lambda grad, gaunt=gaunt: gaunt(grad, odd_paths="grid")  # noqa: E731
        yield f"Gaunt+bracket sh({lmax})^2 l<={lmax} B={batch}", bracket, baselines[:1], (a, b)

        # message passing: C x sh(L) features times the edge sh(L), one weight per output
        # copy and edge (Gaunt) against the channelwise CG product (one weight per path and
        # channel; every path, outputs filtered to the feature irreps)
        if lmax > 6:
            continue
        chans = 4 if args.quick else args.channels
        irr1 = str(Irreps("+".join(f"{chans}x{ir}" for _, ir in Irreps(irr))))
        keep1 = [str(ir) for _, ir in Irreps(irr1)]
        n_out = Irreps(irr1).num_irreps
        _, n_w = channelwise_tensor_product_irreps(irr1, irr, filter_ir_out=keep1)
        key, k3, k4 = jax.random.split(key, 3)
        h = jax.random.normal(k3, (batch, Irreps(irr1).dim))
        w_g = jax.random.normal(k4, (batch, n_out))
        w_c = jax.random.normal(k4, (batch, n_w))

        def jit3(f, grad):
            return jax.jit(
                jax.grad(lambda h, y, w: sum_sq(f(h, y, w)), argnums=(0, 1, 2)) if grad else f
            )

        def cw_gaunt(grad, irr1=irr1, irr=irr, lmax=lmax, n_out=n_out):
            def f(h, y, w):
                out = gaunt_tensor_product(IrrepsArray(irr1, h), IrrepsArray(irr, y), lmax_out=lmax)
                return out * IrrepsArray(f"{n_out}x0e", w)

            return jit3(f, grad)

        def cw_cg(grad, irr1=irr1, irr=irr, keep1=keep1):
            def f(h, y, w):
                return channelwise_tensor_product(
                    IrrepsArray(irr1, h), IrrepsArray(irr, y), w, filter_ir_out=keep1
                )

            return jit3(f, grad)

        yield (
            f"Gaunt channelwise {chans}x[sh({lmax})] x sh({lmax}) E={batch}",
            cw_gaunt,
            [("geomjax channelwise CG TP", cw_cg, False, (h, b, w_c))],
            (h, b, w_g),
        )


def main():
    parser = argparse.ArgumentParser(description="geomjax fast tensor product benchmarks")
    parser.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    parser.add_argument("--out", default=None, help="output JSON path")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke test)")
    parser.add_argument("--batch", type=int, default=10_000, help="B pairs")
    parser.add_argument("--channels", type=int, default=32, help="C of the channelwise case")
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    e3nn, why = try_import_e3nn()
    if e3nn is None:
        print(f"skipping the e3nn-jax baseline: {why}")
    rows = []
    for name, ours, baselines, inputs in make_cases(args, e3nn):
        fwd, grad = ours(False), ours(True)
        t_first = first_call(lambda ours=ours: ours(True), *inputs)
        t_fwd = _harness.time_fn(lambda: fwd(*inputs), repeats=args.repeats)["median_s"]
        t_grad = _harness.time_fn(lambda: grad(*inputs), repeats=args.repeats)["median_s"]
        for label, theirs, same, their_inputs in baselines:
            their_inputs = inputs if their_inputs is None else their_inputs
            try:
                pfwd, pgrad = theirs(False), theirs(True)
                checks = {}
                if same:  # the same operation: outputs and input gradients agree
                    err = rel_diff(fwd(*inputs).array, pfwd(*inputs).array)
                    err_g = max(rel_diff(g, h) for g, h in zip(grad(*inputs), pgrad(*inputs)))
                    assert max(err, err_g) < 1e-4, (name, label, err, err_g)
                    checks = {"rel_diff": err, "rel_diff_grad": err_g}
                p_first = first_call(lambda theirs=theirs: theirs(True), *their_inputs)
                p_fwd = _harness.time_fn(lambda: pfwd(*their_inputs), repeats=args.repeats)[
                    "median_s"
                ]
                p_grad = _harness.time_fn(lambda: pgrad(*their_inputs), repeats=args.repeats)[
                    "median_s"
                ]
            except AssertionError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory at the largest sizes
                print(f"{name} vs {label}: failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            for what, o, t in (
                ("forward", t_fwd, p_fwd),
                ("forward+backward", t_grad, p_grad),
                ("first call fwd+bwd (trace+compile+run)", t_first, p_first),
            ):
                rows.append(
                    {
                        "case": f"{name} {what}",
                        "baseline": label,
                        "geomjax_s": o,
                        "baseline_s": t,
                        "ratio": t / o,
                        **checks,
                    }
                )
        print(f"done: {name}", flush=True)
    _harness.print_table(rows)
    size = "quick sizes (B=256)" if args.quick else f"B={args.batch}"
    notes = (
        f"Gaunt tensor product (exact S2 grid, dense, and with the odd CG paths) of sh(L) x "
        f"sh(L) onto degrees <= L, float32, matmul precision HIGHEST, {size}, against geomjax's "
        "full CG tensor product (every path with output degree <= L, both parities: a richer "
        "operation) and e3nn-jax's to_s2grid/product/from_s2grid recipe on the same grid (the "
        "same operation; outputs and input gradients checked to agree first). forward+backward: "
        "gradient of sum(out * c), c_k = cos(k), w.r.t. both inputs. 'first call' rows: the "
        "first call of a fresh jax.jit (trace + compile + run) of forward+backward."
    )
    out = _harness.write_results("fast_tp", args, rows, notes=notes)
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
