r"""Equivariant linear maps on irreps arrays: channel mixing within each irrep.

By Schur's lemma the only linear maps commuting with :math:`O(3)` between irreps arrays send
each irrep to copies of the same irrep; a linear layer is therefore one weight matrix
:math:`W^{(a \to c)} \in \mathbb R^{U_a \times W_c}` per pair of input entry :math:`a` and
output entry :math:`c` with the same irrep, acting on the channels and leaving the
:math:`2l + 1` components alone.

References:
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
  N. Thomas et al., "Tensor field networks", arXiv:1802.08219 (2018).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from geomjax._core import Array, ArrayLike, check_key
from geomjax.equivariant._irreps import Irreps
from geomjax.equivariant._irreps_array import IrrepsArray, _check_weights

__all__ = ["init_irreps_linear", "irreps_linear", "irreps_linear_num_weights"]


def _as_irreps(fn: str, name: str, irreps) -> Irreps:
    try:
        return Irreps(irreps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `{name}` is not valid irreps: {err}") from err


@functools.cache
def _linear_plan(irreps_in: Irreps, irreps_out: Irreps):
    """Per output entry: the input entries of its irrep, the weight slice and the scale."""
    plan, start = [], 0
    for mul_c, ir_c in irreps_out:
        src = tuple(a for a, (mul_a, ir_a) in enumerate(irreps_in) if ir_a == ir_c and mul_a > 0)
        fan_in = sum(irreps_in[a].mul for a in src)
        n_w = fan_in * mul_c
        alpha = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
        plan.append((src, fan_in, start, n_w, alpha))
        start += n_w
    return tuple(plan), start


def irreps_linear_num_weights(irreps_in, irreps_out) -> int:
    """Number of weights of :func:`irreps_linear` from ``irreps_in`` to ``irreps_out``.

    Examples:
      >>> from geomjax.equivariant import irreps_linear_num_weights
      >>> irreps_linear_num_weights("4x0e + 2x1o", "8x0e + 3x1o + 1x2e")
      38
    """
    fn = "irreps_linear_num_weights"
    return _linear_plan(
        _as_irreps(fn, "irreps_in", irreps_in), _as_irreps(fn, "irreps_out", irreps_out)
    )[1]


def irreps_linear(x: IrrepsArray, weights: ArrayLike, irreps_out) -> IrrepsArray:
    r"""Equivariant linear map of an irreps array: channels mixed within each irrep.

    .. math::

        z_{c, w k} = \frac{1}{\sqrt{F_c}} \sum_{a:\, l_a = l_c,\, p_a = p_c} \sum_{u}
        W^{(a \to c)}_{u w}\, x_{a, u k}, \qquad F_c = \sum_{a \to c} U_a,

    (fan-in normalization: unit-variance weights and inputs give unit-variance outputs).
    Output entries whose irrep is absent from the input are zero. Evaluated as one
    contraction per output entry against the stacked input copies of its irrep.

    Args:
      x: ``IrrepsArray`` of shape ``(..., irreps_in.dim)``.
      weights: ``(num_weights,)`` (see :func:`irreps_linear_num_weights`, layout output
        entry-major then ``(u, w)`` with the inputs of the irrep stacked in order), or with
        leading axes broadcasting against ``x``'s (per-sample weights).
      irreps_out: the output irreps.

    Returns:
      ``IrrepsArray`` of ``irreps_out``, shape ``(..., irreps_out.dim)``.

    Raises:
      TypeError: naming ``x`` (not an IrrepsArray) or ``weights`` (not floating).
      ValueError: naming ``irreps_out`` or ``weights`` (shape).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray, init_irreps_linear, irreps_linear
      >>> x = IrrepsArray("4x0e + 2x1o", jnp.ones((3, 10)))
      >>> w = init_irreps_linear(jax.random.key(0), x.irreps, "8x0e + 3x1o + 1x2e")
      >>> y = irreps_linear(x, w, "8x0e + 3x1o + 1x2e")
      >>> y.shape, bool(jnp.all(y.chunks[2] == 0))
      ((3, 22), True)

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "irreps_linear"
    if not isinstance(x, IrrepsArray):
        raise TypeError(f"{fn}: argument `x` must be an IrrepsArray; got {type(x).__name__}")
    irreps_out = _as_irreps(fn, "irreps_out", irreps_out)
    plan, n_w = _linear_plan(x.irreps, irreps_out)
    w = _check_weights(fn, weights, n_w, f"for {x.irreps!r} -> {irreps_out!r}")
    dtype = jnp.result_type(x.dtype, w.dtype)
    try:
        lead = tuple(jnp.broadcast_shapes(x.shape[:-1], w.shape[:-1]))
    except ValueError as err:
        raise ValueError(
            f"{fn}: argument `weights` leading shape {w.shape[:-1]} does not broadcast with "
            f"`x`'s {x.shape[:-1]}"
        ) from err
    chunks = x.chunks
    outs = []
    for (mul_c, ir_c), (src, fan_in, w0, nw, alpha) in zip(irreps_out, plan):
        if not src or mul_c == 0:
            outs.append(jnp.zeros(lead + (mul_c * ir_c.dim,), dtype))
            continue
        xs = chunks[src[0]] if len(src) == 1 else jnp.concatenate([chunks[a] for a in src], -2)
        wc = w[..., w0 : w0 + nw].reshape(w.shape[:-1] + (fan_in, mul_c)).astype(dtype)
        z = jnp.einsum("...uk,...uw->...wk", xs.astype(dtype), wc) * jnp.asarray(alpha, dtype)
        outs.append(jnp.broadcast_to(z, lead + z.shape[-2:]).reshape(lead + (-1,)))
    if not outs:
        return IrrepsArray._unchecked(irreps_out, jnp.zeros(lead + (0,), dtype))
    data = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
    return IrrepsArray._unchecked(irreps_out, data)


def init_irreps_linear(key: jax.Array, irreps_in, irreps_out, *, dtype=jnp.float32) -> Array:
    """Standard-normal weights ``(num_weights,)`` for :func:`irreps_linear` (the fan-in scale
    is applied in the map).

    Args:
      key: PRNG key (required).
      irreps_in, irreps_out: the irreps.
      dtype: floating dtype.

    Examples:
      >>> import jax
      >>> from geomjax.equivariant import init_irreps_linear
      >>> init_irreps_linear(jax.random.key(0), "2x0e", "3x0e + 1o").shape
      (6,)
    """
    fn = "init_irreps_linear"
    check_key(fn, "key", key)
    n_w = irreps_linear_num_weights(irreps_in, irreps_out)
    return jax.random.normal(key, (n_w,), dtype)
