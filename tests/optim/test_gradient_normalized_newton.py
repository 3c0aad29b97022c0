"""gradient_normalized_newton against NumPy references.

Independent references: closed-form NumPy gradients and Hessians (logistic regression, LogSumExp
with its weighted Gauss-Newton matrix, Rosenbrock, the quartic ||Ax - b||^4 / 4 with its rank-one
Fisher term), a NumPy Newton loop for the logistic optimum, the known optima of LogSumExp (0 by
construction), Rosenbrock (ones) and the consistent quartic (lstsq), and NumPy dense solves of
(H + lambda B) s = g for every recorded step. The acceptance test
f(x_k) - f(x_{k+1}) >= ||grad f(x_{k+1})||_*^2 / (8 lambda_k) is re-checked at every recorded
iterate with NumPy gradients, lambda_k = ||grad f(x_k)||_* / gamma_k recomputed from the
recorded radii (gamma_{k+1} = 2 gamma_k).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logsumexp, softmax

from geomjax.optim._gradient_normalized_newton import (
    NormalizedNewtonHistory,
    NormalizedNewtonResult,
)
from geomjax.optim._gradient_normalized_newton import (
    gradient_normalized_newton as gnn,
)

# ---------------------------------------------------------------- problems (NumPy float64) ----


def _logistic_data(m=80, n=6, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, n))
    y = np.where(a @ rng.standard_normal(n) + 0.5 * rng.standard_normal(m) > 0, 1.0, -1.0)
    return a, y


A_LOG, Y_LOG = _logistic_data()
RIDGE = 1e-2


class NpLogistic:
    """f(w) = mean log(1 + exp(-y_i a_i.w)) + ridge/2 |w|^2 and its derivatives, in NumPy."""

    def __init__(self, a, y, ridge):
        self.a, self.y, self.ridge, self.m = a, y, ridge, len(y)

    def f(self, w):
        return np.mean(np.logaddexp(0.0, -self.y * (self.a @ w))) + 0.5 * self.ridge * w @ w

    def per_grads(self, w):  # (m, n): gradients of the per-example losses (ridge included)
        s = expit(-self.y * (self.a @ w))
        return -(self.y * s)[:, None] * self.a + self.ridge * w[None, :]

    def g(self, w):
        return self.per_grads(w).mean(axis=0)

    def hess(self, w):
        p = expit(self.y * (self.a @ w))
        return (self.a.T * (p * (1 - p))) @ self.a / self.m + self.ridge * np.eye(len(w))

    def fisher(self, w):
        gm = self.per_grads(w)
        return gm.T @ gm / self.m

    def optimum(self):
        w = np.zeros(self.a.shape[1])
        for _ in range(30):
            w = w - np.linalg.solve(self.hess(w), self.g(w))
        assert np.linalg.norm(self.g(w)) < 1e-14
        return w, self.f(w)


NP_LOG = NpLogistic(A_LOG, Y_LOG, RIDGE)


def _jax_logistic(a, y, ridge):
    def f(w):
        return jnp.mean(jnp.logaddexp(0.0, -y * (a @ w))) + 0.5 * ridge * jnp.sum(w**2)

    def per_example(w):
        return jnp.logaddexp(0.0, -y * (a @ w)) + 0.5 * ridge * jnp.sum(w**2)

    def model(w):  # the ridge term rides along as a second output, so f == loss(model(w))
        return {"logits": a @ w, "w": w}

    def loss(out):
        return jnp.mean(jnp.logaddexp(0.0, -y * out["logits"])) + 0.5 * ridge * jnp.sum(
            out["w"] ** 2
        )

    def hess(w):
        p = jax.nn.sigmoid(y * (a @ w))
        return (a.T * (p * (1 - p))) @ a / a.shape[0] + ridge * jnp.eye(a.shape[1])

    return f, per_example, model, loss, hess


# ------------------------------------------------------------------------------ checkers ----


def _dual(g, binv):
    return float(np.sqrt(g @ (binv @ g)))


def _iterates(res):
    k = int(res.n_steps)
    return np.asarray(res.history.x, np.float64)[: k + 1]


def _check_run(res, f, g, b=None, h=None, step_rtol=1e-7):
    """Re-check every accepted step with NumPy: the acceptance inequality (gradients recomputed)
    and, when ``h`` is given, the step formula x_k - (H(x_k) + lambda_k B)^{-1} g(x_k)."""
    xs = _iterates(res)
    n = xs.shape[1]
    b = np.eye(n) if b is None else b
    binv = np.linalg.inv(b)
    gam = np.asarray(res.history.gamma, np.float64)
    lam_rec = np.asarray(res.history.lam, np.float64)
    assert np.all(np.isfinite(xs))
    for k in range(1, xs.shape[0]):
        x0, x1 = xs[k - 1], xs[k]
        g0, g1 = g(x0), g(x1)
        lam = _dual(g0, binv) / (gam[k] / 2.0)  # gamma_{k} = 2 * (radius accepted at step k-1)
        # gradients near the optimum carry absolute rounding ~1e-15 (cancellation in the sums)
        np.testing.assert_allclose(lam_rec[k], lam, rtol=1e-6, atol=1e-12 / gam[k])
        f0, f1 = f(x0), f(x1)
        slack = 1e-13 * max(1.0, abs(f0))  # rounding of two float64 function values
        assert f0 - f1 >= _dual(g1, binv) ** 2 / (8.0 * lam) - slack, (
            k,
            f0 - f1,
            _dual(g1, binv) ** 2 / (8 * lam),
        )
        if h is not None:
            mat = h(x0) + lam * b
            step = np.linalg.solve(mat, g0)
            err = np.linalg.norm((x0 - x1) - step)
            atol = 1e-14 * np.linalg.norm(np.linalg.inv(mat), 2)  # gradient rounding, amplified
            assert err <= step_rtol * np.linalg.norm(step) + atol, (k, err, np.linalg.norm(step))


def _check_counts(res):
    k = int(res.n_steps)
    assert int(res.n_fun_evals) == int(res.n_grad_evals) == 1 + int(res.n_linear_solves)
    trials = np.asarray(res.history.n_trials)
    assert trials[0] == 0 and np.all(np.diff(trials[: k + 1]) >= 1)
    if int(res.status) == 0:  # no failed search at the end: every solve belongs to a step
        assert int(res.n_linear_solves) == trials[k]
    assert np.all(trials[k:] == trials[k])  # padding repeats the last entry


def _all_finite(tree):
    return all(
        bool(jnp.all(jnp.isfinite(leaf)))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    )


# ------------------------------------------------------------------- logistic regression ----

_LOG_CASES = {
    "exact": (dict(), "hess"),
    "gauss_newton": (dict(hessian="gauss_newton"), "hess"),
    "fisher": (dict(hessian="fisher"), "fisher"),
    "diagonal": (dict(hessian="diagonal"), "diag"),
    "diagonal-cg": (dict(hessian="diagonal", linear_solver="cg"), "diag"),  # diag by n HVPs
    "none": (dict(hessian="none"), "zero"),
    "callable": (dict(), "hess"),
    "exact-cg": (dict(linear_solver="cg"), "hess"),
    "gauss_newton-cg": (dict(hessian="gauss_newton", linear_solver="cg"), "hess"),
    "fisher-cg": (dict(hessian="fisher", linear_solver="cg"), "fisher"),
}


@pytest.mark.parametrize("case", list(_LOG_CASES))
def test_logistic_every_hessian_reaches_1e_10(x64, case):
    f, per_example, model, loss, hess = _jax_logistic(A_LOG, Y_LOG, RIDGE)
    kw, href = _LOG_CASES[case]
    kw = dict(kw)
    if case == "callable":
        kw["hessian"] = hess
    if kw.get("hessian") == "gauss_newton":
        kw.update(model_fn=model, loss_fn=loss)
    if kw.get("hessian") == "fisher":
        kw["per_example_fn"] = per_example
    n = A_LOG.shape[1]
    run = jax.jit(lambda x0: gnn(f, x0, tol=1e-7, max_steps=400, record_iterates=True, **kw))
    res = run(jnp.zeros(n))
    w_star, f_star = NP_LOG.optimum()
    assert isinstance(res, NormalizedNewtonResult) and isinstance(
        res.history, NormalizedNewtonHistory
    )
    assert bool(res.converged) and int(res.status) == 0, res.message
    assert NP_LOG.f(np.asarray(res.x)) - f_star <= 1e-10
    assert float(res.grad_norm) <= 1e-7
    np.testing.assert_allclose(float(res.f), NP_LOG.f(np.asarray(res.x)), rtol=1e-13)
    h = {
        "hess": NP_LOG.hess,
        "fisher": NP_LOG.fisher,
        "diag": lambda w: np.diag(np.diag(NP_LOG.hess(w))),
        "zero": lambda w: np.zeros((n, n)),
    }[href]
    _check_run(res, NP_LOG.f, NP_LOG.g, h=h, step_rtol=1e-6 if case.endswith("cg") else 1e-8)
    _check_counts(res)
    assert int(res.n_hessian_evals) == (0 if case == "none" else int(res.n_steps))
    if case.endswith("cg") and case != "diagonal-cg":
        assert 0 < int(res.n_hessian_vps) <= n * int(res.n_linear_solves)
    else:
        assert int(res.n_hessian_vps) == 0
    if href == "hess":  # Newton-type: few steps, superlinear
        assert int(res.n_steps) <= 15
    assert _all_finite(res)


def test_pytree_x0_equals_flat(x64):
    f, _, _, _, hess = _jax_logistic(A_LOG, Y_LOG, RIDGE)

    def to_flat(t):
        return jnp.concatenate([t["a"], t["b"].ravel()])  # ravel_pytree order: sorted keys

    f_tree = lambda t: f(to_flat(t))  # noqa: E731
    h_tree = lambda t: hess(to_flat(t))  # noqa: E731
    x0 = {"a": jnp.full((2,), 0.1), "b": jnp.full((2, 2), -0.2)}
    flat0 = to_flat(x0)
    for kw_tree, kw_flat in (({}, {}), ({"hessian": h_tree}, {"hessian": hess})):
        rt = jax.jit(lambda x: gnn(f_tree, x, tol=1e-9, record_iterates=True, **kw_tree))(x0)
        rf = jax.jit(lambda x: gnn(f, x, tol=1e-9, **kw_flat))(flat0)
        assert set(rt.x) == {"a", "b"} and rt.x["b"].shape == (2, 2)
        assert rt.history.x["b"].shape == (101, 2, 2)
        assert int(rt.n_steps) == int(rf.n_steps) and int(rt.status) == int(rf.status) == 0
        np.testing.assert_allclose(
            np.asarray(to_flat(rt.x)), np.asarray(rf.x), rtol=1e-12, atol=1e-14
        )


# --------------------------------------------------------------------------------- LogSumExp ----


def _lse_problem(m=30, n=8, mu=0.5, seed=3):
    """mu * logsumexp((A x - b) / mu) with the rows shifted so that grad f(0) = 0: x* = 0."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (m, n))
    b = rng.uniform(-1, 1, m)
    a = a - softmax(-b / mu) @ a  # A^T softmax(-b / mu) = 0
    return a, b, mu


