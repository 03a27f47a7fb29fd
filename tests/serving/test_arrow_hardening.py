"""Crafted Arrow bodies are 400s, never a crashed worker or a 500 (issue #18, defects 1 and 2).

The bodies are read in one child process: a reader that does not validate buffers crashes the
interpreter on them, which must fail these tests rather than kill the test run."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from tests.serving import crafted

READ_IN_CHILD = """
import json, pickle, sys
from features.registry import FEATURES
from serving.arrow_io import ArrowRequestError, read_table, table_to_columns
out = {}
for name, body in pickle.load(sys.stdin.buffer):
    try:
        ids, columns = table_to_columns(read_table(body), FEATURES, 100)
        out[name] = ["accepted", len(ids)]
    except ArrowRequestError as exc:
        out[name] = ["rejected", exc.errors[0]["field"], exc.errors[0]["reason"]]
    except Exception as exc:  # what the service would answer with a 500
        out[name] = ["raised", type(exc).__name__, str(exc)[:200]]
print(json.dumps(out))
"""
CRAFTED = {
    "patched-offset": (crafted.patched_string_offset, "out of bounds"),
    "bad-utf8-name": (crafted.bad_utf8_field_name, "utf-8"),
    "dictionary-index": (crafted.dictionary_index_out_of_range, "dictionary indices invalid"),
    "two-streams": (crafted.two_streams, "after the end of the stream"),
}
MUTATED = 300


@pytest.fixture(scope="module")
def outcomes() -> dict:
    bodies = [(name, make()) for name, (make, _) in CRAFTED.items()]
    bodies += [(f"mutated-{i}", body) for i, body in enumerate(crafted.mutated_streams(MUTATED, seed=18))]
    proc = subprocess.run(
        [sys.executable, "-c", READ_IN_CHILD], input=pickle.dumps(bodies), capture_output=True, timeout=300
    )
    assert proc.returncode == 0, f"the reader died (exit {proc.returncode}): {proc.stderr.decode()[-800:]}"
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_body_is_rejected_as_a_bad_body(outcomes, name):
    verdict, *detail = outcomes[name]
    assert verdict == "rejected" and detail[0] == "body", outcomes[name]
    assert CRAFTED[name][1] in detail[1].lower(), detail


def test_mutated_valid_streams_are_scored_or_rejected_never_raise(outcomes):
    mutated = [v for k, v in outcomes.items() if k.startswith("mutated-")]
    assert len(mutated) == MUTATED
    assert not [v for v in mutated if v[0] == "raised"]
    assert sum(v[0] == "rejected" for v in mutated) > MUTATED // 2  # the mutations do break most streams
