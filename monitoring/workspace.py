"""Drift history: every report goes into a local Evidently workspace, with dashboards defined here.

One project per task (`clientlens-churn`, ...) and `clientlens-adhoc` for two-file runs, so
`evidently ui --workspace <home>/evidently_workspace` shows drift over time.

Each drift run adds two snapshots to its project:
- Evidently's own data-drift report (per-column drift on the sample Evidently renders);
- a one-row *summary* snapshot (tag `clientlens-summary`) holding the numbers clientlens decided
  on, computed on every row: the share of drifted features, each score's PSI, the CBPE estimate
  of the task's eligible population next to its training-time value and, once labels exist,
  the realised metric, row counts and the market context. Each number is a `MeanValue` of a
  one-row column, so the UI plots them with Evidently's built-in metrics (the UI needs no
  clientlens code to read the workspace).

The dashboard of each project (`dashboard(task)`) is rewritten from code on every run: panels
are declared here, from the task contract, never clicked together in the UI.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import Settings
from core.tasks import TASKS, Task
from core.tasks import task as task_contract

if TYPE_CHECKING:
    from monitoring.drift import DriftResult

logger = logging.getLogger(__name__)

SUMMARY_TAG = "clientlens-summary"
MEAN_VALUE = "evidently:metric_v2:MeanValue"
TAB = "Drift over time"


def workspace_dir(settings: Settings | None = None) -> Path:
    return (settings or Settings()).home_dir / "evidently_workspace"


def project_name(task: str | None) -> str:
    return f"clientlens-{task or 'adhoc'}"


# --- the summary snapshot -----------------------------------------------------------------


def performance_metric(t: Task) -> str:
    """The metric CBPE can estimate before labels and the dashboard follows: ROC AUC for a
    binary task, accuracy for a multiclass one (its headline log loss has no CBPE estimate)."""
    return "roc_auc" if t.kind == "binary" else "accuracy"


def summary_values(result: DriftResult) -> dict[str, float]:
    """The numbers of one drift run the dashboard plots, by summary column name."""
    tested = [c for c in result.columns if c.method != "empty"]
    out: dict[str, Any] = {
        "share_drifted": result.share_drifted,
        "drifted_features": len(result.drifted),
        "features": len(tested),
        "rows_current": result.rows_current,
        "rows_reference": result.rows_reference,
    }
    out |= {f"psi.{score}": v for score, v in result.psi.items()}
    scope = [task_contract(result.task)] if result.task else list(TASKS.values())
    for t in scope:
        m = performance_metric(t)
        est = (result.estimated_performance or {}).get(t.name) or {}
        out[f"estimated.{t.name}.{m}"] = est.get(m)
        out[f"training.{t.name}.{m}"] = est.get(f"training_{m}")
        perf = result.performance or {}
        if perf.get("task") == t.name:
            out[f"realised.{t.name}.{m}"] = perf.get("metrics", {}).get(m)
            out[f"training.{t.name}.{m}"] = out[f"training.{t.name}.{m}"] or perf.get("training", {}).get(m)
    for col, c in result.context.items():
        if isinstance(c.get("current_value"), float):
            out[f"context.{col}"] = c["current_value"]
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float) and math.isfinite(float(v))}


def summary_snapshot(result: DriftResult, timestamp: datetime):
    """A snapshot of `summary_values` as `MeanValue` metrics of a one-row dataset."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    values = summary_values(result)
    frame = pd.DataFrame({k: [v] for k, v in values.items()})
    definition = DataDefinition(numerical_columns=list(frame.columns))
    report = Report(
        [MeanValue(column=c) for c in frame.columns],
        tags=[SUMMARY_TAG, result.task or "adhoc", result.status],
        metadata={"status": result.status, "report": str(result.report or "")},
    )
    return report.run(
        Dataset.from_pandas(frame, data_definition=definition),
        None,
        timestamp=timestamp,
        name=f"clientlens summary {result.task or 'adhoc'} {result.created}",
    )


# --- the dashboard ------------------------------------------------------------------------


def _series(column: str, legend: str):
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, tags=[SUMMARY_TAG], metric=MEAN_VALUE, metric_labels={"column": column})


