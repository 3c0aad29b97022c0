"""Miners (per-anchor masks inside the loss) against pytorch-metric-learning's miners feeding
its losses (``loss(emb, labels, miner(emb, labels))``), value and gradient in float64 (1e-12:
the same selected terms, summed in another order; the miners' comparisons see the same float64
distances up to ~1e-16, far from the thresholds for random data)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.metric_learning import (
    batch_hard_miner,
    contrastive_loss,
    multi_similarity_loss,
    multi_similarity_miner,
    ntxent_loss,
    pair_margin_miner,
    supcon_loss,
    triplet_margin_loss,
    triplet_margin_miner,
)

CASES = [
    # (our loss, our miner, PML loss name + kwargs, PML miner name + kwargs)
    (
        contrastive_loss,
        pair_margin_miner(0.2, 0.8),
        ("ContrastiveLoss", {}),
        ("PairMarginMiner", {"pos_margin": 0.2, "neg_margin": 0.8}),
    ),
    (
        multi_similarity_loss,
        multi_similarity_miner(0.1),
        ("MultiSimilarityLoss", {}),
        ("MultiSimilarityMiner", {"epsilon": 0.1}),
    ),
    (
        ntxent_loss,
        multi_similarity_miner(0.1),
        ("NTXentLoss", {}),
        ("MultiSimilarityMiner", {"epsilon": 0.1}),
    ),
    (
        supcon_loss,
        multi_similarity_miner(0.1),
        ("SupConLoss", {}),
        ("MultiSimilarityMiner", {"epsilon": 0.1}),
    ),
    (triplet_margin_loss, batch_hard_miner(), ("TripletMarginLoss", {}), ("BatchHardMiner", {})),
] + [
    (
        lambda x, y, miner: triplet_margin_loss(x, y, margin=0.1, miner=miner),
        triplet_margin_miner(0.2, kind),
        ("TripletMarginLoss", {"margin": 0.1}),
        ("TripletMarginMiner", {"margin": 0.2, "type_of_triplets": kind}),
    )
    for kind in ("all", "hard", "semihard", "easy")
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_mined_losses_match_pml(case, seed):
    torch = pytest.importorskip("torch")
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses, miners

    ours, miner, (loss_name, loss_kw), (miner_name, miner_kw) = CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((48, 6))
    y = rng.integers(0, 6, 48)
    y[0] = 99  # a singleton class
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y)
    tuples = getattr(miners, miner_name)(**miner_kw)(xt, yt)
    want = getattr(losses, loss_name)(**loss_kw)(xt, yt, tuples)
    want.backward()
    del pml
    with jax.enable_x64(True):
        v, g = jax.jit(jax.value_and_grad(lambda e: ours(e, jnp.asarray(y), miner=miner)))(
            jnp.asarray(x)
        )
    np.testing.assert_allclose(float(v), float(want.detach()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_miner_kind_is_checked():
    x, y = jnp.ones((4, 2)), jnp.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="`miner`"):
        contrastive_loss(x, y, miner=batch_hard_miner())
    with pytest.raises(ValueError, match="`miner`"):
        triplet_margin_loss(x, y, miner=pair_margin_miner())
    with pytest.raises(ValueError, match="`type_of_triplets`"):
        triplet_margin_miner(0.1, "medium")
