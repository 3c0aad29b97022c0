"""SO(2) (eSCN) convolution against the channelwise Clebsch-Gordan convolution.

References: ``channelwise_tensor_product(x, spherical_harmonics(edge), w)`` (dense CG paths in
the original frame, no rotation) for the mapped weights of ``channelwise_to_so2_weights``; for
``m_max`` truncation, a second route: the full Wigner matrices of ``wigner_d`` (quadrature, not
the closed-form y-rotations) of a Gram-Schmidt frame with a random roll, the CG product with
``Y(e_y)`` in that frame, components ``|m| > m_max`` zeroed, rotated back. Roll independence:
the same edges with an extra rotation about the edge in the frame.

Tolerances. float64: each output is a sum of at most a few hundred products of O(1) numbers
through two rotations (orthogonal, entries <= 1, products of <= 13 terms), rounding
``<= 1e3 * 1.1e-16 ~ 1e-13`` of the output's scale (measured ``<= 1e-13``): ``1e-12``, the
issue's bound. float32: the same count times ``6e-8`` gives ``~6e-6`` worst case, ``~5e-7``
in practice; ``1e-5`` relative to the output's largest entry, the issue's bound.
Equivariance: both evaluations carry that rounding plus the float32 Wigner matrices of the
checker (``1e-6``, test_wigner): ``1e-5`` float32, ``1e-10`` float64 (the count times 1e-16
with margin). Gradients at the polar axis: the frame of edges within 45 degrees of it is the
chart singular on the x axis, so derivatives are exact there (compared with the CG gradient at
the same tolerances).
"""

# ruff: noqa: E741
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import (
    Irreps,
    IrrepsArray,
    channelwise_tensor_product,
    channelwise_tensor_product_irreps,
    channelwise_to_so2_weights,
    init_so2_convolution,
    so2_convolution,
    so2_convolution_num_weights,
    spherical_harmonics,
    wigner_d,
)
from geomjax.equivariant._so2_conv import _inputs, _so2_core
from geomjax.testing import assert_equivariant

CASES = [
    ("3x0e + 3x1o + 3x2e", 2, None),
    pytest.param(
        "2x0e + 2x1o + 2x1e + 2x2e + 2x3o",
        3,
        "0e + 1o + 1e + 2e + 2o + 3o",
        marks=pytest.mark.slow,  # about 8 s per dtype (compilation)
    ),
    pytest.param("2x0o + 2x1e", "0e + 2e + 3o", None, marks=pytest.mark.slow),
]

# along +y, -y, a tiny -y, +x, near the chart boundary (|y| = 1/sqrt 2 +- 1e-7), random
SPECIAL = np.array(
    [
        [0.0, 2.0, 0.0],
        [0.0, -1.0, 0.0],
        [0.0, -1e-3, 0.0],
        [1.0, 0.0, 0.0],
        [0.5, 1 / np.sqrt(2) + 1e-7, 0.5],
        [0.5, -1 / np.sqrt(2) + 1e-7, -0.5],
    ]
)


def _sh_irreps(sh):
    if isinstance(sh, int):
        return "+".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in range(sh + 1))
    return sh


