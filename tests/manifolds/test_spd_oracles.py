"""SPD metrics against pyriemann and geomstats (optional oracles), float64, relative 1e-10.

Both peers are optional. pyriemann (a test extra) implements each formula its own way: the
affine-invariant distance from generalized eigenvalues (ours: Cholesky whitening + eigh), maps
through symmetric square roots (ours: Cholesky factors), the Bures-Wasserstein distance as the
trace formula (ours: the orthogonal Procrustes form), and iterative means with their own stopping
rules. geomstats 2.8 does not import under numpy >= 2.4 (numpy.trapz was removed): its test skips
with the reason; it runs in the benchmark environment (`pip install -e ".[bench]"`, numpy < 2.4).

Agreement is measured as max |ours - theirs| / max |theirs| per quantity; both sides are float64
closed forms (measured: at most 2e-14 at the condition numbers of the test data), so 1e-10 (the
float64 tolerance of the test suite) leaves a wide margin while catching any formula or convention
difference (which shows at O(1)). The iterative means are compared at 1e-8 (see their test).
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import SPDBuresWasserstein, SPDGeneralizedBuresWasserstein
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed

N, K = 5, 6
RTOL = 1e-10
MEAN_RTOL = 1e-8


def _pyriemann(module: str, name: str):
    """``pyriemann.geometry.<module>.<name>`` (0.12+), else ``pyriemann.utils.<module>.<name>``."""
    pytest.importorskip("pyriemann")
    for pkg in ("pyriemann.geometry", "pyriemann.utils"):
        try:
            fn = getattr(importlib.import_module(f"{pkg}.{module}"), name, None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    pytest.skip(f"pyriemann has no {module}.{name}")


@functools.cache
def _data():
    """``K`` pairs of float64 SPD ``(N, N)`` points ``Q diag(exp(g)) Q^T`` (condition numbers of
    about 10-100) and symmetric tangents with entries of size 0.3 (read-only numpy)."""
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((2 * K, N, N)))
    lam = np.exp(rng.standard_normal((2 * K, 1, N)))
    pts = (q * lam) @ np.swapaxes(q, -1, -2)
    pts = 0.5 * (pts + np.swapaxes(pts, -1, -2))
    g = 0.3 * rng.standard_normal((K, N, N))
    tan = 0.5 * (g + np.swapaxes(g, -1, -2))
    for arr in (pts, tan):
        arr.flags.writeable = False
    return pts[:K], pts[K:], tan


def _rel(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert np.all(np.isfinite(ours)), "NaN/inf in geomjax output"
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def _close(ours, theirs, what: str, rtol: float = RTOL) -> None:
    err = _rel(ours, theirs)
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


def _vm(fn, *args):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(fn))(*(jnp.asarray(a) for a in args)))


METRICS = {
    "AIM": SPDAffineInvariant(N),
    "LE": SPDLogEuclidean(N),
    "BW": SPDBuresWasserstein(N),
    "LC": SPDLogCholesky(N),
}


@functools.cache
def _ours(name: str) -> dict:
    """dist, exp, log, inner, transp of ``METRICS[name]`` on ``_data()``, in one compilation."""
    m = METRICS[name]
    x, y, u = _data()
    v = np.flip(u, axis=0)

    def maps(x, y, u, v):
        return {
            "dist": m.dist(x, y),
            "exp": m.exp(x, u),
            "log": m.log(x, y),
            "inner": m.inner(x, u, v),
            "transp": m.transp(x, y, u),
        }

    with jax.enable_x64(True):
        out = jax.jit(jax.vmap(maps))(*(jnp.asarray(a) for a in (x, y, u, v)))
        return {k: np.asarray(a) for k, a in out.items()}


def _loop(fn, *args):
    """A peer function applied pair by pair (not every pyriemann map broadcasts over a batch)."""
    return np.stack([np.asarray(fn(*a)) for a in zip(*args)])


def test_pyriemann_distances():
    x, y, _ = _data()
    dist = lambda name: _pyriemann("distance", name)  # noqa: E731
    # distance_wasserstein is the Bures-Wasserstein distance: tr A + tr B - 2 tr (B^1/2 A B^1/2)^1/2.
    for ours, name in (
        ("AIM", "distance_riemann"),
        ("LE", "distance_logeuclid"),
        ("BW", "distance_wasserstein"),
        ("LC", "distance_logchol"),
    ):
        _close(_ours(ours)["dist"], _loop(dist(name), x, y), f"{ours} dist vs {name}")


def test_pyriemann_power_and_generalized_bw_distances():
    """The deformations through pyriemann's own matrix power / inverse square root."""
    x, y, _ = _data()
    powm = _pyriemann("base", "powm")
    invsqrtm = _pyriemann("base", "invsqrtm")
    d_riemann = _pyriemann("distance", "distance_riemann")
    d_wass = _pyriemann("distance", "distance_wasserstein")
    theta = 0.5
    ref = _loop(lambda a, b: d_riemann(powm(a, theta), powm(b, theta)) / theta, x, y)
    _close(
        _vm(PowerDeformed(SPDAffineInvariant(N), theta).dist, x, y),
        ref,
        "PowerDeformed(AIM, 0.5).dist",
    )
    ref = _loop(lambda a, b: d_wass(powm(a, theta), powm(b, theta)) / theta, x, y)
    _close(
        _vm(PowerDeformed(SPDBuresWasserstein(N), theta).dist, x, y),
        ref,
        "PowerDeformed(BW, 0.5).dist",
    )
    # GBW(M) is BW after X -> M^-1/2 X M^-1/2.
    metric = x[0] + np.eye(N)
    r = invsqrtm(metric)
    ref = _loop(lambda a, b: d_wass(r @ a @ r, r @ b @ r), x[1:], y[1:])
    with jax.enable_x64(True):
        gbw = SPDGeneralizedBuresWasserstein(jnp.asarray(metric))
        ours = _vm(gbw.dist, x[1:], y[1:])
    _close(ours, ref, "SPDGeneralizedBuresWasserstein.dist")


