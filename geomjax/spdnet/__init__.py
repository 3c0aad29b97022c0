"""SPD networks (functional): BiMap, ReEig, LogEig, Riemannian batch normalization, and covariance
features (shrinkage and augmented covariances, tangent-space mapping, minimum distance to mean)."""

from geomjax.spdnet._batchnorm import RBNState, batch_frechet_stats, rbn_init, riemannian_batch_norm
from geomjax.spdnet._layers import bimap, logeig, reeig

__all__ = [
    "RBNState",
    "batch_frechet_stats",
    "bimap",
    "logeig",
    "rbn_init",
    "reeig",
    "riemannian_batch_norm",
]
