r"""Equivariant nonlinearities on irreps arrays: gate and norm activations.

A pointwise nonlinearity commutes with :math:`O(3)` only on invariant scalars. The *gate*
(Weiler et al. 2018; Thomas et al. 2018) applies ordinary activations to the scalars and
multiplies every non-scalar copy by an activated extra scalar (its gate); the *norm
activation* rescales every copy by a function of its (invariant) norm.

References:
  M. Weiler, M. Geiger, M. Welling, W. Boomsma, T. Cohen, "3D Steerable CNNs", NeurIPS 2018,
  arXiv:1807.02547.
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from geomjax.equivariant._irreps import Irrep, Irreps
from geomjax.equivariant._irreps_array import IrrepsArray, concatenate

__all__ = ["gate", "gate_irreps_in", "norm_activation", "soft_odd"]


def soft_odd(x):
    r"""The odd activation :math:`(1 - e^{-x^2})\, x` (e3nn's default for odd scalars)."""
    return (1.0 - jnp.exp(-(x**2))) * x


def gate_irreps_in(irreps_out) -> Irreps:
    """Irreps a :func:`gate` needs to produce ``irreps_out``: its scalars, one ``0e`` gate per
    non-scalar copy, then the non-scalars.

    Examples:
      >>> from geomjax.equivariant import gate_irreps_in
      >>> gate_irreps_in("8x0e + 4x1o + 2x2e")
      8x0e+6x0e+4x1o+2x2e
    """
    try:
        irreps_out = Irreps(irreps_out)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"gate_irreps_in: argument `irreps_out` is not valid irreps: {err}"
        ) from err
    scalars = irreps_out.filter(keep=["0e", "0o"])
    gated = irreps_out.filter(drop=["0e", "0o"])
    gates = Irreps([(gated.num_irreps, "0e")]) if gated.num_irreps else Irreps()
    return scalars + gates + gated


def _scalar_act(x: IrrepsArray, even_act, odd_act) -> IrrepsArray:
    parts = []
    for (mul, ir), chunk in zip(x.irreps, x.chunks):
        act = even_act if ir.p == 1 else odd_act
        parts.append(
            IrrepsArray._unchecked(
                Irreps([(mul, ir)]), act(chunk).reshape(chunk.shape[:-2] + (-1,))
            )
        )
    if not parts:
        return x
    return concatenate(parts)


