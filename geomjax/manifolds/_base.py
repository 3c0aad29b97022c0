"""The manifold interface shared by every geomjax manifold.

Manifolds are frozen dataclasses registered as pytrees (``jax.tree_util.register_dataclass``):
dimensions are static fields (``dataclasses.field(metadata=dict(static=True))``), metric
parameters (curvature, a metric matrix, a power) are array leaves, so they can be learned with
``jax.grad``. Points and tangent vectors are raw arrays. Every method works on a single point
(shape ``point_shape``); batch with ``jax.vmap``.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, PRNGKey, full_precision

# What each argument name of a manifold method holds (its role in the error message).
_ROLES = {"x": "point", "y": "point", "u": "tangent", "v": "tangent", "g": "vector"}
_NOUNS = {
    "point": ("one point", "points"),
    "tangent": ("one tangent vector", "tangent vectors"),
    "vector": ("one ambient vector", "vectors"),
}


def svd_or_nan(a: Array, full_matrices: bool = True) -> tuple[Array, Array, Array]:
    """``jnp.linalg.svd(a)`` (with ``U`` and ``V^T``) of one matrix, all NaN if ``a`` has a
    non-finite entry.

    LAPACK's ``gesdd`` can loop forever on a matrix mixing inf and finite entries (Reference-LAPACK
    issue 1409; seen on CPU with jaxlib 0.10), so a non-finite matrix is replaced by zeros for the
    SVD and the results poisoned with ``sum(a - a)`` (0 for a finite ``a``, NaN otherwise: no NaN
    constant, which ``jax_debug_nans`` would flag). Values and derivatives at finite ``a`` are those
    of ``jnp.linalg.svd``.
    """
    finite = jnp.all(jnp.isfinite(a))
    poison = jnp.sum(a - a)
    u, s, vt = jnp.linalg.svd(jnp.where(finite, a, jnp.zeros_like(a)), full_matrices=full_matrices)
    return u + poison, s + poison, vt + poison


def check_manifold_array(fn: str, name: str, value, shape: tuple[int, ...], role: str) -> Array:
    """Trace-time check of one point / tangent / ambient vector of a manifold method.

    Requires exactly ``shape`` (no batch dimensions: batches go through ``jax.vmap``, under which
    the per-example shape is checked) and a real floating dtype.

    Raises:
      ValueError: wrong shape, naming the argument and the expected shape.
      TypeError: not an array, or an integer, boolean or complex dtype.
    """
    one, many = _NOUNS[role]
    try:
        arr = jnp.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{fn}: argument `{name}` must be {one}, an array of shape {tuple(shape)}; "
            f"got {type(value).__name__} ({err})"
        ) from None
    if arr.shape != tuple(shape):
        raise ValueError(
            f"{fn}: argument `{name}` must be {one} of shape {tuple(shape)}; got shape "
            f"{arr.shape}. For a batch of {many} use jax.vmap."
        )
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `{name}` must have a real floating dtype (float32 or float64); "
            f"got {arr.dtype}"
        )
    return arr


def as_real_scalar_array(fn: str, name: str, value, what: str = "a real scalar") -> Array:
    """``jnp.asarray(value)``, with a TypeError naming the argument for non-array input."""
    try:
        return jnp.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: argument `{name}` must be {what}; got {value!r}") from None


def check_time(fn: str, t: ArrayLike, name: str = "t") -> Array:
    """A real scalar time (int or float; one time per call, batch with ``jax.vmap``)."""
    arr = as_real_scalar_array(fn, name, t)
    if arr.shape != ():
        raise ValueError(
            f"{fn}: argument `{name}` must be a scalar (shape ()); got shape {arr.shape}. "
            "For several times use jax.vmap."
        )
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"{fn}: argument `{name}` must be a real number; got dtype {arr.dtype}")
    return arr


def check_key(fn: str, key, name: str = "key"):
    """One PRNG key: a typed key of shape ``()`` (``jax.random.key``) or a raw ``uint32`` key of
    shape ``(2,)``/``(4,)`` (``jax.random.PRNGKey``). Batches of keys go through ``jax.vmap``.

    Raises:
      TypeError: not a key (no key or uint32 dtype).
      ValueError: a key array of the wrong shape (e.g. a batch of keys).
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        ok, want = jnp.shape(key) == (), "shape ()"
    elif dtype == jnp.uint32:
        ok, want = jnp.shape(key) in ((2,), (4,)), "shape (2,) for a raw uint32 key"
    else:
        got = f"dtype {dtype}" if dtype is not None else type(key).__name__
        raise TypeError(
            f"{fn}: argument `{name}` must be a PRNG key (jax.random.key(seed)); got {got}"
        )
    if not ok:
        raise ValueError(
            f"{fn}: argument `{name}` must be one PRNG key ({want}); got shape "
            f"{jnp.shape(key)}. For a batch of keys use jax.vmap."
        )
    return key


