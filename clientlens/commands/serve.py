"""`clientlens serve`: the BentoML service with the champion models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, run

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def default_features_table(settings) -> tuple[Path, bool]:
    """The table `/score_ids` reads when `--features` is not given (`Settings.features_table`:
    where `clientlens features` and `clientlens demo` write it), and whether it exists."""
    table = settings.features_table
    return table, table.exists()


def serve_until_stopped(proc) -> tuple[int, str | None]:
    """Wait for the server; on SIGTERM, SIGINT or SIGHUP (a service manager, Ctrl-C, a closed
    terminal) stop its whole process group (the arbiter and its workers, which flush the
    inference log) before returning, so no worker outlives this command."""
    import signal

    from serving import process

    def stop_on(signum, _frame):
        raise _Stopped(signum)

    previous = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, stop_on)
    stopped_by = None
    try:
        code = proc.wait()
    except _Stopped as exc:
        stopped_by = signal.Signals(exc.signum).name
        code = process.stop(proc)
    except KeyboardInterrupt:
        stopped_by = "SIGINT"
        code = process.stop(proc)
    finally:
        if proc.poll() is None:
            process.stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code, stopped_by


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 3000,
        host: Annotated[str, typer.Option("--host", help="Interface to bind (0.0.0.0 for all).")] = "127.0.0.1",
        features: Annotated[
            Path | None,
            typer.Option(
                "--features",
                help="Feature table for POST /score_ids [default: CLIENTLENS_FEATURES_TABLE, else "
                "<features dir>/latest.parquet].",
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
        an API key. Health: /livez, /readyz; Prometheus metrics: /metrics. Stop with Ctrl-C or
        SIGTERM (the server and its workers stop with it).
        """

        def action() -> dict:
            import subprocess

            from core.errors import InputError
            from core.settings import Settings
            from serving import process

            settings = Settings()
            if features is not None:
                if not features.exists():
                    raise InputError(f"--features: no such file {features}")
                table, found = features.resolve(), True
            else:
                table, found = default_features_table(settings)
            env = {
                "CLIENTLENS_WORKERS": str(workers),
                "CLIENTLENS_RELOAD_SECONDS": str(reload_seconds),
                "CLIENTLENS_MAX_BATCH": str(max_batch),
                "CLIENTLENS_FEATURES_TABLE": str(table),
            }
            url = f"http://{host}:{port}"
            typer.echo(f"serving on {url} (docs at {url}/, Ctrl-C to stop)", err=True)
            typer.echo(
                f"POST /score_ids reads {table}" if found else f"no feature table at {table}: /score_ids answers 503",
                err=True,
            )
            proc = subprocess.Popen(
                process.serve_command(host, port),
                cwd=process.PROJECT_ROOT,
                env=process.service_env(env),
                start_new_session=True,  # its own process group: stopped as a whole (see serve_until_stopped)
            )
            code, stopped_by = serve_until_stopped(proc)
            return {"url": url, "exit_code": code, "stopped_by": stopped_by, "features_table": str(table)}

        run(action, as_json=as_json, debug=debug)
