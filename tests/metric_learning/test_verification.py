"""AUROC and AUPRC against scikit-learn (optional oracle), ties included, to 1e-12 (float64:
sums of at most n = 2000 terms of size <= 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.metric_learning import auprc, auroc


@pytest.mark.parametrize("quantize", [None, 10, 3])  # 3 levels: heavy ties
@pytest.mark.parametrize("seed", [0, 1])
def test_match_sklearn_with_ties(seed, quantize):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.random(2000) < 0.3
    s = rng.standard_normal(2000) + y
    if quantize:
        s = np.round(s * quantize / 4) / quantize
    with jax.enable_x64(True):
        a = auroc(jnp.asarray(s), jnp.asarray(y))
        p = jax.jit(auprc)(jnp.asarray(s), jnp.asarray(y))
    np.testing.assert_allclose(float(a), metrics.roc_auc_score(y, s), rtol=0, atol=1e-12)
    np.testing.assert_allclose(float(p), metrics.average_precision_score(y, s), rtol=0, atol=1e-12)


def test_empty_class_is_nan():
    with jax.debug_nans(False):
        assert np.isnan(float(auroc(jnp.array([0.1, 0.2]), jnp.array([1, 1]))))
        assert np.isnan(float(auprc(jnp.array([0.1, 0.2]), jnp.array([0, 0]))))
    with pytest.raises(ValueError, match="`scores`"):
        auroc(jnp.ones(3), jnp.ones(4))