def check_float_dtype(fn: str, dtype, name: str = "dtype"):
    """A real floating dtype (float32, float64, ...)."""
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(
            f"{fn}: argument `{name}` must be a real floating dtype (e.g. jnp.float32); "
            f"got {dtype!r}"
        )
    return dtype


class Manifold:
    """Base class: subclasses implement the abstract methods; defaults cover the rest.

    Required in subclasses: ``point_shape`` and ``dim`` (intrinsic dimension), ``inner``,
    ``proj``, ``exp``, ``log``, ``transp``, ``random_point``, ``check_point``.

    Defaults (override when a cheaper or more accurate closed form exists): ``norm`` (NaN-safe
    square root of ``inner``), ``egrad_to_rgrad`` (= ``proj``, right for embedded submanifolds
    with the induced metric), ``retr`` (= ``exp``), ``dist`` (= ``norm(x, log(x, y))``),
    ``geodesic`` (= ``exp(x, t log(x, y))``), ``random_tangent`` (projected Gaussian),
    ``check_tangent`` (distance of ``u`` from ``proj(x, u)``), ``projx`` (identity).

    Every public method checks its arguments at trace time (``_args``): a point, tangent or
    ambient vector whose shape is not ``point_shape`` / ``tangent_shape`` (a batch included)
    raises ``ValueError`` naming the argument and the expected shape, an integer, boolean or
    complex one ``TypeError``. Batches go through ``jax.vmap``, under which the per-example
    shape is what is checked. Subclasses call ``self._args(method, x=x, u=u, ...)`` at the top
    of each method they override.

    Input domain: values are not inspected (that would need a host sync under ``jit``). A NaN or
    infinite entry never raises; the results that read it are unspecified, usually non-finite
    (NaN in, NaN out), and the results that do not read it are unaffected. A point off the
    manifold (or a tangent vector off the tangent space) gives unspecified values, possibly
    non-finite. ``check_point(x)`` detects both: its residual is NaN, inf or > 0 there. ``projx``
    maps a finite ambient point back onto the manifold.

    Precision: every public method (of this class and of every subclass, wrapped when the
    subclass is defined) traces its matrix products at ``Precision.HIGHEST``
    (:func:`geomjax._core.full_precision`), so on GPUs, where float32 products default to TF32,
    the geometric maps keep float32 accuracy (exp/log round trips, orthogonality, positive
    definiteness) whatever ``jax_default_matmul_precision`` says.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _wrap_public_methods(cls)

    # -- argument checks (trace time) --------------------------------------------------------
    def _validate(self, fn: str, name: str, value, role: str):
        """Check one argument of role ``"point"``, ``"tangent"`` or ``"vector"``; return it as an
        array (:class:`~geomjax.manifolds.Product` overrides this to check tuples factor-wise)."""
        shape = self.point_shape if role == "point" else self.tangent_shape
        return check_manifold_array(fn, name, value, shape, role)

    def _arg_tuple(self, method: str, **named) -> tuple:
        """Check the named arguments of ``method`` (roles from the names: ``x``, ``y`` points,
        ``u``, ``v`` tangents, ``g`` and the ``u`` of ``proj`` ambient vectors); return them as
        arrays, in order."""
        fn = f"{type(self).__name__}.{method}"
        return tuple(
            self._validate(
                fn, name, value, "vector" if method == "proj" and name == "u" else _ROLES[name]
            )
            for name, value in named.items()
        )

    def _args(self, method: str, **named):
        """:meth:`_arg_tuple`, with a single argument returned as itself (not a 1-tuple)."""
        out = self._arg_tuple(method, **named)
        return out[0] if len(out) == 1 else out

    # -- shape -----------------------------------------------------------------------------
    @property
    def point_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def tangent_shape(self) -> tuple[int, ...]:
        return self.point_shape

    # -- metric ----------------------------------------------------------------------------
    def inner(self, x: ArrayLike, u: ArrayLike, v: ArrayLike) -> Array:
        """Riemannian inner product ``<u, v>_x`` of tangent vectors at ``x``."""
        raise NotImplementedError

    def norm(self, x: ArrayLike, u: ArrayLike) -> Array:
        """``sqrt(<u, u>_x)``, with a zero (not NaN) derivative at ``u = 0``."""
        x, u = self._args("norm", x=x, u=u)
        sq = self.inner(x, u, u)
        is_zero = sq <= 0
        safe = jnp.where(is_zero, jnp.ones_like(sq), sq)
        return jnp.where(is_zero, jnp.zeros_like(sq), jnp.sqrt(safe))

    def proj(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Projection of an ambient vector ``u`` onto the tangent space at ``x``."""
        raise NotImplementedError

    def egrad_to_rgrad(self, x: ArrayLike, g: ArrayLike) -> Array:
        """Riemannian gradient from the Euclidean gradient ``g`` of an ambient extension."""
        x, g = self._args("egrad_to_rgrad", x=x, g=g)
        return self.proj(x, g)

    # -- geodesics -------------------------------------------------------------------------
    def exp(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Riemannian exponential map."""
        raise NotImplementedError

    def log(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Riemannian logarithm, the inverse of ``exp(x, .)`` (within the injectivity radius)."""
        raise NotImplementedError

    def retr(self, x: ArrayLike, u: ArrayLike) -> Array:
        """A retraction: agrees with ``exp`` to first order."""
        x, u = self._args("retr", x=x, u=u)
        return self.exp(x, u)

    def transp(self, x: ArrayLike, y: ArrayLike, u: ArrayLike) -> Array:
        """Transport of a tangent vector ``u`` at ``x`` to the tangent space at ``y``."""
        raise NotImplementedError

    def dist(self, x: ArrayLike, y: ArrayLike) -> Array:
        """Geodesic distance."""
        x, y = self._args("dist", x=x, y=y)
        return self.norm(x, self.log(x, y))

    def geodesic(self, x: ArrayLike, y: ArrayLike, t: ArrayLike) -> Array:
        """Point at time ``t`` on the geodesic from ``x`` (t = 0) to ``y`` (t = 1)."""
        x, y = self._args("geodesic", x=x, y=y)
        t = check_time(f"{type(self).__name__}.geodesic", t)
        return self.exp(x, t * self.log(x, y))

    # -- sampling and checks ---------------------------------------------------------------
    def random_point(self, key: PRNGKey, dtype=jnp.float32) -> Array:
        """A random point (the distribution is documented per manifold)."""
        raise NotImplementedError

    def random_tangent(self, key: PRNGKey, x: ArrayLike) -> Array:
        """A random tangent vector at ``x``: a standard Gaussian projected to the tangent space."""
        check_key(f"{type(self).__name__}.random_tangent", key)
        x = self._args("random_tangent", x=x)
        return self.proj(x, jax.random.normal(key, self.tangent_shape, x.dtype))

    def check_point(self, x: ArrayLike) -> Array:
        """Residual (>= 0, 0 on the manifold) of the constraints defining a point."""
        raise NotImplementedError

    def check_tangent(self, x: ArrayLike, u: ArrayLike) -> Array:
        """Residual (>= 0) of ``u`` being tangent at ``x``: ``max|u - proj(x, u)|``."""
        x, u = self._args("check_tangent", x=x, u=u)
        return jnp.max(jnp.abs(u - self.proj(x, u)))

    def projx(self, x: ArrayLike) -> Array:
        """Nearest point on the manifold to an ambient ``x`` (identity if unconstrained)."""
        return self._args("projx", x=x)


def _wrap_public_methods(cls) -> None:
    """Wrap the public methods defined in ``cls`` (not inherited ones, already wrapped) in
    :func:`~geomjax._core.full_precision`; properties and private helpers are left alone."""
    for name, attr in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(attr, staticmethod):
            setattr(cls, name, staticmethod(full_precision(attr.__func__)))
        elif isinstance(attr, classmethod):
            setattr(cls, name, classmethod(full_precision(attr.__func__)))
        elif inspect.isfunction(attr):
            setattr(cls, name, full_precision(attr))


_wrap_public_methods(Manifold)
