"""SO(2) (eSCN) convolution against the channelwise CG convolution with the edge harmonics.

Cases (float32, matmul precision HIGHEST, L in {2, 4, 6}; ``sh(L)`` is ``0e + 1o + ... + L``),
E edges, features ``C x sh(L)`` per edge, edge vectors, per-edge weights:
  * baseline: ``channelwise_tensor_product(x, spherical_harmonics(sh(L), r, True), w)`` with
    outputs filtered to degrees <= L (natural parities), one weight per path and channel and
    edge (the NequIP-style message; the harmonics are part of the timed function);
  * ``so2_convolution`` with the weights mapped by ``channelwise_to_so2_weights`` onto the
    baseline's output irreps (the same operation: outputs and gradients checked to agree first;
    the mapping itself is not timed, a model would predict the SO(2) weights directly);
  * ``so2_convolution`` onto ``C x sh(L)`` (the eSCN layout: paths summed into one copy per
    degree, dense per-m blocks; a different operation with fewer outputs, same baseline).
Each timed forward and forward + backward (gradient of sum(out * c), c_k = cos(k), w.r.t. the
features, the edge vectors and the weights), jitted, median of ``--repeats`` (default 20) calls
after 2 warm-up calls; the first call of a fresh ``jax.jit`` (trace + compile + run of forward +
backward) is its own row. Ratios are baseline time / geomjax SO(2) time (> 1: SO(2) faster).

Sizes: E = 2e4, C = 32 by default (the issue's GPU case); ``--quick``: E = 256 (CPU).

Run: python benchmarks/bench_so2.py [--device gpu] [--out PATH] [--repeats R] [--quick]
On a shared CPU pin it to one core:
  taskset -c 1 python benchmarks/bench_so2.py --quick --device cpu
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from bench_irreps import first_call, rel_diff, sum_sq  # noqa: E402

from geomjax.equivariant import (  # noqa: E402
    Irreps,
    IrrepsArray,
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
    channelwise_to_so2_weights,
    so2_convolution,
    so2_convolution_num_weights,
    spherical_harmonics,
)


def make_cases(args):
    key = jax.random.key(0)
    edges, chans = (256 if args.quick else args.edges), args.channels
    for lmax in args.lmax:
        sh = str(Irreps.spherical_harmonics(lmax))
        irr = str(Irreps("+".join(f"{chans}x{ir}" for _, ir in Irreps(sh))))
        keep = [str(ir) for _, ir in Irreps(sh)]
        _, n_w = channelwise_tensor_product_irreps(irr, sh, filter_ir_out=keep)
        key, k1, k2, k3, k4 = jax.random.split(key, 5)
        x = jax.random.normal(k1, (edges, Irreps(irr).dim))
        r = jax.random.normal(k2, (edges, 3))
        w_cw = jax.random.normal(k3, (edges, n_w))
        w_map, irreps_map = channelwise_to_so2_weights(w_cw, irr, sh, filter_ir_out=keep)
        n_escn = so2_convolution_num_weights(irr, lmax)
        w_escn = jax.random.normal(k4, (edges, n_escn)) / np.sqrt(lmax + 1)

        def jit3(f, grad):
            return jax.jit(
                jax.grad(lambda x, r, w: sum_sq(f(x, r, w)), argnums=(0, 1, 2)) if grad else f
            )

        def cg(grad, irr=irr, sh=sh, keep=keep):
            def f(x, r, w):
                y = spherical_harmonics(sh, r, normalize=True)
                return channelwise_tensor_product(IrrepsArray(irr, x), y, w, filter_ir_out=keep)

            return jit3(f, grad)

        def so2(grad, irr=irr, irreps_out=irreps_map):
            def f(x, r, w):
                return so2_convolution(IrrepsArray(irr, x), r, w, irreps_out=irreps_out)

            return jit3(f, grad)

        def so2_escn(grad, irr=irr, lmax=lmax):
            def f(x, r, w):
                return so2_convolution(IrrepsArray(irr, x), r, w, irreps_out=lmax)

            return jit3(f, grad)

        yield (
            f"SO(2) mapped {chans}x[sh({lmax})] E={edges}",
            so2,
            (x, r, w_map),
            ("geomjax channelwise CG + sh", cg, (x, r, w_cw)),
            True,
        )
        yield (
            f"SO(2) eSCN {chans}x[sh({lmax})]->{chans}x[sh({lmax})] E={edges}",
            so2_escn,
            (x, r, w_escn),
            ("geomjax channelwise CG + sh", cg, (x, r, w_cw)),
            False,
        )


def main():
    parser = argparse.ArgumentParser(description="geomjax SO(2) convolution benchmarks")
    parser.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    parser.add_argument("--out", default=None, help="output JSON path")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="E = 256 (CPU smoke test)")
    parser.add_argument("--edges", type=int, default=20_000)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 6])
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    rows = []
    for name, ours, inputs, (label, theirs, their_inputs), same in make_cases(args):
        fwd, grad = ours(False), ours(True)
        pfwd, pgrad = theirs(False), theirs(True)
        checks = {}
        if same:  # the same operation: outputs and feature/edge gradients agree
            err = rel_diff(fwd(*inputs).array, pfwd(*their_inputs).array)
            g, h = grad(*inputs), pgrad(*their_inputs)
            err_g = max(rel_diff(g[0], h[0]), rel_diff(g[1], h[1]))
            assert max(err, err_g) < 1e-4, (name, err, err_g)
            checks = {"rel_diff": err, "rel_diff_grad": err_g}
        t_first = first_call(lambda ours=ours: ours(True), *inputs)
        p_first = first_call(lambda theirs=theirs: theirs(True), *their_inputs)
        t_fwd = _harness.time_fn(lambda: fwd(*inputs), repeats=args.repeats)["median_s"]
        t_grad = _harness.time_fn(lambda: grad(*inputs), repeats=args.repeats)["median_s"]
        p_fwd = _harness.time_fn(lambda: pfwd(*their_inputs), repeats=args.repeats)["median_s"]
        p_grad = _harness.time_fn(lambda: pgrad(*their_inputs), repeats=args.repeats)["median_s"]
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
    size = "E=256 (quick)" if args.quick else f"E={args.edges}"
    notes = (
        f"SO(2) (eSCN) convolution, float32, matmul precision HIGHEST, C={args.channels}, {size}, "
        "against the channelwise CG tensor product with the edge's spherical harmonics (computed "
        "inside the timed function), outputs filtered to degrees <= L. 'mapped': the same "
        "operation (weights from channelwise_to_so2_weights; outputs and gradients checked to "
        "agree first). 'eSCN': C x sh(L) -> C x sh(L) with dense per-m weights (a different "
        "operation). forward+backward: gradient of sum(out * c), c_k = cos(k), w.r.t. features, "
        "edge vectors and weights. 'first call' rows: the first call of a fresh jax.jit."
    )
    out = _harness.write_results("so2", args, rows, notes=notes)
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
