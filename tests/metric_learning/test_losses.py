"""Batch metric-learning losses against pytorch-metric-learning 2.9 (optional oracle, torch's
CPU build), value and gradient; the row-chunked path against the dense one; jit, vmap over a
batch of batches, finite gradients at duplicate embeddings, argument errors.

Tolerances. float64: both libraries sum the same O(B^2) (triplets: O(B^3)) terms of O(1) in
different orders; the measured difference is below 1e-15, and 1e-12 (the issue's bound) is
far above the worst-case rounding ``n eps`` with ``n <= 10^6`` terms. float32 against PML's
float32: rtol 1e-5 / atol 1e-6 (the issue's bound), float32 rounding of the distances and of the
log-sum-exps (``sqrt(B) eps`` relative, ~1e-6 for B <= 256). Chunked vs dense: the same per-row
terms, summed in another grouping: rel 1e-5 in float32 (``B`` rows of ``B`` terms: ``B eps``
worst case, 2e-4 at B = 2048 -- measured below 1e-6; the issue's bound 1e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.metric_learning import (
    circle_loss,
    contrastive_loss,
    explicit_triplet_margin_loss,
    generalized_lifted_structure_loss,
    multi_similarity_loss,
    ntxent_loss,
    supcon_loss,
    triplet_margin_loss,
)

LOSSES = {
    "contrastive": (contrastive_loss, "ContrastiveLoss", {}),
    "contrastive_margins": (
        lambda x, y: contrastive_loss(x, y, pos_margin=0.1, neg_margin=0.8),
        "ContrastiveLoss",
        {"pos_margin": 0.1, "neg_margin": 0.8},
    ),
    "triplet": (triplet_margin_loss, "TripletMarginLoss", {}),
    "triplet_swap_smooth": (
        lambda x, y: triplet_margin_loss(x, y, margin=0.2, swap=True, smooth_loss=True),
        "TripletMarginLoss",
        {"margin": 0.2, "swap": True, "smooth_loss": True},
    ),
    "multi_similarity": (multi_similarity_loss, "MultiSimilarityLoss", {}),
    "ntxent": (ntxent_loss, "NTXentLoss", {}),
    "supcon": (supcon_loss, "SupConLoss", {}),
    "circle": (circle_loss, "CircleLoss", {}),
    "generalized_lifted": (
        generalized_lifted_structure_loss,
        "GeneralizedLiftedStructureLoss",
        {},
    ),
}

# (B, D, classes): random labels with a singleton class; one class only (no negatives)
CASES = [
    (64, 16, 8),
    # two more cases: ~40 s of compiles on 2 cores, in the slow run
    pytest.param((128, 8, 40), marks=pytest.mark.slow),
    pytest.param((256, 32, 1), marks=pytest.mark.slow),
]


def _case(b, d, n_cls, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, d))
    y = rng.integers(0, n_cls, b)
    if n_cls > 1:
        y[0] = n_cls + 7  # a singleton class
    return x, y


def _pml(name, kwargs, x, y, dtype):
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    value = getattr(losses, name)(**kwargs)(xt, torch.tensor(y))
    value.backward()
    return float(value.detach()), xt.grad.numpy().astype(np.float64)


@pytest.mark.parametrize("case", CASES, ids=["B64_cls8", "B128_cls40", "B256_cls1"])
@pytest.mark.parametrize("name", LOSSES)
def test_matches_pml_float64_and_float32(name, case):
    torch = pytest.importorskip("torch")
    ours, pml_name, kwargs = LOSSES[name]
    x, y = _case(*case, seed=case[0])
    b = case[0]
    eps32 = float(np.finfo(np.float32).eps)
    # gradient entries sum ~B terms each (pairs and triplets through one anchor), with
    # cancellation: float32 absolute error up to B eps32 of the largest entry (measured 1.3e-5
    # of it at B = 256)
    for np_dtype, t_dtype, rtol, atol, g_atol in [
        (np.float64, torch.float64, 1e-12, 1e-12, 1e-12),
        (np.float32, torch.float32, 1e-5, 1e-6, max(1e-6, b * eps32)),
    ]:
        xs = x.astype(np_dtype)
        v_ref, g_ref = _pml(pml_name, kwargs, xs, y, t_dtype)
        with jax.enable_x64(np_dtype == np.float64):
            v, g = jax.jit(jax.value_and_grad(ours))(jnp.asarray(xs), jnp.asarray(y))
        np.testing.assert_allclose(float(v), v_ref, rtol=rtol, atol=atol)
        scale = max(np.abs(g_ref).max(), 1e-30)
        np.testing.assert_allclose(np.asarray(g, np.float64), g_ref, rtol=rtol, atol=g_atol * scale)


def test_all_same_label_batch_gives_pml_zero_where_pml_does():
    """One label: no negative pair. NT-Xent and SupCon are 0 (PML's zero loss); the others
    keep their positive-pair terms."""
    x = np.random.default_rng(3).standard_normal((16, 4))
    y = np.zeros(16, int)
    for name, (ours, pml_name, kwargs) in LOSSES.items():
        v_ref, _ = _pml(pml_name, kwargs, x, y, pytest.importorskip("torch").float64)
        with jax.enable_x64(True):
            v = ours(jnp.asarray(x), jnp.asarray(y))
        np.testing.assert_allclose(float(v), v_ref, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["contrastive", "triplet", "multi_similarity", "ntxent", "supcon"])
def test_chunked_equals_dense(name):
    fn = {
        "contrastive": contrastive_loss,
        "triplet": triplet_margin_loss,
        "multi_similarity": multi_similarity_loss,
        "ntxent": ntxent_loss,
        "supcon": supcon_loss,
    }[name]
    b = 96 if name == "triplet" else 200  # 200 = 3 chunks of 64 + a padded one
    x, y = _case(b, 16, 10, seed=5)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
    dense = jax.jit(
        jax.value_and_grad(lambda e: fn(e, y, chunk_size=None if name != "triplet" else b))
    )
    chunked = jax.jit(
        jax.value_and_grad(lambda e: fn(e, y, chunk_size=64 if name != "triplet" else 7))
    )
    (v0, g0), (v1, g1) = dense(x), chunked(x)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    np.testing.assert_allclose(g1, g0, rtol=0, atol=1e-5 * float(jnp.abs(g0).max()))
    for reduction in ("sum", "none", "mean"):
        a = fn(x, y, reduction=reduction, chunk_size=None if name != "triplet" else b)
        c = fn(x, y, reduction=reduction, chunk_size=64 if name != "triplet" else 7)
        np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-6)


def test_vmap_over_batches_and_duplicate_embeddings_have_finite_gradients():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 32, 8)).astype(np.float32)
    x[:, 1] = x[:, 0]  # duplicates (zero distance) in every batch
    x[:, 2] = 0.0  # a zero embedding (normalization at 0)
    y = rng.integers(0, 4, (3, 32))
    for name, (fn, _, _) in LOSSES.items():
        with jax.debug_nans(True):
            v, g = jax.jit(jax.vmap(jax.value_and_grad(fn)))(jnp.asarray(x), jnp.asarray(y))
        single = [jax.jit(fn)(jnp.asarray(x[i]), jnp.asarray(y[i])) for i in range(3)]
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)), name
        np.testing.assert_allclose(v, [float(s) for s in single], rtol=1e-5, err_msg=name)


def test_reference_embeddings_match_pml():
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    rng = np.random.default_rng(9)
    x, r = rng.standard_normal((20, 6)), rng.standard_normal((30, 6))
    y, ry = rng.integers(0, 5, 20), rng.integers(0, 5, 30)
    want = float(
        losses.ContrastiveLoss()(
            torch.tensor(x), torch.tensor(y), ref_emb=torch.tensor(r), ref_labels=torch.tensor(ry)
        )
    )
    with jax.enable_x64(True):
        got = contrastive_loss(x, y, ref_embeddings=r, ref_labels=ry)
    np.testing.assert_allclose(float(got), want, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"embeddings": np.ones(4)}, "`embeddings`"),
        ({"labels": np.zeros(3, int)}, "`labels`"),
        ({"labels": np.zeros(4)}, "`labels`"),
        ({"reduction": "median"}, "`reduction`"),
        ({"chunk_size": 0}, "`chunk_size`"),
        ({"metric": "manhattan"}, "`metric`"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    args = {"embeddings": np.ones((4, 2)), "labels": np.zeros(4, int)}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        contrastive_loss(args.pop("embeddings"), args.pop("labels"), **args)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_explicit_triplets_match_torch(p, swap):
    """``torch.nn.functional.triplet_margin_loss`` for p in {1, 2, 3} (optax 0.2.8 is wrong at
    p = 1 and NaN at p = 3): float64 1e-12, values and gradients, duplicates included."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(int(p) + 10 * swap)
    a, pos, neg = (rng.standard_normal((50, 7)) for _ in range(3))
    pos[0] = a[0]  # a zero difference
    ts = [torch.tensor(v, requires_grad=True) for v in (a, pos, neg)]
    for reduction in ("mean", "sum", "none"):
        want = torch.nn.functional.triplet_margin_loss(
            *ts, margin=0.7, p=p, swap=swap, reduction=reduction
        )
        with jax.enable_x64(True):
            got = explicit_triplet_margin_loss(
                a, pos, neg, margin=0.7, p=p, swap=swap, reduction=reduction
            )
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    want = torch.nn.functional.triplet_margin_loss(*ts, margin=0.7, p=p, swap=swap)
    want.backward()
    with jax.enable_x64(True), jax.debug_nans(True):
        grads = jax.grad(
            lambda *v: explicit_triplet_margin_loss(*v, margin=0.7, p=p, swap=swap),
            argnums=(0, 1, 2),
        )(jnp.asarray(a), jnp.asarray(pos), jnp.asarray(neg))
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_hyperbolic_losses_have_finite_gradients_near_the_boundary():
    """Poincare-ball distances as the metric: embeddings at norm 1 - 1e-5 (float64) give finite
    losses and gradients, triplet and contrastive, with jax_debug_nans on; and the manifold
    metric equals the ball's own distance pair by pair."""
    from geomjax.manifolds import PoincareBall
    from geomjax.metric_learning import pairwise_distances

    ball = PoincareBall(3)
    rng = np.random.default_rng(4)
    with jax.enable_x64(True), jax.debug_nans(True):
        u = rng.standard_normal((12, 3))
        x = jnp.asarray(u / np.linalg.norm(u, axis=1, keepdims=True) * (1 - 1e-5))
        y = jnp.asarray(rng.integers(0, 3, 12))
        for fn in (triplet_margin_loss, contrastive_loss):
            v, g = jax.value_and_grad(lambda e: fn(e, y, metric=ball, normalize=False))(x)
            assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g)))
        d = pairwise_distances(x[:4], x[4:8], metric=ball)
        want = np.array([[float(ball.dist(x[i], x[4 + j])) for j in range(4)] for i in range(4)])
        np.testing.assert_allclose(d, want, rtol=1e-12)


