"""`clientlens retrain TASK --raw DIR [--if-drift]`: drift verdict -> new features -> challenger -> gate."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run
from core.tasks import TASK_NAMES


def register(app: typer.Typer) -> None:
    @app.command("retrain")
    def retrain(
        task: Annotated[str, typer.Argument(help=f"{', '.join(TASK_NAMES)}.")],
        raw: Annotated[Path, typer.Option("--raw", help="Raw data folder holding the new window.")],
        if_drift: Annotated[
            bool,
            typer.Option("--if-drift", help="Train only if the task's latest drift verdict is 'drift'."),
        ] = False,
        drift_report: Annotated[
            Path | None,
            typer.Option(
                "--drift-report",
                help="The drift report (drift_report.json or its folder) to act on "
                "(default: the task's newest under <reports>/drift/TASK/).",
            ),
        ] = None,
        features: Annotated[
            Path | None,
            typer.Option("--features", help="Where to build the new window's features (default: under <features>)."),
        ] = None,
        as_of: Annotated[
            list[datetime] | None,
            typer.Option("--as-of", formats=["%Y-%m-%d"], help="Panel as-of date (repeatable; default: month-ends)."),
        ] = None,
        horizon_days: Annotated[int, typer.Option("--horizon-days", min=1, help="Label horizon in days.")] = 90,
        workers: Annotated[int, typer.Option("--workers", min=1, help="Feature-build processes.")] = 1,
        trials: Annotated[int | None, typer.Option("--trials", min=1, help="Optuna trials (default: spec).")] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", min=1, help="Tuning time budget in seconds (default: spec).")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Training seed.")] = 0,
        margin: Annotated[
            float, typer.Option("--margin", min=0.0, help="Gain the challenger needs over the champion.")
        ] = 0.0,
        spec: Annotated[
            Path | None,
            typer.Option(
                "--spec",
                help="Challenger spec YAML for TASK (default: the built-in spec); its source is read "
                "in the new window's features folder.",
            ),
        ] = None,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Close the loop after `clientlens drift`: read the task's latest drift verdict, rebuild
        features from --raw, train a challenger on the task's spec, run the promotion gate against
        the champion on the newest holdout, and record the chain (drift report -> run -> decision)
        on the challenger's MLflow model version. Exits 0 with `promoted: true|false`.

        Scheduled, e.g. nightly after the drift run: `clientlens retrain churn --raw DIR --if-drift --json`.
        """

        def action() -> dict[str, Any]:
            from core.settings import Settings
            from core.tasks import task as task_contract
            from monitoring.retrain import retrain as do_retrain

            task_contract(task)  # an unknown task is bad usage (exit 2) before anything is read
            return do_retrain(
                task,
                raw,
                if_drift=if_drift,
                drift_report=drift_report,
                features_dir=features,
                as_of=as_of or None,
                horizon_days=horizon_days,
                workers=workers,
                trials=trials,
                timeout=timeout,
                seed=seed,
                margin=margin,
                spec=spec,
                settings=Settings(),
            )

        run(action, as_json=as_json, debug=debug, human=_human)


def _human(s: dict[str, Any]) -> None:
    drift = s.get("drift")
    typer.echo(f"drift verdict: {drift['status']} ({drift['report']})" if drift else "drift verdict: none found")
    if not s["retrained"]:
        typer.echo(f"not retrained: {s['reason']}")
        return
    typer.echo(f"features: {s['features']['out']} ({s['features']['rows']} rows)")
    typer.echo(f"challenger: version {s['challenger']} (run {s['run_id']})")
    typer.echo(f"promoted: {str(s['promoted']).lower()} - {s['reason']}")
    typer.echo(f"champion: version {s['champion']}")
