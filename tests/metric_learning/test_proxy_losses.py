"""ProxyAnchor, ArcFace and CosFace against pytorch-metric-learning with the same parameters
(``loss.proxies`` / ``loss.W`` copied in), values and gradients (embeddings and parameters),
float64 to 1e-12 (sums over B x C terms of O(1) times the scales 32 / 64: ~1e-13 rounding);
ArcFace finite at cos = 1 (an embedding equal to its class vector)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.metric_learning import arcface_loss, cosface_loss, proxy_anchor_loss


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["proxy_anchor", "arcface", "cosface"])
def test_matches_pml(name, seed):
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    rng = np.random.default_rng(seed)
    b, d, c = 40, 6, 7
    x, y = rng.standard_normal((b, d)), rng.integers(0, c - 1, b)  # class c-1 unused
    if name == "proxy_anchor":
        param = rng.standard_normal((c, d))
        theirs = losses.ProxyAnchorLoss(c, d, margin=0.1, alpha=32).double()
        theirs.proxies.data = torch.tensor(param)
        ours, attr = proxy_anchor_loss, "proxies"
    else:
        param = rng.standard_normal((d, c))
        cls = losses.ArcFaceLoss if name == "arcface" else losses.CosFaceLoss
        theirs = cls(c, d).double()
        theirs.W.data = torch.tensor(param)
        ours, attr = (arcface_loss if name == "arcface" else cosface_loss), "W"
    xt = torch.tensor(x, requires_grad=True)
    want = theirs(xt, torch.tensor(y))
    want.backward()
    with jax.enable_x64(True):
        v, (gx, gp) = jax.value_and_grad(ours, argnums=(0, 2))(
            jnp.asarray(x), jnp.asarray(y), jnp.asarray(param)
        )
    np.testing.assert_allclose(float(v), float(want.detach()), rtol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gp, getattr(theirs, attr).grad.numpy(), rtol=1e-9, atol=1e-12)


def test_arcface_finite_when_an_embedding_is_its_class_vector():
    w = jnp.eye(3)
    x = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    with jax.debug_nans(True):
        g = jax.grad(arcface_loss, argnums=(0, 2))(x, jnp.array([0, 1]), w)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in g)


def test_nnx_modules_call_the_core_and_train():
    from flax import nnx

    from geomjax.nn import ArcFaceLoss, CosFaceLoss, ProxyAnchorLoss

    x = jnp.asarray(np.random.default_rng(0).standard_normal((12, 4)), jnp.float32)
    y = jnp.asarray(np.arange(12) % 3)
    for cls, core, attr in [
        (ProxyAnchorLoss, proxy_anchor_loss, "proxies"),
        (ArcFaceLoss, arcface_loss, "weights"),
        (CosFaceLoss, cosface_loss, "weights"),
    ]:
        module = cls(3, 4, rngs=nnx.Rngs(1))
        np.testing.assert_allclose(module(x, y), core(x, y, getattr(module, attr)[...]), rtol=1e-6)
        grads = nnx.grad(lambda m: m(x, y))(module)
        g = getattr(grads, attr)[...]
        assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