@pytest.mark.parametrize("dense_metric", [False, True], ids=["identity", "AtA"])
def test_logsumexp_weighted_gauss_newton(x64, dense_metric):
    a, b, mu = _lse_problem()
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    f = lambda x: mu * jax.nn.logsumexp((aj @ x - bj) / mu)  # noqa: E731

    def wgn(
        x,
    ):  # A^T diag(softmax) A / mu  (drops the rank-one term: an upper bound of the Hessian)
        p = jax.nn.softmax((aj @ x - bj) / mu)
        return (aj.T * p) @ aj / mu

    np_f = lambda x: mu * logsumexp((a @ x - b) / mu)  # noqa: E731
    np_g = lambda x: a.T @ softmax((a @ x - b) / mu)  # noqa: E731
    np_wgn = lambda x: (a.T * softmax((a @ x - b) / mu)) @ a / mu  # noqa: E731
    bmat = a.T @ a if dense_metric else None
    res = jax.jit(
        lambda x0: gnn(
            f, x0, hessian=wgn, metric=bmat, tol=1e-9, max_steps=200, record_iterates=True
        )
    )(jnp.ones(a.shape[1]))
    assert bool(res.converged), res.message
    f_star = mu * logsumexp(-b / mu)
    assert np_f(np.asarray(res.x)) - f_star <= 1e-10
    np.testing.assert_allclose(np.asarray(res.x), 0.0, atol=1e-6)
    _check_run(res, np_f, np_g, b=bmat, h=np_wgn)
    _check_counts(res)


