"""Gaunt coefficients and the Gaunt tensor product (sphere grid, dense, CG-completed).

References: ``sympy.physics.wigner.real_gaunt`` (exact rational arithmetic) for the
coefficients, in the same index order; for the product, a float64 NumPy loop over the paths
(channel by channel, path by path, the textbook sum of Gaunt coefficients) against the
library's grid (three matrix products on the sphere) and dense (one stacked contraction)
forms; ``full_tensor_product`` for the odd paths of ``odd_paths="cg"``. The quadrature bound
is checked directly on the grid: exact at ``(ceil((L1+L2+L3+1)/2), L1+L2+L3+1)``, errors of
order one with one latitude or one longitude fewer.

Tolerances. Coefficients: the quadrature sums ``n_lat n_lon <= 200`` products of harmonics of
size ``<= 1`` with positive weights summing to ``4 pi``, so its rounding is below ``200 *
1.1e-16 * 4 pi ~ 3e-13`` in the worst case and about ``1e-15`` in practice; ``1e-12`` is the
issue's bound. Product, float64: each output is a sum of ``<= 10^3`` terms of O(1) (inputs
standard normal, coefficients ``<= 1`` times ``c_l <= sqrt(4 pi)``), rounding ``<= 10^3 *
1e-16 * 10 = 1e-12`` even summed in the worst order (measured ``<= 2e-14``): ``1e-12`` of the
output's scale, the issue's bound. Equivariance: float32 ``1e-5`` relative (round-off of the
grid products, ``sqrt(G) eps ~ 20 * 6e-8``, plus the Wigner matrices' ``1e-6``: the bound of
test_tensor_product), float64 ``1e-10``. Below the bound the error is of the order of the
output itself (``> 1e-2`` relative is asserted; measured ``0.1`` to ``1``).
"""

# ruff: noqa: E741
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _product_equivariance import assert_product_equivariant

from geomjax.equivariant import (
    Irreps,
    IrrepsArray,
    full_tensor_product,
    gaunt_coefficients,
    gaunt_tensor_product,
    spherical_harmonics,
)
from geomjax.equivariant._gaunt import _exact_resolution, _grid
from geomjax.equivariant._spherical_harmonics import _sh_numpy
from geomjax.testing import assert_equivariant


def _rand(irreps, lead, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(lead + (Irreps(irreps).dim,)).astype(dtype)


def _sympy_block(l1, l2, l3):
    wigner = pytest.importorskip("sympy.physics.wigner")
    return np.array(
        [
            [
                [float(wigner.real_gaunt(l1, l2, l3, m1, m2, m3)) for m3 in range(-l3, l3 + 1)]
                for m2 in range(-l2, l2 + 1)
            ]
            for m1 in range(-l1, l1 + 1)
        ]
    )


# -- coefficients ------------------------------------------------------------------------------

QUICK_TRIPLES = [(0, 0, 0), (1, 1, 0), (1, 1, 2), (1, 2, 3), (2, 2, 2), (2, 1, 1), (3, 2, 1)]


@pytest.mark.parametrize("l1,l2,l3", QUICK_TRIPLES + [(4, 2, 4), (3, 3, 6)])
def test_coefficients_equal_sympy_real_gaunt(l1, l2, l3):
    g = gaunt_coefficients(l1, l2, l3)
    assert g.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1) and g.dtype == np.float64
    np.testing.assert_allclose(g, _sympy_block(l1, l2, l3), rtol=0, atol=1e-12)
    assert not g.flags.writeable


@pytest.mark.slow  # about 4 s of sympy
def test_coefficients_equal_sympy_all_triples_up_to_3():
    for l1 in range(4):
        for l2 in range(l1, 4):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1, 2):
                np.testing.assert_allclose(
                    gaunt_coefficients(l1, l2, l3), _sympy_block(l1, l2, l3), rtol=0, atol=1e-12
                )


def test_coefficients_symmetric_and_odd_or_forbidden_blocks_exactly_zero():
    for l1 in range(4):
        for l2 in range(4):
            for l3 in range(7):
                g = gaunt_coefficients(l1, l2, l3)
                if (l1 + l2 + l3) % 2 or not abs(l1 - l2) <= l3 <= l1 + l2:
                    assert np.count_nonzero(g) == 0, (l1, l2, l3)
                else:
                    assert np.count_nonzero(g) > 0
                    np.testing.assert_allclose(
                        g, gaunt_coefficients(l2, l1, l3).transpose(1, 0, 2), atol=1e-15
                    )
                    np.testing.assert_allclose(
                        g, gaunt_coefficients(l1, l3, l2).transpose(0, 2, 1), atol=1e-15
                    )


