"""The response JSON of `/score` (and `/score_ids`, `/score_arrow` as JSON), built column-wise by
`serving.service._results` (#18), is byte for byte what `to_json` wrote for the items built as one
dict per customer (`_dict_items` below: the construction it replaced): on outputs with NaN, None,
bools stored as floats, awkward floats and strings, no or several classes, explain with any number
of reasons, and on real champions' output for customers with missing features."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic_core import to_json

from serving import service


def _dict_items(ids: list[int], out, explain: bool) -> list[dict]:
    """The items as `serving.service._results` built them before #18's column-wise construction."""
    from core import tasks as T

    tier_classes = T.TIER.classes_of(out)
    risk_classes = T.RISK.classes_of(out)
    col = {c: (v if isinstance(v, list) else v.tolist()) for c, v in out.items()}
    tier_p = [col[T.TIER.score_column(c)] for c in tier_classes]
    risk_p = [col[T.RISK.score_column(c)] for c in risk_classes]
    upgrade = [None if v != v else v for v in col[T.UPGRADE_COLUMN]]
    gap = [None if v != v else int(v) for v in col[T.RISK_GAP_COLUMN]]
    reasons = {t: col[T.reasons_column(t)] for t in T.TASK_NAMES if T.reasons_column(t) in col} if explain else None
    items = []
    for i, cid in enumerate(ids):
        item = {
            "customer_id": cid,
            "tier": {
                "label": col["tier"][i],
                "probabilities": {c: p[i] for c, p in zip(tier_classes, tier_p, strict=True)},
                "upgrade_probability": upgrade[i],
            },
            "churn": {
                "probability": col["churn_proba"][i],
                "flag": bool(col["churn"][i]),
                "driver": col[T.CHURN_DRIVER_COLUMN][i],
            },
            "risk_appetite": {
                "label": col["risk_appetite"][i],
                "probabilities": {c: p[i] for c, p in zip(risk_classes, risk_p, strict=True)},
                "hidden_aggressive": bool(col[T.HIDDEN_AGGRESSIVE_COLUMN][i]),
                "stated": col[T.STATED_RISK_COLUMN][i],
                "gap": gap[i],
            },
            "lifecycle_stage": col[T.LIFECYCLE_COLUMN][i],
            "relationship_depth": col[T.DEPTH_COLUMN][i],
            "segment": col[T.SEGMENT_COLUMN][i],
            "business_segment": col[T.BUSINESS_SEGMENT_COLUMN][i],
            "next_action": col["next_action"][i],
        }
        if reasons is not None:
            item["reasons"] = {task: rows[i] for task, rows in reasons.items()}
        items.append(item)
    return items


def _assert_same(ids, out, explain: bool) -> None:
    body = {"request_id": "ab" * 16, "versions": {"tier": "1", "churn": "2", "risk": "3"}}
    old = to_json({**body, "results": _dict_items(ids, out, explain)})
    new = service._json({**body, "results": service._results(ids, out, explain)}).body
    assert new == old


FLOATS = [0.1, 1e-7, 5e-324, 1e300, -0.0, 0.0, 1.0, 2.5, math.nan, math.inf, 0.30000000000000004, 123456789.125]
LABELS = ["mass", None, 'a "quoted", comma', "ünï/çødé\n\t", "", "x,y", "\\"]


def _synthetic(n: int, rng: np.random.Generator, tier_classes=("mass", "affluent", "hnw"), risk_classes=("c", "b")):
    def floats():
        return rng.choice(np.array(FLOATS), n)

    def labels():
        return np.array([LABELS[i] for i in rng.integers(0, len(LABELS), n)], dtype=object)

    out = {"tier": labels()}
    out.update({f"tier_proba_{c}": floats() for c in tier_classes})
    out.update({"upgrade_proba": floats(), "churn_proba": floats(), "churn": rng.random(n) < 0.5,
                "churn_driver": labels(), "risk_appetite": labels()})  # fmt: skip
    out.update({f"risk_proba_{c}": floats() for c in risk_classes})
    out.update({
        "hidden_aggressive": rng.choice(np.array([0.0, 1.0, math.nan]), n),  # a flag stored as floats (NaN is truthy)
        "risk_gap": rng.choice(np.array([-2.0, 0.0, 1.0, 2.0, math.nan]), n),
        "stated_risk": labels(), "lifecycle_stage": labels(), "relationship_depth": labels(),
        "segment": labels(), "business_segment": labels(), "next_action": list(labels()),  # a plain list too
        "actions": labels(),  # not shown
    })  # fmt: skip
    return out