def test_pyriemann_exp_log_inner_transport():
    x, y, u = _data()
    ts = lambda name: _pyriemann("tangentspace", name)  # noqa: E731
    # pyriemann's exp_map_riemann / log_map_riemann are the full maps only with Cm12 / C12 = True.
    exp_riemann = lambda t, c: ts("exp_map_riemann")(t, c, Cm12=True)  # noqa: E731
    log_riemann = lambda p, c: ts("log_map_riemann")(p, c, C12=True)  # noqa: E731
    cases = (
        ("AIM", exp_riemann, log_riemann, "riemann"),
        ("LE", ts("exp_map_logeuclid"), ts("log_map_logeuclid"), "logeuclid"),
        ("BW", ts("exp_map_wasserstein"), ts("log_map_wasserstein"), "wasserstein"),
        ("LC", ts("exp_map_logchol"), ts("log_map_logchol"), "logchol"),
    )
    for ours, exp_map, log_map, name in cases:
        what = f"{ours} vs pyriemann {name}"
        # pyriemann's argument order: exp_map(tangent, base), log_map(point, base).
        _close(_ours(ours)["exp"], _loop(exp_map, u, x), f"{what}: exp")
        _close(_ours(ours)["log"], _loop(log_map, y, x), f"{what}: log")
    # Inner products (pyriemann has no Bures-Wasserstein one).
    v = np.flip(u, axis=0)
    for ours, name in (
        ("AIM", "innerproduct_riemann"),
        ("LE", "innerproduct_logeuclid"),
        ("LC", "innerproduct_logchol"),
    ):
        _close(_ours(ours)["inner"], _loop(ts(name), u, v, x), f"{ours} inner vs {name}")
    # Parallel transport (pyriemann's transport(X, A, B) moves X from A to B; no BW one).
    for ours, name in (
        ("AIM", "transport_riemann"),
        ("LE", "transport_logeuclid"),
        ("LC", "transport_logchol"),
    ):
        _close(_ours(ours)["transp"], _loop(ts(name), u, x, y), f"{ours} transp vs {name}")


