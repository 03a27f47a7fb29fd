"""The raw data contract (DESIGN §3): five tables and the optional suitability reviews, typed and checked on read.

Every table a bank hands over is checked once, at the edge, before any feature is built:
columns and dtypes (a pandera schema per table), nulls, unique keys, value ranges,
closed vocabularies (`features.vocab`), dates in a sane range and referential integrity
(every `customer_id` exists in `customers`). A violation raises `InputError` whose message
names the table, the column, the rule and a few offending rows; nothing is returned.

Checks are vectorised numpy/pandas over whole columns (pandera's own value checks are
row-wise Python on large frames, too slow at tens of millions of rows), so pandera is used
for what it is good at: the declared structure (columns, dtypes, nullability).

Entry points: `read_raw` (a folder, or one customer range of it), `validate_frame` (an
in-memory frame), `validate_raw` (a whole folder in customer batches, bounded memory; what
`clientlens validate` runs) and `read_truth` (simulator only). `open_table_file` (the checks a
file must pass before any row is read: a file, not empty, not truncated, unique column names,
ids and times of the right kind, timestamps that fit nanoseconds) and `customer_ids` (the checked
id column) are what `features.panel` reads through too, so `clientlens features` refuses exactly
what `clientlens validate` refuses.

Frames come back normalised: integer ids int64, times datetime64[ns] (tz-naive), string
columns pandas `category` (categories = the vocabulary, in vocabulary order, for closed
vocabularies; observed values for open ones such as `product_id`), rows sorted by
`customer_id` then time with a fresh RangeIndex.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from core.errors import InputError
from features import vocab

log = logging.getLogger(__name__)

Kind = Literal["int", "float", "datetime", "bool", "category"]

MIN_DATE = pd.Timestamp("1900-01-01")
FUTURE_MARGIN = pd.Timedelta(days=45)
"""Timestamps may run this far past the last market date (month-end snapshots, late postings)."""
EXAMPLES = 5
EMPTY_MARKET = "%s: the market table has no rows: every market feature (and the market-response features) will be NaN"


@dataclass(frozen=True)
class Column:
    """One column of the contract."""

    name: str
    kind: Kind
    nullable: bool = False
    categories: tuple[str, ...] | None = None  # closed vocabulary (None: open, e.g. product_id)
    gt: float | None = None
    ge: float | None = None
    le: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """A raw table: columns, key, and whether a bank's folder must have it."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    key_unique: bool = True
    required: bool = False
    time_column: str | None = None  # rows sorted by customer_id then this

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _cat(name: str, values: Sequence[str], nullable: bool = False) -> Column:
    return Column(name, "category", nullable=nullable, categories=tuple(values))


