"""tangent_space / untangent_space against float64 scipy formulas, pyriemann (optional oracle),
and the isometry property <v1, v2> = <log_C X1, log_C X2>_C for every SPD metric."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import SPDBuresWasserstein, SPDGeneralizedBuresWasserstein
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed
from geomjax.spdnet._tangent_space import tangent_space, untangent_space
from geomjax.testing import assert_allclose_dtype, check_grads_finite, rounding_tolerance

N = 3


def _spd(seed, n=N, k=None):
    rng = np.random.default_rng(seed)
    shape = (n, n) if k is None else (k, n, n)
    a = rng.normal(size=shape)
    return a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(n)


def _np_upper(s):
    """Weighted upper triangle, row-major, written out with loops."""
    n = s.shape[0]
    return np.array(
        [s[i, j] * (1.0 if i == j else np.sqrt(2.0)) for i in range(n) for j in range(i, n)]
    )


def _np_fn(s, f):
    lam, q = np.linalg.eigh(s)
    return (q * f(lam)) @ q.T


def test_affine_invariant_matches_scipy_formula(dtype):
    x, c = _spd(0), _spd(1)
    c_isqrt = np.linalg.inv(scipy.linalg.sqrtm(c).real)
    ref = _np_upper(scipy.linalg.logm(c_isqrt @ x @ c_isqrt).real)
    v = tangent_space(jnp.asarray(x, dtype), jnp.asarray(c, dtype))
    assert v.shape == (N * (N + 1) // 2,) and v.dtype == dtype
    # eigh-based sqrt / log of N x N matrices: eigenvalue errors ~eps ||.||, amplified by
    # cond(C) cond(X) in C^-1/2 X C^-1/2 (linear growth in N)
    cond = np.linalg.cond(x) * np.linalg.cond(c)
    tol = rounding_tolerance(dtype, n_ops=N, cond=cond, growth="linear")
    assert_allclose_dtype(v, ref, rtol=tol)
    back = untangent_space(v, jnp.asarray(c, dtype))
    assert_allclose_dtype(back, x, rtol=tol)


def test_log_euclidean_and_log_cholesky_match_numpy(x64):
    x, c = _spd(2), _spd(3)
    le = tangent_space(x, c, metric=SPDLogEuclidean(N))
    np.testing.assert_allclose(
        le, _np_upper(_np_fn(x, np.log) - _np_fn(c, np.log)), rtol=1e-10, atol=1e-12
    )
    lx, lc = np.linalg.cholesky(x), np.linalg.cholesky(c)
    lc_v = np.asarray(tangent_space(x, c, metric=SPDLogCholesky(N)))
    # Entry (i, j), i <= j, of the upper triangle is the (j, i) Cholesky difference (log-ratio on the diagonal).
    ref = [
        np.log(lx[i, i] / lc[i, i]) if i == j else lx[j, i] - lc[j, i]
        for i in range(N)
        for j in range(i, N)
    ]
    np.testing.assert_allclose(lc_v, ref, rtol=1e-10, atol=1e-12)


def test_matches_pyriemann(x64):
    pytest.importorskip("pyriemann")
    try:
        from pyriemann.geometry.tangentspace import tangent_space as pr_ts
        from pyriemann.geometry.tangentspace import untangent_space as pr_uts
    except ImportError:  # pyriemann < 0.12
        from pyriemann.utils.tangentspace import tangent_space as pr_ts
        from pyriemann.utils.tangentspace import untangent_space as pr_uts
    xs, c = _spd(4, n=4, k=5), _spd(5, n=4)
    ours = jax.vmap(tangent_space, in_axes=(0, None))(xs, c)
    np.testing.assert_allclose(ours, pr_ts(xs, c, metric="riemann"), rtol=1e-10, atol=1e-12)
    back = jax.vmap(untangent_space, in_axes=(0, None))(ours, c)
    np.testing.assert_allclose(
        back, pr_uts(np.asarray(ours), c, metric="riemann"), rtol=1e-10, atol=1e-10
    )


def _metrics():
    m = _spd(9)
    return {
        "affine": SPDAffineInvariant(N),
        "log_euclidean": SPDLogEuclidean(N),
        "log_cholesky": SPDLogCholesky(N),
        "bures_wasserstein": SPDBuresWasserstein(N),
        "generalized_bw": SPDGeneralizedBuresWasserstein(jnp.asarray(m)),
        "power_affine": PowerDeformed(SPDAffineInvariant(N), 0.5),
        "power_bw": PowerDeformed(SPDBuresWasserstein(N), -0.7),
    }


@pytest.mark.parametrize("name", list(_metrics()))
def test_isometry_and_inverse(name, x64):
    metric = _metrics()[name]
    y1, y2, c = _spd(10), 0.5 * _spd(11), _spd(12)

    @jax.jit
    def run(y1, y2, c):
        # Pull the points toward c so that the Bures-Wasserstein logs are inside the injectivity domain.
        x1, x2 = metric.geodesic(c, y1, 0.5), metric.geodesic(c, y2, 0.5)
        v1, v2 = tangent_space(x1, c, metric=metric), tangent_space(x2, c, metric=metric)
        u1, u2 = metric.log(c, x1), metric.log(c, x2)
        return (
            x1,
            v1,
            v2,
            metric.inner(c, u1, u2),
            metric.dist(c, x1),
            untangent_space(v1, c, metric=metric),
        )

    x1, v1, v2, inner, dist, back = run(y1, y2, c)
    np.testing.assert_allclose(float(v1 @ v2), float(inner), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(float(jnp.linalg.norm(v1)), float(dist), rtol=1e-9)
    np.testing.assert_allclose(back, x1, rtol=1e-9, atol=1e-10)


def test_zero_at_reference_and_gradients(x64):
    c = jnp.asarray(_spd(13))
    np.testing.assert_allclose(tangent_space(c, c), np.zeros(6), rtol=0, atol=1e-12)
    np.testing.assert_allclose(tangent_space(jnp.eye(N), jnp.eye(N)), np.zeros(6), atol=0)
    w = jnp.linspace(-1.0, 1.0, 6)

    def loss(x, c):
        return w @ tangent_space(x, c) + jnp.sum(tangent_space(x, c) ** 2)

    # x = c (log at the identity after whitening) and the identity itself: finite derivatives.
    check_grads_finite(jax.jit(loss), (c, c), order=2, hessian="hvp")
    check_grads_finite(jax.jit(loss), (jnp.eye(N), jnp.eye(N)), order=2, hessian="hvp")
    x = jnp.asarray(_spd(14))
    sym = lambda a: 0.5 * (a + a.T)  # noqa: E731 - perturb along symmetric directions only
    check_grads(
        jax.jit(lambda x, c: loss(sym(x), sym(c))),
        (x, c),
        order=1,
        modes=("rev",),
        atol=1e-6,
        rtol=1e-6,
    )
    check_grads(
        jax.jit(lambda v: jnp.sum(w[:3] @ untangent_space(v, c)[0])),
        (jnp.linspace(0.1, 0.6, 6),),
        order=1,
        modes=("rev",),
        atol=1e-6,
        rtol=1e-6,
    )


def test_errors():
    c = jnp.eye(3)
    with pytest.raises(ValueError, match="`x`"):
        tangent_space(jnp.eye(2), c)
    with pytest.raises(ValueError, match="`reference`"):
        tangent_space(jnp.eye(3), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="`v`"):
        untangent_space(jnp.zeros(5), c)
    with pytest.raises(ValueError, match="`metric`"):
        tangent_space(c, c, metric=SPDAffineInvariant(4))
    with pytest.raises(TypeError, match="`metric`"):
        tangent_space(c, c, metric="riemann")
