"""Spherical harmonics against scipy's complex harmonics, equivariance, edge points, e3nn-jax.

Oracle: ``scipy.special.sph_harm_y`` (complex, Condon-Shortley phase) at the polar angle from
the y axis and the azimuth ``atan2(x, z)``, combined into real harmonics by the textbook
formulas (m > 0: sqrt2 (-1)^m Re Y_l^m; m < 0: sqrt2 (-1)^m Im Y_l^|m|) and scaled to the three
normalizations. The polar angle is ``atan2(hypot(x, z), y)`` rather than ``arccos(y / r)``:
the arccos loses half the digits within 1e-8 of the poles (an error of the oracle, 5e-10 at
1e-9 from the axis), the two-argument form is accurate everywhere.
"""

# ruff: noqa: E741 (`l` is the degree of an irrep)
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from jax.test_util import check_grads

from geomjax.equivariant import Irreps, IrrepsArray, spherical_harmonics
from geomjax.testing import rounding_tolerance

LMAX = 11
LS = list(range(LMAX + 1))
NORMALIZATIONS = ("component", "norm", "integral")


def _points(n: int = 300, seed: int = 0) -> np.ndarray:
    """Gaussian points at random radii, plus the poles, points within 1e-9 of them, the
    equator and the coordinate axes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)) * rng.uniform(0.1, 10.0, (n, 1))
    special = [
        [0, 1, 0],
        [0, -2, 0],
        [1e-9, 1, 0],
        [0, -1, 1e-9],
        [0, 0, 1],
        [3, 0, 0],
        [1, 0, -1],
        [0.3, 1e-12, 0.4],
    ]
    return np.concatenate([x, np.asarray(special, float)])


def _scipy_real_sh(l: int, x: np.ndarray, normalization: str) -> np.ndarray:
    theta = np.arctan2(np.hypot(x[:, 0], x[:, 2]), x[:, 1])
    phi = np.arctan2(x[:, 0], x[:, 2])
    out = []
    for m in range(-l, l + 1):
        y = scipy.special.sph_harm_y(l, abs(m), theta, phi)
        if m > 0:
            out.append(np.sqrt(2) * (-1) ** m * y.real)
        elif m < 0:
            out.append(np.sqrt(2) * (-1) ** m * y.imag)
        else:
            out.append(y.real)
    y = np.stack(out, axis=-1)
    scale = {
        "integral": 1.0,
        "component": np.sqrt(4 * np.pi),
        "norm": np.sqrt(4 * np.pi / (2 * l + 1)),
    }
    return y * scale[normalization]


@functools.cache
def _sh_fn(ls: tuple, normalize: bool, normalization: str = "component"):
    return jax.jit(lambda x: spherical_harmonics(list(ls), x, normalize, normalization).array)


def _blocks(y: np.ndarray, ls=LS) -> dict:
    out, start = {}, 0
    for l in ls:
        out[l] = y[..., start : start + 2 * l + 1]
        start += 2 * l + 1
    return out


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_matches_scipy_float64(x64, normalization):
    """Elementwise, l <= 11, normalize=True and False (homogeneous: |x|^l Y(x / |x|)). Both
    routes are recursions of ~l steps with an error growing linearly (2 (l + 1) roundings, both
    sides), relative to the largest component: 2.9e-14 at l = 11 (measured 7e-15), well
    inside the issue's 1e-12."""
    x = _points()
    r = np.linalg.norm(x, axis=1, keepdims=True)
    on_sphere = _blocks(np.asarray(_sh_fn(tuple(LS), True, normalization)(jnp.asarray(x))))
    raw = _blocks(np.asarray(_sh_fn(tuple(LS), False, normalization)(jnp.asarray(x))))
    for l in LS:
        ref = _scipy_real_sh(l, x, normalization)
        tol = rounding_tolerance(np.float64, n_ops=2 * (l + 1), growth="linear")
        scale = np.max(np.abs(ref))
        assert np.max(np.abs(on_sphere[l] - ref)) <= min(tol * scale, 1e-12), l
        assert np.max(np.abs(raw[l] / r**l - ref)) <= min(tol * scale, 1e-12), l


