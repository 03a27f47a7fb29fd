"""`clientlens retrain` end to end on a simulated bank: real drift reports, real feature builds, real
training, a real MLflow store and the real promotion gate, both ways.

- no drift -> `--if-drift` trains nothing;
- drift, against a broken champion (trained on the old window with its churn labels shuffled) ->
  the challenger beats it on the newest holdout and is promoted;
- drift again, against that champion, with the same data, spec and seed -> the challenger is no
  better (gain 0, not above the margin) and is not promoted;
- drift again, with a genuinely worse challenger: a challenger spec file (`--spec`) that sees only
  the customer's region -> its AUC on the newest holdout is well
  below the champion's and it is not promoted. (Crippling capacity instead, ten two-leaf stumps, was
  tried and promoted: a stump on the AUM change beats a one-trial champion on 1,000 customers.)
Every decision is recorded on the challenger's model version.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from core.settings import Settings
from monitoring.config import DriftConfig, DriftThresholds
from monitoring.drift import run_file_drift
from tests.monitoring import scenarios

# end to end on a loaded 2-core machine: above the suite's 300 s per-test default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
runner = CliRunner()


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A small simulated bank and its feature panel (1,000 customers, 15 months)."""
    from features.panel import build_panel
    from features.simulate import simulate

    root = tmp_path_factory.mktemp("bank")
    simulate(root / "raw", customers=1_000, months=15, seed=5)
    build_panel(root / "raw", root / "features")
    return root


def _broken_champion(bank, tmp_path) -> str:
    """The champion: churn trained on the oldest three as-of dates with its labels shuffled."""
    from training.promote import promote
    from training.spec import builtin_spec
    from training.train import run_training

    panel = pd.read_parquet(bank / "features" / "panel.parquet")
    old = panel[panel["as_of"].isin(sorted(panel["as_of"].unique())[:3])].copy()
    labelled = old["churn"].notna().to_numpy()
    old.loc[labelled, "churn"] = np.random.default_rng(0).permutation(old.loc[labelled, "churn"].to_numpy())
    (tmp_path / "old").mkdir()
    old.to_parquet(tmp_path / "old" / "panel.parquet", index=False)
    trained = run_training(builtin_spec("churn", tmp_path / "old"), seed=0, trials=1, plots=False)
    assert promote("churn")["promoted"]  # the first champion
    return trained["version"]


def _drift_report(bank, *, shifted: bool) -> dict:
    """A real two-file drift run of the churn task into <reports>/drift/churn/ (where retrain looks).

    The current window is the latest feature table, after a rate cut when `shifted`; the share
    thresholds are set for this narrow shift (4 of ~150 features move)."""
    latest = pd.read_parquet(bank / "features" / "latest.parquet")
    current = scenarios.rate_cut(latest) if shifted else latest
    config = DriftConfig(
        thresholds=DriftThresholds(share_warn=0.01, share_drift=0.02), evidently_report=False, workspace=False
    )
    result = run_file_drift(latest, current, None, config, task="churn", settings=Settings())
    return {"status": result.status, "json": result.json_path}


