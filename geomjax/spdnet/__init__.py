"""SPD networks (functional): BiMap, ReEig, LogEig, Riemannian batch normalization, and covariance
features (shrinkage and augmented covariances, tangent-space mapping, minimum distance to mean)."""

from geomjax.spdnet._batchnorm import RBNState, batch_frechet_stats, rbn_init, riemannian_batch_norm
from geomjax.spdnet._covariance import (
    augmented_covariance,
    covariance,
    delay_embedding,
    ledoit_wolf_shrinkage,
)
from geomjax.spdnet._layers import bimap, logeig, reeig
from geomjax.spdnet._mdm import MDMState, mdm_distances, mdm_fit, mdm_predict
from geomjax.spdnet._tangent_space import tangent_space, untangent_space

__all__ = [
    "MDMState",
    "RBNState",
    "augmented_covariance",
    "batch_frechet_stats",
    "bimap",
    "covariance",
    "delay_embedding",
    "ledoit_wolf_shrinkage",
    "logeig",
    "mdm_distances",
    "mdm_fit",
    "mdm_predict",
    "rbn_init",
    "reeig",
    "riemannian_batch_norm",
    "tangent_space",
    "untangent_space",
]
