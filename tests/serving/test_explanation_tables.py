"""The explanation tables stored beside the compiled models (#18): built once, read back exactly, keyed by the
booster's content (a new model version never reads another's tables), rebuilt when the file is unreadable."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from serving.models_store import EXPLANATION_SUFFIX, explanation_key, is_ready, prepare_explanations
from training.model import TabularModel, path_attribution
from training.segments import DEFAULT_DRIVERS, _family_groups, churn_drivers
from training.treeshap import family_treeshap

FEATURES = ["deposit_rate_gap", "complaint_views", "login_count_3m", "views_mortgage_3m", "aum", "age"]


def _core(seed: int = 0, booster: lgb.Booster | None = None) -> tuple[TabularModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1200, len(FEATURES)))
    y = (X[:, 0] + 0.8 * X[:, 1] - 0.7 * X[:, 2] + 0.5 * X[:, 3] + rng.normal(0, 0.7, len(X)) > 0.3).astype(float)
    core = TabularModel(task="churn", kind="binary", features=FEATURES, categories={}, booster=None,
                        calibrator=None, classes=["0", "1"])  # fmt: skip
    params = {"objective": "binary", "verbosity": -1, "seed": seed, "deterministic": True, "num_threads": 1}
    core.booster = booster or lgb.train({**params, "num_leaves": 15, "min_data_in_leaf": 5}, lgb.Dataset(X, y), 25)
    return core, X[:300]


def _tables(core: TabularModel) -> tuple[np.ndarray, dict, np.ndarray]:
    groups = _family_groups(DEFAULT_DRIVERS, core.features)
    return path_attribution(core.booster).deltas, family_treeshap(core.booster)._tables, groups


def test_tables_are_stored_once_and_read_back_exactly(tmp_path):
    built, X = _core()
    assert prepare_explanations(built, tmp_path) is False  # built, then stored
    stored = list(tmp_path.glob(f"*{EXPLANATION_SUFFIX}"))
    assert [p.name for p in stored] == [explanation_key(built.booster) + EXPLANATION_SUFFIX]
    expected = churn_drivers(built, X)

    # the same model as a service loads it: a new booster object from the same model text
    loaded, _ = _core(booster=lgb.Booster(model_str=built.booster.model_to_string()))
    assert prepare_explanations(loaded, tmp_path) is True
    deltas, tables, _ = _tables(loaded)
    want_deltas, want_tables, _ = _tables(built)
    assert np.array_equal(deltas, want_deltas)
    assert tables.keys() == want_tables.keys() and tables  # the drivers' grouping is there, not rebuilt
    for key in tables:
        assert np.array_equal(tables[key].values, want_tables[key].values)
    assert (churn_drivers(loaded, X) == expected).all()


def test_another_model_version_never_reads_these_tables(tmp_path):
    first, _ = _core(seed=0)
    second, X = _core(seed=1)
    assert explanation_key(first.booster) != explanation_key(second.booster)
    prepare_explanations(first, tmp_path)
    assert prepare_explanations(second, tmp_path) is False  # its own tables, built
    assert len(list(tmp_path.glob(f"*{EXPLANATION_SUFFIX}"))) == 2
    fresh, _ = _core(seed=1)
    assert (churn_drivers(second, X) == churn_drivers(fresh, X)).all()


def test_an_unreadable_file_is_rebuilt(tmp_path, caplog):
    core, X = _core()
    path = tmp_path / f"{explanation_key(core.booster)}{EXPLANATION_SUFFIX}"
    path.write_bytes(b"truncated")
    assert prepare_explanations(core, tmp_path) is False
    assert "unreadable explanation tables" in caplog.text
    again, _ = _core(booster=lgb.Booster(model_str=core.booster.model_to_string()))
    assert prepare_explanations(again, tmp_path) is True  # the rebuilt file replaced the bad one
    assert (churn_drivers(again, X) == churn_drivers(core, X)).all()


def test_a_multiclass_model_has_no_tables(tmp_path):
    core, _ = _core()
    multi = TabularModel(task="risk", kind="multiclass", features=FEATURES, categories={}, booster=core.booster,
                         calibrator=None, classes=["a", "b", "c"])  # fmt: skip
    assert prepare_explanations(multi, tmp_path / "compiled") is False
    assert not (tmp_path / "compiled").exists()


@pytest.mark.slow  # trains the serving test models (~30 s) when no other test has
def test_the_demos_compiler_stores_the_tables_the_service_reads(use_serving_env, tmp_path):
    """`clientlens demo` compiles each new model in a side process (`warm_compiled_models`); that process also
    stores the churn model's tables, so a service loading the same champion reads them instead of building."""
    from clientlens.demo import warm_compiled_models
    from core.settings import Settings
    from training.registry import load_model

    settings = Settings(compiled_dir=tmp_path / "compiled")
    version = use_serving_env.versions["churn"]
    assert warm_compiled_models(settings, {"churn": version}).wait() == 0
    core, info = load_model("churn", version)
    stored = settings.compiled_dir / f"{explanation_key(core.booster)}{EXPLANATION_SUFFIX}"
    assert stored.is_file()
    assert list(settings.compiled_dir.glob("*.o"))  # and the compiled object, as before
    assert prepare_explanations(core, settings.compiled_dir) is True
    # and the version's ready record, which lets the server's parent skip loading it (`serving_ready`)
    labels = {"mlflow_name": info["name"], "mlflow_version": info["version"], "mlflow_run_id": info["run_id"]}
    assert is_ready(labels, settings)
