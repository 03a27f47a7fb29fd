"""`clientlens train --cv-folds / --max-rounds` (#18): an explicit tuning budget without editing the task's
spec (the demo's), used by the study and recorded in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from training import registry as R

runner = CliRunner()


@pytest.mark.slow
def test_the_given_folds_and_rounds_tune_and_are_recorded(features_dir, tmp_path):
    args = ["train", "churn", "--features", str(features_dir), "--trials", "2", "--seed", "1", "--no-plots"]
    result = runner.invoke(app, [*args, "--cv-folds", "2", "--max-rounds", "40", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["tuning"]["folds"] == 2  # the spec says 5
    run = R.client().get_run(out["run_id"])
    assert run.data.params["tuning_cv_folds"] == "2" and run.data.params["tuning_max_rounds"] == "40"
    spec = json.loads(Path(R.client().download_artifacts(out["run_id"], "spec.json", str(tmp_path))).read_text())
    assert spec["tuning"]["cv_folds"] == 2 and spec["tuning"]["max_rounds"] == 40
    bad = runner.invoke(app, [*args, "--max-rounds", "5", "--json"])
    assert bad.exit_code == 2 and "max-rounds" in bad.output
