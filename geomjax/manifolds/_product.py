"""Product manifolds M_1 x ... x M_k with the product (sum) metric; points are tuples."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, PRNGKey, PyTree
from geomjax.manifolds._base import Manifold, check_float_dtype, check_key, check_time


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Product(Manifold):
    r"""Product manifold :math:`M_1 \times \dots \times M_k` with the product metric.

    **Points and tangent vectors are tuples** (pytrees) ``(x_1, ..., x_k)`` of the factors'
    points and tangent vectors, not single arrays; batch them with ``jax.vmap`` as usual (a
    batch is a tuple of stacked arrays). Every operation acts factor-wise; the metric is the
    sum of the factors' metrics:

    .. math::

        \langle u, v\rangle_x = \sum_i \langle u_i, v_i\rangle_{x_i}, \qquad
        d(x, y) = \Big(\sum_i d_i(x_i, y_i)^2\Big)^{1/2},

        \exp_x(u) = (\exp_{x_1}(u_1), \dots, \exp_{x_k}(u_k)), \qquad
        \log_x(y) = (\log_{x_1}(y_1), \dots, \log_{x_k}(y_k)).

    Geodesics of the product are tuples of factor geodesics run at the same time ``t``; the
    transport, retraction, projection and Riemannian gradient are the factors' own.

    The ``manifolds`` tuple is a pytree data field, so the factors' array leaves (e.g. a
    hyperbolic curvature) stay leaves of the product and can be learned with ``jax.grad``.

    Args:
      manifolds: a non-empty sequence of manifolds (stored as a tuple).

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.manifolds import Euclidean, Product
      >>> m = Product((Euclidean(2), Euclidean(1)))
      >>> m.dim
      3
      >>> x = (jnp.zeros(2), jnp.zeros(1))
      >>> y = (jnp.array([3.0, 0.0]), jnp.array([4.0]))
      >>> float(m.dist(x, y))
      5.0

    References:
      A. Gu, F. Sala, B. Gunel, C. Re, "Learning Mixed-Curvature Representations in Product
      Spaces", ICLR 2019 (product of spherical, hyperbolic and Euclidean factors).
      P.-A. Absil, R. Mahony, R. Sepulchre, "Optimization Algorithms on Matrix Manifolds",
      Princeton University Press, 2008 (product manifolds, Sec. 3.1.6).
    """

    manifolds: tuple[Manifold, ...] = ()

    def __post_init__(self):
        ms = self.manifolds
        if isinstance(ms, Manifold) or not isinstance(ms, Sequence):
            raise TypeError(
                "Product: argument `manifolds` must be a tuple or list of Manifold instances; "
                f"got {type(ms).__name__}"
            )
        ms = tuple(ms)
        if not ms:
            raise ValueError(
                "Product: argument `manifolds` must hold at least one manifold; got ()"
            )
        for i, m in enumerate(ms):
            if not isinstance(m, Manifold):
                raise TypeError(
                    f"Product: argument `manifolds[{i}]` must be a Manifold instance; "
                    f"got {type(m).__name__}"
                )
        object.__setattr__(self, "manifolds", ms)

    # -- helpers -----------------------------------------------------------------------------
    def _parts(self, fn: str, name: str, x) -> tuple:
        """Check that ``x`` is a tuple/list with one entry per factor; return it as a tuple."""
        k = len(self.manifolds)
        if not isinstance(x, (tuple, list)) or len(x) != k:
            got = (
                f"{type(x).__name__} of length {len(x)}"
                if isinstance(x, (tuple, list))
                else (f"{type(x).__name__} with shape {jnp.shape(x)}")
            )
            raise ValueError(
                f"{fn}: argument `{name}` must be a tuple with one entry per factor "
                f"({k} factors); got {got}"
            )
        return tuple(x)

    def _validate(self, fn: str, name: str, value, role: str) -> tuple:
        """Factor-wise check: a tuple with one entry per factor, entry ``i`` (named
        ``name[i]``) checked by factor ``i``."""
        parts = self._parts(fn, name, value)
        return tuple(
            m._validate(fn, f"{name}[{i}]", p, role)
            for i, (m, p) in enumerate(zip(self.manifolds, parts))
        )

    def _map(self, method: str, fn, *named: tuple[str, PyTree]) -> tuple:
        """``tuple(fn(m_i, a_i, b_i, ...))`` over the factors, with the arguments checked."""
        parts = self._arg_tuple(method, **dict(named))
        return tuple(fn(m, *args) for m, *args in zip(self.manifolds, *parts))

    # -- shape -------------------------------------------------------------------------------
    @property
    def point_shape(self) -> tuple[tuple[int, ...], ...]:
        """Tuple of the factors' point shapes (not a single shape)."""
        return tuple(m.point_shape for m in self.manifolds)

    @property
    def tangent_shape(self) -> tuple[tuple[int, ...], ...]:
        """Tuple of the factors' tangent shapes."""
        return tuple(m.tangent_shape for m in self.manifolds)

    @property
    def dim(self) -> int:
        """Sum of the factors' intrinsic dimensions."""
        return sum(m.dim for m in self.manifolds)

    # -- metric ------------------------------------------------------------------------------
    def inner(self, x: PyTree, u: PyTree, v: PyTree) -> Array:
        """Sum of the factors' inner products; returns a scalar."""
        terms = self._map(
            "inner", lambda m, xi, ui, vi: m.inner(xi, ui, vi), ("x", x), ("u", u), ("v", v)
        )
        return sum(terms[1:], terms[0])

    def proj(self, x: PyTree, u: PyTree) -> tuple:
        return self._map("proj", lambda m, xi, ui: m.proj(xi, ui), ("x", x), ("u", u))

    def egrad_to_rgrad(self, x: PyTree, g: PyTree) -> tuple:
        return self._map(
            "egrad_to_rgrad", lambda m, xi, gi: m.egrad_to_rgrad(xi, gi), ("x", x), ("g", g)
        )

    # -- geodesics ---------------------------------------------------------------------------
    def exp(self, x: PyTree, u: PyTree) -> tuple:
        return self._map("exp", lambda m, xi, ui: m.exp(xi, ui), ("x", x), ("u", u))

    def log(self, x: PyTree, y: PyTree) -> tuple:
        return self._map("log", lambda m, xi, yi: m.log(xi, yi), ("x", x), ("y", y))

    def retr(self, x: PyTree, u: PyTree) -> tuple:
        return self._map("retr", lambda m, xi, ui: m.retr(xi, ui), ("x", x), ("u", u))

    def transp(self, x: PyTree, y: PyTree, u: PyTree) -> tuple:
        return self._map(
            "transp", lambda m, xi, yi, ui: m.transp(xi, yi, ui), ("x", x), ("y", y), ("u", u)
        )

    def dist(self, x: PyTree, y: PyTree) -> Array:
        r"""``sqrt(sum_i d_i(x_i, y_i)^2)``, with a zero (not NaN) derivative at ``x = y``."""
        ds = self._map("dist", lambda m, xi, yi: m.dist(xi, yi), ("x", x), ("y", y))
        sq = sum((d * d for d in ds[1:]), ds[0] * ds[0])
        is_zero = sq <= 0
        safe = jnp.where(is_zero, jnp.ones_like(sq), sq)
        return jnp.where(is_zero, jnp.zeros_like(sq), jnp.sqrt(safe))

    def geodesic(self, x: PyTree, y: PyTree, t: ArrayLike) -> tuple:
        t = check_time("Product.geodesic", t)
        return self._map("geodesic", lambda m, xi, yi: m.geodesic(xi, yi, t), ("x", x), ("y", y))

    # -- sampling and checks -----------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> tuple:
        """Tuple of independent random points of the factors (one split key per factor)."""
        check_key("Product.random_point", key)
        check_float_dtype("Product.random_point", dtype)
        keys = jax.random.split(key, len(self.manifolds))
        return tuple(m.random_point(k, dtype) for m, k in zip(self.manifolds, keys))

    def random_tangent(self, key: PRNGKey, x: PyTree) -> tuple:
        """Tuple of the factors' random tangent vectors (one split key per factor)."""
        check_key("Product.random_tangent", key)
        parts = self._args("random_tangent", x=x)
        keys = jax.random.split(key, len(self.manifolds))
        return tuple(m.random_tangent(k, xi) for m, k, xi in zip(self.manifolds, keys, parts))

    def check_point(self, x: PyTree) -> Array:
        """Largest of the factors' residuals."""
        res = self._map("check_point", lambda m, xi: jnp.asarray(m.check_point(xi)), ("x", x))
        dtype = jnp.result_type(*res)
        return jnp.max(jnp.stack([r.astype(dtype) for r in res]))

    def check_tangent(self, x: PyTree, u: PyTree) -> Array:
        """Largest of the factors' tangent residuals."""
        res = self._map(
            "check_tangent",
            lambda m, xi, ui: jnp.asarray(m.check_tangent(xi, ui)),
            ("x", x),
            ("u", u),
        )
        dtype = jnp.result_type(*res)
        return jnp.max(jnp.stack([r.astype(dtype) for r in res]))

    def projx(self, x: PyTree) -> tuple:
        return self._map("projx", lambda m, xi: m.projx(xi), ("x", x))
