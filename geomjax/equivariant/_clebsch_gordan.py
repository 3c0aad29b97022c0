r"""Real Clebsch-Gordan coefficients and Lie algebra generators in e3nn's basis (NumPy constants).

Everything here is computed once per argument in float64 NumPy (exact rational arithmetic for
the Clebsch-Gordan sums), cached with ``functools.cache`` and returned as read-only arrays:
constants of the trace, never part of it.

Bases. The complex basis :math:`|l, m\rangle` is the standard one (Condon-Shortley phases) with
its quantization axis along :math:`y` and :math:`(z, x, y)` playing the roles of the textbook
:math:`(x, y, z)`. The real basis is that of the real spherical harmonics of
:func:`~geomjax.equivariant.spherical_harmonics`:

.. math::

    Y_{l,m>0} = \tfrac{1}{\sqrt2}\left(Y_l^{-m} + (-1)^m Y_l^{m}\right),\quad
    Y_{l,0} = Y_l^0,\quad
    Y_{l,m<0} = \tfrac{i}{\sqrt2}\left(Y_l^{m} - (-1)^m Y_l^{-m}\right)

(rows of the unitary :math:`A_l`, real from complex). For :math:`l = 1` the real basis is
:math:`(x, y, z)` itself: the generators are the usual :math:`(L_x)_{jk} = -\varepsilon_{xjk}`
and :math:`D^1(R) = R`.

References:
  M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
  G. Racah, "Theory of complex spectra. II", Phys. Rev. 62, 438 (1942) (the closed-form sum).
  D. A. Varshalovich, A. N. Moskalev, V. K. Khersonskii, "Quantum Theory of Angular Momentum",
  World Scientific (1988), Sec. 8.2 (Clebsch-Gordan coefficients) and 5.2 (real harmonics).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep, the notation of the field and of e3nn)
from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction

import numpy as np

__all__ = ["clebsch_gordan", "so3_generators", "su2_generators"]


def _check_degree(fn: str, name: str, l) -> int:
    if isinstance(l, bool) or not isinstance(l, numbers.Integral):
        raise TypeError(f"{fn}: argument `{name}` must be a non-negative int; got {l!r}")
    if l < 0:
        raise ValueError(f"{fn}: argument `{name}` must be a non-negative int; got {l!r}")
    return int(l)


def _check_spin(fn: str, name: str, j) -> Fraction:
    """A non-negative integer or half-integer, as an exact Fraction."""
    if isinstance(j, bool) or not isinstance(j, (numbers.Integral, numbers.Real)):
        raise TypeError(
            f"{fn}: argument `{name}` must be a non-negative integer or half-integer; got {j!r}"
        )
    twice = 2 * Fraction(j) if isinstance(j, (numbers.Rational, int)) else None
    if twice is None:
        f = float(j)
        if not math.isfinite(f) or 2 * f != round(2 * f):
            raise ValueError(
                f"{fn}: argument `{name}` must be a non-negative integer or half-integer; got {j!r}"
            )
        twice = Fraction(round(2 * f))
    if twice.denominator != 1 or twice < 0:
        raise ValueError(
            f"{fn}: argument `{name}` must be a non-negative integer or half-integer; got {j!r}"
        )
    return twice / 2


def _racah_cg(j1: int, m1: int, j2: int, m2: int, j3: int, m3: int) -> float:
    r"""Complex Clebsch-Gordan :math:`\langle j_1 m_1 j_2 m_2 | j_3 m_3\rangle` (integer spins),
    Racah's closed form evaluated in exact rational arithmetic, rounded once to float64."""
    if m1 + m2 != m3 or not abs(j1 - j2) <= j3 <= j1 + j2:
        return 0.0
    if abs(m1) > j1 or abs(m2) > j2 or abs(m3) > j3:
        return 0.0
    f = math.factorial
    square = Fraction(
        (2 * j3 + 1) * f(j1 + j2 - j3) * f(j1 - j2 + j3) * f(-j1 + j2 + j3),
        f(j1 + j2 + j3 + 1),
    )
    square *= f(j1 + m1) * f(j1 - m1) * f(j2 + m2) * f(j2 - m2) * f(j3 + m3) * f(j3 - m3)
    total = Fraction(0)
    for k in range(j1 + j2 - j3 + 1):
        terms = (k, j1 + j2 - j3 - k, j1 - m1 - k, j2 + m2 - k, j3 - j2 + m1 + k, j3 - j1 - m2 + k)
        if min(terms) < 0:
            continue
        den = math.prod(f(t) for t in terms)
        total += Fraction((-1) ** k, den)
    # value = total * sqrt(square), exact up to the final rounding of sqrt(total^2 * square)
    value = math.sqrt(total * total * square)
    return value if total >= 0 else -value


