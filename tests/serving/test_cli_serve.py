"""`clientlens serve` parses its options and reports bad ones plainly."""

from __future__ import annotations

from typer.testing import CliRunner

from clientlens.cli import app


def test_serve_help_lists_the_options():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--host", "--features", "--workers", "--reload-seconds", "--max-batch"):
        assert option in result.output


def test_serve_rejects_a_missing_feature_table(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--features", str(tmp_path / "nope.parquet"), "--json"])
    assert result.exit_code == 2
    assert "no such file" in result.output
