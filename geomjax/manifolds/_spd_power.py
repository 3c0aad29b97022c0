"""Power deformation of an SPD metric: the pullback by ``X -> X^theta``, scaled by ``1/theta^2``."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, PRNGKey, match_varying
from geomjax.linalg import powm
from geomjax.manifolds._base import check_float_dtype, check_key
from geomjax.manifolds._mean import FrechetMeanResult
from geomjax.manifolds._spd_common import SPDBase, check_stack, sym


def _check_theta(theta):
    if isinstance(theta, (bool, str, bytes, complex)):
        raise TypeError(f"PowerDeformed: argument `theta` must be a non-zero float; got {theta!r}")
    if isinstance(theta, (int, float)):
        if not np.isfinite(theta):
            raise ValueError(f"PowerDeformed: argument `theta` must be finite; got {theta!r}")
        if theta == 0:
            raise ValueError(
                "PowerDeformed: argument `theta` must be non-zero (theta -> 0 is the log-Euclidean limit)"
            )
        return float(theta)
    if isinstance(theta, (np.ndarray, jax.Array)) and not isinstance(theta, jax.core.Tracer):
        if np.ndim(theta) != 0:
            raise ValueError(
                f"PowerDeformed: argument `theta` must be a scalar; got shape {np.shape(theta)}"
            )
        if not np.all(np.asarray(theta) != 0):
            raise ValueError("PowerDeformed: argument `theta` must be non-zero")
        if not np.all(np.isfinite(np.asarray(theta))):
            raise ValueError(f"PowerDeformed: argument `theta` must be finite; got {theta!r}")
    return theta


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PowerDeformed(SPDBase):
    r"""The power deformation of an SPD metric: :math:`d_\theta(A, B) = d(A^\theta, B^\theta) / |\theta|`.

    The metric is the pullback of ``metric`` by :math:`\phi(X) = X^\theta`, divided by
    :math:`\theta^2`. Geodesics are the images of the base geodesics:

    .. math::

        \langle U, V\rangle^\theta_X = \tfrac{1}{\theta^2}
            \langle D\phi_X[U], D\phi_X[V]\rangle_{X^\theta}, \qquad
        \exp^\theta_X(U) = \phi^{-1}\big(\exp_{X^\theta}(D\phi_X[U])\big),

        \log^\theta_X(Y) = D\phi_X^{-1}\big[\log_{X^\theta}(Y^\theta)\big], \qquad
        \Gamma^\theta_{X\to Y} = D\phi_Y^{-1} \circ \Gamma_{X^\theta \to Y^\theta} \circ D\phi_X,

    with :math:`D\phi_X^{-1} = D(\cdot)^{1/\theta}` at :math:`X^\theta` (Daleckii-Krein
    derivatives of :func:`~geomjax.linalg.powm`). The Frechet mean is
    :math:`(\text{base mean of } X_i^\theta)^{1/\theta}`. As :math:`\theta \to 0` the deformed
    affine-invariant and log-Euclidean metrics tend to the log-Euclidean one, and the deformed
    (generalized, at ``M = I``) Bures-Wasserstein metric to half the log-Euclidean distance.

    ``theta`` is an array leaf (learnable with ``jax.grad``); it must be non-zero.

    Args:
      metric: the base SPD metric (any of the SPD classes of :mod:`geomjax.manifolds`).
      theta: the power, a non-zero scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import PowerDeformed, SPDLogEuclidean
      >>> m = PowerDeformed(SPDLogEuclidean(2), 0.5)
      >>> round(float(m.dist(jnp.eye(2), jnp.diag(jnp.array([jnp.e, 1.0])))), 5)  # LE is invariant
      1.0

    References:
      Y. Thanwerdas, X. Pennec, "Is affine-invariance well defined on SPD matrices? A principled
      continuum of metrics", GSI 2019, arXiv:1906.01349 (power-Euclidean / power-affine metrics).
      R. Wang, S. Jin, Z. Chen, X. Luo, X.-J. Wu, "Learning to normalize on the SPD manifold
      under Bures-Wasserstein geometry", CVPR 2025, arXiv:2504.00660 (power-deformed GBW).
    """

    metric: SPDBase
    theta: Array

    def __post_init__(self):
        if not isinstance(self.metric, SPDBase) and type(self.metric) is not object:
            raise TypeError(
                f"PowerDeformed: argument `metric` must be an SPD metric; got {type(self.metric).__name__}"
            )
        object.__setattr__(self, "theta", _check_theta(self.theta))

    @property
    def size(self) -> int:
        return self.metric.size

    @property
    def n(self) -> int:
        return self.size

    def _theta(self, x: Array) -> Array:
        return jnp.asarray(self.theta, x.dtype)

    def _phi(self, x: Array) -> Array:
        return sym(powm(x, self._theta(x)))

    def _phi_inv(self, y: Array) -> Array:
        return sym(powm(y, 1.0 / self._theta(y)))

    def _dphi(self, x: Array, u: Array) -> Array:
        u = sym(u)  # (an invariant point may meet a per-device tangent inside shard_map)
        return sym(jax.jvp(self._phi, (match_varying(x, u),), (u,))[1])

    def _dphi_inv(self, y: Array, w: Array) -> Array:
        """``D(phi^{-1})`` at ``y = phi(x)``: the inverse of ``D phi_x``."""
        w = sym(w)
        return sym(jax.jvp(self._phi_inv, (match_varying(y, w),), (w,))[1])

    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        check_key("PowerDeformed.random_point", key)
        check_float_dtype("PowerDeformed.random_point", dtype)
        return self.metric.random_point(key, dtype)

    def base_point(self, dtype=jnp.float32) -> Array:
        """The preimage of the base metric's base point: ``base_point ** (1 / theta)``."""
        check_float_dtype("PowerDeformed.base_point", dtype)
        return self._phi_inv(self.metric.base_point(dtype))

    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        t = self._theta(x)
        px = self._phi(x)
        return (
            self.metric.inner(px, self._dphi(x, jnp.asarray(u)), self._dphi(x, jnp.asarray(v)))
            / t**2
        )

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        px = self._phi(x)
        t = self._theta(x)
        h = self._dphi_inv(px, jnp.asarray(g))
        return self._dphi_inv(px, t**2 * self.metric.egrad_to_rgrad(px, h))

    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("exp", x=x, u=u)
        return self._phi_inv(self.metric.exp(self._phi(x), self._dphi(x, jnp.asarray(u))))

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("log", x=x, y=y)
        px = self._phi(x)
        return self._dphi_inv(px, self.metric.log(px, self._phi(jnp.asarray(y))))

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        x, y = self._args("dist", x=x, y=y)
        return self.metric.dist(self._phi(x), self._phi(jnp.asarray(y))) / jnp.abs(self._theta(x))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        x, y, u = self._args("transp", x=x, y=y, u=u)
        py = self._phi(y)
        w = self.metric.transp(self._phi(x), py, self._dphi(x, jnp.asarray(u)))
        return self._dphi_inv(py, w)

    def mean(
        self,
        points: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iter: int = 30,
        tol: float | None = None,
    ) -> FrechetMeanResult:
        """``(base mean of X_i^theta)^(1/theta)``; ``grad_norm`` is in the deformed metric."""
        points, w = check_stack("PowerDeformed.mean", points, self.size, weights)
        res = self.metric.mean(jax.vmap(self._phi)(points), w, max_iter=max_iter, tol=tol)
        scale = jnp.abs(self._theta(points))
        return res._replace(mean=self._phi_inv(res.mean), grad_norm=res.grad_norm / scale)