def test_coefficients_are_the_triple_integral_of_the_library_harmonics():
    """The defining integral, on a fine grid with the public spherical_harmonics (component
    normalization / sqrt(4 pi) = orthonormal): independent of the cached quadrature's size."""
    xyz, w = _grid(12, 24)
    with jax.enable_x64(True):
        y = np.asarray(
            spherical_harmonics(
                [0, 1, 2, 3], jnp.asarray(xyz), normalize=True, normalization="integral"
            ).array
        )
    sl = Irreps("0e + 1o + 2e + 3o").slices()
    for l1, l2, l3 in [(1, 1, 2), (2, 3, 3), (3, 3, 2)]:
        ref = np.einsum("g,gi,gj,gk->ijk", w, y[:, sl[l1]], y[:, sl[l2]], y[:, sl[l3]])
        np.testing.assert_allclose(gaunt_coefficients(l1, l2, l3), ref, atol=1e-12)


@pytest.mark.parametrize("bad,err", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_coefficients_bad_degrees_named(bad, err):
    for name, args in (("l1", (bad, 1, 1)), ("l2", (1, bad, 1)), ("l3", (1, 1, bad))):
        with pytest.raises(err, match=f"`{name}`"):
            gaunt_coefficients(*args)


# -- the product against the loop over paths ---------------------------------------------------


def _c(l, normalization):
    return {
        "component": math.sqrt(4 * math.pi),
        "norm": math.sqrt(4 * math.pi / (2 * l + 1)),
        "integral": 1.0,
    }[normalization]


def _reference(irreps1, x1, irreps2, x2, irreps_out, normalization="component", odd=False):
    """Float64 loop over channels and paths: for every pair of irreps entries (copy c of each;
    a single-channel side broadcasts) and every output entry of the same parity rules, add the
    scaled Gaunt (or, for odd l1 + l2 + l3, component CG) path into copy c of the output."""
    from geomjax.equivariant import clebsch_gordan

    i1, i2, io = Irreps(irreps1), Irreps(irreps2), Irreps(irreps_out)
    c1 = max(m for m, _ in i1)
    c2 = max(m for m, _ in i2)
    lead = np.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    out = np.zeros(lead + (io.dim,))
    s1s, s2s, sos = i1.slices(), i2.slices(), io.slices()
    for (m1, ir1), sl1 in zip(i1, s1s):
        a = x1[..., sl1].reshape(x1.shape[:-1] + (m1, ir1.dim))
        for (m2, ir2), sl2 in zip(i2, s2s):
            b = x2[..., sl2].reshape(x2.shape[:-1] + (m2, ir2.dim))
            for (mo, iro), slo in zip(io, sos):
                l1, l2, l3 = ir1.l, ir2.l, iro.l
                if iro.p != ir1.p * ir2.p or not abs(l1 - l2) <= l3 <= l1 + l2:
                    continue
                if (l1 + l2 + l3) % 2 == 0:
                    t = gaunt_coefficients(l1, l2, l3) * (
                        _c(l1, normalization) * _c(l2, normalization) / _c(l3, normalization)
                    )
                elif odd:
                    t = math.sqrt(2 * l3 + 1) * np.asarray(clebsch_gordan(l1, l2, l3))
                else:
                    continue
                for c in range(mo):
                    ca = c if c1 > 1 else 0
                    cb = c if c2 > 1 else 0
                    if ca >= m1 or cb >= m2:
                        continue
                    z = np.einsum("...i,...j,ijk->...k", a[..., ca, :], b[..., cb, :], t)
                    out[..., slo.start + c * iro.dim : slo.start + (c + 1) * iro.dim] += z
    return out


CASES = [
    ("0e + 1o + 2e", "0e + 1o + 2e"),
    ("0e + 1o + 2e + 3o", "1o + 2e"),
    ("3x0e + 3x1o + 2x2e + 1x1e + 1x0o", "0e + 1o + 1e + 2e"),  # channels x broadcast, parities
    ("2x1o + 2x0e", "2x2e + 1x1e"),  # equal channel counts
    ("1e + 2o", "0o + 1e + 3o"),  # pseudo-functions only
]


@pytest.mark.parametrize("i1,i2", CASES)
@pytest.mark.parametrize("method", ["grid", "dense"])
@pytest.mark.parametrize("odd", [None, "cg"])
def test_product_equals_sum_over_gaunt_coefficients_float64(i1, i2, method, odd):
    with jax.enable_x64(True):
        x1, x2 = _rand(i1, (3,), 1), _rand(i2, (3,), 2)
        z = gaunt_tensor_product(
            IrrepsArray(i1, jnp.asarray(x1)),
            IrrepsArray(i2, jnp.asarray(x2)),
            method=method,
            odd_paths=odd,
        )
        assert z.dtype == jnp.float64
        ref = _reference(i1, x1, i2, x2, z.irreps, odd=odd is not None)
        scale = np.max(np.abs(ref))
        np.testing.assert_allclose(np.asarray(z.array), ref, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_normalizations_and_filters(normalization):
    i1, i2 = "0e + 1o + 2e + 3o", "0e + 1o + 2e"
    with jax.enable_x64(True):
        x1, x2 = _rand(i1, (2,), 3), _rand(i2, (2,), 4)
        a, b = IrrepsArray(i1, jnp.asarray(x1)), IrrepsArray(i2, jnp.asarray(x2))
        full = gaunt_tensor_product(a, b, normalization=normalization)
        assert full.irreps == Irreps("0e + 1o + 2e + 3o + 4e + 5o")
        for kw in (
            {"lmax_out": 2},
            {"filter_ir_out": "1o + 3o"},
            {"lmax_out": 2, "filter_ir_out": "2e + 3o"},
        ):
            z = gaunt_tensor_product(a, b, normalization=normalization, **kw)
            ref = _reference(i1, x1, i2, x2, z.irreps, normalization)
            np.testing.assert_allclose(np.asarray(z.array), ref, atol=1e-12 * np.abs(ref).max())
            np.testing.assert_allclose(
                np.asarray(z.array), np.asarray(full.filter(keep=list(z.irreps)).array), atol=1e-13
            )
        assert gaunt_tensor_product(a, b, lmax_out=2, filter_ir_out="3o").irreps == Irreps("")


def test_component_normalization_multiplies_functions():
    """The coefficients of the pointwise product: a 0e input multiplies, 1o x 1o -> 0e is the
    dot product, and at a point u the product of two harmonics' expansions is the product of
    their values (f1 f2)(u) = sum_l z_l . Y_l(u)."""
    with jax.enable_x64(True):
        x = IrrepsArray("0e + 1o + 2e", jnp.asarray(_rand("0e + 1o + 2e", (), 5)))
        y = IrrepsArray("0e + 1o + 2e", jnp.asarray(_rand("0e + 1o + 2e", (), 6)))
        s = IrrepsArray("0e", jnp.array([3.0]))
        np.testing.assert_allclose(np.asarray(gaunt_tensor_product(s, y).array), 3 * y.array)
        v = x.filter(keep="1o")
        w = y.filter(keep="1o")
        dot = gaunt_tensor_product(v, w, filter_ir_out="0e").array
        np.testing.assert_allclose(np.asarray(dot), [float(jnp.dot(v.array, w.array))], atol=1e-14)
        z = gaunt_tensor_product(x, y)
        u = jax.random.normal(jax.random.key(0), (7, 3), jnp.float64)
        yu = lambda irreps: spherical_harmonics(irreps, u, normalize=True)  # noqa: E731
        f1 = yu(x.irreps).array @ x.array
        f2 = yu(y.irreps).array @ y.array
        f12 = yu(z.irreps).array @ z.array
        np.testing.assert_allclose(np.asarray(f12), np.asarray(f1 * f2), atol=1e-12)


# -- the grid bound ----------------------------------------------------------------------------


@pytest.mark.parametrize("l1,l2,l3", [(1, 1, 2), (2, 2, 2), (3, 2, 3), (2, 2, 4), (4, 4, 4)])
def test_grid_exact_at_the_bound_and_wrong_one_below(l1, l2, l3):
    """The quadrature of Y_{l1} Y_{l2} Y_{l3} (degree l1 + l2 + l3) on the library's grid:
    equal to the Gaunt coefficients at (ceil((S + 1) / 2), S + 1), S = l1 + l2 + l3; off by a
    fraction of the largest coefficient with one latitude or one longitude fewer."""
    ref = _sympy_block(l1, l2, l3) if l1 + l2 + l3 <= 8 else gaunt_coefficients(l1, l2, l3)
    n_lat, n_lon = _exact_resolution(l1, l2, l3)
    s = l1 + l2 + l3
    assert (n_lat, n_lon) == (math.ceil((s + 1) / 2), s + 1)

    def quad(res):
        xyz, w = _grid(*res)
        y = _sh_numpy(max(l1, l2, l3), xyz, "integral")
        return np.einsum("g,gi,gj,gk->ijk", w, y[l1], y[l2], y[l3])

    scale = np.abs(ref).max()
    assert np.abs(quad((n_lat, n_lon)) - ref).max() <= 1e-13
    assert np.abs(quad((n_lat + 2, n_lon + 3)) - ref).max() <= 1e-13  # finer is exact too
    assert np.abs(quad((n_lat - 1, n_lon)) - ref).max() > 1e-2 * scale
    assert np.abs(quad((n_lat, n_lon - 1)) - ref).max() > 1e-2 * scale


def test_resolution_below_bound_raises_and_finer_is_exact():
    with jax.enable_x64(True):
        x = IrrepsArray("0e + 1o + 2e", jnp.asarray(_rand("0e + 1o + 2e", (2,), 7)))
        exact = gaunt_tensor_product(x, x, lmax_out=2)  # L = 2 + 2 + 2: grid (4, 7)
        for bad in ((3, 7), (4, 6), 3):
            with pytest.raises(ValueError, match="`resolution`"):
                gaunt_tensor_product(x, x, lmax_out=2, resolution=bad)
        for bad in ((4,), (4, 0), (4.0, 7), "4x7", (True, 7)):
            with pytest.raises(ValueError, match="`resolution`"):
                gaunt_tensor_product(x, x, resolution=bad)
        for fine in ((4, 7), (9, 16), 12):
            z = gaunt_tensor_product(x, x, lmax_out=2, resolution=fine)
            np.testing.assert_allclose(np.asarray(z.array), np.asarray(exact.array), atol=1e-13)


# -- parity, odd paths, channels ---------------------------------------------------------------


def test_gaunt_only_has_no_odd_paths_and_cg_variant_adds_them():
    with jax.enable_x64(True):
        v = IrrepsArray("1o", jnp.asarray([1.0, 2.0, 3.0]))
        w = IrrepsArray("1o", jnp.asarray([-1.0, 0.5, 2.0]))
        g = gaunt_tensor_product(v, w)
        assert g.irreps == Irreps("0e + 2e")  # no 1e: the cross product is an odd path
        assert gaunt_tensor_product(v, w, filter_ir_out="1e").irreps == Irreps("")
        # symmetric: f1 f2 = f2 f1 (the antisymmetric part is exactly what is missing)
        np.testing.assert_array_equal(
            np.asarray(g.array), np.asarray(gaunt_tensor_product(w, v).array)
        )
        c = gaunt_tensor_product(v, w, odd_paths="cg")
        assert c.irreps == Irreps("0e + 1e + 2e")
        cross = full_tensor_product(v, w, filter_ir_out="1e").array
        np.testing.assert_allclose(
            np.asarray(c.filter(keep="1e").array), np.asarray(cross), atol=1e-14
        )
        assert np.allclose(np.asarray(cross), np.cross(v.array, w.array) / math.sqrt(2))
        np.testing.assert_array_equal(np.asarray(c.filter(drop="1e").array), np.asarray(g.array))


def test_odd_path_outputs_exactly_zero():
    """Irreps only odd paths reach are absent from the Gaunt-only product (never computed:
    no round-off); in the twist bookkeeping a pair of ordinary functions never feeds a
    pseudo-function, so e.g. 0o, 1e, 2o of (0e + 1o + 2e) x (0e + 1o + 2e) are absent, and
    with ``odd_paths="cg"`` they are the CG product's values."""
    with jax.enable_x64(True):
        i = "0e + 1o + 2e"
        x = IrrepsArray(i, jnp.asarray(_rand(i, (4,), 8)))
        y = IrrepsArray(i, jnp.asarray(_rand(i, (4,), 9)))
        odd_irs = "0o + 1e + 2o + 3e"
        for method in ("grid", "dense"):
            assert gaunt_tensor_product(
                x, y, method=method, filter_ir_out=odd_irs
            ).irreps == Irreps("")
            z = gaunt_tensor_product(x, y, method=method, odd_paths="cg", filter_ir_out=odd_irs)
            ref = full_tensor_product(x, y, filter_ir_out=odd_irs).regroup()
            # the CG product keeps each path apart: sum the copies of each irrep
            summed = np.concatenate([np.asarray(ch).sum(-2) for ch in ref.chunks], axis=-1)
            assert z.irreps == Irreps([(1, ir) for _, ir in ref.irreps])
            np.testing.assert_allclose(np.asarray(z.array), summed, atol=1e-13)
        # an irrep both kinds reach: 1e from the Gaunt path 0e x 1e and the odd path 1o x 1o
        a = IrrepsArray("0e + 1o", jnp.asarray(_rand("0e + 1o", (), 10)))
        b = IrrepsArray("1o + 1e", jnp.asarray(_rand("1o + 1e", (), 11)))
        only = gaunt_tensor_product(a, b, filter_ir_out="1e")
        both = gaunt_tensor_product(a, b, filter_ir_out="1e", odd_paths="cg")
        b1e = b.filter(keep="1e").array
        np.testing.assert_allclose(np.asarray(only.array), np.asarray(a.array[0] * b1e), atol=1e-15)
        cg = full_tensor_product(a.filter(keep="1o"), b.filter(keep="1o"), filter_ir_out="1e")
        np.testing.assert_allclose(
            np.asarray(both.array - only.array), np.asarray(cg.array), atol=1e-14
        )


def test_channels_broadcast_and_mismatch_raises():
    with jax.enable_x64(True):
        x = IrrepsArray("3x0e + 3x1o + 3x2e", jnp.asarray(_rand("3x0e + 3x1o + 3x2e", (2,), 12)))
        y = IrrepsArray("0e + 1o + 2e", jnp.asarray(_rand("0e + 1o + 2e", (2,), 13)))
        z = gaunt_tensor_product(x, y)
        assert z.irreps == Irreps("3x0e + 3x1o + 3x2e + 3x3o + 3x4e")
        single = jax.jit(gaunt_tensor_product)  # one compile for the three channels
        for c in range(3):
            parts = [ch[..., c, :] for ch in x.chunks]
            xc = IrrepsArray("0e + 1o + 2e", jnp.concatenate(parts, -1))
            zc = single(xc, y)
            got = jnp.concatenate([ch[..., c, :] for ch in z.chunks], -1)
            np.testing.assert_allclose(np.asarray(got), np.asarray(zc.array), atol=1e-14)
        # the same with the single-channel side first, and leading-axis broadcasting
        z2 = gaunt_tensor_product(y[:1], x)
        np.testing.assert_allclose(
            np.asarray(z2.array[0]), np.asarray(gaunt_tensor_product(y[0], x[0]).array), atol=1e-14
        )
        bad = IrrepsArray("2x0e + 2x1o", jnp.ones((2, 8)))
        with pytest.raises(ValueError, match="`x1` and `x2`"):
            gaunt_tensor_product(x, bad)


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"method": "fft"}, "method"),
        ({"normalization": "Component"}, "normalization"),
        ({"odd_paths": "vector"}, "odd_paths"),
        ({"lmax_out": -1}, "lmax_out"),
        ({"lmax_out": 1.5}, "lmax_out"),
        ({"filter_ir_out": "nonsense"}, "filter_ir_out"),
    ],
)
def test_bad_options_named(kw, name):
    x = IrrepsArray("0e + 1o", jnp.ones(4))
    with pytest.raises(ValueError, match=f"`{name}`"):
        gaunt_tensor_product(x, x, **kw)


