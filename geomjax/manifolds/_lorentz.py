"""The Lorentz (hyperboloid) model of hyperbolic space with learnable curvature -c.

Input domain of the functions (``minkowski_inner`` and the maps to and from the Poincare ball):
shapes, dtypes and concrete curvatures are checked at trace time, values are not: a NaN entry
gives NaN (NaN in, NaN out), an infinite entry gives unspecified values.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, PRNGKey, full_precision, series_in_square
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key
from geomjax.manifolds._poincare import (
    _asinhc_sq,
    _check_curvature,
    _check_dim,
    _sigma_floor,
    check_scalar_curvature,
    check_scale,
    check_vector,
)


def _cosh_sq(s: Array) -> Array:
    """``cosh(sqrt(s))``."""
    return series_in_square(s, (1.0, 1.0 / 2, 1.0 / 24, 1.0 / 720), jnp.cosh)


def _sinhc_sq(s: Array) -> Array:
    """``sinh(sqrt(s)) / sqrt(s)``."""
    return series_in_square(s, (1.0, 1.0 / 6, 1.0 / 120, 1.0 / 5040), lambda r: jnp.sinh(r) / r)


def _safe_sqrt(s: Array) -> Array:
    """``sqrt(max(s, 0))`` with a zero (not infinite) derivative at ``s <= 0``."""
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


@full_precision
def minkowski_inner(u: ArrayLike, v: ArrayLike) -> Array:
    r"""Minkowski bilinear form :math:`\langle u, v\rangle_L = -u_0 v_0 + \sum_{i \ge 1} u_i v_i`.

    Args:
      u, v: shape ``(d + 1,)``.

    Returns:
      Scalar.

    Raises:
      ValueError: ``u`` and ``v`` are not vectors of one shape (batch with ``jax.vmap``).
      TypeError: an argument is not real.
    """
    fn = "minkowski_inner"
    u, v = check_vector(fn, "u", u), check_vector(fn, "v", v)
    if u.shape != v.shape:
        raise ValueError(
            f"{fn}: arguments `u` and `v` must have the same shape (d + 1,); got {u.shape} and "
            f"{v.shape}"
        )
    return jnp.sum(u[1:] * v[1:]) - u[0] * v[0]


@full_precision
def lorentz_to_poincare(x: ArrayLike, c: ArrayLike = 1.0) -> Array:
    r"""Isometry from the hyperboloid to the Poincare ball, :math:`p = x_{1:} / (1 + \sqrt c x_0)`.

    Args:
      x: hyperboloid point, shape ``(d + 1,)``.
      c: curvature magnitude (scalar), the same for both models.

    Returns:
      Ball point, shape ``(d,)``.

    Raises:
      ValueError: ``x`` is not one vector of shape ``(d + 1,)``, ``d >= 1``, or a concrete ``c``
        is not positive and finite. TypeError: an argument is not real.

    Input domain: ``x`` is not checked to lie on the hyperboloid (use ``Lorentz.check_point``);
    a NaN entry gives NaN, and an infinite ``x_0`` maps the point to the origin.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import lorentz_to_poincare
      >>> lorentz_to_poincare(jnp.array([1.0, 0.0]))
      Array([0.], dtype=float32)
    """
    fn = "lorentz_to_poincare"
    x = check_vector(fn, "x", x, min_size=2)
    c = check_scalar_curvature(fn, c, x.dtype)
    return x[1:] / (1.0 + jnp.sqrt(c) * x[0])


@full_precision
def poincare_to_lorentz(p: ArrayLike, c: ArrayLike = 1.0) -> Array:
    r"""Isometry from the Poincare ball to the hyperboloid (inverse of :func:`lorentz_to_poincare`).

    .. math::

        x_0 = \frac{1 + c\|p\|^2}{\sqrt c\,(1 - c\|p\|^2)}, \qquad
        x_{1:} = \frac{2p}{1 - c\|p\|^2}.

    Args:
      p: ball point, shape ``(d,)``.
      c: curvature magnitude (scalar).

    Returns:
      Hyperboloid point, shape ``(d + 1,)``.

    Raises:
      ValueError: ``p`` is not one vector of shape ``(d,)``, or a concrete ``c`` is not positive
        and finite. TypeError: an argument is not real.
    """
    fn = "poincare_to_lorentz"
    p = check_vector(fn, "p", p)
    c = check_scalar_curvature(fn, c, p.dtype)
    cp2 = c * jnp.sum(p * p)
    sigma = jnp.maximum(1.0 - cp2, _sigma_floor(p.dtype))
    x0 = (1.0 + cp2) / (jnp.sqrt(c) * sigma)
    return jnp.concatenate([x0[None], 2.0 * p / sigma])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Lorentz(Manifold):
    r"""Hyperboloid :math:`\{x \in \mathbb{R}^{d+1} : \langle x, x\rangle_L = -1/c,\ x_0 > 0\}`.

    Curvature ``-c`` (``c`` an array leaf, learnable); points have shape ``(dim + 1,)``. With
    the Minkowski form :math:`\langle\cdot,\cdot\rangle_L` and
    :math:`q = \langle y - x, y - x\rangle_L \ge 0` (the chord is spacelike):

    .. math::

        \operatorname{proj}_x(u) = u + c\langle x, u\rangle_L\, x, \qquad
        \exp_x(u) = \cosh(\sqrt c\|u\|_L)\, x + \frac{\sinh(\sqrt c\|u\|_L)}{\sqrt c\|u\|_L}\, u,

        d(x, y) = \frac{1}{\sqrt c}\operatorname{arcosh}(-c\langle x, y\rangle_L)
                = \frac{2}{\sqrt c}\operatorname{asinh}\frac{\sqrt{c q}}{2}, \qquad
        \log_x(y) = \frac{\operatorname{asinh}(\sqrt{cq}/2)}{(\sqrt{cq}/2)\sqrt{1 + cq/4}}
            \Big((y - x) - \frac{c q}{2}\, x\Big),

        \Gamma_{x\to y}(u) = u + \frac{c\langle y, u\rangle_L}{1 - c\langle x, y\rangle_L}(x + y).

    The ``asinh`` form uses ``-c<x, y>_L = 1 + c q / 2``: it avoids ``arccosh`` at 1, whose
    derivative is infinite at ``x = y``, and keeps full relative accuracy for small distances.
    ``exp`` ends with ``projx`` (recompute ``x_0`` from the spatial part), so its output lies on
    the hyperboloid to rounding. ``retr`` is ``exp``. ``transp`` is the parallel transport along
    the geodesic.

    Args:
      dim: intrinsic dimension ``d >= 1``; points have shape ``(d + 1,)``.
      c: curvature magnitude ``c > 0`` (scalar array leaf).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import Lorentz
      >>> hyp = Lorentz(1, 1.0)
      >>> o = jnp.array([1.0, 0.0])
      >>> y = jnp.array([jnp.cosh(2.0), jnp.sinh(2.0)])
      >>> round(float(hyp.dist(o, y)), 5)
      2.0
      >>> hyp.log(o, y)
      Array([0., 2.], dtype=float32)

    References:
      M. Nickel, D. Kiela, "Learning Continuous Hierarchies in the Lorentz Model of Hyperbolic
      Geometry", ICML 2018, arXiv:1806.03417.
      I. Chami, R. Ying, C. Re, J. Leskovec, "Hyperbolic Graph Convolutional Neural Networks",
      NeurIPS 2019, arXiv:1910.12933 (curvature-c formulas and parallel transport).
    """

    dim: int = dataclasses.field(metadata=dict(static=True), default=2)
    c: ArrayLike = 1.0

    def __post_init__(self):
        _check_dim("Lorentz", self.dim)
        object.__setattr__(self, "c", _check_curvature("Lorentz", self.c))

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.dim + 1,)

    def _c(self, x: Array) -> Array:
        return jnp.asarray(self.c, x.dtype)

    def origin(self, dtype=jnp.float32) -> Array:
        """The base point ``(1/sqrt(c), 0, ..., 0)``."""
        check_float_dtype("Lorentz.origin", dtype)
        c = jnp.asarray(self.c, dtype)
        return jnp.zeros(self.point_shape, dtype).at[0].set(1.0 / jnp.sqrt(c))

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        return minkowski_inner(u, v)

    def norm(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("norm", x=x, u=u)
        return _safe_sqrt(minkowski_inner(u, u))

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("proj", x=x, u=u)
        return u + self._c(x) * minkowski_inner(x, u) * x

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """``proj(x, J g)`` with ``J = diag(-1, 1, ..., 1)`` (the inverse Minkowski metric)."""
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        return self.proj(x, g.at[0].multiply(-1.0))

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """``cosh(sqrt(c)|u|_L) x + sinhc(sqrt(c)|u|_L) u``, then ``projx``.

        Args:
          x: point, shape ``(dim + 1,)``.
          u: tangent vector at ``x``, shape ``(dim + 1,)``.

        Returns:
          Point, shape ``(dim + 1,)``.
        """
        x, u = self._args("exp", x=x, u=u)
        s = self._c(x) * jnp.maximum(minkowski_inner(u, u), 0.0)
        return self.projx(_cosh_sq(s) * x + _sinhc_sq(s) * u)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Logarithm from ``d = y - x``, ``q = <d, d>_L``; zero with identity derivative at ``y = x``.

        Args:
          x, y: points, shape ``(dim + 1,)``.

        Returns:
          Tangent vector at ``x``, shape ``(dim + 1,)``.
        """
        x, y = self._args("log", x=x, y=y)
        c = self._c(x)
        d = y - x
        a = 0.25 * c * jnp.maximum(minkowski_inner(d, d), 0.0)  # sinh^2(sqrt(c) dist / 2)
        return _asinhc_sq(a) / jnp.sqrt(1.0 + a) * (d - 2.0 * a * x)

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``sqrt(q) asinhc(c q / 4)`` with ``q = <y - x, y - x>_L``."""
        x, y = self._args("dist", x=x, y=y)
        d = y - x
        q = minkowski_inner(d, d)
        return _safe_sqrt(q) * _asinhc_sq(0.25 * self._c(x) * jnp.maximum(q, 0.0))

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """Parallel transport along the geodesic; ``1 - c<x, y>_L = 2 + c q / 2 >= 2``."""
        x, y, u = self._args("transp", x=x, y=y, u=u)
        c = self._c(x)
        d = y - x
        den = 2.0 + 0.5 * c * jnp.maximum(minkowski_inner(d, d), 0.0)
        return u + c * minkowski_inner(y, u) / den * (x + y)

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32, *, scale: float = 1.0) -> Array:
        """Wrapped normal at the origin: ``exp_o((0, v))``, ``v ~ N(0, scale^2 I)``.

        The geodesic distance to the origin is ``scale * |g|``; mapped by
        :func:`lorentz_to_poincare` it is ``PoincareBall.random_point`` with the same key.
        """
        check_key("Lorentz.random_point", key)
        check_float_dtype("Lorentz.random_point", dtype)
        check_scale("Lorentz.random_point", scale)
        g = jax.random.normal(key, (self.dim,), dtype)
        u = jnp.concatenate([jnp.zeros((1,), dtype), scale * g])
        return self.exp(self.origin(dtype), u)

    def check_point(self, x: ArrayLike) -> Array:
        """``|c <x, x>_L + 1| + max(0, -x_0)``."""
        x = self._args("check_point", x=x)
        return jnp.abs(self._c(x) * minkowski_inner(x, x) + 1.0) + jnp.maximum(-x[0], 0.0)

    def projx(self, x: ArrayLike) -> Array:
        """Keep the spatial part, set ``x_0 = sqrt(1/c + |x_{1:}|^2)``."""
        x = self._args("projx", x=x)
        x0 = jnp.sqrt(1.0 / self._c(x) + jnp.sum(x[1:] * x[1:]))
        return x.at[0].set(x0)
