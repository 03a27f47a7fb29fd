"""`clientlens assign --scores FILE --advisors FILE --out FILE`: customers to advisors and channels under capacity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("assign")
    def assign(
        scores: Annotated[Path, typer.Option("--scores", help="Scored book (Parquet/CSV from `clientlens score`).")],
        advisors: Annotated[
            Path,
            typer.Option(
                "--advisors", help="Advisors (Parquet/CSV): advisor_id, role, seniority_years, max_clients[, region]."
            ),
        ],
        out: Annotated[Path, typer.Option("--out", help="Assignment per customer (Parquet or .csv).")],
        policy: Annotated[
            Path | None, typer.Option("--policy", help="Service policy YAML (default: the shipped one).")
        ] = None,
        greedy: Annotated[
            bool, typer.Option("--greedy/--no-greedy", help="Also report a greedy assignment's value.")
        ] = False,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Assign every customer to an advisor or a channel, maximising the policy's expected value under capacity."""

        def action() -> dict:
            from core.io import read_table, write_table
            from training.assign import assign as run_assign
            from training.policy import load_policy

            pol = load_policy(policy)
            book = read_table(scores, what="--scores")
            team = read_table(advisors, what="--advisors")
            table, summary = run_assign(
                book, team, pol, with_greedy=greedy, names=(f"--scores {scores}", f"--advisors {advisors}")
            )
            write_table(table, out)
            return {"out": str(out), **summary}

        def human(s: dict) -> None:
            typer.echo(
                f"assigned {s['customers']:,} customers to {s['advisors_used']} of {s['advisors']} advisors -> {s['out']}"
            )
            typer.echo(
                f"objective {s['objective']:,.0f}, LP bound {s['lp_bound']:,.0f}, gap {s['gap']:.2e} ({s['seconds']['total']} s)"
            )
            for cls, c in s["by_class"].items():
                typer.echo(
                    f"  {cls:<9} {c['customers']:>8,}  {c['options']}  not fitted {c['not_fitted']:,}, cost {c['lost_value']:,.0f}"
                )
            for ch, u in s["channel_slots"].items():
                typer.echo(f"  slots {ch:<8} {u['used']:,.0f} / {u['limit']:,.0f} per week")
            if "greedy_objective" in s:
                typer.echo(f"greedy {s['greedy_objective']:,.0f} (solver / greedy = {s['value_ratio_vs_greedy']:.4f})")

        run(action, as_json=as_json, debug=debug, human=human)
