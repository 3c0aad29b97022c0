"""Tensor products: full, channelwise (uvu) and fully connected (uvw).

References: a dense float64 NumPy einsum over ``clebsch_gordan`` path by path (a Python loop,
the textbook definition, against the fused implementation's one contraction per irrep pair),
and e3nn-jax 0.21 elementwise when installed. Equivariance through
``assert_equivariant`` with the ``graph_irreps`` kind under jit, vmap and grad.

Tolerances. float64 against the NumPy reference: each output entry is a sum of at most
``(2l+1)^2 * mul`` products of O(1) numbers, so the rounding difference is below
``1e-14``; ``1e-12`` leaves a 100x margin. float32 against e3nn-jax: both round the same sums
in a different order, about ``sqrt(n) * 6e-8`` relative for ``n <= 100`` terms, i.e. under
``1e-6`` times the output's scale. Equivariance: the two sides differ by the rounding of the
product (above) plus that of the Wigner matrices (float32 orthogonality within ``1e-6`` at
``l <= 16``, see test_wigner), ``<= 3e-6`` relative; ``1e-5`` per op is the issue's bound
(about 3x margin), ``1e-10`` in float64 (the same count times ``1e-16``).
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
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
    clebsch_gordan,
    full_tensor_product,
    fully_connected_tensor_product,
    fully_connected_tensor_product_num_weights,
    init_channelwise_tensor_product,
    init_fully_connected_tensor_product,
)

CASES = [
    ("2x0e + 1o", "0o + 2o"),
    ("3x1o + 2x0e + 1x2e + 1o", "0e + 1o + 2e + 3o"),
    ("1e + 2x2o", "4x1o + 0e"),
]


def _rand(irreps, lead, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(lead + (Irreps(irreps).dim,)).astype(dtype)


def _cg(l1, l2, l3, norm):
    c = np.asarray(clebsch_gordan(l1, l2, l3), np.float64)
    return c * (
        math.sqrt(2 * l3 + 1) if norm == "component" else math.sqrt((2 * l1 + 1) * (2 * l2 + 1))
    )


def _chunks(irreps, x):
    out, i = [], 0
    for mul, ir in irreps:
        out.append(x[..., i : i + mul * ir.dim].reshape(x.shape[:-1] + (mul, ir.dim)))
        i += mul * ir.dim
    return out


def _sorted_concat(entries, lead):
    order = sorted(range(len(entries)), key=lambda n: (entries[n][0]._key(), n))
    irreps = Irreps([(entries[n][1].shape[-2], entries[n][0]) for n in order]).simplify()
    data = np.concatenate([entries[n][1].reshape(lead + (-1,)) for n in order], -1)
    return irreps, data


def ref_full(i1, i2, x1, x2, norm="component", keep=None):
    """Path-by-path float64 NumPy reference of the full tensor product (e3nn-jax's order)."""
    i1, i2 = Irreps(i1), Irreps(i2)
    s1, s2 = i1.sort(), i2.sort()
    x1 = np.concatenate([_chunks(i1, x1)[k].reshape(x1.shape[:-1] + (-1,)) for k in s1.inv], -1)
    x2 = np.concatenate([_chunks(i2, x2)[k].reshape(x2.shape[:-1] + (-1,)) for k in s2.inv], -1)
    i1, i2 = s1.irreps, s2.irreps
    # merge equal neighbours (regroup)
    r1, r2 = i1.simplify(), i2.simplify()
    lead = x1.shape[:-1]
    entries = []
    for (m1, ir1), a in zip(r1, _chunks(r1, x1)):
        for (m2, ir2), b in zip(r2, _chunks(r2, x2)):
            for ir in ir1 * ir2:
                if keep is not None and ir not in keep:
                    continue
                z = np.einsum("...ui,...vj,ijk->...uvk", a, b, _cg(ir1.l, ir2.l, ir.l, norm))
                entries.append((ir, z.reshape(lead + (m1 * m2, ir.dim))))
    return _sorted_concat(entries, lead)


@pytest.mark.parametrize("i1,i2", CASES)
@pytest.mark.parametrize("norm", ["component", "norm"])
def test_full_matches_numpy_reference_float64(i1, i2, norm):
    a, b = _rand(i1, (4,), 0), _rand(i2, (4,), 1)
    with jax.enable_x64(True):
        got = full_tensor_product(IrrepsArray(i1, a), IrrepsArray(i2, b), irrep_normalization=norm)
        irreps, want = ref_full(i1, i2, a, b, norm)
        assert got.irreps == irreps
        np.testing.assert_allclose(
            np.asarray(got.array), want, rtol=0, atol=1e-12 * np.abs(want).max()
        )
        kept = full_tensor_product(IrrepsArray(i1, a), IrrepsArray(i2, b), filter_ir_out="1o + 2e")
        irreps_k, want_k = ref_full(i1, i2, a, b, keep=[Irreps("1o")[0].ir, Irreps("2e")[0].ir])
        assert kept.irreps == irreps_k
        np.testing.assert_allclose(
            np.asarray(kept.array), want_k, atol=1e-12 * max(1, np.abs(want_k).max())
        )


@pytest.mark.slow  # ~10 s: e3nn-jax traces one einsum per path
def test_full_matches_e3nn_jax_float32():
    e3nn = pytest.importorskip("e3nn_jax")
    for i1, i2 in CASES:
        a = _rand(i1, (6,), 2, np.float32)
        b = _rand(i2, (6,), 3, np.float32)
        ref = e3nn.tensor_product(e3nn.IrrepsArray(i1, a), e3nn.IrrepsArray(i2, b))
        got = full_tensor_product(IrrepsArray(i1, a), IrrepsArray(i2, b))
        assert str(got.irreps) == str(ref.irreps)
        scale = float(np.abs(np.asarray(ref.array)).max())
        np.testing.assert_allclose(np.asarray(got.array), np.asarray(ref.array), atol=1e-6 * scale)


def ref_uvu(i1, i2, x1, x2, w, keep=None):
    r1, r2 = Irreps(i1), Irreps(i2)
    lead = x1.shape[:-1]
    entries, k = [], 0
    for (m1, ir1), a in zip(r1, _chunks(r1, x1)):
        for (m2, ir2), b in zip(r2, _chunks(r2, x2)):
            for ir in ir1 * ir2:
                if keep is not None and ir not in keep:
                    continue
                wp = w[..., k : k + m1 * m2].reshape(w.shape[:-1] + (m1, m2))
                k += m1 * m2
                z = np.einsum(
                    "...ui,...vj,ijk,...uv->...uk", a, b, _cg(ir1.l, ir2.l, ir.l, "component"), wp
                )
                entries.append((ir, z / math.sqrt(m2)))
    return _sorted_concat(entries, lead)


@pytest.mark.parametrize("i1,i2", [("4x0e + 3x1o + 2x2e", "0e + 1o + 2e"), ("0e + 2x1o", "2x1o")])
def test_channelwise_matches_numpy_reference_float64(i1, i2):
    irreps_out, n_w = channelwise_tensor_product_irreps(i1, i2)
    a, b, w = (
        _rand(i1, (5,), 0),
        _rand(i2, (5,), 1),
        np.random.default_rng(2).standard_normal((5, n_w)),
    )
    with jax.enable_x64(True):
        got = channelwise_tensor_product(IrrepsArray(i1, a), IrrepsArray(i2, b), w)
    irreps, want = ref_uvu(i1, i2, a, b, w)
    assert got.irreps == irreps == irreps_out
    np.testing.assert_allclose(np.asarray(got.array), want, atol=1e-12 * np.abs(want).max())
    # weights given as a list of pieces (e.g. one per path) are concatenated
    with jax.enable_x64(True):
        got_list = channelwise_tensor_product(
            IrrepsArray(i1, a), IrrepsArray(i2, b), [w[:, :3], w[:, 3:]]
        )
    np.testing.assert_allclose(np.asarray(got_list.array), np.asarray(got.array), rtol=0, atol=0)


def _jacobian_columns(fn, x):
    """Columns ``fn(e_i)`` of a linear map given by a NumPy reference."""
    eye = np.eye(x.shape[-1])
    return np.stack([fn(e) for e in eye], axis=-1)  # (out, in)


def test_derivatives_match_numpy_reference_float64():
    """Reverse mode (grad) and forward mode (jvp) of the full and channelwise products against
    the Jacobians of the path-by-path NumPy references. The products are bilinear, so the
    Jacobian in ``x1`` has columns ``ref(e_i, x2)`` (and likewise in ``x2`` and the weights).
    Tolerance as for the values: 1e-12 times the Jacobian's scale."""
    i1, i2 = "3x1o + 2x0e + 1x2e + 1o", "0e + 1o + 2e + 3o"
    a, b = _rand(i1, (), 0), _rand(i2, (), 1)
    g = np.random.default_rng(3).standard_normal(ref_full(i1, i2, a, b)[1].shape)
    j1 = _jacobian_columns(lambda e: ref_full(i1, i2, e, b)[1], a)
    j2 = _jacobian_columns(lambda e: ref_full(i1, i2, a, e)[1], b)
    ta, tb = _rand(i1, (), 4), _rand(i2, (), 5)
    iu1, iu2 = "4x0e + 3x1o + 2x2e", "0e + 1o + 2e"
    _, n_w = channelwise_tensor_product_irreps(iu1, iu2)
    ua, ub = _rand(iu1, (), 6), _rand(iu2, (), 7)
    w = np.random.default_rng(8).standard_normal(n_w)
    jw = _jacobian_columns(lambda e: ref_uvu(iu1, iu2, ua, ub, e)[1], w)
    ju = _jacobian_columns(lambda e: ref_uvu(iu1, iu2, e, ub, w)[1], ua)
    gu = np.random.default_rng(9).standard_normal(jw.shape[0])
    with jax.enable_x64(True):

        @jax.jit
        def full(x, y):
            return full_tensor_product(IrrepsArray(i1, x), IrrepsArray(i2, y)).array

        @jax.jit
        def uvu(x, y, v):
            return channelwise_tensor_product(IrrepsArray(iu1, x), IrrepsArray(iu2, y), v).array

        d1, d2 = jax.vjp(full, a, b)[1](jnp.asarray(g))
        _, tangent = jax.jvp(full, (a, b), (ta, tb))
        du, _, dw = jax.vjp(uvu, ua, ub, w)[1](jnp.asarray(gu))
        _, tangent_u = jax.jvp(lambda v: uvu(ua, ub, v), (w,), (w,))
    checks = [
        (d1, j1.T @ g),
        (d2, j2.T @ g),
        (tangent, j1 @ ta + j2 @ tb),
        (du, ju.T @ gu),
        (dw, jw.T @ gu),
        (tangent_u, jw @ w),
    ]
    for got, want in checks:
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-12 * np.abs(want).max())


