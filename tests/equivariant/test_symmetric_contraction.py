"""MACE's symmetric contraction and the basis of symmetric equivariant polynomials under it.

References, each computed another way than the library:
- the size of each basis, against the multiplicity of the output irrep in the symmetric power
  from characters (Newton's identities for the symmetric power's character, integrated against
  the irrep's character with the Weyl measure of SO(3), both parities averaged);
- the basis tensors themselves: symmetric in their input indices, equivariant under Wigner
  matrices of random O(3) elements, orthogonal; and spanning the same space as e3nn-jax's
  ``reduced_symmetric_tensor_product_basis`` (optional oracle);
- the evaluation (sparse CG paths mapped from the basis), against the explicit sum of basis tensors contracted with
  ``a (x) a (x) ...`` in float64 NumPy, one path at a time.

Tolerances. The basis is float64 NumPy: an SVD of at most a few hundred CG products of size
O(1), rounding ~ 1e-15 relative; 1e-12 leaves a margin of 1000. The contraction in float64:
each output sums <= K d^nu ~ 10^5 terms of products of O(1) numbers (inputs standard normal,
bases of unit-order entries), rounding <= 1e-16 * 1e5 * scale; 1e-11 of the output's scale.
Float32 (matrix products at full precision): the same sums with eps = 6e-8 in a different
summation order, typically sqrt(n) eps ~ 2e-5 worst case n eps; 1e-5 of the output's scale is
the issue's bound, checked against the float64 reference. Equivariance: float32 1e-5 relative
(products of Wigner matrices accurate to 1e-6), float64 1e-10.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import (
    Irrep,
    Irreps,
    IrrepsArray,
    init_symmetric_contraction,
    symmetric_contraction,
    symmetric_contraction_num_weights,
)
from geomjax.equivariant._symmetric_basis import symmetric_basis
from geomjax.testing import assert_equivariant, random_orthogonal


def _multiplicity(irreps_in: str, ir_out: str, nu: int) -> int:
    """Multiplicity of ``ir_out`` in Sym^nu(irreps_in), from characters."""
    irs = [ir for mul, ir in Irreps(irreps_in) for _ in range(mul)]
    out = Irrep(ir_out)
    n = 4 * (nu * max(ir.l for ir in irs) + out.l + 2)  # trapezoid exact for trig polys
    theta = 2 * math.pi * (np.arange(n) + 0.5) / n
    total = 0.0
    for eps in (1, -1):

        def chi(ir, k, eps=eps):  # character of ir at (rotation by k theta, eps^k)
            sign = ir.p ** (k % 2) if eps == -1 else 1
            return sign * np.sin((2 * ir.l + 1) * k * theta / 2) / np.sin(k * theta / 2)

        # h_m = (1/m) sum_{k=1..m} p_k h_{m-k}, p_k(g) = chi_V(g^k); sin(k theta / 2) != 0 here
        p = [None] + [sum(chi(ir, k) for ir in irs) for k in range(1, nu + 1)]
        h = [np.ones(n)]
        for m in range(1, nu + 1):
            h.append(sum(p[k] * h[m - k] for k in range(1, m + 1)) / m)
        weight = (1 - np.cos(theta)) / n  # Weyl measure on the class angle, normalized
        total += np.sum(h[nu] * chi(out, 1) * weight)
    value = total / 2
    assert abs(value - round(value)) < 1e-9
    return round(value)


CASES = [
    ("0e + 1o", ["0e", "1o", "1e", "2e", "0o"], 4),
    ("0e + 1o + 2e", ["0e", "1o", "2e", "1e", "3o"], 3),
    ("0e + 1o + 2e + 3o", ["0e", "1o", "2e"], 3),
    ("0e + 1e + 1o", ["0e", "0o", "1o", "1e"], 3),
]


@pytest.mark.parametrize("irreps_in,outs,n_max", CASES)
def test_basis_size_is_the_multiplicity_in_the_symmetric_power(irreps_in, outs, n_max):
    for ir in outs:
        for nu in range(1, n_max + 1):
            assert symmetric_basis(irreps_in, ir, nu).shape[-1] == _multiplicity(irreps_in, ir, nu)


@pytest.mark.parametrize(
    "irreps_in,ir,nu",
    [
        ("0e + 1o + 2e", "1o", 3),
        ("0e + 1e + 1o", "0o", 3),
        ("0e + 1o", "2e", 4),
        ("0e + 1o + 2e + 3o", "2e", 2),
    ],
)
def test_basis_is_symmetric_equivariant_and_orthogonal(irreps_in, ir, nu):
    u = symmetric_basis(irreps_in, ir, nu)
    k = u.shape[-1]
    assert k >= 1
    flat = u.reshape(-1, k)
    np.testing.assert_allclose(flat.T @ flat, Irrep(ir).dim * np.eye(k), atol=1e-12)
    perm = tuple(range(1, nu)) + (0,) + tuple(range(nu, u.ndim))
    np.testing.assert_allclose(np.transpose(u, perm), u, atol=1e-12)
    with jax.enable_x64(True):
        for seed in (0, 1):  # one reflection (det -1), one rotation
            r = random_orthogonal(jax.random.key(seed), 3, jnp.float64)
            if (float(jnp.linalg.det(r)) < 0) != (seed == 0):
                r = -r
            d_in = np.asarray(Irreps(irreps_in).D_from_matrix(r))
            d_out = np.asarray(Irrep(ir).D_from_matrix(r))
            lhs = u
            for axis in range(nu):
                lhs = np.moveaxis(np.tensordot(d_in, lhs, axes=([0], [axis])), 0, axis)
            rhs = np.einsum("mn,...nk->...mk", d_out, u)
            np.testing.assert_allclose(lhs, rhs, atol=1e-12)


@pytest.mark.parametrize("irreps_in,nu", [("0e + 1o + 2e", 3), ("0e + 1o + 2e + 3o", 2)])
def test_basis_spans_e3nn_jax_reduced_symmetric_basis(irreps_in, nu):
    e3nn = pytest.importorskip("e3nn_jax")
    ref = e3nn.reduced_symmetric_tensor_product_basis(e3nn.Irreps(irreps_in), nu)
    for (mul, ir), sl in zip(ref.irreps, ref.irreps.slices()):
        u = symmetric_basis(irreps_in, str(ir), nu)
        assert u.shape[-1] == mul
        theirs = np.asarray(ref.array[..., sl]).reshape((-1, mul, ir.dim))
        theirs = np.moveaxis(theirs, 1, -1).reshape(-1, mul)  # (d^nu * (2l+1), mul)
        q = u.reshape(-1, mul) / math.sqrt(ir.dim)  # orthonormal columns
        residual = theirs - q @ (q.T @ theirs)
        # e3nn-jax builds its basis in float32-grade arithmetic (its own tolerance 1e-5)
        assert np.abs(residual).max() <= 1e-5 * np.abs(theirs).max()


@pytest.mark.parametrize(
    "irreps_in,irreps_out",
    [
        ("0e + 1o + 2e", "0e + 1o"),
        # ~15 s (cuEquivariance's naive method traces its ~1000 paths one by one)
        pytest.param("0e + 1o + 2e + 3o", "0e + 1o + 2e", marks=pytest.mark.slow),
    ],
)
def test_same_polynomials_as_cuequivariance_naive(irreps_in, irreps_out):
    """The outputs are linear in the weights: the functions reached with one-hot weights span
    the same space as cuEquivariance's ``symmetric_contraction`` descriptor evaluated by its
    ``naive`` JAX method (optional oracle; its basis and weight layout differ from ours, the
    polynomials must not). One channel, degrees 1 to 3, float64."""
    cue = pytest.importorskip("cuequivariance")
    cuex = pytest.importorskip("cuequivariance_jax")
    n_w = symmetric_contraction_num_weights(irreps_in, irreps_out, 3)
    with jax.enable_x64(True):
        poly = cue.descriptors.symmetric_contraction(
            cue.Irreps("O3", irreps_in), cue.Irreps("O3", irreps_out), (1, 2, 3)
        )
        assert poly.inputs[0].dim == n_w  # same number of independent polynomials
        x = jnp.asarray(np.random.default_rng(0).standard_normal((3 * n_w, Irreps(irreps_in).dim)))
        eye = jnp.eye(n_w)
        ours = jax.vmap(
            lambda w: (
                symmetric_contraction(
                    IrrepsArray(irreps_in, x),
                    jnp.zeros(len(x), int),
                    w[None, :, None],
                    irreps_out=irreps_out,
                    correlation=3,
                ).array
            )
        )(eye)
        xr = cuex.RepArray(cue.Irreps("O3", irreps_in), x, cue.ir_mul)  # one channel: any layout
        theirs = jax.vmap(
            lambda w: cuex.equivariant_polynomial(poly, [w[None], xr], method="naive").array
        )(eye)
    m_ours = np.asarray(ours).reshape(n_w, -1).T
    m_theirs = np.asarray(theirs).reshape(n_w, -1).T
    q, r = np.linalg.qr(m_ours)
    assert np.abs(np.diag(r)).min() > 1e-6 * np.abs(np.diag(r)).max()  # ours independent
    for a, b in [(m_theirs, q), (m_ours, np.linalg.qr(m_theirs)[0])]:
        residual = a - b @ (b.T @ a)
        # float64 sums of <= 10^4 products of O(1) numbers: ~1e-12 of the scale
        assert np.abs(residual).max() <= 1e-10 * np.abs(a).max()


def _reference(irreps_in, irreps_out, nu_max, x, species, w):
    """Float64 NumPy: sum over paths of w * <U_k, a^(x nu)> / sqrt(K_L), path by path."""
    c = w.shape[-1]
    irs = [ir for _, ir in Irreps(irreps_in)]
    a = np.concatenate(
        [x[..., s].reshape(x.shape[:-1] + (c, ir.dim)) for ir, s in zip(irs, _slices(irs, c))],
        axis=-1,
    )
    ws = w[species]  # (b, n_w, c)
    outs, start = [], 0
    for ir in [ir for _, ir in Irreps(irreps_out)]:
        terms = []
        for nu in range(1, nu_max + 1):
            u = symmetric_basis(irreps_in, str(ir), nu)
            for k in range(u.shape[-1]):
                t = np.broadcast_to(u[..., k], a.shape[:2] + u[..., k].shape)
                for _ in range(nu):  # contract the input axes one by one with a
                    t = np.einsum("bc...jm,bcj->bc...m", t, a)
                terms.append(ws[:, start, :, None] * t)
                start += 1
        total = sum(terms) / math.sqrt(len(terms)) if terms else np.zeros(a.shape[:2] + (ir.dim,))
        outs.append(total.reshape(total.shape[0], -1))
    return np.concatenate(outs, axis=-1)


def _slices(irs, c):
    out, start = [], 0
    for ir in irs:
        out.append(slice(start, start + c * ir.dim))
        start += c * ir.dim
    return out


@pytest.mark.parametrize(
    "irreps_in,irreps_out,nu",
    [
        ("0e + 1o + 2e", "0e + 1o + 2e", 3),
        ("0e + 1o", "0e + 1o + 0o", 4),
        ("0e + 1o + 2e + 3o", "0e + 1o", 2),
        ("1o + 0e", "1o", 1),
    ],
)
def test_contraction_equals_the_sum_over_paths(irreps_in, irreps_out, nu):
    c, b, n_species = 3, 5, 2
    irs = [ir for _, ir in Irreps(irreps_in)]
    irreps_x = Irreps([(c, ir) for ir in irs])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, irreps_x.dim))
    species = np.array([0, 1, 1, 0, 1])
    n_w = symmetric_contraction_num_weights(irreps_in, irreps_out, nu)
    w = rng.standard_normal((n_species, n_w, c))
    ref = _reference(irreps_in, irreps_out, nu, x, species, w)
    scale = np.abs(ref).max()
    for dtype, tol in [(jnp.float64, 1e-11), (jnp.float32, 1e-5)]:
        with jax.enable_x64(dtype == jnp.float64), jax.default_matmul_precision("highest"):
            y = jax.jit(symmetric_contraction, static_argnames=("irreps_out", "correlation"))(
                IrrepsArray(irreps_x, jnp.asarray(x, dtype)),
                jnp.asarray(species),
                jnp.asarray(w, dtype),
                irreps_out=irreps_out,
                correlation=nu,
            )
            assert y.irreps == Irreps([(c, ir) for _, ir in Irreps(irreps_out)])
            np.testing.assert_allclose(
                np.asarray(y.array, np.float64), ref, rtol=0, atol=tol * scale
            )


def test_unreachable_output_is_zero_and_weights_count():
    # from one scalar and one vector no pseudoscalar polynomial exists (a . (a x a) = 0)
    assert symmetric_contraction_num_weights("0e + 1o", "0o", 4) == 0
    x = IrrepsArray("2x0e + 2x1o", jnp.ones((3, 8)))
    y = symmetric_contraction(
        x, jnp.zeros(3, int), jnp.ones((1, 0, 2)), irreps_out="0o", correlation=3
    )
    assert y.shape == (3, 2) and not np.any(np.asarray(y.array))
    # a0, a0^2, |a1|^2, a0^3, a0 |a1|^2 (scalars); a1, a0 a1, a0^2 a1, |a1|^2 a1 (vectors)
    assert symmetric_contraction_num_weights("0e + 1o", "0e + 1o", 3) == 5 + 4


@pytest.mark.parametrize(
    "dtype,rtol",
    [  # ~10 s for float32 (three compiled functions, two trials each): the slow run has it
        pytest.param(jnp.float32, 1e-5, marks=pytest.mark.slow),
        (jnp.float64, 1e-10),
    ],
)
def test_equivariant_under_jit_vmap_grad(dtype, rtol):
    irreps_in, irreps_out, c = "0e + 1o + 2e", "0e + 1o + 2e + 1e", 2
    irreps_x = Irreps([(c, ir) for _, ir in Irreps(irreps_in)])
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(3)
        x = IrrepsArray(irreps_x, jnp.asarray(rng.standard_normal((4, irreps_x.dim)) / 2, dtype))
        species = jnp.array([0, 1, 0, 1])
        w = init_symmetric_contraction(
            jax.random.key(0), irreps_in, irreps_out, 3, n_species=2, n_channels=c, dtype=dtype
        )

        def op(a):
            return symmetric_contraction(a, species, w, irreps_out=irreps_out, correlation=3)

        def grad(a):  # the gradient of an invariant transforms like the input
            return jax.grad(lambda v: jnp.sum(op(v).array ** 2))(a)

        def per_node(a):  # vmap over the nodes, one node at a time
            return jax.vmap(
                lambda v, sp: symmetric_contraction(v, sp, w, irreps_out=irreps_out, correlation=3)
            )(a, species)

        for fn, key in [(jax.jit(op), 1), (jax.jit(grad), 2), (jax.jit(per_node), 3)]:
            err = assert_equivariant(
                fn,
                jax.random.key(key),
                (x,),
                in_kinds=("graph_irreps",),
                out_kinds="graph_irreps",
                group="O3",
                n_trials=2,
                rtol=rtol,
            )
            assert err <= rtol


def test_vmap_equals_batch_and_gradients_finite_at_zero():
    irreps_x = "3x0e + 3x1o + 3x2e"
    w = init_symmetric_contraction(
        jax.random.key(0), "0e + 1o + 2e", "0e + 1o", 3, n_species=2, n_channels=3
    )
    x = IrrepsArray(irreps_x, jax.random.normal(jax.random.key(1), (6, 27)))
    s = jnp.array([0, 1, 1, 0, 0, 1])

    def op(a, sp, ww):
        return symmetric_contraction(a, sp, ww, irreps_out="0e + 1o", correlation=3).array

    batch = jax.jit(op)(x, s, w)
    single = jax.jit(jax.vmap(op, in_axes=(0, 0, None)))(x, s, w)
    np.testing.assert_allclose(single, batch, rtol=0, atol=1e-6 * float(jnp.abs(batch).max()))
    with jax.debug_nans(True):
        zero = IrrepsArray(irreps_x, jnp.zeros((6, 27)))
        loss = jax.jit(jax.grad(lambda a, ww: jnp.sum(op(a, s, ww) ** 2), argnums=(0, 1)))
        gx, gw = loss(zero, w)
    assert np.all(np.isfinite(gx.array)) and np.all(np.isfinite(gw))


def test_check_grads_float64():
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        x = jnp.asarray(rng.standard_normal((2, 8)))
        w = jnp.asarray(
            rng.standard_normal((2, symmetric_contraction_num_weights("0e+1o", "0e+1o", 3), 2))
        )

        def f(a, ww):
            return symmetric_contraction(
                IrrepsArray("2x0e + 2x1o", a),
                jnp.array([1, 0]),
                ww,
                irreps_out="0e + 1o",
                correlation=3,
            ).array

        check_grads(jax.jit(f), (x, w), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"x": IrrepsArray("2x0e + 3x1o", jnp.ones((2, 11)))}, "x"),
        ({"x": jnp.ones((2, 8))}, "x"),
        ({"x": IrrepsArray("2x0e + 2x0e", jnp.ones((2, 4)))}, "irreps_in"),
        ({"species": jnp.zeros(3, int)}, "species"),
        ({"species": jnp.zeros(2)}, "species"),
        ({"weights": jnp.ones((1, 4, 2))}, "weights"),
        ({"irreps_out": "0e + 0e"}, "irreps_out"),
        ({"correlation": 0}, "correlation"),
        ({"correlation": 5}, "correlation"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {
        "x": IrrepsArray("2x0e + 2x1o", jnp.ones((2, 8))),
        "species": jnp.zeros(2, int),
        "weights": jnp.ones((1, 5, 2)),
        "irreps_out": "0e",
        "correlation": 3,
    }
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
        symmetric_contraction(args.pop("x"), args.pop("species"), args.pop("weights"), **args)
