"""The inference log: every scored customer, with its inputs, outputs and model versions.

Layout (docs/ARCHITECTURE.md, "Inference log"):

    <inference_log_dir>/date=YYYY-MM-DD/part-<utc timestamp>-<uuid>.parquet

Each part is written to a hidden temporary name in the same folder, fsynced, then renamed,
so a reader never sees a half-written file and a crash leaves at most a `.tmp` file that
readers ignore. Columns: `ts` (UTC), `request_id`, `customer_id`, every feature column, every
output column of `training.scoring.score_frame`, and `version_tier`, `version_churn`,
`version_risk`.

The service appends to an `InferenceLogWriter`, which buffers in memory and writes parts
from a background thread (off the request's hot path), and on `close()` at shutdown.
`read_inference_log()` is what monitoring reads.

Durability, exactly: a scored request is answered before its rows are on disk. Its rows are
written (fsynced, then renamed into place) within `flush_seconds` (`Settings.log_flush_seconds`,
default 2 s) plus the time of one write, or sooner once `flush_rows` rows wait
(`Settings.log_flush_rows`, default 20,000), and on every orderly shutdown (SIGTERM, Ctrl-C:
the service's shutdown hook calls `close()`). A process killed without a chance to run it
(`kill -9`, the OOM killer, power loss) loses the rows still buffered: those answered in the
last `flush_seconds` or so, normally at most `flush_rows` rows. Rows already written are never
lost or half-visible. The buffer is exposed on `/metrics` as
`clientlens_inference_log_buffered_rows` (rows at risk right now, summed over workers), next to
the bound `clientlens_inference_log_flush_rows` / `clientlens_inference_log_flush_seconds`.
If writing fails (disk full) rows stay buffered up to `max_rows`; beyond that the oldest are
dropped, each drop logged at ERROR (`rows_dropped`).
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.io import atomic_path
from core.settings import Settings
from core.tasks import TASK_NAMES, version_column

logger = logging.getLogger(__name__)

VERSION_COLUMNS = tuple(version_column(t) for t in TASK_NAMES)
KEY_COLUMNS = ("ts", "request_id", "customer_id")
PART_GLOB = "date=*/part-*.parquet"


@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: str | date | datetime | pd.Timestamp) -> pd.Timestamp: ...
def _utc(value: str | date | datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    """A bound as a UTC timestamp; naive values and dates are taken as UTC."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def log_columns(
    ts: datetime | np.datetime64,
    request_id: str,
    customer_ids: Sequence[int] | np.ndarray,
    features: pd.DataFrame | Mapping[str, np.ndarray],
    outputs: pd.DataFrame | Mapping[str, np.ndarray],
    versions: Mapping[str, str],
) -> dict[str, np.ndarray]:
    """One request's log columns: keys, the features as scored, the outputs, the versions.

    `ts` becomes naive UTC `datetime64[ns]` (callers localise the assembled column once).
    `features` and `outputs` align row by row with `customer_ids`; a column already set is kept.
    """
    n = len(customer_ids)
    stamp = ts if isinstance(ts, np.datetime64) else np.datetime64(_utc(ts).tz_localize(None), "ns")
    data: dict[str, np.ndarray] = {
        "ts": np.full(n, stamp, dtype="datetime64[ns]"),
        "request_id": np.full(n, request_id, dtype=object),
        "customer_id": np.asarray(customer_ids, dtype=np.int64),
    }
    for part in (features, outputs):
        for col in part:
            if col not in data:
                values = part[col]
                data[col] = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    for task in TASK_NAMES:
        data[version_column(task)] = np.full(n, str(versions.get(task, "")), dtype=object)
    return data


