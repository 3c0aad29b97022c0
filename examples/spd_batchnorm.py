"""SPDNet on synthetic EEG-like covariances with session shift: no RBN vs AIM-RBN vs GBWM-RBN.

Run: python examples/spd_batchnorm.py [--epochs 25] [--out examples/output/spd_batchnorm.png]

Data (made here, no download): trials are ill-conditioned SPD covariances of ``n`` channels
(condition numbers around 1e5) whose class is coded by the log-power of a few directions, seen
through a session-specific mixing: trial ``X = A_s C^{1/2} W C^{1/2} A_s^T`` with ``C`` the class
covariance, ``W`` a Wishart sample around the identity (trial noise) and ``A_s`` a random
invertible matrix per session (electrode shift / impedance change). Training uses sessions
``0 .. S-1``; the test session is a new one.

Model: BiMap(n -> m) -> ReEig -> [Riemannian batch norm] -> LogEig -> Linear, trained with
``geomjax.optim.riemannian_adam`` (the BiMap weight stays on the Stiefel manifold, the batch-norm
bias and the GBW metric matrix ``M`` stay SPD). Batches hold one session each, and the batch-norm
variants evaluate the test session with its own batch statistics (the domain-specific batch norm
of Kobler et al., NeurIPS 2022): that re-centring is what removes the session shift. The three
variants:

* ``none``: no batch norm;
* ``aim``: affine-invariant RBN (SPDBN / SPDDSMBN);
* ``gbwm``: generalized Bures-Wasserstein RBN with a learnable metric matrix ``M`` and power
  deformation ``theta`` (GBWBN, Wang et al., CVPR 2025).

Prints the three test accuracies and saves the learning curves.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from geomjax.nn import BiMap, LogEig, ReEig, SPDBatchNorm, manifold_tree
from geomjax.optim import riemannian_adam

N_CLASSES = 3


# -- data ----------------------------------------------------------------------------------------


def _random_orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def make_data(seed: int, n: int, n_sessions: int, per_class: int, trial_dof: int, shift: float):
    """Trials ``(sessions, trials, n, n)`` (float32), labels ``(sessions, trials)``."""
    rng = np.random.default_rng(seed)
    q = _random_orthogonal(rng, n)
    base = np.linspace(-9.0, 2.5, n)  # log-spectrum: condition number e^11.5 ~ 1e5
    log_spectra = np.stack([base.copy() for _ in range(N_CLASSES)])
    for c in range(N_CLASSES):  # class code: +-0.7 log-power in two of the middle directions
        log_spectra[c, n // 2 - 1 + c] += 0.7
        log_spectra[c, (n // 2 + 2 + c) % n] -= 0.7
    roots = [(q * np.exp(0.5 * s)) @ q.T for s in log_spectra]
    xs, ys = [], []
    for _ in range(n_sessions + 1):
        a = np.eye(n) + shift * rng.normal(size=(n, n)) / np.sqrt(n)  # session mixing
        trials, labels = [], []
        for c in range(N_CLASSES):
            for _ in range(per_class):
                z = rng.normal(size=(n, trial_dof))
                w = z @ z.T / trial_dof
                x = a @ roots[c] @ w @ roots[c] @ a.T
                trials.append(0.5 * (x + x.T))
                labels.append(c)
        perm = rng.permutation(len(labels))
        xs.append(np.stack(trials)[perm])
        ys.append(np.array(labels)[perm])
    return np.stack(xs).astype(np.float32), np.stack(ys)


# -- model ---------------------------------------------------------------------------------------


class SPDNet(nnx.Module):
    def __init__(self, n: int, m: int, norm: str, *, rngs: nnx.Rngs):
        self.bimap = BiMap(n, m, rngs=rngs)
        self.reeig = ReEig(1e-4)
        if norm == "aim":
            self.bn = SPDBatchNorm(m, metric="aim")
        elif norm == "gbwm":
            self.bn = SPDBatchNorm(m, metric="gbw", theta=0.5, scale_init=0.5)
        else:
            self.bn = None
        self.logeig = LogEig(vectorize=True)
        self.head = nnx.Linear(m * (m + 1) // 2, N_CLASSES, rngs=rngs)

    def __call__(self, x):
        # Scale-normalize each trial by its trace (units of the recording), then the SPDNet.
        x = x / (jnp.trace(x, axis1=-2, axis2=-1)[:, None, None] / x.shape[-1])
        h = self.reeig(self.bimap(x))
        if self.bn is not None:
            h = self.bn(h)
        return self.head(self.logeig(h))


def loss_fn(model, x, y):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


@nnx.jit
def train_step(model, optimizer, x, y):
    (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def predict_adapted(model, x):
    """Logits for one whole session; batch-norm layers use that session's statistics."""
    return model(x)


