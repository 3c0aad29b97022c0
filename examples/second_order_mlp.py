"""Adam vs AdaHessian vs M-FAC vs normalized Newton: an MLP on scikit-learn's digits, same steps and batches.

Run: python examples/second_order_mlp.py [--steps 300] [--out examples/output/second_order_mlp.png]

Data: ``sklearn.datasets.load_digits`` (ships with scikit-learn, no download): 1797 grey-level
8x8 images of the digits 0-9, flattened to 64 features and standardized with the training
statistics; 25% of the images are held out for testing.

Model: a Flax NNX MLP 64 -> 64 -> 64 -> 10 (tanh; ``--activation silu`` for SiLU), softmax
cross-entropy. The four optimizers start from the same initialization and see the same
minibatches; each goes through ``nnx.Optimizer``:

* ``optax.adam``;
* ``geomjax.optim.adahessian``: Adam whose second moment is fed by a Hutchinson estimate of the
  Hessian diagonal. It needs the objective as a function of the parameters and a key, passed
  through ``optimizer.update(model, grads, loss_fn=..., key=..., batch_args=(x, y))``; the
  gradient comes out of the same forward-over-reverse pass as the Hessian-vector product, so no
  separate backward pass is run (the ``grads`` argument is ignored);
* ``geomjax.optim.mfac``: SGD preconditioned by the inverse of a damped empirical Fisher over a
  sliding window of the last ``m`` gradients. Its state holds the ``m x d`` window, so the
  training step donates the optimizer state (see ``make_step``);
* ``geomjax.optim.normalized_newton``: the stochastic gradient-normalized Newton method
  (Semenov, Jaggi, Doikov, ICLR 2026): a Gauss-Newton step damped by ``lambda = ||g|| / gamma``
  (a few CG steps), kept only when it passes the paper's acceptance test on the same minibatch;
  the radius ``gamma`` doubles after an accepted step and halves after a rejected one, so there
  is no learning rate. It needs the model and the loss on the outputs separately
  (``model_fn``, ``output_loss_fn``) for the Gauss-Newton products.

Prints the final training loss (full training set) and test accuracy of each optimizer and saves
the loss and accuracy curves. The learning rates are the best of a short sweep at the default
settings (three seeds; Adam 3e-3 / 1e-2 / 2e-2, AdaHessian 0.1 / 0.15 / 0.3, M-FAC 0.02 / 0.05 /
0.1 with damping 3e-3 .. 1e-1 and m = 32 / 64): the chosen ones reach the lowest final loss
without spikes in the second half of training. Normalized Newton has no learning rate; its
settings (three seeds; initial radius 0.3 / 1 / 3, 3 / 5 / 10 / 20 CG steps, largest radius 10 /
1e8, 1 / 2 / 3 trials per step) matter little except the trials: with one trial the radius
settles into alternating accepted and rejected steps, so half the steps do not move; a second
trial at half the radius (Algorithm 1's retry, about 1.5 times the work per step) takes the
final training loss from 2-4e-3 to about 1e-3.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from geomjax.optim import adahessian, mfac, normalized_newton

OPTIMIZERS = ("adam", "adahessian", "mfac", "normalized_newton")


# -- data and model ------------------------------------------------------------------------------


def load_digits_split(seed: int = 0, test_fraction: float = 0.25):
    """``(x_train, y_train, x_test, y_test)``: digits as float32 ``(n, 64)`` standardized features."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm].astype(np.float32) / 16.0, y[perm].astype(np.int32)
    n_test = int(round(test_fraction * len(y)))
    x_test, y_test, x_train, y_train = x[:n_test], y[:n_test], x[n_test:], y[n_test:]
    mean, std = x_train.mean(0), x_train.std(0)
    scale = np.where(std > 1e-3, std, 1.0)  # a few border pixels are always 0
    return (x_train - mean) / scale, y_train, (x_test - mean) / scale, y_test


class MLP(nnx.Module):
    """``features[0] -> features[1] -> ... -> features[-1]`` with an activation between layers."""

    def __init__(self, features: tuple[int, ...], activation: str = "tanh", *, rngs: nnx.Rngs):
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(features[:-1], features[1:])]
        )
        self.activation = activation

    def __call__(self, x):
        act = jnp.tanh if self.activation == "tanh" else nnx.silu
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


