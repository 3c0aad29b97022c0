"""Real Clebsch-Gordan coefficients and Lie algebra generators against independent references.

References: sympy's exact complex Clebsch-Gordan coefficients taken to the real basis of the
spherical harmonics (the recipe of issue 16, written out here from the definition of the real
harmonics); invariance under the Wigner matrices of ``wigner_d`` (built by quadrature of the
harmonics, not from these coefficients); e3nn-jax when installed; the commutation relations
and exponentials of the generators against rotation matrices (``scipy.linalg.expm``).
"""

# ruff: noqa: E741 (`l` is the degree of an irrep)
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from geomjax.equivariant import clebsch_gordan, so3_generators, su2_generators, wigner_d
from geomjax.testing import rounding_tolerance

EPS64 = float(np.finfo(np.float64).eps)


def _triples(lmax: int):
    return [
        (l1, l2, l3)
        for l1, l2 in itertools.product(range(lmax + 1), repeat=2)
        for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1)
    ]


def _real_basis(l: int) -> np.ndarray:
    """Rows: the real harmonics Y_{l,m} in terms of the complex Y_l^m (Condon-Shortley):
    m > 0: (Y^-m + (-1)^m Y^m) / sqrt2; m = 0: Y^0; m < 0: i (Y^m - (-1)^m Y^-m) / sqrt2."""
    n = 2 * l + 1
    out = np.zeros((n, n), complex)
    for m in range(-l, l + 1):
        row = out[l + m]
        if m == 0:
            row[l] = 1.0
        elif m > 0:
            row[l - m] += 1 / math.sqrt(2)
            row[l + m] += (-1) ** m / math.sqrt(2)
        else:
            row[l + m] += 1j / math.sqrt(2)
            row[l - m] += -1j * (-1) ** m / math.sqrt(2)
    return out


def _sympy_real_cg(l1: int, l2: int, l3: int) -> np.ndarray:
    """The issue-16 recipe: sympy's exact <l1 m1 l2 m2 | l3 m3>, the change to the real basis
    (the first two factors conjugated: the map u1 (x) u2 -> u3), e3nn's phase (-i)^(l1+l2-l3)
    and unit Frobenius norm (the complex coefficients' squares sum to 2 l3 + 1)."""
    sympy_wigner = pytest.importorskip("sympy.physics.wigner")
    c = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= l3:
                value = sympy_wigner.clebsch_gordan(l1, l2, l3, m1, m2, m1 + m2)
                c[l1 + m1, l2 + m2, l3 + m1 + m2] = float(value.evalf(30))
    a1, a2, a3 = _real_basis(l1), _real_basis(l2), _real_basis(l3)
    real = np.einsum("am,bn,cp,mnp->abc", a1.conj(), a2.conj(), a3, c) * (-1j) ** (l1 + l2 - l3)
    assert np.max(np.abs(real.imag)) < 1e-14
    return real.real / math.sqrt(2 * l3 + 1)


# Each coefficient is one rounding of an exact value (sympy's to float64, ours of an exact
# rational square root); the change of basis sums at most 2 x 2 x 2 = 8 terms of size <= 1/2
# per real entry, in float64 in both references: linear growth over 8 roundings.
_CG_TOL = rounding_tolerance(np.float64, n_ops=8, growth="linear")


def _check_against_sympy(triples):
    worst = 0.0
    for l1, l2, l3 in triples:
        ours = clebsch_gordan(l1, l2, l3)
        ref = _sympy_real_cg(l1, l2, l3)
        err = float(np.max(np.abs(ours - ref)))
        worst = max(worst, err)
        assert err <= _CG_TOL, (l1, l2, l3, err)
    assert worst <= 1e-12  # the stated bound (implied by _CG_TOL = 7.1e-15)
    return worst


def test_cg_matches_sympy_fast_subset():
    """Every triple with l <= 2 (the default run; l <= 6 is the slow test below)."""
    _check_against_sympy(_triples(2))


@pytest.mark.slow
def test_cg_matches_sympy_every_triple_up_to_6():
    _check_against_sympy(_triples(6))


