"""MACE's symmetric contraction: geomjax against cuEquivariance-jax 0.13.

Case (float32, matmul precision HIGHEST): N nodes with C channels of ``A = 0e + 1o + 2e + 3o``
(L_in = 3), per-node species among S, outputs ``C x (0e + 1o)`` (MACE's L = 1 model) and
``C x 0e`` (the last layer), correlation nu = 3:
  * ``geomjax.equivariant.symmetric_contraction`` (sparse Clebsch-Gordan coupling along
    multisets of irrep blocks, the basis weights mapped onto K independent paths);
  * cuEquivariance's ``descriptors.symmetric_contraction`` evaluated by
    ``cuequivariance_jax.equivariant_polynomial`` with ``method="naive"`` (plain JAX; runs on
    any device) and, on GPUs, ``method="uniform_1d"`` (its CUDA kernel). Its input is the same
    data in its ``ir_mul`` layout (the transposition is not timed); the species weights are
    gathered per node inside the timed function, as ours are.
The two libraries use different bases of the same space of polynomials (tests check that the
spans are equal and the weight counts agree), so outputs are not compared elementwise.
Each timed forward and forward + backward (gradient of sum(out * c), c_k = cos(k), w.r.t. the
features and the weights), jitted, median of ``--repeats`` calls after 2 warm-up calls; the
first call of a fresh ``jax.jit`` (forward + backward) is its own row. Ratio = baseline time /
geomjax time (> 1: geomjax faster).

Sizes: N = 2e4, C = 128, S = 10 by default (the issue's GPU case); ``--quick``: N = 1000,
C = 32, S = 3 (CPU).

Run: python benchmarks/bench_symmetric_contraction.py [--device gpu] [--quick] [--repeats R]
On a shared CPU pin it to one core:
  taskset -c 1 python benchmarks/bench_symmetric_contraction.py --quick --device cpu
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from bench_irreps import first_call  # noqa: E402

from geomjax.equivariant import (  # noqa: E402
    Irreps,
    IrrepsArray,
    symmetric_contraction,
    symmetric_contraction_num_weights,
)

IRREPS_A = "0e + 1o + 2e + 3o"


def loss(out) -> jax.Array:
    c = jnp.cos(jnp.arange(out.shape[-1], dtype=out.dtype))
    return jnp.sum(out * c)


def to_ir_mul(x: np.ndarray, irreps: Irreps, chans: int) -> np.ndarray:
    """``(N, C d)`` in e3nn's mul_ir layout to cuEquivariance's ir_mul layout."""
    parts, start = [], 0
    for _, ir in irreps:
        block = x[:, start : start + chans * ir.dim].reshape(len(x), chans, ir.dim)
        parts.append(np.swapaxes(block, 1, 2).reshape(len(x), -1))
        start += chans * ir.dim
    return np.concatenate(parts, axis=1)


def make_cases(args):
    n, chans, n_species = (1000, 32, 3) if args.quick else (args.nodes, args.channels, 10)
    irreps_x = Irreps([(chans, ir) for _, ir in Irreps(IRREPS_A)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, irreps_x.dim)).astype(np.float32)
    species = rng.integers(0, n_species, n)
    for irreps_out in ("0e + 1o", "0e"):
        n_w = symmetric_contraction_num_weights(IRREPS_A, irreps_out, 3)
        w = rng.standard_normal((n_species, n_w, chans)).astype(np.float32)

        def ours(grad, irreps_out=irreps_out):
            def f(a, ww):
                return symmetric_contraction(
                    IrrepsArray(irreps_x, a), species, ww, irreps_out=irreps_out, correlation=3
                ).array

            g = jax.grad(lambda a, ww: loss(f(a, ww)), argnums=(0, 1))
            return jax.jit(g if grad else f)

        name = (
            f"symmetric contraction {chans}x[{IRREPS_A}] -> {irreps_out} nu=3 N={n} S={n_species}"
        )
        yield name, ours, (jnp.asarray(x), jnp.asarray(w)), irreps_out, n_w, species, chans


def cue_baselines(irreps_out, n_w, species, chans, x):
    """(label, make(grad), inputs) for cuEquivariance's methods available here."""
    try:
        import cuequivariance as cue
        import cuequivariance_jax as cuex
    except Exception as exc:  # noqa: BLE001 - optional baseline
        print(f"skipping cuEquivariance: {type(exc).__name__}: {exc}")
        return []
    poly = cue.descriptors.symmetric_contraction(
        chans * cue.Irreps("O3", IRREPS_A), chans * cue.Irreps("O3", irreps_out), (1, 2, 3)
    )
    assert poly.inputs[0].dim == n_w * chans, (poly.inputs[0].dim, n_w * chans)
    x_cue = jnp.asarray(
        to_ir_mul(np.asarray(x), Irreps([(chans, ir) for _, ir in Irreps(IRREPS_A)]), chans)
    )
    w_cue = jnp.asarray(
        np.random.default_rng(1).standard_normal((int(species.max()) + 1, n_w * chans)), jnp.float32
    )
    irreps_in = chans * cue.Irreps("O3", IRREPS_A)
    methods = ["naive"] + (["uniform_1d"] if jax.default_backend() == "gpu" else [])
    out = []
    for method in methods:

        def make(grad, method=method):
            def f(a, ww):
                xr = cuex.RepArray(irreps_in, a, cue.ir_mul)
                return cuex.equivariant_polynomial(poly, [ww[species], xr], method=method).array

            g = jax.grad(lambda a, ww: loss(f(a, ww)), argnums=(0, 1))
            return jax.jit(g if grad else f)

        out.append((f"cuequivariance-jax {cuex.__version__} {method}", make, (x_cue, w_cue)))
    return out


