"""A small float64 MLP (45 parameters in a dict) and its dense curvature references."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

N_IN, N_HIDDEN, N_OUT, N_BATCH = 3, 6, 3, 8
_CACHE: dict = {}


def mlp_params(seed: int = 0, dtype=np.float64) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "w1": jnp.asarray(rng.normal(size=(N_IN, N_HIDDEN)) / np.sqrt(N_IN), dtype),
        "b1": jnp.asarray(0.1 * rng.normal(size=N_HIDDEN), dtype),
        "w2": jnp.asarray(rng.normal(size=(N_HIDDEN, N_OUT)) / np.sqrt(N_HIDDEN), dtype),
        "b2": jnp.asarray(0.1 * rng.normal(size=N_OUT), dtype),
    }


def mlp_one(params: dict, x):
    """One input (N_IN,) -> logits (N_OUT,)."""
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def mlp(params: dict, inputs):
    """A batch (n, N_IN) -> (n, N_OUT)."""
    return jax.vmap(mlp_one, in_axes=(None, 0))(params, inputs)


def cross_entropy(logits, labels):
    """Batch-mean cross-entropy; labels are integer classes."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def half_mse(outputs, targets):
    """Batch-mean of 0.5 ||z - y||^2."""
    return 0.5 * jnp.mean(jnp.sum((outputs - targets) ** 2, axis=-1))


def mlp_data(n: int = N_BATCH, seed: int = 1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, N_IN)), dtype)
    labels = jnp.asarray(rng.integers(0, N_OUT, size=n))
    y = jnp.asarray(rng.normal(size=(n, N_OUT)), dtype)
    return x, labels, y


@pytest.fixture
def mlp64(x64):
    """The MLP in float64 with its data, flattening helpers and dense Hessian of the CE loss."""
    params = mlp_params()
    x, labels, y = mlp_data()
    flat, unravel = ravel_pytree(params)

    def loss(p):
        return cross_entropy(mlp(p, x), labels)

    if "hess" not in _CACHE:  # the dense reference, computed once per session
        _CACHE["hess"] = np.asarray(jax.jit(jax.hessian(lambda t: loss(unravel(t))))(flat))
    hess = _CACHE["hess"]
    return SimpleNamespace(
        params=params,
        x=x,
        labels=labels,
        y=y,
        flat=flat,
        unravel=unravel,
        loss=loss,
        hess=hess,
        d=flat.shape[0],
        **HELPERS,
    )


def random_like(params: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)


def to_flat(tree) -> np.ndarray:
    return np.asarray(ravel_pytree(tree)[0])


HELPERS = dict(
    mlp_params=mlp_params,
    mlp_one=mlp_one,
    mlp=mlp,
    cross_entropy=cross_entropy,
    half_mse=half_mse,
    mlp_data=mlp_data,
    random_like=random_like,
    to_flat=to_flat,
)


@pytest.fixture
def helpers():
    """The MLP helpers without float64 (for float32 tests)."""
    return SimpleNamespace(**HELPERS)