def ref_uvw(i1, i2, io, x1, x2, w, path_norm="element"):
    r1, r2, ro = Irreps(i1), Irreps(i2), Irreps(io)
    lead = x1.shape[:-1]
    outs, k = [], 0
    c1, c2 = _chunks(r1, x1), _chunks(r2, x2)
    for mc, irc in ro:
        paths = [
            (a, b)
            for a, (m1, ir1) in enumerate(r1)
            for b, (m2, ir2) in enumerate(r2)
            if irc in ir1 * ir2
        ]
        fans = [r1[a].mul * r2[b].mul for a, b in paths]
        z = np.zeros(lead + (mc, irc.dim))
        for (a, b), fan in zip(paths, fans):
            alpha = (
                1 / math.sqrt(sum(fans))
                if path_norm == "element"
                else 1 / math.sqrt(len(fans) * fan)
            )
            m1, m2 = r1[a].mul, r2[b].mul
            wp = w[k : k + m1 * m2 * mc].reshape(m1, m2, mc)
            k += m1 * m2 * mc
            cg = _cg(r1[a].ir.l, r2[b].ir.l, irc.l, "component")
            z += alpha * np.einsum("...ui,...vj,ijk,uvw->...wk", c1[a], c2[b], cg, wp)
        outs.append(z.reshape(lead + (-1,)))
    return np.concatenate(outs, -1)


