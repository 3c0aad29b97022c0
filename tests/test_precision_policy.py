"""Geometric functions trace their matrix products at ``Precision.HIGHEST``.

On NVIDIA GPUs float32 matrix products default to TF32 (10 mantissa bits, relative rounding
about 1e-3). The platform check of df0eed7 on an H100 failed Grassmann exp/log round trips
(3.8e-4) and parallel transport (1.1e-3) for that reason, so every public function of
``geomjax.manifolds``, ``geomjax.linalg`` and ``geomjax.spdnet`` (and M-FAC) is wrapped in
``geomjax._core.full_precision`` (manifold methods by the ``Manifold`` base class, checked per
method in tests/manifolds/test_shapes.py). Checked on the jaxpr (any backend): every
``dot_general`` of the value and of the gradient is HIGHEST even under a global
``jax_default_matmul_precision`` of ``"bfloat16"``.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import pytest
from _precision import dot_precisions, is_highest

import geomjax.linalg as gl
import geomjax.manifolds as gm
import geomjax.spdnet as gs


def _all_highest(fn, *args):
    with jax.default_matmul_precision("bfloat16"):
        found = dot_precisions(jax.make_jaxpr(fn)(*args).jaxpr)
        scalar = lambda *a: jnp.sum(fn(*a))  # noqa: E731
        found += dot_precisions(jax.make_jaxpr(jax.grad(scalar))(*args).jaxpr)
    assert found, "no matrix product traced: the check would be vacuous"
    return [p for p in found if not is_highest(p)]


@pytest.mark.parametrize("module", [gm, gl, gs], ids=lambda m: m.__name__)
def test_every_public_function_is_wrapped(module):
    names = [n for n in module.__all__ if inspect.isfunction(getattr(module, n))]
    assert names
    factories = {"spectral_fn"}  # builds a function; the function it returns is wrapped
    missing = [
        n
        for n in names
        if n not in factories and not getattr(getattr(module, n), "full_precision", False)
    ]
    assert not missing, f"{module.__name__}: not wrapped in full_precision: {missing}"
    if module is gl:
        assert getattr(gl.spectral_fn(jnp.exp), "full_precision", False)


SPD = jnp.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])


@pytest.mark.parametrize(
    "fn",
    [gl.sqrtm, gl.invsqrtm, gl.logm, gl.expm, lambda x: gl.powm(x, 0.3), gl.spectral_fn(jnp.tanh)],
    ids=["sqrtm", "invsqrtm", "logm", "expm", "powm", "spectral_fn"],
)
def test_linalg_products_are_highest(fn):
    assert not _all_highest(fn, SPD)


def test_spdnet_and_so3_products_are_highest():
    w = jnp.eye(3)[:, :2]
    assert not _all_highest(lambda x: gs.bimap(x, w), SPD)
    assert not _all_highest(lambda x: gs.tangent_space(x, SPD), SPD)
    assert not _all_highest(gm.exp_so3, jnp.array([0.1, 0.2, 0.3]))


def test_mfac_products_are_highest():
    """M-FAC (its Woodbury algebra amplifies TF32 rounding of the Gram matrix by its
    conditioning): the optimizer update and the static inverse's methods."""
    from geomjax.curvature._mfac import MFACInverse
    from geomjax.optim import scale_by_mfac

    g = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    finv = MFACInverse.from_gradients(g, 1e-2)
    assert not _all_highest(finv.ihvp, g[0])
    assert not _all_highest(lambda w: MFACInverse.from_gradients(w, 1e-2).ihvp(g[1]), g)
    tx = scale_by_mfac(3, 1e-2)
    state = tx.init(jnp.zeros(4))
    assert not _all_highest(lambda u: tx.update(u, state)[0], g[0])
