"""Tests for check_manifold_axioms: passes on correct manifolds, catches each kind of breakage."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.manifolds._euclidean import Euclidean
from geomjax.manifolds._product import Product
from geomjax.manifolds._sphere import Sphere
from geomjax.testing._manifold_axioms import check_manifold_axioms

KEYS = {
    "check_point",
    "check_tangent",
    "norm_inner",
    "exp_zero",
    "dist_self",
    "log_self",
    "exp_log",
    "log_exp",
    "dist_exp",
    "dist_log",
    "dist_symmetry",
    "triangle",
    "transp_tangent",
    "transp_isometry",
    "retr_exp",
    "retr_order",
}


# -- deliberately broken manifolds (plain subclasses; the checker needs no pytree registration) ---


class ExpTooFast(Sphere):
    """exp runs the geodesic at 1.1 x speed: exp and log are no longer inverse."""

    def exp(self, x, u):
        return super().exp(x, 1.1 * jnp.asarray(u))


class ExpSlightlyOff(Sphere):
    def exp(self, x, u):
        return (1.0 + 1e-3) * super().exp(x, u)


class LogWrongSign(Sphere):
    def log(self, x, y):
        return -super().log(x, y)


class DistTooLong(Sphere):
    def dist(self, x, y):
        return 2.0 * super().dist(x, y)


class RetrStays(Sphere):
    """retr(x, u) = x: on the manifold, but not a retraction (error of order t, not t^2)."""

    def retr(self, x, u):
        return jnp.asarray(x)


class ProjectionTransport(Sphere):
    """Transport by projection onto the target tangent space: tangent, but not an isometry."""

    def transp(self, x, y, u):
        return self.proj(y, u)


class OffManifoldPoints(Sphere):
    def random_point(self, key, dtype=jnp.float32):
        return 1.01 * super().random_point(key, dtype)


class NotTangent(Euclidean):
    def check_tangent(self, x, u):
        return jnp.asarray(1.0, jnp.asarray(x).dtype)


class Float32Only(Euclidean):
    def random_point(self, key, dtype=jnp.float32):
        return jax.random.normal(key, self.shape, jnp.float32)


# -- correct manifolds pass ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "manifold",
    [Euclidean(3), Sphere(2), Product((Sphere(2), Euclidean(2)))],
    ids=["euclidean", "sphere", "product"],
)
def test_correct_manifolds_pass(manifold, dtype):
    errors = check_manifold_axioms(manifold, jax.random.key(0), dtype=dtype, n_samples=4)
    assert set(errors) == KEYS
    assert all(np.isfinite(v) and v >= 0 for v in errors.values())
    # Independent sanity of the measurements: for Euclidean space everything is exact up to a
    # few ulps, and retr = exp exactly.
    if isinstance(manifold, Euclidean):
        assert errors["retr_exp"] == 0.0 and errors["retr_order"] == 0.0
        assert errors["exp_log"] < 10 * jnp.finfo(dtype).eps


def test_sphere_projection_retraction_is_second_order():
    # retr(x, u) = (x + u)/|x + u| differs from exp by ~|u|^3/3: the ratio e(t/4)/e(t) ~ 1/64.
    errors = check_manifold_axioms(Sphere(2), jax.random.key(1), n_samples=4)
    assert 1 / 100 < errors["retr_order"] < 1 / 40
    # e(0.5) for |u| = 0.5: tan-based closed form of the angle between the two points,
    # atan(0.5) - 0.5 = -0.0364 (the retraction lands at angle atan|u| instead of |u|).
    # a float32 distance of 0.036 between unit vectors: absolute round-off ~ a few eps32, so
    # relative ~1e-5 (cond 1 / 0.036)
    np.testing.assert_allclose(errors["retr_exp"], 0.5 - np.arctan(0.5), rtol=1e-4)


# -- broken manifolds fail with a message naming the axiom ---------------------------------------


@pytest.mark.parametrize(
    "manifold, match",
    [
        (ExpTooFast(2), r"exp\(x, log\(x, y\)\) == y"),
        (LogWrongSign(2), r"log\(x, exp\(x, u\)\) == u"),
        (DistTooLong(2), r"dist\(x, y\) == norm\(x, log\(x, y\)\)"),
        (RetrStays(2), r"retr agrees with exp to first order"),
        (ProjectionTransport(2), r"transp preserves inner products"),
        (OffManifoldPoints(2), r"on the manifold \(check_point\)"),
        (NotTangent(2), r"random_tangent is tangent"),
    ],
    ids=["exp", "log", "dist", "retr", "transp", "point", "tangent"],
)
def test_broken_manifolds_fail(manifold, match):
    with pytest.raises(AssertionError, match=match):
        check_manifold_axioms(manifold, jax.random.key(0), n_samples=4)


def test_exp_breakage_reports_error_and_tolerance():
    with pytest.raises(AssertionError) as info:
        check_manifold_axioms(ExpTooFast(2), jax.random.key(0), n_samples=4)
    msg = str(info.value)
    assert "ExpTooFast" in msg and "[exp_log]" in msg and "tolerance" in msg
    # exp overshoots by 10%: dist(x, exp(x, u)) = 1.1 |u| = 0.55 instead of 0.5.
    assert "[dist_exp]: error 5.0" in msg


def test_projection_transport_passes_without_isometry_flag():
    errors = check_manifold_axioms(
        ProjectionTransport(2), jax.random.key(0), n_samples=4, transport_isometry=False
    )
    assert errors["transp_isometry"] > 1e-3  # still measured
    assert errors["transp_tangent"] < 1e-5


def test_tolerances_can_be_loosened():
    # exp lands 1e-3 off the sphere: fails at the default tolerance, passes with atol = 1e-2.
    with pytest.raises(AssertionError, match="check_point"):
        check_manifold_axioms(ExpSlightlyOff(2), jax.random.key(0), n_samples=4)
    check_manifold_axioms(ExpSlightlyOff(2), jax.random.key(0), n_samples=4, atol=1e-2)


def test_tangent_scale_controls_the_step():
    errors = check_manifold_axioms(Sphere(2), jax.random.key(0), n_samples=4, tangent_scale=0.1)
    # as above at a distance of 3.3e-4: relative round-off ~1e-3 (cond 1 / 3.3e-4)
    np.testing.assert_allclose(errors["retr_exp"], 0.1 - np.arctan(0.1), rtol=1e-2)


# -- argument validation -----------------------------------------------------------------------------


def test_float64_without_x64_raises():
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="jax_enable_x64"):
            check_manifold_axioms(Sphere(2), jax.random.key(0), dtype=jnp.float64)


def test_wrong_point_dtype_is_reported(x64):
    with pytest.raises(AssertionError, match="other dtype"):
        check_manifold_axioms(Float32Only(2), jax.random.key(0), dtype=jnp.float64, n_samples=2)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(n_samples=0), ValueError, "n_samples"),
        (dict(n_samples=2.0), ValueError, "n_samples"),
        (dict(tangent_scale=0.0), ValueError, "tangent_scale"),
        (dict(dtype=jnp.int32), ValueError, "dtype"),
    ],
)
def test_bad_arguments_raise(kwargs, err, match):
    with pytest.raises(err, match=match):
        check_manifold_axioms(Sphere(2), jax.random.key(0), **kwargs)


def test_non_manifold_raises():
    with pytest.raises(TypeError, match="manifold"):
        check_manifold_axioms(object(), jax.random.key(0))