def _retrain(bank, *extra: str) -> dict:
    res = runner.invoke(
        app, ["retrain", "churn", "--raw", str(bank / "raw"), "--if-drift", "--trials", "1", "--json", *extra]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_retrain_on_drift_promotes_a_better_challenger_and_rejects_one_that_is_not(bank, tmp_path):
    from training import registry as R

    c = R.client()
    first = _broken_champion(bank, tmp_path)

    # 1. no drift: nothing is trained, exit 0, promoted false
    quiet = _drift_report(bank, shifted=False)
    assert quiet["status"] == "ok"
    out = _retrain(bank)
    assert out["retrained"] is False and out["promoted"] is False
    assert out["champion"] == first and "'ok'" in out["reason"]
    assert len(c.search_model_versions("name='clientlens-churn'")) == 1

    # 2. drift: a challenger from the new window beats the broken champion and is promoted
    drifted = _drift_report(bank, shifted=True)
    assert drifted["status"] == "drift"
    out = _retrain(bank)
    assert out["retrained"] is True and out["promoted"] is True, out
    assert out["drift"]["report"] == str(drifted["json"]) and out["drift"]["status"] == "drift"
    assert out["gate"]["challenger_score"] > out["gate"]["champion_score"] + 0.05
    print("promoted:", out["gate"])
    better = out["challenger"]
    assert out["champion"] == better != first
    assert str(c.get_model_version_by_alias("clientlens-churn", "champion").version) == better
    tags = c.get_model_version("clientlens-churn", better).tags
    assert tags["retrain_trigger"] == "drift" and tags["retrain_drift_report"] == str(drifted["json"])
    assert tags["retrain_run_id"] == out["run_id"] and tags["retrain_decision"] == "promoted"
    assert tags["promotion_decision"] == "promoted" and tags["promotion_champion_version"] == first
    assert [a.path for a in c.list_artifacts(out["run_id"], "retrain")] == ["retrain/drift_report.json"]

    # 3. the same window, spec and seed again: an equal challenger (gain 0) is not promoted
    out = _retrain(bank)
    assert out["retrained"] is True and out["promoted"] is False, out
    assert out["gate"]["gain"] == pytest.approx(0.0, abs=1e-9)
    print("rejected:", out["gate"])
    assert out["champion"] == better and out["challenger"] != better
    assert str(c.get_model_version_by_alias("clientlens-churn", "champion").version) == better
    tags = c.get_model_version("clientlens-churn", out["challenger"]).tags
    assert tags["retrain_decision"] == "rejected" and tags["promotion_decision"] == "rejected"
    assert "does not exceed margin" in tags["promotion_reason"]

    # 4. a worse challenger: the churn spec on the customer's region alone, which the simulator does not
    # tie to leaving (the profile family as a whole was tried: on this 523-row holdout with ~13 churners
    # it scored 0.62 on one simulator and 0.93 on the next, against a 0.91 champion); it carries the champion's inputs as keep_columns so the
    # gate can score the champion on the same holdout (through --spec, the real training path)
    import yaml

    from training.spec import TASKS_DIR

    champion_model, _ = R.load_model("churn", better)
    crippled = yaml.safe_load((TASKS_DIR / "churn.yaml").read_text())
    crippled["features"] = ["region"]
    crippled["keep_columns"] = sorted(set(champion_model.features) | set(crippled["keep_columns"]))
    crippled["churn_driver"] = False
    spec = tmp_path / "churn_profile_only.yaml"
    spec.write_text(yaml.safe_dump(crippled))
    out = _retrain(bank, "--spec", str(spec))
    print("worse:", out["gate"])
    assert out["retrained"] is True and out["promoted"] is False, out
    assert out["gate"]["gain"] < -0.02 and out["gate"]["challenger_score"] < out["gate"]["champion_score"]
    assert out["champion"] == better != out["challenger"]
    assert str(c.get_model_version_by_alias("clientlens-churn", "champion").version) == better
    tags = c.get_model_version("clientlens-churn", out["challenger"]).tags
    assert tags["retrain_decision"] == "rejected" and tags["promotion_decision"] == "rejected"
    assert tags["retrain_spec"] == str(spec.resolve()) and tags["retrain_drift_report"] == str(drifted["json"])


def test_retrain_bad_input_exits_2(tmp_path):
    res = runner.invoke(app, ["retrain", "nope", "--raw", str(tmp_path), "--json"])
    assert res.exit_code == 2 and "unknown task" in res.output
    res = runner.invoke(app, ["retrain", "churn", "--raw", str(tmp_path / "missing"), "--json"])
    assert res.exit_code == 2 and "not a folder" in res.output
    bad = tmp_path / "drift_report.json"
    bad.write_text("{}")
    res = runner.invoke(app, ["retrain", "churn", "--raw", str(tmp_path), "--drift-report", str(bad), "--json"])
    assert res.exit_code == 2 and "not a clientlens drift report" in res.output
    res = runner.invoke(
        app, ["retrain", "churn", "--raw", str(tmp_path), "--spec", str(tmp_path / "no.yaml"), "--json"]
    )
    assert res.exit_code == 2 and "no.yaml: file not found" in res.output