def dashboard(task: str | None):
    """The project's dashboard: panels over the summary snapshots, declared from the task contract."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel
    from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel

    from features.registry import FEATURES

    scope = [task_contract(task)] if task else list(TASKS.values())
    scores = [c for t in scope for c in t.score_columns()]
    context = [f.name for f in FEATURES if f.family == "market" and f.dtype != "category"]
    panels = [
        counter_panel(
            "Share of drifted features (latest)",
            [_series("share_drifted", "share drifted")],
            description="clientlens' verdicts on every row; market context excluded",
            size="half",
        ),
        counter_panel("Rows in the latest window", [_series("rows_current", "current rows")], size="half"),
        line_plot_panel(
            "Share of drifted features",
            [_series("share_drifted", "share drifted")],
            description="warn at 10%, drift at 30% (DriftThresholds)",
        ),
        line_plot_panel(
            "Prediction drift: PSI of each score",
            [_series(f"psi.{s}", s) for s in scores],
            description="warn at 0.1, drift at 0.25",
        ),
    ]
    for t in scope:
        m = performance_metric(t)
        panels.append(
            line_plot_panel(
                f"{t.name}: {m} estimated before labels (CBPE), realised, at training",
                [
                    _series(f"estimated.{t.name}.{m}", "estimated (CBPE)"),
                    _series(f"realised.{t.name}.{m}", "realised"),
                    _series(f"training.{t.name}.{m}", "at training"),
                ],
                description=f"on the eligible population: {t.eligibility.describe()}",
            )
        )
    panels += [
        bar_plot_panel(
            "Rows per window",
            [_series("rows_current", "current"), _series("rows_reference", "reference")],
            size="half",
        ),
        line_plot_panel(
            "Market context at each report (not drift-tested)",
            [_series(f"context.{c}", c) for c in context],
            size="half",
        ),
    ]
    return DashboardModel(tabs=[DashboardTabModel(title=TAB, panels=[p.id for p in panels])], panels=panels)


# --- adding a run -------------------------------------------------------------------------


def _project(ws, task: str | None):
    name = project_name(task)
    found = ws.search_project(name)
    if found:
        return found[0]
    description = f"clientlens drift reports for task {task}" if task else "clientlens two-file drift reports"
    return ws.create_project(name, description=description)


def read_workspace(path: Path):
    """The Evidently workspace at `path` if it exists (reading every snapshot in it), else None; writes nothing."""
    from evidently.ui.workspace import Workspace

    return Workspace.create(str(path)) if Path(path).is_dir() else None


def open_project(task: str | None, *, path: Path | None = None, settings: Settings | None = None, ws=None):
    """(workspace, project, path) of `task` (created if new), its dashboard (re)written from code.
    `ws`: `read_workspace(path)` already done."""
    from evidently.ui.workspace import Workspace

    path = Path(path) if path is not None else workspace_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    ws = ws if ws is not None else Workspace.create(str(path))  # reads every snapshot already there
    project = _project(ws, task)
    ws.save_dashboard(project.id, dashboard(task))
    return ws, project, path


def add_snapshot(
    snapshot,
    result: DriftResult,
    *,
    path: Path | None = None,
    timestamp: datetime | None = None,
    settings: Settings | None = None,
    project=None,
) -> dict[str, str]:
    """Add a drift run (Evidently's snapshot + the summary snapshot) to its task's project and
    (re)write the project's dashboard. `project`: `open_project(result.task)` already done (each run
    then only writes its two snapshot files, so processes forked after it can add runs side by side)."""
    ws, project, path = project if project is not None else open_project(result.task, path=path, settings=settings)
    ref = ws.add_run(project.id, snapshot)
    snapshot_id = getattr(ref, "id", None) or getattr(ref, "snapshot_id", None) or ref
    when = timestamp or datetime.now(UTC).replace(tzinfo=None)
    summary = ws.add_run(project.id, summary_snapshot(result, when))
    summary_id = getattr(summary, "id", None) or summary
    logger.info("added drift snapshot %s to Evidently project %s in %s", snapshot_id, project.name, path)
    return {
        "workspace": str(path),
        "project": project.name,
        "project_id": str(project.id),
        "snapshot_id": str(snapshot_id),
        "summary_snapshot_id": str(summary_id),
    }