def test_normalizations_and_low_degrees(x64):
    """Y_0 = 1 and Y_1 = sqrt(3) x / |x| (component); |Y_l|^2 = 2l + 1 (component), 1 (norm),
    (2l + 1) / (4 pi) (integral) on the sphere (addition theorem)."""
    x = _points(50)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    every = jax.jit(
        lambda v: {n: spherical_harmonics(LS, v, True, n).array for n in NORMALIZATIONS}
    )
    ys = {n: _blocks(np.asarray(y)) for n, y in every(jnp.asarray(x)).items()}
    comp = ys["component"]
    tol = rounding_tolerance(np.float64, n_ops=2 * (LMAX + 1), growth="linear")
    np.testing.assert_allclose(comp[0], 1.0, atol=0, rtol=0)
    np.testing.assert_allclose(comp[1], np.sqrt(3) * u, atol=tol, rtol=0)
    for normalization, want in (
        ("component", lambda l: 2 * l + 1),
        ("norm", lambda l: 1.0),
        ("integral", lambda l: (2 * l + 1) / (4 * np.pi)),
    ):
        y = ys[normalization]
        for l in LS:
            np.testing.assert_allclose(np.sum(y[l] ** 2, axis=-1), want(l), rtol=2 * tol)


def _random_orthogonal(seed: int, det: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.sign(np.linalg.det(q)) != det:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_equivariance(dtype):
    """Y(R x) = D(R) Y(x) for rotations and reflections (parity (-1)^l), l <= 11.

    Both sides in ``dtype``. The error of each side is round-off of ~(l + 1) recursion steps
    plus the rounding of R x (3-term dot products) amplified l-fold by the degree-l harmonics,
    plus D's (2l + 1)-term products: linear growth over 2 (2l + 1) roundings, relative to the
    largest component. float32 must also meet issue 16's 2e-5 at l = 11 (absolute; measured
    7e-6, e3nn-jax's recursive algorithm 1.9e-5), float64 its 1e-10.
    """
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        x = jnp.asarray(np.random.default_rng(1).standard_normal((400, 3)), dt)
        sh = _sh_fn(tuple(LS), True)
        y = _blocks(np.asarray(sh(x), np.float64))
        worst = 0.0
        # every D^l from one evaluation of the harmonics at the quadrature nodes
        d_all = jax.jit(Irreps.spherical_harmonics(LMAX).D_from_matrix)
        for seed, det in ((2, 1.0), (3, -1.0)):
            rot = jnp.asarray(_random_orthogonal(seed, det), dt)
            yr = _blocks(np.asarray(sh(jnp.matmul(x, rot.T, precision="highest")), np.float64))
            d = np.asarray(d_all(rot), np.float64)
            for l in LS:
                block = d[l * l : (l + 1) ** 2, l * l : (l + 1) ** 2]
                pred = y[l] @ block.T
                err = np.max(np.abs(yr[l] - pred))
                tol = rounding_tolerance(dt, n_ops=2 * (2 * l + 1), growth="linear")
                assert err <= tol * np.max(np.abs(pred)), (l, det, err)
                worst = max(worst, err)
        assert worst <= (2e-5 if dtype == "float32" else 1e-10), worst


def test_float32_accuracy_against_float64():
    """float32 harmonics of float32 points against float64 of the same points: the recursion
    is norm-preserving, so the error grows linearly in l (about 3 roundings per step and the
    normalization's 2, amplified l-fold): (l + 1) steps with linear growth, relative to the
    largest component (measured 4.5e-6 absolute at l = 11 on components up to 4.7)."""
    x32 = np.random.default_rng(4).standard_normal((2000, 3)).astype(np.float32)
    got = _blocks(np.asarray(_sh_fn(tuple(LS), True)(jnp.asarray(x32)), np.float64))
    with jax.enable_x64(True):
        ref = _blocks(np.asarray(_sh_fn(tuple(LS), True)(jnp.asarray(x32, jnp.float64))))
    for l in LS:
        tol = rounding_tolerance(np.float32, n_ops=l + 1, growth="linear")
        assert np.max(np.abs(got[l] - ref[l])) <= tol * np.max(np.abs(ref[l])), l


def test_origin_and_polar_axis_values_and_derivatives():
    """Documented convention at x = 0 with normalize=True: Y_0 = 1, Y_l = 0 for l >= 1, and
    the derivatives of the unnormalized polynomials (d Y_1 / dx = sqrt(3) I, higher degrees 0);
    derivatives of every order finite at 0 and on the polar axis (jax_debug_nans is on)."""
    ls = (0, 1, 2, 3)
    points = jnp.asarray([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -3.0, 0.0]])
    for normalize in (True, False):

        def f(x, normalize=normalize):
            return spherical_harmonics(list(ls), x, normalize).array

        @jax.jit
        @jax.vmap
        def derivatives(x, f=f, normalize=normalize):
            # third order through the normalization; the raw polynomials to second order
            high = jax.jacfwd(jax.jacrev(jax.jacfwd(f))) if normalize else jax.hessian(f)
            return f(x), jax.jacfwd(f)(x), high(x)

        values, jac, third = (np.asarray(a) for a in derivatives(points))
        np.testing.assert_array_equal(values[0], np.eye(16)[0])
        np.testing.assert_allclose(jac[0, 1:4], np.sqrt(3) * np.eye(3), rtol=1e-6)
        np.testing.assert_array_equal(jac[0, 4:], 0.0)
        assert np.all(np.isfinite(jac)) and np.all(np.isfinite(third))


