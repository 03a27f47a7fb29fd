"""`clientlens reclassify --features DIR --from DATE --to DATE --out DIR`: who moved between two as-of dates (quarterly)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("reclassify")
    def reclassify(
        features: Annotated[Path, typer.Option("--features", help="Feature folder holding panel.parquet.")],
        date_from: Annotated[str, typer.Option("--from", help="Earlier date (the panel's as-of at or before it).")],
        date_to: Annotated[str, typer.Option("--to", help="Later date (the panel's as-of at or before it).")],
        out: Annotated[Path, typer.Option("--out", help="Report folder (report.html, reclassify.json, movers).")],
        truth: Annotated[
            Path | None,
            typer.Option("--truth", help="Simulated data only: truth.parquet, to check the aggressive list."),
        ] = None,
        risk_margin: Annotated[
            float,
            typer.Option(
                "--risk-margin",
                min=0.0,
                max=0.99,
                help="A risk move counts only when the later posterior favours the new class over the "
                "earlier one by more than this (0: every change of the predicted class).",
            ),
        ] = 0.3,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Score both dates with the champions: migration matrices, movers, the bull-market aggressive list."""

        def action() -> dict[str, Any]:
            from training.reclassify import reclassify_panel

            return reclassify_panel(features, date_from, date_to, out, truth_path=truth, risk_margin=risk_margin)

        def human(s: dict[str, Any]) -> None:
            typer.echo(f"re-classified {s['customers']:,} customers {s['from']} -> {s['to']}: {s['movers']:,} moved")
            for dim, n in s["moved"].items():
                typer.echo(f"  {dim:20s} {n:7,} moved")
            if s.get("risk_move_margin") is not None:
                typer.echo(f"  risk class kept for {s['risk_moves_held']:,} whose predicted class changed with the new class ahead by "
                           f"{s['risk_move_margin']} or less")  # fmt: skip
            actions = s.get("proposed_actions") or []
            if actions:
                top = ", ".join(f"{a['next_action']} {a['customers']:,}" for a in actions[:3])
                typer.echo(f"  actions now proposed for movers (next action changed): {top}")
            typer.echo(
                f"  potential aggressive (stated conservative, investing like an aggressive now): "
                f"{s['potential_aggressive']:,}"
            )
            if "truth" in s:
                t = s["truth"]
                typer.echo(f"  truly latent-aggressive among them: {t['share']:.1%} vs base rate "
                           f"{t['base_rate_among_conservative_rated']:.1%} (lift {t['lift']}x)")  # fmt: skip
                if "latent_risk_accuracy_at_to" in t:
                    a = t["latent_risk_accuracy_at_to"]
                    typer.echo(f"  risk class right (latent truth) at --to: {a['kept']:.1%} kept vs "
                               f"{a['predicted']:.1%} predicted")  # fmt: skip
            typer.echo(f"report: {s['out']}/report.html")

        run(action, as_json=as_json, debug=debug, human=human)