SPECS: dict[str, TableSpec] = {
    "customers": TableSpec(
        "customers",
        (
            Column("customer_id", "int", ge=0),
            Column("birth_date", "datetime"),
            Column("onboard_date", "datetime"),
            _cat("occupation", vocab.OCCUPATIONS),
            _cat("region", vocab.REGIONS),
            _cat("income_band", vocab.INCOME_BANDS),
            _cat("stated_risk", vocab.RISK_CLASSES),
            Column("risk_assessed_on", "datetime", nullable=True),
            Column("is_business_owner", "bool"),
            Column("payroll_at_bank", "bool"),
        ),
        key=("customer_id",),
        required=True,
    ),
    "holdings": TableSpec(
        "holdings",
        (
            Column("customer_id", "int", ge=0),
            Column("snapshot_date", "datetime"),
            Column("product_id", "category"),
            _cat("product_type", vocab.PRODUCT_TYPES),
            _cat("risk_level", vocab.RISK_LEVELS),
            Column("market_value", "float", ge=0.0),
            Column("is_liability", "bool"),
        ),
        key=("customer_id", "snapshot_date", "product_id"),
        time_column="snapshot_date",
    ),
    "transactions": TableSpec(
        "transactions",
        (
            Column("txn_id", "int"),
            Column("customer_id", "int", ge=0),
            Column("ts", "datetime"),
            Column("amount", "float", gt=0.0),
            _cat("direction", vocab.DIRECTIONS),
            _cat("channel", vocab.CHANNELS),
            _cat("category", vocab.TXN_CATEGORIES),
            _cat("counterparty", vocab.COUNTERPARTIES),
            _cat("product_type", vocab.PRODUCT_TYPES, nullable=True),
        ),
        key=("txn_id",),
        time_column="ts",
    ),
    "events": TableSpec(
        "events",
        (
            Column("customer_id", "int", ge=0),
            Column("ts", "datetime"),
            _cat("event_type", vocab.EVENT_TYPES),
            _cat("topic", vocab.TOPICS, nullable=True),
        ),
        # Several events can share a second; the key must be present but need not be unique.
        key=("customer_id", "ts"),
        key_unique=False,
        time_column="ts",
    ),
    "market": TableSpec(
        "market",
        (
            Column("date", "datetime"),
            Column("equity_index", "float", gt=0.0),
            Column("deposit_rate_1y", "float", ge=-5.0, le=50.0),
        ),
        key=("date",),
    ),
    # #12: an advisor's periodic suitability review (MiFID II): the customer's risk class as re-assessed in
    # conversation, far less biased than the onboarding questionnaire. Optional; only the risk posterior's fit
    # reads it (as `reviewed_risk` known at T), never a booster.
    "suitability_reviews": TableSpec(
        "suitability_reviews",
        (
            Column("customer_id", "int", ge=0),
            Column("reviewed_at", "datetime"),
            _cat("reviewed_risk", vocab.RISK_CLASSES),
        ),
        key=("customer_id", "reviewed_at"),
        time_column="reviewed_at",
    ),
}
REFERENCING_TABLES = ("holdings", "transactions", "events", "suitability_reviews")
"""Tables whose every `customer_id` must exist in customers (referential integrity)."""

_PANDERA_DTYPE = {
    "int": "int64",
    "float": "float64",
    "datetime": "datetime64[ns]",
    "bool": "bool",
    "category": "category",
}


def pandera_schema(table: str) -> pa.DataFrameSchema:
    """The declared structure of `table` (columns, dtypes, nullability) as a pandera schema.

    Value rules (ranges, vocabularies, keys, dates, referential integrity) are checked by
    `validate_frame` with vectorised code; see the module docstring for why.
    """
    spec = SPECS[table]
    return pa.DataFrameSchema(
        {c.name: pa.Column(_PANDERA_DTYPE[c.kind], nullable=c.nullable) for c in spec.columns},
        strict=False,
        name=table,
    )


# ---------------------------------------------------------------- violations


@dataclass
class Violation:
    """One broken rule: where, which rule, how many rows, a few examples."""

    table: str
    column: str
    rule: str
    n_bad: int
    n_rows: int
    examples: pd.DataFrame | None = None

    def describe(self) -> str:
        if self.n_rows == 0:
            return f"{self.table}.{self.column}: rule '{self.rule}' fails: the table has no rows"
        head = f"{self.table}.{self.column}: rule '{self.rule}' fails for {self.n_bad:,} of {self.n_rows:,} rows"
        if self.examples is None or self.examples.empty:
            return head
        body = self.examples.to_string(max_colwidth=40)
        return head + ", e.g.\n" + "\n".join("    " + line for line in body.splitlines())


@dataclass
class _Report:
    violations: list[Violation] = field(default_factory=list)

    def add(self, table: str, column: str, rule: str, df: pd.DataFrame, bad: np.ndarray | pd.Series) -> None:
        bad = np.asarray(bad, dtype=bool)
        n_bad = int(bad.sum())
        if n_bad:
            idx = np.flatnonzero(bad)[:EXAMPLES]
            self.violations.append(Violation(table, column, rule, n_bad, len(df), df.iloc[idx]))

    def raise_if_any(self) -> None:
        if self.violations:
            lines = [v.describe() for v in self.violations]
            n = len(lines)
            raise InputError(f"raw data violates the contract ({n} problem{'s' * (n > 1)}):\n- " + "\n- ".join(lines))


