r"""The M-FAC optimizer: a sliding-window inverse empirical Fisher as an optax transformation.

State: a ring buffer :math:`G` of the last ``m`` gradients (rows) and its Gram matrix
:math:`GG^\top`. At step :math:`t` the gradient :math:`g_t` first replaces the oldest row
(row :math:`j = t \bmod m`), then it is preconditioned with

.. math::

    F_t = \lambda I + \frac1m \sum_{i=1}^{m} g_{(i)} g_{(i)}^\top = \lambda I + \frac1m G^\top G,
    \qquad u_t = F_t^{-1} g_t.

Rows not yet filled are zero and the normaliser stays ``m`` (as in the reference
implementation, which starts from an all-zero window): during the first ``m - 1`` steps
:math:`F_t = \lambda I + \frac1m \sum_{s \le t} g_s g_s^\top`, divided by ``m``, not by the
number ``t`` of gradients seen (so early steps are larger, about :math:`m/\|g\|` in size).

Algebra. With :math:`K = m\lambda I + GG^\top = LL^\top` (Woodbury, see
:mod:`geomjax.curvature._mfac`), :math:`F^{-1} = (I - G^\top K^{-1} G)/\lambda`. Because
:math:`g_t = G^\top e_j` is a row of the window, this simplifies exactly to

.. math::

    u_t = F_t^{-1} g_t = m\, G^\top K^{-1} e_j,

which avoids the cancellation of the general formula (whose float32 error grows like
:math:`\epsilon\,\|G\|^2/(m\lambda)` for vectors in the span of the window): the float32
error is that of one ``m x m`` solve, about :math:`\epsilon\,\kappa(K)` (measured: 2e-7
relative for ``m = 4``, ``d = 30``, :math:`\lambda = 10^{-5}`, where the general formula loses
7e-2 at :math:`\kappa(F) = 10^6`). Per step, for ``d``
parameters and window ``m``:

* window update: write row ``j`` (:math:`O(d)`), one product :math:`G g_t` (:math:`O(dm)`) which
  is row and column ``j`` of the new Gram matrix, a Cholesky of ``K`` (:math:`O(m^3/3)`);
* product: two triangular solves (:math:`O(m^2)`) and :math:`G^\top c` (:math:`O(dm)`).

So :math:`O(dm + m^3)` per step, two passes over the ``m x d`` buffer. The ``m x m`` algebra
(Gram matrix, Cholesky, solves) runs in float64 when ``jax_enable_x64`` is on, else in the
parameters' dtype; float32 is fine at :math:`\lambda = 10^{-5}` as long as :math:`m\lambda`
exceeds the rounding error of the Gram matrix (about :math:`\epsilon \max\|g\|^2`; it only
matters for a window of linearly dependent gradients, e.g. blocks smaller than ``m``).

Memory. The buffer is updated with ``.at[j].set``; inside ``jax.jit`` that is in place only if
the optimizer state is donated (``jax.jit(train_step, donate_argnums=...)``, or
``nnx.jit(..., donate_argnames=...)``); without donation each step copies the ``m x d``
buffer.

Blocks. ``blocks=None`` keeps one window over all parameters (flattened in
``jax.tree.leaves`` order). ``blocks="leaf"`` keeps an independent window per parameter leaf,
``blocks=b`` (an int) per consecutive chunk of ``b`` coordinates of the flattened vector (the
last chunk zero-padded); :math:`F` is then block-diagonal, each block with its own ``K``.

Devices. With ``axis_name`` (inside ``jax.shard_map``/``pmap``) the gradient is averaged over
the axis before it enters the window, so every device holds the same window and returns the
single-device update for the full batch. The gradient passed in must be the per-device one:
inside ``jax.shard_map`` (with its default ``check_vma=True``) JAX already sums the gradient of
replicated (unvarying) parameters over the axis, so either differentiate with respect to
``jax.lax.pcast(params, axis_name, to="varying")`` or differentiate a ``pmean``-ed loss (then
the gradient is already the full-batch one and the ``pmean`` here is the identity).
``shard_buffer=True`` instead splits the window over the devices of ``axis_name`` (``n`` of
them), so that each holds about ``1/n`` of it, and averages the gradient with a reduce-scatter
(each device receives only the mean of the coordinates it keeps) instead of a ``pmean``:

* ``blocks=None``: device ``r`` keeps coordinates ``[r c, (r + 1) c)``, ``c = ceil(d / n)``, of
  every buffered gradient; the ``m``-vector :math:`G g_t` is a ``psum`` of the local products
  (an all-reduce of ``m`` numbers), the ``m x m`` algebra is replicated, and the local slices
  of the update are reassembled with one ``all_gather`` of ``c`` numbers per device.
* ``blocks=b`` (an int): the ``nb = ceil(d / b)`` blocks are dealt round-robin, block ``i`` to
  device ``i mod n`` (the kfac-jax pattern): each device keeps the windows, Gram matrices and
  Cholesky factors of its ``ceil(nb / n)`` blocks only (zero-padded blocks fill the last
  round), so the per-block work is spread too, and no all-reduce is left at all; the local
  block updates are reassembled with one ``all_gather``.

Per step that is one reduce-scatter and one all-gather of ``d`` numbers, the bytes of a single
all-reduce of the gradient: the replicated buffer's ``pmean`` moves as much, and the former
scheme (a ``pmean`` of the gradient, then a ``psum`` of a zero-padded ``d``-vector) twice as
much. ``blocks="leaf"`` cannot be sharded. ``init`` must run inside
the mapped function too (the local buffer shape depends on ``n``); the global buffer is
``(m, n c)`` with ``PartitionSpec(None, axis_name)`` for ``blocks=None``, and
``(n ceil(nb / n), m, b)`` with ``PartitionSpec(axis_name)``, device-major (device ``r``'s
``j``-th local window is block ``j n + r``), for ``blocks=b``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from geomjax._core import (
    Array,
    PyTree,
    all_gather_invariant,
    as_float_array,
    check_positive,
    check_scalar,
    full_precision,
    pmean_if,
    psum_if,
)
from geomjax.curvature._mfac import algebra_dtype, chol_of_window

__all__ = ["MFACState", "mfac", "scale_by_mfac"]


class MFACState(NamedTuple):
    """State of :func:`scale_by_mfac`.

    Attributes:
      count: number of gradients seen (int32 scalar); the next one goes to row ``count % m``.
      grads: the ring buffer of the last ``m`` gradients: shape ``(m, d)`` for ``blocks=None``
        (``(m, ceil(d / n))`` per device with ``shard_buffer``), ``(n_blocks, m, b)`` for
        ``blocks=b`` (``(ceil(n_blocks / n), m, b)`` per device with ``shard_buffer``), a tuple
        of ``(m, leaf.size)`` arrays for ``blocks="leaf"``. Rows not yet filled are zero.
      gram: the Gram matrix :math:`GG^\\top` of the window(s), shape ``(m, m)``,
        ``(n_blocks, m, m)`` (per device ``(ceil(n_blocks / n), m, m)`` with ``shard_buffer``)
        or a tuple of ``(m, m)``; float64 when x64 is enabled.
    """

    count: Array
    grads: Array | tuple[Array, ...]
    gram: Array | tuple[Array, ...]


def _window_step(
    G: Array, gram: Array, idx: Array, g: Array, damping: float, axis_name: str | None = None
) -> tuple[Array, Array, Array]:
    """Put ``g`` in row ``idx`` of the window ``G`` (m, b); return new G, Gram and F^{-1} g.

    A low-precision window (``G.dtype`` below float32, e.g. bfloat16) stores the rounded
    gradient and accumulates both passes in float32: the Gram row ``G g`` from the stored
    (rounded) rows, so the Gram matrix is exactly that of the stored window, and
    ``c^T G`` with ``c`` split into a high and a low part of the window's dtype (one product
    of a ``(2, m)`` matrix, so the buffer is read once): about 16 bits of ``c`` survive,
    and the result is the float32 M-FAC product of the rounded window to about ``2^-16``
    relative (the rounding of the window itself, ``2^-9`` for bfloat16, is the error that
    remains against a float32 window)."""
    m = G.shape[0]
    acc = jnp.promote_types(G.dtype, jnp.float32)
    g = g.astype(G.dtype)
    G = G.at[idx].set(g)
    row = jax.lax.dot(G, g, preferred_element_type=acc)
    row = psum_if(row, axis_name).astype(gram.dtype)
    gram = gram.at[idx, :].set(row).at[:, idx].set(row)
    chol = chol_of_window(gram, m, damping)
    c = jax.scipy.linalg.cho_solve((chol, True), jax.nn.one_hot(idx, m, dtype=gram.dtype))
    if G.dtype == acc:
        return G, gram, m * (c.astype(G.dtype) @ G)
    hi = c.astype(G.dtype)
    lo = (c - hi.astype(c.dtype)).astype(G.dtype)
    u = jax.lax.dot(jnp.stack([hi, lo]), G, preferred_element_type=acc)
    return G, gram, m * (u[0] + u[1])


def _leaves(fn: str, name: str, tree: PyTree) -> tuple[list[Array], Any]:
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError(f"{fn}: argument `{name}` must have at least one array leaf")
    return [as_float_array(fn, name, a) for a in leaves], treedef


def _axis_size(fn: str, axis_name: str) -> int:
    try:
        return jax.lax.axis_size(axis_name)
    except NameError as e:
        raise ValueError(
            f"{fn}: argument `shard_buffer` (True) needs `init` and `update` to run inside "
            f"jax.shard_map (or pmap) over axis {axis_name!r}; {e}"
        ) from e


def scale_by_mfac(
    num_grads: int = 1024,
    damping: float = 1e-5,
    *,
    blocks: None | str | int = None,
    axis_name: str | None = None,
    shard_buffer: bool = False,
    window_dtype: Any = None,
) -> optax.GradientTransformation:
    r"""Precondition by the inverse of a sliding-window damped empirical Fisher (M-FAC).

    With the window :math:`G` of the last ``m`` gradients, the current one included (rows not
    yet filled are zero), and :math:`\lambda` = ``damping``:

    .. math::

        u_t = \Big(\lambda I + \frac1m G^\top G\Big)^{-1} g_t = m\, G^\top (m\lambda I + GG^\top)^{-1} e_j

    See the module docstring for the algebra, numerics, cost (:math:`O(dm + m^3)` per step),
    buffer donation, blocks and devices.

    Input domain: finite gradients. A non-finite gradient gives a non-finite update (NaN in,
    NaN out) and stays in the window, spoiling the next ``m - 1`` updates until its row is
    overwritten. Squared gradient norms must be representable in the dtype (float32: norms below
    about 1e19); beyond, the Gram matrix overflows and the update is meaningless.

    Args:
      num_grads: window length ``m >= 1``.
      damping: :math:`\lambda > 0`.
      blocks: ``None`` (one window over all parameters), ``"leaf"`` (one per parameter leaf) or
        an int ``b >= 1`` (one per chunk of ``b`` flattened coordinates).
      axis_name: device axis over which the gradient is averaged before it enters the window
        (inside ``jax.shard_map`` or ``pmap``); ``None`` for one device.
      shard_buffer: split the buffer over the devices of ``axis_name``: along the parameters
        (``blocks=None``) or block by block, round-robin (``blocks=b``); not with
        ``blocks="leaf"``. ``init`` must then be called inside the mapped function.
      window_dtype: dtype of the gradient window (``None``: the parameters' dtype).
        ``jnp.bfloat16`` halves the ``m x d`` buffer (a float32 window of ``m = 1024``
        gradients of a 10M-parameter model takes 41.8 GB): the gradients are rounded to it
        when they enter the window (relative ``2^-9``), both passes over it accumulate in
        float32, and the Gram matrix and the ``m x m`` algebra stay float32 (float64 with x64).
        The update then differs from the float32 window's by about the rounding of the window
        (measured in ``benchmarks/bench_curvature.py``); it is the float32 M-FAC update of the
        rounded gradients to about ``2^-16``.

    Returns:
      An ``optax.GradientTransformation`` with state :class:`MFACState`; ``update`` returns
      :math:`u_t` (no sign flip, no learning rate), like the gradients.

    Raises:
      ValueError: invalid options, or gradients whose size differs from the state's (or whose
        shapes differ from ``params``, when given).
      TypeError: non-floating parameters or gradients.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.optim._mfac import scale_by_mfac
      >>> tx = scale_by_mfac(num_grads=2, damping=1.0)
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.array([2.0, 0.0]), state)  # F = I + g g^T / 2 = diag(3, 1)
      >>> [round(float(x), 5) for x in u]
      [0.66667, 0.0]

    References:
      E. Frantar, E. Kurtic, D. Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
      Second-Order Information", NeurIPS 2021, arXiv:2107.03356.
    """
    fn = "scale_by_mfac"
    if isinstance(num_grads, bool) or not isinstance(num_grads, int) or num_grads < 1:
        raise ValueError(f"{fn}: argument `num_grads` must be an int >= 1; got {num_grads!r}")
    if not isinstance(damping, (int, float)) or isinstance(damping, bool):
        raise TypeError(
            f"{fn}: argument `damping` must be a Python float; got {type(damping).__name__}"
        )
    check_positive(fn, "damping", damping)
    check_scalar(fn, "damping", damping)  # finite too: an infinite damping zeroes every update
    int_blocks = isinstance(blocks, int) and not isinstance(blocks, bool) and blocks >= 1
    if not (blocks is None or blocks == "leaf" or int_blocks):
        raise ValueError(
            f"{fn}: argument `blocks` must be None, 'leaf' or an int >= 1; got {blocks!r}"
        )
    if shard_buffer and (axis_name is None or blocks == "leaf"):
        raise ValueError(
            f"{fn}: argument `shard_buffer` (True) needs an `axis_name` and `blocks` None or an "
            f"int; got "
            f"axis_name={axis_name!r}, blocks={blocks!r}"
        )
    if window_dtype is not None:
        try:
            window_dtype = jnp.dtype(window_dtype)
        except TypeError as err:
            raise TypeError(
                f"{fn}: argument `window_dtype` must be a floating dtype or None; got "
                f"{window_dtype!r}"
            ) from err
        if not jnp.issubdtype(window_dtype, jnp.floating):
            raise TypeError(
                f"{fn}: argument `window_dtype` must be a floating dtype or None; got "
                f"{window_dtype}"
            )
    m = num_grads

    def buffer_dtype(dtype):
        return dtype if window_dtype is None else window_dtype

    def gram_dtype(dtype):
        return algebra_dtype(jnp.promote_types(buffer_dtype(dtype), jnp.float32))

    def init_fn(params):
        leaves, _ = _leaves(fn, "params", params)
        if blocks == "leaf":
            grads = tuple(jnp.zeros((m, a.size), buffer_dtype(a.dtype)) for a in leaves)
            gram = tuple(jnp.zeros((m, m), gram_dtype(a.dtype)) for a in leaves)
            return MFACState(jnp.zeros([], jnp.int32), grads, gram)
        d = sum(a.size for a in leaves)
        params_dtype = jnp.result_type(*leaves)
        dtype, adt = buffer_dtype(params_dtype), gram_dtype(params_dtype)
        if blocks is None and shard_buffer:
            # each device holds a different slice: the buffer varies over the axis
            buf = jnp.zeros((m, -(-d // _axis_size(fn, axis_name))), dtype)
            buf = jax.lax.pcast(buf, (axis_name,), to="varying")
            return MFACState(jnp.zeros([], jnp.int32), buf, jnp.zeros((m, m), adt))
        if blocks is None:
            return MFACState(
                jnp.zeros([], jnp.int32), jnp.zeros((m, d), dtype), jnp.zeros((m, m), adt)
            )
        nb = -(-d // blocks)
        if shard_buffer:
            # round-robin: ceil(nb / n) blocks per device, each device its own windows
            nb = -(-nb // _axis_size(fn, axis_name))
            buf, gram = jnp.zeros((nb, m, blocks), dtype), jnp.zeros((nb, m, m), adt)
            buf, gram = jax.lax.pcast((buf, gram), (axis_name,), to="varying")
            return MFACState(jnp.zeros([], jnp.int32), buf, gram)
        return MFACState(
            jnp.zeros([], jnp.int32), jnp.zeros((nb, m, blocks), dtype), jnp.zeros((nb, m, m), adt)
        )

    @full_precision
    def update_fn(updates, state, params=None):
        leaves, treedef = _leaves(fn, "updates", updates)
        if params is not None:
            p_leaves, p_def = jax.tree.flatten(params)
            if p_def != treedef or [jnp.shape(a) for a in p_leaves] != [a.shape for a in leaves]:
                raise ValueError(
                    f"{fn}: argument `updates` must have the structure and shapes of `params`; "
                    f"got {[a.shape for a in leaves]} vs {[jnp.shape(a) for a in p_leaves]}"
                )
        if not shard_buffer:  # sharded buffers average by a reduce-scatter below
            leaves = pmean_if(leaves, axis_name)
        idx = (state.count % m).astype(jnp.int32)
        count = optax.safe_increment(state.count)

        if blocks == "leaf":
            if not isinstance(state.grads, tuple) or [a.size for a in leaves] != [
                g.shape[1] for g in state.grads
            ]:
                raise ValueError(
                    f"{fn}: `updates` must have the leaves (sizes) of the params given to init"
                )
            new_g, new_k, outs = [], [], []
            for a, G, K in zip(leaves, state.grads, state.gram):
                G, K, u = _window_step(G, K, idx, a.reshape(-1).astype(G.dtype), damping)
                new_g.append(G)
                new_k.append(K)
                outs.append(u.reshape(a.shape).astype(a.dtype))
            return jax.tree.unflatten(treedef, outs), MFACState(count, tuple(new_g), tuple(new_k))

        G = state.grads
        # averaged and scattered at (at least) float32; rounded to a low-precision window's
        # dtype only when it enters the window (_window_step)
        flat_dtype = jnp.promote_types(G.dtype, jnp.float32)
        flat = jnp.concatenate([a.reshape(-1).astype(flat_dtype) for a in leaves])
        d = flat.shape[0]
        if blocks is None and not shard_buffer:
            if G.shape != (m, d):
                raise ValueError(
                    f"{fn}: `updates` have {d} coordinates; the state's window is {G.shape}"
                )
            G, gram, u = _window_step(G, state.gram, idx, flat, damping)
        elif blocks is None:
            n = _axis_size(fn, axis_name)
            cols = G.shape[1]
            if G.shape[0] != m or cols != -(-d // n):
                raise ValueError(
                    f"{fn}: `updates` have {d} coordinates; the state's local window is {G.shape}"
                )
            # the mean over devices of coordinates [r c, (r + 1) c) only (reduce-scatter)
            g_loc = jax.lax.psum_scatter(jnp.pad(flat, (0, n * cols - d)), axis_name, tiled=True)
            G, gram, u_loc = _window_step(G, state.gram, idx, g_loc / n, damping, axis_name)
            u = all_gather_invariant(u_loc, axis_name, tiled=True)[:d]
        elif shard_buffer:
            n = _axis_size(fn, axis_name)
            nb = -(-d // blocks)
            nb_loc = -(-nb // n)
            if G.shape != (nb_loc, m, blocks):
                raise ValueError(
                    f"{fn}: `updates` have {d} coordinates; the state's local windows are {G.shape}"
                )
            # block i = j n + r lives on device r as its j-th window: lay the padded gradient
            # out device-major, (n, nb_loc, b), and reduce-scatter it over the devices
            gb = jnp.pad(flat, (0, nb_loc * n * blocks - d)).reshape(nb_loc, n, blocks)
            g_loc = jax.lax.psum_scatter(gb.transpose(1, 0, 2).reshape(-1), axis_name, tiled=True)
            G, gram, u_loc = jax.vmap(_window_step, in_axes=(0, 0, None, 0, None))(
                G, state.gram, idx, g_loc.reshape(nb_loc, blocks) / n, damping
            )
            u = all_gather_invariant(u_loc, axis_name, tiled=False)  # (n, nb_loc, b)
            u = u.transpose(1, 0, 2).reshape(-1)[:d]
        else:
            nb = -(-d // blocks)
            if G.shape != (nb, m, blocks):
                raise ValueError(
                    f"{fn}: `updates` have {d} coordinates; the state's windows are {G.shape}"
                )
            gb = jnp.pad(flat, (0, nb * blocks - d)).reshape(nb, blocks)
            G, gram, u = jax.vmap(_window_step, in_axes=(0, 0, None, 0, None))(
                G, state.gram, idx, gb, damping
            )
            u = u.reshape(-1)[:d]
        outs, start = [], 0
        for a in leaves:
            outs.append(u[start : start + a.size].reshape(a.shape).astype(a.dtype))
            start += a.size
        return jax.tree.unflatten(treedef, outs), MFACState(count, G, gram)

    return optax.GradientTransformation(init_fn, update_fn)


def mfac(
    learning_rate: float | Callable[[Array], Array],
    num_grads: int = 1024,
    damping: float = 1e-5,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    *,
    blocks: None | str | int = None,
    axis_name: str | None = None,
    shard_buffer: bool = False,
    window_dtype: Any = None,
) -> optax.GradientTransformation:
    r"""The M-FAC optimizer: SGD preconditioned by a sliding-window inverse empirical Fisher.

    As in the reference implementation, weight decay is added to the gradient before it enters
    the window, and momentum is an exponential average of the preconditioned gradients:

    .. math::

        \tilde g_t = g_t + \omega\,\theta_t, \qquad u_t = F_t^{-1}\tilde g_t, \qquad
        v_t = \beta v_{t-1} + (1 - \beta) u_t, \qquad \theta_{t+1} = \theta_t - \eta\, v_t

    (:math:`v_t = u_t` when :math:`\beta = 0`), with :math:`F_t` the window's damped empirical
    Fisher of :func:`scale_by_mfac`. It is
    ``optax.chain(optax.add_decayed_weights(weight_decay), scale_by_mfac(...),
    optax.ema(momentum, debias=False), optax.scale_by_learning_rate(learning_rate))`` (the
    first and third only when non-zero), so the state is a tuple holding an
    :class:`MFACState`. Donate the optimizer state in the jitted training step: otherwise each
    step copies the ``m x d`` buffer.

    Args:
      learning_rate: :math:`\eta`, a float or an optax schedule.
      num_grads: window length ``m``.
      damping: :math:`\lambda > 0`.
      momentum: :math:`\beta \in [0, 1)`.
      weight_decay: :math:`\omega \ge 0` (then ``update`` needs ``params``).
      blocks: see :func:`scale_by_mfac`.
      axis_name: see :func:`scale_by_mfac`.
      shard_buffer: see :func:`scale_by_mfac`.
      window_dtype: see :func:`scale_by_mfac` (e.g. ``jnp.bfloat16`` halves the window).

    Returns:
      An ``optax.GradientTransformation``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from geomjax.optim._mfac import mfac
      >>> tx = mfac(0.1, num_grads=2, damping=1.0)
      >>> w = jnp.zeros(2); state = tx.init(w)
      >>> u, state = tx.update(jnp.array([2.0, 0.0]), state, w)  # -0.1 * diag(3, 1)^{-1} g
      >>> [round(float(x), 5) for x in u]
      [-0.06667, 0.0]

    References:
      E. Frantar, E. Kurtic, D. Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
      Second-Order Information", NeurIPS 2021, arXiv:2107.03356.
    """
    fn = "mfac"
    if not callable(learning_rate):
        check_scalar(fn, "learning_rate", learning_rate, positive=False)
    for name, value, lo, hi in (
        ("momentum", momentum, 0.0, 1.0),
        ("weight_decay", weight_decay, 0.0, math.inf),
    ):
        check_scalar(fn, name, value, positive=False)
        if isinstance(value, (int, float)) and not (lo <= value < hi):
            raise ValueError(f"{fn}: argument `{name}` must lie in [{lo}, {hi}); got {value!r}")
    parts = []
    if not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(
        scale_by_mfac(
            num_grads,
            damping,
            blocks=blocks,
            axis_name=axis_name,
            shard_buffer=shard_buffer,
            window_dtype=window_dtype,
        )
    )
    if not (isinstance(momentum, (int, float)) and momentum == 0):
        parts.append(optax.ema(momentum, debias=False))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)
