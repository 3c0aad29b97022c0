"""Gradient-normalized Newton with exact and approximate Hessians on logistic and softmax regression.

Run: python examples/gns_logistic.py [--problems logistic,softmax] [--out examples/output/gns_logistic.png]

Solver: ``geomjax.optim.gradient_normalized_newton`` (Algorithm 1 of Semenov, Jaggi, Doikov,
"Gradient-Normalized Smoothness for Optimization with Approximate Hessians", ICLR 2026,
arXiv:2506.13710): ``x+ = x - (H + lambda I)^-1 g`` with ``lambda = ||g|| / gamma``, accepted when
``f(x) - f(x+) >= ||grad f(x+)||^2 / (8 lambda)``; the radius ``gamma`` doubles after an accepted
step and halves after a rejected trial. Every trial is one linear solve and one value+gradient
evaluation. Everything runs in float64 (``jax.enable_x64``).

Problems (scikit-learn's bundled data, no download):

* ``logistic``: binary logistic regression on ``load_breast_cancer`` (569 x 30, standardized,
  plus an intercept: n = 31), ``f(w) = mean_i log(1 + exp(-y_i a_i.w)) + ridge/2 |w|^2`` with
  ``ridge = 1e-4`` (condition number of the Hessian at the optimum about 1e3);
* ``softmax``: multiclass softmax regression on ``load_digits`` (1797 images, 10 classes),
  the 8x8 images 2x2 average-pooled to 4x4 (``--digits-pool 1`` keeps 8x8: n = 650, where the
  dense n x n work of every step makes the approximate variants far slower), standardized, plus an intercept: n =
  17 x 10 = 170, ``ridge = 1e-3``.

Methods:

* ``gnn-exact``: the exact Hessian (``hessian="exact"``);
* ``gnn-gauss_newton``: ``model_fn(w) = {"logits": A w, "w": w}`` and ``loss_fn`` the mean
  cross-entropy of the logits plus the ridge of ``w``: for these (linear) models the generalized
  Gauss-Newton matrix equals the Hessian, so this variant follows ``gnn-exact`` step by step;
* ``gnn-fisher``: the empirical Fisher ``(1/m) sum_i g_i g_i^T`` of the per-example losses
  ``l_i(w) = CE_i(w) + ridge/2 |w|^2`` (``per_example_fn``, ``f = mean l_i``). The official code
  (github.com/epfml/grad-norm-smooth) has no logistic-regression problem: its "Fisher term" is
  the rank-one ``(p-2)||u||^(p-4) (J^T u)(J^T u)^T`` of ``f = ||u(x)||^p / p``, which has no
  counterpart here, so the solver's own empirical Fisher is used;
* ``gnn-diagonal``: the diagonal of the Hessian; ``gnn-none``: H = 0, a normalized gradient step
  of length ``gamma`` with the same radius search;
* ``gd``: gradient descent with step ``1/L``, ``L = lambda_max(A^T A)/(4m) + ridge`` (binary;
  ``/(2m)`` for softmax) -- a global bound, far above the curvature near the optimum;
* ``lbfgs``: ``optax.lbfgs()`` (memory 10, zoom linesearch) in optax's documented loop
  (``optax.value_and_grad_from_state`` + ``update(..., value=, grad=, value_fn=)``);
* ``cubic``: cubic-regularized Newton (Nesterov & Polyak, "Cubic regularization of Newton method
  and its global performance", Math. Program. 108, 2006) with the adaptive constant of the
  official code: a trial ``s = argmin g.s + s.H s/2 + M |s|^3/6`` is accepted when
  ``f(x+s) <= f(x) + model(s)``, then ``M`` halves, otherwise ``M`` doubles; each subproblem is
  solved on one eigendecomposition of ``H`` per step by a 1-D root find on ``r = |s|``
  (``brentq`` on ``|(H + M r/2 I)^-1 g| - r``), counted as one linear solve per trial.

``f*`` comes from a damped Newton solve (NumPy loop on jitted ``jax.hessian`` and gradient,
Armijo backtracking) run until the gradient norm stops decreasing (about 1e-17 here). Prints a
table per problem: outer iterations, linear solves (= trials), function and gradient evaluations
spent until the suboptimality first drops below ``--target`` (1e-10), the final suboptimality
and the fitted linear rate (least-squares slope of log10 suboptimality per iteration over the
second half of the run before it drops below 1e-12). Saves the suboptimality curves (vs
iterations and vs linear solves; GD and L-BFGS make no linear solves and are drawn against
value+gradient evaluations there) and a .json beside them.

Measured (2 shared CPU cores, defaults, about 40 s in all), iterations / linear solves to
``f - f* < 1e-10``:

=================  ======================  ==================
method             logistic (ridge 1e-4)   softmax (ridge 1e-3)
=================  ======================  ==================
gnn-exact          11 / 13                 9 / 9
gnn-gauss_newton   11 / 13                 9 / 9
gnn-fisher         870 / 1754              86 / 185
gnn-diagonal       3048 / 6112             697 / 1410
gnn-none           3114 / 6244             391 / 798
gd (1/L)           not in 20000            7552
lbfgs              106 (117 f/g evals)     58 (62 f/g evals)
cubic              16 / 16                 12 / 12
=================  ======================  ==================

The exact and Gauss-Newton variants are superlinear; the others converge linearly, with fitted
rates (log10 suboptimality per step) of about -0.007 (Fisher), -0.002 (diagonal, none) on the
logistic problem and -0.08, -0.009, -0.02 on the softmax one. The diagonal and H = 0 variants
need about 3100 steps on the logistic problem, which is why ``--max-steps`` defaults to 5000
there (2000 for softmax). Runs of the approximate variants often end with status 5 ("converged to
the rounding of f") instead of reaching ``--tol``: by then ``f - f*`` is ~1e-15, where the
acceptance test compares two values of ``f`` equal to rounding, as the solver's docstring says;
the table reads the first iterate below ``--target``, not the stop.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

# LAPACK (eigh, solve) runs on OpenBLAS; its threads spin against XLA's on a small shared CPU and
# made a 170 x 170 eigh ~100x slower (0.24 s instead of 2 ms). Set before NumPy / jaxlib load it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.flatten_util import ravel_pytree

from geomjax.optim import gradient_normalized_newton

GNN_HESSIANS = ("exact", "gauss_newton", "fisher", "diagonal", "none")
METHODS = tuple(f"gnn-{h}" for h in GNN_HESSIANS) + ("gd", "lbfgs", "cubic")
PROBLEMS = ("logistic", "softmax")
RATE_FLOOR = 1e-12  # the linear-rate fit stops where rounding starts to show
_tree_norm = getattr(otu, "tree_norm", None) or otu.tree_l2_norm  # optax >= 0.2.5 / older


# -- problems ------------------------------------------------------------------------------------


class Problem(NamedTuple):
    """A regularized cross-entropy problem. ``make(data)`` returns the callables (``f``,
    ``per_example``, ``model``, ``loss``) closing over ``data``, so that jitted runners take the
    data as an argument instead of baking it into the program as constants."""

    name: str
    title: str
    data: tuple
    x0: jax.Array
    make: Callable
    lipschitz: float
    ridge: float


def _standardize(x):
    mean, std = x.mean(0), x.std(0)
    return (x - mean) / np.where(std > 1e-3, std, 1.0)  # constant pixels stay 0


def _subset(x, y, subset, seed):
    if subset is None or subset >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:subset])
    return x[idx], y[idx]


def logistic_problem(ridge: float = 1e-4, subset: int | None = None, seed: int = 0) -> Problem:
    """Binary logistic regression on the breast-cancer data, labels in {-1, +1}."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x, y = _subset(x, y, subset, seed)
    a = np.hstack([_standardize(x), np.ones((len(y), 1))])
    s = np.where(y == 1, 1.0, -1.0)

    def make(data):
        a, s = data

        def per_example(w):
            return jnp.logaddexp(0.0, -s * (a @ w)) + 0.5 * ridge * jnp.sum(w * w)

        def loss(out):
            return jnp.mean(jnp.logaddexp(0.0, -s * out["logits"])) + 0.5 * ridge * jnp.sum(
                out["w"] ** 2
            )

        return {
            "f": lambda w: (
                jnp.mean(jnp.logaddexp(0.0, -s * (a @ w))) + 0.5 * ridge * jnp.sum(w * w)
            ),
            "per_example": per_example,
            "model": lambda w: {"logits": a @ w, "w": w},
            "loss": loss,
        }

    m, n = a.shape
    lip = float(np.linalg.eigvalsh(a.T @ a)[-1]) / (4.0 * m) + ridge
    return Problem(
        "logistic",
        f"breast cancer, binary logistic (m={m}, n={n}, ridge {ridge:g})",
        (jnp.asarray(a), jnp.asarray(s)),
        jnp.zeros(n),
        make,
        lip,
        ridge,
    )


