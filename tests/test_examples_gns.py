"""Runs examples/gns_logistic.py with small flags (through its main(argv)) and checks its report.

The reference optimum inside the example comes from a damped Newton solve on the same data; the
checks here are properties of the report (finite curves, monotone GNN values, counts consistent
with the solver's accounting, the exact variant reaching 1e-8 while Gauss-Newton -- equal to the
Hessian for these linear models -- follows it, the figure and JSON written), not values copied
from a run.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _examples import load_example

TINY = [
    "--subset",
    "200",
    "--digits-pool",
    "4",
    "--max-steps",
    "40",
    "--gd-steps",
    "50",
    "--lbfgs-steps",
    "50",
    "--cubic-steps",
    "30",
    "--no-progress",
]


@pytest.fixture(autouse=True)
def _needs_extras():
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")


def _check_report(module, result, out, printed, problems, methods):
    assert out.exists() and out.stat().st_size > 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert set(saved["problems"]) == set(result["problems"]) == set(problems)
    for name, prob in result["problems"].items():
        assert prob["newton"]["grad_norm"] < 1e-12, name  # f* is a converged Newton value
        assert set(prob["methods"]) == set(methods)
        assert f"{name}: " in printed
        for meth, rec in prob["methods"].items():
            f = np.asarray(rec["f"])
            assert np.all(np.isfinite(f)), (name, meth)
            assert len(rec["solves"]) == len(rec["f_evals"]) == len(rec["g_evals"]) == len(f)
            summ = rec["summary"]
            assert {"reached", "final_subopt", "slope", "iterations"} <= set(summ)
            assert math.isfinite(summ["final_subopt"])
            assert summ["final_subopt"] > -1e-13, (name, meth)  # nothing beats f* beyond rounding
            assert meth in printed
            if meth.startswith("gnn-"):
                # accepted steps decrease f; one trial = one solve = one value+gradient evaluation
                assert np.all(np.diff(f) <= 1e-15), (name, meth)
                assert rec["f_evals"] == [1 + s for s in rec["solves"]]
                assert np.all(np.diff(rec["solves"]) >= 1)
        exact = prob["methods"]["gnn-exact"]["summary"]
        assert exact["reached"] and exact["final_subopt"] < 1e-8, name
        assert exact["iters_to_target"] <= 20, name
        k = exact["iters_to_target"] + 1
        np.testing.assert_allclose(
            prob["methods"]["gnn-gauss_newton"]["f"][:k],
            prob["methods"]["gnn-exact"]["f"][:k],
            rtol=1e-10,
            atol=1e-14,
        )
        if "cubic" in methods:
            assert prob["methods"]["cubic"]["summary"]["reached"], name  # Newton-type: a few steps


def test_gns_logistic_quick(tmp_path, capsys):
    module = load_example("gns_logistic")
    out = tmp_path / "gns.png"
    methods = ["gnn-exact", "gnn-gauss_newton", "lbfgs", "cubic"]
    result = module.main(
        [*TINY, "--problems", "logistic", "--methods", ",".join(methods), "--out", str(out)]
    )
    _check_report(module, result, out, capsys.readouterr().out, ["logistic"], methods)


@pytest.mark.slow
def test_gns_logistic_all_methods(tmp_path, capsys):
    module = load_example("gns_logistic")
    out = tmp_path / "gns.png"
    result = module.main([*TINY, "--out", str(out)])
    printed = capsys.readouterr().out
    _check_report(module, result, out, printed, ["logistic", "softmax"], module.METHODS)
    assert "every GNN variant reached" in printed