class RawTables(dict[str, pd.DataFrame]):
    """`read_raw`'s result: a dict table -> frame, plus the optional tables that were missing."""

    def __init__(self, frames: dict[str, pd.DataFrame], missing: list[str]):
        super().__init__(frames)
        self.missing = missing

    @property
    def rows(self) -> dict[str, int]:
        return {t: len(df) for t, df in self.items()}


# ---------------------------------------------------------------- per-table checks


def _normalise_column(table: str, col: Column, s: pd.Series, report: _Report, df: pd.DataFrame) -> pd.Series | None:
    """Bring a compatible dtype to the contract's (int64, float64, ns, bool, category); None if incompatible."""
    dt = s.dtype
    expected = {"int": "integer", "float": "float", "datetime": "datetime", "bool": "bool", "category": "string"}[
        col.kind
    ]

    def wrong() -> None:
        report.violations.append(
            Violation(
                table,
                col.name,
                f"dtype is {expected}",
                len(df),
                len(df),
                pd.DataFrame({col.name: s.iloc[:EXAMPLES], "dtype": str(dt)}),
            )
        )

    if col.kind == "int":
        if pd.api.types.is_integer_dtype(dt):
            if s.hasnans:
                return s  # nullable Int64 with nulls: the null check reports it
            return s.astype(np.int64, copy=False)
        if pd.api.types.is_float_dtype(dt) and s.hasnans:
            # Parquet ints with nulls arrive as floats: the real problem is the nulls
            non_null = s.dropna()
            if (non_null == np.floor(non_null)).all():
                report.add(table, col.name, "not null", df, s.isna().to_numpy())
                return None
        wrong()
        return None
    if col.kind == "float":
        if pd.api.types.is_float_dtype(dt) or pd.api.types.is_integer_dtype(dt):
            return s.astype(np.float64, copy=False)
        wrong()
        return None
    if col.kind == "datetime":
        if isinstance(dt, pd.DatetimeTZDtype):
            return s.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
        if pd.api.types.is_datetime64_dtype(dt):
            return s.astype("datetime64[ns]", copy=False)
        wrong()
        return None
    if col.kind == "bool":
        if pd.api.types.is_bool_dtype(dt):
            return s if s.hasnans else s.astype(bool, copy=False)
        if pd.api.types.is_object_dtype(dt) and s.hasnans and s.dropna().map(type).isin([bool, np.bool_]).all():
            # Parquet booleans with nulls arrive as objects: the real problem is the nulls
            report.add(table, col.name, "not null", df, s.isna().to_numpy())
            return None
        wrong()
        return None
    # category: strings held as category, object or string dtype
    if isinstance(dt, pd.CategoricalDtype):
        if (
            len(dt.categories)
            and not pd.api.types.is_string_dtype(dt.categories.dtype)
            and not pd.api.types.is_object_dtype(dt.categories.dtype)
        ):
            wrong()
            return None
        cat = s
    elif pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt):
        # object columns: accept only strings (check a sample cheaply, then every distinct value)
        sample = s.iloc[:1000].dropna()
        if len(sample) and not all(isinstance(v, str) for v in sample):
            wrong()
            return None
        cat = s.astype("category")
        if not all(isinstance(v, str) for v in cat.cat.categories):
            wrong()
            return None
    else:
        wrong()
        return None
    if col.categories is not None:
        unknown = [c for c in cat.cat.categories if c not in col.categories]
        if unknown:
            report.add(table, col.name, f"value in vocabulary {list(col.categories)}", df, cat.isin(unknown))
            return None
        cat = cat.cat.set_categories(list(col.categories))
    return cat


