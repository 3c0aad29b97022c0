"""A short tour of geomjax: what exists, printed step by step, with a saved figure.

Run: python examples/tour.py [--out examples/output]

Sections:
  1. Matrix functions of SPD matrices (geomjax.linalg) and their gradients at the identity,
     where autodiff through ``jnp.linalg.eigh`` returns NaN.
  2. Manifolds (geomjax.manifolds): finite gradients at coincident points, a Frechet mean, SO(3)
     at angle pi, and Riemannian Adam (geomjax.optim) finding an eigenvector on the sphere.
  3. SPD geometry: six metrics on an ill-conditioned pair, Riemannian batch norm.
  4. Curvature (geomjax.curvature): Hessian-vector products, Hutchinson and Lanczos checked
     against the dense Hessian of a small MLP, and the AdaHessian / M-FAC optimizers.
  5. Optimal transport (geomjax.ot): exact 1-D Wasserstein, sliced Wasserstein and its control
     variates, Gaussian closed forms, and Sinkhorn (ott-jax) with a manifold ground cost.
  6. Equivariant layers (geomjax.equivariant): EGNN on a small random graph, spherical harmonics,
     a channelwise tensor product and a steerable message-passing layer, each with its
     equivariance error from geomjax.testing.assert_equivariant.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import geomjax
from geomjax.linalg import expm, logm, powm, solve_lyapunov, sqrtm


def heading(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


def naive_sqrtm(x):
    lam, u = jnp.linalg.eigh(x)
    return (u * jnp.sqrt(lam)[..., None, :]) @ jnp.swapaxes(u, -1, -2)


def section_linalg(out_dir: Path, progress) -> dict:
    heading("1. Matrix functions with stable derivatives (geomjax.linalg)")
    a = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    print("A =\n", np.asarray(a))
    print("sqrtm(A) @ sqrtm(A) == A:", bool(jnp.allclose(sqrtm(a) @ sqrtm(a), a, atol=1e-5)))
    print("expm(logm(A)) == A:      ", bool(jnp.allclose(expm(logm(a)), a, atol=1e-5)))
    print("powm(A, 0.5) == sqrtm(A):", bool(jnp.allclose(powm(a, 0.5), sqrtm(a), atol=1e-5)))
    k = solve_lyapunov(a, jnp.eye(2))
    print(
        "solve_lyapunov: A K + K A == I:", bool(jnp.allclose(a @ k + k @ a, jnp.eye(2), atol=1e-5))
    )

    w = jnp.array([[1.0, 2.0], [2.0, -1.0]])
    loss = lambda f: lambda x: jnp.sum(w * f(x))  # noqa: E731
    eye = jnp.eye(2)
    print("\nGradient of sum(W * sqrtm(X)) at X = I (exact answer W / 2):")
    print("  geomjax    :", np.asarray(jax.grad(loss(sqrtm))(eye)).round(4).tolist())
    print("  naive eigh :", np.asarray(jax.grad(loss(naive_sqrtm))(eye)).round(4).tolist())

    # Gradient error as two eigenvalues merge, against a float64 closed form.
    gaps = np.logspace(-12, 0, 25)
    err_geom, err_naive = [], []
    for gap in progress(gaps, desc="eigenvalue gaps"):
        x = jnp.diag(jnp.array([1.0, 1.0 + gap], jnp.float32))
        lam = np.array([1.0, 1.0 + gap])
        dd = 1.0 / (np.sqrt(lam[0]) + np.sqrt(lam[1]))
        exact = np.asarray(w, np.float64) * np.array([[0.5, dd], [dd, 0.5 / np.sqrt(lam[1])]])
        for fn, errs in ((sqrtm, err_geom), (naive_sqrtm, err_naive)):
            g = np.asarray(jax.grad(loss(fn))(x), np.float64)
            err = np.max(np.abs(g - exact)) / np.max(np.abs(exact))
            errs.append(err if np.isfinite(err) else np.nan)
    print(
        f"  max gradient error over gaps 1e-12..1: geomjax {np.nanmax(err_geom):.1e}, "
        f"naive eigh {np.nanmax(err_naive):.1e} (NaN at {int(np.sum(np.isnan(err_naive)))} gaps)"
    )
    return {"gaps": gaps, "err_geom": err_geom, "err_naive": err_naive}


def section_manifolds(progress) -> dict:
    import optax

    from geomjax.manifolds import SO3, PoincareBall, Sphere, frechet_mean
    from geomjax.optim import riemannian_adam

    heading("2. Manifolds, means and Riemannian optimizers (geomjax.manifolds, geomjax.optim)")
    sphere, ball = Sphere(2), PoincareBall(2, 1.0)
    x = jnp.array([0.0, 0.0, 1.0])
    p = jnp.array([0.3, -0.2])
    print("d/dx dist(x, x) on the sphere:     ", np.asarray(jax.grad(sphere.dist)(x, x)).tolist())
    print("d/dx dist(x, x) in the Poincare ball:", np.asarray(jax.grad(ball.dist)(p, p)).tolist())
    print(
        "d/dc dist in the Poincare ball (learnable curvature):",
        float(jax.grad(lambda c: PoincareBall(2, c).dist(p, -p))(1.0)),
    )

    keys = jax.random.split(jax.random.key(0), 50)
    pts = jax.vmap(lambda k: sphere.exp(x, 0.4 * sphere.random_tangent(k, x)))(keys)
    res = frechet_mean(sphere, pts, max_iter=100, tol=1e-5)
    print(
        f"Frechet mean of 50 points on S^2: {np.asarray(res.mean).round(3).tolist()} "
        f"(converged={bool(res.converged)}, {int(res.n_iters)} iterations, "
        f"|grad|={float(res.grad_norm):.1e})"
    )

    rot = SO3()
    r_pi = jnp.diag(jnp.array([1.0, -1.0, -1.0]))  # rotation by pi about x
    print(
        "SO(3): angle of diag(1,-1,-1) =",
        float(rot.dist(jnp.eye(3), r_pi)),
        "; gradient finite:",
        bool(jnp.all(jnp.isfinite(jax.grad(rot.dist, argnums=1)(jnp.eye(3), r_pi)))),
    )

    a = jnp.diag(jnp.array([3.0, 1.0, 0.2]))
    tx = riemannian_adam(0.05, manifolds=sphere)
    v = jnp.array([1.0, 1.0, 1.0]) / jnp.sqrt(3.0)
    state = tx.init(v)
    rayleigh = lambda v: v @ a @ v  # noqa: E731
    losses = []
    for _ in progress(range(300), desc="riemannian_adam"):
        g = jax.grad(rayleigh)(v)
        updates, state = tx.update(g, state, v)
        v = optax.apply_updates(v, updates)
        losses.append(float(rayleigh(v)))
    print(
        f"Riemannian Adam on min v^T A v, |v| = 1: value {losses[-1]:.4f} (smallest eigenvalue 0.2), "
        f"|v| = {float(jnp.linalg.norm(v)):.6f}"
    )
    return {"rayleigh": losses}


def section_spd() -> None:
    from geomjax import manifolds as M
    from geomjax.spdnet import rbn_init, riemannian_batch_norm

    heading("3. SPD geometry and SPD networks (geomjax.manifolds, geomjax.spdnet)")
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (4, 4)))
    x = (q * jnp.array([1e-5, 1e-2, 1.0, 3.0])) @ q.T  # condition number 3e5, float32
    y = jnp.diag(jnp.array([1e-4, 0.1, 1.0, 2.0]))
    metrics = {
        "affine-invariant": M.SPDAffineInvariant(4),
        "log-Euclidean": M.SPDLogEuclidean(4),
        "log-Cholesky": M.SPDLogCholesky(4),
        "Bures-Wasserstein": M.SPDBuresWasserstein(4),
        "generalized BW (M)": M.SPDGeneralizedBuresWasserstein(
            jnp.diag(jnp.array([1.0, 2.0, 3.0, 4.0]))
        ),
        "power-deformed BW": M.PowerDeformed(M.SPDBuresWasserstein(4), 0.5),
    }
    for name, m in metrics.items():
        g = jax.grad(m.dist)(x, y)
        print(
            f"  {name:<20} d(X, Y) = {float(m.dist(x, y)):8.4f}   gradient finite: {bool(jnp.all(jnp.isfinite(g)))}"
        )
    gbw = lambda mm: M.SPDGeneralizedBuresWasserstein(mm).dist(x, y)  # noqa: E731
    print(
        "  d/dM of the generalized BW distance at M = I (learnable metric), finite:",
        bool(jnp.all(jnp.isfinite(jax.grad(gbw)(jnp.eye(4))))),
    )
    keys = jax.random.split(jax.random.key(2), 16)
    batch = jax.vmap(M.SPDAffineInvariant(4).random_point)(keys)
    out, state = riemannian_batch_norm(batch, rbn_init(4), M.SPDAffineInvariant(4), training=True)
    mean = M.SPDAffineInvariant(4).mean(out).mean
    print(
        f"  Riemannian batch norm (AIM): Frechet mean of the output is I to "
        f"{float(jnp.max(jnp.abs(mean - jnp.eye(4)))):.1e}"
    )
    print(
        "  More: examples/spd_batchnorm.py (SPDNet with AIM / GBWM batch norm under session shift),"
    )
    print("        examples/mdm_eeg.py (augmented covariance + minimum distance to mean).")


def section_curvature() -> None:
    import optax
    from jax.flatten_util import ravel_pytree

    from geomjax.curvature import hutchinson_trace, hvp, top_eigenvalues
    from geomjax.optim import adahessian, mfac

    heading("4. Curvature and second-order optimizers (geomjax.curvature, geomjax.optim)")
    kx, kp = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, (64, 3))
    y = jnp.sin(x @ jnp.array([1.0, -2.0, 0.5]))

    def init(key, dtype):
        k1, k2 = jax.random.split(key)
        return {
            "w1": jax.random.normal(k1, (3, 8), dtype) / jnp.sqrt(3.0),
            "b1": jnp.zeros(8, dtype),
            "w2": jax.random.normal(k2, (8, 1), dtype) / jnp.sqrt(8.0),
            "b2": jnp.zeros(1, dtype),
        }

    def loss(p, x, y):  # a 3-8-1 tanh MLP, mean squared error
        pred = (jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])[:, 0]
        return 0.5 * jnp.mean((pred - y) ** 2)

    with jax.enable_x64(True):  # float64, to compare with the dense Hessian to round-off
        p = init(kp, jnp.float64)
        x64, y64 = x.astype(jnp.float64), y.astype(jnp.float64)
        flat, unravel = ravel_pytree(p)
        n = 20000

        @jax.jit  # one compilation for all the checks (eager float64 ops would compile one by one)
        def checks(p, v, key):
            h = jax.hessian(lambda f: loss(unravel(f), x64, y64))(flat)  # dense 41 x 41 reference
            hv = ravel_pytree(hvp(loss, p, unravel(v), x64, y64)[1])[0]
            # many one-probe Hutchinson estimates: their mean is the trace (unbiased), their
            # variance the exact 2 sum_{i != j} H_ij^2 of Rademacher probes
            one_probe = lambda k: hutchinson_trace(loss, p, k, 1, x64, y64).trace  # noqa: E731
            k_probes, k_lanczos = jax.random.split(key)
            est = jax.vmap(one_probe)(jax.random.split(k_probes, n))
            mvp = lambda u: hvp(loss, p, u, x64, y64)[1]  # noqa: E731
            top = top_eigenvalues(mvp, p, k_lanczos, k=3, n_iter=20).eigenvalues
            return h, hv, est, top

        v = jax.random.normal(jax.random.key(4), flat.shape, jnp.float64)
        h, hv, est, top = (np.asarray(a) for a in checks(p, v, jax.random.key(0)))
        print(
            f"  MLP 3-8-1 ({flat.size} parameters), float64: |hvp(v) - H v| / |H v| = "
            f"{np.linalg.norm(hv - h @ v) / np.linalg.norm(h @ v):.1e}"
        )
        off = h - np.diag(np.diag(h))
        print(
            f"  Hutchinson trace, mean of {n} one-probe estimates: {est.mean():.3f} +- "
            f"{est.std() / np.sqrt(n):.3f} (exact {np.trace(h):.3f}); their variance "
            f"{est.var():.2f} (exact 2 sum_(i!=j) H_ij^2 = {2.0 * np.sum(off**2):.2f})"
        )
        print(f"  top-3 Hessian eigenvalues, Lanczos (20 iterations): {np.round(top, 6).tolist()}")
        print(
            f"                                  dense eigh:         "
            f"{np.round(np.linalg.eigvalsh(h)[::-1][:3], 6).tolist()}"
        )

    p0 = init(kp, jnp.float32)
    finals = {}
    for name, tx in (
        ("optax.adam", optax.adam(0.05)),
        ("adahessian", adahessian(0.3)),
        ("mfac", mfac(0.1, num_grads=16, damping=1e-2)),
    ):

        @jax.jit
        def run(p, tx=tx, name=name):
            def step(carry, _):
                p, state = carry
                if name == "adahessian":  # needs the loss and a key; computes its own gradient
                    u, state = tx.update(
                        None, state, p, loss_fn=loss, key=jax.random.key(7), batch_args=(x, y)
                    )
                else:
                    u, state = tx.update(jax.grad(loss)(p, x, y), state, p)
                return (optax.apply_updates(p, u), state), None

            (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=50)
            return loss(p, x, y)

        finals[name] = float(run(p0))
    print(
        f"  50 full-batch steps from the same start (loss {float(loss(p0, x, y)):.3f}; learning rates from "
        "a short sweep), final loss:"
    )
    print("    " + ", ".join(f"{name} {value:.3f}" for name, value in finals.items()))


def save_figure(out_dir: Path, linalg_data: dict, manifold_data: dict | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    gaps = linalg_data["gaps"]
    naive = np.asarray(linalg_data["err_naive"], dtype=float)
    ax.loglog(gaps, np.maximum(linalg_data["err_geom"], 1e-9), "o-", label="geomjax.linalg.sqrtm")
    ax.loglog(
        gaps,
        np.where(np.isnan(naive), np.nan, np.maximum(naive, 1e-9)),
        "s--",
        label="autodiff through eigh",
    )
    nan_gaps = gaps[np.isnan(naive)]
    if nan_gaps.size:
        ax.scatter(
            nan_gaps, np.full(nan_gaps.shape, 1.0), marker="x", color="red", label="eigh: NaN"
        )
    ax.set_xlabel("eigenvalue gap (float32)")
    ax.set_ylabel("relative gradient error")
    ax.set_title("Gradient of sqrtm near repeated eigenvalues")
    ax.legend()
    if manifold_data is not None:
        ax2.semilogy(np.asarray(manifold_data["rayleigh"]) - 0.2)
        ax2.set_xlabel("step")
        ax2.set_ylabel("v^T A v - lambda_min")
        ax2.set_title("Riemannian Adam on the sphere")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tour.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def section_ot() -> None:
    from geomjax import ot
    from geomjax.manifolds import Sphere

    heading("5. Optimal transport (geomjax.ot)")
    u = jnp.array([0.0, 1.0, 3.0])
    v = jnp.array([5.0, 6.0, 8.0])
    print(
        f"  W_2 between 1-D samples shifted by 5: {float(ot.wasserstein_1d(u, v)):.4f} (exact: 5)"
    )
    kx, ky, ks = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(kx, (500, 3)) * jnp.array([1.0, 2.0, 0.5])
    y = jax.random.normal(ky, (500, 3)) + jnp.array([1.0, 0.0, 0.0])
    keys = jax.random.split(ks, 200)
    mc = jax.vmap(lambda k: ot.sliced_wasserstein(k, x, y, n_projections=16) ** 2)(keys)
    cv = jax.vmap(lambda k: ot.sliced_wasserstein_cv(k, x, y, n_projections=16).sq_value)(keys)
    print(
        f"  SW_2^2 with 16 directions over 200 keys: plain {float(mc.mean()):.4f} +- {float(mc.std()):.4f}, "
        f"control variate {float(cv.mean()):.4f} +- {float(cv.std()):.4f}"
    )
    mx = ot.max_sliced_wasserstein(ks, x, y)
    print(f"  max-sliced W_2 = {float(mx.value):.4f} (converged: {bool(mx.converged)})")
    cov = jnp.diag(jnp.array([1.0, 4.0, 0.25]))
    w2 = ot.gaussian_wasserstein(jnp.zeros(3), cov, jnp.array([1.0, 0.0, 0.0]), jnp.eye(3))
    print(f"  W_2 between the two generating Gaussians (closed form): {float(w2):.4f}")
    g = jax.grad(lambda c: ot.gaussian_wasserstein(jnp.zeros(3), c, jnp.zeros(3), jnp.eye(3)))(
        jnp.eye(3)
    )
    print(f"  its gradient at equal Gaussians is finite: {bool(jnp.all(jnp.isfinite(g)))}")
    sphere = Sphere(3)
    p = jax.vmap(sphere.random_point)(jax.random.split(kx, 64))
    q = jax.vmap(sphere.random_point)(jax.random.split(ky, 64))
    out = jax.jit(lambda p, q: ot.sinkhorn(p, q, epsilon=0.05, cost=sphere))(p, q)
    print(
        f"  Sinkhorn on the sphere (geodesic cost, ott-jax): cost {float(out.cost):.4f}, "
        f"converged {bool(out.converged)} in {int(out.n_iters)} iterations"
    )
    print("  More: examples/sw_gradient_flow.py (point-cloud flows under SW, SW-CV and max-SW).")


def section_equivariant() -> None:
    from geomjax import equivariant as eq
    from geomjax.testing import assert_equivariant

    heading("6. Equivariant layers (geomjax.equivariant)")
    print("  Errors are max relative |f(g.a) - g.f(a)| / |g.f(a)| over random group elements g.")
    n = 6
    kx, kh, kp, ks, kw, kt = jax.random.split(jax.random.key(6), 6)
    x = jax.random.normal(kx, (n, 3))
    senders, receivers = eq.fully_connected_graph(n)

    # EGNN: invariant node features and E(3)-equivariant coordinates.
    h = jax.random.normal(kh, (n, 2))
    params = eq.init_egnn(kp, 2, 16, 2, n_layers=2)
    egnn = jax.jit(lambda h, x, s, r: eq.egnn(params, h, x, s, r))
    err = assert_equivariant(
        egnn,
        jax.random.key(7),
        (h, x, senders, receivers),
        in_kinds=("scalar", "position", "index", "index"),
        out_kinds=("scalar", "position"),
        group="E3",
        permute=True,
    )
    print(
        f"  EGNN (2 layers, {n} nodes, {len(senders)} edges), rotations + reflections + "
        f"translations + node permutations: error {err:.1e}"
    )

    # Spherical harmonics in e3nn's basis: Y_l(R x) = D^l(R) Y_l(x), parity (-1)^l.
    sh_fn = jax.jit(lambda v: eq.spherical_harmonics([0, 1, 2], v, True))
    sh = sh_fn(x)
    print(
        f"  spherical_harmonics(l = 0..2) of {n} directions: irreps {sh.irreps}, shape {sh.shape}"
    )
    print(
        "  l = 1, component normalization, is sqrt(3) (x, y, z) / |x|:",
        bool(
            jnp.allclose(
                sh.array[:, 1:4],
                jnp.sqrt(3.0) * x / jnp.linalg.norm(x, axis=1, keepdims=True),
                atol=1e-5,
            )
        ),
    )
    err = assert_equivariant(
        sh_fn, jax.random.key(8), (x,), in_kinds=("vector",), out_kinds="irreps", group="O3"
    )
    print(f"  spherical harmonics under O(3): error {err:.1e}")

    # Channelwise ("uvu") tensor product of node features with the SH of edge vectors.
    feats = eq.IrrepsArray("4x0e + 4x1o", jax.random.normal(kh, (n, 16)))
    irreps_out, n_w = eq.channelwise_tensor_product_irreps(feats.irreps, sh.irreps)
    w = eq.init_channelwise_tensor_product(kw, feats.irreps, sh.irreps)
    tp_fn = jax.jit(
        lambda f, v: eq.channelwise_tensor_product(f, eq.spherical_harmonics([0, 1, 2], v, True), w)
    )
    err = assert_equivariant(
        tp_fn,
        jax.random.key(9),
        (feats, x),
        in_kinds=("irreps", "vector"),
        out_kinds="irreps",
        group="O3",
    )
    print(
        f"  channelwise tensor product {feats.irreps} x {sh.irreps} -> {irreps_out} "
        f"({n_w} weights): error {err:.1e}"
    )

    # A steerable (NequIP / SEGNN style) message-passing layer: SH of the edge vectors, Bessel
    # radial basis with a smooth cutoff, channelwise tensor product weighted by a radial MLP, gate.
    cfg = eq.SteerableMPConfig("4x0e + 2x1o", "8x0e + 4x1o + 2x2e", cutoff=4.0)
    mp_params = eq.init_steerable_mp(ks, cfg)
    mp = jax.jit(lambda f, x, s, r: eq.steerable_message_passing(mp_params, f, x, s, r, cfg))
    f0 = eq.IrrepsArray(cfg.irreps_in, jax.random.normal(kt, (n, cfg.irreps_in.dim)))
    err = assert_equivariant(
        mp,
        jax.random.key(10),
        (f0, x, senders, receivers),
        in_kinds=("irreps", "position", "index", "index"),
        out_kinds="irreps",
        group="E3",
        permute=True,
    )
    print(
        f"  steerable_message_passing {cfg.irreps_in} -> {cfg.irreps_out}, E(3) + permutations: "
        f"error {err:.1e}"
    )
    print(
        "  More: examples/nbody_egnn.py (EGNN on the N-body data set), examples/tetris.py (a "
        "steerable network\n        tells the 3D Tetris shapes apart and swaps the chiral pair "
        "under inversion)."
    )


def section_metric_learning() -> None:
    from geomjax import metric_learning as ml

    heading("7. Metric learning (geomjax.metric_learning)")
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((8, 16)) * 1.5
    labels = np.repeat(np.arange(8), 32)
    x = jnp.asarray(centers[labels] + rng.standard_normal((256, 16)), jnp.float32)
    y = jnp.asarray(labels)
    print("  Batch losses with pytorch-metric-learning's semantics (masks, no index lists):")
    for name, fn in [
        ("contrastive", ml.contrastive_loss),
        ("triplet (all triplets)", ml.triplet_margin_loss),
        (
            "triplet (batch hard)",
            lambda a, b: ml.triplet_margin_loss(a, b, miner=ml.batch_hard_miner()),
        ),
        ("multi-similarity", ml.multi_similarity_loss),
        ("NT-Xent", ml.ntxent_loss),
        ("SupCon", ml.supcon_loss),
    ]:
        print(f"    {name:24s} {float(jax.jit(fn)(x, y)):.4f}")
    dense = ml.supcon_loss(x, y)
    chunked = ml.supcon_loss(x, y, chunk_size=32)
    print(
        f"  Row-chunked SupCon (chunks of 32 anchors, O(chunk x B) memory): {float(chunked):.4f} "
        f"(dense {float(dense):.4f})"
    )
    m = ml.retrieval_metrics(x, y, k=ml.max_bin_count(labels) - 1)
    print(
        f"  Retrieval of the raw points: Recall@1 {float(m.precision_at_1):.3f}, "
        f"MAP@R {float(m.map_at_r):.3f}, MRR {float(m.mrr):.3f}"
    )
    print(
        "  More: examples/metric_learning.py (an MLP embedding of MNIST-1D on the sphere and in "
        "the Poincare ball)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "output"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    try:
        from tqdm import tqdm

        progress = (
            (lambda it, desc: it)
            if args.no_progress
            else (lambda it, desc: tqdm(it, desc=desc, leave=False))
        )
    except ImportError:  # examples extra not installed
        progress = lambda it, desc: it  # noqa: E731

    print(f"geomjax {geomjax.__version__} on jax {jax.__version__} ({jax.default_backend()})")
    out_dir = Path(args.out)
    linalg_data = section_linalg(out_dir, progress)
    manifold_data = section_manifolds(progress)
    section_spd()
    section_curvature()
    section_ot()
    section_equivariant()
    section_metric_learning()
    print(
        "\nMore: examples/poincare_tree.py (hyperbolic embedding of a tree with Riemannian Adam)."
    )
    print(
        "      examples/second_order_mlp.py (Adam vs AdaHessian vs M-FAC vs normalized Newton) and examples/mfac_pruning.py "
        "(one-shot pruning with M-FAC)."
    )
    path = save_figure(out_dir, linalg_data, manifold_data)
    print(f"\nSaved figure: {path}")


if __name__ == "__main__":
    main()
