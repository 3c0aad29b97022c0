"""assert_equivariant passes on equivariant functions, fails on broken ones; Haar samplers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.testing import rounding_tolerance
from geomjax.testing._equivariance import (
    assert_equivariant,
    random_orthogonal,
    random_permutation,
    random_rotation,
)

N, F = 6, 4


def _points(key, dtype=jnp.float32, n=N, d=3):
    return jax.random.normal(key, (n, d), dtype=dtype)


def _graph(n=N):
    """Fully connected directed graph plus two padding edges (sentinel index n, mask False)."""
    s, r = np.nonzero(~np.eye(n, dtype=bool))
    senders = np.concatenate([s, [n, 0]]).astype(np.int32)
    receivers = np.concatenate([r, [n, 0]]).astype(np.int32)
    edge_mask = np.concatenate([np.ones(len(s), bool), [False, False]])
    return jnp.asarray(senders), jnp.asarray(receivers), jnp.asarray(edge_mask)


# ----------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("reflections", [True, False])
def test_random_orthogonal_is_haar(key, reflections):
    with jax.enable_x64(True):
        qs = jax.vmap(lambda k: random_orthogonal(k, 3, jnp.float64, reflections))(
            jax.random.split(key, 4000)
        )
        qs = np.asarray(qs)
    eye = np.broadcast_to(np.eye(3), qs.shape)
    # float64 Householder QR of 3x3: orthogonal to a few eps64; 1e-12 = 4500 eps64
    np.testing.assert_allclose(np.einsum("bji,bjk->bik", qs, qs), eye, rtol=0, atol=1e-12)
    dets = np.linalg.det(qs)
    np.testing.assert_allclose(np.abs(dets), 1.0, rtol=0, atol=1e-12)
    if reflections:
        # Haar on O(3): each determinant sign with probability 1/2 (binomial std ~0.008).
        assert abs(np.mean(dets > 0) - 0.5) < 0.05
    else:
        assert np.all(dets > 0)
    # Haar moments (independent of the sampler): E[Q_ij] = 0, E[Q_ij^2] = 1/3, and for both
    # O(3) and SO(3) E[tr Q] = 0, E[(tr Q)^2] = 1 (Diaconis-Shahshahani; for SO(3) from the
    # angle density (1 - cos t) / pi). Monte Carlo standard errors ~0.01-0.02.
    np.testing.assert_allclose(qs.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose((qs**2).mean(axis=0), 1.0 / 3.0, rtol=0, atol=0.03)
    tr = np.trace(qs, axis1=1, axis2=2)
    assert abs(tr.mean()) < 0.06
    assert abs((tr**2).mean() - 1.0) < 0.1


def test_random_rotation_and_dtype(key):
    r = random_rotation(key, 4)
    assert r.dtype == jnp.float32 and r.shape == (4, 4)
    det_tol = rounding_tolerance(jnp.float32, n_ops=16, growth="linear")  # LU det of 4x4
    assert float(jnp.linalg.det(r)) == pytest.approx(1.0, abs=det_tol)
    assert random_orthogonal(key, 1, reflections=False).tolist() == [[1.0]]
    with pytest.raises(ValueError, match="`d`"):
        random_orthogonal(key, 0)
    with pytest.raises(TypeError, match="`dtype`"):
        random_orthogonal(key, 3, jnp.int32)


def test_random_permutation(key):
    p = random_permutation(key, 7)
    assert p.dtype == jnp.int32
    assert sorted(p.tolist()) == list(range(7))
    with pytest.raises(ValueError, match="`n`"):
        random_permutation(key, 0)


# ------------------------------------------------------------------ equivariant functions


def centre(x):
    return x - jnp.mean(x, axis=0)


def edge_distances(x, senders, receivers):
    return jnp.sqrt(jnp.sum((x[senders] - x[receivers]) ** 2, axis=-1))


def sum_pool(h, x):
    r = jnp.sum((x - x.mean(axis=0)) ** 2, axis=-1, keepdims=True)
    return jnp.sum(jnp.tanh(h) * jnp.exp(-r) + r, axis=0)


def message_passing(h, x, v, senders, receivers, edge_mask, node_mask):
    """One EGNN-like layer written independently of geomjax.equivariant."""
    n = h.shape[0]
    s = jnp.clip(senders, 0, n - 1)
    r = jnp.clip(receivers, 0, n - 1)
    diff = x[r] - x[s]
    d2 = jnp.sum(diff**2, axis=-1, keepdims=True)
    m = jnp.tanh(h[s] + h[r] * 0.5 + d2) * edge_mask[:, None]
    w = jnp.sum(m, axis=-1, keepdims=True)
    cnt = jax.ops.segment_sum(edge_mask.astype(x.dtype), r, n)[:, None]
    x_new = x + jax.ops.segment_sum(diff * w, r, n) / jnp.maximum(cnt, 1.0) + 0.1 * v
    h_new = h + jax.ops.segment_sum(m, r, n)
    v_new = v * jnp.sum(h_new, axis=-1, keepdims=True)
    mask = node_mask[:, None]
    return h_new * mask, jnp.where(mask, x_new, x), v_new * mask


@pytest.mark.parametrize("permute", [False, True])
def test_centre_passes(key, dtype, permute):
    x = _points(key, dtype)
    err = assert_equivariant(
        centre,
        jax.random.key(1),
        (x,),
        in_kinds=("position",),
        out_kinds="vector",
        permute=permute,
    )
    assert err < rounding_tolerance(dtype, n_ops=N)  # a mean of N points: sqrt(N) roundings


def test_edge_distances_invariant_under_permutation(key, dtype):
    x = _points(key, dtype)
    s, r, _ = _graph()
    s, r = s[:-2], r[:-2]
    err = assert_equivariant(
        edge_distances,
        jax.random.key(2),
        (x, s, r),
        in_kinds=("position", "index", "index"),
        out_kinds="edge",
        permute=True,
    )
    assert err < rounding_tolerance(dtype, n_ops=3)  # a 3-term norm, no amplification
    # Declaring the indices static (not remapped) must break it.
    with pytest.raises(AssertionError, match="kind 'edge'"):
        assert_equivariant(
            edge_distances,
            jax.random.key(2),
            (x, s, r),
            in_kinds=("position", "static", "static"),
            out_kinds="edge",
            permute=True,
        )


def test_sum_pool_invariant(key):
    h = jax.random.normal(key, (N, F))
    x = _points(jax.random.key(3))
    assert_equivariant(
        sum_pool,
        jax.random.key(4),
        (h, x),
        in_kinds=("scalar", "position"),
        out_kinds="graph_scalar",
        group="E3",
        permute=True,
        n_trials=4,
    )


def test_message_passing_equivariant(key, dtype):
    kh, kx, kv = jax.random.split(key, 3)
    h = jax.random.normal(kh, (N, F), dtype)
    x = _points(kx, dtype)
    v = jax.random.normal(kv, (N, 3), dtype)
    s, r, em = _graph()
    node_mask = jnp.arange(N) < N - 1
    err = assert_equivariant(
        message_passing,
        jax.random.key(5),
        (h, x, v, s, r, em, node_mask),
        in_kinds=("scalar", "position", "vector", "index", "index", "static", "node_mask"),
        out_kinds=("scalar", "position", "vector"),
        group="E3",
        permute=True,
    )
    assert err < rounding_tolerance(dtype, n_ops=N)  # segment sums of <= N messages


def test_other_dimensions(key):
    for d in (2, 4):
        x = _points(key, d=d)
        assert_equivariant(centre, key, (x,), in_kinds=("position",), out_kinds="vector")
        with pytest.raises(AssertionError):
            assert_equivariant(
                lambda x: x * jnp.arange(1.0, d + 1.0),
                key,
                (x,),
                in_kinds=("vector",),
                out_kinds="vector",
            )


# -------------------------------------------------------------- non-equivariant functions


def test_constant_shift_fails_rotations(key):
    x = _points(key)
    shift = lambda x: x + jnp.array([1.0, -2.0, 0.5])  # noqa: E731
    with pytest.raises(AssertionError, match="trial 0"):
        assert_equivariant(
            shift, key, (x,), in_kinds=("position",), out_kinds="position", group="SO3"
        )
    # It does commute with translations alone (group 'none' + permutation also passes).
    assert_equivariant(
        shift, key, (x,), in_kinds=("position",), out_kinds="position", group="none", permute=True
    )


@pytest.mark.parametrize(
    "f",
    [lambda v: v[:, ::-1], lambda v: v * jnp.array([1.0, 2.0, 3.0]), lambda v: v[:, 0:1] * v],
    ids=["swap", "anisotropic", "component"],
)
@pytest.mark.parametrize("group", ["SO3", "O3"])
def test_coordinate_dependent_fails(key, f, group):
    v = _points(key)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(f, key, (v,), in_kinds=("vector",), out_kinds="vector", group=group)


def test_position_dependent_fails_permutation(key):
    h = jax.random.normal(key, (N, F))
    first = lambda h: jnp.broadcast_to(h[0], h.shape)  # noqa: E731
    with pytest.raises(AssertionError, match="with permutations"):
        assert_equivariant(
            first, key, (h,), in_kinds=("scalar",), out_kinds="scalar", group="none", permute=True
        )
    # x - x[0] is E(3)-equivariant but depends on the node order.
    x = _points(key)
    rel = lambda x: x - x[0]  # noqa: E731
    assert_equivariant(rel, key, (x,), in_kinds=("position",), out_kinds="vector")
    with pytest.raises(AssertionError):
        assert_equivariant(rel, key, (x,), in_kinds=("position",), out_kinds="vector", permute=True)


def test_wrong_output_kind_fails(key):
    x = _points(key)
    # centre() is translation invariant; declaring its output a position must fail on E3.
    with pytest.raises(AssertionError, match="kind 'position'"):
        assert_equivariant(centre, key, (x,), in_kinds=("position",), out_kinds="position")
    # and an invariant declared as a vector fails too.
    with pytest.raises(AssertionError):
        assert_equivariant(
            lambda x: jnp.sum(centre(x) ** 2, axis=0),
            key,
            (x,),
            in_kinds=("position",),
            out_kinds="graph_vector",
        )


def test_non_finite_fails(key):
    x = _points(key)
    with pytest.raises(AssertionError, match="relative inf"):
        assert_equivariant(
            lambda x: jnp.full_like(x, jnp.inf), key, (x,), in_kinds=("vector",), out_kinds="vector"
        )


# ------------------------------------------------------------------ dtype-aware tolerance


def _perturbed(eps):
    """Equivariant up to a non-equivariant term of relative size ~eps."""
    return lambda x: x + eps * x[:, ::-1]


def _default_rtol(dtype, n_inputs, cond=16.0):
    """The documented default of assert_equivariant: 4 eps sqrt(n) cond (full-precision products)."""
    return rounding_tolerance(dtype, n_ops=n_inputs, cond=cond)


def test_tolerance_float32_vs_float64(key):
    x32 = _points(key)  # 18 float inputs: default rtol 4 eps32 sqrt(18) 16 = 3.2e-5
    rtol32 = _default_rtol(jnp.float32, N * 3)
    assert 3.2e-5 < rtol32 < 3.3e-5
    err32 = assert_equivariant(
        _perturbed(1e-7), key, (x32,), in_kinds=("vector",), out_kinds="vector"
    )
    assert err32 < rtol32
    with pytest.raises(AssertionError, match=f"rtol {rtol32:.1e}"):
        assert_equivariant(_perturbed(1e-4), key, (x32,), in_kinds=("vector",), out_kinds="vector")
    with jax.enable_x64(True):
        x64 = _points(key, jnp.float64)
        rtol64 = _default_rtol(jnp.float64, N * 3)  # 6.0e-14
        with pytest.raises(AssertionError, match=f"rtol {rtol64:.1e}"):
            assert_equivariant(
                _perturbed(1e-12), key, (x64,), in_kinds=("vector",), out_kinds="vector"
            )
        # The measured error is of the size of the injected term (~1e-7, O(1) factor).
        err64 = assert_equivariant(
            _perturbed(1e-7), key, (x64,), in_kinds=("vector",), out_kinds="vector", rtol=1e-5
        )
        assert 1e-8 < err64 < 1e-6
        assert_equivariant(_perturbed(1e-15), key, (x64,), in_kinds=("vector",), out_kinds="vector")


def test_default_tolerance_grows_with_inputs_and_cond(key):
    """sqrt(n) over the non-static float inputs, times `cond`; static arguments do not count."""
    x = _points(key, n=24)  # 72 inputs
    params = jnp.ones(1000)
    f = lambda x, p: x + 1e-4 * x[:, ::-1]  # noqa: E731  relative violation ~1e-4
    rtol = _default_rtol(jnp.float32, 72)
    with pytest.raises(AssertionError, match=f"rtol {rtol:.1e}"):
        assert_equivariant(f, key, (x, params), in_kinds=("vector", "static"), out_kinds="vector")
    # an explicit condition-number budget of 64 (4 x the default) admits it
    assert_equivariant(
        f, key, (x, params), in_kinds=("vector", "static"), out_kinds="vector", cond=64.0
    )
    with pytest.raises(ValueError, match="`cond`"):
        assert_equivariant(
            f, key, (x, params), in_kinds=("vector", "static"), out_kinds="vector", cond=0.5
        )


def test_matmul_precision(key):
    """f runs under `matmul_precision`; the default rtol uses that precision's epsilon."""
    x = _points(key)
    seen = []

    def f(x):
        seen.append(jax.config.jax_default_matmul_precision)
        return x + 1e-4 * x[:, ::-1]

    with pytest.raises(AssertionError):
        assert_equivariant(f, key, (x,), in_kinds=("vector",), out_kinds="vector")
    assert set(seen) == {"highest"}
    # at TF32 the budget is 4 * 2^-10 * sqrt(18) * 16 = 0.27: a 1e-4 violation is round-off there
    with jax.default_matmul_precision("tensorfloat32"):
        assert_equivariant(
            f, key, (x,), in_kinds=("vector",), out_kinds="vector", matmul_precision=None
        )
    assert seen[-1] == "tensorfloat32"
    with pytest.raises(ValueError, match="`matmul_precision`"):
        assert_equivariant(
            f, key, (x,), in_kinds=("vector",), out_kinds="vector", matmul_precision="quad"
        )


