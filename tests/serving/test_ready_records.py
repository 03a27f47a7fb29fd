"""Ready records (#18): the server's parent skips loading the champions only when every one of them has its
compiled object and explanation tables in the cache, as said by a record of that very MLflow version, host and
code, whose files are still there."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from core.settings import Settings
from serving import compiled, models_store
from serving.models_store import explanation_path, is_ready, mark_ready, prepare_version, ready_path
from training.model import TabularModel

LABELS = {"mlflow_name": "clientlens-churn", "mlflow_version": "3", "mlflow_run_id": "0123abcd"}


def _model(kind: str) -> TabularModel:
    """A small model (compiling is most of these tests' time)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + rng.normal(0, 0.5, 600) > 0).astype(int) + (kind == "multiclass") * (X[:, 1] > 0.5)
    params = {"objective": "binary"} if kind == "binary" else {"objective": "multiclass", "num_class": 3}
    booster = lgb.train({**params, "num_leaves": 7, "verbose": -1, "seed": 0}, lgb.Dataset(X, y), num_boost_round=8)
    classes = None if kind == "binary" else ["low", "mid", "high"]
    return TabularModel(task="churn" if kind == "binary" else "tier", kind=kind, features=[f"f{i}" for i in range(4)],
                        categories={}, booster=booster, calibrator=None, classes=classes)  # fmt: skip


def _settings(tmp_path, **kw) -> Settings:
    return Settings(home=tmp_path / "home", compiled_dir=tmp_path / "compiled", **kw)


def test_a_prepared_version_is_ready_until_its_files_go(tmp_path):
    settings = _settings(tmp_path)
    core = _model("binary")
    assert not is_ready(LABELS, settings)  # nothing compiled yet
    prepare_version(core, LABELS["mlflow_name"], LABELS["mlflow_version"], LABELS["mlflow_run_id"], settings)
    assert core.predictor is not None
    assert is_ready(LABELS, settings)
    obj = compiled.object_path(core.booster.model_to_string(), settings.compiled_dir)
    tables = explanation_path(core.booster, settings.compiled_dir)
    assert obj.is_file() and tables.is_file()
    # another version, run or model of the same name has no record
    for key, other in (("mlflow_version", "4"), ("mlflow_run_id", "ffff"), ("mlflow_name", "clientlens-risk")):
        assert not is_ready({**LABELS, key: other}, settings)
    assert not is_ready({k: v for k, v in LABELS.items() if k != "mlflow_run_id"}, settings)
    tables.unlink()
    assert not is_ready(LABELS, settings)  # the tables are gone: a worker would build them
    assert models_store.prepare_explanations(core, settings.compiled_dir) is False  # rebuilt and stored
    assert is_ready(LABELS, settings)
    obj.unlink()
    assert not is_ready(LABELS, settings)  # the object is gone: a worker would compile
    prepare_version(core, LABELS["mlflow_name"], LABELS["mlflow_version"], LABELS["mlflow_run_id"], settings)
    assert is_ready(LABELS, settings)
    path = ready_path(LABELS, settings)
    assert path is not None
    for body in ("", "{", '{"files": 3}', '{"model": {}}'):  # an unreadable record is not ready
        path.write_text(body)
        assert not is_ready(LABELS, settings)


def test_a_multiclass_model_needs_only_its_object_and_the_record_names_the_compile_setting(tmp_path):
    on, off = _settings(tmp_path), _settings(tmp_path, compiled_models=False)
    labels = {"mlflow_name": "clientlens-tier", "mlflow_version": "1", "mlflow_run_id": "run1"}
    prepare_version(_model("multiclass"), "clientlens-tier", "1", "run1", on)
    assert is_ready(labels, on) and not is_ready(labels, off)
    assert ready_path(labels, on) != ready_path(labels, off)
    plain = _model("binary")
    prepare_version(plain, LABELS["mlflow_name"], LABELS["mlflow_version"], LABELS["mlflow_run_id"], off)
    assert plain.predictor is None  # compiling is off: the tables alone make it ready
    assert is_ready(LABELS, off) and not is_ready(LABELS, on)


def test_no_record_for_a_model_that_is_not_compiled(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    core = _model("binary")
    monkeypatch.setattr(compiled, "compile_booster", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no LLVM")))
    prepare_version(core, LABELS["mlflow_name"], LABELS["mlflow_version"], LABELS["mlflow_run_id"], settings)
    assert core.predictor is None
    assert not is_ready(LABELS, settings)
    assert not mark_ready(core, LABELS, settings)
