"""Two-view losses and the SNR distance: VICReg and the SNR contrastive loss against
pytorch-metric-learning (optional oracle), Barlow Twins against a NumPy transcription of the
paper's pseudo-code, alignment and uniformity against Wang & Isola's PyTorch snippets
(``torch.pdist``); float64 to 1e-12 (sums of <= N D^2 ~ 10^4 terms of O(1)), gradients finite
for identical views."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.metric_learning import (
    alignment_loss,
    barlow_twins_loss,
    contrastive_loss,
    pairwise_distances,
    uniformity_loss,
    vicreg_loss,
)


def _views(seed, n=40, d=6):
    rng = np.random.default_rng(seed)
    z1 = rng.standard_normal((n, d))
    return z1, z1 + 0.3 * rng.standard_normal((n, d))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vicreg_matches_pml(seed):
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    z1, z2 = _views(seed)
    t1, t2 = torch.tensor(z1, requires_grad=True), torch.tensor(z2, requires_grad=True)
    want = losses.VICRegLoss()(t1, ref_emb=t2)
    want.backward()
    with jax.enable_x64(True):
        v, (g1, g2) = jax.value_and_grad(vicreg_loss, argnums=(0, 1))(
            jnp.asarray(z1), jnp.asarray(z2)
        )
    np.testing.assert_allclose(float(v), float(want.detach()), rtol=1e-12)
    np.testing.assert_allclose(g1, t1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g2, t2.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_snr_distance_and_contrastive_match_pml(seed):
    torch = pytest.importorskip("torch")
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, losses

    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((50, 8)), rng.integers(0, 5, 50)
    with jax.enable_x64(True):
        d = pairwise_distances(jnp.asarray(x), metric="snr")
        v = contrastive_loss(jnp.asarray(x), jnp.asarray(y), metric="snr", normalize=True)
    want_d = distances.SNRDistance(normalize_embeddings=False)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(d, want_d, rtol=1e-12, atol=1e-12)
    want = losses.SignalToNoiseRatioContrastiveLoss()(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(float(v), float(want), rtol=1e-12)
    del pml


def _barlow_numpy(z1, z2, lambd=5e-3, eps=1e-5):
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    c = a.T @ b / n
    loss = 0.0
    for i in range(d):
        for j in range(d):
            loss += (1 - c[i, j]) ** 2 if i == j else lambd * c[i, j] ** 2
    return loss


def test_barlow_twins_alignment_uniformity_against_references():
    torch = pytest.importorskip("torch")
    z1, z2 = _views(3)
    with jax.enable_x64(True):
        bt = barlow_twins_loss(jnp.asarray(z1), jnp.asarray(z2))
        al = alignment_loss(jnp.asarray(z1), jnp.asarray(z2))
        un = uniformity_loss(jnp.asarray(z1))
    np.testing.assert_allclose(float(bt), _barlow_numpy(z1, z2), rtol=1e-12)
    t1, t2 = torch.tensor(z1), torch.tensor(z2)
    np.testing.assert_allclose(
        float(al), float((t1 - t2).norm(p=2, dim=1).pow(2).mean()), rtol=1e-12
    )
    want_u = torch.pdist(t1, p=2).pow(2).mul(-2).exp().mean().log()
    np.testing.assert_allclose(float(un), float(want_u), rtol=1e-12)


def test_identical_views_have_finite_gradients():
    z = jnp.asarray(np.random.default_rng(5).standard_normal((16, 4)), jnp.float32)
    with jax.debug_nans(True):
        for fn in (vicreg_loss, barlow_twins_loss, alignment_loss):
            g = jax.grad(fn, argnums=(0, 1))(z, z)
            assert all(np.all(np.isfinite(np.asarray(a))) for a in g)
        zd = z.at[1].set(z[0])  # a duplicate row
        assert np.all(np.isfinite(np.asarray(jax.grad(uniformity_loss)(zd))))
