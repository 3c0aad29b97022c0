"""Lanczos tridiagonalization of a symmetric linear operator on pytrees, and extreme eigenpairs."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from geomjax._core import Array, PRNGKey, PyTree, check_key, check_option, check_scalar
from geomjax.curvature._tree import check_callable, check_float_leaves, check_like


class LanczosResult(NamedTuple):
    """Output of :func:`lanczos`.

    Attributes:
      alphas: ``(m,)``, the diagonal of the tridiagonal matrix ``T = Q^T A Q``.
      betas: ``(m - 1,)``, its off-diagonal. An entry is exactly 0 where the Krylov space was
        exhausted (an invariant subspace was found) and the iteration restarted from a random
        vector orthogonal to the basis; ``T`` is then block diagonal.
      ritz_values: ``(m,)``, the eigenvalues of ``T`` in ascending order (approximations of the
        extreme eigenvalues of ``A`` first).
      ritz_vectors: the matching Ritz vectors ``Q s_j`` as a pytree like ``params_like`` with a
        leading axis ``m`` (unit norm), or None unless ``return_vectors=True``.
      residuals: ``(m,)``, ``|beta_m s_{m j}|``: the residual norms ``||A y_j - theta_j y_j||``
        of the Ritz pairs (exact in exact arithmetic; the error measure).
      converged: ``(m,)`` bool, ``residuals <= tol * max |ritz_values|``.
      n_iters: int32 scalar, the number of iterations ``m`` (= ``n_iter``).
      n_restarts: int32 scalar, how many times the Krylov space was exhausted and restarted.
    """

    alphas: Array
    betas: Array
    ritz_values: Array
    ritz_vectors: Any
    residuals: Array
    converged: Array
    n_iters: Array
    n_restarts: Array


class EigenResult(NamedTuple):
    """Output of :func:`top_eigenvalues`.

    Attributes:
      eigenvalues: ``(k,)``, descending for ``which="largest"`` and ``"magnitude"`` (by
        absolute value), ascending for ``"smallest"``.
      eigenvectors: pytree like ``params_like`` with a leading axis ``k`` (unit norm).
      residuals: ``(k,)``, ``||A y - theta y||`` for each pair.
      converged: ``(k,)`` bool, ``residuals <= tol * max |theta|``.
    """

    eigenvalues: Array
    eigenvectors: Any
    residuals: Array
    converged: Array


def _check_int(fn: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{fn}: argument `{name}` must be a Python int (static); got {type(value).__name__}"
        ) from None
    if n < low or (high is not None and n > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{fn}: argument `{name}` must be {rng}; got {n}")
    return n


def _flat_operator(fn: str, mvp: Callable[[PyTree], PyTree], params_like: PyTree):
    """Flatten ``params_like``; wrap ``mvp`` as a map of flat vectors with a checked output."""
    check_callable(fn, "mvp", mvp)
    check_float_leaves(fn, "params_like", params_like)
    flat, unravel = ravel_pytree(params_like)
    if flat.shape[0] < 1:
        raise ValueError(
            f"{fn}: argument `params_like` must have at least one entry; got leaf shapes "
            f"{[jnp.shape(a) for a in jax.tree.leaves(params_like)]}"
        )

    def matvec(x: Array) -> Array:
        out = mvp(unravel(x))
        out = check_like(fn, "mvp(v)", out, "params_like", params_like)
        return ravel_pytree(out)[0].astype(x.dtype)

    return flat, unravel, matvec


def _lanczos_flat(
    matvec: Callable[[Array], Array],
    v0: Array,
    key: PRNGKey,
    n_iter: int,
    reorthogonalize: bool,
    keep_basis: bool,
):
    """Lanczos on flat vectors from the unit vector ``v0``.

    Returns ``(alphas (m,), betas (m - 1,), beta_last, basis (m, d) or None, n_restarts)``.
    """
    d = v0.shape[0]
    m = n_iter
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    store = reorthogonalize or keep_basis

    def orthogonalize(w, basis, q, q_prev):
        if reorthogonalize:
            # Full reorthogonalization, classical Gram-Schmidt applied twice ("twice is
            # enough"); the rows of `basis` not yet filled are zero and drop out.
            w = w - basis.T @ (basis @ w)
            return w - basis.T @ (basis @ w)
        w = w - jnp.vdot(q, w) * q
        return w - jnp.vdot(q_prev, w) * q_prev

    def body(j, carry):
        basis, q, q_prev, beta_prev, alphas, betas, scale, restarts = carry
        aq = matvec(q)
        alpha = jnp.vdot(q, aq)
        scale = jnp.maximum(scale, jnp.linalg.norm(aq))
        if reorthogonalize:
            w = orthogonalize(aq, basis, q, q_prev)
        else:
            w = aq - alpha * q - beta_prev * q_prev
            w = orthogonalize(w, basis, q, q_prev)  # one extra local pass against q, q_prev
        beta = jnp.linalg.norm(w)
        last = j == m - 1
        breakdown = (beta <= jnp.sqrt(jnp.asarray(d, dtype)) * eps * scale) & ~last

        def restart(_):
            r = jax.random.normal(jax.random.fold_in(key, j), (d,), dtype)
            r = orthogonalize(r, basis, q, q_prev)
            nr = jnp.linalg.norm(r)
            return r / jnp.where(nr > 0, nr, 1.0)

        def proceed(_):
            return w / jnp.where(beta > 0, beta, 1.0)

        q_next = jax.lax.cond(breakdown, restart, proceed, None)
        beta_used = jnp.where(breakdown, jnp.zeros_like(beta), beta)
        alphas = alphas.at[j].set(alpha)
        betas = betas.at[j].set(beta_used)
        if store:
            basis = basis.at[jnp.minimum(j + 1, m - 1)].set(jnp.where(last, basis[m - 1], q_next))
        return (basis, q_next, q, beta_used, alphas, betas, scale, restarts + breakdown)

    basis0 = jnp.zeros((m, d), dtype).at[0].set(v0) if store else None
    init = (
        basis0,
        v0,
        jnp.zeros_like(v0),
        jnp.zeros((), dtype),
        jnp.zeros((m,), dtype),
        jnp.zeros((m,), dtype),
        jnp.zeros((), dtype),
        jnp.zeros((), jnp.int32),
    )
    basis, _, _, _, alphas, betas, _, restarts = jax.lax.fori_loop(0, m, body, init)
    return alphas, betas[: m - 1], betas[m - 1], basis, restarts


def _tridiag(alphas: Array, betas: Array) -> Array:
    return jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)


def _default_tol(dtype) -> float:
    return float(jnp.finfo(dtype).eps) ** 0.5


def _check_tol(fn: str, tol: Any) -> None:
    if tol is not None:
        check_scalar(fn, "tol", tol, positive=False, allow_inf=True)


def lanczos(
    mvp: Callable[[PyTree], PyTree],
    params_like: PyTree,
    key: PRNGKey,
    n_iter: int,
    *,
    reorthogonalize: bool = True,
    return_vectors: bool = False,
    init: PyTree | None = None,
    tol: float | None = None,
) -> LanczosResult:
    r"""Lanczos tridiagonalization of a symmetric operator on pytrees (e.g. a Hessian or GGN).

    Builds an orthonormal basis :math:`Q = [q_1, \dots, q_m]` of the Krylov space
    :math:`\mathcal K_m(A, q_1)` of the operator ``A`` (``mvp``) and the tridiagonal
    :math:`T = Q^\top A Q`:

    .. math::

        \beta_j q_{j+1} = A q_j - \alpha_j q_j - \beta_{j-1} q_{j-1}, \qquad
        \alpha_j = q_j^\top A q_j ,

    whose eigenvalues (Ritz values) approximate the extreme eigenvalues of ``A`` after a few
    dozen iterations, and equal all of them when ``m = d``. With ``reorthogonalize=True``
    (default) each new vector is orthogonalized against the whole stored basis (classical
    Gram-Schmidt, twice) inside a ``lax.fori_loop`` over a fixed ``(m, d)`` buffer: ``O(m d)``
    memory, no ghost eigenvalues. With ``False`` only the three-term recurrence is used and,
    unless ``return_vectors``, only three vectors are kept (``O(d)`` memory; Ritz values can
    then repeat). When the Krylov space is exhausted (``beta_j`` at round-off level: an
    invariant subspace was found) the iteration restarts from a random vector orthogonal to the
    basis with ``beta_j = 0``, so no NaN appears and ``m = d`` recovers the whole spectrum.

    The operator works on pytrees shaped like ``params_like`` (flattened internally with
    ``jax.flatten_util.ravel_pytree``). It is not averaged over devices here: pass an ``mvp``
    that averages itself (:func:`ggn_vp` or an :func:`hvp` with ``axis_name``) and the same
    ``key`` on every device, and every device runs the same iteration.

    Args:
      mvp: symmetric linear operator, ``mvp(v) -> A v`` on pytrees like ``params_like``.
      params_like: pytree giving the structure, shapes and dtype (values unused).
      key: PRNG key for the random start vector (when ``init`` is None) and for restarts.
      n_iter: number of iterations ``m``, ``1 <= m <= d`` (static).
      reorthogonalize: full reorthogonalization (default True).
      return_vectors: also return the Ritz vectors (keeps the basis).
      init: optional start vector, a pytree like ``params_like`` (normalized here).
      tol: relative residual tolerance for ``converged``; default ``sqrt(eps)`` of the dtype.

    Returns:
      :class:`LanczosResult` ``(alphas, betas, ritz_values, ritz_vectors, residuals,
      converged, n_iters, n_restarts)``.

    Raises:
      TypeError: ``mvp`` not callable, non-floating leaves in ``params_like`` or ``init``,
        ``key`` not a single PRNG key, ``n_iter`` not an int, non-real ``tol``.
      ValueError: ``params_like`` without entries, ``n_iter`` outside ``[1, d]``, ``mvp(v)`` or
        ``init`` not shaped like ``params_like``, negative or NaN ``tol``.

    Input domain: NaN or inf from ``mvp`` give NaN Ritz values with ``converged`` all False. The
    operator must be symmetric: a non-symmetric one is not detected (the result is finite
    but describes no eigenpair of it). A zero ``init`` is replaced by a random vector.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.curvature import lanczos
      >>> a = jnp.diag(jnp.array([1.0, 2.0, 3.0, 4.0]))
      >>> res = lanczos(lambda v: a @ v, jnp.zeros(4), jax.random.key(0), 4)
      >>> jnp.round(res.ritz_values, 4)
      Array([1., 2., 3., 4.], dtype=float32)

    References:
      C. Lanczos, "An iteration method for the solution of the eigenvalue problem of linear
      differential and integral operators", J. Res. Nat. Bur. Standards 45(4), 1950.
      G. H. Golub, C. F. Van Loan, "Matrix Computations", 4th ed., Johns Hopkins, 2013, ch. 10.
      B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
      Hessian eigenvalue density", ICML 2019 (arXiv:1901.10159).
    """
    fn = "lanczos"
    flat, unravel, matvec = _flat_operator(fn, mvp, params_like)
    d = flat.shape[0]
    check_key(fn, "key", key)
    m = _check_int(fn, "n_iter", n_iter, 1, d)
    _check_tol(fn, tol)
    dtype = flat.dtype
    if init is None:
        k0, key = jax.random.split(key)
        v0 = jax.random.normal(k0, (d,), dtype)
    else:
        init = check_like(fn, "init", init, "params_like", params_like)
        v0 = ravel_pytree(init)[0].astype(dtype)
    n0 = jnp.linalg.norm(v0)
    v0 = v0 / jnp.where(n0 > 0, n0, 1.0)
    alphas, betas, beta_last, basis, restarts = _lanczos_flat(
        matvec, v0, key, m, reorthogonalize, return_vectors
    )
    theta, s = jnp.linalg.eigh(_tridiag(alphas, betas))
    residuals = jnp.abs(beta_last * s[m - 1, :])
    tol = _default_tol(dtype) if tol is None else tol
    converged = residuals <= tol * jnp.max(jnp.abs(theta))
    vectors = None
    if return_vectors:
        vectors = jax.vmap(unravel)(s.T @ basis)
    return LanczosResult(
        alphas, betas, theta, vectors, residuals, converged, jnp.asarray(m, jnp.int32), restarts
    )


def top_eigenvalues(
    mvp: Callable[[PyTree], PyTree],
    params_like: PyTree,
    key: PRNGKey,
    k: int,
    n_iter: int,
    *,
    which: str = "largest",
    tol: float | None = None,
) -> EigenResult:
    r"""The ``k`` extreme eigenpairs of a symmetric operator by Lanczos (full reorthogonalization).

    Runs :func:`lanczos` for ``n_iter`` steps and returns the ``k`` Ritz pairs at the chosen
    end of the spectrum, with their residual norms :math:`\|A y - \theta y\|` as the error
    measure: for a symmetric ``A`` some eigenvalue lies within the residual of each Ritz value
    (and within its square over the gap once the gap is resolved).

    Args:
      mvp: symmetric linear operator ``mvp(v) -> A v`` on pytrees like ``params_like``.
      params_like: pytree giving the structure, shapes and dtype.
      key: PRNG key for the start vector.
      k: how many eigenpairs, ``1 <= k <= n_iter``.
      n_iter: Lanczos iterations, ``k <= n_iter <= d`` (a few times ``k``; ``d`` is exact).
      which: ``"largest"`` (algebraic), ``"smallest"`` (algebraic) or ``"magnitude"``.
      tol: relative residual tolerance for ``converged``; default ``sqrt(eps)``.

    Returns:
      :class:`EigenResult` ``(eigenvalues (k,), eigenvectors (pytree, leading k), residuals,
      converged)``.

    Raises:
      TypeError, ValueError: as :func:`lanczos`; unknown ``which``, ``k`` outside
        ``[1, n_iter]``.

    Input domain: as :func:`lanczos` (a non-finite operator gives ``converged`` all False).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.curvature import top_eigenvalues
      >>> a = jnp.diag(jnp.array([-5.0, 1.0, 2.0, 3.0]))
      >>> out = top_eigenvalues(lambda v: a @ v, jnp.zeros(4), jax.random.key(0), 2, 4)
      >>> jnp.round(out.eigenvalues, 4)
      Array([3., 2.], dtype=float32)

    References:
      Z. Yao, A. Gholami, K. Keutzer, M. W. Mahoney, "PyHessian: Neural networks through the
      lens of the Hessian", IEEE BigData 2020 (arXiv:1912.07145).
    """
    fn = "top_eigenvalues"
    check_option(fn, "which", which, ("largest", "smallest", "magnitude"))
    flat, _, _ = _flat_operator(fn, mvp, params_like)
    check_key(fn, "key", key)
    m = _check_int(fn, "n_iter", n_iter, 1, flat.shape[0])
    k = _check_int(fn, "k", k, 1, m)
    _check_tol(fn, tol)
    res = lanczos(mvp, params_like, key, m, return_vectors=True, tol=tol)
    if which == "largest":
        idx = jnp.arange(m - 1, m - 1 - k, -1)
    elif which == "smallest":
        idx = jnp.arange(k)
    else:
        idx = jnp.argsort(-jnp.abs(res.ritz_values))[:k]
    return EigenResult(
        res.ritz_values[idx],
        jax.tree.map(lambda x: x[idx], res.ritz_vectors),
        res.residuals[idx],
        res.converged[idx],
    )