def accuracy(model, x, y) -> float:
    """Accuracy on a session; a batch-norm model re-centres with the session's own statistics
    (training mode on a throw-away copy, so the running statistics of ``model`` are untouched)."""
    if model.bn is not None:
        model = nnx.clone(model)
        model.train()
    return float(jnp.mean(jnp.argmax(predict_adapted(model, jnp.asarray(x)), -1) == jnp.asarray(y)))


def train(norm: str, data, args, progress) -> dict:
    xs, ys = data
    n_train = xs.shape[0] - 1
    model = SPDNet(xs.shape[-1], args.m, norm, rngs=nnx.Rngs(args.seed))
    tx = riemannian_adam(args.lr, manifolds=manifold_tree(model))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    rng = np.random.default_rng(args.seed + 1)
    batches_per_session = xs.shape[1] // args.batch
    history = {"loss": [], "test_acc": []}
    for _ in progress(range(args.epochs), norm):
        order = [(s, b) for s in range(n_train) for b in range(batches_per_session)]
        rng.shuffle(order)
        losses = []
        for s, b in order:
            sl = slice(b * args.batch, (b + 1) * args.batch)
            losses.append(
                float(train_step(model, optimizer, jnp.asarray(xs[s, sl]), jnp.asarray(ys[s, sl])))
            )
        history["loss"].append(float(np.mean(losses)))
        history["test_acc"].append(accuracy(model, xs[-1], ys[-1]))
    history["train_acc"] = float(np.mean([accuracy(model, xs[s], ys[s]) for s in range(n_train)]))
    return history


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=12, help="channels")
    parser.add_argument("--m", type=int, default=6, help="BiMap output size")
    parser.add_argument(
        "--sessions", type=int, default=4, help="training sessions (plus one test session)"
    )
    parser.add_argument("--per-class", type=int, default=32, help="trials per class and session")
    parser.add_argument(
        "--trial-dof", type=int, default=40, help="samples per trial covariance (Wishart dof)"
    )
    parser.add_argument("--shift", type=float, default=0.6, help="size of the session mixing")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="none,aim,gbwm")
    default_out = str(Path(__file__).resolve().parent / "output" / "spd_batchnorm.png")
    parser.add_argument("--out", default=default_out, help="path of the saved figure")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if args.no_progress:

        def progress(it, desc):
            return it
    else:
        from tqdm import tqdm

        def progress(it, desc):
            return tqdm(it, desc=f"train {desc}", leave=False)

    data = make_data(args.seed, args.n, args.sessions, args.per_class, args.trial_dof, args.shift)
    cond = np.linalg.cond(data[0].reshape(-1, args.n, args.n).astype(np.float64))
    print(
        f"{data[0].shape[0] - 1} training sessions + 1 test session, {data[0].shape[1]} trials each, "
        f"{args.n} channels; median condition number {np.median(cond):.1e}"
    )
    results = {}
    for norm in args.variants.split(","):
        t0 = time.perf_counter()
        hist = train(norm, data, args, progress)
        results[norm] = hist
        print(
            f"{norm:>5}: test-session accuracy {hist['test_acc'][-1]:.3f}  "
            f"(train sessions {hist['train_acc']:.3f}, final loss {hist['loss'][-1]:.3f}, "
            f"{time.perf_counter() - t0:.0f} s)"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for norm, hist in results.items():
        axes[0].plot(hist["loss"], label=norm)
        axes[1].plot(hist["test_acc"], label=norm)
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    axes[1].set(
        xlabel="epoch", ylabel="accuracy", title="test session (unseen shift)", ylim=(0, 1.02)
    )
    axes[1].axhline(1 / N_CLASSES, color="gray", lw=0.8, ls=":")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"saved {args.out}")
    return {norm: hist["test_acc"][-1] for norm, hist in results.items()}


if __name__ == "__main__":
    main()
