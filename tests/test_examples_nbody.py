r"""Runs examples/nbody_egnn.py with tiny flags (through its main(argv)) and checks its report;
and checks its SEGNN model (``--model segnn``).

Tolerances. The steerable layer is compared with a float64 NumPy sum over its paths: each
output is a sum of at most a few dozen products, so 1e-12 (relative to the largest output)
is many times float64's accumulated round-off. Equivariance is checked in float32 with
``assert_equivariant``'s round-off bound :math:`4\,\varepsilon\sqrt{n}\,\kappa` (``n = 35``
float inputs, :math:`\kappa = 16` for a well-conditioned network: 4.5e-5; a broken
equivariance gives an O(1) error). The displacement (prediction minus input positions) is
checked on its own, so its error is relative to the learned part, not to the positions; at
initialization it is small (about 1e-2 of the features) and comes out of sums with
cancellation, so its measured relative error, 1e-5 for a 2-layer 4x0e+4x1o model, is larger
than the prediction's (about 1e-7) yet within the bound.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _examples import load_example
from flax import nnx

from geomjax.datasets import egnn_nbody_small
from geomjax.equivariant import Irreps, IrrepsArray, clebsch_gordan, fully_connected_graph
from geomjax.testing import assert_equivariant


def test_nbody_egnn_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    module = load_example("nbody_egnn")
    out = tmp_path / "nbody_egnn.png"
    result = module.main(
        [
            "--train",
            "40",
            "--val",
            "20",
            "--test",
            "20",
            "--batch",
            "20",
            "--epochs",
            "3",
            "--eval-every",
            "2",
            "--hidden",
            "8",
            "--layers",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "test MSE" in printed and "saved" in printed
    assert math.isfinite(result["test_mse"]) and result["test_mse"] > 0
    assert result["history"]["eval_epoch"] == [0, 2]
    assert len(result["history"]["train"]) == 3
    assert out.stat().st_size > 0
    assert out.with_suffix(".json").stat().st_size > 0


# -- SEGNN (--model segnn) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nbody():
    return load_example("nbody_egnn")


def _system(key, n=5):
    """A random charged system at the data's scale: positions ~ N(0, 1), velocities ~ N(0, 0.5)."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (n, 3))
    v = 0.5 * jax.random.normal(k2, (n, 3))
    q = jnp.sign(jax.random.normal(k3, (n, 1)))
    return x, v, q


def _reference_o3_tp(layer, x, a, irreps_in, irreps_attr, irreps_out):
    """The steerable layer in float64 NumPy, path by path: for output entry ``c``, every pair of
    entries ``(p, r)`` of the input and attribute irreps with ``l_c`` in ``l_p x l_r`` (parity
    matching), in the order input-major then attribute, adds
    ``sum_{u v w} W_uvw sum_{ij} C_ijk x_{p,ui} a_{r,vj}`` with ``C`` the Clebsch-Gordan
    coefficients times ``sqrt(2 l_c + 1)`` (component normalization); the raw weights act
    unscaled, as in ``torch.nn.Linear``; ``0e`` outputs add the bias."""
    w = np.asarray(layer.weights[...], np.float64)
    b = np.asarray(layer.bias[...], np.float64)
    xs = [np.asarray(c, np.float64) for c in x.chunks]
    as_ = [np.asarray(c, np.float64) for c in a.chunks]
    outs, k_w, k_b = [], 0, 0
    for mul_c, ir_c in irreps_out:
        y = np.zeros((mul_c, ir_c.dim))
        for (mul_p, ir_p), xp in zip(irreps_in, xs):
            for (mul_r, ir_r), ar in zip(irreps_attr, as_):
                if ir_c not in ir_p * ir_r:
                    continue
                cg = np.asarray(clebsch_gordan(ir_p.l, ir_r.l, ir_c.l), np.float64)
                cg = cg * np.sqrt(2 * ir_c.l + 1)
                wp = w[k_w : k_w + mul_p * mul_r * mul_c].reshape(mul_p, mul_r, mul_c)
                k_w += wp.size
                y += np.einsum("uvw,ijk,ui,vj->wk", wp, cg, xp[0], ar[0])
        if ir_c.l == 0 and ir_c.p == 1:
            y += b[k_b : k_b + mul_c, None]
            k_b += mul_c
        outs.append(y.reshape(-1))
    assert k_w == w.size and k_b == b.size
    return np.concatenate(outs)


