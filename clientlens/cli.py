"""The `clientlens` entry point.

Each command lives in its own module under `clientlens.commands` and exposes
`register(app)`. Commands only parse arguments and call library code; heavy imports
(MLflow, BentoML, Evidently) happen inside the command body so `--help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import typer

from clientlens import commands

# MLflow draws a progress bar for every artefact it fetches, local files included (promote, drift, serve): noise
# in a console or a log. `MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true` brings it back.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

app = typer.Typer(
    name="clientlens",
    help="Customer classification for banks: value tier, churn and latent risk appetite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order in `--help`; modules not listed here come after, alphabetically.
_ORDER = ("simulate", "validate", "features", "train", "promote", "score", "serve", "drift", "demo")


def _register_all() -> None:
    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    for name in [n for n in _ORDER if n in found] + sorted(found - set(_ORDER)):
        importlib.import_module(f"clientlens.commands.{name}").register(app)


_register_all()


def main() -> None:  # pragma: no cover - console entry
    app()
