"""Riemannian SGD and Riemannian Adam as optax ``GradientTransformation``\\ s.

Parameters are grouped by a *manifold tree*: a pytree that is a prefix of the parameter tree,
whose leaves are :class:`~geomjax.manifolds._base.Manifold` instances or ``None`` (``None``
means Euclidean). A parameter leaf under a manifold has shape ``batch_shape + point_shape``:
every one of its ``prod(batch_shape)`` rows is a separate point (an embedding table of ``N``
points in the Poincare ball is one leaf of shape ``(N, d)`` under ``PoincareBall(d)``).

Why these are not split into ``scale_by_riemannian_adam`` + ``scale_by_learning_rate``:
optax chains are additive (``params + updates``) and the learning rate is applied last, but a
Riemannian step ``x_new = retr(x, -lr * direction)`` needs the learning rate *inside* the
retraction, and the momentum must be transported to ``x_new``, which depends on ``lr`` as well.
So the step, the transport and the learning rate form one transformation. To stay compatible
with ``optax.apply_updates`` (and ``nnx.Optimizer``), the update returned for a manifold leaf is
``retr(x, -lr * direction) - x``; this needs ``params`` in ``update``.

Float rounding: ``x + (x_new - x)`` equals ``x_new`` up to one rounding of ``x`` (about
``eps * |x|``), so iterates stay on the manifold to working precision when the retraction
normalises its output (sphere, Stiefel, the ball's projected retraction). For exp maps that do
not re-normalise, the drift is a random walk of size ``sqrt(steps) * eps``; ``stabilize=k``
projects the new point (``projx``) and the moment (``proj``) every ``k`` steps, as geoopt does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from geomjax._core import Array, PyTree, check_scalar
from geomjax.manifolds._base import Manifold
from geomjax.manifolds._euclidean import Euclidean

__all__ = [
    "RiemannianAdamState",
    "RiemannianSGDState",
    "riemannian_adam",
    "riemannian_sgd",
]


class RiemannianSGDState(NamedTuple):
    """State of :func:`riemannian_sgd`.

    Attributes:
      count: number of steps taken (int32 scalar); the schedule is evaluated at ``count``.
      momentum: the momentum buffer, tangent at the current parameters (mirrors the manifold
        tree's parameter subtrees), or ``None`` when ``momentum == 0``.
    """

    count: Array
    momentum: PyTree | None


class RiemannianAdamState(NamedTuple):
    """State of :func:`riemannian_adam`.

    Attributes:
      count: number of steps taken (int32 scalar).
      mu: first moment, tangent at the current parameters (same shapes as the parameters).
      nu: second moment. Euclidean leaves: elementwise, same shape as the parameter (exactly as
        ``optax.adam``). Manifold leaves: one scalar ``<g, g>_x`` average per point, shape
        ``batch_shape``.
      nu_max: running maximum of ``nu`` when ``amsgrad=True``, else ``None``.
    """

    count: Array
    mu: PyTree
    nu: PyTree
    nu_max: PyTree | None


# --------------------------------------------------------------------------------------------
# manifold-tree plumbing
# --------------------------------------------------------------------------------------------


def _is_manifold_leaf(m: Any) -> bool:
    return m is None or isinstance(m, Manifold)


def _is_euclidean(m: Any) -> bool:
    # Euclidean instances follow geoopt's ``component_inner``: elementwise second moment, so a
    # parameter under ``Euclidean`` is optimised exactly like one under ``None``.
    return m is None or isinstance(m, Euclidean)


def _check_manifolds(fn: str, manifolds: PyTree) -> tuple[list[Any], Any]:
    leaves, treedef = jax.tree_util.tree_flatten(manifolds, is_leaf=_is_manifold_leaf)
    for m in leaves:
        if not _is_manifold_leaf(m):
            raise TypeError(
                f"{fn}: argument `manifolds` must be a pytree whose leaves are Manifold instances "
                f"or None; got a leaf of type {type(m).__name__}"
            )
    return leaves, treedef


def _split(fn: str, treedef: Any, tree: PyTree, what: str) -> list[Any]:
    """The subtrees of ``tree`` at the leaves of the manifold tree ``treedef``."""
    try:
        return treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{fn}: argument `manifolds` must be a prefix of the structure of `{what}` "
            f"(same containers, leaves Manifold or None); {e}"
        ) from e


def _single_array(fn: str, m: Manifold, p: Any) -> Array:
    """The one array of a manifold leaf's parameter subtree, with its shape checked."""
    leaves = jax.tree_util.tree_leaves(p)
    if len(leaves) != 1:
        raise ValueError(
            f"{fn}: a parameter under manifold {type(m).__name__} must be a single array; "
            f"got a subtree with {len(leaves)} leaves"
        )
    x = jnp.asarray(leaves[0])
    ps = tuple(m.point_shape)
    if x.ndim < len(ps) or tuple(x.shape[x.ndim - len(ps) :]) != ps:
        raise ValueError(
            f"{fn}: argument `params`: a parameter under manifold {type(m).__name__} must have "
            f"shape batch_shape + {ps}; got shape {x.shape}"
        )
    return x


def _check_float_leaves(fn: str, name: str, tree: PyTree) -> None:
    for leaf in jax.tree_util.tree_leaves(tree):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{fn}: argument `{name}` must have real floating leaves; got a leaf of dtype "
                f"{dtype}"
            )