def _check_frame(table: str, df: pd.DataFrame, report: _Report, max_date: pd.Timestamp | None) -> pd.DataFrame | None:
    """Normalise and check one table; append violations to `report`; None if it is unusable."""
    spec = SPECS[table]
    missing = [c for c in spec.column_names if c not in df.columns]
    if missing:
        for c in missing:
            report.violations.append(
                Violation(
                    table,
                    c,
                    "column present",
                    len(df),
                    len(df),
                    pd.DataFrame({"columns found": [", ".join(map(str, df.columns))]}),
                )
            )
        return None
    _check_not_empty(table, df, report)
    extra = [c for c in df.columns if c not in spec.column_names]
    if extra:
        log.info("%s: ignoring columns outside the contract: %s", table, extra)
    out: dict[str, pd.Series] = {}
    before = len(report.violations)
    frame = df if list(df.columns) == spec.column_names else df[spec.column_names]
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        frame = frame.reset_index(drop=True)
    for col in spec.columns:
        s = _normalise_column(table, col, frame[col.name], report, frame)
        if s is not None:
            out[col.name] = s
    if len(report.violations) > before:
        return None
    frame = pd.DataFrame(out, copy=False)

    # Structure: dtypes and nulls, via the pandera schema.
    try:
        pandera_schema(table).validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
            index = pd.to_numeric(group["index"], errors="coerce").dropna().astype(np.int64).to_numpy()
            bad = np.zeros(len(frame), dtype=bool)
            bad[index[index < len(frame)]] = True
            if bad.any():
                report.add(table, str(column), "not null" if "null" in str(check) else str(check), frame, bad)
            else:
                report.violations.append(Violation(table, str(column), str(check), len(group), len(frame)))
        return None

    # Value ranges.
    for col in spec.columns:
        s = frame[col.name]
        if col.gt is not None:
            report.add(table, col.name, f"{col.name} > {col.gt:g}", frame, ~(s > col.gt) & s.notna())
        if col.ge is not None:
            report.add(table, col.name, f"{col.name} >= {col.ge:g}", frame, ~(s >= col.ge) & s.notna())
        if col.le is not None:
            report.add(table, col.name, f"{col.name} <= {col.le:g}", frame, ~(s <= col.le) & s.notna())
        if col.kind == "float":
            report.add(table, col.name, f"{col.name} is finite", frame, np.isinf(s.to_numpy()))
        if col.kind == "datetime":
            v = s.to_numpy()
            report.add(table, col.name, f"{col.name} >= {MIN_DATE.date()}", frame, v < MIN_DATE.to_datetime64())
            if max_date is not None and table != "market":
                limit = max_date + FUTURE_MARGIN
                report.add(
                    table,
                    col.name,
                    f"{col.name} <= {limit.date()} (last market date + {FUTURE_MARGIN.days} days)",
                    frame,
                    v > limit.to_datetime64(),
                )
    if table == "customers":
        report.add(
            table,
            "birth_date",
            "birth_date < onboard_date",
            frame,
            (frame["birth_date"] >= frame["onboard_date"]).to_numpy(),
        )
        report.add(
            table,
            "risk_assessed_on",
            "risk_assessed_on >= birth_date",
            frame,
            (frame["risk_assessed_on"] < frame["birth_date"]).to_numpy(),
        )

    # Keys.
    if spec.key_unique:
        report.add(
            table, "+".join(spec.key), f"unique key ({', '.join(spec.key)})", frame, _duplicated(frame, spec.key)
        )

    # Order: by customer_id then time (market: by date), stably.
    return _sorted(frame, spec)


def _duplicated(frame: pd.DataFrame, key: tuple[str, ...]) -> np.ndarray:
    """Rows whose key occurs more than once (all of them), with a fast path for sorted ids."""
    if len(key) == 1:
        v = frame[key[0]].to_numpy()
        if len(v) < 2 or bool(np.all(v[1:] > v[:-1])):
            return np.zeros(len(v), dtype=bool)
    return frame.duplicated(subset=list(key), keep=False).to_numpy()


