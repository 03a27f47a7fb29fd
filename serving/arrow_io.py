"""Columnar bulk scoring: an Arrow IPC stream in, an Arrow IPC stream (or JSON) out.

`POST /score` takes JSON records, which is what a CRM or an advisor tool sends one customer at a
time; for a campaign engine scoring its book in batches, parsing and validating 146 JSON fields
per customer costs more than the three models (about 70 ms per 1,000 customers, benchmarks/
RESULTS.md "Serving"). `POST /score_arrow` takes the same features as an Arrow table, one column
per feature (`application/vnd.apache.arrow.stream`), and validates whole columns at once with the
same rules as the JSON request model (`serving.schemas`): the column-wise contract of
`features.requests.table_to_columns` (which batch scoring applies too), with unknown columns
rejected, NaN and ±inf rejected (send null for missing) and 1 to `Settings.max_batch` rows.

The body must be exactly one Arrow IPC stream, and every record batch is validated in full
before any value is read (`read_table`): pyarrow does not check offsets or dictionary indices
of what it reads, and a crafted buffer would otherwise be read out of bounds by the worker.

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

from features.requests import ColumnErrors, FeatureLike, table_to_columns

__all__ = [
    "ARROW_STREAM",
    "ArrowRequestError",
    "read_table",
    "request_table",
    "results_table",
    "table_to_columns",
    "to_arrow_stream",
]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ArrowRequestError = ColumnErrors  # a request the service rejects with `.status` (400)


def _invalid_body(detail: str) -> ArrowRequestError:
    reason = f"not an Arrow IPC stream ({ARROW_STREAM}): {detail.splitlines()[0][:200] if detail else 'unreadable'}"
    return ArrowRequestError([{"field": "body", "reason": reason, "type": "arrow_invalid"}])


def read_table(body: bytes) -> pa.Table:
    """The request body as an Arrow table (400 when it is not exactly one valid Arrow IPC stream).

    pyarrow's IPC reader trusts the buffers it is given: a patched offset or dictionary index
    would be read out of bounds by the first kernel that touches the column (a crashed worker).
    So every record batch is validated in full (offsets, UTF-8, dictionary indices) before
    any value is read, and bytes after the stream's end marker (a second stream) are refused
    rather than silently ignored."""
    if not body:
        raise ArrowRequestError(
            [{"field": "body", "reason": "empty body: send an Arrow IPC stream", "type": "missing"}]
        )
    source = pa.BufferReader(pa.py_buffer(body))
    try:
        with pa.ipc.open_stream(source) as reader:
            schema = reader.schema
            schema.names  # noqa: B018 (decodes every field name: UnicodeDecodeError if not UTF-8)
            batches = []
            for batch in reader:
                batch.validate(full=True)
                batches.append(batch)
        table = pa.Table.from_batches(batches, schema=schema)
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _invalid_body(str(exc)) from None
    if source.tell() != len(body):
        raise _invalid_body(
            f"{len(body) - source.tell()} bytes after the end of the stream (send one stream per request)"
        )
    return table


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
        from features.registry import FEATURES

        features = FEATURES
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
