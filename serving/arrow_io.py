"""Columnar bulk scoring: an Arrow IPC stream in, an Arrow IPC stream (or JSON) out.

`POST /score` takes JSON records, which is what a CRM or an advisor tool sends one customer at a
time; for a campaign engine scoring its book in batches, parsing and validating 146 JSON fields
per customer costs more than the three models (about 70 ms per 1,000 customers, benchmarks/
RESULTS.md "Serving"). `POST /score_arrow` takes the same features as an Arrow table, one column
per feature (`application/vnd.apache.arrow.stream`), and validates whole columns at once with the
same rules as the JSON request model (`serving.schemas`):

- `customer_id` is required: an integer column without nulls, 0 ≤ id ≤ 2^63 − 1;
- every feature column is optional, and a null is a missing value (exactly as `null` in JSON);
  unknown columns are rejected;
- numeric features take integer or floating-point columns (not strings, not booleans), finite
  values only (NaN and ±inf are rejected: send null), whole numbers for `int` features, within
  the registry's bounds;
- boolean features take boolean columns; category features string (or dictionary-of-string)
  columns with values from the registry's categories;
- 1 to `max_batch_size()` rows.

Errors are collected over all columns and returned as one 400 naming each column, the reason
and the first offending rows. The response is an Arrow stream when the request's `Accept`
asks for one (columns as `training.scoring.score_columns` returns them, plus `customer_id`;
`request_id` and the model versions in the schema metadata), else the JSON body of `/score`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.schemas import MAX_CUSTOMER_ID, MAX_SAFE_INT, FeatureLike, _bounds, summarise_errors

ARROW_STREAM = "application/vnd.apache.arrow.stream"
SHOWN_ROWS = 5


class ArrowRequestError(ValueError):
    """A request the service rejects with `status`; `errors` lists `{field, reason, type}`."""

    def __init__(self, errors: list[dict[str, str]], status: int = 400):
        self.errors = errors
        self.status = status
        super().__init__(summarise_errors(errors))

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "errors": self.errors}


def _rows(mask: np.ndarray) -> str:
    bad = np.flatnonzero(mask)
    listed = ", ".join(str(i) for i in bad[:SHOWN_ROWS])
    return (
        f"row {listed}"
        if len(bad) == 1
        else f"rows {listed}{', ...' if len(bad) > SHOWN_ROWS else ''} ({len(bad)} rows)"
    )


def read_table(body: bytes) -> pa.Table:
    """The request body as an Arrow table (400 when it is not an Arrow IPC stream)."""
    if not body:
        raise ArrowRequestError(
            [{"field": "body", "reason": "empty body: send an Arrow IPC stream", "type": "missing"}]
        )
    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            return reader.read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = f"not an Arrow IPC stream ({ARROW_STREAM}): {str(exc).splitlines()[0][:200]}"
        raise ArrowRequestError([{"field": "body", "reason": reason, "type": "arrow_invalid"}]) from None


def _numeric(name: str, col: pa.ChunkedArray, feature: FeatureLike, errors: list) -> np.ndarray | None:
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        errors.append({"field": name, "reason": f"must be a number column, got {t}", "type": "type_error"})
        return None
    values = col.to_numpy(zero_copy_only=False)
    values = values.astype(np.float64) if values.dtype != np.float64 else values
    missing = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
    if missing is not None:
        values = values.copy()
        values[missing] = np.nan
    present = np.ones(len(values), dtype=bool) if missing is None else ~missing
    if pa.types.is_floating(t):
        bad = present & ~np.isfinite(values)
        if bad.any():
            errors.append({"field": name, "reason": f"must be finite (send null for missing), {_rows(bad)}",
                           "type": "finite_number"})  # fmt: skip
            return None
    bounds = _bounds(feature)
    if feature.dtype == "int":
        bounds.setdefault("ge", -MAX_SAFE_INT)
        bounds.setdefault("le", MAX_SAFE_INT)
        with np.errstate(invalid="ignore"):
            bad = present & (values != np.floor(values))
        if bad.any():
            errors.append({"field": name, "reason": f"must be a whole number, {_rows(bad)}", "type": "multiple_of"})
    with np.errstate(invalid="ignore"):
        if "ge" in bounds and (bad := present & (values < bounds["ge"])).any():
            errors.append(
                {"field": name, "reason": f"must be >= {bounds['ge']}, {_rows(bad)}", "type": "greater_than_equal"}
            )
        if "le" in bounds and (bad := present & (values > bounds["le"])).any():
            errors.append(
                {"field": name, "reason": f"must be <= {bounds['le']}, {_rows(bad)}", "type": "less_than_equal"}
            )
    return values


def _boolean(name: str, col: pa.ChunkedArray, errors: list) -> np.ndarray | None:
    if not pa.types.is_boolean(col.type):
        errors.append({"field": name, "reason": f"must be a boolean column, got {col.type}", "type": "bool_type"})
        return None
    values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)  # None -> nan for nulls
    return values


def _category(name: str, col: pa.ChunkedArray, feature: FeatureLike, errors: list) -> np.ndarray | None:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        errors.append({"field": name, "reason": f"must be a string column, got {t}", "type": "string_type"})
        return None
    allowed = pa.array(list(feature.categories or ()), type=t)
    known = pc.is_in(col, value_set=allowed).to_numpy(zero_copy_only=False)
    present = col.is_valid().to_numpy(zero_copy_only=False)
    bad = present & ~known
    if bad.any():
        choices = ", ".join(repr(c) for c in feature.categories or ())
        errors.append({"field": name, "reason": f"must be one of {choices}, {_rows(bad)}", "type": "literal_error"})
        return None
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def table_to_columns(
    table: pa.Table, features: Sequence[FeatureLike], max_batch: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Validated customer ids and one array per feature, typed exactly as `customers_to_columns`
    types the JSON request (floats with NaN for missing, categories as objects with None)."""
    errors: list[dict[str, str]] = []
    n = table.num_rows
    by_name = {f.name: f for f in features}
    names = table.column_names
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        errors.append({"field": ", ".join(dupes), "reason": "duplicate column", "type": "duplicate"})
    unknown = [c for c in names if c != "customer_id" and c not in by_name]
    if unknown:
        errors.append({"field": ", ".join(unknown[:10]), "reason": "unknown column (not a feature of the registry)",
                       "type": "extra_forbidden"})  # fmt: skip
    if not 1 <= n <= max_batch:
        errors.append({"field": "body", "reason": f"must have 1 to {max_batch} rows, got {n}", "type": "length"})
    ids = None
    if "customer_id" not in names:
        errors.append({"field": "customer_id", "reason": "column required", "type": "missing"})
    elif not dupes:
        col = table.column("customer_id")
        if not pa.types.is_integer(col.type):
            errors.append(
                {"field": "customer_id", "reason": f"must be an integer column, got {col.type}", "type": "int_type"}
            )
        elif col.null_count:
            errors.append({"field": "customer_id", "reason": f"must not be null, {_rows(col.is_null().to_numpy(zero_copy_only=False))}",
                           "type": "missing"})  # fmt: skip
        else:
            raw = col.to_numpy(zero_copy_only=False)
            bad = (raw < 0) if raw.dtype.kind == "i" else (raw > MAX_CUSTOMER_ID)
            if bad.any():
                errors.append({"field": "customer_id", "reason": f"must be >= 0 and <= {MAX_CUSTOMER_ID}, {_rows(bad)}",
                               "type": "range"})  # fmt: skip
            else:
                ids = raw.astype(np.int64)
    columns: dict[str, np.ndarray] = {}
    if not dupes and n > 0:
        for f in features:
            if f.name not in names:
                columns[f.name] = np.full(n, np.nan) if f.dtype != "category" else np.full(n, None, dtype=object)
                continue
            col = table.column(f.name)
            if f.dtype == "category":
                values = _category(f.name, col, f, errors)
            elif f.dtype == "bool":
                values = _boolean(f.name, col, errors)
            else:
                values = _numeric(f.name, col, f, errors)
            if values is not None:
                columns[f.name] = values
    if errors:
        raise ArrowRequestError(errors)
    return ids, columns


