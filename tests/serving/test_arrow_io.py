"""The Arrow request reader: the same rules and the same typed columns as the JSON request model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.build import build_features
from features.registry import FEATURES, feature_names
from serving.arrow_io import ArrowRequestError, read_table, request_table, table_to_columns, to_arrow_stream
from serving.schemas import customer_model, customers_to_columns, score_request_model
from tests.features.toydata import toy_raw
from tests.serving.champions import to_request_rows

ScoreRequest = score_request_model(customer_model(FEATURES), max_batch=1000)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    raw = toy_raw(seed=4, n_customers=60)
    return build_features(raw, pd.Timestamp("2025-06-30"))


def _roundtrip(table: pa.Table, max_batch: int = 1000):
    return table_to_columns(read_table(to_arrow_stream(table)), FEATURES, max_batch)


def test_arrow_columns_equal_the_json_path(frame):
    ids, columns = _roundtrip(request_table(frame))
    request = ScoreRequest.model_validate({"customers": to_request_rows(frame)})
    json_ids, json_columns = customers_to_columns(request.customers, FEATURES)
    assert ids.tolist() == json_ids.tolist()
    assert list(columns) == list(json_columns) == feature_names()
    for name, values in columns.items():
        expected = json_columns[name]
        assert values.dtype == expected.dtype, name
        if values.dtype == object:
            assert values.tolist() == expected.tolist(), name
        else:
            np.testing.assert_array_equal(values, expected, err_msg=name)


def test_missing_feature_columns_and_nulls_are_missing_values(frame):
    table = pa.table({"customer_id": pa.array([7, 8], pa.int64()), "aum": pa.array([1.5, None]),
                      "region": pa.array([None, "rural"])})  # fmt: skip
    ids, columns = _roundtrip(table)
    assert ids.tolist() == [7, 8]
    assert columns["aum"][0] == 1.5 and np.isnan(columns["aum"][1])
    assert columns["region"].tolist() == [None, "rural"]
    assert np.isnan(columns["txn_count_30d"]).all() and columns["tier"].tolist() == [None, None]


def test_dictionary_encoded_categories_and_integer_numbers_are_accepted():
    table = pa.table({"customer_id": pa.array([1, 2], pa.uint32()),
                      "region": pa.array(["metro", "urban"]).dictionary_encode(),
                      "txn_count_30d": pa.array([3, None], pa.int16())})  # fmt: skip
    ids, columns = _roundtrip(table)
    assert ids.dtype == np.int64 and columns["region"].tolist() == ["metro", "urban"]
    assert columns["txn_count_30d"][0] == 3.0 and np.isnan(columns["txn_count_30d"][1])


def _one(**cols) -> pa.Table:
    return pa.table({"customer_id": pa.array([1, 2, 3], pa.int64()), **cols})


@pytest.mark.parametrize(
    ("table", "field", "reason"),
    [
        (_one(shoe_size=pa.array([1, 2, 3])), "shoe_size", "unknown column"),
        (_one(aum=pa.array(["a", "b", "c"])), "aum", "must be a number column"),
        (_one(aum=pa.array([True, False, True])), "aum", "must be a number column"),
        (_one(aum=pa.array([1.0, float("nan"), 2.0])), "aum", "finite (send null for missing), row 1"),
        (_one(aum=pa.array([1.0, 2.0, float("-inf")])), "aum", "finite"),
        (_one(region=pa.array(["metro", "mars", "moon"])), "region", "must be one of 'metro', 'urban'"),
        (_one(region=pa.array([1, 2, 3])), "region", "must be a string column"),
        (_one(txn_count_30d=pa.array([1.0, 1.5, 2.0])), "txn_count_30d", "whole number, row 1"),
        (_one(payroll_at_bank=pa.array([1, 0, 1])), "payroll_at_bank", "must be a boolean column"),
        (pa.table({"aum": pa.array([1.0])}), "customer_id", "column required"),
        (pa.table({"customer_id": pa.array([1, None])}), "customer_id", "must not be null, row 1"),
        (pa.table({"customer_id": pa.array([1, -2])}), "customer_id", ">= 0"),
        (pa.table({"customer_id": pa.array(["1"])}), "customer_id", "must be an integer column"),
        (pa.table({"customer_id": pa.array([], pa.int64())}), "body", "must have 1 to 1000 rows, got 0"),
    ],
)
def test_bad_tables_name_the_column_and_reason(table, field, reason):
    with pytest.raises(ArrowRequestError) as info:
        _roundtrip(table)
    assert any(e["field"] == field and reason in e["reason"] for e in info.value.errors), info.value.errors
    assert info.value.status == 400 and field in str(info.value)


def test_every_bad_column_is_reported_at_once():
    table = _one(aum=pa.array(["x", "y", "z"]), region=pa.array(["mars"] * 3), shoe_size=pa.array([1, 2, 3]))
    with pytest.raises(ArrowRequestError) as info:
        _roundtrip(table)
    assert {e["field"] for e in info.value.errors} == {"aum", "region", "shoe_size"}


def test_bounds_of_the_registry_are_enforced():
    bounded = next(f for f in FEATURES if f.dtype == "float" and f.lower is not None)
    low = bounded.lower
    with pytest.raises(ArrowRequestError) as info:
        _roundtrip(_one(**{bounded.name: pa.array([low, low - 1.0, None])}))
    assert any(e["field"] == bounded.name and f">= {low}" in e["reason"] for e in info.value.errors)


def test_oversized_tables_are_rejected():
    table = pa.table({"customer_id": pa.array(np.arange(11), pa.int64())})
    with pytest.raises(ArrowRequestError, match="1 to 10 rows, got 11"):
        _roundtrip(table, max_batch=10)


@pytest.mark.parametrize("body", [b"", b"not arrow at all", b'{"customers": []}', b"\xff\xff\xff\xff\x10\x00\x00\x00"])
def test_a_body_that_is_not_an_arrow_stream_is_a_400(body):
    with pytest.raises(ArrowRequestError) as info:
        read_table(body)
    assert info.value.errors[0]["field"] == "body"
