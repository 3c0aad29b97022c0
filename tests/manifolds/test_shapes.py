"""Every manifold method rejects points and tangents of the wrong shape (issue 15).

A method of a manifold takes one point / tangent vector of shape ``point_shape`` /
``tangent_shape``; a batch, a dropped dimension or a wrong size raises ``ValueError`` at trace
time naming the argument and the expected shape (batches go through ``jax.vmap``), and an integer
or complex array raises ``TypeError`` naming the argument. The manifold list is built from
``geomjax.manifolds.__all__`` and the method list from each class, so a new manifold or a new
public method without an entry here fails ``test_every_manifold_and_method_is_listed``.
Every method's matrix products, and its gradient's, are traced at ``Precision.HIGHEST``
(``test_matmuls_traced_at_full_precision``: TF32 on GPUs).
"""

from __future__ import annotations

import functools
import inspect
import re

import jax
import jax.numpy as jnp
import pytest
from _precision import dot_precisions, is_highest

import geomjax.manifolds as gm

# One small instance per public manifold class (a new class without an entry fails below).
FACTORIES = {
    "Euclidean": lambda: gm.Euclidean((2, 3)),
    "Sphere": lambda: gm.Sphere(2),
    "PoincareBall": lambda: gm.PoincareBall(3, 1.0),
    "Lorentz": lambda: gm.Lorentz(2, 1.0),
    "Stiefel": lambda: gm.Stiefel(4, 2),
    "Grassmann": lambda: gm.Grassmann(4, 2),
    "SO3": lambda: gm.SO3(),
    "SE3": lambda: gm.SE3(),
    "Product": lambda: gm.Product((gm.Sphere(2), gm.Euclidean(2))),
    "SPDAffineInvariant": lambda: gm.SPDAffineInvariant(3),
    "SPDBuresWasserstein": lambda: gm.SPDBuresWasserstein(3),
    "SPDGeneralizedBuresWasserstein": lambda: gm.SPDGeneralizedBuresWasserstein(
        jnp.diag(jnp.array([1.0, 2.0, 0.5]))
    ),
    "SPDLogCholesky": lambda: gm.SPDLogCholesky(3),
    "SPDLogEuclidean": lambda: gm.SPDLogEuclidean(3),
    "PowerDeformed": lambda: gm.PowerDeformed(gm.SPDAffineInvariant(3), 0.5),
}
NOT_INSTANTIATED = {"Manifold": "the abstract base class"}

# Argument names of every public method (a new method without an entry fails below).
METHODS = {
    "inner": ("x", "u", "v"),
    "norm": ("x", "u"),
    "proj": ("x", "u"),
    "egrad_to_rgrad": ("x", "g"),
    "exp": ("x", "u"),
    "retr": ("x", "u"),
    "log": ("x", "y"),
    "dist": ("x", "y"),
    "transp": ("x", "y", "u"),
    "geodesic": ("x", "y", "t"),
    "random_point": ("key", "dtype"),
    "random_tangent": ("key", "x"),
    "check_point": ("x",),
    "check_tangent": ("x", "u"),
    "projx": ("x",),
    # extras
    "sqdist": ("x", "y"),
    "log_with_info": ("x", "y"),
    "principal_angles": ("x", "y"),
    "compose": ("x", "y"),
    "inverse": ("x",),
    "act": ("x", "p"),
    "adjoint": ("x",),
    "identity": ("dtype",),
    "origin": ("dtype",),
    "base_point": ("dtype",),
    "mean": ("points", "weights"),
}
POINT_ARGS = ("x", "y")
TANGENT_ARGS = ("u", "v", "g")


def _manifold_names():
    return [
        n
        for n in gm.__all__
        if inspect.isclass(getattr(gm, n)) and issubclass(getattr(gm, n), gm.Manifold)
    ]


def _public_methods(cls):
    return sorted(
        n for n, v in inspect.getmembers(cls) if not n.startswith("_") and inspect.isfunction(v)
    )


CASES = [(m, meth) for m in FACTORIES for meth in _public_methods(getattr(gm, m))]


@functools.cache
def _valid(name):
    """The manifold and valid values of every argument name."""
    m = FACTORIES[name]()
    x = m.random_point(jax.random.key(0))
    y = m.random_point(jax.random.key(1))
    u = m.random_tangent(jax.random.key(2), x)
    if name == "Product":
        points = tuple(jnp.stack([a, b]) for a, b in zip(x, y))
    else:
        points = jnp.stack([x, y])
    values = dict(
        x=x,
        y=y,
        u=u,
        v=u,
        g=u,
        t=0.3,
        key=jax.random.key(2),
        dtype=jnp.float32,
        p=jnp.ones(3),
        points=points,
        weights=jnp.array([0.25, 0.75]),
    )
    return m, values


def _call(m, method, values, **override):
    kwargs = {a: override.get(a, values[a]) for a in METHODS[method]}
    return getattr(m, method)(*kwargs.values())


def _wrong_shapes(shape):
    """A batch, a dropped last dimension and a wrong last size."""
    out = [(2, *shape)]
    if shape:
        out.append(shape[:-1])
        out.append((*shape[:-1], shape[-1] + 1))
    return out