@pytest.mark.parametrize("explain", [False, True])
@pytest.mark.parametrize("n", [1, 2, 37])
def test_column_wise_items_are_the_dict_items_bytes(n, explain):
    rng = np.random.default_rng(n)
    out = _synthetic(n, rng)
    if explain:
        for task, k in (("tier", 0), ("churn", 2), ("risk", 5)):  # no reasons, some, values of every kind
            out[f"reasons_{task}"] = [
                [{"feature": f"f{j},\"x\"", "value": [None, 1.5, "cat", math.nan][j % 4], "contribution": FLOATS[j]}
                 for j in range(k)]
                for _ in range(n)
            ]  # fmt: skip
    ids = rng.integers(0, 2**53, n).tolist()
    _assert_same(ids, out, explain)


def test_no_classes_no_reasons_and_no_customers():
    rng = np.random.default_rng(0)
    out = _synthetic(3, rng, tier_classes=(), risk_classes=())
    _assert_same([1, 2, 3], out, True)  # explain without any reasons column: "reasons": {}
    empty = {k: v[:0] for k, v in _synthetic(3, rng).items()}
    _assert_same([], empty, False)


def test_unhashable_labels_are_encoded_one_by_one():
    rng = np.random.default_rng(1)
    out = _synthetic(4, rng)
    out["next_action"] = [["a", 1], None, "b", {"k": "v"}]
    _assert_same([5, 6, 7, 8], out, False)


def test_labels_equal_as_keys_but_not_as_json_are_each_their_own():
    out = _synthetic(5, np.random.default_rng(3))
    out["segment"] = np.array([1, True, 1.0, "1", None], dtype=object)
    out["next_action"] = [0, False, 0.0, -0.0, "x"]
    _assert_same([1, 2, 3, 4, 5], out, False)


def test_json_keeps_the_order_of_the_fields_around_encoded_results():
    results = service._results([1], _synthetic(1, np.random.default_rng(2)), False)
    body = {"request_id": "r", "versions": {"tier": "1"}, "as_of": None, "results": results,
            "errors": [{"index": 0, "customer_id": 9, "error": "unknown customer_id"}]}  # fmt: skip
    decoded = {**body, "results": _dict_items([1], _synthetic(1, np.random.default_rng(2)), False)}
    assert service._json(body).body == to_json(decoded)
    assert service._json(decoded).body == to_json(decoded)  # no encoded value: `to_json` as it is


@pytest.mark.slow  # trains the session's champions and starts the service (~50 s of setup)
@pytest.mark.parametrize("explain,top_k", [(False, 3), (True, 1), (True, 3), (True, 20)])
def test_champions_output_gives_the_same_bytes(service, use_serving_env, latest, request_rows, explain, top_k):
    from features.registry import FEATURES
    from serving.fast_json import FastRequests
    from serving.models_store import load_model_set
    from training.scoring import score_columns

    # (`service`: its start fills the BentoML store `load_model_set` reads.)
    rows = request_rows(latest.head(60))
    for i, row in enumerate(rows[:20]):  # missing features, nulls, and one with none at all
        for name in list(row)[1 + i % 7 :: 5]:
            row[name] = None if i % 2 else row.pop(name)
    rows.append({"customer_id": 10**15})  # an id the tables never saw, no features
    body = to_json({"customers": rows, "explain": explain, "top_k": top_k})
    decoded = FastRequests(FEATURES, 1000).decode(body)
    assert decoded is not None
    out = score_columns(decoded.columns, len(decoded.ids), load_model_set().cores, explain=top_k if explain else 0)
    _assert_same(decoded.ids.tolist(), out, explain)