def _check_grads_like_params(fn: str, grads: PyTree, params: PyTree) -> None:
    """``grads`` must have the leaves (shapes) of ``params``; both real floating."""
    _check_float_leaves(fn, "params", params)
    _check_float_leaves(fn, "grads", grads)
    g_leaves, g_def = jax.tree_util.tree_flatten(grads)
    p_leaves, p_def = jax.tree_util.tree_flatten(params)
    if g_def != p_def:
        raise ValueError(
            f"{fn}: argument `grads` must have the structure of `params`; got {g_def} vs {p_def}"
        )
    for g, p in zip(g_leaves, p_leaves):
        if jnp.shape(g) != jnp.shape(p):
            raise ValueError(
                f"{fn}: argument `grads` must have the shapes of `params`; got a leaf of shape "
                f"{jnp.shape(g)} for a parameter of shape {jnp.shape(p)}"
            )


def _batched(m: Manifold, fn: Callable[..., tuple], x: Array, *args: Array) -> tuple:
    """Apply a single-point ``fn(x, *args)`` over the leading batch dims of ``x`` (and args)."""
    nb = x.ndim - len(m.point_shape)
    if nb == 0:
        return fn(x, *args)
    batch = x.shape[:nb]
    n = math.prod(batch)
    flat = [a.reshape((n,) + a.shape[nb:]) for a in (x, *args)]
    outs = jax.vmap(fn)(*flat)
    return tuple(o.reshape(batch + o.shape[1:]) for o in outs)


def _learning_rate(learning_rate: float | Callable, count: Array) -> Any:
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _scale(step: Any, u: Array) -> Array:
    # Same arithmetic as optax.scale / optax.scale_by_schedule: (-lr) cast to u.dtype, times u.
    return jnp.asarray(step, dtype=u.dtype) * u


def _check_params(fn: str, params: PyTree) -> None:
    if params is None:
        raise ValueError(
            f"{fn}: `update(grads, state, params)` needs `params`: a Riemannian step moves "
            "x to retr(x, -lr * direction) and returns the additive update retr(...) - x. "
            "Call tx.update(grads, state, params) (nnx.Optimizer does this)."
        )


def _check_hparams(fn: str, **kw: float) -> None:
    for name, (value, lo, hi) in kw.items():
        check_scalar(
            fn, name, value, positive=False
        )  # real scalar (arrays from inject_hyperparams)
        if isinstance(value, (int, float)) and not (lo <= value < hi):
            raise ValueError(f"{fn}: argument `{name}` must lie in [{lo}, {hi}); got {value!r}")