def _shape_str(shape):
    return re.escape(str(tuple(shape)))


def _shaped_args(m, method, values):
    """``(argument, name in the message, expected shape, factor index or None)`` per array
    argument; Product points are checked per factor (named ``x[i]``)."""
    out = []
    for arg in METHODS[method]:
        if arg in POINT_ARGS + TANGENT_ARGS:
            shape = m.point_shape if arg in POINT_ARGS else m.tangent_shape
            if isinstance(m, gm.Product):
                out += [(arg, f"{arg}[{i}]", s, i) for i, s in enumerate(shape)]
            else:
                out.append((arg, arg, shape, None))
        elif arg == "t":
            out.append((arg, arg, (), None))
        elif arg == "p":
            out.append((arg, arg, (3,), None))
        elif arg == "points" and not isinstance(m, gm.Product):
            out.append((arg, arg, values["points"].shape, None))
        elif arg == "weights":
            out.append((arg, arg, (2,), None))
    return out


def _replace(values, arg, factor, new):
    if factor is None:
        return new
    parts = list(values[arg])
    parts[factor] = new
    return tuple(parts)


def test_every_manifold_and_method_is_listed():
    names = set(_manifold_names())
    assert names == set(FACTORIES) | set(NOT_INSTANTIATED), (
        "each public manifold needs a factory here (or a reason not to be instantiated): "
        f"{sorted(names ^ (set(FACTORIES) | set(NOT_INSTANTIATED)))}"
    )
    for name in names:
        missing = set(_public_methods(getattr(gm, name))) - set(METHODS)
        assert not missing, f"{name}: public methods without an argument list here: {missing}"


@pytest.mark.parametrize(("name", "method"), CASES)
def test_wrong_shape_raises_naming_argument_and_shape(name, method):
    m, values = _valid(name)
    shaped = _shaped_args(m, method, values)
    for arg, label, shape, factor in shaped:
        base = values[arg] if factor is None else values[arg][factor]
        for bad_shape in _wrong_shapes(tuple(shape)):
            bad = _replace(values, arg, factor, jnp.zeros(bad_shape, jnp.asarray(base).dtype))
            want = _shape_str(shape) if arg != "points" else r"\(k, 3, 3\)"
            with pytest.raises(ValueError, match=rf"`{re.escape(label)}`.*{want}") as err:
                _call(m, method, values, **{arg: bad})
            if arg in POINT_ARGS + TANGENT_ARGS:
                assert "jax.vmap" in str(err.value)


@pytest.mark.parametrize(("name", "method"), CASES)
def test_wrong_dtype_raises_type_error_naming_argument(name, method):
    m, values = _valid(name)
    for arg, label, shape, factor in _shaped_args(m, method, values):
        if arg in ("t",):
            bad_values = [jnp.asarray(0.3 + 0.0j)]
        else:
            bad_values = [jnp.zeros(shape, jnp.int32), jnp.zeros(shape, jnp.complex64)]
            if arg == "points" and isinstance(m, gm.Product):
                continue
        for bad in bad_values:
            with pytest.raises(TypeError, match=rf"`{re.escape(label)}`"):
                _call(m, method, values, **{arg: _replace(values, arg, factor, bad)})
    if "key" in METHODS[method]:
        with pytest.raises(ValueError, match="`key`.*jax.vmap"):
            _call(m, method, values, key=jax.random.split(jax.random.key(0), 2))
        with pytest.raises(TypeError, match="`key`"):
            _call(m, method, values, key=jnp.zeros(2))
    if "dtype" in METHODS[method]:
        for bad in (jnp.int32, "not-a-dtype"):
            with pytest.raises(TypeError, match="`dtype`"):
                _call(m, method, values, dtype=bad)


@pytest.mark.parametrize(("name", "method"), CASES)
def test_correct_shapes_still_work(name, method):
    # Traced (jax.eval_shape), not run: the checks are trace-time ones, and the values are
    # tested in each manifold's own test file.
    m, values = _valid(name)
    arrays = {a: values[a] for a in METHODS[method] if a != "dtype"}

    def call(arrays):
        return _call(m, method, values, **arrays)

    out = jax.eval_shape(call, arrays)
    if method in ("inner", "norm", "dist", "sqdist", "check_point", "check_tangent"):
        assert out.shape == ()
    elif method in ("proj", "egrad_to_rgrad", "exp", "retr", "log", "transp", "geodesic"):
        assert jax.tree.map(lambda a: a.shape, out) == tuple(m.point_shape)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_product_points_must_be_tuples(name):
    m = gm.Product((FACTORIES[name](), gm.Euclidean(1)))
    x = m.random_point(jax.random.key(0))
    with pytest.raises(ValueError, match=r"`x`.*2 factors"):
        m.dist(jnp.zeros(3), x)
    with pytest.raises(ValueError, match=r"`y\[0\]"):
        m.dist(x, jax.tree.map(lambda a: jnp.stack([a, a]), x))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_checks_see_per_example_shapes_under_jit_and_vmap(name):
    m, values = _valid(name)
    x, y, u = values["x"], values["y"], values["u"]
    stack = lambda a, b: jnp.stack([a, b])  # noqa: E731
    xs, us = jax.tree.map(stack, x, y), jax.tree.map(stack, u, u)
    out = jax.jit(jax.vmap(m.proj))(xs, us)
    assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, us)
    label = "x[0]" if isinstance(m, gm.Product) else "x"
    with pytest.raises(ValueError, match=rf"`{re.escape(label)}`.*jax.vmap"):
        jax.jit(m.proj)(xs, us)
    # The checks run while tracing: grad, jvp and vmap-of-grad see one point each.
    grads = jax.vmap(jax.grad(lambda a, b: m.inner(a, b, b), argnums=1))(xs, us)
    assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, us)


