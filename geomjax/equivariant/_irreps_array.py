r"""``IrrepsArray``: an array whose last axis is the data of an :class:`Irreps`, as a pytree.

The irreps are static aux data of the pytree (hashable, compared at trace time) and the array
its only leaf, so an ``IrrepsArray`` passes through ``jax.jit``, ``jax.vmap``, ``jax.grad`` and
``jax.shard_map`` like an array: a batch axis, a gradient or a shard is an ``IrrepsArray`` with
the same irreps. Operations that mix irreps (slicing by irrep, concatenation, regrouping) move
the data with them; arithmetic is restricted to what commutes with :math:`O(3)`: sums of equal
irreps and products with invariant scalars (numbers or ``0e`` data).

References:
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike
from geomjax.equivariant._irreps import Irreps, _MulSlicer

__all__ = ["IrrepsArray", "concatenate", "from_chunks", "zeros"]


def _as_irreps(fn: str, name: str, irreps) -> Irreps:
    if isinstance(irreps, Irreps):
        return irreps
    try:
        return Irreps(irreps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{fn}: argument `{name}` is not valid irreps: {err}") from err


def _float_array(fn: str, name: str, x) -> Array:
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: argument `{name}` must have a real floating dtype (float32 or float64); "
            f"got {arr.dtype}"
        )
    return arr


def _check_weights(fn: str, weights, n_w: int, hint: str) -> Array:
    """A real floating weight array of shape ``(..., n_w)`` (``hint`` says what the weights are)."""
    w = jnp.asarray(weights)
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `weights` must be real floating; got {w.dtype}")
    if w.ndim < 1 or w.shape[-1] != n_w:
        raise ValueError(
            f"{fn}: argument `weights` must have shape (..., {n_w}) ({hint}); got shape {w.shape}"
        )
    return w


def _leading_shape(fn: str, leading_shape) -> tuple[int, ...]:
    if isinstance(leading_shape, numbers.Integral) and not isinstance(leading_shape, bool):
        leading_shape = (leading_shape,)
    try:
        shape = tuple(leading_shape)
    except TypeError as err:
        raise TypeError(
            f"{fn}: argument `leading_shape` must be a tuple of non-negative ints; got "
            f"{leading_shape!r}"
        ) from err
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(
                f"{fn}: argument `leading_shape` must be a tuple of non-negative ints; got "
                f"{leading_shape!r}"
            )
    return tuple(int(s) for s in shape)


@jax.tree_util.register_pytree_node_class
class IrrepsArray:
    r"""Data of shape ``(..., irreps.dim)`` together with its static ``irreps``.

    Args:
      irreps: the irreps of the last axis (anything :class:`Irreps` accepts).
      array: real floating data, shape ``(..., irreps.dim)`` (at least 1-D).

    Raises:
      ValueError: naming ``irreps`` for invalid irreps, naming ``array`` for a last axis other
        than ``irreps.dim``.
      TypeError: naming ``array`` for an integer, boolean or complex dtype.

    Attributes:
      irreps: the :class:`Irreps` (static).
      array: the data (the pytree leaf).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray
      >>> x = IrrepsArray("2x0e + 1x1o", jnp.arange(5.0))
      >>> x
      IrrepsArray(2x0e+1x1o, [0. 1. 2. 3. 4.])
      >>> [c.shape for c in x.chunks]
      [(2, 1), (1, 3)]
      >>> x.filter(keep="1o").array
      Array([2., 3., 4.], dtype=float32)
      >>> (2 * x - x).array
      Array([0., 1., 2., 3., 4.], dtype=float32)
      >>> jax.vmap(lambda v: v * 2.0)(IrrepsArray("1o", jnp.ones((4, 3)))).shape
      (4, 3)
      >>> jax.grad(lambda v: jnp.sum(v.array ** 2))(x).irreps
      2x0e+1x1o

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """

    __slots__ = ("irreps", "array")
    irreps: Irreps
    array: Array

    def __init__(self, irreps, array: ArrayLike):
        fn = "IrrepsArray"
        irreps = _as_irreps(fn, "irreps", irreps)
        array = _float_array(fn, "array", array)
        if array.ndim < 1 or array.shape[-1] != irreps.dim:
            raise ValueError(
                f"{fn}: argument `array` must have shape (..., {irreps.dim}) for irreps "
                f"{irreps!r}; got shape {array.shape}"
            )
        object.__setattr__(self, "irreps", irreps)
        object.__setattr__(self, "array", array)

    def __setattr__(self, name, value):
        raise AttributeError("IrrepsArray is immutable")

    # -- pytree --------------------------------------------------------------------------------

    def tree_flatten(self):
        return (self.array,), self.irreps

    @classmethod
    def tree_unflatten(cls, irreps, children):
        # No validation: JAX rebuilds pytrees with placeholders (None, object(), batched
        # tracers, shape structs) whose shapes need not match.
        out = object.__new__(cls)
        object.__setattr__(out, "irreps", irreps)
        object.__setattr__(out, "array", children[0])
        return out

    @classmethod
    def _unchecked(cls, irreps: Irreps, array: Array) -> IrrepsArray:
        return cls.tree_unflatten(irreps, (array,))

    # -- array-like attributes -----------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data, ``(..., irreps.dim)``."""
        return tuple(self.array.shape)

    @property
    def dtype(self):
        """Dtype of the data."""
        return self.array.dtype

    @property
    def ndim(self) -> int:
        """Number of axes of the data."""
        return self.array.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"IrrepsArray({self.irreps!r}, {np.asarray(self.array)})"

    @property
    def chunks(self) -> list[Array]:
        """One view per irreps entry, shape ``(..., mul, 2l + 1)``."""
        lead = self.shape[:-1]
        return [
            self.array[..., s].reshape(lead + (mul, ir.dim))
            for (mul, ir), s in zip(self.irreps, self.irreps.slices())
        ]

    @property
    def list(self) -> list[Array]:
        """Alias of :attr:`chunks`."""
        return self.chunks

    def astype(self, dtype) -> IrrepsArray:
        """The data cast to the floating ``dtype``."""
        return IrrepsArray(self.irreps, self.array.astype(dtype))

    def __getitem__(self, index) -> IrrepsArray:
        """Index the leading axes (the irreps axis stays whole): ``x[0]``, ``x[1:3]``."""
        key = index if isinstance(index, tuple) else (index,)
        if any(k is Ellipsis or k is None for k in key) or len(key) >= self.ndim:
            raise IndexError(
                "IrrepsArray: argument `index` may only index the leading axes (no Ellipsis, "
                f"None or the irreps axis); got {index!r} for shape {self.shape}"
            )
        return IrrepsArray._unchecked(self.irreps, self.array[index])

    # -- slicing and rearranging by irrep ------------------------------------------------------

    def filter(self, keep=None, *, drop=None, lmax: int | None = None) -> IrrepsArray:
        """The entries whose irrep is in ``keep`` (or not in ``drop``, or of degree at most
        ``lmax``), with their data; see :meth:`Irreps.filter`."""
        index = self.irreps._filter_index("IrrepsArray.filter", keep, drop, lmax)
        return self._take_entries(index)

    def _take_entries(self, index: Sequence[int]) -> IrrepsArray:
        slices = self.irreps.slices()
        irreps = Irreps([self.irreps[i] for i in index])
        parts = [self.array[..., slices[i]] for i in index]
        return IrrepsArray._unchecked(irreps, _cat(parts, self.array))

    @property
    def slice_by_mul(self) -> _MulSlicer:
        """``x.slice_by_mul[a:b]``: copies ``a`` to ``b`` of the flattened multiplicity index
        (step 1), with their data."""

        def finish(sel):
            irreps, ranges = sel
            chunks = self.chunks
            parts = [chunks[i][..., a:b, :].reshape(self.shape[:-1] + (-1,)) for i, a, b in ranges]
            return IrrepsArray._unchecked(irreps, _cat(parts, self.array))

        return _MulSlicer(self, finish)

    def simplify(self) -> IrrepsArray:
        """Merge neighbouring equal irreps and drop zero multiplicities (the data is
        unchanged: merged entries are already contiguous)."""
        return IrrepsArray._unchecked(self.irreps.simplify(), self.array)

    def sort(self) -> IrrepsArray:
        """Entries sorted by irrep (see :meth:`Irreps.sort`), with their data."""
        return self._take_entries(self.irreps.sort().inv)

    def regroup(self) -> IrrepsArray:
        """``sort().simplify()``: one entry per distinct irrep, with the data reordered."""
        return self.sort().simplify()

    # -- arithmetic ----------------------------------------------------------------------------

    def _same_irreps(self, other, op: str) -> Array:
        if not isinstance(other, IrrepsArray):
            raise TypeError(
                f"IrrepsArray: `{op}` needs two IrrepsArrays of the same irreps; got "
                f"{type(other).__name__} (a plain array has no irreps: wrap it in IrrepsArray)"
            )
        if other.irreps != self.irreps:
            raise ValueError(
                f"IrrepsArray: `{op}` needs the same irreps on both sides; got "
                f"{self.irreps!r} and {other.irreps!r} (call .regroup() or .simplify() first)"
            )
        return other.array

    def __add__(self, other) -> IrrepsArray:
        return IrrepsArray._unchecked(self.irreps, self.array + self._same_irreps(other, "+"))

    def __sub__(self, other) -> IrrepsArray:
        return IrrepsArray._unchecked(self.irreps, self.array - self._same_irreps(other, "-"))

    def __neg__(self) -> IrrepsArray:
        return IrrepsArray._unchecked(self.irreps, -self.array)

    def __pos__(self) -> IrrepsArray:
        return self

    def _scalar_factor(self, other, op: str) -> Array:
        """``other`` as an array broadcasting against the data: a number, a 0-d array, an array
        of shape ``(..., 1)``, or an IrrepsArray of ``1x0e`` (one factor for every component) or
        of ``Nx0e`` with ``N = irreps.num_irreps`` (one factor per copy)."""
        if isinstance(other, IrrepsArray):
            if not other.irreps.is_scalar() and other.irreps.dim != 0:
                raise ValueError(
                    f"IrrepsArray: `{op}` by an IrrepsArray needs invariant scalars (0e); got "
                    f"irreps {other.irreps!r}"
                )
            n = other.irreps.dim
            if n == 1:
                return other.array
            if n != self.irreps.num_irreps:
                raise ValueError(
                    f"IrrepsArray: `{op}` by {other.irreps!r} needs 1x0e or {self.irreps.num_irreps}"
                    f"x0e (one scalar per copy of {self.irreps!r})"
                )
            reps = np.repeat(np.arange(n), [ir.dim for mul, ir in self.irreps for _ in range(mul)])
            return other.array[..., reps]
        if isinstance(other, bool) or not (
            isinstance(other, numbers.Real) or hasattr(other, "dtype")
        ):
            raise TypeError(
                f"IrrepsArray: `{op}` needs a real number, a real array or a 0e IrrepsArray; "
                f"got {type(other).__name__}"
            )
        arr = jnp.asarray(other)
        if jnp.issubdtype(arr.dtype, jnp.bool_) or jnp.issubdtype(arr.dtype, jnp.complexfloating):
            raise TypeError(
                f"IrrepsArray: `{op}` needs a real factor (it must commute with rotations); "
                f"got dtype {arr.dtype}"
            )
        if arr.ndim > 0 and arr.shape[-1] != 1:
            raise ValueError(
                f"IrrepsArray: `{op}` by a plain array needs shape () or (..., 1) (one invariant "
                f"factor per row; mixing components would break equivariance); got shape "
                f"{arr.shape}"
            )
        return arr

    def __mul__(self, other) -> IrrepsArray:
        factor = self._scalar_factor(other, "*")
        return IrrepsArray._unchecked(self.irreps, self.array * factor)

    __rmul__ = __mul__

    def __truediv__(self, other) -> IrrepsArray:
        factor = self._scalar_factor(other, "/")
        return IrrepsArray._unchecked(self.irreps, self.array / factor)

    # -- constructors --------------------------------------------------------------------------

    @staticmethod
    def zeros(irreps, leading_shape=(), dtype=jnp.float32) -> IrrepsArray:
        """See :func:`zeros`."""
        return zeros(irreps, leading_shape, dtype)

    @staticmethod
    def from_chunks(irreps, chunks, leading_shape=(), dtype=None) -> IrrepsArray:
        """See :func:`from_chunks`."""
        return from_chunks(irreps, chunks, leading_shape, dtype)