# -------------------------------------------------------------------------------- Rosenbrock ----


def _np_rosen(x):
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _np_rosen_grad(x):
    g = np.zeros_like(x)
    t = x[1:] - x[:-1] ** 2
    g[:-1] += -400 * x[:-1] * t - 2 * (1 - x[:-1])
    g[1:] += 200 * t
    return g


def _np_rosen_hess(x):
    n = len(x)
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i, i + 1] += -400 * x[i]
        h[i + 1, i] += -400 * x[i]
        h[i + 1, i + 1] += 200
    return h


def _np_rosen_ggn(x):  # residuals r = (10 (x_{i+1} - x_i^2), 1 - x_i), loss sum r^2: GGN = 2 J^T J
    n = len(x)
    jac = np.zeros((2 * (n - 1), n))
    for i in range(n - 1):
        jac[i, i], jac[i, i + 1] = -20 * x[i], 10.0
        jac[n - 1 + i, i] = -1.0
    return 2 * jac.T @ jac


@pytest.mark.parametrize("approx", ["exact", "gauss_newton"])
def test_rosenbrock(x64, approx):
    def f(x):
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    def residuals(x):
        return jnp.concatenate([10 * (x[1:] - x[:-1] ** 2), 1 - x[:-1]])

    if (
        approx == "exact"
    ):  # indefinite away from the valley: trials with H + lambda I not PD are rejected
        kw, h = dict(require_psd=False), _np_rosen_hess
    else:
        kw, h = (
            dict(hessian="gauss_newton", model_fn=residuals, loss_fn=lambda r: jnp.sum(r**2)),
            _np_rosen_ggn,
        )
    x0 = jnp.array([-1.2, 1.0, -1.2, 1.0])
    res = jax.jit(lambda x: gnn(f, x, tol=1e-9, max_steps=300, record_iterates=True, **kw))(x0)
    assert bool(res.converged), res.message
    np.testing.assert_allclose(np.asarray(res.x), 1.0, atol=1e-8)
    assert _np_rosen(np.asarray(res.x)) <= 1e-10
    _check_run(res, _np_rosen, _np_rosen_grad, h=h)
    _check_counts(res)