def test_cg_unit_norm_zero_outside_triangle_cached_read_only():
    for l1, l2, l3 in _triples(4):
        c = clebsch_gordan(l1, l2, l3)
        assert c.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1) and c.dtype == np.float64
        # squared norm: sum of (2l1+1)(2l2+1) squares of size <= 1, each rounded once
        assert abs(np.sum(c * c) - 1.0) <= rounding_tolerance(np.float64, n_ops=c.size)
    for l1, l2, l3 in [(1, 1, 3), (0, 2, 1), (3, 1, 1), (2, 2, 5)]:
        c = clebsch_gordan(l1, l2, l3)
        assert c.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1) and not c.any()
    c = clebsch_gordan(2, 1, 2)
    assert c is clebsch_gordan(2, 1, 2)  # functools.cache: built once per triple
    with pytest.raises(ValueError):
        c[0, 0, 0] = 1.0  # read-only


def test_cg_special_values():
    """(1, 1, 0) is the dot product / sqrt(3); (1, 1, 1) is the cross product / sqrt(6);
    (0, l, l) is the identity / sqrt(2l + 1)."""
    np.testing.assert_allclose(clebsch_gordan(1, 1, 0)[..., 0], np.eye(3) / np.sqrt(3), atol=EPS64)
    eps = np.zeros((3, 3, 3))
    for i, j, k in itertools.permutations(range(3)):
        eps[i, j, k] = np.linalg.det(np.eye(3)[[i, j, k]])
    np.testing.assert_allclose(clebsch_gordan(1, 1, 1), eps / np.sqrt(6), atol=EPS64, rtol=0)
    for l in range(5):
        np.testing.assert_allclose(
            clebsch_gordan(0, l, l)[0], np.eye(2 * l + 1) / np.sqrt(2 * l + 1), atol=EPS64, rtol=0
        )


def test_cg_invariant_under_wigner_d(x64):
    """sum D1 D2 D3 C = C for a random rotation, every triple with l <= 6 (float64)."""
    lmax = 6
    rng = np.random.default_rng(3)
    q, r = np.linalg.qr(rng.standard_normal((1, 3, 3)))  # Haar (sign fix), then det +1
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[:, :, 0] *= np.sign(np.linalg.det(q))[:, None]
    all_d = jax.jit(jax.vmap(lambda m: [wigner_d(l, m) for l in range(lmax + 1)]))(jnp.asarray(q))
    ds = {(l, i): np.asarray(all_d[l][i]) for l in range(lmax + 1) for i in range(len(q))}
    for l1, l2, l3 in _triples(lmax):
        c = clebsch_gordan(l1, l2, l3)
        for i in range(len(q)):
            rotated = np.einsum("ia,jb,kc,abc->ijk", ds[l1, i], ds[l2, i], ds[l3, i], c)
            # each entry sums c.size products (random-rounding growth) of Wigner entries that
            # are themselves accurate to ~(2l+1) roundings (degree-l polynomial in R)
            tol = rounding_tolerance(np.float64, n_ops=c.size, cond=2 * max(l1, l2, l3) + 1)
            assert np.linalg.norm(rotated - c) <= tol, (l1, l2, l3)


def test_cg_matches_e3nn():
    e3nn = pytest.importorskip("e3nn_jax")
    for l1, l2, l3 in _triples(4):
        # e3nn builds the same numbers with a float64 Racah sum and complex basis change
        np.testing.assert_allclose(
            clebsch_gordan(l1, l2, l3), np.asarray(e3nn.clebsch_gordan(l1, l2, l3)), atol=_CG_TOL
        )


# -- generators --------------------------------------------------------------------------------


def _levi_civita_generators() -> np.ndarray:
    """(L_k)_{ij} = -eps_{kij}: the rotation generators of R^3."""
    out = np.zeros((3, 3, 3))
    for k, i, j in itertools.permutations(range(3)):
        out[k, i, j] = -np.linalg.det(np.eye(3)[[k, i, j]])
    return out


