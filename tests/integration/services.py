"""Real PostgreSQL and a real `mlflow server` for the integration tests (no mock anywhere).

`running_postgres()` makes a throw-away cluster with `initdb` in a temporary folder and runs
`postgres` on a free loopback port (as the `postgres` system user when we are root: PostgreSQL
refuses to run as root); `running_mlflow_server(backend)` runs `mlflow server` with that database
as its backend store and artefacts served by the server itself (`--serve-artifacts`). Both stop
on exit. `.ci/services.sh` installs Debian's `postgresql` package in CI.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from serving.process import free_port

PG_USER = "postgres"
# A loaded 2-core machine needs ~60 s to import MLflow and start uvicorn; a quiet one ~8 s.
READY_SECONDS = 300


def postgres_bin() -> Path | None:
    """The folder holding `initdb`, `pg_ctl` and `postgres`: Debian's newest version, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def _as_db_user(cmd: list[str]) -> list[str]:
    """Run as the `postgres` system user when we are root (Debian's package creates that user)."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", PG_USER, "--", *cmd]


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


@contextmanager
def running_postgres(database: str = "mlflow") -> Iterator[str]:
    """A PostgreSQL server in a temporary folder; yields `postgresql+psycopg://postgres@127.0.0.1:PORT/<database>`."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (no initdb): run .ci/services.sh")
    root = Path(tempfile.mkdtemp(prefix="clientlens-pg-"))
    data, sock = root / "data", root / "run"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER)
        shutil.chown(sock, PG_USER)
    port = free_port()
    _run(_as_db_user([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                      "--no-sync"]), "initdb")  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=100"
    _run(_as_db_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "postgres.log"),
                      "-w", "-t", "60", "start"]), "pg_ctl start")  # fmt: skip
    try:
        _run(_as_db_user([str(bindir / "createdb") if (bindir / "createdb").exists() else "createdb",
                          "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, database]), "createdb")  # fmt: skip
        # The driver named: SQLAlchemy's bare `postgresql://` means psycopg2, which is not installed.
        yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{database}"
    finally:
        with suppress(Exception):
            _run(_as_db_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), "pg_ctl stop")
        shutil.rmtree(root, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """A second database on the same server (e.g. for an Optuna study); returns its URL."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def running_mlflow_server(backend_uri: str, artifacts: Path, log_path: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port over `backend_uri`, serving artefacts from `artifacts`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    # No job runner process: clientlens schedules nothing on the server (one process less to start).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + READY_SECONDS
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"mlflow server exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
                with suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server not ready after {READY_SECONDS} s: {log_path.read_text()[-2000:]}"
                    )
                time.sleep(0.5)
            yield url
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
