"""The examples run end to end (in a subprocess, as a user would run them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str, tmp_path: Path) -> str:
    # ROOT first, then whatever PYTHONPATH holds (the GPU machine installs peers under it)
    path = os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if "PYTHONPATH" in os.environ else [])
    )
    env = dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_tour(tmp_path):
    out = run_example("tour.py", "--out", str(tmp_path), "--no-progress", tmp_path=tmp_path)
    assert "Matrix functions" in out
    assert (tmp_path / "tour.png").stat().st_size > 1000