def test_rosenbrock_exact_hessian_indefinite_gives_status_4(x64):
    """The exact Rosenbrock Hessian is indefinite above the parabola y = x^2 + 0.005: with the
    default require_psd=True the run stops there with status 4 and the last good iterate."""
    f = lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2  # noqa: E731
    x0 = jnp.array([0.0, 1.0])  # H(x0) = [[-398, 0], [0, 200]]
    res = jax.jit(lambda x: gnn(f, x))(x0)
    assert int(res.status) == 4 and not bool(res.converged) and int(res.n_steps) == 0
    np.testing.assert_array_equal(np.asarray(res.x), np.asarray(x0))
    assert "positive semi-definite" in res.message


# ---------------------------------------------------- quartic with the rank-one Fisher term ----


def _quartic(m=12, n=6, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, n))
    x_true = rng.standard_normal(n)
    return a, a @ x_true, x_true  # consistent: f* = 0 at x_true


@pytest.mark.parametrize("dense_metric", [False, True], ids=["identity", "AtA"])
def test_quartic_sherman_morrison_equals_dense(x64, dense_metric):
    a, b, x_true = _quartic()
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    f = lambda x: 0.25 * jnp.sum((aj @ x - bj) ** 2) ** 2  # noqa: E731
    # one "example" whose gradient is sqrt(2) A^T r: G^T G = 2 (A^T r)(A^T r)^T, the Fisher term
    # (p - 2) |r|^{p-4} (J^T r)(J^T r)^T of f = |r|^p / p at p = 4.
    per_example = lambda x: (jnp.sum((aj @ x - bj) ** 2) / jnp.sqrt(2.0))[None]  # noqa: E731

    def fisher_term(x):
        u = aj.T @ (aj @ x - bj)
        return 2.0 * jnp.outer(u, u)

    np_f = lambda x: 0.25 * np.sum((a @ x - b) ** 2) ** 2  # noqa: E731
    np_g = lambda x: np.sum((a @ x - b) ** 2) * (a.T @ (a @ x - b))  # noqa: E731
    np_h = lambda x: 2.0 * np.outer(a.T @ (a @ x - b), a.T @ (a @ x - b))  # noqa: E731
    bmat = a.T @ a if dense_metric else None
    common = dict(metric=bmat, tol=1e-12, max_steps=200, record_iterates=True)
    x0 = jnp.zeros(a.shape[1])
    sm = jax.jit(lambda x: gnn(f, x, hessian="fisher", per_example_fn=per_example, **common))(x0)
    dense = jax.jit(
        lambda x: gnn(
            f, x, hessian="fisher", per_example_fn=per_example, linear_solver="dense", **common
        )
    )(x0)
    call = jax.jit(lambda x: gnn(f, x, hessian=fisher_term, **common))(x0)
    for res in (sm, dense, call):
        assert bool(res.converged), res.message
        assert np_f(np.asarray(res.x)) <= 1e-10
        _check_run(res, np_f, np_g, b=bmat, h=np_h, step_rtol=1e-6)
        _check_counts(res)
    # the Sherman-Morrison path follows the dense eigen-solve path step by step
    k = int(dense.n_steps)
    assert int(sm.n_steps) == k and int(call.n_steps) == k
    np.testing.assert_array_equal(
        np.asarray(sm.history.n_trials), np.asarray(dense.history.n_trials)
    )
    np.testing.assert_allclose(
        np.asarray(sm.history.x), np.asarray(dense.history.x), rtol=1e-7, atol=1e-12
    )
    np.testing.assert_allclose(
        np.asarray(call.history.x), np.asarray(dense.history.x), rtol=1e-7, atol=1e-12
    )


