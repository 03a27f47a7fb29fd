"""`clientlens score --features FILE --out FILE`: batch scoring with the champions (same code as the service)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(
        features: Annotated[Path, typer.Option("--features", help="Feature table (Parquet), e.g. latest.parquet.")],
        out: Annotated[Path, typer.Option("--out", help="Output Parquet (or .csv) file.")],
        tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated tasks to score.")] = "tier,churn,risk",
        alias: Annotated[str, typer.Option("--alias", help="Model alias to score with.")] = "champion",
        segments: Annotated[
            Path | None,
            typer.Option(
                "--segments",
                help="YAML rule table for business_segment (training.segments.SegmentScheme; default: the "
                "eight-class asset x risk x ecosystem-contribution scheme).",
            ),
        ] = None,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Score every row of a feature table with the champion models; writes scores per customer."""

        def action() -> dict:
            from training.scoring import score_file
            from training.segments import load_scheme

            scheme = load_scheme(segments) if segments is not None else None
            names = [t.strip() for t in tasks.split(",") if t.strip()]
            return score_file(features, out, tasks=names, alias=alias, scheme=scheme)

        run(action, as_json=as_json, debug=debug)