@pytest.mark.parametrize("l", [0, 1, 2, 5])
def test_so3_generators_algebra_and_l1(l):
    g = so3_generators(l)
    assert g.shape == (3, 2 * l + 1, 2 * l + 1) and g.dtype == np.float64
    tol = rounding_tolerance(np.float64, n_ops=2 * l + 1, cond=max(l * l, 1))  # entries <= l
    for a, b, c in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        assert np.max(np.abs(g[a] @ g[b] - g[b] @ g[a] - g[c])) <= tol
    assert np.max(np.abs(g + np.swapaxes(g, 1, 2))) == 0.0  # antisymmetric
    # Casimir: sum G_k^2 = -l(l + 1) I
    np.testing.assert_allclose(
        np.einsum("kij,kjl->il", g, g), -l * (l + 1) * np.eye(2 * l + 1), atol=tol, rtol=0
    )
    if l == 1:  # the standard generators, up to one rounding of the change of basis
        np.testing.assert_allclose(g, _levi_civita_generators(), atol=EPS64, rtol=0)


def test_so3_generators_exponentiate_to_wigner_d(x64):
    """D^l(expm(theta [n]x)) = expm(theta n.G): the generators and wigner_d (quadrature of the
    harmonics, an independent construction) describe the same representation."""
    ls = (1, 3, 6)
    rng = np.random.default_rng(7)
    n = rng.standard_normal(3)
    n /= np.linalg.norm(n)
    theta = 2.3
    rot = scipy.linalg.expm(theta * np.einsum("k,kij->ij", n, _levi_civita_generators()))
    got = jax.jit(lambda r: [wigner_d(l, r) for l in ls])(jnp.asarray(rot))
    for l, d in zip(ls, got):
        want = scipy.linalg.expm(theta * np.einsum("k,kij->ij", n, so3_generators(l)))
        # expm of an antisymmetric matrix of norm theta * l: Pade error ~ (theta l) eps;
        # wigner_d ~ (2l + 1) roundings; summed over (2l + 1) entries per row
        tol = rounding_tolerance(np.float64, n_ops=2 * l + 1, cond=theta * (2 * l + 1))
        assert np.linalg.norm(np.asarray(d) - want) <= tol * np.sqrt(2 * l + 1), l


@pytest.mark.parametrize("l", [0, 1, 2, 4])
def test_so3_generators_match_e3nn(l):
    e3nn = pytest.importorskip("e3nn_jax")
    np.testing.assert_allclose(so3_generators(l), np.asarray(e3nn.generators(l)), atol=1e-14)


@pytest.mark.parametrize("j", [0, 0.5, 1, 1.5, 3])
def test_su2_generators_algebra(j):
    x = su2_generators(j)
    n = int(round(2 * j)) + 1
    assert x.shape == (3, n, n) and x.dtype == np.complex128
    tol = rounding_tolerance(np.float64, n_ops=n, cond=max(j * j, 1))
    for a, b, c in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        assert np.max(np.abs(x[a] @ x[b] - x[b] @ x[a] - x[c])) <= tol
    np.testing.assert_allclose(x + np.conj(np.swapaxes(x, 1, 2)), 0.0, atol=0)  # anti-Hermitian
    casimir = np.einsum("kij,kjl->il", x, x)
    np.testing.assert_allclose(casimir, -j * (j + 1) * np.eye(n), atol=tol)
    np.testing.assert_allclose(x[2], np.diag(-1j * (np.arange(n) - j)), atol=0)
    if j == 0.5:  # exp(2 pi X_z) = -1 on a spinor
        np.testing.assert_allclose(scipy.linalg.expm(2 * np.pi * x[2]), -np.eye(2), atol=1e-15)


@pytest.mark.parametrize(
    "fn,bad,exc",
    [
        (lambda v: clebsch_gordan(v, 1, 1), -1, ValueError),
        (lambda v: clebsch_gordan(1, v, 1), 1.5, TypeError),
        (lambda v: clebsch_gordan(1, 1, v), True, TypeError),
        (lambda v: so3_generators(v), -2, ValueError),
        (lambda v: so3_generators(v), "1", TypeError),
        (lambda v: su2_generators(v), 0.25, ValueError),
        (lambda v: su2_generators(v), -0.5, ValueError),
        (lambda v: su2_generators(v), "x", TypeError),
    ],
)
def test_bad_degrees(fn, bad, exc):
    with pytest.raises(exc, match="argument `"):
        fn(bad)
