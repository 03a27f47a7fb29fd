"""Settings: every variable read once into one typed object; a mapping reads nothing else."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_locations_default_under_home(tmp_path):
    s = Settings.from_env({"CLIENTLENS_HOME": str(tmp_path)})
    assert s.home_dir == tmp_path
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.features_table == tmp_path / "features" / "latest.parquet"
    assert (s.bentoml_home, s.inference_log, s.reports, s.compiled_dir) == (
        tmp_path / "bentoml", tmp_path / "inference_log", tmp_path / "reports", tmp_path / "compiled",
    )  # fmt: skip


def test_each_variable_overrides_its_field(tmp_path):
    env = {
        "CLIENTLENS_HOME": str(tmp_path / "h"),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "BENTOML_HOME": str(tmp_path / "b"),
        "CLIENTLENS_FEATURES_TABLE": str(tmp_path / "t.parquet"),
        "CLIENTLENS_COMPILED_MODELS": "0",
        "CLIENTLENS_WORKERS": "3",
        "CLIENTLENS_API_KEY": "k",
    }
    s = Settings.from_env(env)
    assert s.tracking_uri == "http://127.0.0.1:5000" and s.bentoml_home == tmp_path / "b"
    assert s.features_table == tmp_path / "t.parquet" and s.features == tmp_path / "h" / "features"
    assert s.compiled_models is False and s.workers == 3 and s.api_key == "k"
    assert Settings.from_env(s.process_env()).inference_log == s.inference_log


def test_a_mapping_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("CLIENTLENS_WORKERS", "7")
    assert Settings().workers == 7
    assert Settings.from_env({}).workers == 1


def test_bad_values_are_named(monkeypatch):
    with pytest.raises(ValidationError, match="workers"):
        Settings.from_env({"CLIENTLENS_WORKERS": "zero"})