def _sorted(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    if spec.name == "market":
        keys = ["date"]
    elif spec.time_column is None:
        keys = ["customer_id"]
    else:
        keys = ["customer_id", spec.time_column]
    first = frame[keys[0]].to_numpy()
    if len(first) < 2:
        return frame
    d = np.diff(first)
    if len(keys) == 1:
        ok = bool(np.all(d >= 0))
    else:
        t = frame[keys[1]].to_numpy()
        ok = bool(np.all((d > 0) | ((d == 0) & (t[1:] >= t[:-1]))))
    if ok:
        return frame
    log.info("%s: sorting by %s", spec.name, keys)
    return frame.sort_values(keys, kind="stable", ignore_index=True)


def _check_references(frames: dict[str, pd.DataFrame], report: _Report) -> None:
    """Every customer_id of holdings, transactions, events and suitability reviews exists in customers."""
    known = np.sort(frames["customers"]["customer_id"].to_numpy())
    for table in REFERENCING_TABLES:
        if table not in frames:
            continue
        ids = frames[table]["customer_id"].to_numpy()
        uniq = ids[np.r_[True, ids[1:] != ids[:-1]]] if len(ids) else ids  # sorted by customer_id already
        pos = np.clip(np.searchsorted(known, uniq), 0, max(len(known) - 1, 0))
        unknown = uniq[(known[pos] != uniq) if len(known) else np.ones(len(uniq), dtype=bool)]
        if len(unknown):
            report.add(table, "customer_id", "customer_id exists in customers", frames[table], np.isin(ids, unknown))


# ---------------------------------------------------------------- public API


def validate_frame(table: str, df: pd.DataFrame, *, max_date: pd.Timestamp | str | None = None) -> pd.DataFrame:
    """Check an in-memory frame against the contract of `table`; return it normalised and sorted.

    `max_date` (usually the last market date) bounds timestamps from above, plus
    `FUTURE_MARGIN`. Raises `InputError` naming table, column, rule and example rows.
    """
    if table not in SPECS:
        raise InputError(f"unknown raw table {table!r}; expected one of {list(SPECS)}")
    report = _Report()
    out = _check_frame(table, df, report, None if max_date is None else pd.Timestamp(max_date))
    report.raise_if_any()
    assert out is not None
    return out


def _customer_filter(customer_ids) -> list[tuple] | None:
    """A pyarrow filter for `(lo, hi)` (lo <= id < hi; None = unbounded) or a list of ids."""
    if customer_ids is None:
        return None
    if isinstance(customer_ids, tuple) and len(customer_ids) == 2:
        lo, hi = customer_ids
        filters = []
        if lo is not None:
            filters.append(("customer_id", ">=", int(lo)))
        if hi is not None:
            filters.append(("customer_id", "<", int(hi)))
        return filters or None
    return [("customer_id", "in", [int(i) for i in customer_ids])]


def customer_order(cid: np.ndarray) -> np.ndarray | None:
    """Row order that stably sorts `cid` (customer ids); None when already in order.

    Merges the sorted runs of a file's row groups (one per month of a customer chunk, as the
    simulator writes them) back into customer-then-time order (timsort: a merge of the runs).
    """
    if len(cid) < 2 or cid.dtype.kind not in "iu" or bool(np.all(cid[1:] >= cid[:-1])):
        return None  # (ids with nulls arrive as floats: left for validation to report)
    return np.argsort(cid, kind="stable")


# What a datetime64[ns] column can hold: Parquet stores coarser units that reach further.
NS_MIN, NS_MAX = pd.Timestamp.min.ceil("s"), pd.Timestamp.max.floor("s")


def _naive_utc(value) -> pd.Timestamp | None:
    """A statistics value (datetime or date, possibly tz-aware) as a tz-naive UTC Timestamp (of any
    unit, so a value past 2262 stays comparable); None when not even that holds it."""
    import datetime as dt

    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    try:
        return pd.Timestamp(value)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        return None


def _check_time_range(table: str, column: str, pf: pq.ParquetFile, path: Path) -> Violation | None:
    """Timestamps outside what datetime64[ns] holds (before 1677 or after 2262), from row-group
    statistics (a full column read only without statistics or when they show a problem)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    field_type = pf.schema_arrow.field(column).type
    if not (pa.types.is_timestamp(field_type) or pa.types.is_date(field_type)):
        return None  # not a time at all: the dtype check reports it
    if pa.types.is_timestamp(field_type) and field_type.unit == "ns":
        return None  # already nanoseconds: always in range
    meta, idx = pf.metadata, pf.schema_arrow.get_field_index(column)
    suspicious = False
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(idx).statistics
        if st is None or not st.has_min_max:
            suspicious = True
            break
        lo, hi = _naive_utc(st.min), _naive_utc(st.max)
        if lo is None or hi is None or lo < NS_MIN or hi > NS_MAX:
            suspicious = True
            break
    if not suspicious:
        return None
    values = pq.read_table(path, columns=[column])[column]
    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("s"))
    values = values.cast(pa.timestamp(values.type.unit))  # drop the time zone: compare in UTC
    lo = pa.scalar(NS_MIN.to_pydatetime().replace(tzinfo=None), values.type)
    hi = pa.scalar(NS_MAX.to_pydatetime().replace(tzinfo=None), values.type)
    bad = pc.or_(pc.less(values, lo), pc.greater(values, hi)).fill_null(False)
    n_bad = pc.sum(bad).as_py() or 0
    if not n_bad:
        return None
    examples = pd.DataFrame({column: [str(v) for v in values.filter(bad).slice(0, EXAMPLES).to_pylist()]})
    rule = f"{NS_MIN.date()} <= {column} <= {NS_MAX.date()} (the range of nanosecond timestamps)"
    return Violation(table, column, rule, int(n_bad), len(values), examples)


def open_table_file(table: str, path: str | Path) -> pq.ParquetFile:
    """Open one raw table's Parquet file, or raise `InputError` naming table, file and rule.

    The checks every reader of raw data needs before it reads rows (`clientlens validate` and
    `clientlens features` both come through here): one Parquet file per table (not a folder),
    not empty, readable footer, unique column names, timestamps that fit datetime64[ns].
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{path}: table '{table}' is a folder; the contract takes one Parquet file per table "
            "(write the dataset as a single file)"
        )
    if not path.exists():
        raise InputError(f"{path}: table '{table}' is missing")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: cannot read as Parquet (table '{table}'): the file is empty (0 bytes)")
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{path}: cannot read as Parquet (table '{table}'; truncated or not Parquet): {exc}") from None
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(
            f"raw data violates the contract (1 problem):\n- {table}.{dup[0]}: rule 'unique column names' fails: "
            f"the file {path} has {names.count(dup[0])} columns named {dup[0]!r} (duplicated: {dup})"
        )
    spec = SPECS.get(table)
    if spec is not None:
        import pyarrow as pa

        report = _Report()
        for col in spec.columns:
            # ids and times are compared by row-group statistics before any row is read: a column of
            # another kind (strings, say) fails here with the rule `_normalise_column` would report
            typ = pf.schema_arrow.field(col.name).type if col.name in names else None
            numeric = typ is not None and (pa.types.is_integer(typ) or pa.types.is_floating(typ))
            timelike = typ is not None and (pa.types.is_timestamp(typ) or pa.types.is_date(typ))
            if (col.name == "customer_id" and typ is not None and not numeric) or (
                col.kind == "datetime" and typ is not None and not timelike and not pa.types.is_null(typ)
            ):
                expected = "integer" if col.kind == "int" else "datetime"
                n = pf.metadata.num_rows
                report.violations.append(
                    Violation(table, col.name, f"dtype is {expected}", n, n, pd.DataFrame({"dtype": [str(typ)]}))
                )
                continue
            if col.kind == "datetime" and col.name in names:
                v = _check_time_range(table, col.name, pf, path)
                if v is not None:
                    report.violations.append(v)
        report.raise_if_any()
    return pf


