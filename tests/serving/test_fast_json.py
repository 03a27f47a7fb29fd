"""The msgspec fast path of `POST /score` accepts nothing pydantic rejects, and gives the same columns.

Every body below goes through both decoders: the pydantic request model with
`customers_to_columns` (the API's definition) and `serving.fast_json.FastRequests`. Where the
fast path accepts, pydantic must accept with identical ids, columns and options; where pydantic
rejects, the fast path must give None (so the service answers with pydantic's 400).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from features.registry import FEATURES
from serving.fast_json import FastRequests
from serving.schemas import customer_model, customers_to_columns, score_request_model

MAX_BATCH = 5
ScoreRequest = score_request_model(customer_model(FEATURES), MAX_BATCH)
FAST = FastRequests(FEATURES, MAX_BATCH)


def random_customer(rng: np.random.Generator) -> dict:
    row: dict = {"customer_id": int(rng.integers(0, 2**62))}
    for f in FEATURES:
        if rng.random() < 0.25:
            continue  # missing
        if rng.random() < 0.1:
            row[f.name] = None
        elif f.dtype == "category":
            row[f.name] = str(rng.choice(list(f.categories)))
        elif f.dtype == "bool":
            row[f.name] = bool(rng.random() < 0.5)
        else:
            lo = f.lower if f.lower is not None else -1e6
            hi = f.upper if f.upper is not None else 1e6
            value = float(np.clip(rng.uniform(lo, hi), lo, hi))
            if f.dtype == "int":  # a whole number, sent as 3 or as 3.0
                value = float(np.clip(round(value), lo, hi))
                row[f.name] = int(value) if rng.random() < 0.5 else value
            else:
                row[f.name] = value
    return row


BAD_VALUES = ["3", True, 1e400, 3.5, 1e-15, -1e300, 1e300, 2**70, [], {}, "NaN", -1, 10**30]


def mutate(body: dict, rng: np.random.Generator) -> str:
    """One invalid-or-not change: a wrong value for a feature, id or option, an unknown field, a
    missing id, too many or no customers, or broken JSON."""
    customers = body["customers"]
    kind = int(rng.integers(0, 9))
    c = customers[int(rng.integers(0, len(customers)))]
    f = FEATURES[int(rng.integers(0, len(FEATURES)))]
    if kind == 0:
        c[f.name] = BAD_VALUES[int(rng.integers(0, len(BAD_VALUES)))]
    elif kind == 1:
        c["customer_id"] = [-1, 1.0, "7", 2**63, None, True][int(rng.integers(0, 6))]
    elif kind == 2:
        c[f"not_a_feature_{int(rng.integers(0, 9))}"] = 1
    elif kind == 3:
        c.pop("customer_id")
    elif kind == 4:
        body["customers"] = customers * (MAX_BATCH + 1) if rng.random() < 0.5 else []
    elif kind == 5:
        option = ["explain", "top_k", "other"][int(rng.integers(0, 3))]
        body[option] = [1, 0, 21, "yes", None, 3.0][int(rng.integers(0, 6))]
    elif kind == 6:
        if f.dtype == "category":
            c[f.name] = str(f.categories[0]).upper()
    elif kind == 7:
        text = json.dumps(body)
        return text[: int(rng.integers(1, len(text)))]
    else:
        text = json.dumps(body)
        return text.replace("null", "NaN", 1) if "null" in text else text + " x"
    return json.dumps(body)


def both(text: str):
    fast = FAST.decode(text.encode())
    try:
        request = ScoreRequest.model_validate_json(text)
    except ValidationError:
        return fast, None
    ids, columns = customers_to_columns(request.customers, FEATURES)
    return fast, (ids, columns, request.explain, request.top_k)


def assert_same(fast, slow) -> None:
    ids, columns, explain, top_k = slow
    assert np.array_equal(fast.ids, ids) and fast.ids.dtype == ids.dtype
    assert (fast.explain, fast.top_k) == (explain, top_k)
    assert list(fast.columns) == list(columns)
    for name, values in columns.items():
        got = fast.columns[name]
        assert got.dtype == values.dtype, name
        if values.dtype == object:
            assert got.tolist() == values.tolist(), name
        else:
            np.testing.assert_array_equal(got, values, err_msg=name)


def test_valid_bodies_decode_to_the_same_columns():
    rng = np.random.default_rng(0)
    for _ in range(200):
        body = {"customers": [random_customer(rng) for _ in range(int(rng.integers(1, MAX_BATCH + 1)))]}
        if rng.random() < 0.5:
            body.update(explain=bool(rng.random() < 0.5), top_k=int(rng.integers(1, 21)))
        fast, slow = both(json.dumps(body))
        assert slow is not None and fast is not None
        assert_same(fast, slow)


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_path_accepts_nothing_pydantic_rejects(seed):
    rng = np.random.default_rng(100 + seed)
    rejected = 0
    for _ in range(250):
        body = {"customers": [random_customer(rng) for _ in range(int(rng.integers(1, 3)))]}
        fast, slow = both(mutate(body, rng))
        if slow is None:
            rejected += 1
            assert fast is None
        elif fast is not None:  # the fast path may decline a valid body, never change it
            assert_same(fast, slow)
    assert rejected > 150  # the mutations do break most bodies


@pytest.mark.parametrize(
    "text",
    ['{"customers": [{"customer_id": 1, "txn_count_30d": 3.5}]}', '{"customers": [{"customer_id": 1, "txn_count_30d": 1e-15}]}',
     '{"customers": [{"customer_id": 1, "txn_count_30d": -1}]}', '{"customers": [{"customer_id": 1, "age": true}]}',
     '{"customers": [{"customer_id": 1, "age": NaN}]}', '{"customers": [{"customer_id": 1, "age": 1e400}]}',
     '{"customers": [{"customer_id": 1, "region": "Metro"}]}', '{"customers": [{"customer_id": 1, "x": 1}]}',
     '{"customers": []}', '{"customers": [{"customer_id": 1}], "top_k": 3.0}', "not json", ""],
)  # fmt: skip
def test_known_bad_bodies_are_left_to_pydantic(text):
    fast, slow = both(text)
    assert fast is None and slow is None


def test_keys_in_any_order_decode_to_the_same_columns():
    """The struct follows the registry's order (the fast case); a client sending another order
    gets the same columns."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        customers = []
        for _ in range(int(rng.integers(1, MAX_BATCH + 1))):
            row = random_customer(rng)
            keys = list(row)
            rng.shuffle(keys)
            customers.append({k: row[k] for k in keys})
        fast, slow = both(json.dumps({"customers": customers}))
        assert slow is not None and fast is not None
        assert_same(fast, slow)


