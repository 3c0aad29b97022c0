"""Tests for Product manifolds: tuple points, factor-wise operations, learnable factor leaves."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from geomjax.manifolds._base import Manifold
from geomjax.manifolds._euclidean import Euclidean
from geomjax.manifolds._product import Product
from geomjax.manifolds._sphere import Sphere
from geomjax.testing import check_grads_finite, rounding_tolerance
from geomjax.testing._manifold_axioms import check_manifold_axioms


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ScaledEuclidean(Euclidean):
    """Test-local R^d with metric ``scale * <u, v>`` (an array leaf), ``dist = sqrt(scale)|y-x|``."""

    scale: jax.Array = dataclasses.field(default_factory=lambda: jnp.asarray(1.0))

    def inner(self, x, u, v):
        return self.scale * jnp.sum(jnp.asarray(u) * jnp.asarray(v))

    def egrad_to_rgrad(self, x, g):
        return jnp.asarray(g) / self.scale


def _sphere_euclid():
    return Product((Sphere(2), Euclidean(3)))


def _points(m, dtype, n, seed):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.vmap(lambda k: m.random_point(k, dtype))(keys)


# -- construction and pytree ------------------------------------------------------------------


def test_construction_and_shapes():
    m = Product([Sphere(2), Euclidean((2, 3))])
    assert isinstance(m.manifolds, tuple) and len(m.manifolds) == 2
    assert m.dim == 2 + 6
    assert m.point_shape == ((3,), (2, 3))
    assert m.tangent_shape == ((3,), (2, 3))


@pytest.mark.parametrize(
    "arg, err, match",
    [
        ((), ValueError, "at least one"),
        (Sphere(2), TypeError, "manifolds"),
        ((Sphere(2), 3), TypeError, r"manifolds\[1\]"),
        ("ab", TypeError, r"manifolds\[0\]"),
    ],
)
def test_bad_construction_raises(arg, err, match):
    with pytest.raises(err, match=match):
        Product(arg)


def test_bad_points_raise_naming_argument():
    m = _sphere_euclid()
    x = (jnp.eye(3)[0], jnp.zeros(3))
    with pytest.raises(ValueError, match="`x`.*2 factors"):
        m.dist(jnp.zeros(3), x)
    with pytest.raises(ValueError, match="`y`"):
        m.log(x, x[:1])
    with pytest.raises(ValueError, match="`u`"):
        m.exp(x, jnp.zeros(6))


def test_pytree_roundtrip_and_jit():
    m = Product((ScaledEuclidean(2, jnp.asarray(3.0)), Sphere(2)))
    leaves, treedef = jax.tree.flatten(m)
    assert len(leaves) == 1 and float(leaves[0]) == 3.0
    m2 = jax.tree.unflatten(treedef, [jnp.asarray(5.0)])
    assert isinstance(m2, Product) and float(m2.manifolds[0].scale) == 5.0
    x = (jnp.zeros(2), jnp.eye(3)[0])
    y = (jnp.array([1.0, 0.0]), jnp.eye(3)[1])
    got = jax.jit(lambda mm, a, b: mm.dist(a, b))(m2, x, y)
    np.testing.assert_allclose(got, np.sqrt(5.0 + (np.pi / 2) ** 2), rtol=1e-6)


def test_factor_leaf_is_learnable_through_product(x64):
    # d^2 = scale |y1 - x1|^2 + arccos(<x2, y2>)^2  =>  d(d^2)/d(scale) = |y1 - x1|^2.
    x = (jnp.array([0.1, -0.3]), jnp.array([1.0, 0.0, 0.0]))
    y = (jnp.array([0.7, 0.2]), jnp.array([0.6, 0.8, 0.0]))

    def loss(m):
        return m.dist(x, y) ** 2

    m = Product((ScaledEuclidean(2, jnp.asarray(2.0)), Sphere(2)))
    g = jax.grad(loss)(m)
    assert isinstance(g, Product)
    np.testing.assert_allclose(g.manifolds[0].scale, 0.6**2 + 0.5**2, rtol=1e-12)


# -- values against independent references ------------------------------------------------------


def test_matches_closed_forms_float64(x64):
    m = _sphere_euclid()
    xs, ys = _points(m, jnp.float64, 6, 0), _points(m, jnp.float64, 6, 1)
    us = jax.vmap(m.random_tangent)(jax.random.split(jax.random.key(2), 6), xs)
    vs = jax.vmap(m.random_tangent)(jax.random.split(jax.random.key(3), 6), xs)
    x1, x2 = map(np.asarray, xs)
    y1, y2 = map(np.asarray, ys)
    u1, u2 = map(np.asarray, us)
    v1, v2 = map(np.asarray, vs)
    # dist: great-circle angle (arccos, fine away from 0 and pi) and Euclidean length.
    ang = np.arccos(np.clip(np.sum(x1 * y1, -1), -1, 1))
    ref_d = np.sqrt(ang**2 + np.sum((x2 - y2) ** 2, -1))
    np.testing.assert_allclose(jax.vmap(m.dist)(xs, ys), ref_d, rtol=1e-10)
    # inner: plain dot products of the stacked components.
    ref_in = np.sum(u1 * v1, -1) + np.sum(u2 * v2, -1)
    np.testing.assert_allclose(jax.vmap(m.inner)(xs, us, vs), ref_in, rtol=1e-12)
    # exp: cos|u| x + sin|u| u/|u| on S^2, x + u on R^3.
    e1, e2 = jax.vmap(m.exp)(xs, us)
    nu = np.linalg.norm(u1, axis=-1, keepdims=True)
    np.testing.assert_allclose(e1, np.cos(nu) * x1 + np.sin(nu) * u1 / nu, rtol=0, atol=1e-13)
    np.testing.assert_allclose(e2, x2 + u2, rtol=0, atol=1e-13)
    # proj: remove the normal component on S^2.
    p1, p2 = jax.vmap(m.proj)(xs, ys)
    np.testing.assert_allclose(p1, y1 - np.sum(x1 * y1, -1, keepdims=True) * x1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(p2, y2, atol=0)
    # geodesic at t = 1/2 is the midpoint in each factor.
    g1, g2 = jax.vmap(lambda a, b: m.geodesic(a, b, 0.5))(xs, ys)
    mid = (x1 + y1) / np.linalg.norm(x1 + y1, axis=-1, keepdims=True)
    np.testing.assert_allclose(g1, mid, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g2, (x2 + y2) / 2, rtol=0, atol=1e-13)


def test_product_of_euclideans_is_euclidean(x64):
    m = Product((Euclidean(2), Euclidean(3)))
    xs, ys = _points(m, jnp.float64, 5, 0), _points(m, jnp.float64, 5, 1)
    flat_x, flat_y = np.concatenate(xs, -1), np.concatenate(ys, -1)
    np.testing.assert_allclose(
        jax.vmap(m.dist)(xs, ys), np.linalg.norm(flat_y - flat_x, axis=-1), rtol=1e-13
    )
    t = jax.vmap(m.transp)(xs, ys, ys)
    np.testing.assert_array_equal(np.concatenate(t, -1), flat_y)


def test_nested_product(x64):
    inner = _sphere_euclid()
    m = Product((inner, Euclidean(1)))
    assert m.dim == 2 + 3 + 1
    x, y = (
        m.random_point(jax.random.key(0), jnp.float64),
        m.random_point(jax.random.key(1), jnp.float64),
    )
    ref = np.sqrt(float(inner.dist(x[0], y[0])) ** 2 + float((y[1] - x[1])[0]) ** 2)
    np.testing.assert_allclose(m.dist(x, y), ref, rtol=1e-13)
    assert float(m.check_point(m.exp(x, m.log(x, y)))) < 1e-14  # float64, log then exp: 45 eps


# -- sampling and checks ----------------------------------------------------------------------------


def test_random_point_tangent_and_checks(x64):
    m = _sphere_euclid()
    x = m.random_point(jax.random.key(0), jnp.float64)
    assert [a.dtype for a in x] == [jnp.float64, jnp.float64] and [a.shape for a in x] == [
        (3,),
        (3,),
    ]
    unit = rounding_tolerance(np.float64, n_ops=3)  # residuals of a normalized 3-vector
    assert float(m.check_point(x)) < unit
    # Independent keys per factor: two equal-shaped Euclidean factors get different draws.
    e = Product((Euclidean(3), Euclidean(3))).random_point(jax.random.key(0))
    assert not np.allclose(e[0], e[1])
    u = m.random_tangent(jax.random.key(1), x)
    assert float(m.check_tangent(x, u)) < unit
    # The residual is the largest factor residual.
    off = (1.5 * x[0], x[1])
    np.testing.assert_allclose(m.check_point(off), 0.5, rtol=1e-14)
    bad_u = (u[0] + 0.25 * x[0], u[1])
    np.testing.assert_allclose(m.check_tangent(x, bad_u), 0.25 * np.max(np.abs(x[0])), rtol=1e-12)
    # projx projects each factor.
    px = m.projx(off)
    np.testing.assert_allclose(px[0], x[0], rtol=0, atol=unit)


def test_axioms(dtype):
    check_manifold_axioms(
        Product((Sphere(2), Euclidean(2))), jax.random.key(0), dtype=dtype, n_samples=4
    )


# -- NaN safety and derivatives -----------------------------------------------------------------------


def test_dist_and_log_at_coincident_points_are_nan_free(x64):
    m = _sphere_euclid()
    x = m.random_point(jax.random.key(0), jnp.float64)
    assert float(m.dist(x, x)) == 0.0
    g = jax.grad(lambda a: m.dist(a, x))(x)
    assert all(np.all(np.asarray(leaf) == 0) for leaf in g)
    check_grads_finite(lambda a0, a1: m.dist((a0, a1), x) ** 2, x)
    check_grads_finite(lambda a0, a1: m.norm(x, m.log(x, (a0, a1))), x, order=1)


def test_dist_gradient_matches_finite_differences(x64):
    m = _sphere_euclid()
    x, y = (
        m.random_point(jax.random.key(0), jnp.float64),
        m.random_point(jax.random.key(1), jnp.float64),
    )
    check_grads(lambda a0, a1: m.dist((a0, a1), y), x, order=2, modes=("rev", "fwd"))


def test_vmap_over_batched_tuples():
    m = _sphere_euclid()
    xs, ys = _points(m, jnp.float32, 7, 0), _points(m, jnp.float32, 7, 1)
    batched = jax.vmap(m.dist)(xs, ys)
    single = np.array([m.dist((xs[0][i], xs[1][i]), (ys[0][i], ys[1][i])) for i in range(7)])
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    assert isinstance(Product((Sphere(2),)), Manifold)
