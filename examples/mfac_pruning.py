r"""One-shot pruning of an MLP with M-FAC: magnitude vs OBS scores vs OBS with the weight correction.

Run: python examples/mfac_pruning.py [--sparsities 0.5,0.7,0.8,0.9] [--out examples/output/mfac_pruning.png]

The MLP of ``examples/second_order_mlp.py`` (64 -> 64 -> 64 -> 10, tanh) is trained briefly with
Adam on scikit-learn's digits. Then its hidden weight matrices (every kernel but the output
layer's) are pruned to a target sparsity in each matrix, without any retraining. The
curvature is the damped empirical Fisher of ``m`` per-example gradients of those weights,

.. math::

    F = \lambda I + \frac1m \sum_{i=1}^m g_i g_i^\top ,

kept as ``geomjax.curvature.MFACInverse`` (one per weight matrix, block-diagonal over chunks of
``--block-size`` coordinates, each chunk with its own ``m``-gradient window; the kernels are
flattened in ``(out, in)`` order, so a 64-block is one neuron's fan-in). ``lambda`` is
``--damping`` times the mean of the diagonal of the empirical Fisher of the layer. Methods:

* ``magnitude``: zero the smallest ``|w_i|``;
* ``OBS scores``: zero the smallest Optimal Brain Surgeon saliencies
  ``rho_i = w_i^2 / (2 [F^{-1}]_ii)`` (``MFACInverse.obs_scores``), no other change;
* ``OBS + correction``: the same choice, and the remaining weights move by the joint OBS
  correction ``delta w = -F^{-1} E_Q (E_Q^T F^{-1} E_Q)^{-1} E_Q^T w`` for the whole set ``Q``
  at once (``MFACInverse.obs_update``), the minimiser of the quadratic model
  ``1/2 dw^T F dw`` subject to ``w_Q + dw_Q = 0``;
* ``OBS + corr., staged``: the last one in stages of ``--stage`` sparsity (0.1, 0.2, ..., the
  target): at each stage the ``m`` gradients are recomputed at the current weights, the scores
  re-ranked, and the weights pruned so far are kept at zero by including them in ``Q``. Still
  one-shot (no training step, only gradients), as WoodFisher's and M-FAC's one-shot results with
  recomputation. One stage of the correction trusts the quadratic model over a large move; at
  high sparsity that model is far off (the table shows it), and staging keeps each move small.

Prints test accuracy and test loss per method and sparsity, and saves a plot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from geomjax.curvature import MFACInverse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from second_order_mlp import MLP, cross_entropy, evaluate, load_digits_split  # noqa: E402

METHODS = ("magnitude", "OBS scores", "OBS + correction", "OBS + corr., staged")


# -- training ------------------------------------------------------------------------------------


def train_mlp(data, args, progress) -> MLP:
    x_train, y_train = jnp.asarray(data[0]), jnp.asarray(data[1])
    model = MLP((x_train.shape[1], *args.hidden, 10), "tanh", rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(cross_entropy)(model, x, y)
        optimizer.update(model, grads)
        return loss

    batches = np.random.default_rng(args.seed + 1)
    for _ in progress(range(args.train_steps), "train (adam)"):
        idx = batches.integers(0, x_train.shape[0], args.batch)
        step(model, optimizer, x_train[idx], y_train[idx])
    return model


# -- pruning -------------------------------------------------------------------------------------


class Pruner:
    """The pruned weights as flat ``(out, in)``-ordered vectors, one per hidden kernel."""

    def __init__(self, model: MLP, data, args):
        self.graphdef, self.params = nnx.split(model, nnx.Param)
        self.layers = list(range(len(model.layers) - 1))  # every kernel but the output layer's
        self.shapes = [model.layers[i].kernel.shape for i in self.layers]
        self.dense = [
            np.asarray(model.layers[i].kernel.get_value()).T.reshape(-1) for i in self.layers
        ]
        self.args = args
        x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
        self.eval_data = (x_train, y_train, x_test, y_test)
        idx = np.random.default_rng(args.seed + 3).choice(
            x_train.shape[0], args.num_grads, replace=False
        )
        self.fisher_x, self.fisher_y = x_train[idx], y_train[idx]

        def loss_of_kernels(flat_kernels, x, y):
            return cross_entropy(self.model_with(flat_kernels), x, y)

        def per_example_grads(flat_kernels, x, y):
            one = lambda xi, yi: jax.grad(loss_of_kernels)(flat_kernels, xi[None], yi[None])  # noqa: E731
            return jax.vmap(one)(x, y)  # list of (m, size) arrays

        self._grads = jax.jit(per_example_grads)
        # One compilation per number k of removed weights (k is static); the kernels of equal
        # size share them, and the staged path reuses those of the one-stage runs.
        self._obs_update = jax.jit(lambda finv, w, idx: finv.obs_update(w, idx))

    def model_with(self, flat_kernels) -> MLP:
        """The trained model with the hidden kernels replaced (works inside a trace too)."""
        params = jax.tree.map(
            lambda a: a, self.params
        )  # fresh Variables, owned by the current trace
        for i, w, shape in zip(self.layers, flat_kernels, self.shapes):
            params["layers"][i]["kernel"].set_value(jnp.reshape(jnp.asarray(w), shape[::-1]).T)
        return nnx.merge(self.graphdef, params)

    def inverses(self, flat_kernels) -> list[MFACInverse]:
        """One block-diagonal M-FAC inverse per kernel, from per-example gradients at ``flat_kernels``."""
        grads = self._grads([jnp.asarray(w) for w in flat_kernels], self.fisher_x, self.fisher_y)
        out = []
        for g in grads:
            damping = self.args.damping * float(
                jnp.mean(g**2)
            )  # relative to the mean Fisher diagonal
            out.append(
                MFACInverse.from_gradients(
                    g, damping, block_size=min(self.args.block_size, g.shape[1])
                )
            )
        return out

    def evaluate(self, flat_kernels) -> dict:
        train_loss, test_loss, acc = evaluate(self.model_with(flat_kernels), *self.eval_data)
        return {
            "train_loss": float(train_loss),
            "test_loss": float(test_loss),
            "test_acc": float(acc),
        }

    @staticmethod
    def lowest(criterion, k: int) -> np.ndarray:
        return np.argsort(np.asarray(criterion), kind="stable")[:k]

    def prune(self, method: str, sparsity: float, finvs: list[MFACInverse]) -> list[np.ndarray]:
        out = []
        for w, finv in zip(self.dense, finvs):
            k = int(round(sparsity * w.size))
            crit = np.abs(w) if method == "magnitude" else finv.obs_scores(jnp.asarray(w))
            idx = self.lowest(crit, k)
            w = w.copy()
            if method == "OBS + correction":
                w = w + np.asarray(self._obs_update(finv, jnp.asarray(w), jnp.asarray(idx))[0])
            w[idx] = 0.0
            out.append(w)
        return out

    def staged(
        self, sparsities: list[float], stage: float, progress
    ) -> dict[float, list[np.ndarray]]:
        """OBS + correction along one path of sparsity levels ``stage, 2 stage, ...`` (and the targets)."""
        top = max(sparsities)
        levels = sorted(
            {round(v, 6) for v in np.arange(stage, top + 1e-9, stage)}
            | {round(s, 6) for s in sparsities}
        )
        weights = [w.copy() for w in self.dense]
        pruned = [np.zeros(0, np.int64) for _ in weights]
        snapshots = {}
        for level in progress(levels, "staged OBS"):
            finvs = self.inverses(weights)  # gradients at the current (pruned, corrected) weights
            for j, (w, finv) in enumerate(zip(weights, finvs)):
                k = int(round(level * w.size))
                scores = np.array(finv.obs_scores(jnp.asarray(w)))
                scores[pruned[j]] = -np.inf  # pruned weights stay in Q, so they stay at zero
                idx = self.lowest(scores, k)
                w = w + np.asarray(self._obs_update(finv, jnp.asarray(w), jnp.asarray(idx))[0])
                w[idx] = 0.0
                weights[j], pruned[j] = w, idx
            if level in {round(s, 6) for s in sparsities}:
                snapshots[level] = [w.copy() for w in weights]
        return {s: snapshots[round(s, 6)] for s in sparsities}


# -- main ----------------------------------------------------------------------------------------


def save_plot(results: dict, dense: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sparsities = sorted(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, marker in zip(METHODS, "osd^"):
        axes[0].plot(
            sparsities,
            [results[s][method]["test_acc"] for s in sparsities],
            marker=marker,
            label=method,
        )
        axes[1].plot(
            sparsities,
            [results[s][method]["test_loss"] for s in sparsities],
            marker=marker,
            label=method,
        )
    axes[0].axhline(dense["test_acc"], color="gray", ls=":", lw=1, label="dense")
    axes[1].axhline(dense["test_loss"], color="gray", ls=":", lw=1, label="dense")
    axes[0].set(
        xlabel="sparsity of the hidden weight matrices",
        ylabel="test accuracy",
        title="test accuracy",
    )
    axes[1].set(
        xlabel="sparsity of the hidden weight matrices",
        ylabel="test loss",
        yscale="log",
        title="test loss",
    )
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("One-shot pruning of an MLP on digits (no retraining)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    floats = lambda s: [float(v) for v in s.split(",")]  # noqa: E731
    parser.add_argument("--sparsities", type=floats, default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument(
        "--hidden", type=lambda s: tuple(int(v) for v in s.split(",")), default=(64, 64)
    )
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument(
        "--num-grads", type=int, default=256, help="m, per-example gradients in the Fisher"
    )
    parser.add_argument(
        "--damping", type=float, default=1e-2, help="relative to the mean Fisher diagonal"
    )
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument(
        "--stage", type=float, default=0.1, help="sparsity increment of the staged method"
    )
    parser.add_argument("--seed", type=int, default=0)
    default_out = str(Path(__file__).resolve().parent / "output" / "mfac_pruning.png")
    parser.add_argument("--out", default=default_out, help="path of the saved figure")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Returns ``{"dense": metrics, "pruned": {sparsity: {method: metrics}}}`` (metrics: test_acc,
    test_loss, train_loss)."""
    args = parse_args(argv)
    if args.no_progress:

        def progress(it, desc):
            return it
    else:
        from tqdm import tqdm

        def progress(it, desc):
            return tqdm(it, desc=desc, leave=False)

    t0 = time.perf_counter()
    data = load_digits_split(args.seed)
    model = train_mlp(data, args, progress)
    pruner = Pruner(model, data, args)
    dense = pruner.evaluate(pruner.dense)
    n_pruned = sum(w.size for w in pruner.dense)
    print(
        f"MLP {'-'.join(map(str, (64, *args.hidden, 10)))} trained with Adam for {args.train_steps} steps: "
        f"test accuracy {dense['test_acc']:.4f}, test loss {dense['test_loss']:.4f}"
    )
    print(
        f"pruning the {len(pruner.layers)} hidden weight matrices ({n_pruned} weights); Fisher from "
        f"m = {args.num_grads} per-example gradients, blocks of {args.block_size}, relative damping {args.damping:g}"
    )

    finvs = pruner.inverses(pruner.dense)
    results = {s: {} for s in args.sparsities}
    for s in progress(args.sparsities, "one-stage"):
        for method in METHODS[:3]:
            results[s][method] = pruner.evaluate(pruner.prune(method, s, finvs))
    for s, weights in pruner.staged(args.sparsities, args.stage, progress).items():
        results[s][METHODS[3]] = pruner.evaluate(weights)

    width = 22
    print("\ntest accuracy / test loss after pruning (no retraining)")
    print(f"{'sparsity':>8} | " + " | ".join(f"{m:>{width}}" for m in METHODS))
    for s in args.sparsities:
        cells = [
            f"{results[s][m]['test_acc']:.4f} / {results[s][m]['test_loss']:.4f}" for m in METHODS
        ]
        print(f"{s:>8.2f} | " + " | ".join(f"{c:>{width}}" for c in cells))
    save_plot(results, dense, args.out)
    print(f"saved {args.out} ({time.perf_counter() - t0:.1f} s)")
    return {"dense": dense, "pruned": results}


if __name__ == "__main__":
    main()
