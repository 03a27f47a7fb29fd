"""The one column-wise contract a table of features must meet before any model scores it.

Driven by the feature registry and used wherever customers are scored from columns: the
service's `POST /score_arrow` (`serving.arrow_io`) and batch scoring (`clientlens score`,
`training.scoring.score_file`). The JSON API applies the same rules field by field (its pydantic
request model, `serving.schemas`); `tests/serving/test_arrow_io.py` checks the two agree.

- `customer_id` is required: an integer column without nulls, 0 <= id <= 2^63 - 1;
- every feature column is optional, and a null is a missing value; unknown columns are
  rejected (`extra="forbid"`, the API) or ignored (`extra="ignore"`, a feature table that also
  carries `as_of` or labels);
- numeric features take integer or floating-point columns (not strings, not booleans), finite
  values only (NaN counts as missing in a feature table, and is rejected in a request where
  missing is spelled null), whole numbers for `int` features, within the registry's bounds;
- boolean features take boolean columns; category features string (or dictionary-of-string)
  columns whose values are among the registry's categories (an unknown category is an error,
  never silently scored as missing);
- at least one row, and at most `max_rows` when given.

Errors are collected over all columns and raised together (`ColumnErrors`), each naming the
column, the rule and the first offending rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InputError

MAX_SAFE_INT = 2**53  # integers beyond this lose precision once LightGBM sees them as doubles
MAX_CUSTOMER_ID = 2**63 - 1
SHOWN_ROWS = 5


class FeatureLike(Protocol):
    """What the contract needs from a `features.registry.Feature` (read-only)."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...  # "float" | "int" | "category" | "bool"
    @property
    def description(self) -> str: ...
    @property
    def categories(self) -> Sequence[str] | None: ...
    @property
    def lower(self) -> float | None: ...
    @property
    def upper(self) -> float | None: ...


def summarise_errors(errors: Sequence[dict[str, str]], shown: int = 10) -> str:
    """`invalid request: <field>: <reason>; ...` for `{field, reason, type}` items (the first `shown`)."""
    listed = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:shown])
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return f"invalid request: {listed}{more}"


class ColumnErrors(ValueError):
    """Columns that break the contract; `errors` lists `{field, reason, type}`; `status` is the
    HTTP status the service answers with."""

    def __init__(self, errors: list[dict[str, str]], status: int = 400):
        self.errors = errors
        self.status = status
        super().__init__(summarise_errors(errors))

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "errors": self.errors}


def bounds(feature: FeatureLike) -> dict[str, float]:
    """The registry's bounds of a feature as `{"ge": lower, "le": upper}` (whole-number features
    are also kept within +-2^53, the integers a double holds exactly)."""
    out: dict[str, float] = {}
    if feature.lower is not None:
        out["ge"] = feature.lower
    if feature.upper is not None:
        out["le"] = feature.upper
    if feature.dtype == "int":
        out.setdefault("ge", -MAX_SAFE_INT)
        out.setdefault("le", MAX_SAFE_INT)
    return out


def is_whole(value: float) -> bool:
    """Exactly a whole number (1e-15 is not: no tolerance, the same rule for JSON and columns)."""
    return float(value).is_integer()


def _rows(mask: np.ndarray) -> str:
    bad = np.flatnonzero(mask)
    listed = ", ".join(str(i) for i in bad[:SHOWN_ROWS])
    return (
        f"row {listed}"
        if len(bad) == 1
        else f"rows {listed}{', ...' if len(bad) > SHOWN_ROWS else ''} ({len(bad)} rows)"
    )


def _numeric(
    name: str, col: pa.ChunkedArray, feature: FeatureLike, errors: list, nan_is_missing: bool
) -> np.ndarray | None:
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
        if nan_is_missing:
            present &= ~np.isnan(values)
        bad = present & ~np.isfinite(values)
        if bad.any():
            hint = "" if nan_is_missing else " (send null for missing)"
            errors.append({"field": name, "reason": f"must be finite{hint}, {_rows(bad)}", "type": "finite_number"})
            return None
    limits = bounds(feature)
    if feature.dtype == "int":
        with np.errstate(invalid="ignore"):
            bad = present & (values != np.floor(values))
        if bad.any():
            errors.append({"field": name, "reason": f"must be a whole number, {_rows(bad)}", "type": "multiple_of"})
    with np.errstate(invalid="ignore"):
        if "ge" in limits and (bad := present & (values < limits["ge"])).any():
            errors.append(
                {"field": name, "reason": f"must be >= {limits['ge']}, {_rows(bad)}", "type": "greater_than_equal"}
            )
        if "le" in limits and (bad := present & (values > limits["le"])).any():
            errors.append(
                {"field": name, "reason": f"must be <= {limits['le']}, {_rows(bad)}", "type": "less_than_equal"}
            )
    return values


