"""The measured slow-test list (tests/slow_tests.txt), read by tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def slow_test_ids() -> set[str]:
    """Node ids listed in ``tests/slow_tests.txt`` (measured as slow; see the file's header)."""
    lines = SLOW_LIST.read_text().splitlines()
    return {s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")}