def _edges(n, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([SPECIAL, rng.standard_normal((n, 3))])


def _problem(irreps, sh, filt, seed, dtype):
    rng = np.random.default_rng(seed)
    r = _edges(4, seed)
    e = r.shape[0]
    x = IrrepsArray(irreps, jnp.asarray(rng.standard_normal((e, Irreps(irreps).dim)), dtype))
    _, n_w = channelwise_tensor_product_irreps(x.irreps, _sh_irreps(sh), filter_ir_out=filt)
    w = jnp.asarray(rng.standard_normal((e, n_w)), dtype)
    return x, jnp.asarray(r, dtype), w


@pytest.mark.parametrize("dtype,tol", [(jnp.float64, 1e-12), (jnp.float32, 1e-5)])
@pytest.mark.parametrize("irreps,sh,filt", CASES)
def test_equals_channelwise_cg_convolution(irreps, sh, filt, dtype, tol):
    with jax.enable_x64(dtype == jnp.float64):
        x, r, w = _problem(irreps, sh, filt, 0, dtype)
        ys = spherical_harmonics(_sh_irreps(sh), r, normalize=True)
        cg = channelwise_tensor_product(x, ys, w, filter_ir_out=filt)
        w2, irreps_out = channelwise_to_so2_weights(w, x.irreps, _sh_irreps(sh), filter_ir_out=filt)
        assert irreps_out == cg.irreps and w2.dtype == dtype
        out = jax.jit(lambda a, b, c: so2_convolution(a, b, c, irreps_out=irreps_out).array)(
            x, r, w2
        )
        assert out.dtype == dtype
        scale = float(jnp.max(jnp.abs(cg.array)))
        np.testing.assert_allclose(out, cg.array, rtol=0, atol=tol * scale)


def _gram_schmidt_frame(r, rng):
    """A rotation R (float64) with R r_hat = e_y and a random roll, by Gram-Schmidt."""
    u = r / np.linalg.norm(r)
    a = rng.standard_normal(3)
    a -= a.dot(u) * u
    a /= np.linalg.norm(a)
    b = np.cross(a, u)
    R = np.stack([a, u, b])  # rows: R u = e_y
    return R if np.linalg.det(R) > 0 else np.stack([b, u, a])


@pytest.mark.slow  # about 5-14 s per m_max (the vmapped Wigner-D reference compiles)
@pytest.mark.parametrize("m_max", [0, 1, 2])
def test_m_max_truncation_against_wigner_route(m_max):
    """Truncated output = D^T P_{|m| <= m_max} CG(D x, Y(e_y)) with quadrature Wigner matrices
    of an independent frame (random roll): also checks the closed-form rotations."""
    irreps, sh = "2x0e + 2x1o + 2x2e + 2x3o", 3
    with jax.enable_x64(True):
        x, r, w = _problem(irreps, sh, None, 3, jnp.float64)
        w2, irreps_out = channelwise_to_so2_weights(w, x.irreps, _sh_irreps(sh), m_max=m_max)
        out = so2_convolution(x, r, w2, irreps_out=irreps_out, m_max=m_max).array
        rng = np.random.default_rng(5)
        y_pole = spherical_harmonics(_sh_irreps(sh), jnp.array([0.0, 1.0, 0.0]), True)
        frames = jnp.asarray(np.stack([_gram_schmidt_frame(np.asarray(v), rng) for v in r]))
        u = r / jnp.linalg.norm(r, axis=-1, keepdims=True)
        np.testing.assert_allclose(jax.vmap(lambda R, v: wigner_d(1, R) @ v)(frames, u)[:, 1], 1.0)

        def ref(R, xe, we):
            xr = IrrepsArray(x.irreps, x.irreps.D_from_matrix(R) @ xe)
            z = channelwise_tensor_product(xr, y_pole, we)
            keep = np.concatenate(
                [np.tile(np.abs(np.arange(-ir.l, ir.l + 1)) <= m_max, mul) for mul, ir in z.irreps]
            )
            return z.irreps.D_from_matrix(R).T @ jnp.where(jnp.asarray(keep), z.array, 0.0)

        expected = jax.jit(jax.vmap(ref))(frames, x.array, w)
        scale = float(jnp.max(jnp.abs(expected)))
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12 * scale)


def test_independent_of_the_roll():
    """An extra rotation about the edge in the frame (R_e -> R_y(gamma) R_e) changes nothing."""
    irreps = "2x0e + 2x1o + 2x1e + 2x2e + 2x3o"
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        r = jnp.asarray(_edges(6, 7))
        x = IrrepsArray(irreps, jnp.asarray(rng.standard_normal((r.shape[0], 38))))
        w = init_so2_convolution(jax.random.key(0), x.irreps, 3, dtype=jnp.float64)
        plan, xa, e, wb = _inputs("test", x, r, w, 3, None)
        base = _so2_core(plan, xa, e, wb)
        for gamma in rng.uniform(0, 2 * np.pi, 3):
            g = jnp.full(r.shape[0], gamma)
            rolled = _so2_core(plan, xa, e, wb, roll=(jnp.cos(g), jnp.sin(g)))
            np.testing.assert_allclose(
                rolled, base, rtol=0, atol=1e-12 * float(jnp.abs(base).max())
            )


