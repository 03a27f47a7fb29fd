"""Shared fixtures. Every test runs with its own clientlens home, MLflow store and BentoML store."""

from __future__ import annotations

import os

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


# `make test` runs the suite on 2 pytest-xdist workers (`--dist loadfile --no-loadscope-reorder`, see the
# Makefile): one test file is one unit of work, so its module fixtures are built once, except that all of
# tests/serving is one unit (one session service, and `test_service_shutdown.py` must run after the other
# serving tests) and so is tests/integration (one PostgreSQL and one MLflow server): the scheduler below.
# (xdist's own `--dist loadgroup` marks do nothing under pytest 9.2: xdist 3.8 renames `item._nodeid`, which
# pytest no longer reads.) The units that take longest go first, so that neither worker is left with a long
# one at the end (times from a serial CI run on this 2-core machine, 2026-12-03: serving 420 s of 1,371, the
# notebooks 183, test_simulated 131, integration 108, test_real_data 73, test_distributed 54, test_retrain
# 48); the others keep their collection order.
LONG_FIRST = (
    "serving",
    "notebooks/test_notebooks.py",
    "training/test_simulated.py",
    "integration",
    "training/test_real_data.py",
    "training/test_distributed.py",
    "monitoring/test_retrain.py",
)
SHARED_UNITS = ("serving", "integration")


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its directory for tests/serving and tests/integration, else its file."""
    path = nodeid.split("::", 1)[0].removeprefix("tests/")
    top = path.split("/", 1)[0]
    return top if top in SHARED_UNITS else path


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return ByUnit(config, log)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # set in each xdist worker, where the collection happens
        rank = {unit: i for i, unit in enumerate(LONG_FIRST)}
        items.sort(key=lambda item: rank.get(unit_of(item.nodeid), len(rank)))  # stable: the rest keep their order