def _cat(parts: list[Array], like: Array) -> Array:
    if not parts:
        return jnp.zeros(like.shape[:-1] + (0,), like.dtype)
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def zeros(irreps, leading_shape=(), dtype=jnp.float32) -> IrrepsArray:
    """An all-zero :class:`IrrepsArray` of shape ``leading_shape + (irreps.dim,)``.

    Args:
      irreps: the irreps.
      leading_shape: the leading axes (a tuple of ints, or one int).
      dtype: a real floating dtype.

    Raises:
      ValueError: naming ``irreps`` or ``leading_shape``.
      TypeError: naming ``dtype`` for a non-floating dtype.

    Examples:
      >>> from geomjax.equivariant import zeros
      >>> zeros("0e + 1o", (2,)).shape
      (2, 4)
    """
    fn = "zeros"
    irreps = _as_irreps(fn, "irreps", irreps)
    shape = _leading_shape(fn, leading_shape)
    try:
        dt = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(
            f"{fn}: argument `dtype` must be a real floating dtype; got {dtype!r}"
        ) from err
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"{fn}: argument `dtype` must be a real floating dtype; got {dt}")
    return IrrepsArray._unchecked(irreps, jnp.zeros(shape + (irreps.dim,), dt))


def from_chunks(irreps, chunks: Sequence[ArrayLike], leading_shape=(), dtype=None) -> IrrepsArray:
    """Assemble an :class:`IrrepsArray` from one chunk per irreps entry, shape
    ``leading_shape + (mul, 2l + 1)`` each (the inverse of :attr:`IrrepsArray.chunks`).

    Args:
      irreps: the irreps, one entry per chunk.
      chunks: the chunks; ``None`` stands for zeros.
      leading_shape: the leading axes.
      dtype: the dtype (default: that of the chunks, float32 when all are ``None``).

    Raises:
      ValueError: naming ``chunks`` for a wrong count or shape, ``irreps`` or ``leading_shape``.
      TypeError: naming ``chunks`` for a non-floating chunk.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import from_chunks
      >>> x = from_chunks("2x0e + 1o", [jnp.ones((2, 1)), None])
      >>> x.array
      Array([1., 1., 0., 0., 0.], dtype=float32)
    """
    fn = "from_chunks"
    irreps = _as_irreps(fn, "irreps", irreps)
    shape = _leading_shape(fn, leading_shape)
    chunks = list(chunks) if isinstance(chunks, (list, tuple)) else None
    if chunks is None or len(chunks) != len(irreps):
        raise ValueError(
            f"{fn}: argument `chunks` must be a list with one chunk per entry of {irreps!r} "
            f"({len(irreps)}); got {'a non-list' if chunks is None else len(chunks)}"
        )
    arrays = [None if c is None else _float_array(fn, "chunks", c) for c in chunks]
    if dtype is None:
        present = [a.dtype for a in arrays if a is not None]
        dtype = jnp.result_type(*present) if present else jnp.float32
    parts = []
    for (mul, ir), a in zip(irreps, arrays):
        want = shape + (mul, ir.dim)
        if a is None:
            a = jnp.zeros(want, dtype)
        elif a.shape != want:
            raise ValueError(
                f"{fn}: argument `chunks` entry for {mul}x{ir} must have shape {want}; got "
                f"shape {a.shape}"
            )
        parts.append(a.astype(dtype).reshape(shape + (mul * ir.dim,)))
    like = jnp.zeros(shape + (0,), dtype)
    return IrrepsArray._unchecked(irreps, _cat(parts, like))


