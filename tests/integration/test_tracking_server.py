"""End to end beyond one machine (issue #16): PostgreSQL + `mlflow server` + a 2-worker Dask cluster.

A churn model is tuned by trials on both Dask workers sharing one Optuna study stored in
PostgreSQL, fitted by `lightgbm.dask`, logged, registered and promoted through the tracking
server (artefacts uploaded to and served by it); tier and risk champions are trained locally
through the same server. The BentoML service then loads every champion from the server and
scores the same as batch scoring; a drift report over the service's inference log is attached
to the champion's run on the server.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.tasks import task

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

API_KEY = "integration-key-2b7d"


@pytest.fixture(scope="module")
def env(tracking_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    values = {
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_server.url,
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": str(home / "inference_log"),
        "CLIENTLENS_REPORTS": str(home / "reports"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        yield values


@pytest.fixture(autouse=True)
def on_the_server(isolated_home, env, monkeypatch):
    """Every test here talks to the tracking server (after the per-test home of tests/conftest.py)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def trained(env, tracking_server, tmp_path_factory):
    """tier and risk trained here, churn on Dask with its study in PostgreSQL; all promoted via the server."""
    from tests.serving.champions import build_tables, task_spec, train_champion
    from training.distributed import dask_engine
    from training.promote import promote
    from training.registry import log_training
    from training.train import fit_task

    tables = build_tables(tmp_path_factory.mktemp("work"), customers=900, months=15, seed=11)
    for name in ("tier", "risk"):
        train_champion(name, tables["panel"], tables["truth"], seed=0)
    spec = task_spec("churn", tables["panel"])
    # Split per partition on the cluster: by customer (a random row split needs the whole table's row order).
    spec = spec.model_copy(update={"group": "customer_id", "split": spec.split.model_copy(update={"kind": "group"})})
    with dask_engine(workers=2, study_storage=tracking_server.optuna_db, task="churn") as engine:
        workers = engine.n_workers
        frame = engine.read_source(spec, seed=0)  # the panel read, labelled and split on the workers
        result = fit_task(spec, frame, seed=0, trials=4, engine=engine)
        assert engine.train_rows is not None  # so the booster was fitted on the workers' partitions
    logged = log_training(result, plots=False)
    promoted = promote("churn", margin=-1.0)
    return {"tables": tables, "result": result, "logged": logged, "promoted": promoted, "workers": workers}


def test_the_study_lives_in_postgres_and_both_workers_ran_trials(trained, tracking_server):
    import optuna

    assert trained["workers"] == 2
    name = trained["result"].tuning.params["study_name"]
    study = optuna.load_study(study_name=name, storage=tracking_server.optuna_db)
    assert len(study.trials) == 4
    assert {t.user_attrs.get("worker") for t in study.trials} == {0, 1}
    assert trained["result"].tuning.n_trials == 4


def test_champion_is_registered_and_loaded_through_the_server(trained, tracking_server):
    from training.registry import load_champion

    model, info = load_champion("churn")
    assert info["version"] == trained["logged"]["version"]
    assert "champion" in info["aliases"]
    # Artefacts went through the server into its artefact folder (not to a local path of this process).
    assert any(p.name == "MLmodel" for p in tracking_server.artifacts.rglob("MLmodel"))
    latest = pd.read_parquet(trained["tables"]["latest"])
    np.testing.assert_allclose(
        model.predict_proba(latest)[:, 1], trained["result"].model.predict_proba(latest)[:, 1], rtol=0, atol=1e-12
    )


def test_service_loads_champions_from_the_server_scores_as_batch_and_drift_attaches(trained, env, tmp_path):
    from monitoring.config import DriftConfig
    from monitoring.drift import run_task_drift
    from serving.process import running_service
    from training.registry import client, load_model
    from training.scoring import score_frame

    latest = pd.read_parquet(trained["tables"]["latest"])
    sample = latest.sample(200, random_state=1).reset_index(drop=True)
    service_env = {
        **env,
        "CLIENTLENS_FEATURES_TABLE": str(trained["tables"]["latest"]),
        "CLIENTLENS_API_KEY": API_KEY,
        "CLIENTLENS_LOG_FLUSH_ROWS": "50",
        "CLIENTLENS_RELOAD_SECONDS": "3600",
    }
    import httpx

    with running_service(env=service_env, log_path=tmp_path / "serve.log", ready_timeout=300) as url:
        body = httpx.post(
            f"{url}/score_ids",
            json={"customer_ids": sample["customer_id"].tolist()},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=120,
        ).json()
    assert body["versions"]["churn"] == trained["logged"]["version"]
    models = {name: load_model(name, version)[0] for name, version in body["versions"].items()}
    batch = score_frame(sample, models)
    column = task("churn").score_column()
    served = np.array([r["churn"]["probability"] for r in body["results"]])
    np.testing.assert_allclose(served, batch[column].to_numpy(dtype=float), rtol=0, atol=1e-9)

    # The clientlens summary only (Evidently's HTML report is tested in tests/monitoring and costs minutes here).
    drift = run_task_drift("churn", config=DriftConfig(evidently_report=False, workspace=False), attach=True)
    run_id = trained["logged"]["run_id"]
    listed = client().list_artifacts(run_id, drift.mlflow["artifact_path"])
    assert {p.path.rsplit("/", 1)[-1] for p in listed} >= {drift.report.name, drift.json_path.name}
