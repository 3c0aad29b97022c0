"""What geomjax promises for float32 equivariance when matmuls run at reduced precision.

On NVIDIA GPUs float32 products default to TF32 (10 mantissa bits). geomjax computes every
product with coordinates, frames and rotations at full float32 precision
(``_core.precise_matmul``), so purely geometric maps (PCA frames, frame averaging of a
function without matmuls, Gram-Schmidt frames) keep float32 accuracy under any
``jax_default_matmul_precision``; networks (EGNN, canonicalizer MLPs) follow the default, and
their equivariance error is bounded by the effective matmul epsilon (``matmul_eps``). On the CPU
the precision setting changes nothing and these tests check the float32 bounds; on a GPU they
check the pinning and the TF32 bound.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import egnn_layer, frame_average, gram_schmidt_frame, init_egnn_layer
from geomjax.testing import assert_equivariant, matmul_eps, rounding_tolerance

REDUCED = ["tensorfloat32", "bfloat16"]


def _points(n=8, seed=0):
    rng = np.random.default_rng(seed)
    # well-separated covariance eigenvalues (9, 4, 1): a well-conditioned PCA frame
    return rng.standard_normal((n, 3)) * np.array([3.0, 2.0, 1.0])


@pytest.mark.parametrize("precision", REDUCED)
def test_frame_average_keeps_float32_accuracy_under_reduced_default(precision):
    x64 = _points()

    def g(y):  # elementwise only: the frame code is the only source of products
        return jnp.sum(y**3, axis=0) + jnp.sum(jnp.abs(y), axis=0)

    with jax.enable_x64(True):
        ref = np.asarray(frame_average(g, jnp.asarray(x64), group="E3", output="invariant"))
    with jax.default_matmul_precision(precision):
        got = jax.jit(lambda x: frame_average(g, x, group="E3", output="invariant"))(
            jnp.asarray(x64, jnp.float32)
        )
    # Round-off bound: each of the n = 8 terms of a sum rounds at eps |term| (sqrt(n) growth),
    # amplified by the sums' cancellation sum|terms| / |sum| (from the data), and the frame's
    # eigenvectors carry eps * lambda_max / gap = eps * 9 / 5, which y -> y^3 triples.
    xc = x64 - x64.mean(axis=0)
    cancellation = np.linalg.norm(np.sum(np.abs(xc) ** 3 + np.abs(xc), axis=0)) / np.linalg.norm(
        ref
    )
    tol = rounding_tolerance(jnp.float32, n_ops=8, cond=cancellation * (1 + 3 * 9.0 / 5.0))
    err = np.linalg.norm(np.asarray(got, np.float64) - ref) / np.linalg.norm(ref)
    assert err <= tol, (err, tol)
    # TF32 products in the frame would perturb the coordinates by ~2^-10 relative, 8192 times
    # float32's epsilon: far above this bound, so the test tells pinned from unpinned.
    tf32_factor = matmul_eps(jnp.float32, "tensorfloat32", backend="gpu") / np.finfo(np.float32).eps
    assert tol * tf32_factor > 1.0


@pytest.mark.parametrize("precision", REDUCED)
def test_gram_schmidt_frame_is_float32_orthonormal_under_reduced_default(precision):
    rng = np.random.default_rng(3)
    v1, v2 = rng.standard_normal(3), rng.standard_normal(3)
    with jax.default_matmul_precision(precision):
        frame = jax.jit(gram_schmidt_frame)(
            jnp.asarray(v1, jnp.float32), jnp.asarray(v2, jnp.float32)
        )
    frame = np.asarray(frame, np.float64)
    # orthonormality to a few float32 roundings per entry (3-term dot products)
    err = np.max(np.abs(frame @ frame.T - np.eye(3)))
    assert err <= rounding_tolerance(jnp.float32, n_ops=3, cond=4.0)


def test_egnn_equivariance_within_the_default_matmul_bound():
    """A float32 EGNN layer at the platform's default precision (TF32 on a GPU): equivariant to
    the round-off bound of assert_equivariant computed with that precision's epsilon."""
    rng = np.random.default_rng(4)
    n, f, a, hdim = 6, 5, 2, 16
    senders = np.array([j for i in range(n) for j in range(n) if i != j], np.int32)
    receivers = np.array([i for i in range(n) for j in range(n) if i != j], np.int32)
    h = jnp.asarray(rng.standard_normal((n, f)), jnp.float32)
    x = jnp.asarray(rng.standard_normal((n, 3)) * 1.5, jnp.float32)
    e = jnp.asarray(rng.standard_normal((len(senders), a)), jnp.float32)
    params = init_egnn_layer(jax.random.key(4), f, a, hdim, coord_gain=1.0)
    layer = jax.jit(
        lambda h, x, s, r, e: egnn_layer(params, h, x, s, r, edge_attr=e)  # noqa: E731
    )
    err = assert_equivariant(
        layer,
        jax.random.key(5),
        (h, x, jnp.asarray(senders), jnp.asarray(receivers), e),
        in_kinds=("scalar", "position", "index", "index", "edge"),
        out_kinds=("scalar", "position"),
        group="E3",
        permute=True,
        matmul_precision=None,  # the caller's (platform default) precision and its epsilon
    )
    assert np.isfinite(err)
