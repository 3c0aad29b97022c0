"""The steerable layer of examples/nbody_egnn.py's SEGNN (``O3TensorProduct``) against an
independent reference: e3nn-jax 0.21's ``legacy.FunctionalFullyConnectedTensorProduct``
(optional oracle, skipped when not importable).

What is checked: the weight layout (geomjax's fully connected product orders its weights by
output entry, then path, then ``(u, v, w)``; the test maps every e3nn instruction onto its block)
and the parametrization of the official SEGNN code (PyTorch e3nn ``normalization="component"``
with the ``1/sqrt(F_c)`` rescaling of ``O3TensorProduct``): the layer must compute
:math:`y_c = \\sum_p \\theta_p\\, \\sqrt{2 l_c + 1}\\, w_{3j}\\, x\\, a + b_c`, the raw weights
acting unscaled. e3nn-jax with ``gradient_normalization="element"`` computes the same sum
without the :math:`\\sqrt{2 l_c + 1}`, so its weights are passed times that factor (segnn-jax
uses that convention; it differs from the official code on the ``l > 0`` outputs only).

Tolerance (float32, first principles): each output component is a sum of at most
``F = 130`` products (the largest fan-in, message layer 1 of the paper's model) evaluated in a
different order by the two libraries; with unit-scale inputs and weights bounded by
``1/sqrt(F)`` the rounding of either side is about ``eps sqrt(F)`` of the output scale, so the
difference is bounded by ``8 eps sqrt(F) = 1.1e-5`` relative to the largest output (4: safety
factor, 2: two evaluations). Measured: below 5e-7.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from _examples import load_example

from geomjax.equivariant import Irreps, IrrepsArray

EPS32 = float(np.finfo(np.float32).eps)

CASES = [
    ("2x0e + 1x1o + 1x2e", "0e + 1o + 2e", "1x0e + 2x1o + 1x2e + 1x1e"),  # lmax 2, parity
    *(
        pytest.param(*case, marks=pytest.mark.slow)  # 2-6 s each on a loaded 2-core machine
        for case in [
            ("1x0e + 2x1o", "0e + 1o", "32x0e + 32x1o"),  # the paper model's embedding
            ("66x0e + 64x1o", "0e + 1o", "64x0e + 32x1o"),  # its message layer 1
            ("32x0e + 32x1o", "0e + 1o", "1x1o"),  # its output layer (no bias)
        ]
    ),
]


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("flax")
    return load_example("nbody_egnn")


@pytest.mark.parametrize("irreps_in, irreps_attr, irreps_out", CASES)
def test_o3_tensor_product_matches_e3nn_jax(example, irreps_in, irreps_attr, irreps_out):
    e3nn = pytest.importorskip("e3nn_jax")
    legacy = pytest.importorskip("e3nn_jax.legacy")
    from flax import nnx

    layer = example.O3TensorProduct(irreps_in, irreps_attr, irreps_out, rngs=nnx.Rngs(0))
    k1, k2 = jax.random.split(jax.random.key(1))
    x = jax.random.normal(k1, (7, Irreps(irreps_in).dim))
    a = jax.random.normal(k2, (7, Irreps(irreps_attr).dim))
    ours = jax.jit(lambda x, a: layer(IrrepsArray(irreps_in, x), IrrepsArray(irreps_attr, a)).array)
    ours = np.asarray(ours(x, a))

    tp = legacy.FunctionalFullyConnectedTensorProduct(
        e3nn.Irreps(irreps_in),
        e3nn.Irreps(irreps_attr),
        e3nn.Irreps(irreps_out),
        irrep_normalization="component",
        path_normalization="element",
        gradient_normalization="element",
    )
    theta = np.asarray(layer.weights[...])
    ws, offset = [None] * len(tp.instructions), 0
    for c, mul_ir in enumerate(tp.irreps_out):  # output entry-major, then path, then (u, v, w)
        for k, ins in enumerate(tp.instructions):
            if ins.i_out == c:
                n = math.prod(ins.path_shape)
                block = theta[offset : offset + n].reshape(ins.path_shape)
                ws[k] = block * math.sqrt(mul_ir.ir.dim)
                offset += n
    assert offset == theta.size

    def one(xx, aa):
        return tp.left_right(
            ws, e3nn.IrrepsArray(irreps_in, xx), e3nn.IrrepsArray(irreps_attr, aa)
        ).array

    ref = np.array(jax.jit(jax.vmap(one))(x, a))
    bias_index = np.asarray(layer.bias_index, dtype=int)
    if bias_index.size:
        ref[:, bias_index] += np.asarray(layer.bias[...])
    assert np.all(np.isfinite(ours))
    err = np.max(np.abs(ours - ref)) / np.max(np.abs(ref))
    assert err <= 8 * EPS32 * math.sqrt(130), err