def test_bad_inputs_named():
    x = IrrepsArray("0e + 1o", jnp.ones(4))
    with pytest.raises(TypeError, match="`x1`"):
        gaunt_tensor_product(jnp.ones(4), x)
    with pytest.raises(TypeError, match="`x2`"):
        gaunt_tensor_product(x, "1o")
    with pytest.raises(ValueError, match="`x1` and `x2`"):
        gaunt_tensor_product(
            IrrepsArray("0e + 1o", jnp.ones((2, 4))), IrrepsArray("0e", jnp.ones((3, 1)))
        )


# -- equivariance and gradients ----------------------------------------------------------------

EQ_I1, EQ_I2 = "2x0e + 2x1o + 2x2e + 1x1e", "0e + 1o + 2e"


def _variants(dense=True):
    out = {
        "grid": lambda x, y: gaunt_tensor_product(x, y),
        "grid-cg": lambda x, y: gaunt_tensor_product(x, y, odd_paths="cg"),
        "grid-bracket": lambda x, y: gaunt_tensor_product(x, y, odd_paths="grid"),
    }
    if dense:
        out["dense"] = lambda x, y: gaunt_tensor_product(x, y, method="dense")
    return out


@pytest.mark.slow  # about 6 s (most of it assert_equivariant building the Wigner matrices)
def test_equivariant_quick():
    """The default product under jit and vmap, float32, one reflection and one rotation."""
    x = IrrepsArray(EQ_I1, jnp.asarray(_rand(EQ_I1, (4,), 14), jnp.float32))
    y = IrrepsArray(EQ_I2, jnp.asarray(_rand(EQ_I2, (4,), 15), jnp.float32))
    err = assert_equivariant(
        jax.jit(jax.vmap(gaunt_tensor_product)),
        jax.random.key(1),
        (x, y),
        in_kinds=("irreps",) * 2,
        out_kinds="irreps",
        group="O3",
        n_trials=2,
        rtol=1e-5,
    )
    assert err <= 1e-5


