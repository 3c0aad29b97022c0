"""Runs examples/sw_gradient_flow.py with small flags (through its main(argv)) and checks its report."""

from __future__ import annotations

import math

import pytest
from _examples import load_example


def test_sw_gradient_flow_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    module = load_example("sw_gradient_flow")
    out = tmp_path / "flow.png"
    result = module.main(
        ["--n", "64", "--steps", "20", "--score-every", "10", "--no-progress", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert out.exists()
    flows = result["flows"]
    assert set(flows) == {"sw", "sw-cv-lower", "sw-cv-upper", "max-sw"}
    for name, hist in flows.items():
        assert hist["step"] == [0, 10, 20]
        assert all(math.isfinite(v) for v in hist["sw"]), name
        assert hist["sw"][-1] < hist["sw"][0], name  # the flow moves toward the target
        assert name in printed
    # The control variates reduce the spread of the estimate at the (Gaussian) starting cloud.
    spread = result["spread"]
    assert spread["sw-cv-lower"][1] < spread["sw"][1]
