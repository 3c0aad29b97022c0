"""The README's multi-process example runs as written: its script saved as ``dp.py`` and its bash
block run from a directory holding ``dp.py`` (2 processes x 4 CPU devices).

Two substitutions only: the coordinator port (12355 in the README) becomes a free port, and
``.venv/bin/python`` the interpreter running the tests (the same virtual environment in CI).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _launch import free_port

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parents[2]


def _block(text: str, tag: str, lang: str) -> str:
    match = re.search(rf"<!-- {tag} -->\n```{lang}\n(.*?)```\n<!-- /{tag} -->", text, flags=re.S)
    assert match, f"README.md has no {tag} block"
    return match.group(1)


def test_readme_two_process_example_runs_as_written(tmp_path):
    text = (ROOT / "README.md").read_text()
    (tmp_path / "dp.py").write_text(_block(text, "distributed:script", "python"))
    command = _block(text, "distributed:run", "bash")
    assert "12355" in command and ".venv/bin/python" in command
    command = command.replace("12355", str(free_port())).replace(".venv/bin/python", sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # bash and both workers: the group we started
        out, _ = proc.communicate()
        pytest.fail(f"the README example did not finish within 180 s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "2 process(es), 8 devices, 64 points" in out, out[-3000:]
    assert re.search(r"SW_2\(x, -x\) = \d\.\d{3}", out), out[-3000:]
