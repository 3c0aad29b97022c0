"""Runs examples/spd_batchnorm.py with small flags (through its main(argv)) and checks its report."""

from __future__ import annotations

import pytest
from _examples import load_example


def test_spd_batchnorm_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    module = load_example("spd_batchnorm")
    out = tmp_path / "spd_batchnorm.png"
    result = module.main(
        [
            "--n",
            "6",
            "--m",
            "3",
            "--sessions",
            "2",
            "--per-class",
            "8",
            "--batch",
            "12",
            "--epochs",
            "2",
            "--variants",
            "none,aim",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "none: test-session accuracy" in printed and "aim: test-session accuracy" in printed
    assert all(0.0 <= acc <= 1.0 for acc in result.values())
    assert out.stat().st_size > 0
