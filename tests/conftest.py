"""Shared fixtures. Every test runs with its own clientlens home, MLflow store and BentoML store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Point every embedded store at `tmp_path` so tests never touch `./.clientlens`."""
    home = tmp_path / "clientlens_home"
    home.mkdir()
    monkeypatch.setenv("CLIENTLENS_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    return home


# `make test` runs the suite on 2 pytest-xdist workers (`--dist loadgroup --no-loadscope-reorder`, see the
# Makefile): one test file is one unit of work, so its module fixtures are built once, except that all of
# tests/serving is one unit (one session service, and `test_service_shutdown.py` must run after the other
# serving tests) and so is tests/integration (one PostgreSQL and one MLflow server). The units that take
# longest go first, so that neither worker is left with a long one at the end (times from a serial CI run
# on this 2-core machine, 2026-12-03: serving 420 s of 1,371, the notebooks 183, test_simulated 131,
# integration 108, test_real_data 73, test_distributed 54, test_retrain 48); the others keep their collection order.
LONG_FIRST = (
    "serving",
    "notebooks/test_notebooks.py",
    "training/test_simulated.py",
    "integration",
    "training/test_real_data.py",
    "training/test_distributed.py",
    "monitoring/test_retrain.py",
)
TESTS = Path(__file__).resolve().parent


def unit_of(path: Path) -> str:
    """The xdist group of a test file: its directory for tests/serving and tests/integration, else the file."""
    rel = path.resolve().relative_to(TESTS)
    return rel.parts[0] if rel.parts[0] in ("serving", "integration") else rel.as_posix()


def pytest_collection_modifyitems(config, items):
    units = {item: unit_of(Path(item.path)) for item in items}
    for item, unit in units.items():
        item.add_marker(pytest.mark.xdist_group(unit))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # set in each xdist worker, where the collection happens
        rank = {unit: i for i, unit in enumerate(LONG_FIRST)}
        order = {item: i for i, item in enumerate(items)}
        items.sort(key=lambda item: (rank.get(units[item], len(rank)), order[item]))
