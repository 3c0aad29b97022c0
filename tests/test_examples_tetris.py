"""Runs examples/tetris.py (through its main(argv)): a steerable message-passing network reaches
100% training accuracy on the 8 3D Tetris shapes within 100 Adam steps, keeps every prediction
under 50 random rigid motions, and swaps the chiral pair under inversion."""

from __future__ import annotations

import pytest
from _examples import load_example


@pytest.mark.slow  # about 25 s of CPU (compiling three steerable layers and their gradient)
def test_tetris(capsys):
    pytest.importorskip("optax")
    module = load_example("tetris")
    result = module.main(["--no-plot", "--no-progress"])
    printed = capsys.readouterr().out
    assert "tetris: final loss" in printed
    assert result["train_accuracy"] == 1.0
    assert result["first_step_100"] is not None and result["first_step_100"] <= 100
    assert result["motions_all_correct"] == 50
    assert result["chiral_swapped"]
    assert result["inversion_predictions"] == [1, 0, 2, 3, 4, 5, 6, 7]


@pytest.mark.slow  # about 9 s of CPU (compiling two three-layer models in float64)
def test_gaunt_only_model_ties_the_chiral_pair_at_init():
    """Without training: the Gaunt-only model's pseudoscalar output q (the logit offset of
    the chiral pair) is exactly 0 for every shape (it has no path to a 0o, 1e or 2o feature),
    so the two mirror-image classes get identical logits; the CG-completed model's q is not 0
    and flips sign between the mirror images."""
    pytest.importorskip("optax")
    import jax
    import jax.numpy as jnp
    import numpy as np

    module = load_example("tetris")
    # float64: at initialization the pseudoscalars of the completed model are about 1e-4
    # before the gate, whose odd activation (1 - exp(-x^2)) x rounds to exactly 0 in float32
    with jax.enable_x64(True):
        pos = jnp.asarray(module.tetris_shapes(), jnp.float64)
        for tp in ("gaunt", "gaunt-cg"):
            params = module.init_model(jax.random.key(0), tp)
            f = jax.jit(jax.vmap(lambda p, x, tp=tp: module.readout_one(p, x, tp), (None, 0)))
            q = np.asarray(f(params, pos))[:, 7]
            assert np.all(np.isfinite(q))
            if tp == "gaunt":
                assert np.all(q == 0.0), q
            else:
                # the mirror images get opposite q (a reflection flips the pseudoscalar)
                assert np.abs(q[0]) > 0.0, q
                np.testing.assert_allclose(q[1], -q[0], rtol=1e-6)


@pytest.mark.slow  # about 55 s of CPU on a busy machine (200 Adam steps of the three-layer Gaunt model)
def test_tetris_gaunt_only_ties_chiral_pair():
    pytest.importorskip("optax")
    module = load_example("tetris")
    result = module.main(
        ["--tp", "gaunt", "--steps", "200", "--motions", "5", "--no-plot", "--no-progress"]
    )
    assert result["chiral_tied"]
    assert result["correct"] <= 7
    assert result["predictions"][0] == result["predictions"][1]
    assert result["correct"] == 7  # everything but the mirror image (seed 0)
    assert not result["chiral_swapped"]


@pytest.mark.slow  # about 20 s of CPU per variant (100 Adam steps of the completed model)
@pytest.mark.parametrize("tp", ["gaunt-cg", "gaunt-bracket"])
def test_tetris_gaunt_completed_separates_all_eight(tp):
    pytest.importorskip("optax")
    module = load_example("tetris")
    result = module.main(["--tp", tp, "--motions", "10", "--no-plot", "--no-progress"])
    assert not result["chiral_tied"]
    assert result["correct"] == 8 and result["train_accuracy"] == 1.0
    assert result["motions_all_correct"] == 10
    assert result["chiral_swapped"]