@pytest.mark.slow  # about 10 s per dtype (three variants, products and gradients, compiled)
@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_equivariant_under_jit_vmap_grad(dtype, rtol):
    with jax.enable_x64(dtype == jnp.float64):
        x = IrrepsArray(EQ_I1, jnp.asarray(_rand(EQ_I1, (4,), 14), dtype))
        y = IrrepsArray(EQ_I2, jnp.asarray(_rand(EQ_I2, (4,), 15), dtype))
        for op in _variants().values():
            assert_product_equivariant(op, x, y, rtol, kind="irreps", permute=True)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_gradients_at_zero(dtype):
    with jax.enable_x64(dtype == jnp.float64), jax.debug_nans(True):
        zero = IrrepsArray(EQ_I1, jnp.zeros(Irreps(EQ_I1).dim, dtype))
        y = IrrepsArray(EQ_I2, jnp.asarray(_rand(EQ_I2, (), 16), dtype))
        for name, op in _variants(dense=False).items():
            g = jax.jit(jax.grad(lambda a, b, op=op: jnp.sum(op(a, b).array ** 2), (0, 1)))(zero, y)
            assert all(np.all(np.isfinite(np.asarray(t.array))) for t in g), name


@pytest.mark.slow  # about 4 s: forward- and reverse-mode Jacobians compiled in float64
def test_jacobians_match_reference():
    with jax.enable_x64(True):
        y = IrrepsArray(EQ_I2, jnp.asarray(_rand(EQ_I2, (), 16)))
        x = IrrepsArray(EQ_I1, jnp.asarray(_rand(EQ_I1, (), 17)))
        irreps_out = gaunt_tensor_product(x, y).irreps
        jac = jax.jit(jax.jacfwd(lambda a: gaunt_tensor_product(IrrepsArray(EQ_I1, a), y).array))(
            x.array
        )
        # bilinear: the Jacobian in x1 is the product with unit vectors
        eye = np.eye(Irreps(EQ_I1).dim)
        ref = _reference(EQ_I1, eye, EQ_I2, np.asarray(y.array)[None], irreps_out).T
        np.testing.assert_allclose(np.asarray(jac), ref, atol=1e-12)
        jac_rev = jax.jit(
            jax.jacrev(lambda a: gaunt_tensor_product(IrrepsArray(EQ_I1, a), y).array)
        )(x.array)
        np.testing.assert_allclose(np.asarray(jac_rev), ref, atol=1e-12)


