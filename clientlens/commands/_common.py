"""What every command shares: `--json` and `--debug`, exit codes, plain errors, progress."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import ClientlensError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a one-line JSON summary last on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, set | tuple):
        return list(o)
    return str(o)


def run(
    action: Callable[[], dict[str, Any]],
    *,
    as_json: bool,
    debug: bool,
    human: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Run a command body; map errors to exit codes (2 input, 1 other) without tracebacks.

    `action` returns the summary dict. With `--json` it is printed as the last stdout line;
    otherwise `human` (or a key: value listing) prints it for people.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        summary = action()
    except ClientlensError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        if as_json:
            typer.echo(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        if as_json:
            typer.echo(json.dumps({"error": f"{type(exc).__name__}: {exc}", "exit_code": 1}))
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary, default=_default))
    elif human is not None:
        human(summary)
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value if not isinstance(value, dict) else json.dumps(value, default=_default)}")


@contextmanager
def progress(description: str, total: int | None = None, *, enabled: bool = True):
    """A rich progress bar on stderr; yields `advance(n=1)`. Quiet when not a terminal or `enabled` is False."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda n=1: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
