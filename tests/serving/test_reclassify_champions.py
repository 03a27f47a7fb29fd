"""`clientlens reclassify` end to end with real (small) champions from the serving session's MLflow store."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner


@pytest.mark.slow
def test_reclassify_with_the_champions(use_serving_env, tmp_path):
    from clientlens.cli import app

    panel = use_serving_env.tables["panel"]
    dates = sorted(pd.read_parquet(panel, columns=["as_of"])["as_of"].unique())
    out = tmp_path / "report"
    args = ["reclassify", "--features", str(panel.parent), "--from", str(pd.Timestamp(dates[0]).date()),
            "--to", str(pd.Timestamp(dates[-1]).date()), "--out", str(out), "--truth", str(use_serving_env.tables["truth"]),
            "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["customers"] > 1000 and "tier" in summary["moved"] and "risk_appetite" in summary["moved"]
    assert "truth" in summary and summary["truth"]["base_rate_among_conservative_rated"] > 0
    saved = json.loads((out / "reclassify.json").read_text())
    assert set(saved["matrices"]) >= {"tier", "risk_appetite", "segment"}
    assert "data:image/png;base64" in (out / "report.html").read_text()
    bad = CliRunner().invoke(
        app, [*args[:3], "--from", "1999-01-01", "--to", "2000-01-01", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "no date at or before it" in bad.output


@pytest.mark.slow
def test_reasons_of_the_shown_rows_only_give_the_report_of_explaining_every_row(use_serving_env, tmp_path):
    """`reclassify_panel` explains only the movers and the listed customers (TreeSHAP for every row was most
    of its time); the movers, the list and the summary must equal those of explaining the whole book."""
    from core.tasks import TASK_NAMES
    from training.reclassify import reclassify, reclassify_panel
    from training.scoring import load_models, score_frame

    panel_path = use_serving_env.tables["panel"]
    panel = pd.read_parquet(panel_path)
    dates = sorted(panel["as_of"].unique())
    d0, d1 = dates[0], dates[-1]
    models, _ = load_models(list(TASK_NAMES))
    out = tmp_path / "subset"
    summary = reclassify_panel(panel_path.parent, str(pd.Timestamp(d0).date()), str(pd.Timestamp(d1).date()), out,
                               models=models)  # fmt: skip
    frames = []
    for d in (d0, d1):
        rows = panel[panel["as_of"] == d].reset_index(drop=True)
        scored = score_frame(rows, models, explain=3)
        for col in ("stated_risk", "relationship_depth", "lifecycle_stage", "equity_funds_view_share_180d",
                    "invest_interest_per_login_180d", "outflow_brokerage_180d"):  # fmt: skip
            if col in rows.columns and col not in scored.columns:
                scored[col] = rows[col].to_numpy()
        frames.append(scored)
    full = reclassify(*frames, before_date=pd.Timestamp(d0), after_date=pd.Timestamp(d1))
    assert len(full.movers) > 50 and "new_reasons" in full.movers.columns  # the comparison has rows to compare
    explained = full.movers[full.movers["dimension"].isin(["tier", "risk_appetite", "segment"])]
    assert len(explained) > 50 and explained["new_reasons"].str.len().gt(0).all()
    full.movers.to_parquet(tmp_path / "full_movers.parquet")  # the same round trip (NaN reasons read as None)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "movers.parquet"), pd.read_parquet(tmp_path / "full_movers.parquet")
    )
    listed = pd.read_csv(out / "potential_aggressive.csv")
    assert len(listed) == len(full.potential_aggressive) and "reasons" in listed.columns
    assert listed["reasons"].tolist() == full.potential_aggressive["reasons"].tolist()
    assert {k: v for k, v in full.summary().items() if k != "matrices"} == {
        k: v for k, v in summary.items() if k not in ("out", "requested")
    }
