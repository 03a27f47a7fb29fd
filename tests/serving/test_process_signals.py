"""A script that runs a server in its own process group and is killed with SIGTERM / SIGINT stops that
server (`serving.process.exit_on_signals`, used by benchmarks/bench_serving.py; #18: a SIGTERM used
to orphan `bentoml serve`). The "server" here is a real child process in its own session, stopped by
the same `serving.process.stop` that `running_service` calls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import subprocess, sys, time
    from serving.process import exit_on_signals, stop

    guard = sys.argv[1] == "guarded"
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    if guard:
        with exit_on_signals():
            try:
                print(server.pid, flush=True)  # the handlers are installed, and the stop is armed
                time.sleep(600)
            finally:
                stop(server, timeout=10)
    else:
        try:
            print(server.pid, flush=True)
            time.sleep(600)
        finally:
            stop(server, timeout=10)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _run(mode: str, sig: int, settle: float = 10.0) -> tuple[int, int]:
    """Start the script, signal it, wait for it, then up to `settle` seconds for its server to stop."""
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert script.stdout is not None
    server = int(script.stdout.readline())
    script.send_signal(sig)  # the script printed the pid with its handlers (if any) installed
    code = script.wait(30)
    deadline = time.monotonic() + settle
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    return code, server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_script_stops_its_server(sig):
    code, server = _run("guarded", sig)
    assert code == 128 + sig
    assert not _alive(server)


def test_without_the_guard_sigterm_orphans_the_server():
    """The failure this guards against (what bench_serving did before): the server outlives the script."""
    code, server = _run("plain", signal.SIGTERM, settle=2.0)  # a stopped server is gone well inside 1 s
    try:
        assert code == -signal.SIGTERM
        assert _alive(server)
    finally:
        if _alive(server):
            os.killpg(server, signal.SIGKILL)
