"""The fuzz suite covers every public name of the fuzzed subpackages.

Each ``test_fuzz_<area>.py`` declares ``COVERED = {"geomjax.<area>": {names...}}`` for the names it
fuzzes and ``EXEMPT = {"geomjax.<area>": {name: reason}}`` for names with no input to fuzz (a
NamedTuple type, a type alias). This test compares their union with each subpackage's ``__all__``,
so a new public name without a fuzz test fails here.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

FUZZED = (
    "geomjax.linalg",
    "geomjax.manifolds",
    "geomjax.spdnet",
    "geomjax.ot",
    "geomjax.curvature",
    "geomjax.optim",
    "geomjax.equivariant",
    "geomjax.distributed",
)


def _declared():
    covered: dict[str, set[str]] = {m: set() for m in FUZZED}
    exempt: dict[str, dict[str, str]] = {m: {} for m in FUZZED}
    for path in sorted(HERE.glob("test_fuzz_*.py")):
        if path.name == Path(__file__).name:
            continue
        spec = importlib.util.spec_from_file_location(f"_fuzz_decl_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for pkg, names in getattr(module, "COVERED", {}).items():
            covered.setdefault(pkg, set()).update(names)
        for pkg, reasons in getattr(module, "EXEMPT", {}).items():
            exempt.setdefault(pkg, {}).update(reasons)
    return covered, exempt


@pytest.mark.parametrize("package", FUZZED)
def test_every_public_name_is_fuzzed(package):
    covered, exempt = _declared()
    public = set(importlib.import_module(package).__all__)
    missing = public - covered[package] - set(exempt[package])
    unknown = (covered[package] | set(exempt[package])) - public
    assert not missing, f"{package}: public names without a fuzz test: {sorted(missing)}"
    assert not unknown, f"{package}: fuzz declarations name non-public names: {sorted(unknown)}"
    for name, reason in exempt[package].items():
        assert reason.strip(), f"{package}.{name}: an exemption needs a reason"
