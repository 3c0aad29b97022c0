"""mdm_fit / mdm_predict / mdm_distances against a brute-force float64 numpy MDM and
pyriemann.classification.MDM (optional oracle)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.spdnet._mdm import MDMState, mdm_distances, mdm_fit, mdm_predict
from geomjax.testing import assert_allclose_dtype, rounding_tolerance

N, C = 3, 3


def _data(seed=0, per_class=6):
    """Three classes of SPD matrices scattered around different centers."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(C):
        center = np.diag(np.exp(0.8 * rng.normal(size=N)))
        root = np.linalg.cholesky(center)
        for _ in range(per_class):
            a = 0.4 * rng.normal(size=(N, N))
            lam, q = np.linalg.eigh(0.5 * (a + a.T))
            xs.append(root @ (q * np.exp(lam)) @ q.T @ root.T)
            ys.append(c)
    order = rng.permutation(len(ys))
    return np.asarray(xs)[order], np.asarray(ys, np.int32)[order]


def _fn(s, f):
    lam, q = np.linalg.eigh(s)
    return (q * f(lam)) @ q.T


def _np_riemann_mean(xs, w):
    w = w / w.sum()
    m = _fn(np.tensordot(w, np.stack([_fn(x, np.log) for x in xs]), axes=1), np.exp)
    for _ in range(200):
        r, ri = _fn(m, np.sqrt), _fn(m, lambda t: t**-0.5)
        step = np.tensordot(w, np.stack([_fn(ri @ x @ ri, np.log) for x in xs]), axes=1)
        m = r @ _fn(step, np.exp) @ r
        if np.linalg.norm(step) < 1e-14:
            break
    return m


def _np_riemann_dist(a, b):
    """Generalized eigenvalues of (b, a): the eigenvalues of a^-1 b."""
    return np.sqrt(np.sum(np.log(scipy.linalg.eigvalsh(b, a)) ** 2))


def _np_le_mean(xs, w):
    w = w / w.sum()
    return _fn(np.tensordot(w, np.stack([_fn(x, np.log) for x in xs]), axes=1), np.exp)


def _np_le_dist(a, b):
    return np.linalg.norm(_fn(a, np.log) - _fn(b, np.log))


@pytest.mark.parametrize("kind", ["riemann", "logeuclid"])
def test_matches_brute_force(kind, x64):
    x, y = _data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    metric, np_mean, np_dist = {
        "riemann": (SPDAffineInvariant(N), _np_riemann_mean, _np_riemann_dist),
        "logeuclid": (SPDLogEuclidean(N), _np_le_mean, _np_le_dist),
    }[kind]
    state = jax.jit(lambda x, y, w: mdm_fit(x, y, C, metric=metric, sample_weight=w, max_iter=100))(
        x, y, w
    )
    assert isinstance(state, MDMState)
    assert state.means.shape == (C, N, N) and bool(jnp.all(state.converged))
    np.testing.assert_allclose(state.class_weights, [w[y == c].sum() for c in range(C)], rtol=1e-12)
    ref_means = np.stack([np_mean(x[y == c], w[y == c]) for c in range(C)])
    np.testing.assert_allclose(state.means, ref_means, rtol=1e-9, atol=1e-10)
    xt, _ = _data(seed=2, per_class=3)
    d = jax.jit(lambda s, xt: mdm_distances(s, xt, metric=metric))(state, xt)
    ref_d = np.array([[np_dist(m, xi) for m in ref_means] for xi in xt])
    np.testing.assert_allclose(d, ref_d, rtol=1e-9, atol=1e-10)
    pred = mdm_predict(state, xt, metric=metric)
    assert pred.dtype == jnp.int32
    np.testing.assert_array_equal(pred, ref_d.argmin(axis=1))


