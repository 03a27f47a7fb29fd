"""Shared fixtures. Every test runs with its own clientlens home, MLflow store and BentoML store."""

from __future__ import annotations

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