def cross_entropy(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def evaluate(model, x_train, y_train, x_test, y_test):
    """(full training loss, test loss, test accuracy)."""
    logits = model(x_test)
    test_loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_test).mean()
    return (
        cross_entropy(model, x_train, y_train),
        test_loss,
        jnp.mean(jnp.argmax(logits, -1) == y_test),
    )


# -- training steps ------------------------------------------------------------------------------


def make_tx(name: str, args) -> optax.GradientTransformation:
    if name == "adam":
        return optax.adam(args.lr_adam)
    if name == "adahessian":
        return adahessian(args.lr_adahessian)
    if name == "mfac":
        return mfac(args.lr_mfac, num_grads=args.mfac_num_grads, damping=args.mfac_damping)
    if name == "normalized_newton":
        return normalized_newton(
            gamma0=args.nn_gamma0,
            gamma_max=args.nn_gamma_max,
            cg_steps=args.nn_cg_steps,
            max_trials=args.nn_max_trials,
        )
    raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")


def make_step(name: str):
    """A jitted ``step(model, optimizer, x, y, key) -> minibatch loss`` updating both in place.

    The optimizer state is donated (``donate_argnames=("optimizer",)``): XLA may then write the
    new state into the old buffers. This matters for M-FAC, whose state holds the ``m x d``
    window of past gradients: the step overwrites one row of it (``.at[j].set``), which is in
    place only when the state is donated; without donation every step copies the whole window.
    (For Adam and AdaHessian it just saves an allocation.)
    """
    if name == "adahessian":

        @nnx.jit(donate_argnames=("optimizer",))
        def step(model, optimizer, x, y, key):
            # AdaHessian differentiates twice through the loss, so it needs the loss as a function
            # of the parameter state (what nnx.Optimizer hands to the transformation).
            graphdef, params = nnx.split(model, nnx.Param)

            def loss_fn(p, x, y):
                return cross_entropy(nnx.merge(graphdef, p), x, y)

            loss = loss_fn(
                params, x, y
            )  # for the report only; the optimizer computes its own gradient
            # `params` stands in for the (ignored) gradient argument. The same key may be passed
            # every step: the transformation folds in its step count, so probes never repeat.
            optimizer.update(model, params, loss_fn=loss_fn, key=key, batch_args=(x, y))
            return loss

        return step

    if name == "normalized_newton":

        @nnx.jit(donate_argnames=("optimizer",))
        def step(model, optimizer, x, y, key):
            del key
            # Gauss-Newton products need the model and the loss on its outputs separately:
            # loss = output_loss_fn(model_fn(params, x), y).
            graphdef, params = nnx.split(model, nnx.Param)

            def model_fn(p, x):
                return nnx.merge(graphdef, p)(x)

            def output_loss_fn(logits, y):
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

            # `params` stands in for the (ignored) gradient argument; the optimizer evaluates the
            # loss and gradient itself (it needs both for its acceptance test).
            optimizer.update(
                model, params, model_fn=model_fn, output_loss_fn=output_loss_fn, batch_args=(x, y)
            )
            return optimizer.opt_state[0].loss[
                ...
            ]  # the minibatch loss before the step, from the state

        return step

    @nnx.jit(donate_argnames=("optimizer",))
    def step(model, optimizer, x, y, key):
        del key
        loss, grads = nnx.value_and_grad(cross_entropy)(model, x, y)
        optimizer.update(model, grads)
        return loss

    return step


