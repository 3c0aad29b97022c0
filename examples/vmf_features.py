"""von Mises-Fisher fits to high-dimensional normalized features, and a vMF mixture on digits.

Run: python examples/vmf_features.py [--quick] [--out examples/output/vmf_features.png]

Part 1 (synthetic features): unit vectors in d = 2048, 8192 and 32768 dimensions are drawn from
vMF(mu, kappa) with known mu and kappa (``geomjax.distributions.VonMisesFisher.sample``) and
fitted by maximum likelihood (``fit_von_mises_fisher``: mean direction, then Newton on
A_d(kappa) = r with A_d = I_{d/2}/I_{d/2-1} from ``geomjax.special`` in log space). The same
Newton iteration written with ``scipy.special.ive`` breaks down: the scaled Bessel functions
underflow to 0 (or overflow) at these orders, A_d becomes 0/0 and the fit returns NaN.
This is the setting of Plesner, Sorensen & Hauberg, "Accurate Computation of the Logarithm of
Modified Bessel Functions on GPUs", ICS 2024, arXiv:2409.08729 (there: ResNet features).

Part 2 (digits): a small MLP embeds scikit-learn's 8x8 digits (shipped with scikit-learn) onto
the unit sphere S^15, trained with a cosine-softmax loss (normalized embedding against learned
class directions, temperature 10). A 10-component vMF mixture (``fit_vmf_mixture``, EM) is then
fitted to the held-out embeddings, without labels; each cluster's kappa is its concentration, a
per-cluster certainty score: low-kappa clusters are the diffuse, more often impure ones. The
script prints kappa, size and label purity per cluster and saves a figure.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from geomjax.distributions import (
    VonMisesFisher,
    fit_vmf_mixture,
    fit_von_mises_fisher,
    kappa_from_mean_resultant,
    mean_resultant_length,
)

DIMS = (2048, 8192, 32768)


def scipy_kappa_fit(d: int, r: float, n_iter: int = 20) -> float:
    """The same Newton iteration on A_d(kappa) = r with scipy.special.ive (NaN when it fails)."""
    import scipy.special as sps

    kappa = r * (d - r * r) / (1 - r * r)
    with np.errstate(all="ignore"):
        for _ in range(n_iter):
            a = sps.ive(d / 2, kappa) / sps.ive(d / 2 - 1, kappa)
            da = 1 - a * a - (d - 1) * a / kappa
            kappa = kappa - (a - r) / da
            if not np.isfinite(kappa):
                return float("nan")
    return float(kappa)


def synthetic_fits(key, n: int, progress) -> list[dict]:
    """Fit vMFs to n samples in each dimension; kappa chosen so that n samples identify it."""
    rows = []
    for i, d in enumerate(progress(DIMS, "synthetic")):
        kappa = 2.0 * d  # A_d(2d) ~ 0.9: well identified by a few thousand samples
        k_mu, k_x = jax.random.split(jax.random.fold_in(key, i))
        mu = jax.random.normal(k_mu, (d,))
        mu = mu / jnp.linalg.norm(mu)
        x = VonMisesFisher(mu, jnp.asarray(kappa)).sample(k_x, (n,))
        t0 = time.perf_counter()
        fit = fit_von_mises_fisher(x)
        fit.kappa.block_until_ready()
        rows.append(
            {
                "d": d,
                "kappa_true": kappa,
                "kappa_geomjax": float(fit.kappa),
                "converged": bool(fit.converged),
                "cos_mu": float(fit.mu @ mu),
                "kappa_scipy": scipy_kappa_fit(d, float(fit.mean_resultant)),
                "seconds": time.perf_counter() - t0,
            }
        )
    return rows


def inversion_table(kappas=(1.0, 100.0, 1e4, 1e5)) -> list[dict]:
    """Solve A_d(kappa) = r at the exact r = A_d(kappa) (no sampling noise): geomjax vs scipy."""
    rows = []
    for d in DIMS:
        for kappa in kappas:
            r = mean_resultant_length(d, kappa)
            got = float(kappa_from_mean_resultant(d, r)[0])
            rows.append(
                {"d": d, "kappa": kappa, "geomjax": got, "scipy": scipy_kappa_fit(d, float(r))}
            )
    return rows


def mlp_init(key, sizes):
    params = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (a, b)) * math.sqrt(2.0 / a), jnp.zeros(b)))
    return params


def embed(params, x):
    for w, b in params[:-1]:
        x = jax.nn.gelu(x @ w + b)
    w, b = params[-1]
    z = x @ w + b
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def train_embedding(key, x, y, steps: int, dim: int = 16, progress=None):
    """MLP -> unit sphere, cosine-softmax loss against learned class directions."""
    import optax

    k1, k2 = jax.random.split(key)
    params = {
        "mlp": mlp_init(k1, (x.shape[1], 128, dim)),
        "classes": jax.random.normal(k2, (10, dim)),
    }
    opt = optax.adam(3e-3)
    state = opt.init(params)

    def loss_fn(p, xb, yb):
        z = embed(p["mlp"], xb)
        c = p["classes"] / jnp.linalg.norm(p["classes"], axis=-1, keepdims=True)
        logits = 10.0 * z @ c.T
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p, s, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    loss = jnp.nan
    for _ in progress(range(steps), "train"):
        params, state, loss = step(params, state, x, y)
    return params, float(loss)


def digits_mixture(key, steps: int, progress) -> dict:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = jnp.asarray(data.data / 16.0, jnp.float32)
    y = jnp.asarray(data.target)
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), x.shape[0]))
    train, test = perm[:1200], perm[1200:]
    params, loss = train_embedding(
        jax.random.fold_in(key, 1), x[train], y[train], steps, progress=progress
    )
    z = embed(params["mlp"], x[test])
    fit = fit_vmf_mixture(jax.random.fold_in(key, 2), z, 10)
    assign = np.asarray(jnp.argmax(fit.responsibilities, axis=-1))
    labels = np.asarray(y[test])
    clusters = []
    for j in range(10):
        members = labels[assign == j]
        purity = (
            float(np.bincount(members, minlength=10).max() / members.size)
            if members.size
            else float("nan")
        )
        clusters.append({"kappa": float(fit.kappa[j]), "size": int(members.size), "purity": purity})
    return {
        "train_loss": loss,
        "clusters": clusters,
        "converged": bool(fit.converged),
        "n_iters": int(fit.n_iters),
    }


def plot(path: Path, synthetic: list[dict], digits: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ds = [r["d"] for r in synthetic]
    ax1.loglog(ds, [r["kappa_true"] for r in synthetic], "k--", label="true kappa")
    ax1.loglog(ds, [r["kappa_geomjax"] for r in synthetic], "o", label="geomjax fit")
    ax1.set_xlabel("dimension d")
    ax1.set_ylabel("kappa")
    ax1.set_title("vMF fits (scipy.special.ive: NaN)")
    ax1.legend()
    cl = digits["clusters"]
    ax2.scatter([c["kappa"] for c in cl], [c["purity"] for c in cl], s=[4 * c["size"] for c in cl])
    ax2.set_xlabel("cluster kappa (concentration)")
    ax2.set_ylabel("label purity")
    ax2.set_title("digits: vMF mixture on S^15")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="synthetic samples per dimension")
    parser.add_argument("--steps", type=int, default=400, help="embedding training steps")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    default_out = str(Path(__file__).resolve().parent / "output" / "vmf_features.png")
    parser.add_argument("--out", default=default_out, help="path of the saved figure")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.quick:
        args.n, args.steps = 200, 60
    if args.no_progress:

        def progress(it, desc=""):
            return it
    else:
        from tqdm import tqdm

        def progress(it, desc=""):
            return tqdm(it, desc=desc, leave=False)

    key = jax.random.key(args.seed)
    synthetic = synthetic_fits(jax.random.fold_in(key, 0), args.n, progress)
    print(
        f"{'d':>6s} {'true kappa':>11s} {'geomjax':>11s} {'rel err':>8s} {'cos(mu)':>8s} {'scipy ive':>10s}"
    )
    for r in synthetic:
        rel = r["kappa_geomjax"] / r["kappa_true"] - 1
        print(
            f"{r['d']:6d} {r['kappa_true']:11.1f} {r['kappa_geomjax']:11.1f} {rel:8.2%} "
            f"{r['cos_mu']:8.4f} {r['kappa_scipy']:10.4g}"
        )
    inversion = inversion_table()
    print(
        "solving A_d(kappa) = r at the exact r (geomjax vs the same Newton with scipy.special.ive):"
    )
    print(f"{'d':>6s} {'kappa':>9s} {'geomjax':>11s} {'scipy ive':>10s}")
    for r in inversion:
        print(f"{r['d']:6d} {r['kappa']:9.0f} {r['geomjax']:11.4g} {r['scipy']:10.4g}")
    n_fail = sum(not math.isfinite(r["scipy"]) for r in inversion)
    print(f"scipy fails (NaN) in {n_fail} of {len(inversion)} cells; geomjax in none")
    digits = digits_mixture(jax.random.fold_in(key, 1), args.steps, progress)
    print(
        f"digits embedding: train loss {digits['train_loss']:.3f}; EM iterations {digits['n_iters']}"
    )
    print(f"{'cluster':>7s} {'kappa':>9s} {'size':>5s} {'purity':>7s}")
    for j, c in sorted(enumerate(digits["clusters"]), key=lambda t: -t[1]["kappa"]):
        print(f"{j:7d} {c['kappa']:9.1f} {c['size']:5d} {c['purity']:7.2f}")
    plot(Path(args.out), synthetic, digits)
    print(f"saved {args.out}")
    return {"synthetic": synthetic, "inversion": inversion, "digits": digits}


if __name__ == "__main__":
    main()