def main():
    parser = argparse.ArgumentParser(description="symmetric contraction benchmark")
    parser.add_argument("--device", default=None, help="label for the results file (cpu or gpu)")
    parser.add_argument("--out", default=None, help="output JSON path")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU)")
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--channels", type=int, default=128)
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    rows = []
    for name, ours, inputs, irreps_out, n_w, species, chans in make_cases(args):
        fwd, grad = ours(False), ours(True)
        t_first = first_call(lambda ours=ours: ours(True), *inputs)
        t_fwd = _harness.time_fn(lambda: fwd(*inputs), repeats=args.repeats)["median_s"]
        t_grad = _harness.time_fn(lambda: grad(*inputs), repeats=args.repeats)["median_s"]
        for label, theirs, their_inputs in cue_baselines(
            irreps_out, n_w, species, chans, inputs[0]
        ):
            try:
                pfwd, pgrad = theirs(False), theirs(True)
                p_first = first_call(lambda theirs=theirs: theirs(True), *their_inputs)
                p_fwd = _harness.time_fn(lambda: pfwd(*their_inputs), repeats=args.repeats)
                p_grad = _harness.time_fn(lambda: pgrad(*their_inputs), repeats=args.repeats)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory, or no kernel
                print(f"{name} vs {label}: failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            for what, o, t in (
                ("forward", t_fwd, p_fwd["median_s"]),
                ("forward+backward", t_grad, p_grad["median_s"]),
                ("first call fwd+bwd (trace+compile+run)", t_first, p_first),
            ):
                rows.append(
                    {
                        "case": f"{name} {what}",
                        "baseline": label,
                        "geomjax_s": o,
                        "baseline_s": t,
                        "ratio": t / o,
                    }
                )
        print(f"done: {name}", flush=True)
    _harness.print_table(rows)
    notes = (
        "MACE's symmetric contraction, float32, matmul precision HIGHEST: C channels of "
        "A = 0e+1o+2e+3o per node, per-node species weights, correlation 3, outputs 0e+1o and "
        "0e; geomjax against cuEquivariance-jax's symmetric_contraction descriptor (naive JAX "
        "method; uniform_1d CUDA kernel on GPUs). Different bases of the same polynomial space "
        "(spans checked equal in tests), so outputs are not compared elementwise. "
        "forward+backward: gradient w.r.t. features and weights."
    )
    out = _harness.write_results("symmetric_contraction", args, rows, notes=notes)
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
