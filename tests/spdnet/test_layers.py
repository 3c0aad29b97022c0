"""BiMap, ReEig, LogEig against dense numpy references; derivatives at repeated eigenvalues."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.spdnet import bimap, logeig, reeig

from . import _reference as ref


def test_bimap_matches_numpy(x64):
    rng = np.random.default_rng(0)
    x = ref.random_spd(rng, 5)
    w, _ = np.linalg.qr(rng.normal(size=(5, 3)))
    np.testing.assert_allclose(bimap(x, w), w.T @ x @ w, rtol=0, atol=1e-12)


def test_bimap_validates_shapes():
    with pytest.raises(ValueError, match="`w`"):
        bimap(jnp.eye(3), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="`x`"):
        bimap(jnp.ones((2, 3, 3)), jnp.ones((3, 2)))


def test_reeig_matches_numpy_and_grads(x64):
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    x = (q * np.array([1e-6, 0.3, 0.3, 2.0])) @ q.T  # one eigenvalue below eps, one repeated pair
    np.testing.assert_allclose(
        reeig(x, 1e-2), ref.eig_fn(x, lambda t: np.maximum(t, 1e-2)), atol=1e-12
    )
    check_grads(lambda a: reeig(a, 1e-2), (jnp.asarray(x),), order=2, modes=("fwd", "rev"))
    # at the identity (all eigenvalues equal, above eps) reeig is the identity map
    g = jax.jacfwd(lambda a: reeig(a, 1e-3))(jnp.eye(3))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(
        g.reshape(9, 9),
        np.eye(9) * 0.5 + np.eye(9)[:, [0, 3, 6, 1, 4, 7, 2, 5, 8]] * 0.5,
        atol=1e-12,
    )


def test_reeig_rejects_bad_eps():
    with pytest.raises(ValueError, match="`eps`"):
        reeig(jnp.eye(2), 0.0)


def test_logeig_matches_numpy_and_vectorized_norm(x64):
    rng = np.random.default_rng(2)
    x = ref.random_spd(rng, 4)
    np.testing.assert_allclose(logeig(x), ref.logm(x), rtol=0, atol=1e-12)
    v = logeig(x, vectorize=True)
    assert v.shape == (10,)
    np.testing.assert_allclose(np.linalg.norm(v), np.linalg.norm(ref.logm(x)), rtol=1e-12)
    check_grads(lambda a: logeig(a, vectorize=True), (jnp.eye(3),), order=2, modes=("fwd", "rev"))
