"""Hypothesis profiles for the fuzz suite.

``ci`` (default): derandomized, so every run of the suite tries the same inputs (no flaky CI).
``explore`` (``HYPOTHESIS_PROFILE=explore``): random draws and more examples, for a local hunt.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,  # the first call of each shape compiles; compile time is not a bug
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
settings.register_profile("ci", max_examples=12, derandomize=True, **_COMMON)
settings.register_profile("explore", max_examples=200, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
