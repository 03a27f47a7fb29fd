"""`clientlens drift`: data and prediction drift, realised and estimated performance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run
from core.errors import InputError
from core.tasks import TASK_NAMES

EXIT_DRIFT = 3


def register(app: typer.Typer) -> None:
    @app.command("drift")
    def drift(
        reference: Annotated[
            Path | None,
            typer.Option("--reference", help="Reference window (CSV or Parquet), e.g. the training sample."),
        ] = None,
        current: Annotated[Path | None, typer.Option("--current", help="Current window (CSV or Parquet).")] = None,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Report folder (default: <reports>/drift/<task|adhoc>/<UTC time>)."),
        ] = None,
        task: Annotated[
            str | None,
            typer.Option(
                "--task",
                help=f"{', '.join(TASK_NAMES)}. Alone: the inference log against the champion's reference sample. "
                "With --reference/--current: which task's scores and labels the files hold.",
            ),
        ] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="Inference-log rows with ts >= DATE (UTC, YYYY-MM-DD[THH:MM]).")
        ] = None,
        until: Annotated[str | None, typer.Option("--until", help="Inference-log rows with ts < DATE (UTC).")] = None,
        split_at: Annotated[
            list[str] | None,
            typer.Option(
                "--split-at",
                help="Task mode: also split the log at this time (repeatable): one report per consecutive window, "
                "in order, in one process, all or nothing: every window is checked before any is written "
                "(--json: the last window's summary with every window's under 'windows').",
            ),
        ] = None,
        labels: Annotated[
            Path | None,
            typer.Option("--labels", help="A later panel.parquet: adds realised performance (needs --task)."),
        ] = None,
        fail_on_drift: Annotated[
            bool, typer.Option("--fail-on-drift", help=f"Exit {EXIT_DRIFT} when the status is drift.")
        ] = False,
        max_evidently_rows: Annotated[
            int,
            typer.Option(
                "--max-evidently-rows",
                help="Rows per side Evidently's HTML report is computed on (a uniform sample above it; "
                "verdicts always use every row).",
            ),
        ] = 10_000,
        no_evidently: Annotated[
            bool,
            typer.Option(
                "--no-evidently",
                help="Skip Evidently's report (and the workspace): clientlens summary HTML + JSON only, in seconds.",
            ),
        ] = False,
        no_workspace: Annotated[
            bool, typer.Option("--no-workspace", help="Do not add the report to the Evidently workspace.")
        ] = False,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Compare a current window with a reference: Evidently data-drift report per feature,
        PSI of the model scores, estimated (CBPE) and realised performance, and a status
        ok / warn / drift.

        Two-file mode: --reference FILE --current FILE [--out DIR]. Task mode: --task TASK
        [--since DATE] reads the inference log and the champion's reference sample from MLflow,
        and attaches the report to the champion's run. Reports also go to the Evidently
        workspace under the clientlens home (`evidently ui --workspace <home>/evidently_workspace`).
        """
        outcome: dict[str, Any] = {}

        def action() -> dict[str, Any]:
            from core.settings import Settings
            from monitoring.config import DriftConfig
            from monitoring.drift import run_file_drift, run_task_drift, run_task_windows
            from monitoring.sources import read_table

            settings = Settings()
            config = DriftConfig(
                evidently_max_rows=max_evidently_rows, workspace=not no_workspace, evidently_report=not no_evidently
            )
            label_frame = read_table(labels, what="labels") if labels is not None else None
            if label_frame is not None and task is None:
                raise InputError("--labels needs --task (which label and score columns to compare)")
            if reference is not None or current is not None:
                if reference is None or current is None:
                    raise InputError("two-file mode needs both --reference FILE and --current FILE")
                if since or until or split_at:
                    raise InputError(
                        "--since/--until/--split-at select inference-log rows; they do not apply to --reference/--current"
                    )
                result = run_file_drift(
                    read_table(reference, what="reference"),
                    read_table(current, what="current"),
                    out,
                    config,
                    task=task,
                    labels=label_frame,
                    settings=settings,
                )
            elif task is not None and split_at:
                if out is not None:
                    raise InputError("--out names one report folder; with --split-at each window gets its own")
                results = run_task_windows(
                    task, split_at, since=since, until=until, config=config, labels=label_frame, settings=settings
                )
                outcome["status"] = results[-1].status  # the latest window is the current state
                return {**results[-1].summary(), "windows": [r.summary() for r in results]}
            elif task is not None:
                result = run_task_drift(
                    task, since=since, until=until, out_dir=out, config=config, labels=label_frame, settings=settings
                )
            else:
                raise InputError("give --reference FILE --current FILE, or --task TASK (see --help)")
            outcome["status"] = result.status
            return result.summary()

        run(action, as_json=as_json, debug=debug, human=_human)
        if fail_on_drift and outcome.get("status") == "drift":
            raise typer.Exit(EXIT_DRIFT)


def _human(summary: dict[str, Any]) -> None:
    if "windows" in summary:
        for i, window in enumerate(summary["windows"], 1):
            typer.echo(f"window {i} of {len(summary['windows'])}:")
            _human_window(window)
        return
    _human_window(summary)


def _human_window(summary: dict[str, Any]) -> None:
    typer.echo(f"status: {summary['status']}" + (f"  ({'; '.join(summary['reasons'])})" if summary["reasons"] else ""))
    typer.echo(
        f"drifted features: {len(summary['drifted'])}/{summary['features']} ({summary['share_drifted']:.1%})"
        + (f": {', '.join(summary['drifted'])}" if summary["drifted"] else "")
    )
    for name, values in (summary.get("context") or {}).items():
        typer.echo(f"context {name}: {values['reference']} -> {values['current']} (one value per date; not tested)")
    for score, value in summary["psi"].items():
        typer.echo(f"PSI {score}: {value:.4f}" if value is not None else f"PSI {score}: n/a")
    for name, metrics in (summary.get("estimated_performance") or {}).items():
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float) and k != "threshold")
        typer.echo(f"estimated {name} (CBPE): {shown}")
    perf = summary.get("performance")
    if perf:
        shown = ", ".join(
            f"{k}={v:.3f}" + (f" (training {perf['training'][k]:.3f})" if k in perf.get("training", {}) else "")
            for k, v in perf["metrics"].items()
            if isinstance(v, float)
        )
        typer.echo(f"realised {perf['task']} on {perf['rows_matched']} labelled predictions: {shown}")
    typer.echo(f"report: {summary['report']}")
    typer.echo(f"json: {summary['json']}")
    if summary.get("workspace"):
        typer.echo(f"history: evidently ui --workspace {summary['workspace']['workspace']}")
    if summary.get("mlflow"):
        typer.echo(f"attached to MLflow run {summary['mlflow']['run_id']} ({summary['mlflow'].get('artifact_path')})")
