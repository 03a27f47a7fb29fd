"""Drift on simulated windows: injected market shifts are caught on the right features,
same-distribution windows do not raise false alarms, and the report is written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from monitoring.config import DriftConfig, DriftThresholds
from monitoring.drift import decide_status, evaluate, resolve_columns, run_file_drift
from tests.monitoring import scenarios

FEATURE_SCENARIO_COLUMNS = {
    name: {c for c in cols if c not in scenarios.SCORE_COLUMNS and c not in scenarios.SCENARIO_CONTEXT[name]}
    for name, cols in scenarios.SCENARIO_COLUMNS.items()
}


@pytest.mark.parametrize("scenario", sorted(scenarios.SCENARIOS))
def test_injected_shift_is_reported_on_the_right_features(windows, scenario):
    reference, current = windows
    shifted = scenarios.SCENARIOS[scenario](current)
    result = evaluate(reference, shifted)
    assert set(result.drifted) == FEATURE_SCENARIO_COLUMNS[scenario]
    assert result.status in ("warn", "drift")
    # the market columns it moved are context: their values before and after, no customer verdict
    assert set(result.roles.context) == {"deposit_rate_1y", "index_return_3m"}
    assert not set(result.roles.context) & {c.column for c in result.columns}
    for col in scenarios.SCENARIO_CONTEXT[scenario]:
        before = evaluate(reference, current).context[col]["current_value"]
        assert result.context[col]["current_value"] != pytest.approx(before)
    # and nothing drifts without the shift
    assert evaluate(reference, current).drifted == []


def test_context_columns_are_reported_per_date_and_found_without_the_registry():
    """A column with one value per as-of date (the market) is context even outside the registry;
    its value at every date of both windows is in the report; a customer column is not context."""
    rng = np.random.default_rng(0)

    def window(dates, rate):
        n = 300 * len(dates)
        as_of = np.repeat(pd.to_datetime(dates), 300)
        return pd.DataFrame(
            {
                "as_of": as_of,
                "policy_rate": np.repeat(rate, 300),
                "balance": rng.lognormal(8, 1, n),
                "index_level": np.repeat(np.arange(len(dates)) * 10.0 + 100, 300),
            }
        )

    ref = window(["2025-01-31"], [2.0])
    cur = window(["2025-02-28", "2025-03-31"], [1.75, 1.5])
    result = evaluate(ref, cur, roles=resolve_columns(ref, cur, use_registry=False))
    assert result.roles.context == ["policy_rate", "index_level"]
    assert [c.column for c in result.columns] == ["balance"]
    rate = result.context["policy_rate"]
    assert rate["reference"] == {"2025-01-31": 2.0}
    assert rate["current"] == {"2025-02-28": 1.75, "2025-03-31": 1.5}
    assert rate["change"] == pytest.approx(-0.5)
    assert "varies_within_date" not in rate
    assert "policy_rate" not in result.drifted and result.share_drifted == 0.0


def test_bull_market_moves_the_scores_psi_to_drift(windows):
    reference, current = windows
    result = evaluate(reference, scenarios.bull_market(current))
    assert result.psi["risk_proba_aggressive"] >= 0.25
    assert result.status == "drift"
    assert any("risk_proba_aggressive" in r for r in result.reasons)
    assert result.psi["tier_proba_hnw"] < 0.1  # wealth did not move


@pytest.mark.parametrize("rows", [800, 3000], ids=["p-value tests", "distance tests"])
def test_twenty_same_distribution_splits_give_at_most_two_false_drifts(big_window, rows):
    rng = np.random.default_rng(rows)
    statuses = []
    for _ in range(20):
        idx = rng.permutation(len(big_window))
        ref, cur = big_window.iloc[idx[:rows]], big_window.iloc[idx[rows : 2 * rows]]
        statuses.append(evaluate(ref, cur, DriftConfig(workers=1)).status)
    assert statuses.count("drift") <= 2, statuses


def test_status_thresholds():
    t = DriftThresholds()
    assert decide_status(0.0, {"churn_proba": 0.05}, t)[0] == "ok"
    assert decide_status(0.1, {}, t)[0] == "warn"
    assert decide_status(0.3, {}, t)[0] == "drift"
    assert decide_status(0.0, {"churn_proba": 0.1}, t)[0] == "warn"
    assert decide_status(0.0, {"churn_proba": 0.25, "x_proba": 0.0}, t)[0] == "drift"
    assert decide_status(0.0, {"churn_proba": float("nan")}, t)[0] == "ok"
    with pytest.raises(ValueError):
        DriftThresholds(share_warn=0.5, share_drift=0.3)


def test_columns_typed_by_registry_when_they_match_it(windows):
    reference, current = windows
    roles = resolve_columns(reference, current)
    assert roles.source == "registry"
    assert "region" in roles.categorical and "tier" in roles.categorical
    assert "payroll_at_bank" in roles.numerical  # registry bools monitor as 0/1
    assert "customer_id" in roles.ignored
    assert "churn_proba" in roles.scores and "churn_proba" not in roles.features


def test_columns_typed_by_dtype_otherwise():
    ref = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "balance": [1.0, 2.0],
            "segment_x": ["a", "b"],
            "flag": [True, False],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "churn_proba": [0.1, 0.2],  # a score column as the task contract names it
            "other_proba": [0.3, 0.4],  # not a task's score: an ordinary number
        }
    )
    roles = resolve_columns(ref, ref.copy())
    assert roles.source == "dtypes"
    assert roles.numerical == ["balance", "flag", "other_proba"]
    assert roles.categorical == ["segment_x"]
    assert roles.scores == ["churn_proba"]
    assert set(roles.ignored) == {"customer_id", "when"}


def test_bad_input_is_an_input_error():
    a = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(InputError, match="no column in common"):
        evaluate(a, pd.DataFrame({"y": [1.0]}))
    with pytest.raises(InputError, match="no rows"):
        evaluate(a, a.iloc[:0])
    with pytest.raises(InputError, match="should be numerical"):
        evaluate(a, pd.DataFrame({"x": ["high", "low"]}))


def test_report_files_workspace_and_evidently_agreement(tmp_path, isolated_home):
    reference = scenarios.feature_window(2_500, seed=5)
    current = scenarios.channel_mix(scenarios.feature_window(2_500, seed=6))
    cols = [
        "customer_id",
        "digital_txn_share_90d",
        "branch_txn_count_90d",
        "advisor_txn_count_90d",
        "aum",
        "region",
        "payroll_at_bank",
        "churn_proba",
    ]
    # a cap below the window size: Evidently sees a sample, the verdicts still use every row
    config = DriftConfig(evidently_max_rows=2_000)
    result = run_file_drift(reference[cols], current[cols], tmp_path / "out", config)
    assert set(result.drifted) == FEATURE_SCENARIO_COLUMNS["channel_mix"]
    assert result.evidently["sampled"] and result.evidently["rows_current"] == 2_000
    assert result.evidently["disagreements"] == []
    assert result.report == tmp_path / "out" / "drift_report.html"
    page = result.report.read_text()
    assert 'id="clientlens-summary"' in page and "digital_txn_share_90d" in page
    body = json.loads(result.json_path.read_text())
    assert body["clientlens"]["status"] == result.status
    assert {c["column"] for c in body["columns"] if c["drifted"]} == set(result.drifted)
    assert body["evidently"]["metrics"]
    # written atomically: no temporary file left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["drift_report.html", "drift_report.json"]
    # history: the snapshot is in the adhoc project of the workspace under the home folder
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(isolated_home / "evidently_workspace"))
    project = ws.search_project("clientlens-adhoc")[0]
    assert result.workspace["project_id"] == str(project.id)
    # Evidently's report and the clientlens summary snapshot the dashboard plots, carrying our numbers
    runs = {str(r) for r in ws.list_runs(project.id)}
    assert runs == {result.workspace["snapshot_id"], result.workspace["summary_snapshot_id"]}
    plotted = ws.get_run(project.id, result.workspace["summary_snapshot_id"]).dict()["metric_results"]
    values = {m["metric_value_location"]["metric"]["params"]["column"]: m["value"] for m in plotted.values()}
    assert values["share_drifted"] == pytest.approx(result.share_drifted)
    assert values["rows_current"] == result.rows_current
    assert {f"psi.{k}" for k in result.psi} <= set(values)
    assert ws.get_dashboard(project.id).panels  # panels defined in code
    summary = result.summary()
    assert set(summary) >= {"status", "share_drifted", "drifted", "psi", "report", "json"}
    json.dumps(summary)


def test_summary_report_still_written_when_evidently_fails(tmp_path, monkeypatch, windows):
    from monitoring import drift

    def boom(*args, **kwargs):
        raise ValueError("An empty column 'x' was provided")

    monkeypatch.setattr(drift, "evidently_snapshot", boom)
    reference, current = windows
    result = drift.run_file_drift(reference.iloc[:500], current.iloc[:500], tmp_path)
    assert "error" in result.evidently
    assert "could not be computed" in result.report.read_text()
    assert json.loads(result.json_path.read_text())["clientlens"]["status"] == result.status


def test_evidently_details_the_scores_and_the_most_drifted_columns_only(tmp_path, isolated_home):
    """Evidently's cost is per column, so it renders a capped set: the score columns, then the
    drifted features before any other; the verdicts and the summary still cover every column."""
    reference = scenarios.feature_window(1_500, seed=5)
    current = scenarios.channel_mix(scenarios.feature_window(1_500, seed=6))
    drifted = FEATURE_SCENARIO_COLUMNS["channel_mix"]
    scores = list(scenarios.SCORE_COLUMNS)
    cap = len(scores) + len(drifted) - 1  # room for all but one drifted feature
    result = run_file_drift(
        reference, current, tmp_path / "out", DriftConfig(evidently_max_columns=cap, workspace=False)
    )
    full = evaluate(reference, current)
    assert [c.as_dict() for c in result.columns] == [c.as_dict() for c in full.columns]  # verdicts untouched
    assert set(result.drifted) == drifted
    rendered = result.evidently["rendered"]
    assert len(rendered) == cap == result.evidently["columns"]
    assert set(scores) <= set(rendered)
    assert set(rendered) - set(scores) < drifted  # only drifted features, the most drifted ones
    assert result.evidently["disagreements"] == []
    page = result.report.read_text()
    assert f"All {len(result.columns)} features" in page  # every column is listed in the clientlens summary
    for c in result.columns:
        assert f"<td>{c.column}</td>" in page


def test_context_columns_found_past_the_probe_rows():
    """The first-rows probe only rules columns out: a market column is still context, and a column
    that is constant in the first rows but varies later is still a tested feature."""
    from monitoring.drift import PROBE_ROWS

    rows = PROBE_ROWS + 500
    rng = np.random.default_rng(3)

    def window(rate: float) -> pd.DataFrame:
        late = np.r_[np.zeros(PROBE_ROWS), rng.normal(size=500)]  # constant at first, then not
        return pd.DataFrame({"customer_id": np.arange(rows), "market_rate": rate, "late_mover": late,
                             "amount": rng.lognormal(size=rows)})  # fmt: skip

    roles = resolve_columns(window(1.5), window(1.25), use_registry=False)
    assert roles.context == ["market_rate"]
    assert sorted(roles.numerical) == ["amount", "late_mover"]