def test_woodbury_fewer_examples_than_parameters(x64):
    """Fisher with m = 3 < n = 8: Woodbury on the 3 x 3 Gram matrix equals the dense solve."""
    a, y = _logistic_data(m=3, n=8, seed=5)
    np_prob = NpLogistic(a, y, 0.1)
    f, per_example, _, _, _ = _jax_logistic(jnp.asarray(a), jnp.asarray(y), 0.1)
    d = np.linspace(0.5, 2.0, 8)
    common = dict(
        hessian="fisher",
        per_example_fn=per_example,
        metric=d,
        tol=1e-9,
        max_steps=100,
        record_iterates=True,
    )
    wb = jax.jit(lambda x: gnn(f, x, **common))(jnp.zeros(8))
    de = jax.jit(lambda x: gnn(f, x, linear_solver="dense", **common))(jnp.zeros(8))
    for res in (wb, de):
        assert bool(res.converged), res.message
        _check_run(res, np_prob.f, np_prob.g, b=np.diag(d), h=np_prob.fisher, step_rtol=1e-6)
    k = min(int(wb.n_steps), int(de.n_steps), 10)
    np.testing.assert_allclose(
        np.asarray(wb.history.x)[:k], np.asarray(de.history.x)[:k], rtol=1e-8, atol=1e-12
    )


