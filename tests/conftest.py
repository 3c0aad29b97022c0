"""Shared fixtures: a PRNG key, float64 via jax.enable_x64, and jax_debug_nans on by default."""

from __future__ import annotations

import jax
import pytest
from _slow import slow_test_ids


@pytest.fixture(autouse=True)
def _debug_nans():
    """Every test runs with ``jax_debug_nans``: a NaN produced anywhere raises."""
    previous = jax.config.jax_debug_nans
    jax.config.update("jax_debug_nans", True)
    yield
    jax.config.update("jax_debug_nans", previous)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Run the test body with 64-bit types enabled."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Parametrise over float32 and float64 (float64 with x64 enabled for the test)."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield jax.numpy.float64
    else:
        yield jax.numpy.float32


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the listed tests ``slow`` before ``-m`` deselects (runs before pytest's own hook)."""
    slow = slow_test_ids()
    for item in items:
        if item.nodeid in slow:
            item.add_marker(pytest.mark.slow)