@pytest.mark.parametrize("path_norm", ["element", "path"])
def test_fully_connected_matches_numpy_reference_float64(path_norm):
    i1, i2, io = "2x0e + 2x1o + 1x2e", "0e + 1o", "3x0e + 2x1o + 1x1e + 2x2e + 1x4e"
    n_w = fully_connected_tensor_product_num_weights(i1, i2, io)
    a, b = _rand(i1, (3,), 0), _rand(i2, (3,), 1)
    w = np.random.default_rng(2).standard_normal(n_w)
    with jax.enable_x64(True):
        got = fully_connected_tensor_product(
            IrrepsArray(i1, a), IrrepsArray(i2, b), w, io, path_normalization=path_norm
        )
    want = ref_uvw(i1, i2, io, a, b, w, path_norm)
    np.testing.assert_allclose(np.asarray(got.array), want, atol=1e-12 * np.abs(want).max())
    assert np.all(np.asarray(got.array)[..., -9:] == 0)  # 4e is reached by no path


def _ops(dtype):
    """The three products as functions of (x1, x2) with fixed weights."""
    i1, i2 = "2x0e + 2x1o + 1x2e", "0e + 1o + 2e"
    w_uvu = init_channelwise_tensor_product(jax.random.key(0), i1, i2, dtype=dtype)
    io = "2x0e + 2x0o + 2x1o + 2x1e + 1x2e + 1x2o"
    w_uvw = init_fully_connected_tensor_product(jax.random.key(1), i1, i2, io, dtype=dtype)
    return (
        i1,
        i2,
        {
            "full": lambda x, y: full_tensor_product(x, y),
            "uvu": lambda x, y: channelwise_tensor_product(x, y, w_uvu),
            "uvw": lambda x, y: fully_connected_tensor_product(x, y, w_uvw, io),
        },
    )