@pytest.mark.slow  # about 10 s per dtype (forward and gradient, compiled, 2 trials each)
@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_equivariant_under_jit_vmap_grad(dtype, rtol):
    irreps = "2x0e + 2x0o + 2x1o + 2x1e + 2x2e"
    irreps_out = "2x0e + 4x1o + 2x1e + 2x2o + 2x3o"
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(11)
        r = jnp.asarray(rng.standard_normal((5, 3)), dtype)
        x = IrrepsArray(irreps, jnp.asarray(rng.standard_normal((5, Irreps(irreps).dim)), dtype))
        n_w = so2_convolution_num_weights(irreps, irreps_out)
        w = jnp.asarray(rng.standard_normal((5, n_w)) / 3, dtype)

        def op(a, b, c):
            return so2_convolution(a, b, c, irreps_out=irreps_out)

        err = assert_equivariant(
            jax.jit(jax.vmap(op)),
            jax.random.key(1),
            (x, r, w),
            in_kinds=("irreps", "vector", "scalar"),
            out_kinds="irreps",
            group="O3",
            permute=True,
            n_trials=2,
            rtol=rtol,
        )
        assert err <= rtol

        def grads(a, b, c):  # gradients of an invariant: transform like x and like the edges
            return jax.grad(lambda u, v: jnp.sum(op(u, v, c).array ** 2), argnums=(0, 1))(a, b)

        err = assert_equivariant(
            jax.jit(grads),
            jax.random.key(2),
            (x, r, w),
            in_kinds=("graph_irreps", "graph_vector", "graph_scalar"),
            out_kinds=("graph_irreps", "graph_vector"),
            group="O3",
            n_trials=2,
            rtol=rtol,
        )
        assert err <= rtol


@pytest.mark.slow  # about 20 s per dtype (the mapping and the CG gradient, eager)
@pytest.mark.parametrize("dtype,tol", [(jnp.float64, 1e-12), (jnp.float32, 1e-5)])
def test_finite_and_exact_gradients_on_the_polar_axis_and_at_zero(dtype, tol):
    """Edges along +y, -y (values, gradients w.r.t. features, edges, weights) are finite and
    equal the CG convolution's gradients; a zero-length edge is finite (treated as +y)."""
    irreps, sh = "2x0e + 2x1o + 2x2e", 2
    with jax.enable_x64(dtype == jnp.float64), jax.debug_nans(True):
        rng = np.random.default_rng(13)
        r = jnp.asarray([[0.0, 1.5, 0.0], [0.0, -0.7, 0.0], [0.0, 0.0, 0.0]], dtype)
        x = IrrepsArray(irreps, jnp.asarray(rng.standard_normal((3, 18)), dtype))
        _, n_w = channelwise_tensor_product_irreps(x.irreps, _sh_irreps(sh))
        w = jnp.asarray(rng.standard_normal((3, n_w)), dtype)
        c = jnp.asarray(
            rng.standard_normal(
                3 * channelwise_tensor_product_irreps(x.irreps, _sh_irreps(sh))[0].dim
            ),
            dtype,
        ).reshape(3, -1)

        def so2(a, b, ww):
            w2, io = channelwise_to_so2_weights(ww, x.irreps, _sh_irreps(sh))
            return jnp.sum(
                c * so2_convolution(IrrepsArray(x.irreps, a), b, w2, irreps_out=io).array
            )

        def cg(a, b, ww):
            ys = spherical_harmonics(_sh_irreps(sh), b, normalize=True)
            return jnp.sum(c * channelwise_tensor_product(IrrepsArray(x.irreps, a), ys, ww).array)

        g_so2 = jax.jit(jax.grad(so2, argnums=(0, 1, 2)))(x.array, r, w)
        g_cg = jax.grad(cg, argnums=(0, 1, 2))(x.array, r, w)
        for a, b in zip(g_so2, g_cg):
            assert bool(jnp.all(jnp.isfinite(a)))
            scale = float(jnp.max(jnp.abs(b[:2])))
            np.testing.assert_allclose(a[:2], b[:2], rtol=0, atol=tol * scale)


def test_zero_length_edge_is_the_plus_y_edge():
    x = IrrepsArray("2x0e + 2x1o", jnp.arange(8.0) / 8)
    w = init_so2_convolution(jax.random.key(0), x.irreps, 1)
    z0 = so2_convolution(x, jnp.zeros(3), w, irreps_out=1).array
    zy = so2_convolution(x, jnp.array([0.0, 1.0, 0.0]), w, irreps_out=1).array
    np.testing.assert_allclose(z0, zy, rtol=0, atol=1e-6)