def softmax_problem(
    ridge: float = 1e-3, pool: int = 2, subset: int | None = None, seed: int = 0
) -> Problem:
    """Softmax regression on the digits, the 8x8 images average-pooled by ``pool``."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = _subset(x, y, subset, seed)
    side = 8 // pool
    x = x.reshape(-1, side, pool, side, pool).mean(axis=(2, 4)).reshape(len(y), side * side)
    a = np.hstack([_standardize(x), np.ones((len(y), 1))])
    onehot = np.eye(10)[y]

    def make(data):
        a, onehot = data

        def ce(z):  # (m, 10) logits -> (m,) cross-entropies
            return jax.nn.logsumexp(z, axis=1) - jnp.sum(onehot * z, axis=1)

        return {
            "f": lambda w: jnp.mean(ce(a @ w)) + 0.5 * ridge * jnp.sum(w * w),
            "per_example": lambda w: ce(a @ w) + 0.5 * ridge * jnp.sum(w * w),
            "model": lambda w: {"logits": a @ w, "w": w},
            "loss": lambda out: jnp.mean(ce(out["logits"])) + 0.5 * ridge * jnp.sum(out["w"] ** 2),
        }

    m, d = a.shape
    # ||diag(p) - p p^T|| <= 1/2 for the softmax Jacobian.
    lip = float(np.linalg.eigvalsh(a.T @ a)[-1]) / (2.0 * m) + ridge
    return Problem(
        "softmax",
        f"digits {side}x{side}, softmax (m={m}, n={d}x10={10 * d}, ridge {ridge:g})",
        (jnp.asarray(a), jnp.asarray(onehot)),
        jnp.zeros((d, 10)),
        make,
        lip,
        ridge,
    )


def flat_oracles(prob: Problem):
    """Jitted ``f``, ``grad`` and ``hessian`` of the flattened objective (NumPy in, out)."""
    _, unravel = ravel_pytree(prob.x0)

    def f_flat(v, data):
        return prob.make(data)["f"](unravel(v))

    fj, gj, hj = (jax.jit(fn) for fn in (f_flat, jax.grad(f_flat), jax.hessian(f_flat)))
    return (
        lambda v: float(fj(v, prob.data)),
        lambda v: np.asarray(gj(v, prob.data)),
        lambda v: np.asarray(hj(v, prob.data)),
    )


# -- reference optimum ---------------------------------------------------------------------------


def newton_reference(prob: Problem, oracles, max_iter: int = 100) -> dict:
    """Damped Newton (Armijo backtracking) in NumPy on the jitted ``oracles`` (:func:`flat_oracles`),
    until the gradient stops decreasing; returns ``f_star`` and the final gradient norm."""
    f, g, h = oracles
    x = np.zeros(ravel_pytree(prob.x0)[0].size)
    fx, gx = f(x), g(x)
    best = (np.linalg.norm(gx), x, fx)
    for it in range(max_iter):
        d = np.linalg.solve(h(x), gx)
        t = 1.0
        while f(x - t * d) > fx - 1e-4 * t * (gx @ d) and t > 1e-12:
            t *= 0.5
        x = x - t * d
        fx, gx = f(x), g(x)
        if np.linalg.norm(gx) < best[0]:
            best = (np.linalg.norm(gx), x, fx)
        elif it > 5 and np.linalg.norm(gx) < 1e-12:
            break  # at the rounding floor
    return {"f_star": float(best[2]), "grad_norm": float(best[0]), "iters": it + 1}


# -- methods -------------------------------------------------------------------------------------


def hessian_kwargs(fns: dict, hessian: str) -> dict:
    """What each Hessian choice needs besides ``f``: the model / loss split for Gauss-Newton, the
    per-example losses for the (empirical) Fisher."""
    if hessian == "gauss_newton":
        return dict(model_fn=fns["model"], loss_fn=fns["loss"])
    if hessian == "fisher":
        return dict(per_example_fn=fns["per_example"])
    return {}


def run_gnn(prob: Problem, hessian: str, args, max_steps: int) -> dict:
    def solve(x0, data):
        fns = prob.make(data)
        return gradient_normalized_newton(
            fns["f"],
            x0,
            hessian=hessian,
            gamma0=args.gamma0,
            max_steps=max_steps,
            tol=args.tol,
            **hessian_kwargs(fns, hessian),
        )

    res = jax.block_until_ready(jax.jit(solve)(prob.x0, prob.data))
    k = int(res.n_steps)
    trials = np.asarray(res.history.n_trials[: k + 1]).astype(int)
    return {
        "f": np.asarray(res.history.f[: k + 1]).tolist(),
        "solves": trials.tolist(),
        "f_evals": (1 + trials).tolist(),
        "g_evals": (1 + trials).tolist(),
        "total_solves": int(res.n_linear_solves),
        "status": res.message,
    }


def run_gd(prob: Problem, steps: int, tol: float) -> dict:
    def run(x0, data):
        f = prob.make(data)["f"]

        def body(w, _):
            v, g = jax.value_and_grad(f)(w)
            return jax.tree.map(lambda a, b: a - b / prob.lipschitz, w, g), (v, _tree_norm(g))

        w, (fs, gns) = jax.lax.scan(body, x0, None, length=steps)
        return jnp.append(fs, f(w)), gns

    fs, gns = (np.asarray(v) for v in jax.jit(run)(prob.x0, prob.data))
    done = np.flatnonzero(gns <= tol)
    k = int(done[0]) if done.size else steps  # iterate k already met tol: cut the curve there
    evals = np.arange(1, k + 2)
    status = f"gradient norm reached tol after {k} steps" if done.size else f"{steps} steps"
    return {
        "f": fs[: k + 1].tolist(),
        "solves": [0] * (k + 1),
        "f_evals": evals.tolist(),
        "g_evals": evals.tolist(),
        "total_solves": 0,
        "status": f"{status} of size 1/L, L = {prob.lipschitz:.3g}",
    }


def run_lbfgs(prob: Problem, steps: int, tol: float) -> dict:
    opt = optax.lbfgs()

    def run(x0, data):
        f = prob.make(data)["f"]
        value_and_grad = optax.value_and_grad_from_state(f)
        hist_f = jnp.zeros(steps + 1).at[0].set(f(x0))
        hist_e = jnp.zeros(steps + 1, jnp.int32).at[0].set(1)

        def cond(c):
            k, _, _, _, _, done = c
            return (k < steps) & ~done

        def body(c):
            k, params, state, hist_f, hist_e, _ = c
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
            params = optax.apply_updates(params, updates)
            # the zoom linesearch evaluates value and gradient once per linesearch step and keeps
            # them in the state for the next iteration
            n_ls = jnp.asarray(otu.tree_get(state, "info").num_linesearch_steps, jnp.int32)
            hist_f = hist_f.at[k + 1].set(otu.tree_get(state, "value"))
            hist_e = hist_e.at[k + 1].set(hist_e[k] + n_ls)
            done = _tree_norm(otu.tree_get(state, "grad")) <= tol
            return k + 1, params, state, hist_f, hist_e, done

        init = (jnp.asarray(0), x0, opt.init(x0), hist_f, hist_e, jnp.asarray(False))
        k, _, _, hist_f, hist_e, done = jax.lax.while_loop(cond, body, init)
        return k, hist_f, hist_e, done

    k, hist_f, hist_e, done = jax.jit(run)(prob.x0, prob.data)
    k = int(k)
    evals = np.asarray(hist_e[: k + 1]).astype(int)
    return {
        "f": np.asarray(hist_f[: k + 1]).tolist(),
        "solves": [0] * (k + 1),
        "f_evals": evals.tolist(),
        "g_evals": evals.tolist(),
        "total_solves": 0,
        "status": "gradient norm reached tol" if bool(done) else f"{steps} iterations",
    }


def cubic_subproblem(lam, c, m_reg):
    """Minimizer of ``c.u + sum(lam u^2)/2 + m_reg |u|^3 / 6`` in the eigenbasis of H (``lam``
    eigenvalues, ``c = Q^T g``): ``u = -c / (lam + m_reg r / 2)`` with ``r = |u|``, the root of
    the decreasing ``phi(r) = |u(r)| - r`` on ``r > max(0, -2 lam_min / m_reg)`` (brentq)."""
    from scipy.optimize import brentq

    lo = max(0.0, -2.0 * lam[0] / m_reg)

    def phi(r):
        return np.linalg.norm(c / (lam + 0.5 * m_reg * r)) - r

    hi = max(2.0 * lo, 1e-300)
    while phi(hi) > 0:
        hi *= 2.0
    r = (
        hi
        if phi(hi) == 0
        else brentq(phi, lo if lo > 0 else 0.0, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
    )
    if lo > 0 and r <= lo:  # the "hard case" (c orthogonal to the bottom eigenvector): not met here
        r = lo * (1 + 1e-12)
    return -c / (lam + 0.5 * m_reg * r), r


def run_cubic(
    prob: Problem,
    oracles,
    steps: int,
    tol: float,
    m0: float = 1.0,
    m_min: float = 1e-8,
    max_trials: int = 60,
) -> dict:
    f, g, h = oracles
    x = np.zeros(ravel_pytree(prob.x0)[0].size)
    fx, m_reg = f(x), m0
    hist_f, solves, f_evals, g_evals = [fx], [0], [1], [1]
    status = f"{steps} iterations"
    for _ in range(steps):
        gx = g(x)
        if np.linalg.norm(gx) <= tol:
            status = "gradient norm reached tol"
            break
        hx = h(x)
        lam, q = np.linalg.eigh(hx)
        c = q.T @ gx
        n_tr, accepted = 0, False
        while n_tr < max_trials and not accepted:
            n_tr += 1
            u, r = cubic_subproblem(lam, c, m_reg)
            s = q @ u
            model = c @ u + 0.5 * (lam * u) @ u + m_reg * r**3 / 6.0
            f_new = f(x + s)
            if f_new <= fx + model:
                accepted = True
                m_reg = max(0.5 * m_reg, m_min)
            else:
                m_reg *= 2.0
        if not accepted:
            status = "no accepted trial (rounding level)"
            solves[-1] += n_tr
            break
        x, fx = x + s, f_new
        hist_f.append(fx)
        solves.append(solves[-1] + n_tr)
        f_evals.append(f_evals[-1] + n_tr)
        g_evals.append(g_evals[-1] + 1)
    return {
        "f": hist_f,
        "solves": solves,
        "f_evals": f_evals,
        "g_evals": g_evals,
        "total_solves": solves[-1],
        "status": status,
    }


# -- report --------------------------------------------------------------------------------------


def summarize(rec: dict, f_star: float, target: float) -> dict:
    sub = np.asarray(rec["f"]) - f_star
    hit = np.flatnonzero(sub < target)
    out = {"reached": bool(hit.size), "final_subopt": float(sub[-1]), "iterations": len(sub) - 1}
    if hit.size:
        i = int(hit[0])
        out.update(
            iters_to_target=i,
            solves_to_target=rec["solves"][i],
            f_evals_to_target=rec["f_evals"][i],
            g_evals_to_target=rec["g_evals"][i],
        )
    below = np.flatnonzero(sub < RATE_FLOOR)
    end = int(below[0]) if below.size else len(sub)
    ks = np.arange(end // 2, end)
    ks = ks[sub[ks] > 0]
    out["slope"] = float(np.polyfit(ks, np.log10(sub[ks]), 1)[0]) if ks.size >= 2 else float("nan")
    return out


def print_table(name: str, title: str, ref: dict, results: dict, target: float) -> None:
    print(
        f"\n{name}: {title}\n  f* = {ref['f_star']:.15f} (Newton, gradient norm {ref['grad_norm']:.1e})"
    )
    print(
        f"  {'method':17s} {'iters':>6s} {'solves':>7s} {'f evals':>8s} {'g evals':>8s}   "
        f"(to {target:.0e})  {'final':>9s} {'slope':>7s} {'sec':>6s}  status"
    )

    def fmt(v):
        return f"{v:d}" if isinstance(v, int) else "-"

    for meth, r in results.items():
        s = r["summary"]
        print(
            f"  {meth:17s} {fmt(s.get('iters_to_target')):>6s} {fmt(s.get('solves_to_target')):>7s} "
            f"{fmt(s.get('f_evals_to_target')):>8s} {fmt(s.get('g_evals_to_target')):>8s}"
            f"{'':16s}{s['final_subopt']:9.1e} {s['slope']:7.3f} {r['seconds']:6.1f}  {r['status']}"
        )


def save_plot(problems: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(problems)
    fig, axes = plt.subplots(len(names), 2, figsize=(14, 4.2 * len(names)), squeeze=False)
    styles = {"gd": ":", "lbfgs": "--", "cubic": "-."}
    for row, name in zip(axes, names):
        p = problems[name]
        floor = 1e-17
        # Linear x axes, so that a linear rate is a straight line; gradient descent (tens of
        # thousands of steps) is cut at the slowest of the other methods.
        xmax = [1, 1]
        for meth, r in p["methods"].items():
            if meth != "gd":
                xmax[0] = max(xmax[0], len(r["f"]))
                xmax[1] = max(
                    xmax[1], int(np.max(r["solves"] if r["total_solves"] else r["g_evals"]))
                )
        for meth, r in p["methods"].items():
            sub = np.maximum(np.asarray(r["f"]) - p["f_star"], floor)
            kw = (
                dict(lw=3.5, alpha=0.45) if meth == "gnn-exact" else dict(lw=1.4)
            )  # under gauss_newton
            row[0].plot(np.arange(len(sub)), sub, styles.get(meth, "-"), label=meth, **kw)
            solves = np.asarray(r["solves"] if r["total_solves"] else r["g_evals"])
            row[1].plot(
                solves,
                sub,
                styles.get(meth, "-"),
                label=meth + ("" if r["total_solves"] else " (f/g evals)"),
                **kw,
            )
        row[0].set(xlabel="outer iteration", title=f"{p['title']}\nvs iterations")
        row[1].set(
            xlabel="linear solves (GD, L-BFGS: value+gradient evaluations)",
            title="vs linear solves",
        )
        for ax, right in zip(row, xmax):
            ax.set_yscale("log")
            ax.set_xlim(0, 1.02 * right)
            ax.set_ylabel("f(x) - f*")
            ax.set_ylim(floor / 2, None)
            ax.axhline(1e-10, color="gray", lw=0.5)
            ax.grid(True, alpha=0.3)
        row[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--ridge-logistic", type=float, default=1e-4)
    parser.add_argument("--ridge-softmax", type=float, default=1e-3)
    parser.add_argument(
        "--digits-pool",
        type=int,
        choices=(1, 2, 4),
        default=2,
        help="average-pool the 8x8 digits by this factor",
    )
    parser.add_argument(
        "--subset", type=int, default=None, help="use this many samples (for quick runs)"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="GNN outer steps (default: 5000 logistic, 2000 softmax)",
    )
    parser.add_argument("--tol", type=float, default=1e-10, help="stop at this gradient norm")
    parser.add_argument("--gamma0", type=float, default=1.0, help="GNN initial radius")
    parser.add_argument(
        "--target", type=float, default=1e-10, help="suboptimality counted in the table"
    )
    parser.add_argument("--gd-steps", type=int, default=20000)
    parser.add_argument("--lbfgs-steps", type=int, default=2000)
    parser.add_argument("--cubic-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="seed of --subset")
    default_out = str(Path(__file__).resolve().parent / "output" / "gns_logistic.png")
    parser.add_argument(
        "--out", default=default_out, help="path of the saved figure (.json beside it)"
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Run every method on every problem; returns ``{"problems": {name: {...}}, "figure", "json"}``
    with per-method curves (``f``, ``solves``, ``f_evals``, ``g_evals``) and a ``summary``."""
    args = parse_args(argv)
    if args.no_progress:

        def progress(it, desc):
            return it
    else:
        from tqdm import tqdm

        def progress(it, desc):
            return tqdm(it, desc=desc, leave=False)

    methods = args.methods.split(",")
    for meth in methods:
        if meth not in METHODS:
            raise ValueError(f"unknown method {meth!r}; choose from {METHODS}")
    out = {"problems": {}, "args": vars(args)}
    with jax.enable_x64(True):
        for name in args.problems.split(","):
            if name == "logistic":
                prob = logistic_problem(args.ridge_logistic, args.subset, args.seed)
                max_steps = args.max_steps or 5000
            elif name == "softmax":
                prob = softmax_problem(args.ridge_softmax, args.digits_pool, args.subset, args.seed)
                max_steps = args.max_steps or 2000
            else:
                raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")
            oracles = flat_oracles(
                prob
            )  # shared by the reference and the cubic method: one compilation
            ref = newton_reference(prob, oracles)
            results = {}
            for meth in progress(methods, name):
                t0 = time.perf_counter()
                if meth.startswith("gnn-"):
                    rec = run_gnn(prob, meth.removeprefix("gnn-"), args, max_steps)
                elif meth == "gd":
                    rec = run_gd(prob, args.gd_steps, args.tol)
                elif meth == "lbfgs":
                    rec = run_lbfgs(prob, args.lbfgs_steps, args.tol)
                else:
                    rec = run_cubic(prob, oracles, args.cubic_steps, args.tol)
                rec["seconds"] = time.perf_counter() - t0  # compilation included: orientation only
                rec["summary"] = summarize(rec, ref["f_star"], args.target)
                results[meth] = rec
            lowest = min(min(r["f"]) for r in results.values())
            out["problems"][name] = {
                "title": prob.title,
                "f_star": ref["f_star"],
                "newton": ref,
                "lowest_f_minus_f_star": lowest - ref["f_star"],
                "methods": results,
            }
            print_table(name, prob.title, ref, results, args.target)
            print(f"  lowest f found by any method - f* = {lowest - ref['f_star']:.1e}")
    gnn_names = [m for m in methods if m.startswith("gnn-")]
    if "logistic" in out["problems"] and gnn_names:
        ok = all(out["problems"]["logistic"]["methods"][m]["summary"]["reached"] for m in gnn_names)
        print(
            f"\nevery GNN variant reached {args.target:.0e} on logistic regression: {'yes' if ok else 'NO'}"
        )
    save_plot(out["problems"], args.out)
    json_path = os.path.splitext(args.out)[0] + ".json"
    with open(json_path, "w") as fh:
        json.dump(out, fh)
    print(f"saved {args.out} and {json_path}")
    out.update(figure=args.out, json=json_path)
    return out


if __name__ == "__main__":
    main()