BIG = 100
BIG_REQUEST = score_request_model(customer_model(FEATURES), BIG)
BIG_FAST = FastRequests(FEATURES, BIG)
_BIG_ROWS = [random_customer(np.random.default_rng(11)) for _ in range(BIG + 1)]


def big_body(rows: int = BIG) -> dict:
    return {"customers": [dict(r) for r in _BIG_ROWS[:rows]]}


def test_a_big_batch_is_read_column_by_column_as_pydantic_reads_it():
    text = json.dumps(big_body())
    request = BIG_REQUEST.model_validate_json(text)
    fast = BIG_FAST.decode(text.encode())
    assert fast is not None
    assert_same(fast, (*customers_to_columns(request.customers, FEATURES), request.explain, request.top_k))


@pytest.mark.parametrize(
    ("field", "value"),
    [("txn_count_30d", 1e-15), ("txn_count_30d", 2.5), ("age", "41"), ("age", True), ("age", 1e400),
     ("region", "atlantis"), ("customer_id", None), ("customer_id", -3), ("not_a_feature", 1)],
)  # fmt: skip
def test_one_bad_value_in_the_last_row_of_a_big_batch_is_left_to_pydantic(field, value):
    """Column-wise checks see every row: one bad value at the end of a batch declines the body,
    and pydantic (which then answers the 400) rejects it too."""
    body = big_body()
    body["customers"][-1][field] = value
    text = json.dumps(body)
    assert BIG_FAST.decode(text.encode()) is None
    with pytest.raises(ValidationError):
        BIG_REQUEST.model_validate_json(text)


def test_a_batch_over_max_batch_is_left_to_pydantic():
    text = json.dumps(big_body(BIG + 1))
    assert BIG_FAST.decode(text.encode()) is None
    with pytest.raises(ValidationError, match="at most 100"):
        BIG_REQUEST.model_validate_json(text)


@pytest.mark.parametrize("order", ["registry", "reversed", "shuffled", "categories first"])
def test_numeric_runs_convert_every_numeric_field_in_any_field_order(order):
    """The numeric columns are converted run by run (views of adjacent struct fields): whatever the order of
    the features, the runs cover the numeric fields once, in order, and give each column its own values."""
    rng = np.random.default_rng(5)
    features = {
        "registry": list(FEATURES),
        "reversed": list(FEATURES)[::-1],
        "shuffled": [FEATURES[i] for i in rng.permutation(len(FEATURES))],
        "categories first": sorted(FEATURES, key=lambda f: f.dtype != "category"),
    }[order]
    fast = FastRequests(features, MAX_BATCH)
    assert [first + k for _, first, n in fast._numeric_runs for k in range(n)] == fast._numeric_at
    assert [dst for dst, _, _ in fast._numeric_runs] == list(np.cumsum([0] + [n for *_, n in fast._numeric_runs])[:-1])
    rows = [random_customer(rng) for _ in range(MAX_BATCH)]
    got = fast.decode(json.dumps({"customers": rows}).encode())
    assert got is not None and list(got.columns) == [f.name for f in features]
    for f in features:
        values = [r.get(f.name) for r in rows]
        if f.dtype == "category":
            assert got.columns[f.name].tolist() == values, f.name
        else:
            want = np.array([np.nan if v is None else float(v) for v in values])
            np.testing.assert_array_equal(got.columns[f.name], want, err_msg=f.name)
