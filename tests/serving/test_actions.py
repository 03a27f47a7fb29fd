"""POST /actions against a real `bentoml serve` process: the same ranked actions as batch scoring."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_actions_match_batch_scoring(service, latest, request_rows, use_serving_env):
    from training.registry import load_model
    from training.scoring import score_frame

    sample = latest.sample(20, random_state=5).reset_index(drop=True)
    answers = [service.client.post("/actions", json={"customer": row}).json() for row in request_rows(sample)]
    models = {task: load_model(task, version)[0] for task, version in answers[0]["versions"].items()}
    batch = score_frame(sample, models)
    for i, body in enumerate(answers):
        assert body["customer_id"] == int(sample["customer_id"][i])
        assert body["next_action"] == batch["next_action"][i] == body["actions"][0]["action"]
        assert body["actions"] == json.loads(batch["actions"][i])
        assert all(a["reason"] for a in body["actions"])
    one = service.client.post("/actions", json={"customer": request_rows(sample.head(1))[0], "top_k": 1}).json()
    assert len(one["actions"]) == 1
    bad = service.client.post("/actions", json={"customer": {"customer_id": 1, "no_such_feature": 1}})
    assert bad.status_code == 400 and "no_such_feature" in bad.text
