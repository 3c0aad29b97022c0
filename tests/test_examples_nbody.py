"""Runs examples/nbody_egnn.py with tiny flags (through its main(argv)) and checks its report."""

from __future__ import annotations

import math

import pytest
from _examples import load_example


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