# -- the cases of the issue ------------------------------------------------------------------


@pytest.mark.parametrize(
    "manifold",
    [gm.SPDLogEuclidean(4), gm.SPDLogCholesky(4), gm.Euclidean((4, 4)), gm.SPDAffineInvariant(4)],
    ids=lambda m: type(m).__name__,
)
def test_issue_stacks_are_rejected(manifold):
    x = jnp.broadcast_to(2.0 * jnp.eye(4), (10, 4, 4))
    x5 = jnp.broadcast_to(x, (5, 10, 4, 4))
    with pytest.raises(ValueError, match=r"`x` must be one point of shape \(4, 4\).*jax\.vmap"):
        manifold.dist(x5, x)
    with pytest.raises(ValueError, match=r"`x`.*\(4, 4\); got shape \(10, 4, 4\)"):
        manifold.dist(x, x[-1])
    with pytest.raises(ValueError, match=r"`y`.*\(4, 4\); got shape \(10, 4, 4\)"):
        manifold.dist(x[-1], x)


def test_issue_sphere_point_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"Sphere\.dist: argument `x`.*\(4,\); got shape \(3,\)"):
        gm.Sphere(3).dist(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0]))


# -- functions over stacks --------------------------------------------------------------------


def test_frechet_mean_checks_its_stack():
    pts = jnp.eye(3)
    with pytest.raises(ValueError, match=r"`points`.*\(n, 4\)"):
        gm.frechet_mean(gm.Sphere(3), pts)
    with pytest.raises(ValueError, match=r"`weights`.*\(3,\)"):
        gm.frechet_mean(gm.Sphere(2), pts, jnp.ones(2))


def test_loki_checks_label_points_against_the_metric():
    probs = jnp.array([0.5, 0.5])
    labels = jnp.eye(3)[:2]
    assert int(gm.loki_predict(probs, labels, metric=gm.Sphere(2))) in (0, 1)
    with pytest.raises(ValueError, match=r"`label_points_or_distances`.*\(2, 4\)"):
        gm.loki_predict(probs, labels, metric=gm.Sphere(3))
    with pytest.raises(ValueError, match="`candidates`"):
        gm.loki_predict(probs, labels, metric=gm.Sphere(2), candidates=jnp.ones(3))
    with pytest.raises(TypeError, match="`label_points_or_distances`"):
        gm.loki_scores(probs, jnp.eye(3, dtype=jnp.int32)[:2], metric=gm.Sphere(2))


def test_bures_wasserstein_sqdist_rejects_stacks():
    a = jnp.broadcast_to(jnp.eye(3), (2, 3, 3))
    with pytest.raises(ValueError, match=r"`a` and `b`.*\(n, n\)"):
        gm.bures_wasserstein_sqdist(a, a)


# -- matrix products at full precision (GPU: float32 products default to TF32) ----------------


@pytest.mark.parametrize(("name", "method"), CASES)
def test_matmuls_traced_at_full_precision(name, method):
    """Every matrix product of every manifold method, and of its gradient, is traced at
    ``Precision.HIGHEST`` (the base class wraps public methods in ``full_precision``): on
    NVIDIA GPUs float32 products otherwise run as TF32 and round to about 1e-3, which broke
    Grassmann exp/log round trips and parallel transport in the platform check of df0eed7.
    Checked on the jaxpr, so it holds on any backend; a global default precision of
    ``"bfloat16"`` must not leak in."""
    m, values = _valid(name)
    with jax.default_matmul_precision("bfloat16"):
        jaxpr = jax.make_jaxpr(lambda: _call(m, method, values))()
        found = dot_precisions(jaxpr.jaxpr)
        diff = [a for a in METHODS[method] if a in ("x", "y", "u", "v", "g")]
        if diff and method not in ("check_point", "check_tangent", "random_tangent"):
            arg = diff[0]

            def scalar(z):
                out = _call(m, method, values, **{arg: z})
                return sum(jnp.sum(jnp.asarray(o)) for o in jax.tree.leaves(out))

            grad_jaxpr = jax.make_jaxpr(jax.grad(scalar))(values[arg])
            found += dot_precisions(grad_jaxpr.jaxpr)
    bad = [p for p in found if not is_highest(p)]
    assert not bad, f"{name}.{method}: {len(bad)} of {len(found)} products not HIGHEST: {bad[:3]}"