def customer_ids(path: str | Path) -> np.ndarray:
    """The sorted, unique `customer_id`s of a customers file, checked by the contract's rules for
    that column (integer, not null, >= 0, unique) and for the table (at least one row).

    Cheap (one column), so a reader that splits work by customer can plan on ids it can trust.
    """
    pf = open_table_file("customers", path)
    spec = SPECS["customers"]
    col = spec.column("customer_id")
    if col.name not in pf.schema_arrow.names:
        raise InputError(
            "raw data violates the contract (1 problem):\n- customers.customer_id: rule 'column present' fails "
            f"(columns found: {', '.join(pf.schema_arrow.names)})"
        )
    frame = pf.read(columns=[col.name]).to_pandas()
    report = _Report()
    s = _normalise_column("customers", col, frame[col.name], report, frame)
    if s is not None:
        report.add("customers", col.name, "not null", frame, s.isna().to_numpy())
        if not report.violations:
            report.add("customers", col.name, f"{col.name} >= {col.ge:g}", frame, (s < col.ge).to_numpy())
            report.add("customers", col.name, "unique key (customer_id)", frame, _duplicated(frame, spec.key))
    _check_not_empty("customers", frame, report)
    report.raise_if_any()
    assert s is not None  # a column that could not be normalised is a violation, raised above
    return np.unique(s.to_numpy(np.int64))


