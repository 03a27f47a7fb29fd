"""`bentoml build` produces a Bento that packs the champions (served in containers)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_bento_build_packs_the_champions(service, serving_env):
    from serving.bento import build_bento

    # The session server's deployment hook filled the BentoML store from MLflow, and its worker
    # found the models already imported: the Bento packs exactly the models being served.
    served = {m["bento_tag"] for m in service.client.get("/models").json()["models"]}
    built = build_bento(serving_env.env)
    assert built["tag"].startswith("clientlens:")
    info = built["info"]
    assert {m["tag"] for m in info["models"]} == served
    assert info["entry_service"] == "clientlens"
    assert info["labels"]["project"] == "clientlens"
