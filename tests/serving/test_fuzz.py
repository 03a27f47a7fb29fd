"""Schemathesis fuzzes every operation of the live service's OpenAPI schema: no 5xx, responses
that match the schema, invalid input rejected with a 4xx — a bounded number of examples each.

(Hypothesis is driven directly rather than through `schema.parametrize()`: schemathesis'
lazy pytest fixture loader does not work with this pytest version.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.serving.conftest import API_KEY

pytestmark = pytest.mark.slow

OPERATIONS = [("POST", "/score"), ("POST", "/score_ids"), ("GET", "/models"), ("GET", "/livez"),
              ("GET", "/readyz"), ("GET", "/healthz"), ("GET", "/metrics")]  # fmt: skip
EXAMPLES = {"POST": 40, "GET": 5}


@pytest.fixture(scope="module")
def api_schema(service):
    return schemathesis.openapi.from_url(f"{service.url}/docs.json")


def test_schema_lists_every_operation(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= found


# Valid input for every operation; invalid input for those that take a body (GETs take none).
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST"
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_fuzz(api_schema, service, method, path, mode):
    operation = api_schema[path][method]

    @settings(max_examples=EXAMPLES[method], deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        case.call_and_validate(base_url=service.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)

    run()