def test_gradients_float64_on_axis_and_generic(x64):
    """First derivatives against finite differences on the polar axis and off it (higher
    orders: finiteness in test_origin_and_polar_axis_values_and_derivatives)."""
    f = jax.jit(lambda x: spherical_harmonics([0, 1, 2, 5], x, True).array)
    for point in ([0.0, -0.5, 0.0], [0.3, -0.7, 0.2]):
        check_grads(f, (jnp.asarray(point),), order=1, modes=("rev",))


def test_tiny_and_huge_vectors_float32():
    """Directions of vectors whose squared norm under- or overflows float32 are still exact
    (the vector is scaled by a power of two first); values and gradients finite. (Subnormal
    inputs, below 1.2e-38, are flushed to zero by XLA on CPU: not tested.)"""
    f = _sh_fn((0, 1, 2, 6), True)
    u = np.asarray([0.36, -0.48, 0.8], np.float32)
    scales = np.float32([1.0, 1e-36, 1e-30, 1e-20, 1e20, 1e30, 3e38])
    xs = jnp.asarray(u[None, :] * scales[:, None])
    got = np.asarray(f(xs))
    # the same direction up to the rounding of u * scale and of the normalization (a few eps)
    # amplified l-fold by degree 6, on components of size <= sqrt(13)
    tol = rounding_tolerance(np.float32, n_ops=4, cond=6 * np.sqrt(13))
    np.testing.assert_allclose(got, np.broadcast_to(got[0], got.shape), rtol=0, atol=tol)
    grads = jax.jit(jax.vmap(jax.grad(lambda x: jnp.sum(f(x)))))(xs)
    assert np.all(np.isfinite(np.asarray(grads)))


def test_irreps_forms_and_batching():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 5, 3)), jnp.float32)

    @jax.jit
    def forms(v):  # one compilation for every form
        return {
            "mixed": spherical_harmonics("0e + 2x1o + 0x2e + 3o", v, normalize=True),
            "ref": spherical_harmonics([0, 1, 3], v, normalize=True),
            "int": spherical_harmonics(2, v, False),
            "range": spherical_harmonics(range(3), v, False),
            "pseudo": spherical_harmonics([1, 2], IrrepsArray("1e", v), False),
            "polar": spherical_harmonics([1, 2], v, False),
            "empty": spherical_harmonics("0x1o", v, True),
            "vmap": jax.vmap(lambda w: spherical_harmonics([0, 1, 3], w, True))(v.reshape(10, 3)),
        }

    out = forms(x)
    y, ref = out["mixed"], out["ref"]
    assert y.irreps == "0e + 2x1o + 0x2e + 3o" and y.shape == (2, 5, 1 + 6 + 7)
    np.testing.assert_array_equal(y.chunks[1][..., 0, :], ref.chunks[1][..., 0, :])
    np.testing.assert_array_equal(y.chunks[1][..., 1, :], ref.chunks[1][..., 0, :])
    assert out["int"].irreps == "2e" and out["range"].irreps == Irreps.spherical_harmonics(2)
    # a pseudovector input: every degree even, the same numbers
    assert out["pseudo"].irreps == "1e + 2e"
    np.testing.assert_array_equal(out["pseudo"].array, out["polar"].array)
    assert out["empty"].shape == (2, 5, 0)
    # vmap agrees with the batched call: the same arithmetic, products possibly summed in
    # another order: (l + 1) recursion steps of round-off, relative to the largest component
    # (sqrt(7) for l = 3)
    vm = out["vmap"]
    tol = rounding_tolerance(np.float32, n_ops=4, growth="linear") * np.sqrt(7)
    np.testing.assert_allclose(vm.array, ref.array.reshape(10, -1), rtol=0, atol=tol)
    assert vm.irreps == ref.irreps


