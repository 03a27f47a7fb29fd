"""A missing, corrupt or replaced feature table (issue #18, defect 6): `/readyz` and `/score_ids`
agree, a 503 names no server path, and a readable table is picked up without a restart."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from tests.serving.conftest import API_KEY

pytestmark = pytest.mark.slow


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_readyz_and_score_ids_agree_on_the_feature_table(serving_env, latest, tmp_path):
    from serving.process import running_service

    table = tmp_path / "tables" / "latest.parquet"
    # Its own BentoML home: BentoML wipes the metrics folder of the home a server starts in,
    # which would clobber the session's server's /metrics.
    env = {**serving_env.env, "CLIENTLENS_FEATURES_TABLE": str(table), "CLIENTLENS_RELOAD_SECONDS": "0",
           "CLIENTLENS_API_KEY": API_KEY, "BENTOML_HOME": str(tmp_path / "bentoml")}  # fmt: skip
    ids = {"customer_ids": [int(i) for i in latest["customer_id"].head(3)]}
    with running_service(env=env, log_path=tmp_path / "server.log", ready_timeout=300) as url:
        client = httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=60)
        # No table yet: ready (the models are), /score_ids unavailable, the body names no path.
        missing = client.post("/score_ids", json=ids)
        assert missing.status_code == 503 and "clientlens features" in missing.json()["error"]
        assert str(tmp_path) not in missing.text and "/" not in missing.json()["error"].split(":")[0]
        assert client.get("/readyz").status_code == 200
        # A corrupt file appears: not ready, and /score_ids says so with a 503 (never a 500).
        table.parent.mkdir(parents=True)
        table.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
        assert _until(lambda: client.get("/readyz").status_code == 503)
        broken = client.post("/score_ids", json=ids)
        assert broken.status_code == 503 and "cannot be read" in broken.json()["error"]
        assert str(tmp_path) not in broken.text
        # A readable table replaces it: ready and scoring, without a restart.
        shutil.copy(serving_env.tables["latest"], table.with_suffix(".tmp"))
        table.with_suffix(".tmp").replace(table)
        assert _until(lambda: client.get("/readyz").status_code == 200)
        assert client.post("/score_ids", json=ids).status_code == 200
        # Truncated later: the table read before keeps serving, and readiness stays true.
        table.write_bytes(table.read_bytes()[:100])
        time.sleep(6)  # past the table's 5-second check
        assert client.get("/readyz").status_code == 200
        assert client.post("/score_ids", json=ids).status_code == 200
        client.close()
