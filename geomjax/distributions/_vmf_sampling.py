r"""Exact sampling from the von Mises-Fisher distribution on the sphere :math:`S^{d-1}`.

Moved here from ``geomjax.ot._vmf_sampling`` (which re-exports it), next to the
``VonMisesFisher`` distribution object; it only needs ``geomjax._core``.

The sampler has two parts:

* the component :math:`w = \mu^\top x` along the mean direction, drawn by Wood's (1994)
  rejection sampler, written in terms of :math:`1 - w` and :math:`1 - x_0` so that very large
  concentrations (``kappa = 1e4`` and beyond, float32 included) lose no digits;
* a uniform direction in the tangent space, mapped to the frame of ``mu`` by the Householder
  reflection that sends :math:`e_1` to ``mu``.

Gradients with respect to ``mu`` are reparameterized. The Householder frame is discontinuous at
``mu = e_1`` (a continuous frame field exists only on S^1, S^3 and S^7) and its derivative
grows like ``1 / |mu - e_1|`` near that point, so the derivative is not taken through it: the
sample drawn in the frame of ``m0 = stop_gradient(mu)`` is carried to ``mu`` by the minimal
rotation ``R(m0 -> mu)``, which is the identity in value and smooth around ``mu = m0``. Because
``R(m0 -> mu) x ~ vMF(mu, kappa)`` whenever ``x ~ vMF(m0, kappa)``, this is an exact
reparameterization with bounded derivatives at every ``mu``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    as_float_array,
    check_key,
    check_ndim,
    safe_div,
    safe_norm,
)

__all__ = [
    "sample_von_mises_fisher",
    "check_kappa",
    "check_direction",
    "rotate_rows",
    "unit_direction",
]

_FN = "sample_von_mises_fisher"

# Wood's acceptance probability is at least about 0.65 for every dimension and concentration,
# so 100 proposals fail with probability below 0.35 ** 100 ~ 1e-46 per sample: the bound only
# guards against an infinite loop, it never changes the distribution in practice.
_MAX_PROPOSALS = 100

# Up to this many degrees of freedom the Beta proposal is formed from two chi-square variables
# (sums of squared normals); above it ``jax.random.beta`` is used (fewer random numbers per
# proposal, but several seconds to compile on CPU).
_CHI2_MAX_DOF = 256


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_kappa(fn: str, kappa: ArrayLike, dtype) -> Array:
    """Scalar concentration cast to ``dtype``; positive and finite when its value is concrete.

    Returned under ``stop_gradient`` (the sampler does not differentiate in ``kappa``).
    """
    if not _is_traced(kappa):
        k_np = np.asarray(kappa)
        if k_np.dtype.kind not in "fiu":
            raise TypeError(f"{fn}: argument `kappa` must be a real number; got dtype {k_np.dtype}")
        if k_np.ndim != 0:
            raise ValueError(
                f"{fn}: argument `kappa` must be a scalar; got shape {k_np.shape} "
                "(use jax.vmap for several concentrations)"
            )
        if not (np.isfinite(k_np) and k_np > 0):
            raise ValueError(f"{fn}: argument `kappa` must be positive and finite; got {kappa!r}")
    else:
        check_ndim(fn, "kappa", kappa, 0)
    return jax.lax.stop_gradient(jnp.asarray(kappa).astype(dtype))


def check_direction(fn: str, name: str, mu: ArrayLike, d: int | None = None) -> Array:
    """A floating vector of shape ``(d,)`` (any ``d >= 1`` if None), nonzero when concrete."""
    mu = as_float_array(fn, name, mu)
    if mu.ndim != 1 or mu.shape[0] < 1 or (d is not None and mu.shape[0] != d):
        want = "(d,) with d >= 1" if d is None else f"({d},)"
        raise ValueError(f"{fn}: argument `{name}` must have shape {want}; got shape {mu.shape}")
    if not _is_traced(mu) and not np.any(np.asarray(mu) != 0):
        raise ValueError(f"{fn}: argument `{name}` must be a nonzero vector (a direction)")
    return mu


def _shape_tuple(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    elif isinstance(shape, (tuple, list)):
        shape = tuple(shape)
    else:
        raise ValueError(
            f"{_FN}: argument `shape` must be an int or a tuple of non-negative ints; got {shape!r}"
        )
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in shape):
        raise ValueError(
            f"{_FN}: argument `shape` must be a tuple of non-negative ints; got {shape!r}"
        )
    return tuple(int(s) for s in shape)


def _sample_w(key: PRNGKey, kappa: Array, d: int) -> tuple[Array, Array]:
    r"""One draw of :math:`w = \mu^\top x` (d >= 2) and :math:`1 - w^2`, by Wood's rejection.

    With :math:`b = (d-1) / (2\kappa + \sqrt{4\kappa^2 + (d-1)^2})` and
    :math:`x_0 = (1-b)/(1+b)`, propose :math:`z \sim \mathrm{Beta}(\frac{d-1}2, \frac{d-1}2)`,
    :math:`w = (1 - (1+b)z) / (1 - (1-b)z)` and accept when
    :math:`\kappa (w - x_0) + (d-1)\log\frac{1 - x_0 w}{1 - x_0^2} \ge \log u`. Every term is
    formed from :math:`1 - w = 2bz / (1 - (1-b)z)` and :math:`1 - x_0 = 2b / (1+b)`, which are
    accurate when both ``w`` and ``x0`` are within ``1e-5`` of one.
    """
    dtype = kappa.dtype
    dm1 = float(d - 1)
    b = dm1 / (2.0 * kappa + jnp.hypot(2.0 * kappa, dm1))
    one_minus_x0 = 2.0 * b / (1.0 + b)
    x0 = (1.0 - b) / (1.0 + b)
    log1p_x0 = jnp.log1p(x0)
    half = jnp.asarray(dm1 / 2.0, dtype)

    def propose(k):
        if d - 1 <= _CHI2_MAX_DOF:
            # z = U / (U + V) with U, V ~ chi^2_{d-1} (sums of squared normals), and the
            # uniform u = Phi(g) from one more normal: a single random draw per proposal, much
            # cheaper to compile than the gamma sampler behind jax.random.beta.
            g = jax.random.normal(k, (2 * (d - 1) + 1,), dtype)
            sq = g[:-1] * g[:-1]
            uu, vv = jnp.sum(sq[: d - 1]), jnp.sum(sq[d - 1 :])
            z = safe_div(uu, uu + vv, 0.5)
            one_minus_z = safe_div(vv, uu + vv, 0.5)
            log_u = log_ndtr(g[-1])
        else:
            kz, ku = jax.random.split(k)
            z = jax.random.beta(kz, half, half, dtype=dtype)
            one_minus_z = 1.0 - z
            log_u = log_ndtr(jax.random.normal(ku, (), dtype))
        den = one_minus_z + b * z  # = 1 - (1 - b) z >= b > 0
        one_minus_w = 2.0 * b * z / den
        one_plus_w = 2.0 * one_minus_z / den
        log_ratio = kappa * (one_minus_x0 - one_minus_w) + dm1 * (
            jnp.log1p(x0 * one_minus_w / one_minus_x0) - log1p_x0
        )
        return 1.0 - one_minus_w, one_minus_w * one_plus_w, log_ratio >= log_u

    def cond(state):
        i, _, _, _, done = state
        return jnp.logical_and(jnp.logical_not(done), i < _MAX_PROPOSALS)

    def body(state):
        i, k, w, s2, done = state
        k, sub = jax.random.split(k)
        w_new, s2_new, accept = propose(sub)
        return (
            i + 1,
            k,
            jnp.where(done, w, w_new),
            jnp.where(done, s2, s2_new),
            jnp.logical_or(done, accept),
        )

    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
    init = (jnp.asarray(0, jnp.int32), key, one, zero, jnp.asarray(False))
    _, _, w, s2, _ = jax.lax.while_loop(cond, body, init)
    return w, jnp.maximum(s2, 0.0)


def unit_direction(mu: Array) -> Array:
    """``mu / |mu|`` without underflow for tiny ``mu`` (rescaled by ``max |mu_i|`` first, under
    ``stop_gradient``: the result does not depend on the scale, so the gradient is exact);
    the zero vector maps to zero with a zero gradient."""
    s = jax.lax.stop_gradient(jnp.max(jnp.abs(mu)))
    u = mu / jnp.where(s > 0, s, jnp.ones_like(s))
    return safe_div(u, safe_norm(u))


def _householder_tail(m: Array, v: Array) -> Array:
    r"""Image of the tangent vector :math:`(0, v)` under the Householder map :math:`e_1 \mapsto m`.

    With :math:`m = (m_0, m_\perp)`, :math:`\hat n = m_\perp / |m_\perp|` and
    :math:`t = m_\perp^\top v`, the image is :math:`(t,\ v - (1 + m_0)\,\hat n\,(\hat n^\top v))`,
    a unit vector orthogonal to ``m``; bounded everywhere, the identity at :math:`m = e_1`.
    """
    m0, mp = m[0], m[1:]
    n_hat = safe_div(mp, safe_norm(mp))
    t = jnp.dot(mp, v)
    return jnp.concatenate([t[None], v - (1.0 + m0) * n_hat * jnp.dot(n_hat, v)])


def _canonical_sample(key: PRNGKey, m: Array, kappa: Array) -> Array:
    """One vMF(m, kappa) sample for a unit ``m`` (no derivative with respect to ``m``)."""
    d = m.shape[0]
    if d == 1:
        # S^0 = {-1, +1}: P(x = m) = e^kappa / (e^kappa + e^-kappa) = sigmoid(2 kappa).
        u = jax.random.uniform(key, dtype=m.dtype)
        return jnp.where(u < jax.nn.sigmoid(2.0 * kappa), 1.0, -1.0).astype(m.dtype) * m
    kw, kv = jax.random.split(key)
    w, s2 = _sample_w(kw, kappa, d)
    g = jax.random.normal(kv, (d - 1,), m.dtype)
    v = safe_div(g, safe_norm(g))
    return w * m + jnp.sqrt(s2) * _householder_tail(m, v)


def rotate_rows(a: Array, b: Array, x: Array) -> Array:
    r"""Minimal rotation :math:`R(a \to b)` applied to rows of ``x`` (unit ``a``, ``b``).

    :math:`R = I + K + K^2 / (1 + a^\top b)` with :math:`K = b a^\top - a b^\top`; exactly the
    identity when ``a`` and ``b`` are the same array, smooth in ``b`` away from ``-a``. If the
    rows of ``x`` are ``vMF(a, kappa)`` samples, the result rows are ``vMF(b, kappa)`` samples.
    """
    c = jnp.dot(a, b)
    kx = b * (x @ a)[..., None] - a * (x @ b)[..., None]
    k2x = b * (kx @ a)[..., None] - a * (kx @ b)[..., None]
    # At b = -a exactly the rotation plane is undefined (K = 0): return x (finite, no NaN).
    return x + kx + safe_div(k2x, 1.0 + c)


def sample_von_mises_fisher(
    key: PRNGKey, mu: ArrayLike, kappa: ArrayLike, shape: int | tuple[int, ...] = ()
) -> Array:
    r"""Draw exact samples of the von Mises-Fisher distribution :math:`\mathrm{vMF}(\mu, \kappa)`.

    The density on the unit sphere :math:`S^{d-1} \subset \mathbb{R}^d` is

    .. math::

        f(x; \mu, \kappa) = C_d(\kappa)\, e^{\kappa \mu^\top x}, \qquad
        C_d(\kappa) = \frac{\kappa^{d/2-1}}{(2\pi)^{d/2} I_{d/2-1}(\kappa)},

    with mean resultant length
    :math:`\mathbb{E}[\mu^\top x] = A_d(\kappa) = I_{d/2}(\kappa) / I_{d/2-1}(\kappa)` and
    second moment
    :math:`\mathbb{E}[x x^\top] = \frac{A_d}{\kappa} I + (1 - \frac{d A_d}{\kappa})\mu\mu^\top`.
    ``kappa -> 0`` gives the uniform distribution, ``kappa -> inf`` the point mass at ``mu``.

    The component :math:`w = \mu^\top x` is drawn by Wood's rejection sampler (acceptance
    probability above 0.65 for every ``d`` and ``kappa``; a ``lax.while_loop`` per sample, capped
    at 100 proposals, so a failure has probability below 1e-46), the rest is a uniform tangent
    direction placed by the Householder reflection :math:`e_1 \mapsto \mu`. All formulas use
    :math:`1 - w` directly, so ``kappa = 1e4`` (float32) or larger is stable. ``d = 1`` (the
    two-point sphere) is handled exactly.

    Gradients: samples are reparameterized in ``mu`` (derivatives exist and are bounded at every
    ``mu``, see the module docstring); ``mu`` is normalized inside, so the derivative with
    respect to a unit ``mu`` lies in its tangent space. ``kappa`` gets no gradient (it is
    wrapped in ``stop_gradient``: the rejection step is not reparameterized).

    Args:
      key: a PRNG key.
      mu: mean direction, shape ``(d,)``, nonzero (normalized inside; a concrete zero vector
        raises ``ValueError``, a traced one gives zero-length samples).
      kappa: concentration, a positive finite scalar (checked when concrete).
      shape: batch shape of the samples (int or tuple).

    Returns:
      Unit vectors of shape ``shape + (d,)`` in the dtype of ``mu``.

    Raises:
      TypeError: non-floating ``mu``, non-real ``kappa``, ``key`` not a single PRNG key.
      ValueError: ``mu`` not 1-D or zero, ``kappa`` not a scalar or (concrete) not positive,
        ``shape`` not an int or a tuple of non-negative ints.

    Input domain: NaN or inf in ``mu`` gives NaN samples (NaN in, NaN out). A traced ``kappa``
    is not checked at trace time: ``kappa = 0`` gives the uniform distribution, and a
    negative, infinite or NaN one gives NaN samples.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.distributions import sample_von_mises_fisher
      >>> mu = jnp.array([0.0, 0.0, 1.0])
      >>> x = sample_von_mises_fisher(jax.random.key(0), mu, 50.0, shape=(4000,))
      >>> x.shape
      (4000, 3)
      >>> bool(jnp.allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-6))
      True
      >>> round(float(jnp.mean(x @ mu)), 2)  # A_3(50) = coth(50) - 1/50 = 0.98
      0.98

    References:
      A. T. A. Wood, "Simulation of the von Mises Fisher distribution", Communications in
      Statistics - Simulation and Computation 23(1), 1994.
      T. R. Davidson, L. Falorsi, N. De Cao, T. Kipf, J. M. Tomczak, "Hyperspherical
      Variational Auto-Encoders", UAI 2018, arXiv:1804.00891 (Householder placement,
      reparameterization in ``mu``).
    """
    check_key(_FN, "key", key)
    mu = check_direction(_FN, "mu", mu)
    kappa = check_kappa(_FN, kappa, mu.dtype)
    shape = _shape_tuple(shape)
    m = unit_direction(mu)
    m0 = jax.lax.stop_gradient(m)
    x0 = _canonical_samples(key, m0, kappa, math.prod(shape))
    # Only reachable with a traced kappa (a concrete one is checked above): mark it invalid.
    x0 = jnp.where(jnp.logical_and(kappa >= 0, jnp.isfinite(kappa)), x0, jnp.nan)
    x = rotate_rows(m0, m, x0)
    return x.reshape(shape + (mu.shape[0],))


@functools.partial(jax.jit, static_argnums=3)
def _canonical_samples(key: PRNGKey, m: Array, kappa: Array, n: int) -> Array:
    """``(n, d)`` samples of vMF(m, kappa) for a unit ``m`` (jitted: cached across eager calls)."""
    keys = jax.random.split(key, max(n, 1))[:n]
    return jax.vmap(lambda k: _canonical_sample(k, m, kappa))(keys)
