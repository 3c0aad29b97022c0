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