def test_matches_e3nn_float64(x64):
    e3nn = pytest.importorskip("e3nn_jax")
    # generic points only: e3nn-jax's default for l_max > 8 (its Legendre algorithm) loses
    # accuracy within 1e-9 of the poles (4e-8 measured), an error of the oracle
    x = jnp.asarray(_points(100)[:100])
    # (the normalizations differ by constant factors per degree: two configurations suffice)
    for normalization, normalize in (("component", False), ("integral", True)):
        ours = np.asarray(_sh_fn(tuple(LS), normalize, normalization)(x))
        theirs = np.asarray(e3nn.sh(LS, x, normalize, normalization))
        # both recursions in float64, ~2 (l + 1) roundings each; relative to the largest
        # component (up to 1e5 with normalize=False at radius 10)
        tol = rounding_tolerance(np.float64, n_ops=2 * (LMAX + 1), growth="linear")
        assert np.max(np.abs(ours - theirs)) <= tol * np.max(np.abs(theirs))


def test_matches_e3nn_float32():
    """Elementwise agreement in float32, per degree, within the two float32 errors against a
    float64 reference: e3nn-jax's own (measured here: 1.7e-6 at l = 1 to 2.7e-5 at l = 11 with
    its default algorithm for l_max = 11, the Legendre one) plus ours (the bound of
    test_float32_accuracy_against_float64). Issue 16's 1e-6 is below e3nn-jax's own float32
    error for l >= 1 with that algorithm, so it is checked where e3nn is that accurate: l <= 1
    with its recursive algorithm (l_max <= 8)."""
    e3nn = pytest.importorskip("e3nn_jax")
    x32 = np.random.default_rng(6).standard_normal((1000, 3)).astype(np.float32)
    ours = _blocks(np.asarray(_sh_fn(tuple(LS), True)(jnp.asarray(x32)), np.float64))
    theirs = _blocks(np.asarray(e3nn.sh(LS, jnp.asarray(x32), True, "component"), np.float64))
    with jax.enable_x64(True):
        ref = _blocks(np.asarray(_sh_fn(tuple(LS), True)(jnp.asarray(x32, jnp.float64))))
    for l in LS:
        theirs_err = np.max(np.abs(theirs[l] - ref[l]))
        ours_tol = rounding_tolerance(np.float32, n_ops=l + 1, growth="linear") * np.max(
            np.abs(ref[l])
        )
        assert np.max(np.abs(ours[l] - theirs[l])) <= theirs_err + ours_tol, l
    low = np.asarray(e3nn.sh([0, 1], jnp.asarray(x32), True, "component"), np.float64)
    mine = np.asarray(_sh_fn((0, 1), True)(jnp.asarray(x32)), np.float64)
    assert np.max(np.abs(low - mine)) <= 1e-6


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: spherical_harmonics([1], jnp.ones((4, 2)), True), "x"),
        (lambda: spherical_harmonics([1], jnp.ones(3, jnp.int32), True), "x"),
        (lambda: spherical_harmonics([1], jnp.ones(3, bool), True), "x"),
        (lambda: spherical_harmonics([1], jnp.ones(3, jnp.complex64), True), "x"),
        (lambda: spherical_harmonics([1], IrrepsArray("2x1o", jnp.ones(6)), True), "x"),
        (lambda: spherical_harmonics("1e", jnp.ones(3), True), "irreps_out"),
        (lambda: spherical_harmonics("2o", jnp.ones(3), True), "irreps_out"),
        (lambda: spherical_harmonics([-1], jnp.ones(3), True), "irreps_out"),
        (lambda: spherical_harmonics("1x", jnp.ones(3), True), "irreps_out"),
        (lambda: spherical_harmonics([1], jnp.ones(3), 1), "normalize"),
        (lambda: spherical_harmonics([1], jnp.ones(3), True, "l2"), "normalization"),
    ],
)
def test_named_errors(call, name):
    with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
        call()