def concatenate(arrays: Sequence[IrrepsArray], axis: int = -1) -> IrrepsArray:
    """Concatenate :class:`IrrepsArray` s: along the irreps axis (``axis=-1``, irreps added
    in order) or along a leading axis (equal irreps required).

    Raises:
      ValueError: naming ``arrays`` for an empty list, different leading shapes or irreps;
        naming ``axis`` for an axis out of range.
      TypeError: naming ``arrays`` for entries that are not IrrepsArrays.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.equivariant import IrrepsArray, concatenate
      >>> a = IrrepsArray("0e", jnp.ones((2, 1)))
      >>> b = IrrepsArray("1o", jnp.zeros((2, 3)))
      >>> concatenate([a, b]).irreps, concatenate([a, b]).shape
      (1x0e+1x1o, (2, 4))
      >>> concatenate([b, b], axis=0).shape
      (4, 3)
    """
    fn = "concatenate"
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise ValueError(f"{fn}: argument `arrays` must be a non-empty list of IrrepsArrays")
    for a in arrays:
        if not isinstance(a, IrrepsArray):
            raise TypeError(
                f"{fn}: argument `arrays` must contain IrrepsArrays; got {type(a).__name__}"
            )
    ndim = arrays[0].ndim
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: argument `axis` must be an int in [-{ndim}, {ndim}); got {axis!r}")
    axis = int(axis) % ndim
    if axis == ndim - 1:
        lead = arrays[0].shape[:-1]
        if any(a.shape[:-1] != lead for a in arrays):
            raise ValueError(
                f"{fn}: argument `arrays` must share the leading shape; got "
                f"{[a.shape for a in arrays]}"
            )
        irreps = sum((a.irreps for a in arrays), Irreps())
        return IrrepsArray._unchecked(irreps, jnp.concatenate([a.array for a in arrays], -1))
    if any(a.irreps != arrays[0].irreps for a in arrays):
        raise ValueError(
            f"{fn}: argument `arrays` must share the irreps to concatenate along axis {axis}; "
            f"got {[a.irreps for a in arrays]}"
        )
    rest = [a.shape[:axis] + a.shape[axis + 1 :] for a in arrays]
    if any(a.ndim != ndim for a in arrays) or any(r != rest[0] for r in rest):
        raise ValueError(
            f"{fn}: argument `arrays` must have equal shapes except along axis {axis}; got "
            f"{[a.shape for a in arrays]}"
        )
    data = jnp.concatenate([a.array for a in arrays], axis=axis)
    return IrrepsArray._unchecked(arrays[0].irreps, data)
