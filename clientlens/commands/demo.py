"""`clientlens demo`: simulate → validate → features → train ×3 → promote → score → serve → drift."""

from __future__ import annotations

from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        customers: Annotated[int, typer.Option("--customers", min=200, help="Simulated customers.")] = 3_000,
        months: Annotated[int, typer.Option("--months", min=12, help="Simulated months of history.")] = 18,
        trials: Annotated[
            int,
            typer.Option(
                "--trials", min=1, help="Optuna trials for tier and churn (risk: at least 8); fixed, not timed."
            ),
        ] = 4,
        seed: Annotated[int, typer.Option("--seed")] = 42,
        source_systems: Annotated[
            bool,
            typer.Option(
                "--source-systems", help="Also simulate three source systems and unify them (record linkage) first."
            ),
        ] = False,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Run the whole main job on embedded defaults (under CLIENTLENS_HOME) and print where each output is."""

        def say(line: str) -> None:
            if not as_json:
                typer.echo(line)

        def action() -> dict:
            from clientlens.demo import DemoConfig, outputs, run_demo

            return outputs(
                run_demo(
                    DemoConfig(
                        customers=customers, months=months, seed=seed, trials=trials, source_systems=source_systems
                    ),
                    say,
                )
            )

        def human(s: dict) -> None:
            typer.echo("\n" + "\n".join(where_lines(s)))

        run(action, as_json=as_json, debug=debug, human=human)


def where_lines(summary: dict) -> list[str]:
    """The demo's closing table: each output's label, padded to the longest, then where it is."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        if key == "models":
            rows += [(f"model {task}", f"{ref} (alias champion)") for task, ref in value.items()]
        elif key not in ("seconds", "cpu_seconds"):
            rows.append((key, str(value)))
    rows.append(("seconds", ", ".join(f"{k} {v}" for k, v in summary["seconds"].items())))
    rows.append(("cpu seconds", ", ".join(f"{k} {v}" for k, v in summary["cpu_seconds"].items())))
    width = max(len(label) for label, _ in rows) + 2
    return ["Where everything is:", *(f"  {label:<{width}}{value}" for label, value in rows)]