@pytest.mark.slow  # about 3.5 s on 2 busy cores (eager float64 layer)
def test_segnn_steerable_layer_equals_numpy_reference(nbody):
    """O3TensorProduct (raw weights, bias on 0e) vs the path-by-path float64 NumPy sum."""
    irreps_in, irreps_attr = Irreps("2x0e + 3x1o + 1x1e"), Irreps("0e + 1o")
    irreps_out = Irreps("3x0e + 2x1o + 1x1e + 1x0o")
    k1, k2 = jax.random.split(jax.random.key(1))
    with jax.enable_x64(True):
        layer = nbody.O3TensorProduct(
            irreps_in, irreps_attr, irreps_out, rngs=nnx.Rngs(0), param_dtype=jnp.float64
        )
        x = IrrepsArray(irreps_in, jax.random.normal(k1, (1, irreps_in.dim), jnp.float64))
        a = IrrepsArray(irreps_attr, jax.random.normal(k2, (1, irreps_attr.dim), jnp.float64))
        got = np.asarray(layer(x, a).array[0], np.float64)
        ref = _reference_o3_tp(layer, x, a, irreps_in, irreps_attr, irreps_out)
    # float64: a few dozen roundings per output, each ~1e-16 relative
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    # initialization as torch.nn.Linear: |W| <= 1/sqrt(fan-in) per output entry
    assert np.abs(np.asarray(layer.weights[...])).max() <= 1.0


def test_segnn_weight_balanced_irreps(nbody):
    """64 hidden scalars with 0e + 1o attributes and lmax 1: 32x0e + 32x1o (the official code's
    choice, 4 paths x 32^2 = 4096 = 64^2 weights); brute-force search agrees for other widths."""
    attr = Irreps("0e + 1o")
    assert nbody.weight_balanced_irreps(64, attr, 1) == Irreps("32x0e + 32x1o")
    for units in (8, 20, 33):
        n = next(n for n in range(1, units + 1) if 4 * n * n >= units**2)
        assert nbody.weight_balanced_irreps(units, attr, 1) == Irreps(f"{n}x0e + {n}x1o")


def _segnn_model(nbody, hidden=8, layers=2, seed=0):
    return nbody.SEGNN(hidden, layers, rngs=nnx.Rngs(seed))


@pytest.mark.slow  # about 8 s on 2 busy cores (model init, compile, 3 transformed calls)
def test_segnn_is_e3_and_permutation_equivariant(nbody):
    """Prediction x + u (kind "position") and displacement u (kind "vector") under reflections,
    rotations, translations and particle permutations (3 trials: reflection, rotation,
    reflection), with assert_equivariant's round-off bound 4 eps sqrt(n) cond (n = 35 float
    inputs, cond 16: 4.5e-5 in float32)."""
    graphdef, params = nnx.split(_segnn_model(nbody, hidden=4, layers=2))
    s, r = fully_connected_graph(5)
    x, v, q = _system(jax.random.key(3))

    @jax.jit
    def f(x, v, q, s, r):
        pred = nnx.merge(graphdef, params)(x, v, q, s, r)
        return pred, pred - x

    assert_equivariant(
        f,
        jax.random.key(4),
        (x, v, q, s, r),
        in_kinds=("position", "vector", "scalar", "index", "index"),
        out_kinds=("position", "vector"),
        group="E3",
        permute=True,
    )


@pytest.mark.slow  # about 7 s on 2 busy cores (compiles the gradient)
def test_segnn_finite_at_coincident_particles_and_rest(nbody):
    """Two particles at the same place and one at rest: prediction and gradients (parameters,
    positions, velocities) finite, with jax_debug_nans on."""
    graphdef, params = nnx.split(_segnn_model(nbody, hidden=4, layers=1))
    s, r = fully_connected_graph(5)
    x, v, q = _system(jax.random.key(5))
    x = x.at[1].set(x[0])
    v = v.at[2].set(0.0)

    @jax.jit
    def value_and_grads(params, x, v):
        def loss(params, x, v):
            return jnp.sum(nnx.merge(graphdef, params)(x, v, q, s, r) ** 2)

        return jax.value_and_grad(loss, (0, 1, 2))(params, x, v)

    with jax.debug_nans(True):
        value, grads = value_and_grads(params, x, v)
    for g in (value, *jax.tree.leaves(grads)):
        assert np.isfinite(np.asarray(g)).all()


@pytest.mark.slow  # about 7 s on 2 busy cores (compiles the gradient)
def test_segnn_adam_steps_lower_the_loss(nbody):
    """A tiny SEGNN (hidden 4, 1 layer) on 8 paper systems: 10 Adam steps (lr 5e-3) lower the
    MSE steadily (each step below the previous one, the last 5% or more below the first)."""
    data = egnn_nbody_small("train", 8)
    s, r = fully_connected_graph(5)
    model = _segnn_model(nbody, hidden=4, layers=1)
    graphdef, params = nnx.split(model)
    tx = optax.adam(5e-3)

    @jax.jit
    def step(params, opt_state):
        loss, g = jax.value_and_grad(lambda p: nbody.mse(nnx.merge(graphdef, p), data, s, r))(
            params
        )
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for _ in range(10):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert all(np.isfinite(losses)), losses
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.95 * losses[0], losses


