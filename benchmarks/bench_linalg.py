"""geomjax.linalg (sqrtm, invsqrtm, logm) on a batch of SPD matrices, forward and forward+backward.

Baselines, in the same process:
  * scipy.linalg (sqrtm / inv(sqrtm) / logm) looped over the batch in numpy (forward only), the
    choice of a pyriemann-style pipeline;
  * the naive JAX composition ``U f(lam) U^T`` through ``jnp.linalg.eigh`` (what a user writes by
    hand), forward and forward+backward. Its gradient is NaN at repeated eigenvalues; geomjax's is
    not, and the ratio shows what that costs.
Before timing, each pair is checked to agree (forward values; gradients at generic points).

Matmul precision: HIGHEST (set below, recorded in the JSON).

Run: python benchmarks/bench_linalg.py [--device gpu] [--out PATH] [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402

from geomjax.linalg import invsqrtm, logm, sqrtm  # noqa: E402


def naive(f):
    def fn(x):
        lam, u = jnp.linalg.eigh(x)
        return (u * f(lam)[..., None, :]) @ jnp.swapaxes(u, -1, -2)

    return fn


FUNCS = {
    "sqrtm": (sqrtm, naive(jnp.sqrt), lambda a: np.real(sla.sqrtm(a))),
    "invsqrtm": (
        invsqrtm,
        naive(lambda t: 1 / jnp.sqrt(t)),
        lambda a: np.linalg.inv(np.real(sla.sqrtm(a))),
    ),
    "logm": (logm, naive(jnp.log), lambda a: np.real(sla.logm(a))),
}


def random_spd_batch(key, batch, n, dtype):
    g = jax.random.normal(key, (batch, n, n), dtype)
    return g @ jnp.swapaxes(g, -1, -2) / n + 0.5 * jnp.eye(n, dtype=dtype)


def main():
    args = _harness.parse_args("linalg")
    # float32 accuracy needs full-precision matmuls on GPUs (TF32 by default on H100: the
    # agreement check fails at ~4e-4); both geomjax and the naive baseline run under it.
    jax.config.update("jax_default_matmul_precision", "highest")
    batch, n = (64, 8) if args.quick else (1000, 32)
    dtype = jnp.float32
    x = random_spd_batch(jax.random.key(0), batch, n, dtype)
    x_np = np.asarray(x, np.float64)
    w = jax.random.normal(jax.random.key(1), (n, n), dtype)
    rows = []
    for name, (gj, nv, sp) in FUNCS.items():
        fwd_g = jax.jit(gj)
        fwd_n = jax.jit(nv)
        loss_g = jax.jit(jax.value_and_grad(lambda a: jnp.sum(w * gj(a))))
        loss_n = jax.jit(jax.value_and_grad(lambda a: jnp.sum(w * nv(a))))
        # Agreement first.
        ref = np.stack([sp(a) for a in x_np[:16]])
        err_sp = np.max(np.abs(np.asarray(fwd_g(x[:16])) - ref)) / np.max(np.abs(ref))
        err_nv = float(jnp.max(jnp.abs(fwd_g(x) - fwd_n(x))))
        # Gradient reference: the naive composition in float64 (accurate at these generic points).
        with jax.enable_x64(True):
            w64 = jnp.asarray(w, jnp.float64)
            g_ref = np.asarray(jax.grad(lambda a: jnp.sum(w64 * nv(a)))(jnp.asarray(x_np)))
        scale = np.max(np.abs(g_ref))
        err_grad = float(np.max(np.abs(np.asarray(loss_g(x)[1]) - g_ref)) / scale)
        err_grad_naive = float(np.max(np.abs(np.asarray(loss_n(x)[1]) - g_ref)) / scale)
        print(
            f"{name}: forward rel err vs scipy {err_sp:.1e}; float32 gradient rel err vs float64: "
            f"geomjax {err_grad:.1e}, naive eigh {err_grad_naive:.1e}"
        )
        assert err_sp < 1e-4 and err_grad < 1e-3, (name, err_sp, err_nv, err_grad)

        t_g = _harness.time_fn(lambda: fwd_g(x), repeats=args.repeats)
        t_n = _harness.time_fn(lambda: fwd_n(x), repeats=args.repeats)
        t_s = _harness.time_fn(
            lambda: [sp(a) for a in x_np], repeats=max(2, args.repeats // 5), warmup=1
        )
        tb_g = _harness.time_fn(lambda: loss_g(x), repeats=args.repeats)
        tb_n = _harness.time_fn(lambda: loss_n(x), repeats=args.repeats)
        case = f"{name} {batch}x{n}x{n} f32"
        for label, base, tg, tb in [
            ("forward", "scipy.linalg loop (f64)", t_g, t_s),
            ("forward", "naive jnp eigh", t_g, t_n),
            ("fwd+bwd", "naive jnp eigh", tb_g, tb_n),
        ]:
            rows.append(
                {
                    "case": f"{case} {label}",
                    "baseline": base,
                    "geomjax_s": tg["median_s"],
                    "baseline_s": tb["median_s"],
                    "ratio": tb["median_s"] / tg["median_s"],
                    "max_rel_err_vs_scipy": float(err_sp),
                    "max_abs_diff_vs_naive": err_nv,
                    "grad_rel_err_geomjax_f32": err_grad,
                    "grad_rel_err_naive_f32": err_grad_naive,
                }
            )
    # Gradient at the identity: geomjax finite, naive NaN.
    eye = jnp.broadcast_to(jnp.eye(n, dtype=dtype), (4, n, n))
    g_eye = jax.grad(lambda a: jnp.sum(w * sqrtm(a)))(eye)
    n_eye = jax.grad(lambda a: jnp.sum(w * naive(jnp.sqrt)(a)))(eye)
    print(
        f"gradient at the identity: geomjax finite={bool(jnp.all(jnp.isfinite(g_eye)))}, "
        f"naive eigh finite={bool(jnp.all(jnp.isfinite(n_eye)))}"
    )
    _harness.print_table(rows)
    out = _harness.write_results("linalg", args, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