def merge_records(items: Sequence[tuple], pause: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """The `log_columns` of many buffered requests `(ts, request_id, customer_ids, features, outputs, versions)`,
    concatenated column by column (a column a request lacks is None for its rows), without building each
    request's columns first.

    The writer thread runs this holding the GIL, so its time is time the event loop cannot answer: per
    request ~190 small arrays took 0.1-0.2 s for the 2 s of one-customer requests of a busy worker, a
    latency spike every flush (#18). Here the keys, stamps and versions are one array each, and every
    feature or output column one `np.concatenate` of the requests' own arrays: the same values and
    dtypes as concatenating `log_columns` of each request. `pause()` runs after each column (the writer
    passes `time.sleep(0)`: the GIL goes to a waiting request at once, not after the 5 ms switch interval)."""
    counts = [len(item[2]) for item in items]
    layouts: dict[tuple, dict[str, int]] = {}  # per key layout: column -> 3 (features) or 4 (outputs)
    order: dict[str, None] = dict.fromkeys(KEY_COLUMNS)
    per_item = []
    for _ts, _rid, _ids, features, outputs, _versions in items:
        key = (tuple(features), tuple(outputs))
        layout = layouts.get(key)
        if layout is None:
            layout = {}
            for where, part in ((3, key[0]), (4, key[1])):
                for col in part:
                    if col not in layout and col not in KEY_COLUMNS:
                        layout[col] = where
            layouts[key] = layout
            order.update(dict.fromkeys(layout))
            order.update(dict.fromkeys(VERSION_COLUMNS))  # after each request's own columns, as `log_columns`
        per_item.append(layout)
    n = np.asarray(counts, dtype=np.int64)
    stamps = [
        ts if isinstance(ts, np.datetime64) else np.datetime64(_utc(ts).tz_localize(None), "ns") for ts, *_ in items
    ]
    data: dict[str, np.ndarray] = {
        "ts": np.repeat(np.array(stamps, dtype="datetime64[ns]"), n),
        "request_id": np.repeat(np.array([item[1] for item in items], dtype=object), n),
        "customer_id": _joined([np.asarray(item[2], dtype=np.int64) for item in items]),
    }
    if len(layouts) == 1:  # every request has the same columns (the usual case): gathered a request at a time
        layout = per_item[0]
        for where in (3, 4):
            cols = [c for c, w in layout.items() if w == where and c not in VERSION_COLUMNS]
            if not cols:
                continue
            get = operator.itemgetter(*cols)
            rows = [get(item[where]) for item in items]
            for col, parts in zip(cols, zip(*rows, strict=True) if len(cols) > 1 else [rows], strict=True):
                data[col] = _joined(_arrays(parts))
                if pause is not None:
                    pause()
    for col in order:
        if col in data or col in VERSION_COLUMNS:
            continue
        parts = []
        for item, layout, k in zip(items, per_item, counts, strict=True):
            source = layout.get(col)
            if source is None:
                parts.append(np.full(k, None, dtype=object))
                continue
            values = item[source][col]
            parts.append(values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values))
        data[col] = _joined(parts)
        if pause is not None:
            pause()
    for task, col in zip(TASK_NAMES, VERSION_COLUMNS, strict=True):
        data[col] = np.repeat(np.array([str(item[5].get(task, "")) for item in items], dtype=object), n)
    return {c: data[c] for c in order}


def _let_requests_run() -> None:
    """Hand the GIL to any thread waiting for it (the event loop answering a request)."""
    time.sleep(0)


def _joined(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _arrays(parts: Sequence) -> Sequence[np.ndarray]:
    """Each request's values of one column as `log_columns` takes them (a Series' `to_numpy()`)."""
    if set(map(type, parts)) == {np.ndarray}:
        return parts
    return [p.to_numpy() if isinstance(p, pd.Series) else np.asarray(p) for p in parts]


def log_frame(
    features: pd.DataFrame | Mapping[str, np.ndarray],
    outputs: pd.DataFrame | Mapping[str, np.ndarray],
    *,
    customer_ids: Sequence[int] | np.ndarray,
    request_id: str,
    versions: Mapping[str, str],
    ts: datetime | None = None,
) -> pd.DataFrame:
    """Log rows as a frame (`log_columns` with a UTC-aware `ts`)."""
    stamp = ts or datetime.now(UTC)
    frame = pd.DataFrame(log_columns(stamp, request_id, customer_ids, features, outputs, versions))
    frame["ts"] = frame["ts"].dt.tz_localize("UTC")
    return frame


def log_table(data: Mapping[str, np.ndarray], pause: Callable[[], None] | None = None) -> pa.Table:
    """`merge_records`' (or `log_columns`') columns as the Arrow table of a part: what
    `pa.Table.from_pandas` makes of their frame with `ts` localised to UTC (NaN and None become nulls,
    the same types column by column), without building the frame. The writer thread spent about as
    long on the frame and its conversion as on writing the Parquet (#18). `pause()` runs after each
    column of Python objects."""
    arrays = []
    for name, values in data.items():
        if name == "ts":
            arrays.append(pa.array(values, type=pa.timestamp("ns", tz="UTC")))  # naive values are UTC
        else:
            arrays.append(pa.array(values, from_pandas=True))
        if pause is not None and values.dtype == object:  # numbers convert in microseconds, objects row by row
            pause()
    return pa.Table.from_arrays(arrays, names=list(data))


def _to_table(frame: pd.DataFrame) -> pa.Table:
    # Categoricals are stored as plain strings so every part has the same schema whatever
    # categories a batch happened to contain (the frame is copied only when it has some).
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if categorical:
        frame = frame.copy()
        for col in categorical:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return pa.Table.from_pandas(frame, preserve_index=False)


def write_options(schema: pa.Schema) -> dict:
    """`pq.write_table` options of a log part: zstd; dictionary encoding only for the string
    columns (ids, versions, categories, actions: few distinct values, they shrink); none for the
    ~160 numeric columns, whose distinct values overflow any dictionary, so trying one first only
    costs time; statistics only for the key columns (`ts`, `customer_id`: what a reader could
    prune parts on). The writer thread spent about a third less CPU per part for files ~5% larger (#18)."""
    return {
        "compression": "zstd",
        "use_dictionary": [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)],
        "write_statistics": [c for c in ("ts", "customer_id") if c in schema.names],
    }


