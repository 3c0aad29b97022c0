"""tests/slow_tests.txt names existing tests (a renamed or deleted test must leave the list)."""

from __future__ import annotations

import re
from pathlib import Path

from _slow import slow_test_ids

ROOT = Path(__file__).resolve().parent.parent


def test_every_listed_slow_test_exists():
    stale = []
    for node in sorted(slow_test_ids()):
        path, _, rest = node.partition("::")
        func = re.split(r"[\[:]", rest)[0]
        file = ROOT / path
        if not file.is_file() or not re.search(
            rf"^\s*(async )?def {func}\(", file.read_text(), re.M
        ):
            stale.append(node)
    assert not stale, f"tests/slow_tests.txt names tests that no longer exist: {stale}"
    assert len(slow_test_ids()) > 0
