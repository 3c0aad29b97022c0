"""Augmented covariance + MDM vs plain covariance + MDM on synthetic EEG-like signals.

Run: python examples/mdm_eeg.py [--order 4] [--lag 2] [--out examples/output/mdm_eeg.png]

Each trial is a mixture of rotating (oscillating) autoregressive sources. The classes differ in
the *direction and speed* of the rotations, not in the source power: every class has the same
zero-lag covariance (up to a small power difference in one source pair), so the plain channel
covariance is a weak feature, while the covariance of the delay-embedded signal (the augmented
covariance of Carrara & Papadopoulo, arXiv:2302.04508) contains the lagged cross-covariances that
separate the classes. Both features go through the same minimum-distance-to-mean classifier
(affine-invariant Frechet means per class), trained on one half of the trials and tested on the
other. The figure shows test accuracy against the embedding order (order 1 is the plain
covariance) and the test trials in tangent space at the training mean (2-D PCA).

Sources: ``s_t = A_c s_{t-1} + e_t`` with ``A_c = blockdiag(a R(theta_{c,j}))`` (rotation by
``theta_{c,j}`` damped by ``a``) and ``e_t ~ N(0, (1 - a^2) I)``, started from the stationary law
``N(0, I)``; channels ``x_t = g M s_t + sigma n_t`` with a fixed mixing ``M``, a per-trial gain
``g`` and white sensor noise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from geomjax.manifolds import SPDAffineInvariant, SPDLogEuclidean
from geomjax.spdnet import augmented_covariance, covariance, mdm_fit, mdm_predict, tangent_space

N_PAIRS = 3
DAMPING = 0.95
# Rotation angle (radians per sample) of each source pair, per class.
ANGLES = np.array(
    [
        [0.30, 0.50, 0.20],
        [-0.30, -0.50, 0.20],
        [0.30, -0.50, -0.20],
    ]
)
POWER = np.ones((3, N_PAIRS))
POWER[1, 2] = 1.25  # a weak power difference: the plain covariance is not quite blind


def transition(angles: np.ndarray) -> np.ndarray:
    blocks = np.zeros((2 * len(angles), 2 * len(angles)))
    for j, t in enumerate(angles):
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        blocks[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = DAMPING * rot
    return blocks


def simulate(key, labels: jax.Array, n_times: int, mixing: jax.Array, noise: float) -> jax.Array:
    """Trials ``(len(labels), channels, n_times)``; one key per trial."""
    a_all = jnp.asarray(np.stack([transition(a) for a in ANGLES]), jnp.float32)
    power = jnp.asarray(np.repeat(POWER, 2, axis=1), jnp.float32)
    n_src = 2 * N_PAIRS

    def one(key, label):
        k0, ke, kg, kn = jax.random.split(key, 4)
        s0 = jax.random.normal(k0, (n_src,))
        e = jnp.sqrt(1.0 - DAMPING**2) * jax.random.normal(ke, (n_times, n_src))

        def step(s, e_t):
            s = a_all[label] @ s + e_t
            return s, s

        _, s = jax.lax.scan(step, s0, e)
        gain = jnp.exp(0.1 * jax.random.normal(kg, ()))
        x = gain * mixing @ (power[label][:, None] * s.T)
        return x + noise * jax.random.normal(kn, x.shape)

    keys = jax.random.split(key, labels.shape[0])
    return jax.vmap(one)(keys, labels)


def features(trials: jax.Array, order: int, lag: int) -> jax.Array:
    if order == 1:
        return jax.vmap(lambda x: covariance(x, shrinkage="ledoit_wolf"))(trials)
    return jax.vmap(
        lambda x: augmented_covariance(x, order=order, lag=lag, shrinkage="ledoit_wolf")
    )(trials)


def evaluate(train, y_train, test, y_test, metric_name: str, n_classes: int):
    """Fit MDM on the train matrices; return test accuracy, the test matrices' tangent vectors."""
    n = train.shape[-1]
    metric = SPDAffineInvariant(n) if metric_name == "riemann" else SPDLogEuclidean(n)

    @jax.jit
    def fit_predict(train, y_train, test):
        state = mdm_fit(train, y_train, n_classes, metric=metric, max_iter=20)
        return mdm_predict(state, test, metric=metric), jnp.all(state.converged)

    @jax.jit
    def tangent_vectors(train, test):
        reference = metric.mean(train, max_iter=20).mean
        return jax.vmap(lambda x: tangent_space(x, reference, metric=metric))(test)

    # Two programs, run one after the other: jaxlib 0.10's CPU runtime can deadlock when two
    # independent batched LAPACK loops (here the class means and the reference mean) run
    # concurrently on a 2-thread pool (each waits for pool threads the other one holds).
    pred, converged = jax.block_until_ready(fit_predict(train, y_train, test))
    vecs = tangent_vectors(train, test)
    if not bool(converged):
        print(f"  warning: a class mean did not converge (n = {n})")
    return float(jnp.mean(pred == y_test)), np.asarray(vecs)


