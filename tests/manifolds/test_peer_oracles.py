"""Distances against geoopt and geomstats (optional oracles), float64, 1e-6.

Both peers are optional: geoopt needs torch, and geomstats 2.8 does not import under numpy >= 2.4
(numpy.trapz was removed). Each test skips with the reason when its peer is unavailable. They run
in the benchmark environment (`pip install -e ".[bench]"`, numpy < 2.4, torch CPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.manifolds import SO3, Lorentz, PoincareBall, Sphere


def _import(name):
    try:
        return __import__(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means the oracle is unavailable
        pytest.skip(f"optional oracle {name} unavailable: {type(exc).__name__}: {exc}")


def _points(manifold, n, **kw):
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(3), 2 * n)
        pts = jax.vmap(lambda k: manifold.random_point(k, jnp.float64, **kw))(keys)
        return np.asarray(pts[:n]), np.asarray(pts[n:])


def _ours(manifold, x, y):
    with jax.enable_x64(True):
        return np.asarray(jax.vmap(manifold.dist)(jnp.asarray(x), jnp.asarray(y)))


def test_geoopt_sphere_poincare_lorentz():
    torch = _import("torch")
    geoopt = _import("geoopt")
    cases = [
        (Sphere(4), geoopt.Sphere(), {}),
        (PoincareBall(4, 0.7), geoopt.PoincareBall(c=0.7), {"scale": 0.7}),
        # geoopt's Lorentz(k) is the hyperboloid <x, x>_L = -k, curvature -1/k.
        (Lorentz(4, 1.0 / 1.5), geoopt.Lorentz(k=1.5), {"scale": 0.7}),
    ]
    for ours, theirs, kw in cases:
        x, y = _points(ours, 32, **kw)
        expected = theirs.dist(torch.tensor(x), torch.tensor(y)).numpy()
        np.testing.assert_allclose(
            _ours(ours, x, y), expected, rtol=1e-6, atol=1e-9, err_msg=type(ours).__name__
        )
        # log agrees too (same metric, same point representation).
        with jax.enable_x64(True):
            ours_log = np.asarray(jax.vmap(ours.log)(jnp.asarray(x), jnp.asarray(y)))
        np.testing.assert_allclose(
            ours_log,
            theirs.logmap(torch.tensor(x), torch.tensor(y)).numpy(),
            rtol=1e-6,
            atol=1e-9,
            err_msg=type(ours).__name__,
        )


def test_geomstats_sphere_poincare_so3():
    _import("geomstats")
    try:
        from geomstats.geometry.hypersphere import Hypersphere
        from geomstats.geometry.poincare_ball import PoincareBall as GsBall
        from geomstats.geometry.special_orthogonal import SpecialOrthogonal
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"geomstats unavailable: {exc}")
    x, y = _points(Sphere(3), 16)
    np.testing.assert_allclose(
        _ours(Sphere(3), x, y), Hypersphere(dim=3).metric.dist(x, y), rtol=1e-6
    )
    x, y = _points(PoincareBall(3, 1.0), 16, scale=0.7)
    np.testing.assert_allclose(
        _ours(PoincareBall(3, 1.0), x, y), GsBall(dim=3).metric.dist(x, y), rtol=1e-6
    )
    x, y = _points(SO3(), 16)
    so3 = SpecialOrthogonal(n=3, point_type="matrix")
    # geomstats' bi-invariant metric on SO(3) matrices is <u, v> = tr(u^T v) / 2, as ours: the angle.
    np.testing.assert_allclose(_ours(SO3(), x, y), so3.metric.dist(x, y), rtol=1e-6)