def write_part(frame: pd.DataFrame | pa.Table, root: Path | None = None) -> list[Path]:
    """Write log rows (a frame, or a `log_table`) as one part per UTC day they fall on; atomic
    (temp file + rename).

    Returns the paths written (none for an empty frame).
    """
    if len(frame) == 0:
        return []
    root = Path(root) if root is not None else Settings().inference_log
    if isinstance(frame, pa.Table):  # `log_table` / `_to_table`: `ts` is timestamp[ns, UTC]
        ts = frame.column("ts").to_numpy()
    else:
        ts = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(None).to_numpy()
    days = ts.astype("datetime64[D]")  # UTC day of each row, vectorised
    unique = np.unique(days)
    parts = [(unique[0], frame)] if len(unique) == 1 else [(d, _rows_of(frame, days == d)) for d in unique]
    written: list[Path] = []
    for day, rows in parts:
        folder = root / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{uuid.uuid4().hex}.parquet"
        table = rows if isinstance(rows, pa.Table) else _to_table(rows)
        with atomic_path(folder / name) as tmp, open(tmp, "wb") as fh:
            pq.write_table(table, fh, **write_options(table.schema))
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename makes it visible
        written.append(folder / name)
    return written


def _rows_of(frame: pd.DataFrame | pa.Table, mask: np.ndarray) -> pd.DataFrame | pa.Table:
    if isinstance(frame, pa.Table):
        return frame.filter(pa.array(mask))
    return frame[mask].reset_index(drop=True)


def list_parts(root: Path | None = None, since=None, until=None) -> list[Path]:
    """The committed part files, oldest day first, pruned to the days in [since, until]."""
    root = Path(root) if root is not None else Settings().inference_log
    if not root.exists():
        return []
    lo, hi = _utc(since), _utc(until)
    parts = []
    for path in sorted(root.glob(PART_GLOB)):
        day = path.parent.name.removeprefix("date=")
        try:
            day_start = pd.Timestamp(day, tz="UTC")
        except ValueError:
            continue
        if lo is not None and day_start + pd.Timedelta(days=1) <= lo.floor("D"):
            continue
        if hi is not None and day_start > hi:
            continue
        parts.append(path)
    return parts