def test_triplet_max_positives_equals_the_full_grid_and_flags_overflow():
    """With ``max_positives`` >= every anchor's positive count the (P, R) grid gives the full
    grid's loss and gradient (the same terms; f64 1e-12), with miners too; below it, NaN."""
    from geomjax.metric_learning import batch_hard_miner, triplet_margin_miner

    rng = np.random.default_rng(12)
    x = rng.standard_normal((60, 5))
    y = np.arange(60) // 4  # 4 per class: 3 positives per anchor
    with jax.enable_x64(True):
        for kw in (
            {},
            {"swap": True},
            {"miner": batch_hard_miner()},
            {"miner": triplet_margin_miner(0.3, "semihard")},
        ):
            full = jax.value_and_grad(lambda e: triplet_margin_loss(e, y, **kw))(jnp.asarray(x))
            bounded = jax.value_and_grad(
                lambda e: triplet_margin_loss(e, y, max_positives=3, **kw)
            )(jnp.asarray(x))
            np.testing.assert_allclose(float(bounded[0]), float(full[0]), rtol=1e-12)
            np.testing.assert_allclose(bounded[1], full[1], rtol=1e-10, atol=1e-14)
        with jax.debug_nans(False):
            assert np.isnan(float(triplet_margin_loss(jnp.asarray(x), y, max_positives=2)))