@pytest.mark.slow  # about 15 s on 2 busy cores: compiles the jitted epoch and evaluation
def test_nbody_segnn_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    module = load_example("nbody_egnn")
    out = tmp_path / "nbody_segnn.png"
    result = module.main(
        [
            "--model",
            "segnn",
            "--train",
            "40",
            "--val",
            "20",
            "--test",
            "20",
            "--batch",
            "20",
            "--epochs",
            "4",
            "--eval-every",
            "1",
            "--hidden",
            "8",
            "--layers",
            "2",
            "--lr",
            "5e-3",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "SEGNN 2 layers x 8 (4x0e+4x1o)" in printed and "paper: SEGNN 0.0043" in printed
    assert result["args"]["weight_decay"] == 1e-12 and result["args"]["model"] == "segnn"
    train = [t[0] for t in result["history"]["train"]]
    assert len(train) == 4 and all(np.isfinite(train)) and train[-1] < train[0], train
    val = [v[0] for v in result["history"]["val"]]
    assert val[-1] < val[0], val
    assert math.isfinite(result["test_mse"]) and result["test_mse"] > 0
    assert out.stat().st_size > 0


# -- SEGNN with Gaunt products (--tp gaunt) -------------------------------------------------------


def test_segnn_gaunt_layer_is_a_subspace_of_the_cg_layer(nbody):
    """For natural-parity irreps (``2x0e + 2x1o`` with attributes ``0e + 1o``) every CG path is
    even; the Gaunt layer (Gaunt product + linear) sums the paths of one channel into one
    output degree with fixed constants, so its maps are a subspace of the fully connected CG
    layer's, of the dimension of its weights (8 against 16): with one-hot weights (biases off)
    its outputs over random inputs lie in the CG layer's output space (float64 least squares,
    residual 1e-10 of the scale) and are linearly independent, and not the other way round."""
    irreps_in, attr, out = "2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o"
    with jax.enable_x64(True):
        cg = nbody.O3TensorProduct(irreps_in, attr, out, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
        ga = nbody.O3TensorProduct(
            irreps_in, attr, out, tp="gaunt", rngs=nnx.Rngs(0), param_dtype=jnp.float64
        )
        assert ga.weights.shape == (8,) and cg.weights.shape == (16,)
        rng = np.random.default_rng(0)
        x = IrrepsArray(irreps_in, jnp.asarray(rng.standard_normal((40, 8))))
        a = IrrepsArray(attr, jnp.asarray(rng.standard_normal((40, 4))))

        def columns(layer):
            layer.bias[...] = jnp.zeros_like(layer.bias[...])
            cols = []
            for i in range(layer.weights.shape[0]):
                w = np.zeros(layer.weights.shape)
                w[i] = 1.0
                layer.weights[...] = jnp.asarray(w)
                cols.append(np.asarray(layer(x, a).array).reshape(-1))
            return np.stack(cols, axis=1)

        m_cg, m_ga = columns(cg), columns(ga)
    basis = np.linalg.qr(m_cg)[0]
    residual = m_ga - basis @ (basis.T @ m_ga)
    assert np.abs(residual).max() <= 1e-10 * np.abs(m_ga).max()
    s_ga = np.linalg.svd(m_ga, compute_uv=False)
    assert s_ga[-1] > 1e-6 * s_ga[0]  # 8 independent maps
    basis = np.linalg.qr(m_ga)[0]
    assert np.abs(m_cg - basis @ (basis.T @ m_cg)).max() > 1e-3 * np.abs(m_cg).max()


@pytest.mark.slow  # about 8 s on 2 busy cores, as the CG model's equivariance test
def test_segnn_gaunt_model_runs_and_is_equivariant(nbody):
    """``--tp gaunt`` builds a SEGNN with fewer parameters, E(3) x permutation equivariant with
    the same bound as the CG model."""
    cg = nbody.SEGNN(4, 1, rngs=nnx.Rngs(0))
    ga = nbody.SEGNN(4, 1, tp="gaunt", rngs=nnx.Rngs(0))
    count = lambda m: sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert 0 < count(ga) < count(cg)
    graphdef, params = nnx.split(ga)
    s, r = fully_connected_graph(5)
    x, v, q = _system(jax.random.key(3))

    @jax.jit
    def f(x, v, q, s, r):
        pred = nnx.merge(graphdef, params)(x, v, q, s, r)
        return pred, pred - x

    assert_equivariant(
        f,
        jax.random.key(4),
        (x, v, q, s, r),
        in_kinds=("position", "vector", "scalar", "index", "index"),
        out_kinds=("position", "vector"),
        group="E3",
        permute=True,
    )