def gate(
    x: IrrepsArray,
    even_act: Callable = jax.nn.gelu,
    odd_act: Callable = soft_odd,
    even_gate_act: Callable = jax.nn.sigmoid,
    odd_gate_act: Callable = jnp.tanh,
) -> IrrepsArray:
    r"""Gate activation: scalars through an activation, non-scalars times activated gates.

    The input's scalar copies (``0e``/``0o``, in order) are split into the *extra* scalars and,
    last, one *gate* per non-scalar copy :math:`v_n`:

    .. math::

        \text{out} = \big[\, \sigma(s_1), \dots, \sigma(s_S),\
        \sigma_g(g_1)\, v_1, \dots, \sigma_g(g_N)\, v_N \,\big],

    with :math:`\sigma` = ``even_act`` on ``0e`` and ``odd_act`` on ``0o`` (which must be an
    odd function: its output keeps parity odd), :math:`\sigma_g` = ``even_gate_act`` on
    ``0e`` gates and ``odd_gate_act`` (odd) on ``0o`` gates, which flip the gated parity.
    Equivariant because gates are invariant (up to sign for ``0o``). The activations are not
    renormalized (e3nn-jax's ``gate(..., normalize_act=False)``). Use :func:`gate_irreps_in` to
    size the layer before the gate.

    Args:
      x: ``IrrepsArray`` with scalars, then non-scalars in any order (the scalars' last
        ``N`` copies are the gates of the ``N`` non-scalar copies).
      even_act, odd_act: activations of the extra scalars.
      even_gate_act, odd_gate_act: activations of the gates.

    Returns:
      ``IrrepsArray``: the activated extra scalars followed by the gated non-scalars.

    Raises:
      TypeError: naming ``x`` (not an IrrepsArray).
      ValueError: naming ``x`` when it has fewer scalars than non-scalar copies.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray, gate
      >>> x = IrrepsArray("1x0e + 1x0e + 1o", jnp.array([1.0, 0.0, 1.0, 2.0, 3.0]))
      >>> y = gate(x)
      >>> y.irreps, [round(float(v), 3) for v in y.array]
      (1x0e+1x1o, [0.841, 0.5, 1.0, 1.5])

    References:
      M. Weiler et al., "3D Steerable CNNs", NeurIPS 2018, arXiv:1807.02547.
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "gate"
    if not isinstance(x, IrrepsArray):
        raise TypeError(f"{fn}: argument `x` must be an IrrepsArray; got {type(x).__name__}")
    scalars = x.filter(keep=["0e", "0o"])
    gated = x.filter(drop=["0e", "0o"])
    if gated.irreps.dim == 0:
        return _scalar_act(scalars, even_act, odd_act)
    n = gated.irreps.num_irreps
    if scalars.irreps.dim < n:
        raise ValueError(
            f"{fn}: argument `x` needs at least one scalar gate per non-scalar copy ({n}); "
            f"got irreps {x.irreps!r} with {scalars.irreps.dim} scalars (see gate_irreps_in)"
        )
    extra = scalars.slice_by_mul[: scalars.irreps.dim - n]
    gates = scalars.slice_by_mul[scalars.irreps.dim - n :]
    extra = _scalar_act(extra, even_act, odd_act)
    gates = _scalar_act(gates, even_gate_act, odd_gate_act)
    # one gate value per non-scalar copy, repeated over its 2l+1 components
    parities = [ir.p for mul, ir in gates.irreps for _ in range(mul)]
    reps = np.repeat(np.arange(n), [ir.dim for mul, ir in gated.irreps for _ in range(mul)])
    g = gates.array[..., reps]
    out_irreps, k = [], 0
    for mul, ir in gated.irreps:
        ps = parities[k : k + mul]
        k += mul
        for p, cnt in _runs(ps):
            out_irreps.append((cnt, Irrep(ir.l, ir.p * p)))
    lead = jnp.broadcast_shapes(g.shape[:-1], gated.shape[:-1])
    data = jnp.broadcast_to(g, lead + g.shape[-1:]) * gated.array
    out_gated = IrrepsArray._unchecked(Irreps(out_irreps), data)
    if extra.irreps.dim == 0:
        return out_gated
    extra = IrrepsArray._unchecked(
        extra.irreps, jnp.broadcast_to(extra.array, lead + extra.shape[-1:])
    )
    return concatenate([extra, out_gated])


def _runs(ps: Sequence[int]):
    out = []
    for p in ps:
        if out and out[-1][0] == p:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return [(p, c) for p, c in out]


def norm_activation(
    x: IrrepsArray, acts: Sequence[Callable | None], *, epsilon: float = 0.0
) -> IrrepsArray:
    r"""Norm activation: every copy :math:`v` of entry :math:`a` becomes
    :math:`f_a(\|v\|)\, v`.

    The norm is invariant, so the map is equivariant for any :math:`f_a`. The norm is
    computed NaN-safely: at :math:`v = 0` the value is 0 and gradients are finite (the
    derivative of :math:`\|v\|` is taken as 0 there). ``epsilon > 0`` uses
    :math:`\sqrt{\|v\|^2 + \epsilon}` instead.

    Args:
      x: ``IrrepsArray``.
      acts: one function (or ``None`` for the identity) per entry of ``x.irreps``.
      epsilon: non-negative smoothing of the norm.

    Returns:
      ``IrrepsArray`` with the same irreps.

    Raises:
      TypeError: naming ``x``.
      ValueError: naming ``acts`` for a count other than ``len(x.irreps)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray, norm_activation
      >>> x = IrrepsArray("1o", jnp.array([3.0, 0.0, 4.0]))
      >>> norm_activation(x, [lambda n: 1.0 / n]).array
      Array([0.6, 0. , 0.8], dtype=float32)

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    fn = "norm_activation"
    if not isinstance(x, IrrepsArray):
        raise TypeError(f"{fn}: argument `x` must be an IrrepsArray; got {type(x).__name__}")
    acts = list(acts) if isinstance(acts, (list, tuple)) else None
    if acts is None or len(acts) != len(x.irreps):
        raise ValueError(
            f"{fn}: argument `acts` must be a list with one function (or None) per entry of "
            f"{x.irreps!r} ({len(x.irreps)})"
        )
    parts = []
    for chunk, act in zip(x.chunks, acts):
        if act is not None and chunk.size:
            sq = jnp.sum(chunk**2, axis=-1, keepdims=True) + epsilon
            pos = sq > 0
            norm = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
            chunk = chunk * act(norm)
        parts.append(chunk.reshape(chunk.shape[:-2] + (-1,)))
    data = parts[0] if len(parts) == 1 else jnp.concatenate(parts, -1) if parts else x.array
    return IrrepsArray._unchecked(x.irreps, data)
