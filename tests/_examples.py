"""Loading ``examples/<name>.py`` as a module, for the tests that run an example through its
``main(argv)``. (Importable as ``_examples`` because pytest puts ``tests/`` on ``sys.path`` to
load ``tests/conftest.py``.)"""

from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example(name: str):
    """The module ``examples/<name>.py`` (executed, not run as ``__main__``)."""
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
