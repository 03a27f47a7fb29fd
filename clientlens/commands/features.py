"""`clientlens features --raw DIR --out DIR`: the training panel and the latest feature table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, progress, run


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features(
        raw: Annotated[Path, typer.Option("--raw", help="Raw data folder (customers.parquet, ...).")],
        out: Annotated[Path, typer.Option("--out", help="Output folder for panel.parquet and latest.parquet.")],
        as_of: Annotated[
            list[datetime] | None,
            typer.Option(
                "--as-of",
                formats=["%Y-%m-%d"],
                help="Panel as-of date (repeatable). Default: month-ends from 6 months after the data "
                "start to the last date minus the horizon.",
            ),
        ] = None,
        horizon_days: Annotated[int, typer.Option("--horizon-days", min=1, help="Label horizon H in days.")] = 90,
        every_months: Annotated[
            int, typer.Option("--every-months", min=1, help="Spacing of default as-of dates, in months.")
        ] = 1,
        workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel workers (processes).")] = 1,
        engine: Annotated[str, typer.Option("--engine", help="local (process pool) or dask.")] = "local",
        scheduler: Annotated[
            str | None, typer.Option("--scheduler", help="Dask scheduler address (default: a LocalCluster).")
        ] = None,
        partition_size: Annotated[
            int, typer.Option("--partition-size", min=1, help="Customers per partition (bounds worker memory).")
        ] = 20_000,
        affluent_min: Annotated[
            float, typer.Option("--affluent-min", help="Tier threshold: affluent from this AUM.")
        ] = 500_000.0,
        hnw_min: Annotated[float, typer.Option("--hnw-min", help="Tier threshold: hnw from this AUM.")] = 10_000_000.0,
        latest_only: Annotated[
            bool, typer.Option("--latest-only", help="Only latest.parquet (features at the last date; no panel).")
        ] = False,
        churn_min_aum: Annotated[
            float, typer.Option("--churn-min-aum", help="churn label only for customers with this AUM at T.")
        ] = 10_000.0,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Build features (+ labels at the horizon) per as-of date, partitioned by customer."""

        def action() -> dict:
            from pydantic import ValidationError

            from core.errors import InputError
            from features.config import FeatureConfig, LabelConfig, TierThresholds
            from features.panel import build_panel

            if engine not in ("local", "dask"):
                raise InputError(f"--engine must be local or dask, got {engine!r}")
            if scheduler and engine != "dask":
                raise InputError("--scheduler needs --engine dask")
            try:
                feature_config = FeatureConfig(tiers=TierThresholds(affluent_min=affluent_min, hnw_min=hnw_min))
                label_config = LabelConfig(horizon_days=horizon_days, churn_min_aum=churn_min_aum)
            except ValidationError as exc:
                raise InputError(f"bad option: {exc.errors()[0]['msg']}") from None
            with progress("features", enabled=not as_json) as advance:
                return build_panel(
                    raw,
                    out,
                    as_of=as_of or None,
                    horizon_days=horizon_days,
                    every_months=every_months,
                    workers=workers,
                    engine=engine,
                    scheduler=scheduler,
                    partition_size=partition_size,
                    feature_config=feature_config,
                    label_config=label_config,
                    on_partition=advance,
                    panel=not latest_only,
                )

        def human(s: dict) -> None:
            if s["panel"]:
                typer.echo(
                    f"panel:  {s['panel']} ({s['rows']} rows x {s['columns']} columns, "
                    f"{len(s['as_of'])} as-of dates {s['as_of'][0]}..{s['as_of'][-1]})"
                )
            typer.echo(f"latest: {s['latest']} ({s['latest_rows']} rows at {s['latest_as_of']})")
            if s["missing_tables"]:
                typer.echo(
                    f"missing tables: {', '.join(s['missing_tables'])}; features left NaN by family: "
                    f"{s['incomplete_families']}"
                )
            typer.echo(f"{s['partitions']} partitions on {s['engine']} x{s['workers']} in {s['seconds']} s")

        run(action, as_json=as_json, debug=debug, human=human)
