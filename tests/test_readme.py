"""The README's 30-second example runs and prints what it claims."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_block_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102
    assert "nan" not in capsys.readouterr().out.lower()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- ci:test -->" in readme and "ci:test" in ci
    assert 'pip install -e ".[test]"' in readme and "python -m pytest" in readme
    assert np.char.count(readme, "python3 -m venv .venv") == 2
