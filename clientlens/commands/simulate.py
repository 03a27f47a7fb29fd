"""`clientlens simulate`: write a simulated bank (five raw tables plus `truth`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, progress, run


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        customers: Annotated[int, typer.Option("--customers", min=1, help="Number of customers.")] = 2_000,
        months: Annotated[int, typer.Option("--months", min=1, max=240, help="Months of history.")] = 18,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same files).")] = 7,
        out: Annotated[Path, typer.Option("--out", help="Output folder for the Parquet tables.")] = Path("data/raw"),
        start: Annotated[
            datetime, typer.Option("--start", formats=["%Y-%m-%d"], help="First simulated month (its first day).")
        ] = datetime(2024, 1, 1),
        chunk_size: Annotated[
            int,
            typer.Option("--chunk-size", min=1, help="Customers per written chunk (bounds memory; data unchanged)."),
        ] = 20_000,
        source_systems: Annotated[
            bool,
            typer.Option(
                "--source-systems",
                help="Also write the customers as core banking, wealth and cards hold them (OUT/sources/).",
            ),
        ] = False,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Simulate a bank: customers, holdings, transactions, events, market and the hidden `truth`."""

        def action() -> dict:
            from features.simulate import simulate as do_simulate

            with progress("simulating customers", total=customers, enabled=not as_json) as advance:
                rows = do_simulate(
                    out, customers, months, seed, start=start.date(), chunk_size=chunk_size, on_chunk=advance
                )
            summary = {"out": out.resolve(), "rows": rows, "customers": customers, "months": months, "seed": seed}
            if source_systems:
                from features.sources import write_sources

                summary["source_systems"] = write_sources(out, out / "sources", seed)["records"]
            return summary

        run(action, as_json=as_json, debug=debug)