def _check_not_empty(table: str, frame: pd.DataFrame, report: _Report) -> None:
    """customers must hold a row: features of nobody are not a result (other tables may be empty)."""
    if table == "customers" and len(frame) == 0:
        report.violations.append(Violation(table, "customer_id", "at least one row", 0, 0))


def _read_table(path: Path, spec: TableSpec, customer_ids) -> pd.DataFrame:
    schema = open_table_file(spec.name, path).schema_arrow
    present = [c for c in spec.column_names if c in schema.names]
    strings = [c.name for c in spec.columns if c.kind == "category" and c.name in present]
    filters = _customer_filter(customer_ids) if spec.name != "market" and "customer_id" in present else None
    table = pq.read_table(path, columns=present, filters=filters, read_dictionary=strings)
    if "customer_id" in present:
        # files written in customer chunks with one row group per month (the simulator's layout) hold
        # sorted runs: a stable sort by customer merges them back into customer-then-time order
        order = customer_order(table["customer_id"].to_numpy())
        if order is not None:
            import pyarrow

            table = table.take(pyarrow.array(order))
    return table.to_pandas(date_as_object=False, self_destruct=True, split_blocks=True)


def read_raw(
    raw_dir: str | Path,
    tables: Iterable[str] | None = None,
    customer_ids: tuple[int | None, int | None] | Sequence[int] | None = None,
) -> RawTables:
    """Read and validate a raw folder (one `<table>.parquet` file per table; a folder in its place is refused).

    - `tables`: which tables to read (default all of `vocab.TABLES`). `customers` is always read when
      another customer table is, for referential integrity.
    - `customer_ids`: `(lo, hi)` reads customers lo <= id < hi (pushed down to Parquet row
      groups; None = unbounded), or an explicit list of ids. `market` is never filtered.
    - Missing optional tables (holdings, transactions, events, market) are logged and listed
      in the result's `.missing`; a missing `customers` table is an error.

    Raises `InputError` listing every violation (table, column, rule, example rows).
    """
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise InputError(f"raw data folder {raw} does not exist")
    wanted = list(vocab.TABLES if tables is None else tables)
    unknown = [t for t in wanted if t not in SPECS]
    if unknown:
        raise InputError(f"unknown raw table(s) {unknown}; expected some of {list(SPECS)}")
    if any(t in wanted for t in REFERENCING_TABLES) and "customers" not in wanted:
        wanted.insert(0, "customers")
    # market first: its last date bounds every other table's timestamps
    order = sorted(wanted, key=lambda t: (t != "market", vocab.TABLES.index(t)))
    frames: dict[str, pd.DataFrame] = {}
    missing: list[str] = []
    report = _Report()
    max_date: pd.Timestamp | None = None
    market_path = raw / "market.parquet"
    if "market" not in wanted and market_path.exists():
        dates = open_table_file("market", market_path).read(columns=["date"]).column("date")
        if len(dates):
            max_date = _naive_utc(pd.Timestamp(dates.to_pandas().max()))
    for table in order:
        spec = SPECS[table]
        path = raw / f"{table}.parquet"
        if not path.exists():
            if spec.required:
                raise InputError(f"{path}: required table '{table}' is missing")
            log.warning("%s: optional table '%s' is missing", path, table)
            missing.append(table)
            continue
        try:
            df = _read_table(path, spec, customer_ids)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"{path}: cannot read as Parquet: {exc}") from exc
        if max_date is None and table != "market":
            max_date = pd.Timestamp.now().normalize()
        out = _check_frame(table, df, report, max_date)
        if table == "market" and out is not None and len(out):
            max_date = out["date"].max()
        if table == "market" and len(df) == 0:
            log.warning(EMPTY_MARKET, path)
        if out is not None:
            frames[table] = out
    if "customers" in frames and not any(v.table == "customers" for v in report.violations):
        _check_references(frames, report)
    report.raise_if_any()
    return RawTables({t: frames[t] for t in vocab.TABLES if t in frames}, missing)