def _check_learning_rate(fn: str, learning_rate) -> None:
    if not callable(learning_rate):
        check_scalar(fn, "learning_rate", learning_rate, positive=False)


def _check_stabilize(fn: str, stabilize: int | None) -> None:
    if stabilize is not None and (
        isinstance(stabilize, bool) or not isinstance(stabilize, int) or stabilize < 1
    ):
        raise ValueError(
            f"{fn}: argument `stabilize` must be None or an int >= 1; got {stabilize!r}"
        )


# --------------------------------------------------------------------------------------------
# Riemannian SGD
# --------------------------------------------------------------------------------------------


def riemannian_sgd(
    learning_rate: float | Callable[[Array], Array],
    momentum: float = 0.0,
    nesterov: bool = False,
    manifolds: PyTree = None,
    *,
    use_exp: bool = False,
    stabilize: int | None = None,
) -> optax.GradientTransformation:
    r"""Riemannian stochastic gradient descent with (transported) momentum.

    For a parameter :math:`x` on manifold :math:`M` with Euclidean gradient :math:`g` (argument
    ``grads``), momentum buffer :math:`m` and learning rate :math:`\eta`:

    .. math::

        r = \operatorname{egrad\_to\_rgrad}(x, g), \qquad m' = r + \beta m, \qquad
        d = \begin{cases} r + \beta m' & \text{nesterov} \\ m' & \text{otherwise} \end{cases}

        x_{new} = R_x(-\eta\, d), \qquad m \leftarrow \Gamma_{x \to x_{new}}(m')

    with :math:`R` = ``manifold.retr`` (``manifold.exp`` if ``use_exp``) and :math:`\Gamma` =
    ``manifold.transp``. Euclidean leaves (``None`` or ``Euclidean``) reduce exactly to
    ``optax.sgd(learning_rate, momentum, nesterov)`` (same arithmetic, bitwise equal updates).

    Input domain: parameters are not checked to lie on their manifold (``manifold.check_point``
    does; the step starts from the given array, and ``stabilize`` projects drifted points back).
    Non-finite gradients or parameters give non-finite updates (NaN in, NaN out, as in optax).

    Args:
      learning_rate: :math:`\eta \ge 0`, a float or an optax schedule ``count -> lr`` (evaluated
        at the number of steps already taken, as optax does).
      momentum: :math:`\beta \in [0, 1)`; ``0`` keeps no buffer.
      nesterov: Nesterov momentum.
      manifolds: a pytree that is a prefix of the parameter tree, leaves ``Manifold`` or ``None``;
        ``None`` (the default) treats every parameter as Euclidean. A parameter under a manifold
        has shape ``batch_shape + manifold.point_shape`` (rows are independent points).
      use_exp: step with the exponential map instead of the retraction.
      stabilize: if an int ``k``, project the new point with ``projx`` and the buffer with
        ``proj`` every ``k`` steps (guards against float drift off the manifold).

    Returns:
      An ``optax.GradientTransformation`` with state :class:`RiemannianSGDState`. Its
      ``update(grads, state, params)`` requires ``params`` (ValueError otherwise); apply the
      result with ``optax.apply_updates``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from geomjax.manifolds._euclidean import Euclidean
      >>> from geomjax.optim import riemannian_sgd
      >>> tx = riemannian_sgd(0.1, manifolds={"w": Euclidean(2)})
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
      >>> optax.apply_updates(params, updates)["w"]
      Array([0.9, 1.9], dtype=float32)

    References:
      Bonnabel, "Stochastic gradient descent on Riemannian manifolds", IEEE TAC 2013,
      arXiv 1111.5280. Becigneul & Ganea, "Riemannian Adaptive Optimization Methods", ICLR 2019,
      arXiv 1810.00760 (momentum transport as in geoopt's RiemannianSGD).
    """
    fn = "riemannian_sgd"
    _check_learning_rate(fn, learning_rate)
    _check_hparams(fn, momentum=(momentum, 0.0, 1.0))
    _check_stabilize(fn, stabilize)
    m_leaves, m_def = _check_manifolds(fn, manifolds)
    use_momentum = not (isinstance(momentum, (int, float)) and momentum == 0)

    def init_fn(params):
        _check_float_leaves(fn, "params", params)
        count = jnp.zeros([], jnp.int32)
        if not use_momentum:
            return RiemannianSGDState(count=count, momentum=None)
        subtrees = _split(fn, m_def, params, "params")
        bufs = []
        for m, p in zip(m_leaves, subtrees):
            if _is_euclidean(m):
                bufs.append(jax.tree.map(jnp.zeros_like, p))
            else:
                bufs.append(jnp.zeros_like(_single_array(fn, m, p)))
        return RiemannianSGDState(count=count, momentum=m_def.unflatten(bufs))

    def update_fn(grads, state, params=None):
        _check_params(fn, params)
        _check_grads_like_params(fn, grads, params)
        lr = _learning_rate(learning_rate, state.count)
        count_inc = optax.safe_increment(state.count)
        g_sub = _split(fn, m_def, grads, "grads")
        p_sub = _split(fn, m_def, params, "params")
        b_sub = _split(fn, m_def, state.momentum, "state.momentum") if use_momentum else None

        updates, bufs = [], []
        for i, (m, g, p) in enumerate(zip(m_leaves, g_sub, p_sub)):
            b = b_sub[i] if use_momentum else None
            if _is_euclidean(m):
                if use_momentum:
                    # optax.trace: f(g, t) = g + decay * t
                    new_b = jax.tree.map(lambda gi, ti: gi + momentum * ti, g, b)
                    d = (
                        jax.tree.map(lambda gi, ti: gi + momentum * ti, g, new_b)
                        if nesterov
                        else new_b
                    )
                    bufs.append(new_b)
                else:
                    d = g
                updates.append(jax.tree.map(lambda u: _scale(-lr, u), d))
                continue

            x = _single_array(fn, m, p)
            gx = jnp.asarray(jax.tree_util.tree_leaves(g)[0]).astype(x.dtype)
            eta = jnp.asarray(lr, dtype=x.dtype)
            bx = jnp.asarray(jax.tree_util.tree_leaves(b)[0]) if use_momentum else jnp.zeros_like(x)
            step_fn = m.exp if use_exp else m.retr

            def point_step(x1, g1, b1, m=m, step_fn=step_fn, eta=eta):
                r = m.egrad_to_rgrad(x1, g1)
                if use_momentum:
                    b_new = r + momentum * b1
                    d1 = r + momentum * b_new if nesterov else b_new
                else:
                    b_new, d1 = b1, r
                y = step_fn(x1, -eta * d1)
                b_new = m.transp(x1, y, b_new) if use_momentum else b_new
                if stabilize is not None:
                    do = (count_inc % stabilize) == 0
                    y = jnp.where(do, m.projx(y), y)
                    b_new = jnp.where(do, m.proj(y, b_new), b_new) if use_momentum else b_new
                return y, b_new

            y, b_new = _batched(m, point_step, x, gx, bx)
            updates.append(y - x)
            if use_momentum:
                bufs.append(b_new)

        new_state = RiemannianSGDState(
            count=count_inc, momentum=m_def.unflatten(bufs) if use_momentum else None
        )
        return m_def.unflatten(updates), new_state

    return optax.GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# Riemannian Adam
