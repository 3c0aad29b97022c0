r"""Irreducible representations of :math:`O(3)` and their direct sums (static metadata).

An irrep of :math:`O(3) = SO(3) \times \{\pm 1\}` is a pair :math:`(l, p)`: the degree
:math:`l \ge 0` of the :math:`SO(3)` representation (dimension :math:`2l + 1`) and the parity
:math:`p = \pm 1`, the sign the inversion :math:`-I` acts with. It is written ``"1o"`` (odd,
:math:`p = -1`) or ``"2e"`` (even, :math:`p = 1`); a polar vector is ``1o``, a pseudovector
(cross product) ``1e``, the spherical harmonics of degree :math:`l` have parity :math:`(-1)^l`
(``"ly"`` spells that parity). ``Irreps("16x0e+8x1o")`` is a direct sum with multiplicities.

Everything here is static Python data (hashable, immutable): it lives in the aux data of
:class:`~geomjax.equivariant.IrrepsArray` pytrees and in ``static_argnums``, never in a trace.
Names, parsing, ordering and the return values of ``sort``/``simplify``/``regroup``/``filter``
follow e3nn-jax 0.21, so irreps strings and the order of data move over unchanged.

References:
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep, the notation of the field and of e3nn)
from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple, Union

import jax

__all__ = ["Irrep", "Irreps", "MulIrrep"]

_IRREP_RE = re.compile(r"^\s*(\d+)\s*([eoy])\s*$")
_MUL_IRREP_RE = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+\s*[eoy])\s*$")


def _check_l(fn: str, name: str, l) -> int:
    if isinstance(l, bool) or not isinstance(l, numbers.Integral):
        raise TypeError(f"{fn}: argument `{name}` must be a non-negative int; got {l!r}")
    if l < 0:
        raise ValueError(f"{fn}: argument `{name}` must be a non-negative int; got {l!r}")
    return int(l)


class Irrep:
    r"""Irreducible representation :math:`(l, p)` of :math:`O(3)`, of dimension :math:`2l + 1`.

    The rotation :math:`R \in SO(3)` acts by the Wigner matrix :math:`D^l(R)` (see
    :func:`~geomjax.equivariant.wigner_d`) and the inversion :math:`-I` by the scalar :math:`p`.

    Args:
      l: the degree, a non-negative int; or a string ``"<l><e|o|y>"`` (``e`` even, ``o`` odd,
        ``y`` the parity :math:`(-1)^l` of the spherical harmonics), an ``Irrep`` or a tuple
        ``(l, p)``, with ``p`` left out.
      p: the parity, ``1`` or ``-1`` (required when ``l`` is an int).

    Raises:
      ValueError: naming ``l`` for a string that is not an irrep, naming ``p`` for a parity
        other than :math:`\pm 1`.
      TypeError: naming ``l`` for a non-integer degree.

    Ordering follows e3nn: by :math:`l`, then the parity of the spherical harmonics
    :math:`(-1)^l` before the other one (``0e < 0o < 1o < 1e < 2e < 2o``).

    Examples:
      >>> from geomjax.equivariant import Irrep
      >>> Irrep("1o"), Irrep(2, 1), Irrep("3y")
      (1o, 2e, 3o)
      >>> Irrep("2e").dim, Irrep("0e").is_scalar()
      (5, True)
      >>> sorted([Irrep("1e"), Irrep("0o"), Irrep("1o"), Irrep("0e")])
      [0e, 0o, 1o, 1e]
      >>> Irrep("1o") * Irrep("1o")
      (0e, 1e, 2e)
      >>> Irrep("1o") == "1o"
      True

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """

    __slots__ = ("l", "p")
    l: int
    p: int

    def __init__(self, l, p=None):
        fn = "Irrep"
        if p is None:
            if isinstance(l, Irrep):
                l, p = l.l, l.p
            elif isinstance(l, MulIrrep):
                l, p = l.ir.l, l.ir.p
            elif isinstance(l, str):
                match = _IRREP_RE.match(l)
                if match is None:
                    raise ValueError(
                        f"{fn}: argument `l` must be an irrep string like '0e', '1o' or '2y' "
                        f"(degree then e/o/y parity); got {l!r}"
                    )
                l = int(match.group(1))
                p = {"e": 1, "o": -1, "y": (-1) ** l}[match.group(2)]
            elif isinstance(l, tuple) and len(l) == 2:
                l, p = l
            else:
                raise TypeError(
                    f"{fn}: argument `l` must be an int (with `p`), an irrep string like '1o', "
                    f"an Irrep or an (l, p) tuple; got {l!r}"
                )
        l = _check_l(fn, "l", l)
        if isinstance(p, bool) or p not in (1, -1):
            raise ValueError(f"{fn}: argument `p` must be 1 or -1; got {p!r}")
        object.__setattr__(self, "l", l)
        object.__setattr__(self, "p", int(p))

    def __setattr__(self, name, value):
        raise AttributeError("Irrep is immutable")

    def __reduce__(self):
        return (Irrep, (self.l, self.p))

    @property
    def dim(self) -> int:
        """Dimension :math:`2l + 1`."""
        return 2 * self.l + 1

    def is_scalar(self) -> bool:
        """True for the trivial representation ``0e``."""
        return self.l == 0 and self.p == 1

    def _key(self) -> tuple[int, int]:
        return (self.l, -self.p * (-1) ** self.l)

    def __repr__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    def __iter__(self):
        yield self.l
        yield self.p

    def __hash__(self) -> int:
        return hash((self.l, self.p))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Irrep):
            try:
                other = Irrep(other)
            except (TypeError, ValueError):
                return NotImplemented
        return (self.l, self.p) == (other.l, other.p)

    def __lt__(self, other) -> bool:
        return self._key() < Irrep(other)._key()

    def __le__(self, other) -> bool:
        return self._key() <= Irrep(other)._key()

    def __gt__(self, other) -> bool:
        return self._key() > Irrep(other)._key()

    def __ge__(self, other) -> bool:
        return self._key() >= Irrep(other)._key()

    def __mul__(self, other) -> tuple[Irrep, ...]:
        """The irreps of the tensor product: :math:`|l_1 - l_2| \\le l \\le l_1 + l_2`, parity
        :math:`p_1 p_2`."""
        if isinstance(other, numbers.Integral) and not isinstance(other, bool):
            return NotImplemented
        other = Irrep(other)
        p = self.p * other.p
        return tuple(Irrep(l, p) for l in range(abs(self.l - other.l), self.l + other.l + 1))

    def __rmul__(self, mul) -> Irreps:
        """``3 * Irrep("1o")`` is ``Irreps("3x1o")``."""
        if isinstance(mul, bool) or not isinstance(mul, numbers.Integral):
            return NotImplemented
        return Irreps([(int(mul), self)])

    def __add__(self, other) -> Irreps:
        return Irreps(self) + Irreps(other)

    def __radd__(self, other) -> Irreps:
        return Irreps(other) + Irreps(self)

    def D_from_matrix(self, R):
        """Wigner matrix of this irrep for an :math:`O(3)` matrix ``R`` (see
        :func:`~geomjax.equivariant.wigner_d`), shape ``(2l+1, 2l+1)``."""
        from geomjax.equivariant._wigner import wigner_d

        return wigner_d(self, R)


class MulIrrep(NamedTuple):
    """An irrep with its multiplicity: ``mul`` copies of ``ir`` (an entry of :class:`Irreps`).

    Examples:
      >>> from geomjax.equivariant import Irreps
      >>> Irreps("3x1o")[0]
      3x1o
      >>> Irreps("3x1o")[0].dim
      9
    """

    mul: int
    ir: Irrep

    @property
    def dim(self) -> int:
        """``mul * (2l + 1)``."""
        return self.mul * self.ir.dim

    def __repr__(self) -> str:
        return f"{self.mul}x{self.ir}"


class IrrepsSort(NamedTuple):
    """Result of :meth:`Irreps.sort`: the sorted irreps, ``p`` (``p[i]`` is the position of the
    original entry ``i`` in the sorted irreps) and ``inv`` (``inv[j]`` is the original entry at
    sorted position ``j``)."""

    irreps: Irreps
    p: tuple[int, ...]
    inv: tuple[int, ...]


IntoIrreps = Union[str, Irrep, MulIrrep, "Irreps", Iterable, None]


def _parse_entry(fn: str, entry) -> MulIrrep:
    if isinstance(entry, MulIrrep):
        return entry
    if isinstance(entry, Irrep):
        return MulIrrep(1, entry)
    if isinstance(entry, str):
        match = _MUL_IRREP_RE.match(entry)
        if match is None:
            raise ValueError(
                f"{fn}: argument `irreps` must be irreps like '16x0e+8x1o' (entries "
                f"'<mul>x<l><e|o|y>'); could not parse {entry.strip()!r}"
            )
        mul = int(match.group(1)) if match.group(1) is not None else 1
        return MulIrrep(mul, Irrep(match.group(2).replace(" ", "")))
    if isinstance(entry, tuple) and len(entry) == 2:
        mul, ir = entry
        if isinstance(mul, bool) or not isinstance(mul, numbers.Integral) or mul < 0:
            raise ValueError(
                f"{fn}: argument `irreps` has an entry with multiplicity {mul!r}; multiplicities "
                "must be non-negative ints"
            )
        try:
            ir = Irrep(ir)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{fn}: argument `irreps` has an entry {entry!r} whose irrep is invalid: {err}"
            ) from err
        return MulIrrep(int(mul), ir)
    raise ValueError(
        f"{fn}: argument `irreps` must be a string like '16x0e+8x1o', an Irrep, or a sequence "
        f"of (mul, irrep) pairs; got entry {entry!r}"
    )


class Irreps(tuple):
    r"""Direct sum of irreps of :math:`O(3)` with multiplicities: an immutable tuple of
    :class:`MulIrrep` ``(mul, ir)``.

    The data of an ``Irreps`` of dimension :math:`d` is a vector of length :math:`d`: the
    ``mul`` copies of the first irrep (each ``2l+1`` components, ordered :math:`m = -l..l`),
    then those of the second, and so on (``mul``-major, as in e3nn). Hashable and static: a
    pytree with no leaves (``jax.tree_util.register_static``), so it can be a ``jit`` argument
    or an attribute of an ``nnx.Module`` (as a plain tuple subclass it broke ``nnx.grad``).

    Args:
      irreps: a string ``"16x0e + 8x1o"`` (spaces allowed; a multiplicity of 1 may be left
        out; ``""`` is the empty sum), an ``Irrep``, a ``MulIrrep``, another ``Irreps``, or a
        sequence of entries (strings, ``Irrep`` s or ``(mul, irrep)`` pairs). Default empty.

    Raises:
      ValueError: naming ``irreps`` for a string or entry that cannot be parsed, or a negative
        multiplicity.

    Examples:
      >>> from geomjax.equivariant import Irreps
      >>> x = Irreps("16x0e + 8x1o")
      >>> x, x.dim, x.num_irreps, x.lmax
      (16x0e+8x1o, 40, 24, 1)
      >>> x == "16x0e+8x1o", hash(x) == hash(Irreps(x))
      (True, True)
      >>> x.slices()
      [slice(0, 16, None), slice(16, 40, None)]
      >>> Irreps("1o + 0e + 1o").sort()
      IrrepsSort(irreps=1x0e+1x1o+1x1o, p=(1, 0, 2), inv=(1, 0, 2))
      >>> Irreps("1o + 0e + 1o + 0x2e").regroup()
      1x0e+2x1o
      >>> Irreps.spherical_harmonics(3)
      1x0e+1x1o+1x2e+1x3o
      >>> 2 * Irreps("0e + 1o") + "2e"
      2x0e+2x1o+1x2e

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """

    def __new__(cls, irreps: IntoIrreps = None):
        fn = "Irreps"
        if isinstance(irreps, Irreps):
            return super().__new__(cls, irreps)
        if irreps is None:
            entries: list[MulIrrep] = []
        elif isinstance(irreps, Irrep):
            entries = [MulIrrep(1, irreps)]
        elif isinstance(irreps, MulIrrep):
            entries = [irreps]
        elif isinstance(irreps, str):
            text = irreps.strip()
            entries = [] if text == "" else [_parse_entry(fn, part) for part in text.split("+")]
        elif isinstance(irreps, Iterable) and not isinstance(irreps, (bytes, dict)):
            entries = [_parse_entry(fn, entry) for entry in irreps]
        else:
            raise ValueError(
                f"{fn}: argument `irreps` must be a string like '16x0e+8x1o', an Irrep, or a "
                f"sequence of (mul, irrep) pairs; got {irreps!r}"
            )
        return super().__new__(cls, entries)

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Total dimension :math:`\\sum \\mathrm{mul} (2l + 1)`."""
        return sum(mul_ir.dim for mul_ir in self)

    @property
    def num_irreps(self) -> int:
        """Sum of the multiplicities."""
        return sum(mul for mul, _ in self)

    @property
    def ls(self) -> list[int]:
        """The degree of every copy, in order (``mul`` times each)."""
        return [ir.l for mul, ir in self for _ in range(mul)]

    @property
    def lmax(self) -> int:
        """Largest degree among entries with a nonzero multiplicity.

        Raises:
          ValueError: if there is none.
        """
        ls = self.ls
        if not ls:
            raise ValueError(f"Irreps.lmax: the irreps {self!r} have no irrep")
        return max(ls)

    def slices(self) -> list[slice]:
        """The slice of the data vector each entry occupies."""
        out, start = [], 0
        for mul_ir in self:
            out.append(slice(start, start + mul_ir.dim))
            start += mul_ir.dim
        return out

    def count(self, ir) -> int:
        """Total multiplicity of the irrep ``ir``."""
        ir = Irrep(ir)
        return sum(mul for mul, other in self if other == ir)

    def is_scalar(self) -> bool:
        """True when every entry is ``0e``."""
        return {ir for _, ir in self} == {Irrep(0, 1)}

    # -- tuple behaviour -----------------------------------------------------------------------

    def __getitem__(self, i):
        out = super().__getitem__(i)
        return Irreps(out) if isinstance(i, slice) else out

    def __contains__(self, ir) -> bool:
        try:
            ir = Irrep(ir)
        except (TypeError, ValueError):
            return False
        return any(other == ir for _, other in self)

    def __add__(self, other) -> Irreps:
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other) -> Irreps:
        return Irreps(other) + self

    def __mul__(self, other) -> Irreps:
        """Multiply every multiplicity by the int ``other``."""
        if isinstance(other, bool) or not isinstance(other, numbers.Integral):
            raise TypeError(
                f"Irreps: can only multiply the multiplicities by a non-negative int; got "
                f"{other!r} (use a tensor product for products of irreps)"
            )
        if other < 0:
            raise ValueError(f"Irreps: multiplicity factor must be non-negative; got {other}")
        return Irreps([(mul * int(other), ir) for mul, ir in self])

    __rmul__ = __mul__

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Irreps(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__eq__(self, other)

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return tuple.__hash__(self)

    def __repr__(self) -> str:
        return "+".join(repr(m) for m in self) if self else "Irreps()"

    def __reduce__(self):
        return (Irreps, (tuple((m.mul, (m.ir.l, m.ir.p)) for m in self),))

    # -- rearrangements ------------------------------------------------------------------------

    def simplify(self) -> Irreps:
        """Drop zero multiplicities and merge neighbouring equal irreps (no reordering)."""
        out: list[tuple[int, Irrep]] = []
        for mul, ir in self:
            if mul == 0:
                continue
            if out and out[-1][1] == ir:
                out[-1] = (out[-1][0] + mul, ir)
            else:
                out.append((mul, ir))
        return Irreps(out)

    def sort(self) -> IrrepsSort:
        """Sort the entries by irrep (stable); returns ``(irreps, p, inv)``, see
        :class:`IrrepsSort`."""
        order = sorted(range(len(self)), key=lambda i: (self[i].ir._key(), i, self[i].mul))
        inv = tuple(order)
        p = [0] * len(inv)
        for j, i in enumerate(inv):
            p[i] = j
        return IrrepsSort(Irreps([self[i] for i in inv]), tuple(p), inv)

    def regroup(self) -> Irreps:
        """``sort().irreps.simplify()``: one entry per distinct irrep, in order."""
        return self.sort().irreps.simplify()

    def filter(
        self,
        keep: IntoIrreps | Callable[[MulIrrep], bool] = None,
        *,
        drop: IntoIrreps | Callable[[MulIrrep], bool] = None,
        lmax: int | None = None,
    ) -> Irreps:
        """Keep the entries whose irrep is in ``keep`` (or not in ``drop``, or of degree at most
        ``lmax``); ``keep``/``drop`` may be irreps (multiplicities ignored) or a predicate on
        :class:`MulIrrep`. At most one of the three may be given.

        Raises:
          ValueError: naming the argument for two selectors at once or an unparsable one.
        """
        return Irreps([self[i] for i in self._filter_index("Irreps.filter", keep, drop, lmax)])

    def _filter_index(self, fn: str, keep, drop, lmax) -> list[int]:
        given = [n for n, v in (("keep", keep), ("drop", drop), ("lmax", lmax)) if v is not None]
        if len(given) > 1:
            raise ValueError(
                f"{fn}: give at most one of `keep`, `drop` and `lmax`; got {', '.join(given)}"
            )
        if not given:
            return list(range(len(self)))
        if lmax is not None:
            lmax = _check_l(fn, "lmax", lmax)
            return [i for i, (_, ir) in enumerate(self) if ir.l <= lmax]
        name, sel = given[0], keep if keep is not None else drop
        if callable(sel) and not isinstance(sel, (Irrep, MulIrrep, Irreps, str)):
            hits = [bool(sel(mul_ir)) for mul_ir in self]
        else:
            try:
                irs = {m.ir for m in Irreps(sel)}
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{fn}: argument `{name}` must be irreps (e.g. '0e + 1o'), a list of irreps "
                    f"or a predicate; got {sel!r}"
                ) from err
            hits = [ir in irs for _, ir in self]
        want = name == "keep"
        return [i for i, hit in enumerate(hits) if hit == want]

    @property
    def slice_by_mul(self) -> _MulSlicer:
        """``irreps.slice_by_mul[a:b]``: the irreps of copies ``a`` to ``b`` in the flattened
        multiplicity index (``Irreps("2x1o+3x0e").slice_by_mul[1:3]`` is ``1x1o+1x0e``)."""
        return _MulSlicer(self, lambda sel: sel[0])

    def _slice_mul(self, fn: str, key) -> tuple[Irreps, list[tuple[int, int, int]]]:
        """Irreps of copies ``key`` (a step-1 slice) and the (entry, first, last) copy ranges."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise ValueError(f"{fn}: argument `key` must be a slice with step 1; got {key!r}")
        start, stop, _ = key.indices(self.num_irreps)
        stop = max(start, stop)
        out, ranges, offset = [], [], 0
        for i, (mul, ir) in enumerate(self):
            a, b = max(start - offset, 0), min(stop - offset, mul)
            if a < b:
                out.append((b - a, ir))
                ranges.append((i, a, b))
            offset += mul
        return Irreps(out), ranges

    # -- constructors and representations ------------------------------------------------------

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> Irreps:
        """``1x0e + 1x1o + ... + 1x(lmax)``: the irreps of the spherical harmonics up to ``lmax``
        of a vector of parity ``p`` (``-1``: a polar vector, parities :math:`(-1)^l`)."""
        fn = "Irreps.spherical_harmonics"
        lmax = _check_l(fn, "lmax", lmax)
        if isinstance(p, bool) or p not in (1, -1):
            raise ValueError(f"{fn}: argument `p` must be 1 or -1; got {p!r}")
        return Irreps([(1, (l, p**l)) for l in range(lmax + 1)])

    def D_from_matrix(self, R):
        """Block-diagonal representation matrix of an :math:`O(3)` matrix ``R`` (each copy of
        each irrep gets its :func:`~geomjax.equivariant.wigner_d` block), shape
        ``(dim, dim)``."""
        from geomjax.equivariant._wigner import irreps_wigner_d

        return irreps_wigner_d(self, R)


jax.tree_util.register_static(Irreps)


class _MulSlicer:
    def __init__(self, owner, finish):
        self._owner = owner
        self._finish = finish

    def __getitem__(self, key):
        irreps = self._owner if isinstance(self._owner, Irreps) else self._owner.irreps
        return self._finish(irreps._slice_mul("slice_by_mul", key))
