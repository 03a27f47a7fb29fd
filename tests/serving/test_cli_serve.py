"""`clientlens serve` parses its options and reports bad ones plainly."""

from __future__ import annotations

import pytest
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


def test_without_features_serve_uses_the_configured_table(tmp_path):
    from clientlens.commands.serve import default_features_table
    from core.settings import Settings

    settings = Settings.from_env({"CLIENTLENS_HOME": str(tmp_path)})
    assert default_features_table(settings) == (settings.features / "latest.parquet", False)
    settings.features.mkdir(parents=True)
    (settings.features / "latest.parquet").write_bytes(b"PAR1")  # where `clientlens demo` now writes it
    assert default_features_table(settings) == (settings.features / "latest.parquet", True)
    explicit = Settings.from_env({"CLIENTLENS_HOME": str(tmp_path), "CLIENTLENS_FEATURES_TABLE": str(tmp_path / "x")})
    assert default_features_table(explicit) == ((tmp_path / "x").resolve(), False)


@pytest.mark.slow
def test_sigterm_stops_the_server_and_its_workers(serving_env, tmp_path):
    """A service manager stops `clientlens serve` with SIGTERM: nothing it started may survive."""
    import contextlib
    import signal
    import subprocess
    import sys

    import psutil

    from serving.process import PROJECT_ROOT, free_port, service_env, wait_ready

    stack = contextlib.ExitStack()
    port = free_port()
    # Its own BentoML home (BentoML wipes the metrics folder of the home a server starts in).
    home = {"BENTOML_HOME": str(tmp_path / "bentoml"), "CLIENTLENS_RELOAD_SECONDS": "0"}
    env = service_env({**serving_env.env, **home})
    log = stack.enter_context((tmp_path / "serve.log").open("wb"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "clientlens", "serve", "--port", str(port), "--features",
         str(serving_env.tables["latest"]), "--json"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout=180)
        started = psutil.Process(proc.pid).children(recursive=True)
        assert started, "clientlens serve started no server"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert '"stopped_by": "SIGTERM"' in out.decode().strip().splitlines()[-1]
        gone, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [p.pid for p in alive]
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []:
            child.kill()
        if proc.poll() is None:
            proc.kill()
        stack.close()