@pytest.mark.parametrize(
    "dtype,rtol",
    [(jnp.float32, 1e-5), pytest.param(jnp.float64, 1e-10, marks=pytest.mark.slow)],
)
def test_equivariant_under_jit_vmap_grad(dtype, rtol):
    with jax.enable_x64(dtype == jnp.float64):
        i1, i2, ops = _ops(dtype)
        x = IrrepsArray(i1, jnp.asarray(_rand(i1, (4,), 5), dtype))
        y = IrrepsArray(i2, jnp.asarray(_rand(i2, (4,), 6), dtype))
        for op in ops.values():
            assert_product_equivariant(op, x, y, rtol)


@pytest.mark.slow
def test_vmap_equals_batch_and_broadcasting():
    i1, i2, ops = _ops(jnp.float32)
    x = IrrepsArray(i1, jnp.asarray(_rand(i1, (3,), 7), jnp.float32))
    y = IrrepsArray(i2, jnp.asarray(_rand(i2, (3,), 8), jnp.float32))
    for op in ops.values():
        np.testing.assert_allclose(
            np.asarray(jax.vmap(op)(x, y).array), np.asarray(op(x, y).array), rtol=1e-6, atol=1e-6
        )
    y0 = IrrepsArray(i2, y.array[0])  # broadcasting a single x2 against a batch of x1
    z = full_tensor_product(x, y0)
    assert z.shape[0] == 3


def test_uvu_per_edge_weights_and_errors():
    x = IrrepsArray("2x0e + 1o", jnp.ones((4, 5)))
    y = IrrepsArray("0e + 1o", jnp.ones((4, 4)))
    _, n_w = channelwise_tensor_product_irreps(x.irreps, y.irreps)
    assert channelwise_tensor_product(x, y, jnp.ones((4, n_w))).shape[0] == 4
    with pytest.raises(ValueError, match="weights"):
        channelwise_tensor_product(x, y, jnp.ones((4, n_w + 1)))
    with pytest.raises(TypeError, match="x1"):
        channelwise_tensor_product(x.array, y, jnp.ones(n_w))
    with pytest.raises(ValueError, match="path_normalization"):
        channelwise_tensor_product(x, y, jnp.ones(n_w), path_normalization="bad")
    with pytest.raises(ValueError, match="irrep_normalization"):
        full_tensor_product(x, y, irrep_normalization="bad")
    with pytest.raises(ValueError, match="filter_ir_out"):
        full_tensor_product(x, y, filter_ir_out="nonsense")
    with pytest.raises(ValueError, match="leading"):
        full_tensor_product(x, IrrepsArray("0e", jnp.ones((3, 1))))