def test_num_weights_layout_and_init():
    # m=0: (0e,1o) signature +1 inputs x rows; m=1: 1o -> 1o. C = 4.
    assert so2_convolution_num_weights("4x0e + 4x1o", 1) == (2 * 2 + 1 * 1) * 4
    assert so2_convolution_num_weights("4x0e + 4x1o + 4x2e", 2, m_max=1) == (9 + 4) * 4
    # a pseudo-scalar input has no m = 0 coupling to natural outputs
    assert so2_convolution_num_weights("4x0o", "4x0e") == 0
    w = init_so2_convolution(jax.random.key(0), "16x0e + 16x1o + 16x2e", 2)
    assert w.shape == (so2_convolution_num_weights("16x0e+16x1o+16x2e", 2),)
    # unit-variance features in, O(1) variance out
    rng = np.random.default_rng(0)
    x = IrrepsArray(
        "16x0e + 16x1o + 16x2e", jnp.asarray(rng.standard_normal((256, 144)), jnp.float32)
    )
    r = jnp.asarray(rng.standard_normal((256, 3)), jnp.float32)
    z = so2_convolution(x, r, w, irreps_out=2).array
    assert 0.5 < float(jnp.var(z)) < 2.0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"x": jnp.ones(8)}, "x"),
        ({"x": IrrepsArray("2x0e + 3x1o", jnp.ones(11))}, "x"),
        ({"edge_vec": jnp.ones(2)}, "edge_vec"),
        ({"edge_vec": jnp.ones(3, jnp.int32)}, "edge_vec"),
        ({"weights": jnp.ones(3)}, "weights"),
        ({"irreps_out": "3x1o"}, "irreps_out"),
        ({"irreps_out": -1}, "irreps_out"),
        ({"m_max": -1}, "m_max"),
        ({"m_max": 1.5}, "m_max"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {
        "x": IrrepsArray("2x0e + 2x1o", jnp.ones(8)),
        "edge_vec": jnp.ones(3),
        "weights": jnp.ones(so2_convolution_num_weights("2x0e + 2x1o", 1)),
        "irreps_out": 1,
    }
    args.update(kwargs)
    with pytest.raises((TypeError, ValueError), match=f"`{name}`"):
        so2_convolution(args.pop("x"), args.pop("edge_vec"), args.pop("weights"), **args)


def test_every_matrix_product_at_full_precision():
    """Jaxpr audit: forward and gradient products are HIGHEST under a bfloat16 default."""
    from _precision import dot_precisions, is_highest

    x = IrrepsArray("2x0e + 2x1o + 2x2e", jnp.ones((3, 18)))
    r = jnp.asarray(_edges(0, 0)[:3], jnp.float32)
    w = jnp.ones((3, so2_convolution_num_weights(x.irreps, 2)))

    def loss(a, b, c):
        return jnp.sum(so2_convolution(a, b, c, irreps_out=2).array ** 2)

    with jax.default_matmul_precision("bfloat16"):
        found = dot_precisions(jax.make_jaxpr(loss)(x, r, w).jaxpr)
        found += dot_precisions(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(x, r, w).jaxpr)
    assert found and all(is_highest(p) for p in found), found


@pytest.mark.slow  # about 5 s (finite differences of a compiled float64 function)
def test_check_grads_float64():
    """Forward- and reverse-mode derivatives against finite differences, an edge along -y
    included (edges off the chart boundary, where finite differences would straddle the frame
    switch; the output itself is smooth there)."""
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        rng = np.random.default_rng(17)
        r = jnp.asarray([[0.1, 0.9, -0.2], [0.0, -1.0, 0.0], [0.6, 0.2, -0.5]])
        x = jnp.asarray(rng.standard_normal((3, 18)))
        w = jnp.asarray(rng.standard_normal((3, so2_convolution_num_weights("2x0e+2x1o+2x2e", 2))))

        def f(a, b, c):
            return so2_convolution(IrrepsArray("2x0e+2x1o+2x2e", a), b, c, irreps_out=2).array

        check_grads(jax.jit(f), (x, r, w), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)