@functools.cache
def _real_from_complex(l: int) -> np.ndarray:
    """Unitary ``A`` (rows: real components m = -l..l; columns: complex m = -l..l)."""
    a = np.zeros((2 * l + 1, 2 * l + 1), np.complex128)
    a[l, l] = 1.0
    r = 1.0 / math.sqrt(2.0)
    for m in range(1, l + 1):
        sign = (-1) ** m
        a[l + m, l - m] = r
        a[l + m, l + m] = sign * r
        a[l - m, l - m] = 1j * r
        a[l - m, l + m] = -1j * sign * r
    return a


def _read_only(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    x.setflags(write=False)
    return x


@functools.cache
def _clebsch_gordan(l1: int, l2: int, l3: int) -> np.ndarray:
    shape = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        return _read_only(np.zeros(shape))
    c = np.zeros(shape)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            m3 = m1 + m2
            if abs(m3) <= l3:
                c[l1 + m1, l2 + m2, l3 + m3] = _racah_cg(l1, m1, l2, m2, l3, m3)
    a1, a2, a3 = _real_from_complex(l1), _real_from_complex(l2), _real_from_complex(l3)
    # Components u^(i) = A_i u_complex^(i); the complex tensor maps (u1, u2) to u3.
    real = np.einsum("am,bn,cp,mnp->abc", a1.conj(), a2.conj(), a3, c)
    real *= (-1j) ** (l1 + l2 - l3)  # global phase making the tensor real (e3nn's choice)
    out = real.real / math.sqrt(2 * l3 + 1)  # sum of the squared coefficients is 2 l3 + 1
    return _read_only(out)


def clebsch_gordan(l1: int, l2: int, l3: int) -> np.ndarray:
    r"""Real Clebsch-Gordan tensor :math:`C^{l_1 l_2 l_3}` in e3nn's basis, unit Frobenius norm.

    The equivariant bilinear map from degrees :math:`l_1 \otimes l_2` to :math:`l_3`:

    .. math::

        \sum_{ijk} D^{l_1}_{i'i} D^{l_2}_{j'j} D^{l_3}_{k'k} C_{ijk} = C_{i'j'k'}
        \quad (R \in SO(3)), \qquad \|C\|_F = 1,

    so :math:`z_k = \sum_{ij} C_{ijk} x_i y_j` transforms as degree :math:`l_3` when
    :math:`x, y` transform as :math:`l_1, l_2`. It is the complex coefficient
    :math:`\langle l_1 m_1 l_2 m_2 | l_3 m_3\rangle` (Racah's formula, exact rationals) in the
    real basis of the spherical harmonics, times the phase :math:`(-i)^{l_1 + l_2 - l_3}` that
    makes it real, divided by :math:`\sqrt{2 l_3 + 1}`: the same numbers as e3nn-jax's
    ``clebsch_gordan`` (signs included). Triples outside the triangle
    :math:`|l_1 - l_2| \le l_3 \le l_1 + l_2` give the zero tensor (e3nn-jax's behaviour).

    Computed once per triple in float64 and cached; the returned array is read-only (copy it
    to modify). Use it as a constant: ``jnp.asarray(clebsch_gordan(1, 1, 2), x.dtype)``.

    Args:
      l1, l2, l3: non-negative ints.

    Returns:
      Read-only float64 NumPy array of shape ``(2 l1 + 1, 2 l2 + 1, 2 l3 + 1)``.

    Raises:
      TypeError, ValueError: naming the argument for a non-int or negative degree.

    Examples:
      >>> import numpy as np
      >>> from geomjax.equivariant import clebsch_gordan
      >>> c = clebsch_gordan(1, 1, 0)
      >>> c.shape, bool(np.allclose(c[..., 0], np.eye(3) / np.sqrt(3)))
      ((3, 3, 1), True)
      >>> cross = clebsch_gordan(1, 1, 1) * np.sqrt(6)  # the cross product
      >>> np.einsum("ijk,i,j->k", cross, [1.0, 0, 0], [0, 1.0, 0]).round(12) + 0.0
      array([0., 0., 1.])
      >>> round(float(np.linalg.norm(clebsch_gordan(2, 3, 4))), 12), bool(clebsch_gordan(1, 1, 3).any())
      (1.0, False)

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
      G. Racah, "Theory of complex spectra. II", Phys. Rev. 62, 438 (1942).
    """
    fn = "clebsch_gordan"
    l1 = _check_degree(fn, "l1", l1)
    l2 = _check_degree(fn, "l2", l2)
    l3 = _check_degree(fn, "l3", l3)
    return _clebsch_gordan(l1, l2, l3)


@functools.cache
def _su2_generators(twice_j: int) -> np.ndarray:
    j = Fraction(twice_j, 2)
    n = twice_j + 1
    ms = [-j + k for k in range(n)]
    jp = np.zeros((n, n))
    for k in range(n - 1):
        m = ms[k]
        jp[k + 1, k] = math.sqrt(float(j * (j + 1) - m * (m + 1)))  # <m+1| J+ |m>
    jm = jp.T
    jx = (jp + jm) / 2
    jy = (jp - jm) / 2j
    jz = np.diag([float(m) for m in ms]).astype(np.complex128)
    return _read_only(np.stack([-1j * jx, -1j * jy, -1j * jz]))


def su2_generators(j) -> np.ndarray:
    r"""Lie algebra generators :math:`X_k = -i J_k` of the spin-:math:`j` representation of
    :math:`SU(2)`, in the standard basis :math:`|j, m\rangle`, :math:`m = -j, \dots, j`.

    .. math::

        J_z = \operatorname{diag}(m), \quad J_\pm |j m\rangle =
        \sqrt{j(j+1) - m(m \pm 1)}\, |j, m \pm 1\rangle, \quad
        [X_x, X_y] = X_z \text{ (cyclic)},

    with :math:`J_x = (J_+ + J_-)/2`, :math:`J_y = (J_+ - J_-)/(2i)` (Condon-Shortley phases);
    :math:`\exp(\theta\, n \cdot X)` is the rotation by :math:`\theta` about :math:`n`.

    Args:
      j: spin, a non-negative integer or half-integer (``0.5``, ``Fraction(3, 2)``).

    Returns:
      Read-only complex128 array of shape ``(3, 2j + 1, 2j + 1)``: ``X_x, X_y, X_z``.

    Raises:
      TypeError, ValueError: naming ``j`` for anything else.

    Examples:
      >>> import numpy as np
      >>> from geomjax.equivariant import su2_generators
      >>> x = su2_generators(0.5)
      >>> x.shape, bool(np.allclose(x[0] @ x[1] - x[1] @ x[0], x[2]))
      ((3, 2, 2), True)

    References:
      D. A. Varshalovich, A. N. Moskalev, V. K. Khersonskii, "Quantum Theory of Angular
      Momentum", World Scientific (1988), Sec. 2.2.
    """
    j = _check_spin("su2_generators", "j", j)
    return _su2_generators(int(2 * j))


@functools.cache
def _so3_generators(l: int) -> np.ndarray:
    x = _su2_generators(2 * l)
    a = _real_from_complex(l)
    # Real axes (x, y, z) are the complex basis' (y, z, x); components transform with D^*.
    out = np.stack([a @ x[k].conj() @ a.conj().T for k in (1, 2, 0)])
    return _read_only(out.real)


def so3_generators(l: int) -> np.ndarray:
    r"""Lie algebra generators :math:`G_x, G_y, G_z` of the degree-:math:`l` real
    representation of :math:`SO(3)`, in e3nn's basis (that of the real spherical harmonics).

    .. math::

        D^l(\exp(\theta\, [n]_\times)) = \exp\big(\theta \textstyle\sum_k n_k G_k\big), \qquad
        [G_x, G_y] = G_z \text{ (cyclic)}, \qquad G_k^\top = -G_k,

    where :math:`[n]_\times` is the cross-product matrix (:math:`G_k` for :math:`l = 1` are
    the standard :math:`(L_k)_{ij} = -\varepsilon_{kij}`). The same matrices as e3nn-jax's
    ``generators(l)``.

    Args:
      l: the degree, a non-negative int.

    Returns:
      Read-only float64 array of shape ``(3, 2l + 1, 2l + 1)``.

    Raises:
      TypeError, ValueError: naming ``l`` for a non-int or negative degree.

    Examples:
      >>> import numpy as np
      >>> from geomjax.equivariant import so3_generators
      >>> so3_generators(1)[0]
      array([[ 0.,  0.,  0.],
             [ 0.,  0., -1.],
             [ 0.,  1.,  0.]])
      >>> g = so3_generators(3)
      >>> bool(np.allclose(g[0] @ g[1] - g[1] @ g[0], g[2]))
      True

    References:
      M. Geiger, T. Smidt, "e3nn: Euclidean Neural Networks", arXiv:2207.09453 (2022).
    """
    l = _check_degree("so3_generators", "l", l)
    return _so3_generators(l)