# --------------------------------------------------------------------------------------------


def riemannian_adam(
    learning_rate: float | Callable[[Array], Array],
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    amsgrad: bool = False,
    manifolds: PyTree = None,
    *,
    use_exp: bool = False,
    stabilize: int | None = None,
) -> optax.GradientTransformation:
    r"""Riemannian Adam (and AMSGrad) of Becigneul & Ganea, with geoopt's semantics.

    At step :math:`t` (``count`` after increment), for a point :math:`x` with Euclidean
    gradient :math:`g`:

    .. math::

        r = \operatorname{egrad\_to\_rgrad}(x, g), \quad
        m \leftarrow \beta_1 m + (1 - \beta_1)\, r, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2)\, \langle r, r \rangle_x

        \hat v = \begin{cases} \max(\hat v_{prev}, v) & \text{amsgrad} \\ v \end{cases}, \quad
        d = \frac{m / (1 - \beta_1^t)}{\sqrt{\hat v / (1 - \beta_2^t)} + \epsilon}

        x_{new} = R_x(-\eta\, d), \qquad m \leftarrow \Gamma_{x \to x_{new}}(m)

    The second moment :math:`v` is one scalar per point (the squared Riemannian norm), as in
    the paper and geoopt. Euclidean leaves (``None`` or ``Euclidean``) use the elementwise
    :math:`g \odot g` instead and reduce exactly to ``optax.adam(learning_rate, b1, b2, eps)``
    (bitwise equal updates). AMSGrad keeps the maximum of the *uncorrected* :math:`v` and
    bias-corrects it afterwards (as torch / geoopt), which differs slightly from
    ``optax.amsgrad`` (maximum of the corrected :math:`v`).

    Input domain: as :func:`riemannian_sgd` (points not checked to lie on the manifold; NaN in,
    NaN out). With ``eps=0`` a zero gradient on the first step divides 0 by 0 (NaN update).

    Args:
      learning_rate: :math:`\eta`, a float or an optax schedule ``count -> lr``.
      b1: :math:`\beta_1 \in [0, 1)`.
      b2: :math:`\beta_2 \in [0, 1)`.
      eps: :math:`\epsilon`, added to the root of the second moment.
      amsgrad: use the AMSGrad maximum of the second moment.
      manifolds: a pytree that is a prefix of the parameter tree, leaves ``Manifold`` or ``None``
        (``None``: everything Euclidean). A parameter under a manifold has shape
        ``batch_shape + manifold.point_shape``; each row is a point with its own :math:`v`.
      use_exp: step with the exponential map instead of the retraction.
      stabilize: if an int ``k``, project the new point with ``projx`` and the first moment with
        ``proj`` every ``k`` steps.

    Returns:
      An ``optax.GradientTransformation`` with state :class:`RiemannianAdamState`. Its
      ``update(grads, state, params)`` requires ``params`` (ValueError otherwise).

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from geomjax.optim import riemannian_adam
      >>> tx = riemannian_adam(0.1)  # no manifolds: identical to optax.adam(0.1)
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([3.0, -1.0])}, state, params)
      >>> updates["w"]
      Array([-0.1,  0.1], dtype=float32)

    References:
      Becigneul & Ganea, "Riemannian Adaptive Optimization Methods", ICLR 2019, arXiv 1810.00760.
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, arXiv 1412.6980.
    """
    fn = "riemannian_adam"
    _check_learning_rate(fn, learning_rate)
    _check_hparams(fn, b1=(b1, 0.0, 1.0), b2=(b2, 0.0, 1.0))
    check_scalar(fn, "eps", eps, positive=False)
    _check_stabilize(fn, stabilize)
    m_leaves, m_def = _check_manifolds(fn, manifolds)

    def init_fn(params):
        _check_float_leaves(fn, "params", params)
        subtrees = _split(fn, m_def, params, "params")
        mus, nus = [], []
        for m, p in zip(m_leaves, subtrees):
            if _is_euclidean(m):
                mus.append(jax.tree.map(jnp.zeros_like, p))
                nus.append(jax.tree.map(jnp.zeros_like, p))
            else:
                x = _single_array(fn, m, p)
                mus.append(jnp.zeros_like(x))
                nus.append(jnp.zeros(x.shape[: x.ndim - len(m.point_shape)], x.dtype))
        nu = m_def.unflatten(nus)
        return RiemannianAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=m_def.unflatten(mus),
            nu=nu,
            nu_max=jax.tree.map(jnp.zeros_like, nu) if amsgrad else None,
        )

    def update_fn(grads, state, params=None):
        _check_params(fn, params)
        _check_grads_like_params(fn, grads, params)
        lr = _learning_rate(learning_rate, state.count)
        count_inc = optax.safe_increment(state.count)
        g_sub = _split(fn, m_def, grads, "grads")
        p_sub = _split(fn, m_def, params, "params")
        mu_sub = _split(fn, m_def, state.mu, "state.mu")
        nu_sub = _split(fn, m_def, state.nu, "state.nu")
        mx_sub = (
            _split(fn, m_def, state.nu_max, "state.nu_max") if amsgrad else [None] * len(m_leaves)
        )

        updates, mus, nus, mxs = [], [], [], []
        for m, g, p, mu, nu, mx in zip(m_leaves, g_sub, p_sub, mu_sub, nu_sub, mx_sub):
            if _is_euclidean(m):
                # Same arithmetic as optax.scale_by_adam (eps_root = 0) + scale_by_learning_rate.
                mu = jax.tree.map(lambda gi, ti: (1 - b1) * gi + b1 * ti, g, mu)
                nu = jax.tree.map(lambda gi, ti: (1 - b2) * (gi**2) + b2 * ti, g, nu)
                if amsgrad:
                    mx = jax.tree.map(jnp.maximum, mx, nu)
                v = mx if amsgrad else nu
                d = jax.tree.map(
                    lambda mi, vi: mi / (jnp.sqrt(vi + 0.0) + eps),
                    optax.tree.bias_correction(mu, b1, count_inc),
                    optax.tree.bias_correction(v, b2, count_inc),
                )
                updates.append(jax.tree.map(lambda u: _scale(-lr, u), d))
                mus.append(mu)
                nus.append(nu)
                mxs.append(mx)
                continue

            x = _single_array(fn, m, p)
            gx = jnp.asarray(jax.tree_util.tree_leaves(g)[0]).astype(x.dtype)
            mux = jnp.asarray(jax.tree_util.tree_leaves(mu)[0])
            nux = jnp.asarray(jax.tree_util.tree_leaves(nu)[0])
            mxx = jnp.asarray(jax.tree_util.tree_leaves(mx)[0]) if amsgrad else nux
            eta = jnp.asarray(lr, dtype=x.dtype)
            step_fn = m.exp if use_exp else m.retr

            def point_step(x1, g1, mu1, nu1, mx1, m=m, step_fn=step_fn, eta=eta):
                r = m.egrad_to_rgrad(x1, g1)
                mu1 = (1 - b1) * r + b1 * mu1
                nu1 = (1 - b2) * m.inner(x1, r, r) + b2 * nu1
                mx1 = jnp.maximum(mx1, nu1) if amsgrad else nu1
                mu_hat = optax.tree.bias_correction(mu1, b1, count_inc)
                v_hat = optax.tree.bias_correction(mx1, b2, count_inc)
                d1 = mu_hat / (jnp.sqrt(v_hat) + eps)
                y = step_fn(x1, -eta * d1)
                mu1 = m.transp(x1, y, mu1)
                if stabilize is not None:
                    do = (count_inc % stabilize) == 0
                    y = jnp.where(do, m.projx(y), y)
                    mu1 = jnp.where(do, m.proj(y, mu1), mu1)
                return y, mu1, nu1, mx1

            y, mu_new, nu_new, mx_new = _batched(m, point_step, x, gx, mux, nux, mxx)
            updates.append(y - x)
            mus.append(mu_new)
            nus.append(nu_new)
            mxs.append(mx_new)

        new_state = RiemannianAdamState(
            count=count_inc,
            mu=m_def.unflatten(mus),
            nu=m_def.unflatten(nus),
            nu_max=m_def.unflatten(mxs) if amsgrad else None,
        )
        return m_def.unflatten(updates), new_state

    return optax.GradientTransformation(init_fn, update_fn)
