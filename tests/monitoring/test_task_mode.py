"""Task mode end to end against a real MLflow store and a real inference log.

The champion here is a registered model version whose run carries a `reference.parquet`
artefact in the layout `training` writes (features + `proba` + `prediction` + `target`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.tasks import CHURN_MIN_AUM, TASK_NAMES, version_column
from tests.monitoring import scenarios

FEATURES = [
    "aum",
    "deposit_share",
    "outflow_external_bank_90d",
    "login_count_30d",
    "digital_txn_share_90d",
    "deposit_rate_1y",
    "region",
    "stated_risk",
    "payroll_at_bank",
]


def _fake_champion(tmp_path, reference: pd.DataFrame) -> str:
    import mlflow

    from core.settings import Settings

    mlflow.set_tracking_uri(Settings().tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=Settings().tracking_uri)
    exp = client.create_experiment("clientlens-churn", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_metrics({"roc_auc": 0.81, "pr_auc": 0.4, "brier": 0.06})
        path = tmp_path / "reference.parquet"
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path))
    client.create_registered_model("clientlens-churn")
    mv = client.create_model_version(
        "clientlens-churn", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias("clientlens-churn", "champion", mv.version)
    return run.info.run_id


def _log(frame: pd.DataFrame, ts: str) -> None:
    from serving.inference_log import write_part

    rows = frame.copy()
    rows.insert(0, "request_id", "req-1")
    rows.insert(0, "ts", pd.Timestamp(ts, tz="UTC"))
    rows["churn"] = rows["churn_proba"] >= 0.5
    for task in TASK_NAMES:
        rows[version_column(task)] = "1"
    write_part(rows)


@pytest.mark.slow
def test_task_drift_on_the_inference_log_against_the_champion(tmp_path, isolated_home):
    from monitoring.config import DriftConfig
    from monitoring.drift import run_task_drift

    window = scenarios.feature_window(4_000, seed=21)
    reference = window.iloc[:2_000][FEATURES].assign(
        proba=window["churn_proba"].iloc[:2_000].to_numpy(), prediction=0, target=0
    )
    run_id = _fake_champion(tmp_path, reference)

    later = scenarios.rate_cut(window.iloc[2_000:].reset_index(drop=True))
    logged = later[["customer_id", *FEATURES, "churn_proba", "risk_proba_aggressive"]]
    _log(logged.iloc[:500], "2025-03-01 10:00")  # before --since: ignored
    _log(logged.iloc[500:], "2025-03-02 10:00")

    # labels from a later feature build, for the customers scored after --since
    rng = np.random.default_rng(0)
    scored = logged.iloc[500:]
    panel = pd.DataFrame(
        {
            "customer_id": scored["customer_id"].to_numpy(),
            "as_of": pd.Timestamp("2025-02-28"),
            "churn": (rng.random(len(scored)) < scored["churn_proba"].to_numpy()).astype(float),
        }
    )
    result = run_task_drift("churn", since="2025-03-02", config=DriftConfig(), labels=panel)

    assert result.rows_current == 1_500 and result.rows_reference == 2_000
    assert {"deposit_share", "outflow_external_bank_90d"} <= set(result.drifted)
    assert "login_count_30d" not in result.drifted
    # the deposit rate is market context: one value per date in both windows, its cut reported
    assert "deposit_rate_1y" not in result.drifted
    assert result.context["deposit_rate_1y"]["change"] == pytest.approx(-1.5)
    assert list(result.psi) == ["churn_proba"]  # only this task's score, matched with the reference's `proba`
    # CBPE on churn's eligible population (AUM minimum); this reference has no positive label to
    # recalibrate on, so the scores are taken as the model's own probabilities
    estimate = result.estimated_performance["churn"]
    assert estimate["rows"] == int((later["aum"].iloc[500:] >= CHURN_MIN_AUM).sum()) < 1_500
    assert estimate["calibration"] == "the model's own"
    # realised performance on the same population: the labels of ineligible customers never count
    assert result.performance["rows_matched"] == result.performance["rows_eligible"] == estimate["rows"]
    assert result.performance["training"]["roc_auc"] == pytest.approx(0.81)
    assert 0.5 < result.estimated_performance["churn"]["roc_auc"] < 1
    assert result.estimated_performance["churn"]["training_roc_auc"] == pytest.approx(0.81)
    # the estimate made before labels, next to the realised AUC (labels drawn from the scores: no concept drift)
    check = result.performance["estimate_check"]
    assert check["estimated"] == estimate["roc_auc"] and check["realised"] == result.performance["metrics"]["roc_auc"]
    print("estimate check:", check)
    assert check["concept_drift_suspected"] is False
    # history and MLflow
    assert result.workspace["project"] == "clientlens-churn"
    assert result.report.parent.parent == isolated_home / "reports" / "drift" / "churn"
    import mlflow

    client = mlflow.MlflowClient()
    folder = result.mlflow["artifact_path"]
    names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, folder)}
    assert names == {"drift_report.html", "drift_report.json"}
    assert json.loads(result.json_path.read_text())["clientlens"]["mlflow"]["run_id"] == run_id


def test_task_mode_without_a_champion_is_an_input_error():
    from monitoring.drift import run_task_drift

    with pytest.raises(InputError, match="no champion"):
        run_task_drift("churn")


@pytest.mark.slow
def test_consecutive_windows_in_one_call_equal_one_call_per_window(tmp_path, isolated_home):
    """`--split-at` (#18): the demo's two windows in one process give each window the verdicts, report, workspace
    run (in window order) and MLflow folder that one `run_task_drift` per window gives."""
    from monitoring.config import DriftConfig
    from monitoring.drift import run_task_drift, run_task_windows

    window = scenarios.feature_window(2_400, seed=5)
    reference = window.iloc[:1_200][FEATURES].assign(
        proba=window["churn_proba"].iloc[:1_200].to_numpy(), prediction=0, target=0
    )
    run_id = _fake_champion(tmp_path, reference)
    columns = ["customer_id", *FEATURES, "churn_proba", "risk_proba_aggressive"]
    current = window.iloc[1_200:].reset_index(drop=True)
    _log(current.iloc[:600][columns], "2025-03-01 10:00")
    _log(scenarios.rate_cut(current.iloc[600:].reset_index(drop=True))[columns], "2025-03-02 10:00")

    config = DriftConfig()
    split = run_task_windows("churn", ["2025-03-02"], config=config)
    alone = [
        run_task_drift("churn", until="2025-03-02", config=config),
        run_task_drift("churn", since="2025-03-02", config=config),
    ]
    assert [r.rows_current for r in split] == [600, 600]
    for mine, theirs in zip(split, alone, strict=True):
        assert (mine.status, mine.share_drifted, mine.drifted, mine.psi) == (
            theirs.status,
            theirs.share_drifted,
            theirs.drifted,
            theirs.psi,
        )
        assert [(c.column, c.statistic, c.drifted) for c in mine.columns] == [
            (c.column, c.statistic, c.drifted) for c in theirs.columns
        ]
    assert split[0].report != split[1].report and split[0].mlflow["artifact_path"] != split[1].mlflow["artifact_path"]
    import mlflow

    client = mlflow.MlflowClient()
    for r in split:
        names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, r.mlflow["artifact_path"])}
        assert names == {"drift_report.html", "drift_report.json"}
    # the workspace holds the windows in order, then the two single runs: one project. The windows are
    # rendered side by side in forked processes: each snapshot carries its window's time, so the order holds
    assert split[0].workspace["project_id"] == alone[1].workspace["project_id"]
    snapshots = {}
    for path in (isolated_home / "evidently_workspace" / split[0].workspace["project_id"] / "snapshots").glob("*.json"):
        snapshots[path.stem] = json.loads(path.read_text())
    assert len(snapshots) == 8  # Evidently's report and the summary, per run
    runs = [*split, *alone]
    stamps = [snapshots[r.workspace[key]]["timestamp"] for r in runs for key in ("snapshot_id", "summary_snapshot_id")]
    assert stamps == sorted(stamps) and stamps[0] == stamps[1] < stamps[2] == stamps[3]
    for r in split:  # each window's report is complete: the summary on top of Evidently's report
        page = r.report.read_text()
        assert 'id="clientlens-summary"' in page and "churn_proba" in r.evidently["rendered"]
        assert snapshots[r.workspace["snapshot_id"]]["widgets"], "Evidently's report widgets in the workspace"


@pytest.mark.parametrize("split", [["2025-03-02", "2025-03-01"], ["2025-02-01"], ["not a time"]])
def test_split_times_must_increase_inside_the_bounds(split, isolated_home):
    from monitoring.drift import run_task_windows

    with pytest.raises(InputError, match="--split-at|not a time"):
        run_task_windows("churn", split, since="2025-02-15", until="2025-04-01")


def _two_day_log(tmp_path, rows: int = 600) -> str:
    """A champion and an inference log on 2025-03-01 and 2025-03-02 (nothing later); the champion's run id."""
    window = scenarios.feature_window(rows * 3, seed=8)
    reference = window.iloc[:rows][FEATURES].assign(
        proba=window["churn_proba"].iloc[:rows].to_numpy(), prediction=0, target=0
    )
    run_id = _fake_champion(tmp_path, reference)
    columns = ["customer_id", *FEATURES, "churn_proba", "risk_proba_aggressive"]
    _log(window.iloc[rows : 2 * rows][columns], "2025-03-01 10:00")
    _log(window.iloc[2 * rows :][columns], "2025-03-02 10:00")
    return run_id


def _nothing_written(home, run_id: str) -> None:
    import mlflow

    assert not (home / "reports").exists() or not any((home / "reports").rglob("*")), "a report was written"
    assert not (home / "evidently_workspace").exists(), "a workspace run was written"
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(run_id)] == ["reference.parquet"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "split, empty",
    [
        (["2025-03-01 12:00", "2025-03-02"], "window 2 of 3"),  # the middle window is empty
        (["2025-03-02", "2025-03-03"], "window 3 of 3"),  # the last window is empty
    ],
)
def test_split_windows_are_all_or_nothing(split, empty, tmp_path, isolated_home):
    """`--split-at` (#18 review debt): a bad later window is found before any window writes its report,
    workspace run or MLflow folder (the earlier windows used to be written, then exit 2)."""
    from monitoring.config import DriftConfig
    from monitoring.drift import run_task_windows

    run_id = _two_day_log(tmp_path)
    with pytest.raises(InputError, match=empty) as caught:
        run_task_windows("churn", split, config=DriftConfig())  # with Evidently and the workspace, as the demo
    assert "no rows" in str(caught.value) and "nothing was written" in str(caught.value)
    _nothing_written(isolated_home, run_id)


