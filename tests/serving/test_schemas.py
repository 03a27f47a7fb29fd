"""The request model generated from the feature registry: typed, optional, strict, closed."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from features.registry import FEATURES, categorical_features, feature_names
from serving.schemas import (
    customer_model,
    customers_to_columns,
    score_ids_request_model,
    score_request_model,
)

Customer = customer_model(FEATURES)
ScoreRequest = score_request_model(Customer, max_batch=3)


def errors(payload: str) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate_json(payload)
    return info.value.errors()


def test_every_feature_is_an_optional_field():
    assert list(Customer.model_fields) == ["customer_id", *feature_names()]
    assert Customer.model_fields["customer_id"].is_required()
    assert not any(Customer.model_fields[name].is_required() for name in feature_names())


def test_schema_carries_types_categories_and_descriptions():
    schema = Customer.model_json_schema()
    region = schema["properties"]["region"]
    assert {"enum": ["metro", "urban", "suburban", "rural"], "type": "string"} in region["anyOf"]
    assert "Region" in region["description"]
    assert schema["additionalProperties"] is False


def test_a_customer_with_only_an_id_is_valid_and_all_missing():
    req = ScoreRequest.model_validate_json('{"customers": [{"customer_id": 7}]}')
    ids, cols = customers_to_columns(req.customers, FEATURES)
    assert ids.tolist() == [7]
    assert all(np.isnan(cols[n][0]) for n in feature_names() if n not in categorical_features())
    assert all(cols[n][0] is None for n in categorical_features())


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ('{"customers": [{"customer_id": 1, "aum": "12"}]}', "aum", "valid number"),
        ('{"customers": [{"customer_id": 1, "aum": NaN}]}', "aum", "finite"),
        ('{"customers": [{"customer_id": 1, "aum": Infinity}]}', "aum", "finite"),
        ('{"customers": [{"customer_id": 1, "aum": true}]}', "aum", "valid number"),
        ('{"customers": [{"customer_id": 1, "txn_count_30d": 2.5}]}', "txn_count_30d", "multiple of 1"),
        ('{"customers": [{"customer_id": 1, "payroll_at_bank": 1}]}', "payroll_at_bank", "valid boolean"),
        ('{"customers": [{"customer_id": 1, "region": "mars"}]}', "region", "'metro', 'urban', 'suburban' or 'rural'"),
        ('{"customers": [{"customer_id": 1, "favourite_colour": "red"}]}', "favourite_colour", "Extra inputs"),
        ('{"customers": [{"customer_id": "1"}]}', "customer_id", "valid integer"),
        ('{"customers": [{"customer_id": -1}]}', "customer_id", "greater than or equal to 0"),
        ('{"customers": [{"aum": 1.0}]}', "customer_id", "Field required"),
    ],
)
def test_bad_fields_are_named_with_a_reason(body, field, reason):
    errs = errors(body)
    assert any(e["loc"][-1] == field and reason in e["msg"] for e in errs), errs


def test_batches_are_bounded():
    assert errors('{"customers": []}')[0]["type"] == "too_short"
    body = '{"customers": [' + ",".join('{"customer_id": %d}' % i for i in range(4)) + "]}"
    assert errors(body)[0]["type"] == "too_long"


def test_whole_numbers_accept_integral_floats():
    req = ScoreRequest.model_validate_json(
        '{"customers": [{"customer_id": 1, "txn_count_30d": 3.0, "login_count_30d": 4}]}'
    )
    _, cols = customers_to_columns(req.customers, FEATURES)
    assert cols["txn_count_30d"][0] == 3.0 and cols["login_count_30d"][0] == 4.0


def test_columns_are_typed_as_the_model_reads_the_feature_table():
    body = (
        '{"customers": [{"customer_id": 1, "aum": 12.5, "payroll_at_bank": true, "region": "metro"},'
        ' {"customer_id": 2, "payroll_at_bank": false}]}'
    )
    ids, cols = customers_to_columns(ScoreRequest.model_validate_json(body).customers, FEATURES)
    assert ids.dtype == np.int64 and ids.tolist() == [1, 2]
    assert cols["aum"].dtype == np.float64 and cols["aum"][0] == 12.5 and np.isnan(cols["aum"][1])
    assert cols["payroll_at_bank"].tolist() == [1.0, 0.0]
    assert cols["region"].dtype == object and cols["region"].tolist() == ["metro", None]
    assert list(cols) == feature_names()


def test_score_ids_request():
    model = score_ids_request_model(max_batch=2)
    assert model.model_validate_json('{"customer_ids": [1, 2]}').customer_ids == [1, 2]
    for bad in ('{"customer_ids": []}', '{"customer_ids": [1, 2, 3]}', '{"customer_ids": ["x"]}', '{"ids": [1]}'):
        with pytest.raises(ValidationError):
            model.model_validate_json(bad)
