"""Session fixtures: small real champions in MLflow, and a real `bentoml serve` process.

The champions are trained once per session on a small simulated bank (see `champions.py`);
the service runs as a subprocess on a free loopback port with an API key, a small batch limit
(500), a 1-second champion check, and an inference log written every 50 rows (never by timer,
so `test_service_shutdown.py`, the last serving test, can check that stopping flushes it).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest

from tests.serving.champions import build_tables, to_request_rows, train_champions

API_KEY = "test-key-5f1c"
MAX_BATCH = 500
LOG_FLUSH_ROWS = 50


@pytest.fixture(scope="session")
def serving_env(tmp_path_factory):
    """A clientlens home with tier/churn/risk champions registered in MLflow, and feature tables."""
    root = tmp_path_factory.mktemp("serving")
    home = root / "home"
    home.mkdir()
    env = {
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": str(home / "inference_log"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        tables = build_tables(root / "work", customers=1200, months=15, seed=11)
        versions = train_champions(tables["panel"], tables["truth"], seed=0)
    return SimpleNamespace(root=root, home=home, env=env, tables=tables, versions=versions,
                           log_dir=home / "inference_log")  # fmt: skip


@pytest.fixture
def use_serving_env(serving_env, monkeypatch):
    """Point this test's process at the session's MLflow/BentoML stores (e.g. to promote a model)."""
    for key, value in serving_env.env.items():
        monkeypatch.setenv(key, value)
    return serving_env


@pytest.fixture(scope="session")
def service(serving_env):
    """A running `bentoml serve serving.service:Clientlens`; yields its URL and an authorised client."""
    from serving.process import running_service

    env = {
        **serving_env.env,
        "CLIENTLENS_FEATURES_TABLE": str(serving_env.tables["latest"]),
        "CLIENTLENS_RELOAD_SECONDS": "1",
        "CLIENTLENS_LOG_FLUSH_SECONDS": "3600",
        "CLIENTLENS_LOG_FLUSH_ROWS": str(LOG_FLUSH_ROWS),
        "CLIENTLENS_MAX_BATCH": str(MAX_BATCH),
        "CLIENTLENS_API_KEY": API_KEY,
    }
    with ExitStack() as stack:
        url = stack.enter_context(running_service(env=env, log_path=serving_env.root / "server.log", ready_timeout=300))
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        stack.callback(client.close)
        # `stop()` lets the last test shut the server down (idempotent; also runs at session end).
        yield SimpleNamespace(url=url, client=client, env=env, log_path=serving_env.root / "server.log",
                              stop=stack.close)  # fmt: skip


@pytest.fixture(scope="session")
def latest(serving_env) -> pd.DataFrame:
    return pd.read_parquet(serving_env.tables["latest"])


@pytest.fixture
def request_rows():
    return to_request_rows


def server_log(service) -> str:
    return Path(service.log_path).read_text(errors="replace")


def worker_pids(url: str) -> list[int]:
    """The pids of the worker processes of the server at `url` (children of its arbiter)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "serving.arbiter" in cmd and port in cmd:
            return sorted(p.pid for p in proc.children())
    raise AssertionError(f"no arbiter listening on port {port}")
