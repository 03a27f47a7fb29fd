"""MLflow: run logging, registry aliases, promotion gate, loaders, batch scoring CLI (real SQLite store)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from training import registry as R

runner = CliRunner()


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cli(*args: str) -> tuple[dict, str]:
    """`clientlens ARGS --json` as a user runs it (its own process): the summary and the console (stderr)."""
    done = subprocess.run([sys.executable, "-m", "clientlens", *args, "--json"], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.slow
def test_train_register_promote_load_and_score(features_dir, tmp_path):
    # The first training as a data scientist runs it: its console carries clientlens' output and MLflow's
    # registry lines, not MLflow's notes on what this module does by design.
    first, console = _cli("train", "churn", "--features", str(features_dir), "--trials", "2", "--seed", "1")
    assert "Created version '1' of model 'clientlens-churn'" in console
    assert "Warning" not in console and "WARNING" not in console, console  # Python's or MLflow's
    assert [note for note in R.MODEL_LOGGING_NOTES if note in console] == [], console
    assert {"task", "model", "version", "run_id", "metrics", "baseline"} <= set(first)
    assert first["model"] == "clientlens-churn" and first["version"] == "1"
    assert set(first["metrics"]) == {"roc_auc", "pr_auc", "ks", "brier", "lift_at_10"}

    c = R.client()
    run = c.get_run(first["run_id"])
    assert "baseline_roc_auc" in run.data.metrics and "calibration_ece_after" in run.data.metrics
    assert run.data.tags["dataset_fingerprint"] and run.data.params["lgb_num_leaves"]
    artefacts = {a.path for a in c.list_artifacts(first["run_id"])}
    assert {"reference.parquet", "holdout.parquet", "plots", "evaluation.json", "spec.json"} <= artefacts
    plots = {a.path for a in c.list_artifacts(first["run_id"], "plots")}
    assert {"plots/roc_pr.png", "plots/calibration.png", "plots/confusion_matrix.png", "plots/importance.png"} <= plots
    assert str(c.get_model_version_by_alias("clientlens-churn", "challenger").version) == "1"

    # first promotion: no champion yet
    p1 = _json(runner.invoke(app, ["promote", "churn", "--json"]))
    assert p1["promoted"] is True and p1["champion"] == "1" and "first" in p1["reason"]

    # same data/spec/seed -> same metrics -> no gain -> rejected, with the numbers recorded as tags
    second = _json(
        runner.invoke(
            app, ["train", "churn", "--features", str(features_dir), "--trials", "2", "--seed", "1", "--json"]
        )
    )
    assert second["version"] == "2" and second["metrics"] == first["metrics"]
    # (the champion's and the challenger's holdouts are read: no progress bar on the console for them)
    p2, console = _cli("promote", "churn", "--margin", "0.001")
    assert "Downloading artifacts" not in console, console
    assert p2["promoted"] is False and p2["champion"] == "1"
    tags = c.get_model_version("clientlens-churn", "2").tags
    assert tags["promotion_decision"] == "rejected"
    assert float(tags["promotion_challenger_score"]) == pytest.approx(float(tags["promotion_champion_score"]))
    assert "margin" in tags["promotion_reason"]

    core, info = R.load_champion("churn")
    assert info["version"] == "1" and "champion" in info["aliases"] and "roc_auc" in info["metrics"]
    ref = R.load_reference("churn")
    assert {"prediction", "churn_proba"} <= set(ref.columns) and set(core.features) <= set(ref.columns)
    assert 0 < len(ref) <= 5000

    # the pyfunc itself: signature + input example, predict gives the core's numbers
    pyfunc = mlflow.pyfunc.load_model("models:/clientlens-churn@champion")
    assert pyfunc.metadata.get_input_schema() is not None
    example = ref[core.features].head(4).reset_index(drop=True)
    out = pyfunc.predict(example)
    pd.testing.assert_series_equal(out["proba"], pd.Series(core.predict_proba(example)[:, 1], name="proba"))

    # batch scoring with the champion
    scored = tmp_path / "scores.parquet"
    s = _json(
        runner.invoke(
            app,
            [
                "score",
                "--features",
                str(features_dir / "latest.parquet"),
                "--out",
                str(scored),
                "--tasks",
                "churn",
                "--json",
            ],
        )
    )
    assert s["rows"] == len(pd.read_parquet(features_dir / "latest.parquet")) and s["versions"] == {"churn": "1"}
    frame = pd.read_parquet(scored)
    assert {"customer_id", "churn_proba", "churn", "segment", "next_action", "version_churn"} <= set(frame.columns)


def test_promote_without_challenger_is_input_error():
    result = runner.invoke(app, ["promote", "churn", "--json"])
    assert result.exit_code == 2
    assert "challenger" in result.output


@pytest.mark.slow
def test_a_challenger_with_another_target_is_not_compared_with_the_champion(features_dir, tmp_path):
    """e.g. risk moved from binary (aggressive vs not) to three ordered classes: the champion cannot be
    scored on the new labels."""
    import yaml

    from training.spec import TASKS_DIR

    spec = yaml.safe_load((TASKS_DIR / "risk.yaml").read_text())
    spec.update(
        source=str(features_dir / "panel.parquet"),
        target={
            "column": "revealed_risk",
            "kind": "binary",
            "positive": "aggressive",
            "classes": ["not_aggressive", "aggressive"],
        },
    )  # the binary spec of 2026-11-29
    spec["tuning"] = {**spec["tuning"], "space": {**spec["tuning"]["space"], "min_child_samples": [10, 40]}}
    (tmp_path / "risk2.yaml").write_text(yaml.safe_dump(spec))
    old = _json(runner.invoke(app, ["train", "--spec", str(tmp_path / "risk2.yaml"), "--trials", "1", "--json"]))
    assert old["model"] == "clientlens-risk"
    assert _json(runner.invoke(app, ["promote", "risk", "--json"]))["promoted"] is True
    new = _json(runner.invoke(app, ["train", "risk", "--features", str(features_dir), "--trials", "1", "--json"]))
    p = _json(runner.invoke(app, ["promote", "risk", "--json"]))
    assert p["promoted"] is False and p["champion"] == old["version"] and new["version"] != old["version"]
    assert "not comparable" in p["reason"] and "binary" in p["reason"] and "--force" in p["reason"]
    # the data scientist who redefined the target replaces the champion, and says why
    assert runner.invoke(app, ["promote", "risk", "--force", " ", "--json"]).exit_code == 2
    forced = _json(
        runner.invoke(app, ["promote", "risk", "--force", "risk target redefined as three classes", "--json"])
    )
    assert forced["promoted"] is True and forced["champion"] == new["version"]
    tags = R.client().get_model_version("clientlens-risk", new["version"]).tags
    assert tags["promotion_decision"] == "promoted"
    assert (
        tags["promotion_reason"].startswith("forced (risk target redefined as three classes)")
        and "not comparable" in tags["promotion_reason"]
    )


def test_quiet_model_logging_leaves_out_its_notes_only():
    """The notes are dropped (as warnings and at the `mlflow` logger's handlers); everything else passes."""

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    mlflow_logger = logging.getLogger("mlflow")
    keep = Keep()
    mlflow_logger.addHandler(keep)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with R.quiet_model_logging():
                logging.getLogger("mlflow.utils.uv_utils").warning("Detected uv project: found uv.lock")
                logging.getLogger("mlflow.pyfunc").warning("Passing a Python object as `python_model` causes ...")
                logging.getLogger("mlflow.store").warning("the tracking store is read-only")
                warnings.warn("\x1b[33mFailed to resolve installed pip version\x1b[0m", UserWarning, stacklevel=1)
                warnings.warn("an integer column may be missing", UserWarning, stacklevel=1)
            logging.getLogger("mlflow.pyfunc").warning("Passing a Python object as `python_model` after the call")
    finally:
        mlflow_logger.removeHandler(keep)
    assert keep.messages == [
        "the tracking store is read-only",
        "Passing a Python object as `python_model` after the call",
    ]
    assert [str(w.message) for w in caught] == ["an integer column may be missing"]