@pytest.mark.parametrize("kind", ["riemann", "logeuclid"])
def test_matches_pyriemann(kind, x64):
    classification = pytest.importorskip("pyriemann.classification")
    x, y = _data(3)
    w = np.random.default_rng(4).uniform(0.5, 2.0, size=len(y))
    metric = SPDAffineInvariant(N) if kind == "riemann" else SPDLogEuclidean(N)
    clf = classification.MDM(metric=kind).fit(x, y, sample_weight=w)
    state = jax.jit(lambda x, y, w: mdm_fit(x, y, C, metric=metric, sample_weight=w))(x, y, w)
    # pyriemann's Riemannian mean stops at a gradient norm of 1e-8 (ours at 1e-12).
    np.testing.assert_allclose(state.means, clf.covmeans_, rtol=1e-7, atol=1e-8)
    xt, _ = _data(seed=5, per_class=3)
    d, pred = jax.jit(
        lambda s, xt: (mdm_distances(s, xt, metric=metric), mdm_predict(s, xt, metric=metric))
    )(state, xt)
    np.testing.assert_allclose(d, clf.transform(xt), rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(pred, clf.predict(xt))


def test_jit_float32_and_empty_class():
    x, y = _data(6)
    x32 = jnp.asarray(x, jnp.float32)
    fit = jax.jit(mdm_fit, static_argnames=("n_classes",))
    state = fit(x32, jnp.asarray(y), n_classes=C + 1)  # class 3 has no training point
    assert state.means.dtype == jnp.float32
    np.testing.assert_array_equal(state.converged, [True, True, True, False])
    assert float(state.class_weights[C]) == 0.0
    assert bool(jnp.all(jnp.isfinite(state.means)))
    d = jax.jit(mdm_distances)(state, x32)
    assert bool(jnp.all(jnp.isinf(d[:, C]))) and bool(jnp.all(jnp.isfinite(d[:, :C])))
    pred = jax.jit(mdm_predict)(state, x32)
    assert int(jnp.max(pred)) < C
    # float32 means agree with the float64 brute force to float32 accuracy.
    with jax.enable_x64(True):
        ref = np.stack(
            [_np_riemann_mean(x[y == c], np.ones(int((y == c).sum()))) for c in range(C)]
        )
    # per class: eigh-based float32 iterations on 3x3 matrices, errors ~eps cond(mean) (up to
    # 38 here; linear growth in N); the old elementwise 2e-5 used 0.28 of itself
    for c in range(C):
        tol = rounding_tolerance(jnp.float32, n_ops=N, cond=np.linalg.cond(ref[c]), growth="linear")
        assert_allclose_dtype(state.means[c], ref[c], rtol=tol)
    # Predictions agree with the float64 brute force wherever its margin exceeds float32 noise.
    ref_d = np.array([[_np_riemann_dist(m, xi) for m in ref] for xi in x])
    margin = np.sort(ref_d, axis=1)[:, 1] - np.sort(ref_d, axis=1)[:, 0]
    np.testing.assert_array_equal(
        np.asarray(pred)[margin > 1e-3], ref_d.argmin(axis=1)[margin > 1e-3]
    )
    # float32 distances through eigh of whitened 3x3 matrices with cond up to ~100: ~1e-5
    np.testing.assert_allclose(d[:, :C], ref_d, rtol=1e-4, atol=1e-4)


def test_gradient_through_fit(x64):
    x, y = _data(7, per_class=2)

    def loss(x):
        state = mdm_fit(x, y, C, max_iter=10)
        return jnp.sum(mdm_distances(state, x[:2]) ** 2)

    g = jax.jit(jax.grad(loss))(jnp.asarray(x))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_errors():
    x, y = _data(8, per_class=2)
    with pytest.raises(TypeError, match="labels"):
        mdm_fit(x, y.astype(np.float32), C)
    with pytest.raises(ValueError, match="labels"):
        mdm_fit(x, y[:-1], C)
    with pytest.raises(ValueError, match="n_classes"):
        mdm_fit(x, y, 0)
    with pytest.raises(ValueError, match="`x`"):
        mdm_fit(x[0], y, C)
    with pytest.raises(ValueError, match="sample_weight"):
        mdm_fit(x, y, C, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="`metric`"):
        mdm_fit(x, y, C, metric=SPDAffineInvariant(N + 1))