def test_atol_for_zero_outputs(key):
    x = _points(key)
    small = lambda x: 1e-9 * x[:, ::-1]  # noqa: E731
    # Relative error is O(1); an absolute tolerance above the output size lets it pass.
    with pytest.raises(AssertionError):
        assert_equivariant(small, key, (x,), in_kinds=("vector",), out_kinds="vector")
    assert_equivariant(small, key, (x,), in_kinds=("vector",), out_kinds="vector", atol=1e-6)


# --------------------------------------------------------------------------- chirality


def cross_of_edges(x):
    """A pseudo-vector: rotates with R but picks up det(R) under reflections."""
    return jnp.cross(x[1] - x[0], x[2] - x[0])


def triple_product(x):
    """A pseudo-scalar: invariant under SE(3), flips sign under reflections."""
    return jnp.linalg.det(jnp.stack([x[1] - x[0], x[2] - x[0], x[3] - x[0]]))


def test_reflections_distinguish_chirality(key, dtype):
    x = _points(key, dtype)
    for group in ("SO3", "SE3"):
        assert_equivariant(
            cross_of_edges, key, (x,), in_kinds=("position",), out_kinds="graph_vector", group=group
        )
        assert_equivariant(
            triple_product, key, (x,), in_kinds=("position",), out_kinds="graph_scalar", group=group
        )
    for group in ("O3", "E3"):
        # n_trials=1: the first O3/E3 trial is always a reflection.
        with pytest.raises(AssertionError, match="det -1"):
            assert_equivariant(
                cross_of_edges,
                key,
                (x,),
                in_kinds=("position",),
                out_kinds="graph_vector",
                group=group,
                n_trials=1,
            )
        with pytest.raises(AssertionError, match="det -1"):
            assert_equivariant(
                triple_product,
                key,
                (x,),
                in_kinds=("position",),
                out_kinds="graph_scalar",
                group=group,
                n_trials=1,
            )


