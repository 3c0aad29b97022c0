"""Hutchinson estimators of the Hessian diagonal and trace: Rademacher probes, a key per leaf."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from geomjax._core import Array, PRNGKey, PyTree, check_key, pmean_if, rademacher_like, vary_if
from geomjax.curvature._hvp import hvp
from geomjax.curvature._tree import check_float_leaves, scalar_valued


class HutchinsonDiagResult(NamedTuple):
    """Output of :func:`hutchinson_diag`.

    Attributes:
      diag: the estimate of the Hessian diagonal, a pytree like ``params``.
      grad: the gradient of ``f`` at ``params`` (a free by-product of the forward-over-reverse
        Hessian-vector products), a pytree like ``params``.
    """

    diag: PyTree
    grad: PyTree


class HutchinsonTraceResult(NamedTuple):
    """Output of :func:`hutchinson_trace`.

    Attributes:
      trace: scalar, the estimate of the Hessian trace.
      grad: the gradient of ``f`` at ``params``, a pytree like ``params``.
    """

    trace: Array
    grad: PyTree


def _check_n_samples(fn: str, n_samples: Any) -> int:
    try:
        if isinstance(n_samples, bool):
            raise TypeError
        n = operator.index(n_samples)
    except TypeError:
        raise TypeError(
            f"{fn}: argument `n_samples` must be a Python int (static); got "
            f"{type(n_samples).__name__}"
        ) from None
    if n < 1:
        raise ValueError(f"{fn}: argument `n_samples` must be >= 1; got {n}")
    return n


def _hutchinson(fn, f, params, key, n_samples, args, axis_name) -> HutchinsonDiagResult:
    f = scalar_valued(fn, "f", f)
    check_key(fn, "key", key)
    n = _check_n_samples(fn, n_samples)
    check_float_leaves(fn, "params", params)
    local = vary_if(params, axis_name)

    def one(k):
        z = vary_if(rademacher_like(k, params), axis_name)
        g, hz = hvp(f, local, z, *args)
        return jax.tree.map(lambda zi, hi: zi * hi, z, hz), g

    keys = jax.random.split(key, n)
    if n == 1:
        diag, grad = one(keys[0])
    else:
        zeros = vary_if(jax.tree.map(jnp.zeros_like, params), axis_name)

        def body(carry, k):
            acc, _ = carry
            est, g = one(k)
            return (jax.tree.map(jnp.add, acc, est), g), None

        (total, grad), _ = jax.lax.scan(body, (zeros, zeros), keys)
        diag = jax.tree.map(lambda t: t / n, total)
    return HutchinsonDiagResult(pmean_if(diag, axis_name), pmean_if(grad, axis_name))


def hutchinson_diag(
    f: Callable[..., Array],
    params: PyTree,
    key: PRNGKey,
    n_samples: int = 1,
    *args: Any,
    axis_name: str | None = None,
) -> HutchinsonDiagResult:
    r"""Hutchinson estimate of the Hessian diagonal of a scalar function, with its gradient.

    With :math:`H = \nabla^2_\theta f(\theta)` (``f(params, *args)``) and independent
    Rademacher probes :math:`z_s \in \{-1, +1\}^d`,

    .. math::

        \widehat{\operatorname{diag}}(H) = \frac1S \sum_{s=1}^S z_s \odot H z_s, \qquad
        \mathbb{E}\big[\widehat{\operatorname{diag}}(H)_i\big] = H_{ii}, \qquad
        \operatorname{Var}\big[\widehat{\operatorname{diag}}(H)_i\big]
          = \frac1S \sum_{j \ne i} H_{ij}^2 ,

    so the estimate is exact for a diagonal Hessian and its error falls as
    :math:`1/\sqrt S` otherwise. Each ``H z_s`` is one forward-over-reverse product
    (:func:`hvp`), looped with ``lax.scan`` (memory of one product for any ``S``).

    Keys: ``key`` is split into one key per sample, and each of those into one key per leaf of
    ``params`` (``rademacher_like``), so no two leaves or samples share a probe (reusing one key
    for every leaf of equal shape correlates their probes and biases the estimate by the
    off-diagonal blocks between those leaves).

    Distributed: with ``axis_name`` (inside ``jax.shard_map``/``pmap``, ``*args`` holding the
    local shard of the batch and ``f`` its mean loss) the local products are ``pmean``-ed, which
    equals the estimate on the full batch with the same probes. **Pass the same ``key`` (and
    ``params``) on every device**: the probes must agree across devices, otherwise the average
    mixes different probes (still unbiased but noisier, and no longer the full-batch estimate).

    Args:
      f: scalar function ``f(params, *args)``.
      params: pytree of floating parameters.
      key: PRNG key.
      n_samples: number of probes ``S >= 1`` (static).
      *args: further arguments of ``f`` (a batch), not differentiated.
      axis_name: name of a mapped device axis to average over, or None.

    Returns:
      :class:`HutchinsonDiagResult` ``(diag, grad)``, two pytrees like ``params``.

    Raises:
      TypeError: ``f`` not callable or not returning a real floating scalar (ValueError for a
        non-scalar), ``key`` not a single PRNG key, ``n_samples`` not an int, non-floating
        leaves in ``params``.
      ValueError: ``n_samples < 1``, ``params`` with no leaf.

    Input domain: values are not checked; a NaN in ``params`` or ``args`` gives NaN in the
    estimate (NaN in, NaN out), and an inf goes through the arithmetic of ``f`` like any value
    (a saturating ``f``, e.g. through ``tanh``, can make the result finite).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.curvature import hutchinson_diag
      >>> f = lambda p: jnp.sum(p["a"] ** 2) + 3.0 * jnp.sum(p["b"] ** 2)
      >>> p = {"a": jnp.ones(2), "b": jnp.ones(3)}
      >>> res = hutchinson_diag(f, p, jax.random.key(0))   # diagonal Hessian: exact
      >>> res.diag["a"], res.diag["b"], res.grad["b"]
      (Array([2., 2.], dtype=float32), Array([6., 6., 6.], dtype=float32),
       Array([6., 6., 6.], dtype=float32))

    References:
      M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
      Laplacian smoothing splines", Communications in Statistics - Simulation and Computation
      19(2), 1990.
      C. Bekas, E. Kokiopoulou, Y. Saad, "An estimator for the diagonal of a matrix", Applied
      Numerical Mathematics 57(11-12), 2007.
      Z. Yao, A. Gholami, S. Shen, M. Mustafa, K. Keutzer, M. W. Mahoney, "ADAHESSIAN: An
      adaptive second order optimizer for machine learning", AAAI 2021 (arXiv:2006.00719).
    """
    return _hutchinson("hutchinson_diag", f, params, key, n_samples, args, axis_name)


def hutchinson_trace(
    f: Callable[..., Array],
    params: PyTree,
    key: PRNGKey,
    n_samples: int = 1,
    *args: Any,
    axis_name: str | None = None,
) -> HutchinsonTraceResult:
    r"""Hutchinson estimate of the Hessian trace of a scalar function, with its gradient.

    .. math::

        \widehat{\operatorname{tr}}(H) = \frac1S \sum_{s=1}^S z_s^\top H z_s, \qquad
        \operatorname{Var} = \frac2S \sum_{i \ne j} H_{ij}^2 ,

    with Rademacher probes, a key per leaf and per sample; the sum of the leaves of
    :func:`hutchinson_diag` with the same arguments (same probes), so the same key and
    distribution conventions hold (same ``key`` on every device with ``axis_name``).

    Args:
      f: scalar function ``f(params, *args)``.
      params: pytree of floating parameters.
      key: PRNG key.
      n_samples: number of probes ``S >= 1`` (static).
      *args: further arguments of ``f``, not differentiated.
      axis_name: name of a mapped device axis to average over, or None.

    Returns:
      :class:`HutchinsonTraceResult` ``(trace, grad)``: a scalar and a pytree like ``params``.

    Raises:
      TypeError, ValueError: as :func:`hutchinson_diag`.

    Input domain: as :func:`hutchinson_diag` (NaN in, NaN out).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.curvature import hutchinson_trace
      >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 2.0, 3.0]) * w**2)
      >>> hutchinson_trace(f, jnp.zeros(3), jax.random.key(1), 4).trace
      Array(6., dtype=float32)

    References:
      M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
      Laplacian smoothing splines", Communications in Statistics - Simulation and Computation
      19(2), 1990.
      H. Avron, S. Toledo, "Randomized algorithms for estimating the trace of an implicit
      symmetric positive semi-definite matrix", Journal of the ACM 58(2), 2011.
    """
    diag, grad = _hutchinson("hutchinson_trace", f, params, key, n_samples, args, axis_name)
    parts = [jnp.sum(leaf) for leaf in jax.tree.leaves(diag)]
    return HutchinsonTraceResult(sum(parts[1:], parts[0]), grad)
