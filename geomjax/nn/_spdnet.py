"""NNX wrappers of the SPDNet layers: BiMap, ReEig, LogEig and Riemannian batch normalization."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geomjax._core import Array, ArrayLike, check_option
from geomjax.manifolds._spd_affine import SPDAffineInvariant
from geomjax.manifolds._spd_bures import SPDBuresWasserstein, SPDGeneralizedBuresWasserstein
from geomjax.manifolds._spd_log_cholesky import SPDLogCholesky
from geomjax.manifolds._spd_log_euclidean import SPDLogEuclidean
from geomjax.manifolds._spd_power import PowerDeformed
from geomjax.manifolds._stiefel import Stiefel
from geomjax.nn._manifold_param import ManifoldParam
from geomjax.spdnet import RBNState, bimap, logeig, rbn_init, reeig, riemannian_batch_norm

__all__ = ["BiMap", "LogEig", "ReEig", "SPDBatchNorm"]

_METRICS = ("aim", "le", "lc", "bw", "gbw")


class BiMap(nnx.Module):
    """``X -> W^T X W`` with ``W`` on the Stiefel manifold St(n_in, n_out) (a :class:`ManifoldParam`).

    Train with :func:`geomjax.optim.riemannian_adam` / ``riemannian_sgd`` and
    ``manifolds=manifold_tree(model)`` so that ``W`` stays orthonormal. Accepts one matrix or a
    batch ``(..., n_in, n_in)``.

    Args:
      n_in: input size.
      n_out: output size, ``<= n_in``.
      rngs: ``nnx.Rngs`` (``params`` stream; ``W`` starts Haar-random).
      param_dtype: dtype of ``W``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from geomjax.nn import BiMap
      >>> layer = BiMap(4, 2, rngs=nnx.Rngs(0))
      >>> layer(jnp.stack([jnp.eye(4)] * 3)).shape
      (3, 2, 2)
    """

    def __init__(self, n_in: int, n_out: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        manifold = Stiefel(n_in, n_out)
        self.w = ManifoldParam(manifold.random_point(rngs.params(), param_dtype), manifold=manifold)

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        f = lambda m: bimap(m, self.w[...].astype(m.dtype))  # noqa: E731
        for _ in range(x.ndim - 2):
            f = jax.vmap(f)
        return f(x)


class ReEig(nnx.Module):
    """Eigenvalue rectification ``U max(Lambda, eps) U^T`` (see :func:`geomjax.spdnet.reeig`).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.nn import ReEig
      >>> ReEig(1e-2)(jnp.diag(jnp.array([1e-4, 1.0]))).round(4)
      Array([[0.01, 0.  ],
             [0.  , 1.  ]], dtype=float32)
    """

    def __init__(self, eps: float = 1e-4):
        self.eps = eps

    def __call__(self, x: ArrayLike) -> Array:
        return reeig(x, self.eps)


class LogEig(nnx.Module):
    """Matrix logarithm, optionally vectorized (see :func:`geomjax.spdnet.logeig`).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.nn import LogEig
      >>> LogEig(vectorize=True)(jnp.eye(2)).shape
      (3,)
    """

    def __init__(self, vectorize: bool = True):
        self.vectorize = vectorize

    def __call__(self, x: ArrayLike) -> Array:
        return logeig(x, vectorize=self.vectorize)


class SPDBatchNorm(nnx.Module):
    """Riemannian batch normalization of SPD matrices (see :func:`geomjax.spdnet.riemannian_batch_norm`).

    ``metric`` picks the geometry: ``"aim"`` (affine-invariant; SPDBN / SPDDSMBN), ``"le"``,
    ``"lc"``, ``"bw"`` (Bures-Wasserstein) or ``"gbw"`` (generalized BW with a learnable SPD
    metric matrix ``M``, GBWBN). ``theta`` (not None) adds a power deformation with a learnable
    exponent (GBWBN uses ``metric="gbw", theta=...``). Parameters: ``bias`` (SPD, a
    :class:`ManifoldParam` on the affine-invariant SPD manifold, so the Riemannian optimizers keep
    it SPD), ``scale`` (scalar), and for ``"gbw"`` the matrix ``M`` (SPD ManifoldParam) and for a
    deformation ``theta`` (scalar Param). Running statistics are ``nnx.BatchStat``\\ s;
    ``model.train()`` / ``model.eval()`` switch ``use_running_average``.

    Args:
      n: matrix size.
      metric: one of ``"aim", "le", "lc", "bw", "gbw"``.
      theta: initial power deformation, or None for none.
      momentum, eps, mean_iter, axis_name: as in :func:`~geomjax.spdnet.riemannian_batch_norm`.
      scale_init: initial ``scale`` (under the BW metrics keep it below ~0.5 for unit-variance
        data, see the note there).
      use_running_average: start in evaluation mode.
      param_dtype: parameter dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.nn import SPDBatchNorm
      >>> bn = SPDBatchNorm(2, metric="gbw", theta=0.5)
      >>> x = jnp.stack([jnp.diag(jnp.array([1.0, 4.0])), jnp.diag(jnp.array([4.0, 1.0]))])
      >>> bn(x).shape
      (2, 2, 2)
    """

    def __init__(
        self,
        n: int,
        *,
        metric: str = "aim",
        theta: float | None = None,
        momentum: float = 0.1,
        eps: float = 1e-5,
        mean_iter: int = 10,
        scale_init: float = 1.0,
        axis_name: str | None = None,
        use_running_average: bool = False,
        param_dtype=jnp.float32,
    ):
        check_option("SPDBatchNorm", "metric", metric, _METRICS)
        spd = SPDAffineInvariant(n)
        self.n = n
        self.metric_name = metric
        self.momentum, self.eps, self.mean_iter, self.axis_name = (
            momentum,
            eps,
            mean_iter,
            axis_name,
        )
        self.use_running_average = use_running_average
        self.bias = ManifoldParam(jnp.eye(n, dtype=param_dtype), manifold=spd)
        self.scale = nnx.Param(jnp.asarray(scale_init, param_dtype))
        self.M = (
            ManifoldParam(jnp.eye(n, dtype=param_dtype), manifold=spd) if metric == "gbw" else None
        )
        self.theta = nnx.Param(jnp.asarray(theta, param_dtype)) if theta is not None else None
        state = rbn_init(n, param_dtype)
        self.running_mean = nnx.BatchStat(state.running_mean)
        self.running_var = nnx.BatchStat(state.running_var)

    def geometry(self):
        """The SPD metric built from the current parameters."""
        n = self.n
        base = {
            "aim": lambda: SPDAffineInvariant(n),
            "le": lambda: SPDLogEuclidean(n),
            "lc": lambda: SPDLogCholesky(n),
            "bw": lambda: SPDBuresWasserstein(n),
            "gbw": lambda: SPDGeneralizedBuresWasserstein(self.M[...]),
        }[self.metric_name]()
        return base if self.theta is None else PowerDeformed(base, self.theta[...])

    def __call__(self, x: ArrayLike) -> Array:
        """Normalize a batch ``(N, n, n)``; updates the running statistics in training mode."""
        state = RBNState(self.running_mean[...], self.running_var[...])
        metric = self.geometry()
        training = not self.use_running_average
        y, new = riemannian_batch_norm(
            x,
            state,
            metric,
            bias=self.bias[...],
            scale=self.scale[...],
            training=training,
            momentum=self.momentum,
            eps=self.eps,
            mean_iter=self.mean_iter,
            axis_name=self.axis_name,
        )
        if training:
            self.running_mean[...] = new.running_mean
            self.running_var[...] = new.running_var
        return y
