"""Stopping the server writes what the inference log still buffers (runs last: it stops the server)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_shutdown_flushes_the_inference_log(service, serving_env, latest, request_rows):
    from serving.inference_log import read_inference_log

    body = service.client.post("/score", json={"customers": request_rows(latest.tail(2))}).json()
    before = read_inference_log(root=serving_env.log_dir)
    assert before.empty or body["request_id"] not in set(before["request_id"])  # below the 50-row threshold
    service.stop()  # SIGTERM to the server's process group; waits for it to exit
    log = read_inference_log(root=serving_env.log_dir)
    mine = log[log["request_id"] == body["request_id"]]
    assert mine["customer_id"].tolist() == latest["customer_id"].tail(2).tolist()
    assert not list(serving_env.log_dir.rglob("*.tmp"))
