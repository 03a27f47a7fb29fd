"""A newly promoted champion is picked up while requests flow, without a single failed request."""

from __future__ import annotations

import threading
import time

import pytest

from tests.serving.champions import train_champion

pytestmark = pytest.mark.slow


def test_new_champion_is_served_without_dropping_requests(service, use_serving_env, latest):
    ids = latest["customer_id"].head(20).tolist()
    before = service.client.get("/models").json()["models"]
    old = {m["task"]: m["version"] for m in before}
    statuses: list[int] = []
    versions_seen: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        import httpx

        with httpx.Client(base_url=service.url, headers=dict(service.client.headers), timeout=60) as client:
            while not stop.is_set():
                resp = client.post("/score_ids", json={"customer_ids": ids})
                statuses.append(resp.status_code)
                if resp.status_code == 200:
                    versions_seen.append(resp.json()["versions"]["churn"])

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        new_version = train_champion("churn", use_serving_env.tables["panel"], seed=5)
        assert new_version != old["churn"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (not versions_seen or versions_seen[-1] != new_version):
            time.sleep(0.2)
        time.sleep(0.5)  # a little traffic on the new version too
    finally:
        stop.set()
        thread.join(60)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert versions_seen[0] == old["churn"] and versions_seen[-1] == new_version
    # versions only move forward: no request went back to the old model after the swap
    switch = versions_seen.index(new_version)
    assert set(versions_seen[switch:]) == {new_version}
    after = {m["task"]: m for m in service.client.get("/models").json()["models"]}
    assert after["churn"]["version"] == new_version and "champion" in after["churn"]["aliases"]
    assert after["tier"]["version"] == old["tier"] and after["risk"]["version"] == old["risk"]