def train(name: str, data, args, progress) -> dict:
    x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
    features = (x_train.shape[1], *args.hidden, 10)
    model = MLP(
        features, args.activation, rngs=nnx.Rngs(args.seed)
    )  # same init for every optimizer
    optimizer = nnx.Optimizer(model, make_tx(name, args), wrt=nnx.Param)
    step = make_step(name)
    batches = np.random.default_rng(args.seed + 1)  # same minibatches for every optimizer
    key = jax.random.key(args.seed + 2)
    history = {"step": [], "train_loss": [], "test_acc": [], "batch_loss": []}

    def record(t):
        train_loss, _, acc = evaluate(model, x_train, y_train, x_test, y_test)
        history["step"].append(t)
        history["train_loss"].append(float(train_loss))
        history["test_acc"].append(float(acc))

    record(0)
    t0 = time.perf_counter()
    t_first = None
    for t in progress(range(1, args.steps + 1), name):
        idx = batches.integers(0, x_train.shape[0], args.batch)
        loss = step(model, optimizer, x_train[idx], y_train[idx], key)
        history["batch_loss"].append(loss)
        if t == 1:
            jax.block_until_ready(loss)
            t_first = time.perf_counter()
        if t % args.eval_every == 0 or t == args.steps:
            record(t)
    jax.block_until_ready(loss)
    t_end = time.perf_counter()
    history["batch_loss"] = [float(v) for v in history["batch_loss"]]
    train_loss, test_loss, acc = evaluate(model, x_train, y_train, x_test, y_test)
    history.update(
        final_train_loss=float(train_loss),
        final_test_loss=float(test_loss),
        final_test_acc=float(acc),
        seconds=t_end - t0,
        ms_per_step=1e3 * (t_end - t_first) / max(args.steps - 1, 1),
    )
    return history


# -- main ----------------------------------------------------------------------------------------


def save_plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, hist in results.items():
        axes[0].plot(hist["step"], hist["train_loss"], label=name)
        axes[1].plot(hist["step"], hist["test_acc"], label=name)
    axes[0].set(
        xlabel="step", ylabel="training loss (full set)", yscale="log", title="training loss"
    )
    axes[1].set(xlabel="step", ylabel="accuracy", title="test accuracy", ylim=(0, 1.02))
    for ax in axes:
        ax.legend()
    fig.suptitle(
        "MLP on digits: Adam, AdaHessian, M-FAC, normalized Newton (same steps and batches)"
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--hidden",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        default=(64, 64),
        help="hidden widths, comma separated",
    )
    parser.add_argument("--activation", choices=("tanh", "silu"), default="tanh")
    parser.add_argument("--lr-adam", type=float, default=1e-2)
    parser.add_argument("--lr-adahessian", type=float, default=0.15)
    parser.add_argument("--lr-mfac", type=float, default=5e-2)
    parser.add_argument("--mfac-num-grads", type=int, default=32, help="M-FAC window length m")
    parser.add_argument("--mfac-damping", type=float, default=3e-2)
    parser.add_argument(
        "--nn-gamma0", type=float, default=1.0, help="normalized Newton: initial radius"
    )
    parser.add_argument(
        "--nn-gamma-max", type=float, default=1e8, help="normalized Newton: largest radius"
    )
    parser.add_argument(
        "--nn-cg-steps", type=int, default=10, help="normalized Newton: CG steps per solve"
    )
    parser.add_argument(
        "--nn-max-trials",
        type=int,
        default=2,
        help="normalized Newton: trials per step (a rejected trial is retried with half the radius)",
    )
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    default_out = str(Path(__file__).resolve().parent / "output" / "second_order_mlp.png")
    parser.add_argument("--out", default=default_out, help="path of the saved figure")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Train with each optimizer; returns ``{name: history}`` (curves and ``final_*`` numbers)."""
    args = parse_args(argv)
    if args.no_progress:

        def progress(it, desc):
            return it
    else:
        from tqdm import tqdm

        def progress(it, desc):
            return tqdm(it, desc=f"train {desc}", leave=False)

    data = load_digits_split(args.seed)
    n_params = sum(a * b + b for a, b in zip((64, *args.hidden), (*args.hidden, 10)))
    print(
        f"digits: {len(data[1])} training / {len(data[3])} test images; MLP "
        f"{'-'.join(map(str, (64, *args.hidden, 10)))} ({args.activation}, {n_params} parameters); "
        f"{args.steps} steps of batch {args.batch}"
    )
    results = {}
    names = args.optimizers.split(",")
    width = max(map(len, names))
    for name in names:
        results[name] = hist = train(name, data, args, progress)
        print(
            f"{name:>{width}}: final train loss {hist['final_train_loss']:.4f}  test loss "
            f"{hist['final_test_loss']:.4f}  test accuracy {hist['final_test_acc']:.4f}  "
            f"({hist['ms_per_step']:.2f} ms/step with evaluation, after compilation; {hist['seconds']:.1f} s)"
        )
    save_plot(results, args.out)
    print(f"saved {args.out}")
    return results


if __name__ == "__main__":
    main()
