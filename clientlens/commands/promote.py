"""`clientlens promote TASK [--margin X] [--force REASON]`: the champion/challenger gate."""

from __future__ import annotations

from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote(
        task: Annotated[str, typer.Argument(help="tier, churn, risk or a spec name.")],
        margin: Annotated[
            float, typer.Option("--margin", min=0.0, help="Required gain on the promotion metric.")
        ] = 0.0,
        force: Annotated[
            str | None,
            typer.Option(
                "--force",
                help="Promote whatever the gate says, for this reason (recorded on the version), "
                "e.g. when the target was redefined and the champion cannot be compared.",
            ),
        ] = None,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Move `champion` to the challenger only if it beats the champion on the challenger's holdout by MARGIN."""

        def action() -> dict:
            from training.promote import promote as do_promote

            if force is not None and not force.strip():
                from core.errors import InputError

                raise InputError("--force needs a reason, e.g. --force 'risk target redefined as binary'")
            return do_promote(task, margin, force=force)

        run(action, as_json=as_json, debug=debug)
