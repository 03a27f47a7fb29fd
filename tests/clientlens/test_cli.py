"""The command-line contract every command shares (DESIGN §11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from clientlens.cli import app

runner = CliRunner()


def _commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in _commands():
        assert name in result.output


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_and_json(name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    if name != "serve":
        assert "--json" in result.output


def test_unknown_option_is_usage_error_exit_2():
    name = _commands()[0]
    result = runner.invoke(app, [name, "--no-such-option"])
    assert result.exit_code == 2


def test_help_is_fast_and_imports_no_heavy_library():
    """`--help` must not import MLflow, BentoML or Evidently (commands import them lazily)."""
    code = (
        "import sys; from clientlens.cli import app; "
        "print([m for m in ('mlflow', 'bentoml', 'evidently', 'lightgbm', 'dask') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
