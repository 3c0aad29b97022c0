"""Runs examples/mdm_eeg.py with small flags (through its main(argv)) and checks its report."""

from __future__ import annotations

import pytest
from _examples import load_example


def test_mdm_eeg_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    module = load_example("mdm_eeg")
    out = tmp_path / "mdm_eeg.png"
    result = module.main(
        ["--n-trials", "16", "--n-times", "128", "--order", "2", "--no-progress", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "plain covariance + MDM" in printed and "augmented covariance" in printed
    assert 0.0 <= result["plain"] <= 1.0
    # The classes differ only in their temporal dynamics: the delay embedding must help.
    assert result["augmented"] > result["plain"], printed
    assert result["augmented"] >= 0.9, printed
    assert out.stat().st_size > 0