def test_float32_close_to_float64():
    """The default float32 product within float32 round-off of the float64 loop."""
    x64, y64 = _rand(EQ_I1, (8,), 18), _rand(EQ_I2, (8,), 19)
    z32 = gaunt_tensor_product(
        IrrepsArray(EQ_I1, jnp.asarray(x64, jnp.float32)),
        IrrepsArray(EQ_I2, jnp.asarray(y64, jnp.float32)),
    )
    assert z32.dtype == jnp.float32
    ref = _reference(EQ_I1, x64, EQ_I2, y64, z32.irreps)
    np.testing.assert_allclose(np.asarray(z32.array), ref, atol=1e-5 * np.abs(ref).max())


def test_irrep_parities_follow_p1_p2():
    """1e x 1o -> 0o, 2o (parity -1) and 2o x 1o -> 1e, 3e (parity +1): (l3, p1 p2)."""
    z = gaunt_tensor_product(IrrepsArray("1e + 2o", jnp.ones(8)), IrrepsArray("1o", jnp.ones(3)))
    assert z.irreps == Irreps("0o + 1e + 2o + 3e")


@pytest.mark.slow  # 8-15 s: importing e3nn-jax and compiling its grid transforms
@pytest.mark.parametrize("lmax", [2, 3])
def test_matches_e3nn_jax_s2grid_recipe(lmax):
    """e3nn-jax 0.21's to_s2grid / product / from_s2grid on the same Gauss-Legendre grid (its
    ``normalization="integral"`` harmonics have Y_0 = 1, our ``"component"``; its FFT needs an
    odd longitude count): the same numbers, float64."""
    e3nn = pytest.importorskip("e3nn_jax")
    irr = str(Irreps.spherical_harmonics(lmax))
    with jax.enable_x64(True):
        a, b = jnp.asarray(_rand(irr, (3,), 20)), jnp.asarray(_rand(irr, (3,), 21))
        ours = gaunt_tensor_product(IrrepsArray(irr, a), IrrepsArray(irr, b), lmax_out=lmax)
        n_lat, n_lon = _exact_resolution(lmax, lmax, lmax)
        n_lon += n_lon % 2 == 0
        kw = dict(quadrature="gausslegendre", normalization="integral")

        @jax.jit
        def recipe(a, b):
            f1 = e3nn.to_s2grid(e3nn.IrrepsArray(irr, a), n_lat, n_lon, **kw)
            f2 = e3nn.to_s2grid(e3nn.IrrepsArray(irr, b), n_lat, n_lon, **kw)
            return e3nn.from_s2grid(
                f1 * f2, e3nn.Irreps(irr), normalization="integral", lmax_in=2 * lmax
            )

        with jax.debug_nans(False):  # e3nn-jax's grid code takes sqrt of tiny negatives
            theirs = recipe(a, b)
        assert str(theirs.irreps) == str(ours.irreps)
        np.testing.assert_allclose(
            np.asarray(ours.array), np.asarray(theirs.array), atol=1e-12 * np.abs(ours.array).max()
        )


