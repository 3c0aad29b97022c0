"""Lanczos, extreme eigenpairs and stochastic Lanczos quadrature against dense float64 eigh."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.curvature._hvp import hvp
from geomjax.curvature._lanczos import lanczos, top_eigenvalues
from geomjax.curvature._slq import slq_density


def _hessian_mvp(m):
    return lambda v: hvp(m.loss, m.params, v)[1]


def _sym(d, seed, rank=None):
    rng = np.random.default_rng(seed)
    if rank is None:
        a = rng.normal(size=(d, d))
        return (a + a.T) / 2
    b = rng.normal(size=(d, rank))
    return b @ b.T


def test_top5_hessian_eigenvalues_of_mlp(mlp64):
    m = mlp64
    ev = np.linalg.eigvalsh(m.hess)
    top = jax.jit(lambda k: top_eigenvalues(_hessian_mvp(m), m.params, k, 5, m.d))(
        jax.random.key(0)
    )
    np.testing.assert_allclose(top.eigenvalues, ev[::-1][:5], rtol=0, atol=1e-6)
    assert np.max(np.abs(np.asarray(top.eigenvalues) - ev[::-1][:5])) < 1e-11  # in fact
    assert bool(jnp.all(top.converged))
    # Eigenvectors: a pytree like params with a leading axis 5, unit norm, H y = theta y.
    assert jax.tree.structure(top.eigenvectors) == jax.tree.structure(m.params)
    vecs = np.asarray(jax.vmap(lambda t: jax.flatten_util.ravel_pytree(t)[0])(top.eigenvectors))
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=0, atol=1e-12)
    resid = np.linalg.norm(vecs @ m.hess - np.asarray(top.eigenvalues)[:, None] * vecs, axis=1)
    assert np.all(resid < 1e-9)


def test_partial_lanczos_ritz_values_are_certified_by_residuals(mlp64):
    # With n_iter < d, every Ritz value lies within its residual norm of an eigenvalue of H.
    m = mlp64
    ev = np.linalg.eigvalsh(m.hess)
    res = jax.jit(lambda k: lanczos(_hessian_mvp(m), m.params, k, 20))(jax.random.key(1))
    assert res.ritz_values.shape == (20,) and res.betas.shape == (19,)
    dist = np.min(np.abs(np.asarray(res.ritz_values)[:, None] - ev[None]), axis=1)
    assert np.all(dist <= np.asarray(res.residuals) + 1e-10)
    # ... and the extreme one has converged after 20 steps.
    np.testing.assert_allclose(res.ritz_values[-1], ev[-1], rtol=0, atol=1e-8)
    assert int(res.n_iters) == 20


@pytest.mark.parametrize("which", ["smallest", "magnitude"])
def test_smallest_and_magnitude(x64, which):
    a = _sym(12, 0)
    ev = np.linalg.eigvalsh(a)
    out = jax.jit(lambda k: top_eigenvalues(lambda v: a @ v, jnp.zeros(12), k, 3, 12, which=which))(
        jax.random.key(2)
    )
    want = ev[:3] if which == "smallest" else ev[np.argsort(-np.abs(ev))][:3]
    np.testing.assert_allclose(out.eigenvalues, want, rtol=0, atol=1e-10)


def test_full_lanczos_on_pytree_operator_with_breakdown(x64):
    # A rank-3 PSD operator on a dict pytree (d = 12): the Krylov space is exhausted after 3
    # steps; Lanczos restarts (beta = 0) and still returns the whole spectrum, zeros included,
    # with no NaN (jax_debug_nans is on).
    a = _sym(12, 1, rank=3)
    like = {"u": jnp.zeros((2, 3)), "w": jnp.zeros(6)}
    flat = lambda t: jnp.concatenate([t["u"].ravel(), t["w"]])  # noqa: E731 (ravel order)
    mvp = lambda t: {"u": (a @ flat(t))[:6].reshape(2, 3), "w": (a @ flat(t))[6:]}  # noqa: E731
    res = jax.jit(lambda k: lanczos(mvp, like, k, 12, return_vectors=True))(jax.random.key(3))
    np.testing.assert_allclose(res.ritz_values, np.linalg.eigvalsh(a), rtol=0, atol=1e-10)
    assert int(res.n_restarts) >= 1
    assert np.any(np.asarray(res.betas) == 0.0)
    assert res.ritz_vectors["u"].shape == (12, 2, 3)
    vecs = np.concatenate(
        [np.asarray(res.ritz_vectors["u"]).reshape(12, 6), np.asarray(res.ritz_vectors["w"])],
        axis=1,
    )
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(12), rtol=0, atol=1e-10)  # orthonormal
    np.testing.assert_allclose(vecs @ a @ vecs.T, np.diag(res.ritz_values), rtol=0, atol=1e-10)


def test_init_vector_and_immediate_breakdown(x64):
    # Starting on an eigenvector: beta_1 = 0 at once; alpha_1 is its eigenvalue.
    a = np.diag(np.arange(1.0, 7.0))
    res = jax.jit(lambda k: lanczos(lambda v: a @ v, jnp.zeros(6), k, 6, init=jnp.eye(6)[2] * 3))(
        jax.random.key(4)
    )
    np.testing.assert_allclose(res.alphas[0], 3.0, rtol=0, atol=1e-14)
    assert float(res.betas[0]) == 0.0
    np.testing.assert_allclose(res.ritz_values, np.arange(1.0, 7.0), rtol=0, atol=1e-12)


def test_without_reorthogonalization(x64):
    # Three-term recurrence only (O(d) memory): the well-separated top eigenvalue converges.
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    ev = np.concatenate([np.linspace(0.0, 1.0, 39), [3.0]])
    a = (q * ev) @ q.T
    res, ref = jax.jit(
        lambda k: (
            lanczos(lambda v: a @ v, jnp.zeros(40), k, 15, reorthogonalize=False),
            lanczos(lambda v: a @ v, jnp.zeros(40), k, 15),
        )
    )(jax.random.key(5))
    assert res.ritz_vectors is None
    np.testing.assert_allclose(res.ritz_values[-1], 3.0, rtol=0, atol=1e-10)
    # The tridiagonal is the one from the reorthogonalized run, up to loss of orthogonality.
    np.testing.assert_allclose(res.alphas[:5], ref.alphas[:5], rtol=0, atol=1e-8)


def test_slq_density_integrates_to_one_and_matches_moments(mlp64):
    m = mlp64
    h = m.hess
    d = m.d
    ev = np.linalg.eigvalsh(h)
    sigma = 0.05 * (ev[-1] - ev[0])
    grid = np.linspace(ev[0] - 8 * sigma, ev[-1] + 8 * sigma, 4001)
    n_probes = 24
    out = jax.jit(lambda k: slq_density(_hessian_mvp(m), m.params, k, 12, n_probes, grid, sigma))(
        jax.random.key(6)
    )
    dens, nodes, w = (np.asarray(a) for a in out)
    assert dens.shape == grid.shape and nodes.shape == w.shape == (n_probes, 12)
    assert np.all(dens >= 0)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=0, atol=1e-12)
    dx = grid[1] - grid[0]
    np.testing.assert_allclose(np.sum(dens) * dx, 1.0, rtol=0, atol=1e-6)
    # The smoothed density's first two moments are the quadrature's (+ sigma^2 for the second).
    m1 = np.sum(w * nodes) / n_probes
    m2 = np.sum(w * nodes**2) / n_probes
    np.testing.assert_allclose(np.sum(grid * dens) * dx, m1, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.sum(grid**2 * dens) * dx, m2 + sigma**2, rtol=0, atol=1e-8)
    # Gauss quadrature is exact for t and t^2, so with normalized Rademacher probes m1 and m2
    # are Hutchinson estimates of tr(H)/d and tr(H^2)/d; exact per-probe standard deviations:
    # sqrt(2 sum_{i != j} A_ij^2) / d for A = H, H^2.
    for k, mk in [(1, m1), (2, m2)]:
        a = np.linalg.matrix_power(h, k)
        sd = np.sqrt(2 * (np.sum(a**2) - np.sum(np.diag(a) ** 2))) / d
        assert abs(mk - np.trace(a) / d) < 5 * sd / np.sqrt(n_probes), (k, mk, np.trace(a) / d)


def test_slq_exact_on_identity_multiple(x64):
    # A = 2 I: every probe gives one node at 2 with weight 1 (then restarts with weight 0).
    grid = np.linspace(0.0, 4.0, 9)
    out = jax.jit(lambda k: slq_density(lambda v: 2.0 * v, jnp.zeros(5), k, 3, 2, grid, 0.5))(
        jax.random.key(7)
    )
    want = np.exp(-0.5 * ((grid - 2.0) / 0.5) ** 2) / (np.sqrt(2 * np.pi) * 0.5)
    np.testing.assert_allclose(out.density, want, rtol=0, atol=1e-12)


def test_validation_errors(x64):
    a = np.eye(4)
    mvp = lambda v: a @ v  # noqa: E731
    like = jnp.zeros(4)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`n_iter`"):
        lanczos(mvp, like, key, 0)
    with pytest.raises(ValueError, match="`n_iter`"):
        lanczos(mvp, like, key, 5)  # > d
    with pytest.raises(TypeError, match="`n_iter`"):
        lanczos(mvp, like, key, 2.0)
    with pytest.raises(ValueError, match="`mvp"):
        lanczos(lambda v: v[:3], like, key, 2)
    with pytest.raises(ValueError, match="`init`"):
        lanczos(mvp, like, key, 2, init=jnp.ones(3))
    with pytest.raises(ValueError, match="`k`"):
        top_eigenvalues(mvp, like, key, 3, 2)
    with pytest.raises(ValueError, match="`which`"):
        top_eigenvalues(mvp, like, key, 1, 2, which="middle")
    grid = jnp.linspace(0.0, 2.0, 5)
    with pytest.raises(ValueError, match="`sigma`"):
        slq_density(mvp, like, key, 2, 1, grid, 0.0)
    with pytest.raises(ValueError, match="`grid`"):
        slq_density(mvp, like, key, 2, 1, grid[None], 0.1)
    with pytest.raises(ValueError, match="`n_probes`"):
        slq_density(mvp, like, key, 2, 0, grid, 0.1)
    with pytest.raises(ValueError, match="`n_iter`"):
        slq_density(mvp, like, key, 0, 1, grid, 0.1)