def read_truth(raw_dir: str | Path, customer_ids: tuple[int, int] | Sequence[int] | None = None) -> pd.DataFrame:
    """The simulator's `truth.parquet` (evaluation code only), optionally for a customer range."""
    path = Path(raw_dir) / "truth.parquet"
    if not path.exists():
        raise InputError(f"{path}: no truth table (only simulated data has one)")
    return pq.read_table(path, filters=_customer_filter(customer_ids)).to_pandas()


@dataclass
class RawSummary:
    """What `validate_raw` found: rows per table and the optional tables that were missing."""

    rows: dict[str, int]
    missing: list[str]


def validate_raw(
    raw_dir: str | Path, tables: Iterable[str] | None = None, batch_customers: int = 250_000
) -> RawSummary:
    """Validate a whole raw folder in customer-range batches, so memory stays bounded.

    Each batch is `read_raw(raw_dir, tables, (lo, hi))`; customer-keyed rules (keys that
    include `customer_id`, references, ranges) are complete per batch because every
    customer's rows fall in one batch. The one global rule, unique `txn_id`, is checked on
    the collected ids at the end. Raises `InputError` at the first failing batch.
    """
    raw = Path(raw_dir)
    path = raw / "customers.parquet"
    try:
        ids = pq.read_table(path, columns=["customer_id"]).column(0).to_numpy()
    except Exception:
        ids = None
    if ids is None or len(ids) <= batch_customers or ids.dtype.kind != "i":
        result = read_raw(raw, tables)
        return RawSummary(result.rows, result.missing)
    cuts = np.unique(ids)[::batch_customers][1:]
    edges = [None, *cuts.tolist(), None]
    rows: dict[str, int] = {}
    missing: list[str] = []
    txn_ids: list[np.ndarray] = []
    for lo, hi in itertools.pairwise(edges):
        try:
            batch = read_raw(raw, tables, customer_ids=(lo, hi))
        except InputError as exc:
            raise InputError(f"customers {lo if lo is not None else '-inf'} <= customer_id < "
                             f"{hi if hi is not None else 'inf'}: {exc}") from None  # fmt: skip
        missing = batch.missing
        for table, n in batch.rows.items():
            rows[table] = n if table == "market" else rows.get(table, 0) + n
        if "transactions" in batch:
            txn_ids.append(batch["transactions"]["txn_id"].to_numpy())
        del batch
    if txn_ids:
        every = np.concatenate(txn_ids)
        if not bool(np.all(every[1:] > every[:-1])):
            every.sort()
            dup = np.unique(every[1:][every[1:] == every[:-1]])
            if len(dup):
                raise InputError(
                    "raw data violates the contract (1 problem):\n- transactions.txn_id: rule 'unique key (txn_id)' "
                    f"fails across customers for {len(dup):,} ids, e.g. {dup[:EXAMPLES].tolist()}"
                )
    ordered = {t: rows[t] for t in vocab.TABLES if t in rows}
    return RawSummary(ordered, missing)
