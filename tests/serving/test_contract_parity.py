"""JSON and columns apply one rule set (issue #18, defects 7 and 9): whole numbers are exact in
both, and batch scoring (`clientlens score`) is as strict as the API, exit 2 naming file, column
and rule before any model is loaded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from clientlens.cli import app
from core.errors import InputError
from features.registry import FEATURES
from features.requests import ColumnErrors, check_feature_frame, table_to_columns
from serving.schemas import customer_model, score_request_model

WHOLE = next(f for f in FEATURES if f.dtype == "int")
NUMBER = next(f for f in FEATURES if f.dtype == "float")
CATEGORY = next(f for f in FEATURES if f.dtype == "category")
ScoreRequest = score_request_model(customer_model(FEATURES), max_batch=10)


@pytest.mark.parametrize("value", [1e-15, 2.0000001, 3.5])
def test_json_and_arrow_agree_that_a_fraction_is_not_a_whole_number(value):
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate({"customers": [{"customer_id": 1, WHOLE.name: value}]})
    assert info.value.errors()[0]["type"] == "multiple_of"
    with pytest.raises(ColumnErrors) as cols:
        table_to_columns(pa.table({"customer_id": [1], WHOLE.name: [value]}), FEATURES, 10)
    assert cols.value.errors[0]["type"] == "multiple_of"


def test_json_and_arrow_accept_the_same_whole_numbers():
    for value in (0.0, 3.0, 2.0**52):
        ScoreRequest.model_validate({"customers": [{"customer_id": 1, WHOLE.name: value}]})
        table_to_columns(pa.table({"customer_id": [1], WHOLE.name: [value]}), FEATURES, 10)


def _table(**columns) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 3], "as_of": pd.Timestamp("2025-06-30"), **columns})


@pytest.mark.parametrize(
    ("frame", "field", "rule"),
    [
        (_table(**{CATEGORY.name: [CATEGORY.categories[0], "martian", None]}), CATEGORY.name, "must be one of"),
        (_table(**{NUMBER.name: ["1.5", "abc", None]}), NUMBER.name, "must be a number column"),
        (_table(**{NUMBER.name: [1.5, "abc", None]}), NUMBER.name, "mixed or unsupported values"),
        (_table().drop(columns="customer_id"), "customer_id", "column required"),
        (_table().iloc[:0], "rows", "no rows"),
        (_table(customer_id=[1.0, None, 3.0]), "customer_id", "must be an integer column"),
    ],
    ids=["unknown-category", "strings", "mixed", "no-customer-id", "empty", "null-id"],
)
def test_batch_scoring_rejects_what_the_api_rejects(tmp_path, frame, field, rule):
    with pytest.raises(InputError) as info:
        check_feature_frame(frame, what="--features f.parquet")
    assert "f.parquet" in str(info.value) and field in str(info.value) and rule in str(info.value)
    path = tmp_path / "features.parquet"
    try:
        frame.to_parquet(path)
    except (pa.ArrowException, ValueError):  # mixed values cannot be Parquet; a CSV has them as text
        path = tmp_path / "features.csv"
        frame.to_csv(path, index=False)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["score", "--features", str(path), "--out", str(out), "--json"])
    assert result.exit_code == 2, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert str(path) in summary["error"] and field in summary["error"]
    assert not out.exists()


def test_a_feature_table_with_missing_values_and_extra_columns_passes():
    frame = _table(**{NUMBER.name: [1.0, np.nan, None], CATEGORY.name: [None, CATEGORY.categories[1], None]})
    frame["label_churn"] = [0, 1, 0]  # not a feature: ignored in a table
    check_feature_frame(frame, what="t")