# -- the Poisson-bracket completion (odd_paths="grid") -----------------------------------------


@pytest.mark.slow  # about 7 s (autodiff of the harmonics, eager, float64)
def test_bracket_completion_is_the_poisson_bracket_of_the_functions():
    """At random points u the odd output's expansion equals u . (grad F1 x grad F2), the
    gradients taken by autodiff of the public spherical harmonics' polynomials (independent of
    the grid constants); 1o x 1o -> 1e is sqrt(3) a x b; the even part is the Gaunt product."""
    with jax.enable_x64(True):
        i1, i2 = "0e + 1o + 2e + 3o", "1o + 2e"
        x1, x2 = jnp.asarray(_rand(i1, (), 22)), jnp.asarray(_rand(i2, (), 23))
        a, b = IrrepsArray(i1, x1), IrrepsArray(i2, x2)
        z = gaunt_tensor_product(a, b, odd_paths="grid")
        odd = z.filter(keep=[ir for _, ir in z.irreps if ir.p != (-1) ** ir.l])
        even = z.filter(keep=[ir for _, ir in z.irreps if ir.p == (-1) ** ir.l])
        np.testing.assert_array_equal(
            np.asarray(even.array), np.asarray(gaunt_tensor_product(a, b).array)
        )

        def poly(irreps, x):
            return lambda r: spherical_harmonics(irreps, r, normalize=False).array @ x

        u = jax.random.normal(jax.random.key(3), (6, 3), jnp.float64)
        u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
        g1 = jax.vmap(jax.grad(poly(a.irreps, x1)))(u)
        g2 = jax.vmap(jax.grad(poly(b.irreps, x2)))(u)
        bracket = jnp.sum(u * jnp.cross(g1, g2), axis=-1)
        ls = [ir.l for _, ir in odd.irreps]  # pseudo-functions: expanded in the ordinary Y_l
        expansion = spherical_harmonics(ls, u, normalize=True).array @ odd.array
        np.testing.assert_allclose(np.asarray(expansion), np.asarray(bracket), atol=1e-11)
        v = IrrepsArray("1o", jnp.asarray([1.0, 2.0, 3.0]))
        w = IrrepsArray("1o", jnp.asarray([-1.0, 0.5, 2.0]))
        cross = gaunt_tensor_product(v, w, odd_paths="grid").filter(keep="1e").array
        np.testing.assert_allclose(
            np.asarray(cross), math.sqrt(3) * np.cross(v.array, w.array), atol=1e-14
        )


