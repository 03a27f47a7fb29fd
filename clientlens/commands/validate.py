"""`clientlens validate --raw DIR`: check a raw folder against the data contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        raw: Annotated[Path, typer.Option("--raw", help="Folder with <table>.parquet files.")],
        tables: Annotated[
            list[str] | None, typer.Option("--table", help="Only these tables (repeatable; default all five).")
        ] = None,
        batch_customers: Annotated[
            int, typer.Option("--batch-customers", min=1, help="Customers validated at a time (bounds memory).")
        ] = 250_000,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Check schema, dtypes, keys, value ranges, vocabularies, dates and references; exit 2 on a violation."""

        def action() -> dict:
            from features.contract import validate_raw

            result = validate_raw(raw, tables=tables or None, batch_customers=batch_customers)
            return {"raw": raw.resolve(), "ok": True, "rows": result.rows, "missing": result.missing}

        def human(summary: dict) -> None:
            typer.echo(f"{summary['raw']}: contract ok")
            for table, n in summary["rows"].items():
                typer.echo(f"  {table:<19} {n:>14,} rows")
            for table in summary["missing"]:
                typer.echo(f"  {table:<13} {'missing':>14}")

        run(action, as_json=as_json, debug=debug, human=human)
