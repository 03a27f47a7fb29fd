"""Evidently's drift report without the per-column widgets nobody sees (`monitoring.evidently_widgets`):
the same metric values, the same stored snapshot but for those widgets, the same HTML."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from monitoring import drift
from monitoring.config import DriftConfig
from monitoring.evidently_widgets import value_drift_widgets_skipped
from tests.monitoring import scenarios

AT = datetime(2026, 12, 2, 6, 0, 0)  # both snapshots carry the same time
_ID = re.compile(r"metric_[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _renumbered(text: str) -> str:
    """Evidently's widget ids (uuid7, a uuid4 per page) numbered in order of appearance: same structure, same text."""
    ids: dict[str, str] = {}
    return _ID.sub(lambda m: ids.setdefault(m.group(0), f"<id {len(ids)}>"), text)


def _value_drifts(stored: dict) -> list[str]:
    return [k for k, m in stored["metric_results"].items() if m["display_name"].startswith("Value drift for ")]


def _report(reference, current, result, config, monkeypatch, *, skip: bool):
    """(stored snapshot as JSON, HTML, comparison) of Evidently's report on `result`, or the error it raised."""
    if not skip:
        monkeypatch.setattr(drift, "value_drift_widgets_skipped", lambda: contextlib.nullcontext(False))
    try:
        snapshot, comparison = drift.evidently_snapshot(reference, current, result, config, AT)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        monkeypatch.undo()
    return {
        "stored": json.loads(snapshot.dumps()),  # what Workspace.add_run writes
        "html": snapshot.get_html_str(as_iframe=False),
        "comparison": comparison,
        "metrics": snapshot.dict(),
    }


# numerical (amounts, counts, shares, a flag), categorical and score columns: every one is rendered
COLUMNS = [
    "customer_id",
    "digital_txn_share_90d",
    "branch_txn_count_90d",
    "advisor_txn_count_90d",
    "aum",
    "payroll_at_bank",
    "region",
    "income_band",
    *scenarios.SCORE_COLUMNS,
]


def _window(rows: int, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = scenarios.feature_window(rows, seed=seed)
    current = scenarios.channel_mix(scenarios.feature_window(rows, seed=seed + 1))
    # missing and infinite values in rendered numerical and categorical columns
    current.loc[current.index[: rows // 20], "digital_txn_share_90d"] = np.inf
    current.loc[current.index[rows // 20 : rows // 10], "branch_txn_count_90d"] = np.nan
    reference.loc[reference.index[: rows // 15], "region"] = None
    return reference[COLUMNS], current[COLUMNS]


CASES = {
    "1.5k rows (distance tests)": lambda: _window(1_500, seed=5),
    "800 rows (p-value tests)": lambda: _window(800, seed=7),
    "one row": lambda: tuple(w.iloc[:1] for w in _window(50, seed=9)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_without_the_unseen_widgets_is_the_same_report(case, monkeypatch):
    reference, current = CASES[case]()
    config = DriftConfig(workspace=False)
    result = drift.evaluate(reference, current, config)
    lean = _report(reference, current, result, config, monkeypatch, skip=True)
    full = _report(reference, current, result, config, monkeypatch, skip=False)
    assert "error" not in lean and "error" not in full, (lean.get("error"), full.get("error"))
    rendered = lean["comparison"]["rendered"]
    if len(reference) > 1:  # numerical and categorical columns both go through the lean path
        assert {"region", "income_band", "aum", "payroll_at_bank"} <= set(rendered)
    # the same numbers: every metric's value and configuration, and our comparison with Evidently
    assert lean["metrics"] == full["metrics"]
    assert lean["comparison"] == full["comparison"]
    # the skip happened: each per-column ValueDrift built an empty widget instead of two figures
    keys = _value_drifts(lean["stored"])
    assert len(keys) == len(rendered)
    assert all(lean["stored"]["metric_results"][k]["widget"] == [] for k in keys)
    assert all(full["stored"]["metric_results"][k]["widget"] for k in keys)
    # the stored snapshot is the full one but for those widgets: the top-level widgets the workspace UI
    # shows, the metric results its dashboards read, names, tags, metadata
    for k in keys:
        full["stored"]["metric_results"][k]["widget"] = []
    assert _renumbered(json.dumps(lean["stored"])) == _renumbered(json.dumps(full["stored"]))
    # and the HTML page is the same page
    assert _renumbered(lean["html"]) == _renumbered(full["html"])


def test_an_empty_rendered_column_is_the_same_error(monkeypatch):
    """A column Evidently cannot test goes to Evidently's own code: the same error both ways."""
    reference, current = _window(800, seed=11)
    current["churn_proba"] = np.nan  # score columns are always rendered
    config = DriftConfig(workspace=False)
    result = drift.evaluate(reference, current, config)
    lean = _report(reference, current, result, config, monkeypatch, skip=True)
    full = _report(reference, current, result, config, monkeypatch, skip=False)
    assert lean == full
    assert "An empty column 'churn_proba'" in lean["error"]


def test_the_hooks_are_restored_after_the_block():
    """Outside the block (and after an error inside it) a ValueDrift report builds its widgets again."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift, column_statistics

    hooks = (column_statistics.ValueDriftCalculation._render, column_statistics.get_one_column_drift)
    with pytest.raises(RuntimeError), value_drift_widgets_skipped() as found:
        assert found
        assert column_statistics.get_one_column_drift is not hooks[1]
        raise RuntimeError("inside")
    assert (column_statistics.ValueDriftCalculation._render, column_statistics.get_one_column_drift) == hooks
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200)})
    definition = DataDefinition(numerical_columns=["x"])
    snapshot = Report([ValueDrift(column="x")]).run(
        Dataset.from_pandas(frame + 1, data_definition=definition),
        Dataset.from_pandas(frame, data_definition=definition),
    )
    (result,) = snapshot.metric_results.values()
    assert result.widget
