"""Start and stop a real `bentoml serve` process (for `clientlens demo`, tests and benchmarks).

with running_service() as base_url:
    httpx.post(f"{base_url}/score", json={...})
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from core.errors import ClientlensError
from core.settings import Settings

logger = logging.getLogger(__name__)

SERVICE = "serving.service:Clientlens"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def service_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a service process: `base` (default: the environment this process
    would hand any child, which is the only reason it is read here; settings are not read from
    it), then `extra`, with every store made explicit as an absolute path
    (`Settings.process_env`, from that same environment)."""
    env = {**(os.environ if base is None else base), **(extra or {})}
    env.update(Settings.from_env(env).process_env())
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def serve_command(host: str, port: int, target: str = SERVICE, root: Path = PROJECT_ROOT) -> list[str]:
    """`bentoml serve`, through `serving.arbiter` (the same CLI, plus a log line for every worker
    that dies: which one, and its exit code or signal), of the project at `root`."""
    return [sys.executable, "-m", "serving.arbiter", "serve", target, "--host", host, "--port", str(port),
            "--working-dir", str(root)]  # fmt: skip


def import_models(env: Mapping[str, str] | None = None, timeout: float = 300.0) -> dict[str, str]:
    """Import the MLflow champions into the BentoML store, in a subprocess with the service's
    environment (BentoML fixes its store per process, so this never touches the caller's)."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "serving.models_store"],
        cwd=PROJECT_ROOT, env=service_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
        raise ClientlensError(f"importing the champion models failed: {message.removeprefix('error: ')}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wait_ready(base_url: str, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Poll `/readyz` until it answers 200; fail early if the process exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ClientlensError(f"the service exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ClientlensError(f"the service at {base_url} was not ready after {timeout:.0f}s")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """Ask the server to shut down (SIGTERM to its process group, which it leads: the arbiter and
    its workers flush the inference log), then kill the group if it does not stop in `timeout`
    seconds; a worker left behind by an arbiter that exited is killed too."""
    pgid = proc.pid
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("service did not stop in %.0fs; killing it", timeout)
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 5.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        logger.warning("processes of the service outlived it; killing them")
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return proc.returncode


class Stopped(SystemExit):
    """Raised in the main thread by `exit_on_signals` when the process is told to stop."""


@contextmanager
def exit_on_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)) -> Iterator[None]:
    """Turn SIGTERM / SIGHUP / SIGINT into an exception in the main thread, so `finally` blocks
    (`running_service`'s `stop`) run: the server leads its own process group (`start_new_session`,
    so a terminal's Ctrl-C does not reach it half-way), hence a script killed by a default SIGTERM
    would leave `bentoml serve` and its workers running. Exit code 128 + the signal number."""

    def handler(signum: int, _frame: object) -> None:
        for s in signals:  # once: a second signal must not interrupt the clean-up it started
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(128 + signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def running_service(
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    log_path: Path | None = None,
    import_champions: bool = False,
    target: str = SERVICE,
    root: Path = PROJECT_ROOT,
) -> Iterator[str]:
    """Run `bentoml serve <target>` (default `serving.service:Clientlens`; a Bento tag also works)
    in a subprocess, from the project at `root` (default: this one; another checkout, e.g. for
    a benchmark against an older version); yield its base URL once
    `/readyz` answers 200; stop it cleanly on exit.

    The server itself copies the MLflow champions into the BentoML store at start-up (its
    deployment hook); `import_champions=True` does it beforehand in a separate process, to fail
    early with a clear message when a champion is missing. Server output goes to `log_path` (default: a temporary file, whose
    tail is included in the error if the service fails to start)."""
    if import_champions:
        import_models(env)
    port = port or free_port(host)
    base_url = f"http://{host}:{port}"
    # The server's output file outlives this call (the server writes to it): closed by the caller's finally.
    log_file: IO[bytes]
    if log_path:
        log_file = open(log_path, "wb")  # noqa: SIM115
    else:
        log_file = tempfile.NamedTemporaryFile(prefix="clientlens-serve-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        serve_command(host, port, target, root),
        cwd=root,
        env=service_env(env),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() reaches the workers too
    )
    try:
        try:
            wait_ready(base_url, proc, ready_timeout)
        except ClientlensError as exc:
            log_file.flush()
            tail = Path(log_file.name).read_text(errors="replace")[-3000:]
            raise ClientlensError(f"{exc}; server log ({log_file.name}):\n{tail}") from None
        logger.info("service ready at %s (pid %d, log %s)", base_url, proc.pid, log_file.name)
        yield base_url
    finally:
        stop(proc)
        log_file.close()
