"""Every `clientlens` command the README shows parses against the real CLI (command, options, types).

The commands themselves run in `make demo` and the end-to-end tests (the README's user paths);
this keeps the README from drifting from the CLI: a renamed option or command fails here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from clientlens.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()  # drop the aligned trailing comments
            if line.startswith("uv run clientlens "):
                out.append(shlex.split(line)[3:])
    return out


def test_every_readme_clientlens_command_parses():
    commands = _readme_commands()
    assert len(commands) >= 10 and {c[0] for c in commands} >= {"train", "drift", "retrain", "serve"}
    root = typer.main.get_command(app)
    for args in commands:
        ctx = root.make_context("clientlens", list(args))
        sub = root.get_command(ctx, args[0])
        assert sub is not None, f"README shows `clientlens {args[0]}`, which is not a command"
        sub.make_context(args[0], list(args[1:]))  # raises on an unknown option or a bad value
