"""hvp, ggn_vp, fisher_vp, empirical_fisher_vp against dense float64 Hessians / Jacobians."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.curvature._fisher import empirical_fisher_vp, fisher_vp
from geomjax.curvature._ggn import ggn_vp
from geomjax.curvature._hvp import hvp
from geomjax.testing import matmul_eps, rounding_tolerance

TOL64 = 1e-10  # float64 default: dense references by other routes (autodiff vs formulas)


def _dense_jacobian(m):
    """(n, k, d) Jacobian of the batch outputs wrt the flat parameters."""
    return np.asarray(jax.jacobian(lambda t: m.mlp(m.unravel(t), m.x))(m.flat))


def _softmax_fisher(m):
    """(1/n) sum_i J_i^T (diag p_i - p_i p_i^T) J_i, in NumPy from the dense Jacobian."""
    jac = _dense_jacobian(m)
    p = np.asarray(jax.nn.softmax(m.mlp(m.params, m.x), axis=-1))
    lam = np.stack([np.diag(q) - np.outer(q, q) for q in p])
    return np.einsum("nkd,nkl,nle->de", jac, lam, jac) / jac.shape[0]


def test_hvp_equals_dense_hessian(mlp64):
    v = mlp64.random_like(mlp64.params, 2)
    g, hv = hvp(mlp64.loss, mlp64.params, v)
    np.testing.assert_allclose(mlp64.to_flat(hv), mlp64.hess @ mlp64.to_flat(v), rtol=0, atol=TOL64)
    g_ref = jax.grad(lambda t: mlp64.loss(mlp64.unravel(t)))(mlp64.flat)
    np.testing.assert_allclose(mlp64.to_flat(g), g_ref, rtol=0, atol=TOL64)


@pytest.mark.parametrize("loss", ["cross_entropy", "half_mse"])
def test_ggn_vp_equals_dense_ggn(mlp64, loss):
    m = mlp64
    loss_fn = getattr(m, loss)
    targets = m.labels if loss == "cross_entropy" else m.y
    jac = _dense_jacobian(m)
    n, k, d = jac.shape
    z = m.mlp(m.params, m.x)
    h_out = np.asarray(jax.hessian(lambda o: loss_fn(o, targets))(z)).reshape(n * k, n * k)
    jf = jac.reshape(n * k, d)
    ggn = jf.T @ h_out @ jf
    v = m.random_like(m.params, 3)
    out = ggn_vp(m.mlp, loss_fn, m.params, v, (m.x, targets))
    assert jax.tree.structure(out) == jax.tree.structure(m.params)
    np.testing.assert_allclose(m.to_flat(out), ggn @ m.to_flat(v), rtol=0, atol=TOL64)
    # GGN is PSD for these losses, and differs from the Hessian (the MLP is not linear).
    assert np.linalg.eigvalsh(ggn).min() > -1e-12
    assert np.abs(ggn - m.hess).max() > 1e-3


def test_ggn_vp_linear_least_squares_is_hessian(x64):
    # For a linear model with squared error the GGN is the exact Hessian X^T X / n.
    rng = np.random.default_rng(0)
    x, y, w = rng.normal(size=(7, 4)), rng.normal(size=7), rng.normal(size=4)
    v = rng.normal(size=4)
    out = ggn_vp(lambda w, x: x @ w, lambda z, t: 0.5 * jnp.mean((z - t) ** 2), w, v, (x, y))
    np.testing.assert_allclose(out, x.T @ x @ v / 7, rtol=0, atol=TOL64)


def test_ggn_vp_float32_matches_float64(helpers):
    # float32: about 1e-5 relative of the float64 product.
    p32 = helpers.mlp_params(dtype=np.float32)
    x, labels, _ = helpers.mlp_data(dtype=np.float32)
    v32 = helpers.random_like(p32, 4)
    out32 = ggn_vp(helpers.mlp, helpers.cross_entropy, p32, v32, (x, labels))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(out32))
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
        out64 = ggn_vp(
            helpers.mlp,
            helpers.cross_entropy,
            to64(p32),
            to64(v32),
            (jnp.asarray(x, jnp.float64), labels),
        )
        ref = helpers.to_flat(out64)
    # float32 J^T H J v through a 3-6-3 MLP over a batch of 8: sums of <= 8 * 6 products per
    # entry at the matmul precision, relative to the largest entry (cancellation in J^T ...)
    tol = rounding_tolerance(np.float32, n_ops=8 * 6, eps=matmul_eps(np.float32))
    np.testing.assert_allclose(helpers.to_flat(out32), ref, rtol=0, atol=tol * np.abs(ref).max())


def test_fisher_vp_softmax_equals_dense_fisher_and_ggn(mlp64):
    m = mlp64
    v = m.random_like(m.params, 5)
    out = fisher_vp(m.mlp, m.params, v, m.x)
    np.testing.assert_allclose(
        m.to_flat(out), _softmax_fisher(m) @ m.to_flat(v), rtol=0, atol=TOL64
    )
    # The true Fisher of the softmax likelihood is the GGN of the cross-entropy (any labels).
    ggn = ggn_vp(m.mlp, m.cross_entropy, m.params, v, (m.x, m.labels))
    np.testing.assert_allclose(m.to_flat(out), m.to_flat(ggn), rtol=0, atol=TOL64)


def test_fisher_vp_softmax_monte_carlo_definition(mlp64):
    # Independent of the closed form: E_{y ~ p} [s_y s_y^T] with the score s_y of log p(y|x),
    # summed exactly over the k classes per example.
    m = mlp64
    v = m.to_flat(m.random_like(m.params, 6))

    def logp(t, i, c):
        return jax.nn.log_softmax(m.mlp_one(m.unravel(t), m.x[i]))[c]

    fisher = np.zeros((m.d, m.d))
    p = np.asarray(jax.nn.softmax(m.mlp(m.params, m.x), axis=-1))
    score = jax.jit(jax.grad(logp), static_argnums=2)
    for i in range(m.x.shape[0]):
        for c in range(p.shape[1]):
            s = np.asarray(score(m.flat, i, c))
            fisher += p[i, c] * np.outer(s, s)
    fisher /= m.x.shape[0]
    out = fisher_vp(m.mlp, m.params, m.unravel(v), m.x)
    np.testing.assert_allclose(m.to_flat(out), fisher @ v, rtol=0, atol=TOL64)


def test_fisher_vp_gaussian_equals_jtj_and_ggn(mlp64):
    m = mlp64
    v = m.random_like(m.params, 7)
    jac = _dense_jacobian(m)
    jf = jac.reshape(-1, m.d)
    out = fisher_vp(m.mlp, m.params, v, m.x, likelihood="gaussian")
    np.testing.assert_allclose(
        m.to_flat(out), jf.T @ jf @ m.to_flat(v) / jac.shape[0], rtol=0, atol=TOL64
    )
    ggn = ggn_vp(m.mlp, m.half_mse, m.params, v, (m.x, m.y))
    np.testing.assert_allclose(m.to_flat(out), m.to_flat(ggn), rtol=0, atol=TOL64)


def test_empirical_fisher_vp_equals_dense(mlp64):
    m = mlp64

    def per_example(p, xy):
        x, c = xy
        return -jax.nn.log_softmax(m.mlp_one(p, x))[c]

    grads = np.asarray(
        jax.jacobian(
            lambda t: jax.vmap(per_example, in_axes=(None, 0))(m.unravel(t), (m.x, m.labels))
        )(m.flat)
    )  # (n, d)
    emp = grads.T @ grads / grads.shape[0]
    v = m.random_like(m.params, 8)
    out = jax.jit(empirical_fisher_vp, static_argnums=0)(per_example, m.params, v, (m.x, m.labels))
    np.testing.assert_allclose(m.to_flat(out), emp @ m.to_flat(v), rtol=0, atol=TOL64)
    # ... and it is not the true Fisher.
    assert np.abs(emp - _softmax_fisher(m)).max() > 1e-3


def test_validation_errors_name_the_argument(mlp64):
    m = mlp64
    v = m.random_like(m.params, 9)
    bad_v = dict(v, w1=v["w1"][:2])
    with pytest.raises(ValueError, match="`v`"):
        ggn_vp(m.mlp, m.cross_entropy, m.params, bad_v, (m.x, m.labels))
    with pytest.raises(ValueError, match="`batch`"):
        ggn_vp(m.mlp, m.cross_entropy, m.params, v, (m.x,))
    with pytest.raises(ValueError, match="`loss_fn`"):
        ggn_vp(m.mlp, lambda z, t: z, m.params, v, (m.x, m.labels))
    with pytest.raises(ValueError, match="`likelihood`"):
        fisher_vp(m.mlp, m.params, v, m.x, likelihood="poisson")
    with pytest.raises(ValueError, match="`v`"):
        fisher_vp(m.mlp, m.params, bad_v, m.x)
    with pytest.raises(ValueError, match="`model_fn`"):
        fisher_vp(lambda p, x: m.mlp(p, x)[:, 0], m.params, v, m.x)  # (n,) logits
    with pytest.raises(TypeError, match="`params`"):
        fisher_vp(m.mlp, {"a": jnp.arange(3)}, {"a": jnp.arange(3)}, m.x)
    per_example = lambda p, xy: jnp.sum(m.mlp_one(p, xy[0]))  # noqa: E731
    with pytest.raises(ValueError, match="`batch`"):
        empirical_fisher_vp(per_example, m.params, v, (m.x, m.labels[:3]))
    with pytest.raises(ValueError, match="`v`"):
        empirical_fisher_vp(per_example, m.params, bad_v, (m.x, m.labels))
