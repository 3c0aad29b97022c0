"""Derivatives of the SPD distances in float64 (``jax_debug_nans`` is on for every test).

``jax.test_util.check_grads(order=2, modes=("fwd", "rev"))`` compares first and second derivatives
in every forward/reverse composition with central finite differences; ``check_grads_finite``
checks the gradient and a Hessian(-vector product) for NaN/inf. Points: random pairs, the identity
against a random point, repeated eigenvalues (``diag(1, 1, 4)``, ``Q diag(2, 2, 2, 5) Q^T``), the
identity against ``diag(1, 1, 4)`` (repeated eigenvalues of the whitened/fidelity matrices too),
and coincident points (``dist(X, X) = 0`` with a zero gradient).

Compilation dominates the cost of these checks, so every test here runs under
``jax.disable_jit()`` (op by op: each primitive is compiled once per shape and shared by all
metrics; 2-3x faster than jitting the second-order graphs, and stricter with ``jax_debug_nans``,
which then also sees NaN in masked branches), and the distances of all point pairs of a metric
are ``vmap``-ed into one vector, together with their squares.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import (
    SPDBuresWasserstein,
    SPDGeneralizedBuresWasserstein,
    bures_wasserstein_sqdist,
)
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed
from geomjax.testing import check_grads_finite

M_GBW = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])


def random_spd(rng, n, cond=10.0):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.logspace(0.0, np.log10(cond), n) * rng.uniform(0.5, 2.0)
    return (q * lam) @ q.T


def make_metric(name, n):
    m = np.eye(n)
    m[:3, :3] = M_GBW
    gbw = SPDGeneralizedBuresWasserstein(jnp.asarray(m))
    return {
        "aim": lambda: SPDAffineInvariant(n),
        "le": lambda: SPDLogEuclidean(n),
        "lc": lambda: SPDLogCholesky(n),
        "bw": lambda: SPDBuresWasserstein(n),
        "gbw": lambda: gbw,
        "power_bw": lambda: PowerDeformed(SPDBuresWasserstein(n), 0.5),
        "power_gbw": lambda: PowerDeformed(gbw, -0.7),
        "power_aim": lambda: PowerDeformed(SPDAffineInvariant(n), 1.5),
    }[name]()


@pytest.fixture(autouse=True)
def _op_by_op():
    with jax.disable_jit():
        yield


NAMES = ["aim", "le", "lc", "bw", "gbw", "power_bw", "power_gbw", "power_aim"]


def pairs_n3():
    rng = np.random.default_rng(31)
    x, y = random_spd(rng, 3), random_spd(rng, 3)
    rep = np.diag([1.0, 1.0, 4.0])
    eye = np.eye(3)
    xs = np.stack([x, eye, rep, y, eye])
    ys = np.stack([y, y, y, rep, rep])
    return jnp.asarray(xs), jnp.asarray(ys)


def pairs_n4():
    rng = np.random.default_rng(37)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    rep = (q * np.array([2.0, 2.0, 2.0, 5.0])) @ q.T
    y = random_spd(rng, 4)
    return jnp.asarray(np.stack([rep, y, rep])), jnp.asarray(np.stack([y, rep, np.eye(4)]))


def dist_and_square(name, n):
    """``(Xs, Ys) -> [d_k, d_k^2]_k`` over a stack of pairs, and a scalar version of it."""
    m = make_metric(name, n)

    def vec(xs, ys):
        d = jax.vmap(m.dist)(xs, ys)
        return jnp.concatenate([d, d * d])

    def scalar(xs, ys):
        v = vec(xs, ys)
        return jnp.sum(jnp.linspace(0.5, 1.5, v.size, dtype=v.dtype) * v)

    return vec, scalar


# The power-deformed distances compose powm (tested in tests/linalg) with the base metrics; they
# cost ~5-10 s each to differentiate twice, so they run with -m slow (the default run keeps their
# theta-derivative, their zero gradient at coincident points and the axiom suite).
FAST = ["aim", "le", "lc", "bw", "gbw"]
NAMES_N3 = FAST + [pytest.param(n, marks=pytest.mark.slow) for n in NAMES if n not in FAST]


@pytest.mark.parametrize("name", NAMES_N3)
def test_dist_grads_random_identity_repeated(name, x64):
    xs, ys = pairs_n3()
    vec, scalar = dist_and_square(name, 3)
    assert np.all(np.asarray(vec(xs, ys))[: len(xs)] > 0.1)
    check_grads(vec, (xs, ys), order=2, modes=("fwd", "rev"))
    check_grads_finite(scalar, (xs, ys), order=2, hessian="hvp")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_dist_grads_repeated_n4(name, x64):
    """``Q diag(2, 2, 2, 5) Q^T`` against a random point and the identity (n = 4: new shapes, ~5 s
    of compilation per metric; the default run covers ties with ``diag(1, 1, 4)`` above)."""
    xs, ys = pairs_n4()
    vec, scalar = dist_and_square(name, 4)
    check_grads(vec, (xs, ys), order=2, modes=("fwd", "rev"))
    check_grads_finite(scalar, (xs, ys), order=2, hessian="hvp")


@pytest.mark.parametrize("name", NAMES)
def test_dist_at_coincident_points_is_zero_with_zero_gradient(name, x64):
    rng = np.random.default_rng(41)
    xs = jnp.asarray(np.stack([random_spd(rng, 3), np.eye(3), np.diag([1.0, 1.0, 4.0])]))
    m = make_metric(name, 3)

    def total(a, b):
        return jnp.sum(jax.vmap(m.dist)(a, b))

    assert np.all(np.asarray(jax.vmap(m.dist)(xs, xs)) == 0.0)
    ga, gb = jax.grad(total, argnums=(0, 1))(xs, xs)
    assert np.all(np.asarray(ga) == 0.0) and np.all(np.asarray(gb) == 0.0)


def test_bures_sqdist_second_order_at_coincident_points(x64):
    """d^2 is smooth across the diagonal: exact second derivatives at Y = X (identity included)."""
    rng = np.random.default_rng(43)
    x = random_spd(rng, 3)
    xs = jnp.asarray(np.stack([x, np.eye(3), np.diag([1.0, 1.0, 4.0])]))
    f = jax.vmap(bures_wasserstein_sqdist)
    check_grads(f, (xs, xs), order=2, modes=("fwd", "rev"))
    # Hessian against the metric: d^2(X, X + E) = |E|_X^2 + O(E^3), second derivative 2 |E|_X^2.
    e = rng.normal(size=(3, 3))
    e = jnp.asarray(0.5 * (e + e.T))
    bw = SPDBuresWasserstein(3)
    for p in xs:

        def along(t, p=p):
            return bures_wasserstein_sqdist(p, p + t * e)

        second = jax.jvp(lambda t: jax.jvp(along, (t,), (1.0,))[1], (0.0,), (1.0,))[1]
        np.testing.assert_allclose(float(second), 2.0 * float(bw.inner(p, e, e)), rtol=1e-10)


@pytest.mark.slow
def test_generalized_bw_grads_in_metric_matrix(x64):
    """d/dM of the GBW distance at a generic M and at M = I (repeated eigenvalues of M); ~10 s,
    the default run keeps the first derivative (below)."""
    rng = np.random.default_rng(47)
    x, y = jnp.asarray(random_spd(rng, 3)), jnp.asarray(random_spd(rng, 3))
    ms = jnp.asarray(np.stack([M_GBW, np.eye(3)]))

    def f(ms):
        return jax.vmap(lambda mm: SPDGeneralizedBuresWasserstein(mm).dist(x, y))(ms)

    check_grads(f, (ms,), order=2, modes=("fwd", "rev"))
    check_grads_finite(lambda ms: jnp.sum(f(ms)), (ms,), order=2, hessian="hvp")


@pytest.mark.slow
@pytest.mark.parametrize("base", ["gbw", "bw", "aim"])
def test_power_deformed_grads_in_theta(base, x64):
    """d/dtheta of the deformed distances (theta traced: X^theta = exp(theta log X)).

    The traced-power path is the most expensive to differentiate twice (~7-13 s per base metric);
    the default run keeps the first derivative in theta (below).
    """
    rng = np.random.default_rng(53)
    x, y = jnp.asarray(random_spd(rng, 3)), jnp.asarray(np.diag([1.0, 1.0, 4.0]))
    metric = {
        "gbw": SPDGeneralizedBuresWasserstein(jnp.asarray(M_GBW)),
        "bw": SPDBuresWasserstein(3),
        "aim": SPDAffineInvariant(3),
    }[base]

    def f(theta):
        return PowerDeformed(metric, theta).dist(x, y)

    for theta in (0.5, -0.7):
        check_grads(f, (jnp.asarray(theta),), order=2, modes=("fwd", "rev"))
        # hessian="full": the 1x1 Hessian is cheap (and "hvp" builds its direction with
        # jnp.linspace(.., num=1), which divides 0/0 in a masked branch under disable_jit).
        check_grads_finite(f, (jnp.asarray(theta),), order=2)


def test_generalized_bw_grad_in_metric_matrix_matches_finite_differences(x64):
    """Default-run check of d/dM at M = I and a generic M: jax.grad vs central differences along a
    symmetric direction (jitted: one compilation)."""
    rng = np.random.default_rng(61)
    x, y = jnp.asarray(random_spd(rng, 3)), jnp.asarray(random_spd(rng, 3))
    e = rng.normal(size=(3, 3))
    e = 0.5 * (e + e.T)

    def f(mm):
        return SPDGeneralizedBuresWasserstein(mm).dist(x, y)

    with jax.disable_jit(False):
        g, fj = jax.jit(jax.grad(f)), jax.jit(f)
        for mm in (M_GBW, np.eye(3)):
            h = 1e-5
            fd = (float(fj(jnp.asarray(mm + h * e))) - float(fj(jnp.asarray(mm - h * e)))) / (2 * h)
            gm = np.asarray(g(jnp.asarray(mm)))
            assert np.all(np.isfinite(gm))
            np.testing.assert_allclose(np.sum(gm * e), fd, rtol=1e-8)


def test_power_deformed_grad_in_theta_matches_finite_differences(x64):
    """Default-run check of the theta path: jax.grad vs central differences (one compilation)."""
    rng = np.random.default_rng(59)
    x, y = jnp.asarray(random_spd(rng, 3)), jnp.asarray(np.diag([1.0, 1.0, 4.0]))
    metric = SPDGeneralizedBuresWasserstein(jnp.asarray(M_GBW))

    def f(theta):
        return PowerDeformed(metric, theta).dist(x, y)

    with jax.disable_jit(False):
        g = jax.jit(jax.grad(f))
        fj = jax.jit(f)
        for theta in (0.5, -0.7):
            h = 1e-5
            fd = (float(fj(theta + h)) - float(fj(theta - h))) / (2 * h)
            np.testing.assert_allclose(float(g(jnp.asarray(theta))), fd, rtol=1e-8)