def read_inference_log(
    since: str | date | datetime | pd.Timestamp | None = None,
    until: str | date | datetime | pd.Timestamp | None = None,
    *,
    root: Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Logged inferences with `since <= ts < until` (UTC; naive bounds are taken as UTC).

    Parts written with different feature sets (e.g. before and after a new feature) are
    unioned; missing columns come back as nulls. Rows are ordered by `ts`.
    """
    lo, hi = _utc(since), _utc(until)
    tables = []
    for path in list_parts(root, lo, hi):
        table = pq.read_table(path, columns=list(columns) if columns else None)
        if lo is not None or hi is not None:
            ts = table.column("ts") if "ts" in table.column_names else None
            if ts is not None:
                import pyarrow.compute as pc

                mask = None
                if lo is not None:
                    mask = pc.greater_equal(ts, pa.scalar(lo.to_pydatetime(), ts.type))
                if hi is not None:
                    m = pc.less(ts, pa.scalar(hi.to_pydatetime(), ts.type))
                    mask = m if mask is None else pc.and_(mask, m)
                table = table.filter(mask)
        tables.append(table)
    if not tables:
        cols = list(columns) if columns else [*KEY_COLUMNS, *VERSION_COLUMNS]
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        if "ts" in empty:
            empty["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
        return empty
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    if "ts" in frame.columns:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    return frame


def _item_rows(item: pd.DataFrame | pa.Table | tuple) -> int:
    """Rows of one buffered item: a frame (`append`), a table (a failed write's) or a request's tuple
    (`append_scored`, whose third field is the customer ids; the tuple's own length is its field count)."""
    return len(item[2]) if isinstance(item, tuple) else len(item)


class InferenceLogWriter:
    """Buffers log rows in memory; a daemon thread writes a part every `flush_seconds`
    or as soon as `flush_rows` rows are waiting. `close()` flushes what is left.

    `append` only takes a lock and appends a reference, so it adds microseconds to a request.
    If writing fails (disk full, permissions) the rows stay buffered, up to `max_rows`;
    beyond that the oldest are dropped with an error in the log — scoring never fails
    because logging does.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        flush_seconds: float = 2.0,
        flush_rows: int = 20_000,
        max_rows: int = 2_000_000,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        """`observe(buffered_rows)` is called after every append and flush (e.g. a gauge's `set`)."""
        self.root = Path(root) if root is not None else Settings().inference_log
        self.observe = observe
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.max_rows = max_rows
        self._pending: list[pd.DataFrame | pa.Table | tuple] = []
        self._pending_rows = 0  # queued for the next write
        self._writing_rows = 0  # in the write under way (still lost by a kill until renamed)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.rows_dropped = 0

    def start(self) -> InferenceLogWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="inference-log-writer", daemon=True)
            self._thread.start()
        return self

    def append(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        with self._lock:
            self._pending.append(frame)
            self._pending_rows += len(frame)
            pending = self._pending_rows
        self._observe(pending + self._writing_rows)
        if pending >= self.flush_rows:
            self._wake.set()

    def _observe(self, pending: int) -> None:
        if self.observe is not None:
            self.observe(pending)

    @property
    def buffered_rows(self) -> int:
        """Rows accepted but not yet on disk (what a `kill -9` now would lose)."""
        return self._pending_rows + self._writing_rows

    def append_scored(
        self,
        *,
        ts: datetime | np.datetime64,
        request_id: str,
        customer_ids: np.ndarray,
        features: Mapping[str, np.ndarray],
        outputs: pd.DataFrame | Mapping[str, np.ndarray],
        versions: Mapping[str, str],
    ) -> None:
        """Buffer one request's rows by reference; the writer thread turns them into columns.

        Costs microseconds on the request path: nothing is copied or converted here, so the
        caller must not mutate `features`/`outputs` afterwards (the service never does).
        """
        if len(customer_ids) == 0:
            return
        with self._lock:
            self._pending.append((ts, request_id, customer_ids, features, outputs, dict(versions)))
            self._pending_rows += len(customer_ids)
            pending = self._pending_rows
        self._observe(pending + self._writing_rows)
        if pending >= self.flush_rows:
            self._wake.set()

    @staticmethod
    def _assemble(batch: list[pd.DataFrame | pa.Table | tuple]) -> pa.Table:
        """The buffered frames (`append`), tables (a failed write's, kept) and requests (`append_scored`,
        straight to Arrow, #18) as one table, in that order."""
        tables = [b if isinstance(b, pa.Table) else _to_table(b) for b in batch if not isinstance(b, tuple)]
        items = [b for b in batch if isinstance(b, tuple)]
        if items:
            tables.append(log_table(merge_records(items, pause=_let_requests_run), pause=_let_requests_run))
        return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]

    def flush(self) -> list[Path]:
        """Write everything buffered now; returns the parts written."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                self._writing_rows, self._pending_rows = self._pending_rows, 0
            if not batch:
                return []
            try:
                frame = self._assemble(batch)
            except Exception:  # rows that cannot form one table (e.g. a column int in one, text in another)
                rows = self._writing_rows
                self.rows_dropped += rows
                self._writing_rows = 0
                self._observe(self.buffered_rows)
                logger.exception("inference log: dropped %d rows that could not be assembled", rows)
                return []
            try:
                paths = write_part(frame, self.root)
                self._writing_rows = 0
                self._observe(self.buffered_rows)
            except Exception:
                logger.exception("could not write the inference log to %s; will retry", self.root)
                with self._lock:
                    self._pending.insert(0, frame)
                    self._pending_rows += len(frame)
                    self._writing_rows = 0
                    while self._pending_rows > self.max_rows and self._pending:
                        dropped = _item_rows(self._pending.pop(0))
                        self._pending_rows -= dropped
                        self.rows_dropped += dropped
                        logger.error("inference log buffer full: dropped %d rows", dropped)
                return []
            self.rows_written += len(frame)
            return paths

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background thread and write what is buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def __enter__(self) -> InferenceLogWriter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