def _boolean(name: str, col: pa.ChunkedArray, errors: list) -> np.ndarray | None:
    if not pa.types.is_boolean(col.type):
        errors.append({"field": name, "reason": f"must be a boolean column, got {col.type}", "type": "bool_type"})
        return None
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)  # None -> nan for nulls


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


def _customer_ids(col: pa.ChunkedArray, errors: list) -> np.ndarray | None:
    if not pa.types.is_integer(col.type):
        errors.append(
            {"field": "customer_id", "reason": f"must be an integer column, got {col.type}", "type": "int_type"}
        )
        return None
    if col.null_count:
        rows = _rows(col.is_null().to_numpy(zero_copy_only=False))
        errors.append({"field": "customer_id", "reason": f"must not be null, {rows}", "type": "missing"})
        return None
    raw = col.to_numpy(zero_copy_only=False)
    bad = (raw < 0) if raw.dtype.kind == "i" else (raw > MAX_CUSTOMER_ID)
    if bad.any():
        errors.append({"field": "customer_id", "reason": f"must be >= 0 and <= {MAX_CUSTOMER_ID}, {_rows(bad)}",
                       "type": "range"})  # fmt: skip
        return None
    return raw.astype(np.int64)


def table_to_columns(
    table: pa.Table,
    features: Sequence[FeatureLike],
    max_rows: int | None = None,
    *,
    extra: Literal["forbid", "ignore"] = "forbid",
    nan_is_missing: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Validated customer ids and one array per feature (floats with NaN for missing, categories
    as objects with None), typed exactly as `serving.schemas.customers_to_columns` types the
    JSON request. Raises `ColumnErrors` listing every broken rule."""
    errors: list[dict[str, str]] = []
    n = table.num_rows
    by_name = {f.name: f for f in features}
    names = table.column_names
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        errors.append({"field": ", ".join(dupes), "reason": "duplicate column", "type": "duplicate"})
    unknown = [c for c in names if c != "customer_id" and c not in by_name]
    if unknown and extra == "forbid":
        errors.append({"field": ", ".join(unknown[:10]), "reason": "unknown column (not a feature of the registry)",
                       "type": "extra_forbidden"})  # fmt: skip
    if max_rows is not None and not 1 <= n <= max_rows:
        errors.append({"field": "body", "reason": f"must have 1 to {max_rows} rows, got {n}", "type": "length"})
    elif n < 1:
        errors.append({"field": "rows", "reason": "no rows: nothing to score", "type": "length"})
    ids = None
    if "customer_id" not in names:
        errors.append({"field": "customer_id", "reason": "column required", "type": "missing"})
    elif not dupes:
        ids = _customer_ids(table.column("customer_id"), errors)
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
                values = _numeric(f.name, col, f, errors, nan_is_missing)
            if values is not None:
                columns[f.name] = values
    if errors:
        raise ColumnErrors(errors)
    assert ids is not None
    return ids, columns


def frame_to_table(frame: Any) -> pa.Table:
    """A pandas feature frame as an Arrow table, column by column, so a column pandas holds as
    mixed Python objects (e.g. numbers and strings from a CSV) is reported by name."""
    errors: list[dict[str, str]] = []
    arrays: dict[str, pa.Array] = {}
    names = [str(c) for c in frame.columns]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise ColumnErrors([{"field": ", ".join(dupes), "reason": "duplicate column", "type": "duplicate"}])
    for name in names:
        try:
            arrays[name] = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            reason = f"mixed or unsupported values ({str(exc).splitlines()[0][:120]})"
            errors.append({"field": name, "reason": reason, "type": "type_error"})
    if errors:
        raise ColumnErrors(errors)
    return pa.table(arrays) if arrays else pa.table({})


def check_feature_frame(frame: Any, features: Sequence[FeatureLike] | None = None, *, what: str) -> None:
    """Batch scoring's gate: the frame meets the contract (extra columns such as `as_of` are
    ignored, NaN counts as missing), else `InputError` naming `what` (the file), each column and
    rule."""
    if features is None:
        from features.registry import FEATURES

        features = FEATURES
    try:
        table_to_columns(frame_to_table(frame), features, extra="ignore", nan_is_missing=True)
    except ColumnErrors as exc:
        raise InputError(f"{what}: {str(exc).removeprefix('invalid request: ')}") from None