def test_bracket_paths_are_nonzero_multiples_of_cg():
    """Every odd triangle path (l <= 4) is reached, each a nonzero multiple of the CG path
    (Wigner-Eckart), so the bracket completion has exactly the CG completion's paths."""
    from geomjax.equivariant import clebsch_gordan
    from geomjax.equivariant._gaunt import _bracket

    for l1 in range(5):
        for l2 in range(5):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                t = _bracket(l1, l2, l3)
                if (l1 + l2 + l3) % 2 == 0:
                    assert np.count_nonzero(t) == 0
                    continue
                c = np.asarray(clebsch_gordan(l1, l2, l3))
                f = np.sum(t * c) / np.sum(c * c)
                assert abs(f) > 0.5, (l1, l2, l3, f)
                np.testing.assert_allclose(t, f * c, atol=1e-12)


@pytest.mark.parametrize("i1,i2", CASES[1:4])
def test_bracket_grid_equals_dense_float64(i1, i2):
    with jax.enable_x64(True):
        a = IrrepsArray(i1, jnp.asarray(_rand(i1, (3,), 24)))
        b = IrrepsArray(i2, jnp.asarray(_rand(i2, (3,), 25)))
        g = gaunt_tensor_product(a, b, odd_paths="grid")
        d = gaunt_tensor_product(a, b, odd_paths="grid", method="dense")
        c = gaunt_tensor_product(a, b, odd_paths="cg")
        assert g.irreps == d.irreps == c.irreps
        scale = np.abs(np.asarray(d.array)).max()
        np.testing.assert_allclose(np.asarray(g.array), np.asarray(d.array), atol=1e-12 * scale)