def results_table(ids: np.ndarray, out: Mapping[str, Any], request_id: str, versions: Mapping[str, str]) -> bytes:
    """`score_columns` output as an Arrow IPC stream (reasons, if any, as JSON strings per row)."""
    arrays: dict[str, Any] = {"customer_id": pa.array(ids, type=pa.int64())}
    for name, values in out.items():
        if name.startswith("reasons_"):
            arrays[name] = pa.array([json.dumps(r) for r in values], type=pa.string())
        elif isinstance(values, np.ndarray) and values.dtype == object:
            arrays[name] = pa.array(values.tolist(), type=pa.string())
        else:
            arrays[name] = pa.array(values)
    metadata = {"request_id": request_id, "versions": json.dumps(dict(versions))}
    return to_arrow_stream(pa.table(arrays).replace_schema_metadata(metadata))


def request_table(frame, features: Sequence[FeatureLike] | None = None) -> pa.Table:
    """A feature frame (e.g. `latest.parquet`) as the table `/score_arrow` takes: `customer_id` and
    every registry feature the frame has, numbers as float64, booleans as bool, categories as
    strings; NaN and None become nulls."""
    if features is None:
        from features.registry import FEATURES as features
    arrays = {"customer_id": pa.array(np.asarray(frame["customer_id"], dtype=np.int64))}
    for f in features:
        if f.name not in frame:
            continue
        values = frame[f.name]
        if f.dtype == "category":
            arrays[f.name] = pa.array(values.astype(object).where(values.notna(), None).tolist(), type=pa.string())
        elif f.dtype == "bool":
            arrays[f.name] = pa.array(values.astype(object).where(values.notna(), None).tolist(), type=pa.bool_())
        else:
            arrays[f.name] = pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)
    return pa.table(arrays)


def to_arrow_stream(table: pa.Table) -> bytes:
    """A table as the request body `/score_arrow` takes (for clients, tests and the benchmark)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
