"""`clientlens drift` from the command line: modes, --json, exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from tests.monitoring import scenarios

runner = CliRunner()
COLUMNS = scenarios.CLI_COLUMNS


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_two_file_drift_json_and_fail_on_drift(tmp_path):
    ref = scenarios.feature_window(1_500, seed=1)[COLUMNS]
    cur = scenarios.rate_cut(scenarios.feature_window(1_500, seed=2))[COLUMNS]
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    args = [
        "drift",
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--out",
        str(tmp_path / "out"),
        "--json",
        "--fail-on-drift",
        "--no-workspace",
    ]
    res = runner.invoke(app, args)
    summary = _last_json(res.stdout)
    # 2-3 of 6 customer features move (aum_deposit is borderline at 1,500 rows): share >= 0.3 -> drift -> exit 3
    assert summary["status"] == "drift", summary
    assert res.exit_code == 3
    assert {"deposit_share", "outflow_external_bank_90d"} <= set(summary["drifted"])
    assert not {"aum", "login_count_30d", "region"} & set(summary["drifted"])
    # the deposit rate is one value for everyone: reported as context (its cut), not drift-tested
    assert "deposit_rate_1y" not in summary["drifted"] and summary["features"] == 6
    rate = summary["context"]["deposit_rate_1y"]
    assert rate["current"] - rate["reference"] == pytest.approx(-1.5, abs=0.3)
    assert set(summary["psi"]) == {"churn_proba"}
    assert summary["report"].endswith("drift_report.html") and summary["json"].endswith("drift_report.json")
    assert (tmp_path / "out" / "drift_report.html").exists()
    # without --fail-on-drift the same verdict exits 0 (summary-only report this time)
    res = runner.invoke(app, [*args[:-2], "--no-evidently", "--out", str(tmp_path / "quick")])
    assert res.exit_code == 0, res.output
    assert _last_json(res.stdout)["status"] == "drift"
    assert 'id="clientlens-summary"' in (tmp_path / "quick" / "drift_report.html").read_text()


def test_bad_input_exits_2(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x,y\n1,2\n")
    b = tmp_path / "b.csv"
    b.write_text("z\n1\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("x,y\n")
    cases = [
        ["drift", "--reference", str(a), "--current", str(tmp_path / "missing.csv")],
        ["drift", "--reference", str(a), "--current", str(b)],
        ["drift", "--reference", str(a), "--current", str(empty)],
        ["drift", "--reference", str(a)],
        ["drift"],
        ["drift", "--task", "nope", "--reference", str(a), "--current", str(a)],
    ]
    for args in cases:
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == 2, (args, res.output)
        assert _last_json(res.stdout)["exit_code"] == 2


def test_help_lists_both_modes():
    res = runner.invoke(app, ["drift", "--help"])
    assert res.exit_code == 0
    assert "--reference" in res.stdout and "--task" in res.stdout and "--fail-on-drift" in res.stdout
