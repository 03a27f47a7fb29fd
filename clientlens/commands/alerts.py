"""`clientlens alerts --raw DIR --since DATE [--until DATE] --out FILE`: demand alerts (a daily job)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run

TOP = 10


def register(app: typer.Typer) -> None:
    @app.command("alerts")
    def alerts(
        raw: Annotated[Path, typer.Option("--raw", help="Raw data folder (the five tables).")],
        since: Annotated[str, typer.Option("--since", help="First day alerts may be raised on (YYYY-MM-DD).")],
        out: Annotated[Path, typer.Option("--out", help="Alerts file (Parquet, or .csv).")],
        until: Annotated[
            str | None, typer.Option("--until", help="Last day (inclusive; default: the last day in the data).")
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option("--config", help="Thresholds and routing (YAML/JSON of features.alerts.AlertConfig)."),
        ] = None,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Need signals against each customer's own history, routed to a specialist; one alert per episode."""

        def action() -> dict[str, Any]:
            from core.io import write_table
            from features.alerts import alerts_from_raw, load_config

            scan = alerts_from_raw(raw, since, until, load_config(config))
            write_table(scan.alerts, out)
            summary = scan.as_dict()
            summary["out"] = str(out)
            summary["top"] = [
                {k: row[k] for k in ("customer_id", "date", "signal", "specialist", "score", "evidence")}
                for row in scan.alerts.nlargest(TOP, "score").to_dict("records")
            ]
            return summary

        def human(s: dict[str, Any]) -> None:
            for w in s["warnings"]:
                typer.echo(f"warning: {w}", err=True)
            typer.echo(
                f"{s['alerts']:,} alerts for {s['customers_alerted']:,} of {s['customers']:,} customers, "
                f"{s['since']}..{s['until']} -> {s['out']} ({s['seconds']} s)"
            )
            for signal, n in s["by_signal"].items():
                typer.echo(f"  {signal:28s} {n:6,}")
            for signal, why in s["skipped_signals"].items():
                typer.echo(f"  {signal:28s} skipped: {why}")
            if s["top"]:
                typer.echo("top alerts:")
            for a in s["top"]:
                typer.echo(
                    f"  {a['date']:%Y-%m-%d} {a['customer_id']:>8} {a['signal']:26s} -> {a['specialist']}: {a['evidence']}"
                )

        run(action, as_json=as_json, debug=debug, human=human)
