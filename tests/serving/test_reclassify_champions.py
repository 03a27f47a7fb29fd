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