# ------------------------------------------------------- closed-form first steps and metrics ----


def _quadratic(n=5, seed=2):
    rng = np.random.default_rng(seed)
    r = rng.standard_normal((n, n))
    q = r @ r.T + n * np.eye(n)
    c = rng.standard_normal(n)
    return q, c


def _metric(kind, n, seed=4):
    rng = np.random.default_rng(seed)
    if kind == "identity":
        return None, np.eye(n)
    if kind == "diagonal":
        d = rng.uniform(0.5, 3.0, n)
        return d, np.diag(d)
    r = rng.standard_normal((n, n))
    bm = r @ r.T + np.eye(n)
    return bm, bm


@pytest.mark.parametrize(
    "approx, mkind",
    [
        ("none", "identity"),
        ("none", "diagonal"),
        ("none", "dense"),
        ("exact", "diagonal"),
        ("exact", "dense"),
        ("diagonal", "dense"),
    ],
)
def test_first_step_closed_form(x64, approx, mkind):
    q, c = _quadratic()
    n = len(c)
    qj, cj = jnp.asarray(q), jnp.asarray(c)
    f = lambda x: 0.5 * x @ (qj @ x) - cj @ x  # noqa: E731
    metric, bm = _metric(mkind, n)
    x0 = np.linspace(-1.0, 1.0, n)
    gamma0 = 0.05  # small radius: the first trial is accepted
    res = jax.jit(lambda x: gnn(f, x, hessian=approx, metric=metric, gamma0=gamma0, max_steps=1))(
        jnp.asarray(x0)
    )
    g = q @ x0 - c
    gnorm = np.sqrt(g @ np.linalg.solve(bm, g))
    lam = gnorm / gamma0
    h = {"none": np.zeros((n, n)), "exact": q, "diagonal": np.diag(np.diag(q))}[approx]
    x1 = x0 - np.linalg.solve(h + lam * bm, g)
    if approx == "none":  # normalized gradient step of B-length gamma0
        np.testing.assert_allclose(x1, x0 - gamma0 * np.linalg.solve(bm, g) / gnorm, rtol=1e-12)
    assert int(res.history.n_trials[1]) == 1 and int(res.n_steps) == 1 and int(res.status) == 1
    np.testing.assert_allclose(np.asarray(res.x), x1, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(float(res.history.grad_norm[0]), gnorm, rtol=1e-12)
    np.testing.assert_allclose(float(res.history.gamma[1]), 2 * gamma0, rtol=0)
    assert int(res.n_hessian_evals) == (0 if approx == "none" else 1)


# -------------------------------------------------------------------------------- failures ----


def _quad_f():
    q, c = _quadratic()
    qj, cj = jnp.asarray(q), jnp.asarray(c)
    return (lambda x: 0.5 * x @ (qj @ x) - cj @ x), len(c)


def test_validation_errors(x64):
    f, n = _quad_f()
    x0 = jnp.zeros(n)
    with pytest.raises(ValueError, match=r"`hessian`.*\(5, 5\)"):
        gnn(f, x0, hessian=lambda x: jnp.eye(4))
    with pytest.raises(ValueError, match="`hessian`"):
        gnn(f, x0, hessian="newton")
    with pytest.raises(ValueError, match="`model_fn`"):
        gnn(f, x0, hessian="gauss_newton", loss_fn=jnp.sum)
    with pytest.raises(ValueError, match="`loss_fn`"):
        gnn(f, x0, hessian="gauss_newton", model_fn=lambda x: x)
    with pytest.raises(ValueError, match="`per_example_fn`"):
        gnn(f, x0, hessian="fisher")
    with pytest.raises(ValueError, match="`per_example_fn`"):
        gnn(f, x0, hessian="fisher", per_example_fn=lambda x: jnp.sum(x))
    with pytest.raises(ValueError, match="`metric`"):
        gnn(f, x0, metric=jnp.ones(3))
    with pytest.raises(ValueError, match="`metric` must be a positive vector"):
        gnn(f, x0, metric=jnp.ones(n).at[1].set(-1.0))
    with pytest.raises(ValueError, match="`metric` must be a symmetric positive-definite"):
        gnn(f, x0, metric=-jnp.eye(n))
    with pytest.raises(ValueError, match="`linear_solver`"):
        gnn(f, x0, linear_solver="lu")
    with pytest.raises(ValueError, match="`f`"):
        gnn(lambda x: x, x0)
    with pytest.raises(ValueError, match="`max_trials`"):
        gnn(f, x0, max_trials=0)
    with pytest.raises(ValueError, match="`gamma0`"):
        gnn(f, x0, gamma0=-1.0)
    with pytest.raises(TypeError, match="`x0`"):
        gnn(f, jnp.zeros(n, jnp.int32))


@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_non_psd_hessian_gives_status_4(x64, solver):
    f, n = _quad_f()
    x0 = jnp.linspace(-1.0, 1.0, n)
    res = jax.jit(lambda x: gnn(f, x, hessian=lambda _: -jnp.eye(n), linear_solver=solver))(x0)
    assert int(res.status) == 4 and not bool(res.converged) and int(res.n_steps) == 0
    np.testing.assert_array_equal(np.asarray(res.x), np.asarray(x0))
    assert _all_finite(res)


def test_max_trials_exhausted(x64):
    f, n = _quad_f()
    x0 = jnp.linspace(-1.0, 1.0, n)
    # a normalized gradient step of length 1e6 always increases f; one trial allowed
    res = jax.jit(lambda x: gnn(f, x, hessian="none", gamma0=1e6, max_trials=1))(x0)
    assert int(res.status) == 2 and not bool(res.converged) and int(res.n_steps) == 0
    assert int(res.n_linear_solves) == 1 and int(res.n_fun_evals) == 2
    np.testing.assert_array_equal(np.asarray(res.x), np.asarray(x0))
    np.testing.assert_allclose(float(res.gamma), 5e5)  # halved once
    assert "max_trials" in res.message


def test_nan_beyond_radius_is_rejected(x64):
    """f is NaN outside the unit ball and its minimum lies outside: trials there are rejected,
    the run ends with status 2 at a finite iterate inside the ball."""
    center = jnp.full((3,), 2.0)

    def f(x):
        return jnp.where(jnp.sum(x**2) < 1.0, jnp.sum((x - center) ** 2), jnp.nan)

    res = jax.jit(lambda x: gnn(f, x, max_steps=50, max_trials=30))(jnp.zeros(3))
    assert int(res.status) == 2 and not bool(res.converged)
    assert int(res.n_steps) >= 1
    assert _all_finite(res)
    assert float(jnp.sum(res.x**2)) < 1.0
    np.testing.assert_allclose(float(res.f), float(jnp.sum((res.x - center) ** 2)), rtol=1e-12)


def test_rounding_level_stop_is_success_status_5(x64):
    """f = C + |x|^2 / 2 with C = 1e8: near x = 0 every decrease of f is below the rounding of
    f (ulp(1e8) = 1.5e-8), so the acceptance test cannot certify any step. The run stops at x0
    with status 5 (converged, not a failure), and x0 is indeed stationary to that rounding."""
    big = 1e8
    f = lambda x: big + 0.5 * jnp.sum(x**2)  # noqa: E731
    x0 = jnp.full((3,), 1e-4)
    res = jax.jit(lambda x: gnn(f, x, hessian="none", tol=1e-14, max_trials=60))(x0)
    assert int(res.status) == 5 and bool(res.converged), res.message
    assert "rounding" in res.message
    np.testing.assert_array_equal(np.asarray(res.x), np.asarray(x0))
    assert _all_finite(res)
    # independent check: the largest possible decrease, f(x0) - min f = |x0|^2 / 2, is below the
    # rounding level the solver documents (16 eps |f|)
    assert 0.5 * float(jnp.sum(x0**2)) <= 16 * np.finfo(np.float64).eps * big
    assert float(res.grad_norm) > 1e-14  # tol itself was not reached


def test_rounding_stop_not_taken_next_to_a_domain_edge(x64):
    """Same f, but NaN for x[0] < 1e-4 - 1e-12: trials past the edge are non-finite, so the
    rounding-level stop is not taken in that search and the run ends with status 2."""
    big = 1e8

    def f(x):
        return jnp.where(x[0] < 1e-4 - 1e-12, jnp.nan, big + 0.5 * jnp.sum(x**2))

    res = jax.jit(lambda x: gnn(f, x, hessian="none", tol=1e-14, max_trials=60))(
        jnp.full((3,), 1e-4)
    )
    assert int(res.status) == 2 and not bool(res.converged), res.message
    assert _all_finite(res)


def test_non_finite_start_gives_status_3(x64):
    f = lambda x: jnp.sum(jnp.log(x))  # noqa: E731  (log of a negative number inside jit)
    res = jax.jit(lambda x: gnn(f, x))(jnp.array([-1.0, 2.0]))
    assert int(res.status) == 3 and not bool(res.converged) and int(res.n_steps) == 0
    assert _all_finite(res)


def test_max_steps_status_and_history_padding(x64):
    f, _, _, _, _ = _jax_logistic(A_LOG, Y_LOG, RIDGE)
    res = jax.jit(lambda x: gnn(f, x, hessian="none", max_steps=7, tol=0.0, record_iterates=True))(
        jnp.zeros(6)
    )
    assert int(res.status) == 1 and int(res.n_steps) == 7 and not bool(res.converged)
    res = jax.jit(lambda x: gnn(f, x, max_steps=40, record_iterates=True))(jnp.zeros(6))
    k = int(res.n_steps)
    assert bool(res.converged) and k < 40
    h = res.history
    for arr in (h.f, h.grad_norm, h.gamma, h.n_trials, h.margin, h.lam, h.x):
        arr = np.asarray(arr)
        assert arr.shape[0] == 41 and np.all(np.isfinite(arr))
        np.testing.assert_array_equal(arr[k:], np.broadcast_to(arr[k], arr[k:].shape))
    assert np.all(np.asarray(h.margin)[1 : k + 1] >= 0)
    assert np.all(np.diff(np.asarray(h.f)[: k + 1]) < 0)  # monotone decrease
    np.testing.assert_allclose(float(h.f[k]), float(res.f))
    np.testing.assert_array_equal(np.asarray(h.x[k]), np.asarray(res.x))


# ----------------------------------------------------------------- execution modes / dtypes ----


def test_eager_call_matches_jit(x64):
    f, _, _, _, _ = _jax_logistic(A_LOG, Y_LOG, RIDGE)
    eager = gnn(f, jnp.zeros(6), tol=1e-9)
    jitted = jax.jit(lambda x: gnn(f, x, tol=1e-9))(jnp.zeros(6))
    assert bool(eager.converged) and int(eager.n_steps) == int(jitted.n_steps)
    np.testing.assert_allclose(np.asarray(eager.x), np.asarray(jitted.x), rtol=1e-12, atol=1e-15)
    assert eager.message.startswith("converged")


def test_float32_runs_without_nan():
    a, y = A_LOG.astype(np.float32), Y_LOG.astype(np.float32)
    f, per_example, _, _, _ = _jax_logistic(jnp.asarray(a), jnp.asarray(y), RIDGE)
    _, f_star = NP_LOG.optimum()
    for kw in (dict(), dict(hessian="fisher", per_example_fn=per_example, linear_solver="cg")):
        res = jax.jit(lambda x: gnn(f, x, tol=1e-5, max_steps=200, **kw))(jnp.zeros(6, jnp.float32))
        assert res.x.dtype == jnp.float32 and _all_finite(res)
        # 5: f differences at float32 rounding stop the run before tol, a success
        assert bool(res.converged) and int(res.status) in (0, 5), res.message
        assert NP_LOG.f(np.asarray(res.x, np.float64)) - f_star <= 1e-5 * f_star
