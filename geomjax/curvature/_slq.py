"""Stochastic Lanczos quadrature: a Gaussian-smoothed estimate of the spectral density."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import (
    Array,
    ArrayLike,
    PRNGKey,
    PyTree,
    as_float_array,
    check_key,
    check_ndim,
    check_scalar,
)
from geomjax.curvature._lanczos import _check_int, _flat_operator, _lanczos_flat, _tridiag


class SpectralDensity(NamedTuple):
    """Output of :func:`slq_density`.

    Attributes:
      density: ``(g,)``, the smoothed spectral density at the points of ``grid``.
      nodes: ``(n_probes, n_iter)``, the Gauss quadrature nodes (Ritz values) of each probe.
      weights: ``(n_probes, n_iter)``, their weights (squared first components of the
        eigenvectors of ``T``; each row sums to 1).
    """

    density: Array
    nodes: Array
    weights: Array


def slq_density(
    mvp: Callable[[PyTree], PyTree],
    params_like: PyTree,
    key: PRNGKey,
    n_iter: int,
    n_probes: int,
    grid: ArrayLike,
    sigma: float,
    *,
    reorthogonalize: bool = True,
) -> SpectralDensity:
    r"""Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

    The spectral density :math:`\phi(t) = \frac1d \sum_{i=1}^d \delta(t - \lambda_i)` of
    ``A`` (``mvp``, dimension ``d``), smoothed by a Gaussian of width :math:`\sigma`, is
    :math:`\phi_\sigma(t) = \frac1d \operatorname{tr} g_\sigma(t - A)
    = \mathbb{E}_v\, v^\top g_\sigma(t - A)\, v` for unit probes with
    :math:`\mathbb{E}[v v^\top] = I/d`. For each probe, ``n_iter`` Lanczos steps from
    :math:`v_l` give :math:`T_l = S_l \operatorname{diag}(\theta_l) S_l^\top`, and
    :math:`v^\top f(A) v \approx \sum_j w_{lj} f(\theta_{lj})` with
    :math:`w_{lj} = (S_l)_{1j}^2` (Gauss quadrature, exact for polynomials of degree
    :math:`< 2 m`):

    .. math::

        \hat\phi_\sigma(t) = \frac{1}{L} \sum_{l=1}^{L} \sum_{j=1}^{m} w_{lj}\,
          \frac{1}{\sqrt{2\pi}\,\sigma} \exp\!\Big(-\frac{(t - \theta_{lj})^2}{2\sigma^2}\Big).

    The probes are normalized Rademacher vectors :math:`v = z/\sqrt d` (one key per probe), so
    the first moment :math:`\sum_j w_{lj}\theta_{lj} = z^\top A z / d` is a Hutchinson estimate
    of :math:`\operatorname{tr}(A)/d`. The density integrates to 1 over the real line (over
    ``grid`` when it extends a few ``sigma`` past the extreme Ritz values). Probes run one
    after another (``lax.map``), each with full reorthogonalization by default.

    Args:
      mvp: symmetric linear operator ``mvp(v) -> A v`` on pytrees like ``params_like``.
      params_like: pytree giving the structure, shapes and dtype.
      key: PRNG key (split per probe).
      n_iter: Lanczos steps per probe, ``1 <= n_iter <= d`` (static).
      n_probes: number of probes ``L >= 1`` (static).
      grid: ``(g,)`` points at which to evaluate the density.
      sigma: width of the Gaussian kernel, > 0.
      reorthogonalize: full reorthogonalization in each Lanczos run (default True).

    Returns:
      :class:`SpectralDensity` ``(density (g,), nodes (L, m), weights (L, m))``.

    Raises:
      TypeError: ``mvp`` not callable, non-floating ``params_like`` leaves or ``grid``,
        ``key`` not a single PRNG key, ``n_iter``, ``n_probes`` not ints, non-real ``sigma``.
      ValueError: ``params_like`` without entries, ``n_iter`` outside ``[1, d]``,
        ``n_probes < 1``, ``grid`` not 1-D, ``sigma`` not a scalar or (when concrete) not
        positive and finite, ``mvp(v)`` not shaped like ``params_like``.

    Input domain: a NaN grid point gets a NaN density there; NaN or inf from ``mvp`` give
    NaN nodes and density. A traced ``sigma`` is not checked: a negative one gives a negative
    density, zero a NaN one. ``grid`` may be empty (an empty density).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.curvature import slq_density
      >>> a = jnp.diag(jnp.array([1.0, 1.0, 3.0, 3.0]))
      >>> grid = jnp.linspace(-1.0, 5.0, 601)
      >>> out = slq_density(lambda v: a @ v, jnp.zeros(4), jax.random.key(0), 4, 2, grid, 0.1)
      >>> mass = jnp.sum(out.density) * 0.01                  # grid spacing 0.01
      >>> mean = jnp.sum(out.weights * out.nodes) / 2         # first moment, tr(A) / d
      >>> jnp.round(mass, 4), jnp.round(mean, 4)
      (Array(1., dtype=float32), Array(2., dtype=float32))

    References:
      B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
      Hessian eigenvalue density", ICML 2019 (arXiv:1901.10159).
      S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
      quadrature", SIAM J. Matrix Anal. Appl. 38(4), 2017.
      L. Lin, Y. Saad, C. Yang, "Approximating spectral densities of large matrices", SIAM
      Review 58(1), 2016 (arXiv:1308.5467).
    """
    fn = "slq_density"
    flat, _, matvec = _flat_operator(fn, mvp, params_like)
    d = flat.shape[0]
    dtype = flat.dtype
    check_key(fn, "key", key)
    m = _check_int(fn, "n_iter", n_iter, 1, d)
    n_probes = _check_int(fn, "n_probes", n_probes, 1)
    grid = as_float_array(fn, "grid", grid)
    check_ndim(fn, "grid", grid, 1)
    grid = grid.astype(dtype)
    check_scalar(fn, "sigma", sigma)
    sigma = jnp.asarray(sigma, dtype)

    def probe(k):
        kz, kr = jax.random.split(k)
        z = jax.random.rademacher(kz, (d,), dtype)
        alphas, betas, _, _, _ = _lanczos_flat(
            matvec, z / jnp.sqrt(jnp.asarray(d, dtype)), kr, m, reorthogonalize, False
        )
        theta, s = jnp.linalg.eigh(_tridiag(alphas, betas))
        return theta, s[0, :] ** 2

    nodes, weights = jax.lax.map(probe, jax.random.split(key, n_probes))
    z = (grid[:, None, None] - nodes[None]) / sigma
    kernel = jnp.exp(-0.5 * z**2) / (jnp.sqrt(2 * jnp.pi) * sigma)
    density = jnp.sum(kernel * weights[None], axis=(1, 2)) / n_probes
    return SpectralDensity(density, nodes, weights)
