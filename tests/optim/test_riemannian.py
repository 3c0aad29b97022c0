"""Tests for geomjax.optim riemannian_sgd / riemannian_adam.

References are independent: optax.sgd / optax.adam for the Euclidean reduction, numpy.linalg.eigh
for the Rayleigh-quotient minimiser on the sphere, and a test-local sphere written here (metric
projection retraction, projection transport) for the manifold steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from geomjax.manifolds._base import Manifold
from geomjax.manifolds._euclidean import Euclidean
from geomjax.optim._riemannian import (
    RiemannianAdamState,
    RiemannianSGDState,
    riemannian_adam,
    riemannian_sgd,
)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Sphere(Manifold):
    """Unit sphere in R^n (test-local): projection retraction, projection transport."""

    n: int = dataclasses.field(metadata=dict(static=True), default=3)

    @property
    def point_shape(self):
        return (self.n,)

    def inner(self, x, u, v):
        return jnp.sum(u * v)

    def proj(self, x, u):
        return u - jnp.sum(x * u) * x

    def exp(self, x, u):
        r = jnp.linalg.norm(u)
        safe = jnp.where(r > 0, r, 1.0)
        return jnp.where(r > 0, jnp.cos(safe) * x + jnp.sin(safe) * u / safe, x)

    def retr(self, x, u):
        y = x + u
        return y / jnp.linalg.norm(y)

    def transp(self, x, y, u):
        return u - jnp.sum(y * u) * y

    def projx(self, x):
        return x / jnp.linalg.norm(x)

    def check_point(self, x):
        return jnp.abs(jnp.linalg.norm(x) - 1)


def _run(tx, params, grad_fn, steps, jit=True):
    state = tx.init(params)

    def step(p, s):
        u, s = tx.update(grad_fn(p), s, p)
        return optax.apply_updates(p, u), s

    step = jax.jit(step) if jit else step
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def _quadratic_grad(p):
    return jax.grad(lambda q: sum(jnp.sum(jnp.cos(3.0 * v) * v**2) for v in jax.tree.leaves(q)))(p)


# ----------------------------------------------------------------------------------------------
# Euclidean reduction: bitwise equal to optax
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("manifolds", ["none", "euclidean"])
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_euclidean_equals_optax(manifolds, momentum, nesterov):
    params = {"a": jnp.linspace(-1.0, 1.0, 5), "b": jnp.arange(6.0).reshape(2, 3) / 7}
    mf = None if manifolds == "none" else {"a": Euclidean(5), "b": Euclidean((2, 3))}
    ours = riemannian_sgd(0.05, momentum, nesterov, manifolds=mf)
    ref = optax.sgd(0.05, momentum, nesterov)
    p1, _ = _run(ours, params, _quadratic_grad, 5, jit=False)
    p2, _ = _run(ref, params, _quadratic_grad, 5, jit=False)
    for k in params:
        np.testing.assert_array_equal(p1[k], p2[k])


@pytest.mark.parametrize("manifolds", ["none", "euclidean"])
def test_adam_euclidean_equals_optax(manifolds):
    params = {"a": jnp.linspace(-1.0, 1.0, 5), "b": jnp.arange(6.0).reshape(2, 3) / 7}
    mf = None if manifolds == "none" else {"a": Euclidean(5), "b": None}
    p1, s1 = _run(riemannian_adam(0.05, manifolds=mf), params, _quadratic_grad, 5, jit=False)
    p2, s2 = _run(optax.adam(0.05), params, _quadratic_grad, 5, jit=False)
    for k in params:
        np.testing.assert_array_equal(p1[k], p2[k])
        np.testing.assert_array_equal(s1.nu[k], s2[0].nu[k])
    assert isinstance(s1, RiemannianAdamState) and int(s1.count) == 5


def test_schedule_equals_optax_schedule():
    sched = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.5)
    params = {"a": jnp.linspace(-1.0, 1.0, 4)}
    p1, _ = _run(riemannian_adam(sched), params, _quadratic_grad, 4, jit=False)
    p2, _ = _run(optax.adam(sched), params, _quadratic_grad, 4, jit=False)
    np.testing.assert_array_equal(p1["a"], p2["a"])
    p1, _ = _run(riemannian_sgd(sched, 0.5), params, _quadratic_grad, 4, jit=False)
    p2, _ = _run(optax.sgd(sched, 0.5), params, _quadratic_grad, 4, jit=False)
    np.testing.assert_array_equal(p1["a"], p2["a"])


def test_schedule_on_sphere():
    """A schedule that is 0 from step 1 on: only the first step moves the point."""
    sph = _Sphere(3)
    x0 = jnp.array([1.0, 0.0, 0.0])
    sched = lambda count: jnp.where(count == 0, 0.1, 0.0)  # noqa: E731
    g = lambda p: jnp.array([0.0, 1.0, 0.0])  # noqa: E731
    p1, _ = _run(riemannian_sgd(sched, manifolds=sph), x0, g, 1)
    p5, s5 = _run(riemannian_sgd(sched, manifolds=sph), x0, g, 5)
    expected = np.array([1.0, -0.1, 0.0]) / np.sqrt(1.01)  # retr(x, -0.1 * proj_x(g))
    # float32: one projection and one normalization of 3 entries (8 eps)
    np.testing.assert_allclose(p1, expected, rtol=1e-6)
    np.testing.assert_allclose(p5, p1, rtol=1e-6)
    assert int(s5.count) == 5


# ----------------------------------------------------------------------------------------------
# Sphere: iterates stay on the manifold, momentum is transported
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_tx",
    [
        lambda m: riemannian_sgd(0.1, 0.9, manifolds=m),
        lambda m: riemannian_sgd(0.1, 0.9, True, manifolds=m, use_exp=True),
        lambda m: riemannian_adam(0.05, manifolds=m),
        lambda m: riemannian_adam(0.05, amsgrad=True, manifolds=m, use_exp=True),
    ],
    ids=["sgd", "sgd-nesterov-exp", "adam", "amsgrad-exp"],
)
def test_iterates_stay_on_sphere(make_tx, key):
    sph = _Sphere(4)
    params = {"x": jax.random.normal(key, (7, 4)), "w": jnp.ones(3)}
    params["x"] = params["x"] / jnp.linalg.norm(params["x"], axis=-1, keepdims=True)
    target = jax.random.normal(jax.random.fold_in(key, 1), (7, 4))
    loss = lambda p: jnp.sum((p["x"] - target) ** 2) + jnp.sum(p["w"] ** 2)  # noqa: E731
    tx = make_tx({"x": sph, "w": None})
    p, state = _run(tx, params, jax.grad(loss), 150)
    # float32 retraction renormalizes every step: unit norm to a few eps (17 eps)
    np.testing.assert_allclose(jnp.linalg.norm(p["x"], axis=-1), 1.0, rtol=0, atol=2e-6)
    # converged to the nearest sphere points target / |target|
    expected = target / jnp.linalg.norm(target, axis=-1, keepdims=True)
    np.testing.assert_allclose(p["x"], expected, rtol=0, atol=5e-2)  # 150 steps: convergence
    # the first moment / momentum buffer is tangent at the new points
    buf = state.mu["x"] if isinstance(state, RiemannianAdamState) else state.momentum["x"]
    np.testing.assert_allclose(jnp.sum(buf * p["x"], axis=-1), 0.0, rtol=0, atol=1e-6)


def test_momentum_is_transported(x64):
    """One step from zero state (float64): the buffer is the projection transport of the
    Riemannian gradient to the new point, hence tangent there."""
    sph = _Sphere(3)
    x = np.array([0.6, 0.8, 0.0])
    g = np.array([0.3, -1.0, 2.0])
    lr = 0.2
    tx = riemannian_sgd(lr, 0.9, manifolds=sph)
    state = tx.init(jnp.asarray(x))
    u, state = tx.update(jnp.asarray(g), state, jnp.asarray(x))
    assert isinstance(state, RiemannianSGDState)
    r = g - (x @ g) * x
    y = (x - lr * r) / np.linalg.norm(x - lr * r)
    # float64, a handful of roundings of O(1) values: 1e-12 = 4500 eps
    np.testing.assert_allclose(x + np.asarray(u), y, rtol=1e-12)
    np.testing.assert_allclose(state.momentum, r - (y @ r) * y, rtol=1e-12)
    assert abs(float(jnp.dot(state.momentum, x + u))) < 1e-14
    # Adam: first moment (1 - b1) r, transported the same way; v = (1 - b2) |r|^2 per point.
    # Tolerance 1e-10: 1 - 0.999 loses three digits to cancellation.
    tx = riemannian_adam(lr, manifolds=sph)
    u, state = tx.update(jnp.asarray(g), tx.init(jnp.asarray(x)), jnp.asarray(x))
    d = r / (np.linalg.norm(r) + 1e-8)  # bias-corrected m / (sqrt(v) + eps) after one step
    y = (x - lr * d) / np.linalg.norm(x - lr * d)
    np.testing.assert_allclose(x + np.asarray(u), y, rtol=1e-10)
    np.testing.assert_allclose(state.mu, 0.1 * (r - (y @ r) * y), rtol=1e-10)
    np.testing.assert_allclose(state.nu, 0.001 * (r @ r), rtol=1e-10)


def test_rows_are_independent_points(key):
    """A (n, 3) leaf under one sphere = n separate points: matches running each row alone."""
    sph = _Sphere(3)
    xs = jax.random.normal(key, (4, 3))
    xs = xs / jnp.linalg.norm(xs, axis=-1, keepdims=True)
    c = jnp.array([0.0, 0.0, 1.0])
    grad = lambda p: jnp.cos(p) + c  # noqa: E731
    tx = riemannian_adam(0.1, manifolds=sph)
    p_all, s_all = _run(tx, xs, grad, 3)
    assert s_all.nu.shape == (4,)
    for i in range(4):
        p_i, _ = _run(tx, xs[i], grad, 3)
        # the same float32 steps batched over rows or not: 8 eps
        np.testing.assert_allclose(p_all[i], p_i, rtol=1e-6, atol=1e-7)


def test_stabilize_projects(key):
    sph = _Sphere(3)
    x = jnp.array([1.0, 0.0, 0.0])
    tx = riemannian_sgd(0.3, 0.5, manifolds=sph, use_exp=True, stabilize=1)
    p, s = _run(tx, x, lambda p: jnp.array([0.1, 1.0, -0.5]), 20)
    assert abs(float(jnp.linalg.norm(p)) - 1) < 2e-7
    assert abs(float(jnp.dot(p, s.momentum))) < 1e-6


# ----------------------------------------------------------------------------------------------
# Rayleigh quotient on the sphere: converges to the smallest eigenvector (float64)
# ----------------------------------------------------------------------------------------------


def _rayleigh_problem():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = q @ np.diag([1.0, 2.0, 2.5, 3.0, 4.0, 5.0]) @ q.T
    a = (a + a.T) / 2
    x0 = rng.standard_normal(6)
    return a, x0 / np.linalg.norm(x0)


def _check_eigvec(a, x, atol):
    w, v = np.linalg.eigh(a)
    v0 = v[:, 0] * np.sign(v[:, 0] @ np.asarray(x))
    np.testing.assert_allclose(np.asarray(x), v0, rtol=0, atol=atol)
    np.testing.assert_allclose(
        float(np.asarray(x) @ a @ np.asarray(x)), w[0], atol=max(10 * atol**2, 1e-12)
    )


def _rayleigh_manifolds():
    out = [_Sphere(6)]
    try:  # the library sphere, when present (parallel transport instead of projection)
        from geomjax.manifolds._sphere import Sphere

        out.append(Sphere(5))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("sph", _rayleigh_manifolds(), ids=lambda m: type(m).__name__)
def test_rayleigh_sgd_converges_to_smallest_eigenvector(sph):
    with jax.enable_x64(True):
        a, x0 = _rayleigh_problem()
        a_j = jnp.asarray(a)
        grad = jax.grad(lambda x: x @ a_j @ x)
        x, _ = _run(riemannian_sgd(0.08, 0.5, manifolds=sph), jnp.asarray(x0), grad, 300)
        assert x.dtype == jnp.float64
        _check_eigvec(a, x, atol=1e-10)  # linear convergence, well past float64 resolution


def test_rayleigh_adam_converges_to_smallest_eigenvector():
    with jax.enable_x64(True):
        a, x0 = _rayleigh_problem()
        a_j = jnp.asarray(a)
        grad = jax.grad(lambda x: x @ a_j @ x)
        sched = optax.cosine_decay_schedule(0.05, 400)
        x, _ = _run(riemannian_adam(sched, manifolds=_Sphere(6)), jnp.asarray(x0), grad, 400)
        # Adam's normalised steps need the decaying schedule to settle; the eigenvalue error is
        # quadratic in the vector error, so 1e-7 on the vector (1e-14 on the quotient) is the
        # float64 resolution we can ask of the vector.
        _check_eigvec(a, x, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Errors and misc
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [riemannian_sgd, riemannian_adam])
def test_params_none_raises(make):
    tx = make(0.1, manifolds=_Sphere(3))
    x = jnp.array([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="params"):
        tx.update(x, tx.init(x))
    tx = make(0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(x, tx.init(x), None)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="manifolds"):
        riemannian_adam(0.1, manifolds={"a": _Sphere(3)}).init({"b": jnp.ones(3)})
    with pytest.raises(ValueError, match="shape"):
        riemannian_adam(0.1, manifolds=_Sphere(3)).init(jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="manifolds"):
        riemannian_sgd(0.1, manifolds={"a": "sphere"})
    with pytest.raises(ValueError, match="momentum"):
        riemannian_sgd(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="b2"):
        riemannian_adam(0.1, b2=1.0)
    with pytest.raises(ValueError, match="stabilize"):
        riemannian_adam(0.1, stabilize=0)


def test_zero_gradient_is_finite():
    """Zero Riemannian gradient (g parallel to x): no NaN (debug_nans is on), point unchanged."""
    x = jnp.array([0.0, 1.0, 0.0])
    for tx in (
        riemannian_adam(0.1, manifolds=_Sphere(3)),
        riemannian_sgd(0.1, 0.9, manifolds=_Sphere(3)),
    ):
        p, _ = _run(tx, x, lambda p: 2.0 * p, 3, jit=False)
        np.testing.assert_allclose(p, x, rtol=0, atol=1e-7)


def test_optim_does_not_import_flax():
    """Dependency direction (DESIGN): only geomjax.nn may import flax."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = "import sys, geomjax.optim; assert 'flax' not in sys.modules, 'flax imported'"
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
