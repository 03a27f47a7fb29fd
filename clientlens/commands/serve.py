"""`clientlens serve`: the BentoML service with the champion models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 3000,
        host: Annotated[str, typer.Option("--host", help="Interface to bind (0.0.0.0 for all).")] = "127.0.0.1",
        features: Annotated[
            Path | None,
            typer.Option(
                "--features", help="Feature table for POST /score_ids [default: <features dir>/latest.parquet]."
            ),
        ] = None,
        workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
        reload_seconds: Annotated[
            float,
            typer.Option("--reload-seconds", min=0, help="Check MLflow for a new champion this often (0: never)."),
        ] = 30.0,
        max_batch: Annotated[
            int, typer.Option("--max-batch", min=1, help="Largest accepted batch of customers.")
        ] = 10_000,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Serve tier, churn and risk-appetite predictions over HTTP (POST /score, /score_ids; GET /models).

        The service loads the MLflow `champion` of each task (copied into the BentoML model store)
        and picks up a newly promoted champion without a restart. Set CLIENTLENS_API_KEY to require
        an API key. Health: /livez, /readyz; Prometheus metrics: /metrics. Stop with Ctrl-C.
        """

        def action() -> dict:
            import subprocess

            from core.errors import InputError
            from serving import process

            env = {
                "CLIENTLENS_WORKERS": str(workers),
                "CLIENTLENS_RELOAD_SECONDS": str(reload_seconds),
                "CLIENTLENS_MAX_BATCH": str(max_batch),
            }
            if features is not None:
                if not features.exists():
                    raise InputError(f"--features: no such file {features}")
                env["CLIENTLENS_FEATURES_TABLE"] = str(features.resolve())
            url = f"http://{host}:{port}"
            typer.echo(f"serving on {url} (docs at {url}/, Ctrl-C to stop)", err=True)
            proc = subprocess.Popen(
                process.serve_command(host, port), cwd=process.PROJECT_ROOT, env=process.service_env(env)
            )
            try:
                code = proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
                code = proc.wait()
            return {"url": url, "exit_code": code}

        run(action, as_json=as_json, debug=debug)