def test_pyriemann_means():
    """Weighted means. The iterative ones are run with pyriemann's stopping tolerance at 1e-12.

    mean_riemann stops when the Frobenius norm of the whitened mean log (the Riemannian gradient
    norm, as our ``grad_norm``) is <= tol; the affine-invariant space has non-positive curvature,
    so the Frechet function is 1-strongly geodesically convex and the distance to the true mean is
    at most the gradient norm: ~1e-12 for both sides, far below 1e-8. mean_wasserstein is gradient
    descent with unit step on the Bures-Wasserstein Frechet function (an inductive-mean variant
    with the same fixed point, sum_i w_i log_M X_i = 0, as our Alvarez-Esteban iteration); it stops
    when |sum_i w_i log_M X_i|_F <= tol, and both fixed-point maps contract linearly near the
    barycenter, so the distance is within a small multiple of 1e-12. Compared at 1e-8 (measured:
    about 3e-13); the closed-form log-Euclidean and log-Cholesky means agree to round-off.
    """
    x, y, _ = _data()
    pts = np.concatenate([x, y])
    w = np.linspace(1.0, 3.0, pts.shape[0])
    w = w / w.sum()
    mean = lambda name: _pyriemann("mean", name)  # noqa: E731
    iterative = dict(tol=1e-12, maxiter=500)
    cases = (
        ("AIM", "mean_riemann", iterative),
        ("BW", "mean_wasserstein", iterative),
        ("LE", "mean_logeuclid", {}),
        ("LC", "mean_logchol", {}),
    )
    for key, name, kw in cases:
        ours = METRICS[key]
        with jax.enable_x64(True):
            res = jax.jit(ours.mean)(jnp.asarray(pts), jnp.asarray(w))
            assert bool(res.converged), (type(ours).__name__, float(res.grad_norm))
            got = np.asarray(res.mean)
        theirs = mean(name)(pts, sample_weight=w, **kw)
        _close(got, theirs, f"{type(ours).__name__}.mean vs {name}", rtol=MEAN_RTOL)


def _geomstats_spd():
    """geomstats' SPD module, or skip with the reason (2.8 fails to import under numpy >= 2.4)."""
    try:
        import geomstats.geometry.positive_lower_triangular_matrices as plt_mod
        import geomstats.geometry.spd_matrices as spd_mod
    except Exception as exc:  # noqa: BLE001 - any import failure means the oracle is unavailable
        pytest.skip(
            f"optional oracle geomstats unavailable: {type(exc).__name__}: {str(exc)[:160]}"
        )
    return spd_mod, plt_mod


def test_geomstats_dist_exp_log_inner():
    spd_mod, plt_mod = _geomstats_spd()
    x, y, u = _data()

    def space(metric, **kw):
        s = spd_mod.SPDMatrices(N, equip=False)
        s.equip_with_metric(metric, **kw)
        return s.metric

    # geomstats has no ready log-Cholesky SPD metric: build it as Lin's Cholesky metric on lower
    # triangular matrices pulled back through the Cholesky map (Lin 2019, the definition).
    plt = plt_mod.PositiveLowerTriangularMatrices(N, equip=False)
    plt.equip_with_metric(plt_mod.CholeskyMetric)
    log_chol = space(spd_mod.PullbackDiffeoMetric, diffeo=spd_mod.CholeskyMap(), image_space=plt)
    cases = (
        ("AIM", space(spd_mod.SPDAffineMetric), True),
        ("LE", space(spd_mod.SPDLogEuclideanMetric), True),
        # geomstats' BW parallel transport integrates an ODE (not closed form), and ours is the
        # transport through the identity (parallel only between commuting points): not compared.
        ("BW", space(spd_mod.SPDBuresWassersteinMetric), False),
        ("LC", log_chol, False),  # no parallel transport in geomstats' pullback metric
    )
    v = np.flip(u, axis=0)
    for name, metric, has_transport in cases:
        ours = _ours(name)
        what = f"{type(METRICS[name]).__name__} vs geomstats {type(metric).__name__}"
        _close(ours["dist"], metric.dist(x, y), f"{what}: dist")
        _close(ours["exp"], metric.exp(u, x), f"{what}: exp")
        _close(ours["log"], metric.log(y, x), f"{what}: log")
        _close(ours["inner"], metric.inner_product(u, v, x), f"{what}: inner")
        if has_transport:
            _close(ours["transp"], metric.parallel_transport(u, x, end_point=y), f"{what}: transp")
