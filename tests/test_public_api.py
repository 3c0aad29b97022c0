"""Public names per subpackage, and the one-way dependency direction of DESIGN.md."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "geomjax.linalg": {
        "expm",
        "invsqrtm",
        "logm",
        "nuclear_norm",
        "powm",
        "solve_lyapunov",
        "spectral_fn",
        "sqrtm",
        "sym",
    },
    "geomjax.testing": {
        "assert_allclose_dtype",
        "check_grads_finite",
        "check_manifold_axioms",
        "default_tolerance",
        "matmul_eps",
        "rounding_tolerance",
        "assert_equivariant",
        "random_orthogonal",
        "random_rotation",
        "random_permutation",
    },
    "geomjax.manifolds": {
        "Euclidean",
        "FrechetMeanResult",
        "Grassmann",
        "Lorentz",
        "Manifold",
        "PoincareBall",
        "Product",
        "SE3",
        "SO3",
        "Sphere",
        "Stiefel",
        "frechet_mean",
        "exp_so3",
        "log_so3",
        "exp_se3",
        "log_se3",
        "quat_to_matrix",
        "matrix_to_quat",
        "mobius_add",
        "lorentz_to_poincare",
        "poincare_to_lorentz",
        "SPDAffineInvariant",
        "SPDLogEuclidean",
        "SPDLogCholesky",
        "SPDBuresWasserstein",
        "SPDGeneralizedBuresWasserstein",
        "PowerDeformed",
        "bures_wasserstein_sqdist",
        "loki_predict",
    },
    "geomjax.optim": {
        "riemannian_adam",
        "riemannian_sgd",
        "RiemannianAdamState",
        "RiemannianSGDState",
        "adahessian",
        "scale_by_adahessian",
        "AdaHessianState",
        "mfac",
        "scale_by_mfac",
        "MFACState",
        "gradient_normalized_newton",
        "NormalizedNewtonResult",
        "NormalizedNewtonHistory",
        "normalized_newton",
        "scale_by_normalized_newton",
        "NormalizedNewtonState",
    },
    "geomjax.curvature": {
        "hvp",
        "ggn_vp",
        "fisher_vp",
        "empirical_fisher_vp",
        "hutchinson_diag",
        "hutchinson_trace",
        "lanczos",
        "top_eigenvalues",
        "slq_density",
        "empirical_ntk",
        "MFACInverse",
    },
    "geomjax.nn": {
        "BiMap",
        "HyperbolicEmbedding",
        "LogEig",
        "ManifoldParam",
        "MatrixPower",
        "ReEig",
        "SPDBatchNorm",
        "manifold_tree",
        "AmortizedVMFProjection",
        "Canonicalizer",
        "DeepSets",
        "DeepSetsLayer",
        "EGNN",
        "EGNNLayer",
        "MACEInteraction",
        "ProxyAnchorLoss",
        "ArcFaceLoss",
        "CosFaceLoss",
    },
    "geomjax.ot": {
        "wasserstein_1d",
        "sinkhorn_newton_sparse",
        "SinkhornNewtonSparseOutput",
        "sliced_wasserstein",
        "sliced_wasserstein_with_error",
        "random_projections",
        "sliced_wasserstein_cv",
        "max_sliced_wasserstein",
        "vmf_sliced_wasserstein",
        "distributional_sliced_wasserstein",
        "sample_von_mises_fisher",
        "gaussian_wasserstein",
        "bures_wasserstein",
        "gaussian_fit",
        "sinkhorn",
        "sinkhorn_divergence",
        "ManifoldCost",
        "SinkhornOutput",
        "SinkhornDivergenceOutput",
        "amortized_vmf_location",
        "init_amortized_projection",
    },
    "geomjax.special": {"log_iv", "log_kv"},
    "geomjax.distributions": {
        "VMFFit",
        "VMFMixtureFit",
        "VonMisesFisher",
        "fit_vmf_mixture",
        "fit_von_mises_fisher",
        "kappa_from_mean_resultant",
        "mean_resultant_length",
        "sample_von_mises_fisher",
        "vmf_log_normalizer",
        "vmf_mixture_log_responsibilities",
    },
    "geomjax.metric_learning": {
        "Miner",
        "RetrievalMetrics",
        "alignment_loss",
        "arcface_loss",
        "auprc",
        "auroc",
        "barlow_twins_loss",
        "batch_hard_miner",
        "circle_loss",
        "contrastive_loss",
        "cosface_loss",
        "explicit_triplet_margin_loss",
        "generalized_lifted_structure_loss",
        "max_bin_count",
        "multi_similarity_loss",
        "multi_similarity_miner",
        "ntxent_loss",
        "pair_margin_miner",
        "pairwise_distances",
        "proxy_anchor_loss",
        "retrieval_metrics",
        "supcon_loss",
        "triplet_margin_loss",
        "triplet_margin_miner",
        "uniformity_loss",
        "vicreg_loss",
    },
    "geomjax.equivariant": {
        "segment_sum",
        "segment_mean",
        "segment_max",
        "segment_softmax",
        "fully_connected_graph",
        "radius_graph",
        "batch_graphs",
        "egnn_layer",
        "init_egnn_layer",
        "egnn",
        "init_egnn",
        "deep_sets_layer",
        "init_deep_sets_layer",
        "deep_sets",
        "init_deep_sets",
        "pca_frames",
        "frame_average",
        "gram_schmidt_frame",
        "canonicalize",
        "canonicalized_apply",
        "gaunt_coefficients",
        "gaunt_tensor_product",
        "so2_convolution",
        "so2_convolution_num_weights",
        "init_so2_convolution",
        "channelwise_to_so2_weights",
        "symmetric_contraction",
        "symmetric_contraction_num_weights",
        "init_symmetric_contraction",
        "MACEConfig",
        "mace_interaction",
        "init_mace_interaction",
    },
    "geomjax.distributed": {
        "gather",
        "global_mesh",
        "initialize_from_env",
        "shard_batch",
    },
    "geomjax.datasets": {
        "charged_particles",
        "nbody_egnn_split",
        "egnn_nbody_small",
        "nbody_small_initial_conditions",
    },
    "geomjax.spdnet": {
        "MDMState",
        "RBNState",
        "augmented_covariance",
        "bimap",
        "covariance",
        "logeig",
        "mdm_fit",
        "mdm_predict",
        "rbn_init",
        "reeig",
        "riemannian_batch_norm",
        "tangent_space",
        "untangent_space",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module):
    mod = importlib.import_module(module)
    assert PUBLIC[module] <= set(mod.__all__), PUBLIC[module] - set(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} in __all__ but missing"
        assert not name.startswith("_")


def test_py_typed_ships():
    assert (ROOT / "geomjax" / "py.typed").exists()


# (module imported, modules that must NOT be imported as a consequence)
DIRECTION = [
    ("geomjax", ["flax", "ott"]),
    ("geomjax.linalg", ["flax", "ott", "optax"]),
    ("geomjax.manifolds", ["flax", "ott"]),
    ("geomjax.testing", ["flax", "ott"]),
    ("geomjax.optim", ["flax", "ott"]),
    ("geomjax.spdnet", ["flax", "ott", "optax"]),
    ("geomjax.curvature", ["flax", "ott", "optax"]),
    ("geomjax.equivariant", ["flax", "ott", "optax"]),
    ("geomjax.datasets", ["flax", "ott", "optax"]),
    # depends on geomjax._core only (DESIGN.md)
    (
        "geomjax.distributed",
        ["flax", "ott", "optax", "geomjax.linalg", "geomjax.manifolds", "geomjax.ot"],
    ),
    ("geomjax.ot", ["flax"]),
    ("geomjax.metric_learning", ["flax", "ott", "optax"]),
    ("geomjax.special", ["flax", "ott", "optax", "geomjax.manifolds", "geomjax.ot"]),
    ("geomjax.distributions", ["flax", "ott", "optax", "geomjax.ot"]),
]


@pytest.mark.parametrize("module,forbidden", DIRECTION, ids=[d[0] for d in DIRECTION])
def test_dependency_direction(module, forbidden):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {forbidden!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_no_peer_library_imports_in_package():
    # Peers are test oracles and benchmark baselines only; flax only in nn/, ott only in ot/.
    # (docstrings may name a peer; only import statements are forbidden)
    peers = (
        "import ot\n",
        "from ot ",
        "import pyriemann",
        "from pyriemann",
        "import geomstats",
        "from geomstats",
        "import e3nn_jax",
        "from e3nn_jax",
        "import scipy",
        "from scipy",
        "import torch",
        "from torch",
        "import pytorch_metric_learning",
        "from pytorch_metric_learning",
        "import cuequivariance",
        "from cuequivariance",
        "import faiss",
        "import mpmath",
        "from mpmath",
    )
    for path in (ROOT / "geomjax").rglob("*.py"):
        text = path.read_text()
        for peer in peers:
            assert peer not in text, f"{path} mentions {peer!r}"
        rel = path.relative_to(ROOT / "geomjax").parts
        if rel[0] != "nn":
            assert "from flax" not in text and "import flax" not in text, f"{path} imports flax"
        if rel[0] != "ot":
            assert "import ott" not in text and "from ott" not in text, f"{path} imports ott"
