"""A worker that dies leaves a line in the server log naming it and its signal (issue #18, defect 10).

A real server of its own (killing the session's worker would disturb the other tests), a real
`kill -9` of its worker: the arbiter logs the death and starts a new worker, which serves again.
"""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import psutil
import pytest

from serving.arbiter import describe_exit

pytestmark = pytest.mark.slow


def test_describe_exit_names_the_signal_or_code():
    assert describe_exit(-9) == "killed by signal SIGKILL (9)"
    assert describe_exit(-11) == "killed by signal SIGSEGV (11)"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exit status unknown"


def _workers(port: int) -> list[psutil.Process]:  # the arbiter's children
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "serving.arbiter" in cmd and str(port) in cmd:
            return proc.children()
    raise AssertionError(f"no arbiter listening on port {port}")


@pytest.mark.timeout(900)  # two server starts (the first worker, its replacement) on a busy machine
def test_a_killed_worker_is_logged_with_its_signal_and_replaced(serving_env, tmp_path):
    from serving.process import running_service, wait_ready

    log_path = tmp_path / "server.log"
    env = {
        **serving_env.env,
        "BENTOML_HOME": str(tmp_path / "bentoml"),  # its own metrics folder (BentoML wipes it at start)
        "CLIENTLENS_INFERENCE_LOG": str(tmp_path / "inference_log"),
        "CLIENTLENS_RELOAD_SECONDS": "0",
    }
    with running_service(env=env, log_path=log_path, ready_timeout=300) as url:
        port = int(url.rsplit(":", 1)[1])
        (worker,) = _workers(port)
        os.kill(worker.pid, signal.SIGKILL)
        line = None
        deadline = time.monotonic() + 60
        while line is None and time.monotonic() < deadline:
            time.sleep(0.5)
            found = re.search(rf"^.*worker {worker.pid} .*died.*$", log_path.read_text(errors="replace"), re.M)
            line = found.group(0) if found else None
        assert line is not None, log_path.read_text(errors="replace")[-2000:]
        assert "WARNING" in line and "killed by signal SIGKILL (9)" in line
        wait_ready(url, timeout=180)  # the arbiter started a new worker, which serves
        (replacement,) = _workers(port)
        assert replacement.pid != worker.pid
        assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    text = log_path.read_text(errors="replace")
    # The shutdown's own exits are INFO, not deaths.
    assert len(re.findall(r"^.* died: .*$", text, re.M)) == 1, text[-2000:]
