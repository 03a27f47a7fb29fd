"""Fixtures for the monitoring tests: synthetic feature windows (see tests/monitoring/scenarios.py)."""

from __future__ import annotations

import pytest

from tests.monitoring import scenarios


@pytest.fixture(scope="session")
def big_window():
    """40,000 customers from one distribution: split it to get same-distribution windows."""
    return scenarios.feature_window(40_000, seed=11)


@pytest.fixture(scope="session")
def windows():
    """A reference and a current window of 6,000 customers each, same distribution."""
    return scenarios.feature_window(6_000, seed=0), scenarios.feature_window(6_000, seed=1)
