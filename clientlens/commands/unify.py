"""`clientlens unify --sources DIR --out DIR`: one customer, one profile from several source systems."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("unify")
    def unify(
        sources: Annotated[Path, typer.Option("--sources", help="Folder with one Parquet file per source system.")],
        out: Annotated[
            Path, typer.Option("--out", help="Output folder: customers.parquet, crosswalk.parquet, report.")
        ],
        raw: Annotated[
            Path | None,
            typer.Option("--raw", help="Raw folder whose transactions.parquet completes missing income bands."),
        ] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="YAML survivorship / linkage config (UnifyConfig).")
        ] = None,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Link records across systems (Splink), build golden records, flag stale and complete missing facts."""

        def action() -> dict:
            from features.unify import load_config
            from features.unify import unify as do_unify

            return do_unify(sources, out, load_config(config), raw_dir=raw)

        def human(summary: dict) -> None:
            recs = summary["records"]
            typer.echo(
                f"{sum(recs.values()):,} source records ({', '.join(f'{k} {v:,}' for k, v in recs.items())}) "
                f"-> {summary['customers']:,} customers ({summary['clusters']['multi_record']:,} in several records)"
            )
            if "f1" in summary:
                typer.echo(
                    f"linkage vs truth: F1 {summary['f1']:.4f} (precision {summary['precision']:.4f}, "
                    f"recall {summary['recall']:.4f}); naive exact name + birth date: F1 {summary['naive_f1']:.4f}"
                )
            if "completion" in summary:
                c = summary["completion"]
                typer.echo(
                    f"income band completed for {c['imputed']:,}: accuracy {c['accuracy']:.3f} "
                    f"vs most-common baseline {c['most_common_baseline']:.3f}"
                )
            typer.echo(f"stale income bands flagged: {summary['stale_income_band']:,}")
            typer.echo(f"wrote {summary['out']} (report: {summary['report']})")

        run(action, as_json=as_json, debug=debug, human=human)