@pytest.mark.parametrize(
    "i1,i2,lmax_out,grid",
    [
        ("0e + 1o + 2e + 3o + 4e", "0e + 1o + 2e + 3o + 4e", None, (9, 17)),  # equator row
        ("2x1o + 2x2e + 2x3o + 1x4e + 1x3e", "0e + 1o + 2e + 3o + 1e", 7, (8, 15)),  # none
    ],
)
@pytest.mark.slow  # 3-6 s per case (the float64 loop reference and the dense bracket tensor)
def test_north_south_split_grids_equal_sum(i1, i2, lmax_out, grid):
    """Grids of >= 7 latitudes are evaluated by the north-south symmetry of the harmonics
    (half the products): still the sum over the Gaunt coefficients to 1e-12, with and
    without an equator row, pseudo-functions and channels included."""
    from geomjax.equivariant._gaunt import _SPLIT_MIN_LAT

    with jax.enable_x64(True):
        x1, x2 = _rand(i1, (2,), 26), _rand(i2, (2,), 27)
        a, b = IrrepsArray(i1, jnp.asarray(x1)), IrrepsArray(i2, jnp.asarray(x2))
        l3 = max(Irreps(i1).lmax + Irreps(i2).lmax, 0) if lmax_out is None else lmax_out
        assert _exact_resolution(Irreps(i1).lmax, Irreps(i2).lmax, l3) == grid
        assert grid[0] >= _SPLIT_MIN_LAT
        z = gaunt_tensor_product(a, b, lmax_out=lmax_out)
        ref = _reference(i1, x1, i2, x2, z.irreps)
        np.testing.assert_allclose(np.asarray(z.array), ref, atol=1e-12 * np.abs(ref).max())
        for odd in ("grid",):
            g = gaunt_tensor_product(a, b, lmax_out=lmax_out, odd_paths=odd)
            d = gaunt_tensor_product(a, b, lmax_out=lmax_out, odd_paths=odd, method="dense")
            scale = np.abs(np.asarray(d.array)).max()
            np.testing.assert_allclose(np.asarray(g.array), np.asarray(d.array), atol=1e-12 * scale)
