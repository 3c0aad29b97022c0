"""The two value routes of the affine-invariant distance (SVD on CPU, two-sided eigenvalues on
CUDA), both run here on the CPU against scipy's generalized eigenvalues in float64, at random
pairs, coincident pairs, the identity and repeated eigenvalues."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from _spd import random_spd

from geomjax.manifolds._spd_affine import _sqdist_value_eig, _sqdist_value_svd

N = 6


@pytest.fixture
def x64():
    with jax.enable_x64():
        yield


def _spd(rng, n=N, spread=1.0, lam=None):
    return random_spd(rng, n, spread, spectrum=lam)


def _ref(x, y):
    return np.sum(np.log(sla.eigvalsh(y, x)) ** 2)


def _pairs(rng):
    eye = np.eye(N)
    rep = _spd(rng, lam=[2.0, 2.0, 2.0, 0.5, 0.5, 3.0])
    out = [(_spd(rng), _spd(rng), 1e-10) for _ in range(4)]
    # condition numbers ~1e6-1e10: scipy's own error is ~eps cond here
    out += [(_spd(rng, spread=4.0), _spd(rng, spread=4.0), 1e-8)]
    out += [
        (a, b, 1e-10)
        for a, b in (
            (eye, _spd(rng)),
            (_spd(rng), eye),
            (rep, _spd(rng)),
            (eye, rep),
            (rep, 3.0 * rep),
        )
    ]
    return out


@pytest.mark.parametrize("route", [_sqdist_value_svd, _sqdist_value_eig], ids=["svd", "eig"])
def test_routes_match_generalized_eigenvalues(x64, route):
    rng = np.random.default_rng(0)
    for x, y, rtol in _pairs(rng):
        got = float(jax.jit(route)(jnp.asarray(x), jnp.asarray(y)))
        want = _ref(x, y)
        assert abs(got - want) <= rtol * max(want, 1.0), (got, want)


@pytest.mark.parametrize("route", [_sqdist_value_svd, _sqdist_value_eig], ids=["svd", "eig"])
def test_routes_vanish_at_coincident_points(x64, route):
    """At ``Y = X`` both routes stay below the round-off threshold under which ``dist`` returns
    exactly 0 (``n (8 eps)^2``); at a condition number ~1e9 the triangular solve ``L^{-1} L``
    leaves ~1e-15 off the identity, so there the bound is the squared round-off ``(1e-12)^2``."""
    rng = np.random.default_rng(1)
    threshold = N * (8.0 * np.finfo(np.float64).eps) ** 2
    cases = [
        (np.eye(N), threshold),
        (_spd(rng), threshold),
        (_spd(rng, lam=[1, 1, 1, 2, 2, 2]), threshold),
        (_spd(rng, spread=4.0), 1e-24),
    ]
    for x, bound in cases:
        assert float(jax.jit(route)(jnp.asarray(x), jnp.asarray(x))) <= bound


def test_routes_agree_batched_float32():
    rng = np.random.default_rng(2)
    xs = np.stack([_spd(rng) for _ in range(32)]).astype(np.float32)
    ys = np.stack([_spd(rng) for _ in range(32)]).astype(np.float32)
    with jax.default_matmul_precision("highest"):
        a = np.asarray(jax.jit(jax.vmap(_sqdist_value_svd))(xs, ys), np.float64)
        b = np.asarray(jax.jit(jax.vmap(_sqdist_value_eig))(xs, ys), np.float64)
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b, a, rtol=2e-5)
