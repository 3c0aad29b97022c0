"""Runs examples/vmf_features.py with --quick (through its main(argv)) and checks its report."""

from __future__ import annotations

import math

import pytest
from _examples import load_example


def test_vmf_features_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    pytest.importorskip("scipy")
    module = load_example("vmf_features")
    out = tmp_path / "vmf.png"
    result = module.main(["--quick", "--no-progress", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.exists() and "scipy fails" in printed
    for row in result["synthetic"]:
        assert row["converged"]
        # 200 samples at kappa = 2d: sd(kappa_hat)/kappa ~ 1/sqrt(n (d-1)/2) < 0.2%, bias
        # (d-1)/(2 n kappa A') of about 0.5%: 2% is a wide margin for a smoke test.
        assert abs(row["kappa_geomjax"] / row["kappa_true"] - 1) < 0.02, row
        assert row["cos_mu"] > 0.99
    for row in result["inversion"]:
        assert math.isfinite(row["geomjax"])
        assert abs(row["geomjax"] / row["kappa"] - 1) < 1e-3, row  # float32 inversion
    assert any(not math.isfinite(row["scipy"]) for row in result["inversion"])
    clusters = result["digits"]["clusters"]
    assert len(clusters) == 10 and all(c["kappa"] > 0 for c in clusters)
    assert sum(c["size"] for c in clusters) == 597  # the held-out digits