# -------------------------------------------------------------------------- validation


def test_bad_arguments(key):
    x = _points(key)
    with pytest.raises(ValueError, match="`in_kinds`"):
        assert_equivariant(centre, key, (x,), in_kinds=("position", "scalar"), out_kinds="vector")
    with pytest.raises(ValueError, match="`in_kinds`"):
        assert_equivariant(centre, key, (x,), in_kinds=("points",), out_kinds="vector")
    with pytest.raises(ValueError, match="`out_kinds`"):
        assert_equivariant(centre, key, (x,), in_kinds=("position",), out_kinds="vec")
    with pytest.raises(ValueError, match="`group`"):
        assert_equivariant(
            centre, key, (x,), in_kinds=("position",), out_kinds="vector", group="SU2"
        )
    with pytest.raises(ValueError, match="tests nothing"):
        assert_equivariant(
            centre, key, (x,), in_kinds=("position",), out_kinds="vector", group="none"
        )
    with pytest.raises(ValueError, match="needs a 'vector'"):
        assert_equivariant(jnp.tanh, key, (x,), in_kinds=("scalar",), out_kinds="scalar")
    with pytest.raises(ValueError, match="last-axis dimension"):
        assert_equivariant(
            lambda a, b: a, key, (x, x[:, :2]), in_kinds=("vector", "vector"), out_kinds="vector"
        )
    with pytest.raises(ValueError, match="share axis 0"):
        assert_equivariant(
            lambda a, b: a,
            key,
            (x, x[:3]),
            in_kinds=("vector", "scalar"),
            out_kinds="vector",
            permute=True,
        )
    with pytest.raises(ValueError, match="tuple of 2"):
        assert_equivariant(
            centre, key, (x,), in_kinds=("position",), out_kinds=("vector", "scalar")
        )