def pca2(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(axis=0)
    _, _, vt = np.linalg.svd(v, full_matrices=False)
    return v @ vt[:2].T


def save_figure(path: Path, orders, accuracies, chance, plain_2d, aug_2d, y_test, order) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(orders, accuracies, "o-")
    axes[0].axhline(chance, color="gray", ls="--", label="chance")
    axes[0].set_xlabel("embedding order (1 = plain covariance)")
    axes[0].set_ylabel("test accuracy (MDM)")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_xticks(list(orders))
    axes[0].legend()
    axes[0].set_title("Augmented covariance + MDM")
    for ax, pts, title in (
        (axes[1], plain_2d, "plain covariance"),
        (axes[2], aug_2d, f"augmented, order {order}"),
    ):
        for c in np.unique(y_test):
            ax.scatter(*pts[y_test == c].T, s=12, label=f"class {c}")
        ax.set_title(f"Test trials in tangent space: {title}")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[2].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n-trials", type=int, default=40, help="trials per class (half train, half test)"
    )
    parser.add_argument("--n-times", type=int, default=256, help="samples per trial")
    parser.add_argument(
        "--order", type=int, default=4, help="embedding order of the augmented covariance"
    )
    parser.add_argument("--lag", type=int, default=2, help="embedding lag in samples")
    parser.add_argument("--metric", choices=("riemann", "logeuclid"), default="riemann")
    parser.add_argument("--noise", type=float, default=0.5, help="sensor noise standard deviation")
    parser.add_argument("--seed", type=int, default=0)
    default_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output", "mdm_eeg.png")
    parser.add_argument("--out", default=default_out, help="path of the saved figure")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        from tqdm import tqdm

        progress = (
            (lambda it, desc: it)
            if args.no_progress
            else (lambda it, desc: tqdm(it, desc=desc, leave=False))
        )
    except ImportError:  # examples extra not installed
        progress = lambda it, desc: it  # noqa: E731

    n_classes = ANGLES.shape[0]
    n_channels = 2 * N_PAIRS
    key_mix, key_train, key_test = jax.random.split(jax.random.key(args.seed), 3)
    mixing = jnp.eye(n_channels) + 0.5 * jax.random.normal(key_mix, (n_channels, n_channels))
    n_half = max(args.n_trials // 2, 1)
    y = jnp.repeat(jnp.arange(n_classes, dtype=jnp.int32), n_half)
    train = simulate(key_train, y, args.n_times, mixing, args.noise)
    test = simulate(key_test, y, args.n_times, mixing, args.noise)
    print(
        f"{n_classes} classes, {n_channels} channels, {args.n_times} samples, "
        f"{len(y)} train / {len(y)} test trials, metric={args.metric}"
    )

    orders = range(1, args.order + 1)
    accuracies, vectors = [], {}
    for order in progress(orders, desc="embedding orders"):
        acc, vecs = evaluate(
            features(train, order, args.lag),
            y,
            features(test, order, args.lag),
            y,
            args.metric,
            n_classes,
        )
        accuracies.append(acc)
        vectors[order] = vecs
    plain, augmented = accuracies[0], accuracies[-1]
    print(f"plain covariance + MDM:                         test accuracy {plain:.3f}")
    print(
        f"augmented covariance (order {args.order}, lag {args.lag}) + MDM: test accuracy {augmented:.3f}"
    )
    print("accuracy by order: " + ", ".join(f"{o}: {a:.2f}" for o, a in zip(orders, accuracies)))
    path = save_figure(
        Path(args.out),
        list(orders),
        accuracies,
        1.0 / n_classes,
        pca2(vectors[1]),
        pca2(vectors[args.order]),
        np.asarray(y),
        args.order,
    )
    print(f"Saved figure: {path}")
    return {"plain": plain, "augmented": augmented, "by_order": dict(zip(orders, accuracies))}


if __name__ == "__main__":
    main()
