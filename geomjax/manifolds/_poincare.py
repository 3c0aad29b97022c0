"""The Poincare ball model of hyperbolic space (learnable curvature -c) and Mobius operations.

Input domain of the Mobius functions: shapes, dtypes and concrete curvatures are checked at trace
time, values are not: a NaN entry gives NaN (NaN in, NaN out), an infinite entry gives unspecified
values, and points outside the ball are not detected (``PoincareBall.check_point`` measures it).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    eps,
    full_precision,
    safe_norm,
    series_in_square,
)
from geomjax.manifolds._base import Manifold, as_real_scalar_array, check_float_dtype, check_key

# -- even functions of sqrt(s), Taylor-safe in s = (argument)^2 -----------------------------


def _tanhc_sq(s: Array) -> Array:
    """``tanh(sqrt(s)) / sqrt(s)``."""
    return series_in_square(s, (1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315), lambda r: jnp.tanh(r) / r)


def _asinhc_sq(s: Array) -> Array:
    """``asinh(sqrt(s)) / sqrt(s)``."""
    return series_in_square(s, (1.0, -1.0 / 6, 3.0 / 40, -5.0 / 112), lambda r: jnp.arcsinh(r) / r)


def _artanhc_sq(s: Array) -> Array:
    """``artanh(sqrt(s)) / sqrt(s)``, with ``sqrt(s)`` clipped to ``1 - eps`` (stays finite)."""
    top = (1.0 - eps(s.dtype)) ** 2
    s = jnp.minimum(s, top)
    return series_in_square(s, (1.0, 1.0 / 3, 1.0 / 5, 1.0 / 7), lambda r: jnp.arctanh(r) / r)


def _sech2_sq(s: Array) -> Array:
    """``sech(sqrt(s))^2 = 1 - tanh(sqrt(s))^2``, computed without cancellation or overflow."""

    def large(r):
        e = jnp.exp(-2.0 * r)
        return 4.0 * e / (1.0 + e) ** 2

    return series_in_square(s, (1.0, -1.0, 2.0 / 3, -17.0 / 45), large)


# -- helpers shared with the Lorentz model ---------------------------------------------------


def _check_dim(cls: str, dim) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{cls}: argument `dim` must be an int >= 1; got {dim!r}")
    if dim < 1:
        raise ValueError(f"{cls}: argument `dim` must be an int >= 1; got {dim!r}")


def _check_curvature(cls: str, c):
    """Validate a concrete curvature ``0 < c < inf`` (tracers and pytree placeholders pass
    through)."""
    if isinstance(c, (bool, str, bytes, complex)):
        raise TypeError(f"{cls}: argument `c` must be a positive float; got {c!r}")
    if isinstance(c, (int, float)):
        if not 0 < c < float("inf"):
            raise ValueError(f"{cls}: argument `c` must be positive and finite; got {c!r}")
        return float(c)
    if isinstance(c, (list, tuple)):
        c = np.asarray(c)
    # A concrete array may hold a batch of curvatures (a batch of manifolds for jax.vmap).
    if isinstance(c, (np.ndarray, np.generic, jax.Array)) and not isinstance(c, jax.core.Tracer):
        dtype = np.asarray(c).dtype
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise TypeError(f"{cls}: argument `c` must be a positive float; got dtype {dtype}")
        values = np.asarray(c, np.float64)
        if not np.all((values > 0) & np.isfinite(values)):
            raise ValueError(f"{cls}: argument `c` must be positive and finite; got {c!r}")
    return c


def check_vector(fn: str, name: str, x: ArrayLike, min_size: int = 1) -> Array:
    """One real vector of shape ``(d,)``, ``d >= min_size`` (batches go through ``jax.vmap``)."""
    x = as_float_array(fn, name, x)
    if x.ndim != 1 or x.shape[0] < min_size:
        raise ValueError(
            f"{fn}: argument `{name}` must be one vector of shape (d,) with d >= {min_size}; got "
            f"shape {x.shape}. For a batch use jax.vmap."
        )
    return x


def check_scalar_curvature(fn: str, c, dtype) -> Array:
    """A curvature magnitude ``c``: a real scalar, positive and finite when concrete."""
    c = _check_curvature(fn, c)
    arr = jnp.asarray(c)
    if arr.shape != ():
        raise ValueError(f"{fn}: argument `c` must be a scalar; got shape {arr.shape}")
    return arr.astype(dtype)


def check_scale(fn: str, scale) -> None:
    """A real scalar ``scale`` (the spread of a wrapped normal)."""
    arr = as_real_scalar_array(fn, "scale", scale)
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"{fn}: argument `scale` must be a real scalar; got {scale!r}")
    if arr.shape != ():
        raise ValueError(f"{fn}: argument `scale` must be a scalar; got shape {arr.shape}")


def _sigma_floor(dtype) -> float:
    """Floor of ``1 - c|x|^2``: ``eps^(3/4)`` (6e-6 in float32, 2e-12 in float64).

    Computed as ``1 - c|x|^2`` it carries an absolute error ~eps, so below the floor it has lost
    three quarters of its digits anyway; the floor keeps second derivatives (which scale like
    ``sigma^-6``) inside the float32 range at any input, including points on the boundary.
    """
    return eps(dtype) ** 0.75


def _sigma(x: Array, c: Array) -> Array:
    """``1 - c |x|^2`` (= ``2 / lambda_x``), floored at ``_sigma_floor`` so it stays positive."""
    return jnp.maximum(1.0 - c * jnp.sum(x * x), _sigma_floor(x.dtype))


def boundary_margin(dtype) -> float:
    """Relative margin kept from the ball's boundary by ``projx``: ``sqrt(eps)``.

    ``1.5e-8`` in float64 and ``3.5e-4`` in float32: at radius ``(1 - m) / sqrt(c)`` the
    conformal factor ``1 - c|x|^2 ~ 2m`` still has about half the dtype's digits.
    """
    return float(np.sqrt(eps(dtype)))


# -- Mobius gyrovector operations --------------------------------------------------------------


@full_precision
def mobius_add(x: ArrayLike, y: ArrayLike, c: ArrayLike = 1.0) -> Array:
    r"""Mobius addition :math:`x \oplus_c y` in the Poincare ball of curvature ``-c``.

    .. math::

        x \oplus_c y
        = \frac{(1 + 2c\langle x, y\rangle + c\|y\|^2)\,x + (1 - c\|x\|^2)\,y}
               {1 + 2c\langle x, y\rangle + c^2\|x\|^2\|y\|^2}
        = \frac{(\sigma_x + c\|x + y\|^2)\,x + \sigma_x\, y}{\sigma_x\sigma_y + c\|x + y\|^2},
        \qquad \sigma_x = 1 - c\|x\|^2.

    The second (algebraically equal) form, used here, is a sum of non-negative terms in the
    denominator, so it stays accurate for ``y ~ -x`` near the boundary. ``sigma`` is floored
    at ``eps^(3/4)`` as in :class:`PoincareBall` (inputs are assumed inside the ball).

    Args:
      x, y: points of the ball, shape ``(d,)``.
      c: curvature magnitude ``c > 0`` (scalar).

    Returns:
      Shape ``(d,)``.

    Raises:
      ValueError: ``x`` and ``y`` are not vectors of one shape ``(d,)`` (batch with ``jax.vmap``),
        or a concrete ``c`` is not positive and finite.
      TypeError: an argument is not real.

    Input domain: see the module docstring (NaN in, NaN out; points outside the ball are not
    detected).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import mobius_add
      >>> mobius_add(jnp.array([0.5, 0.0]), jnp.array([0.5, 0.0]))
      Array([0.8, 0. ], dtype=float32)

    References:
      O. Ganea, G. Becigneul, T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018,
      arXiv:1805.09112 (eq. 3).
    """
    fn = "mobius_add"
    x, y = check_vector(fn, "x", x), check_vector(fn, "y", y)
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: arguments `x` and `y` must have the same shape (d,); got {x.shape} and {y.shape}"
        )
    c = check_scalar_curvature(fn, c, x.dtype)
    sx, sy = _sigma(x, c), _sigma(y, c)
    w = x + y
    cw2 = c * jnp.sum(w * w)
    return ((sx + cw2) * x + sx * y) / (sx * sy + cw2)


@full_precision
def mobius_matvec(m: ArrayLike, x: ArrayLike, c: ArrayLike = 1.0) -> Array:
    r"""Mobius matrix-vector product :math:`M \otimes_c x`.

    .. math::

        M \otimes_c x = \frac{1}{\sqrt c}
          \tanh\Big(\frac{\|Mx\|}{\|x\|}\operatorname{artanh}(\sqrt c\|x\|)\Big)\frac{Mx}{\|Mx\|},

    computed as ``tanhc(g) * artanhc(sqrt(c)|x|) * Mx`` with ``g = sqrt(c)|Mx| artanhc(...)``, so
    it is finite (with finite derivatives) at ``x = 0`` and ``Mx = 0``.

    Args:
      m: matrix, shape ``(k, d)``.
      x: point of the ball, shape ``(d,)``.
      c: curvature magnitude (scalar).

    Returns:
      Point of the ``k``-dimensional ball, shape ``(k,)``.

    Raises:
      ValueError: ``x`` is not a vector ``(d,)`` or ``m`` not a matrix ``(k, d)``, or a concrete
        ``c`` is not positive and finite. TypeError: an argument is not real.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import mobius_matvec
      >>> mobius_matvec(jnp.eye(2), jnp.array([0.3, 0.4]))
      Array([0.3, 0.4], dtype=float32)

    References:
      O. Ganea, G. Becigneul, T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018,
      arXiv:1805.09112 (eq. 27).
    """
    fn = "mobius_matvec"
    x = check_vector(fn, "x", x)
    m = as_float_array(fn, "m", m)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] != x.shape[0]:
        raise ValueError(
            f"{fn}: argument `m` must be a matrix of shape (k, {x.shape[0]}) (k >= 1) to match "
            f"`x` of shape {x.shape}; got shape {m.shape}"
        )
    c = check_scalar_curvature(fn, c, x.dtype)
    return _mobius_linear(m.astype(x.dtype) @ x, x, c)


@full_precision
def mobius_scalar_mul(r: ArrayLike, x: ArrayLike, c: ArrayLike = 1.0) -> Array:
    r"""Mobius scalar multiplication :math:`r \otimes_c x`.

    .. math::

        r \otimes_c x = \frac{1}{\sqrt c}\tanh\big(r\operatorname{artanh}(\sqrt c\|x\|)\big)
            \frac{x}{\|x\|}.

    Args:
      r: scalar.
      x: point of the ball, shape ``(d,)``.
      c: curvature magnitude (scalar).

    Returns:
      Shape ``(d,)``; ``dist(0, r (x) x) = |r| dist(0, x)``.

    Raises:
      ValueError: ``r`` is not a scalar or ``x`` not a vector ``(d,)``, or a concrete ``c`` is not
        positive and finite. TypeError: an argument is complex (``r``) or not real.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import mobius_scalar_mul, mobius_add
      >>> x = jnp.array([0.5, 0.0])
      >>> mobius_scalar_mul(2.0, x)
      Array([0.8, 0. ], dtype=float32)

    References:
      O. Ganea, G. Becigneul, T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018,
      arXiv:1805.09112 (eq. 4).
    """
    fn = "mobius_scalar_mul"
    x = check_vector(fn, "x", x)
    r = as_real_scalar_array(fn, "r", r)
    if not (jnp.issubdtype(r.dtype, jnp.floating) or jnp.issubdtype(r.dtype, jnp.integer)):
        raise TypeError(f"{fn}: argument `r` must be a real scalar; got dtype {r.dtype}")
    if r.shape != ():
        raise ValueError(f"{fn}: argument `r` must be a scalar; got shape {r.shape}")
    c = check_scalar_curvature(fn, c, x.dtype)
    return _mobius_linear(r.astype(x.dtype) * x, x, c)


def _mobius_linear(mx: Array, x: Array, c: Array) -> Array:
    a = _artanhc_sq(c * jnp.sum(x * x))
    g2 = c * jnp.sum(mx * mx) * a * a
    return _tanhc_sq(g2) * a * mx


# -- the manifold ----------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PoincareBall(Manifold):
    r"""Poincare ball :math:`\{x \in \mathbb{R}^d : c\|x\|^2 < 1\}` of constant curvature ``-c``.

    ``c`` is an array leaf (learnable with ``jax.grad``); ``dim`` is static. With
    :math:`\sigma_x = 1 - c\|x\|^2`, the conformal factor :math:`\lambda_x = 2/\sigma_x` and
    :math:`\delta = c\|x - y\|^2 / (\sigma_x\sigma_y)`:

    .. math::

        \langle u, v\rangle_x = \lambda_x^2\, u^\top v, \qquad
        \exp_x(u) = x \oplus_c \Big(\tanh\big(\tfrac{\sqrt c\lambda_x\|u\|}{2}\big)
            \frac{u}{\sqrt c\|u\|}\Big),

        d(x, y) = \frac{2}{\sqrt c}\operatorname{artanh}(\sqrt c\|(-x)\oplus_c y\|)
                = \frac{2}{\sqrt c}\operatorname{asinh}\sqrt{\delta}
                = \frac{1}{\sqrt c}\operatorname{arcosh}(1 + 2\delta),

        \log_x(y) = \frac{2}{\sqrt c\lambda_x}\operatorname{artanh}(\sqrt c\|w\|)\frac{w}{\|w\|}
                  = \frac{\operatorname{asinh}\sqrt\delta}{\sqrt{\delta(1+\delta)}}\,
                    \frac{\sigma_x (y - x) - c\|y - x\|^2 x}{\sigma_y},
        \qquad w = (-x)\oplus_c y,

        \Gamma_{x\to y}(u) = \frac{\lambda_x}{\lambda_y}\operatorname{gyr}[y, -x]\,u.

    The ``asinh`` forms (equal to Ganea et al.'s ``artanh`` forms) are evaluated from ``y - x``
    and :math:`\sigma`, so there is no cancellation at ``x = y`` and no ``artanh(1)`` near the
    boundary; :math:`\sigma` is floored at ``eps^(3/4)``, so values and first and second
    derivatives stay finite even for inputs on or outside the boundary. ``exp`` ends with
    ``projx``, which clips the radius to ``(1 - m)/sqrt(c)`` with ``m = boundary_margin(dtype)``
    (``sqrt(eps)``). ``retr(x, u) = projx(x + u)`` is the first-order retraction (as in geoopt),
    not ``exp``. ``transp`` is the parallel transport along the geodesic (Ganea et al., Thm. 4),
    with the gyration in Ungar's closed form.

    Args:
      dim: dimension ``d >= 1`` of the ball.
      c: curvature magnitude ``c > 0`` (sectional curvature ``-c``); scalar array leaf (a
        concrete array of curvatures builds a batch of manifolds, to be used under ``jax.vmap``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import PoincareBall
      >>> ball = PoincareBall(2, 1.0)
      >>> x, y = jnp.zeros(2), jnp.array([0.5, 0.0])
      >>> round(float(ball.dist(x, y)), 5)  # 2 artanh(0.5) = log 3
      1.09861
      >>> bool(jnp.allclose(ball.exp(x, ball.log(x, y)), y, atol=1e-6))
      True

    References:
      O. Ganea, G. Becigneul, T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018,
      arXiv:1805.09112.
      A. A. Ungar, "A Gyrovector Space Approach to Hyperbolic Geometry", Morgan & Claypool,
      2009 (the gyration formula).
    """

    dim: int = dataclasses.field(metadata=dict(static=True), default=2)
    c: ArrayLike = 1.0

    def __post_init__(self):
        _check_dim("PoincareBall", self.dim)
        object.__setattr__(self, "c", _check_curvature("PoincareBall", self.c))

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def _c(self, x: Array) -> Array:
        return jnp.asarray(self.c, x.dtype)

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        x, u, v = self._args("inner", x=x, u=u, v=v)
        lam = 2.0 / _sigma(x, self._c(x))
        return lam * lam * jnp.sum(jnp.asarray(u) * jnp.asarray(v))

    def norm(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("norm", x=x, u=u)
        return 2.0 / _sigma(x, self._c(x)) * safe_norm(u)

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        x, u = self._args("proj", x=x, u=u)
        return u

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """``g / lambda_x^2``."""
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        s = _sigma(x, self._c(x))
        return 0.25 * s * s * jnp.asarray(g)

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Exponential map, then ``projx``: ``x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|)``.

        Args:
          x: point, shape ``(dim,)``.
          u: tangent vector, shape ``(dim,)``.

        Returns:
          Point, shape ``(dim,)``.
        """
        x, u = self._args("exp", x=x, u=u)
        c = self._c(x)
        sx = _sigma(x, c)
        z2 = c * jnp.sum(u * u) / (sx * sx)  # (sqrt(c) lambda_x |u| / 2)^2
        v = _tanhc_sq(z2) / sx * u  # |v| sqrt(c) = tanh(z)
        sv = _sech2_sq(z2)  # 1 - c|v|^2, without cancellation
        w = x + v
        cw2 = c * jnp.sum(w * w)
        y = ((sx + cw2) * x + sx * v) / (sx * sv + cw2)  # x (+) v, stable form
        return self.projx(y)

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Logarithm ``asinhc(delta) (sigma_x (y - x) - c|y - x|^2 x) / (sigma_y sqrt(1 + delta))``.

        Args:
          x, y: points, shape ``(dim,)``.

        Returns:
          Tangent vector at ``x``, shape ``(dim,)``; zero (with identity derivative in ``y``)
          at ``y = x``.
        """
        x, y = self._args("log", x=x, y=y)
        c = self._c(x)
        sx, sy = _sigma(x, c), _sigma(y, c)
        d = y - x
        cd2 = c * jnp.sum(d * d)
        delta = cd2 / (sx * sy)
        return _asinhc_sq(delta) / (sy * jnp.sqrt(1.0 + delta)) * (sx * d - cd2 * x)

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """``(2 / sqrt c) asinh(sqrt(delta))``, ``delta = c|x - y|^2 / (sigma_x sigma_y)``."""
        x, y = self._args("dist", x=x, y=y)
        c = self._c(x)
        sx, sy = _sigma(x, c), _sigma(y, c)
        d = y - x
        delta = c * jnp.sum(d * d) / (sx * sy)
        return 2.0 * safe_norm(d) / (jnp.sqrt(sx) * jnp.sqrt(sy)) * _asinhc_sq(delta)

    def retr(self, x: ArrayLike, u: ArrayLike) -> Array:
        """First-order retraction ``projx(x + u)``."""
        x, u = self._args("retr", x=x, u=u)
        return self.projx(x + u)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        r"""Parallel transport along the geodesic, :math:`(\sigma_y/\sigma_x)\operatorname{gyr}[y, -x]u`.

        The gyration
        :math:`\operatorname{gyr}[a, b]w = \ominus(a\oplus b)\oplus(a\oplus(b\oplus w))` is evaluated in closed form, rewritten in ``d = y - x`` so that it is exactly the
        identity at ``y = x``:

        .. math::

            \operatorname{gyr}[y, -x]u = u + 2\,\frac{A\, d + (A - B)\, x}
                {\sigma_x\sigma_y + c\|d\|^2},\quad
            A = -c\sigma_x\langle x, u\rangle - c^2\|x\|^2\langle d, u\rangle
                + 2c^2\langle x, d\rangle\langle x, u\rangle,\quad
            A - B = c\sigma_x\langle d, u\rangle - c^2\|d\|^2\langle x, u\rangle.
        """
        x, y, u = self._args("transp", x=x, y=y, u=u)
        c = self._c(x)
        sx, sy = _sigma(x, c), _sigma(y, c)
        d = y - x
        xu, du, xd = jnp.sum(x * u), jnp.sum(d * u), jnp.sum(x * d)
        xx, dd = jnp.sum(x * x), jnp.sum(d * d)
        a = -c * sx * xu - c * c * xx * du + 2.0 * c * c * xd * xu
        a_minus_b = c * sx * du - c * c * dd * xu
        gyr = u + 2.0 * (a * d + a_minus_b * x) / (sx * sy + c * dd)
        return sy / sx * gyr

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32, *, scale: float = 1.0) -> Array:
        """Wrapped normal at the origin: ``exp_0(v)``, ``v ~ N(0, (scale/2)^2 I)``.

        The geodesic distance to the origin is ``scale * |g|`` for a standard Gaussian ``g``
        (``lambda_0 = 2``), the same law as ``Lorentz.random_point`` with the same key.
        """
        check_key("PoincareBall.random_point", key)
        check_float_dtype("PoincareBall.random_point", dtype)
        check_scale("PoincareBall.random_point", scale)
        g = jax.random.normal(key, self.point_shape, dtype)
        v = 0.5 * scale * g
        c = self._c(g)
        return self.projx(_tanhc_sq(c * jnp.sum(v * v)) * v)

    def check_point(self, x: ArrayLike) -> Array:
        """``max(0, sqrt(c)|x| - (1 - m))`` with ``m = boundary_margin(dtype)``."""
        x = self._args("check_point", x=x)
        c = self._c(x)
        return jnp.maximum(jnp.sqrt(c) * safe_norm(x) - (1.0 - boundary_margin(x.dtype)), 0.0)

    def projx(self, x: ArrayLike) -> Array:
        """Rescale ``x`` onto radius ``(1 - m)/sqrt(c)`` if outside (``m = boundary_margin``)."""
        x = self._args("projx", x=x)
        c = self._c(x)
        r = safe_norm(x)
        rmax = (1.0 - boundary_margin(x.dtype)) / jnp.sqrt(c)
        outside = r > rmax
        return jnp.where(outside, x * (rmax / jnp.where(outside, r, 1.0)), x)
