"""Runs examples/poincare_tree.py --quick in a subprocess and checks its report."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_poincare_tree_quick(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "poincare_tree.py"),
            "--quick",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    number = r"([0-9]*\.[0-9]+)"
    hyp = re.search(r"Poincare disk, riemannian_adam\s+" + number + r"\s+" + number, proc.stdout)
    euc = re.search(r"Euclidean R\^2, optax.adam\s+" + number + r"\s+" + number, proc.stdout)
    assert hyp and euc, proc.stdout
    map_h, dist_h = map(float, hyp.groups())
    map_e, dist_e = map(float, euc.groups())
    assert 0.0 < map_h <= 1.0 and 0.0 < map_e <= 1.0
    assert dist_h < dist_e, proc.stdout  # the hyperbolic embedding distorts the tree less
    assert (tmp_path / "poincare_tree.png").stat().st_size > 0