@pytest.mark.slow
def test_split_windows_cli_exits_2_and_writes_nothing(tmp_path, isolated_home):
    from typer.testing import CliRunner

    from clientlens.cli import app

    run_id = _two_day_log(tmp_path)
    res = CliRunner().invoke(app, ["drift", "--task", "churn", "--split-at", "2025-03-02", "--split-at", "2025-03-03",
                                   "--no-evidently", "--json"])  # fmt: skip
    assert res.exit_code == 2, res.output
    error = json.loads(res.stdout.strip().splitlines()[-1])["error"]
    assert "window 3 of 3" in error and "no rows" in error
    _nothing_written(isolated_home, run_id)


def _die_in_window(*_args, **_kwargs):
    """A window process that dies without a Python exception (what a crash or the OOM killer looks like)."""
    import os

    os._exit(3)


@pytest.mark.slow
def test_a_window_process_that_dies_is_an_error_not_a_hang(tmp_path, isolated_home, monkeypatch):
    """The windows are rendered in forked processes: one that dies must end the run with an error (a
    `multiprocessing.Pool` waits for ever there), and no window is attached to the champion's MLflow run."""
    from concurrent.futures.process import BrokenProcessPool

    from monitoring import drift
    from monitoring.config import DriftConfig

    run_id = _two_day_log(tmp_path)
    monkeypatch.setattr(drift, "_render_window", _die_in_window)  # inherited by the forked renderer
    with pytest.raises(BrokenProcessPool):
        drift.run_task_windows("churn", ["2025-03-02"], config=DriftConfig())
    import mlflow

    assert [a.path for a in mlflow.MlflowClient().list_artifacts(run_id)] == ["reference.parquet"]
