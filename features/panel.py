"""The training panel and the latest feature table, partitioned by customer (DESIGN §5, §9).

`build_panel(raw_dir, out_dir, ...)` writes `panel.parquet` (features + labels per as-of
date) and `latest.parquet` (features at the last date in the data, no labels).

Before any row is read, every raw file passes `features.contract.open_table_file` and the
customer ids `features.contract.customer_ids` (the checks `clientlens validate` makes), so
both commands refuse the same folders. Work is then split into contiguous `customer_id`
ranges. A partition is a pure pandas function of that range's rows (`partition_tables`:
features and labels for every as-of date); the worker that runs it reads only its range from
Parquet (row groups chosen by their `customer_id` statistics, rows then filtered by id range
and by the time window the requested dates need; the id ranges read tile the whole int64 line,
`reading_ranges`, so a row of an unknown customer is read by one partition and refused),
validates them with `features.contract.validate_frame`, and writes its rows to a part file, so
memory grows with partition size, not with total transactions. The same `run_partition` runs
in this process (`workers=1`), in local processes (`ProcessPoolExecutor`) or on a Dask
cluster. Parts are concatenated in customer order into the final files, written atomically
(`core.io.atomic_path`). Rows are ordered by (`customer_id`, `as_of`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import registry, vocab
from features.build import N_WEEKS, Prepared, features_at, prepare
from features.config import FeatureConfig, LabelConfig
from features.labels import LABEL_SNAPSHOT_SLACK_DAYS, labels_at

log = logging.getLogger(__name__)

DEFAULT_PARTITION_SIZE = 20_000
WARMUP_MONTHS = 6
TIME_COLUMN = {"transactions": "ts", "events": "ts", "holdings": "snapshot_date", "market": "date"}


# --------------------------------------------------------------------------- pure core


def partition_tables(
    tables: dict[str, pd.DataFrame | None],
    as_of: Sequence[pd.Timestamp],
    latest: pd.Timestamp | None,
    snapshot_dates: Sequence | None = None,
    feature_config: FeatureConfig | None = None,
    label_config: LabelConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Panel rows (features + labels at each as-of) and latest rows for one customer range's tables."""
    return partition_prepared(prepare(tables, snapshot_dates), as_of, latest, feature_config, label_config)


def partition_prepared(
    prep: Prepared,
    as_of: Sequence[pd.Timestamp],
    latest: pd.Timestamp | None,
    feature_config: FeatureConfig | None = None,
    label_config: LabelConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """`partition_tables` on already prepared arrays."""
    feature_config = feature_config or FeatureConfig()
    label_config = label_config or LabelConfig()
    frames = []
    for t in as_of:
        feats = features_at(prep, t, feature_config)
        labels = labels_at(prep, t, label_config, feature_config)
        frames.append(feats.merge(labels, on="customer_id", how="left", validate="one_to_one"))
    schema_cols = registry.arrow_schema(labels=True).names
    panel = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=schema_cols)
    panel = panel.sort_values(["customer_id", "as_of"], kind="stable").reset_index(drop=True)
    latest_frame = features_at(prep, latest, feature_config) if latest is not None else None
    return panel, latest_frame


# --------------------------------------------------------------------------- I/O


def raw_paths(raw_dir: Path) -> dict[str, Path]:
    """The raw tables present in `raw_dir` (customers is required), each a readable Parquet file."""
    from core.errors import InputError
    from features.contract import open_table_file

    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(f"raw folder {raw_dir} does not exist")
    paths = {t: raw_dir / f"{t}.parquet" for t in vocab.TABLES if (raw_dir / f"{t}.parquet").exists()}
    if "customers" not in paths:
        raise InputError(f"raw folder {raw_dir}: customers.parquet is required (found: {sorted(paths) or 'nothing'})")
    for table, path in paths.items():
        open_table_file(table, path)  # a folder, an empty or truncated file, duplicate columns: InputError
    return paths


def _column_range(path: Path, column: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Min and max of a timestamp column from Parquet row-group statistics (no data read), tz-naive UTC."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    idx = meta.schema.to_arrow_schema().get_field_index(column)
    lo = hi = None
    for rg in range(meta.num_row_groups):
        col = meta.row_group(rg).column(idx)
        st = col.statistics
        if st is None or not st.has_min_max:
            # fall back to reading the column
            import pyarrow.compute as pc

            values = pq.read_table(path, columns=[column])[column]
            mm = pc.min_max(values)
            return (
                _naive(mm["min"].as_py()) if mm["min"].is_valid else None,
                _naive(mm["max"].as_py()) if mm["max"].is_valid else None,
            )
        a, b = _naive(st.min), _naive(st.max)
        lo = a if lo is None or a < lo else lo
        hi = b if hi is None or b > hi else hi
    return lo, hi


def data_dates(paths: dict[str, Path]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last calendar day of customer activity (transactions, events, holdings; else market)."""
    from core.errors import InputError

    firsts: list[pd.Timestamp] = []
    lasts: list[pd.Timestamp] = []
    for table in ("transactions", "events", "holdings"):
        if table in paths:
            lo, hi = _column_range(paths[table], TIME_COLUMN[table])
            if lo is not None:
                assert hi is not None  # a column with a minimum has a maximum
                firsts.append(lo)
                lasts.append(hi)
    if not firsts and "market" in paths:
        lo, hi = _column_range(paths["market"], "date")
        if lo is not None:
            assert hi is not None  # a column with a minimum has a maximum
            firsts.append(lo)
            lasts.append(hi)
    if not firsts:
        raise InputError("raw data has no dated rows (transactions, events, holdings or market) to choose as-of dates")
    return min(firsts).normalize(), max(lasts).normalize()


def default_as_of_dates(
    first: pd.Timestamp, last: pd.Timestamp, horizon_days: int, every_months: int = 1
) -> list[pd.Timestamp]:
    """Month-ends from `WARMUP_MONTHS` after the data start to the last date minus the horizon.

    Six months of history give every 30/90/180-day window and the 1/3/6-month AUM changes
    a full look-back; stopping at last - H gives every label a complete horizon. Counted
    back from the latest eligible month-end so the most recent dates (the out-of-time
    validation dates) are always included.
    """
    start = (first + pd.offsets.MonthEnd(0)) + pd.offsets.MonthEnd(WARMUP_MONTHS)
    stop = last - pd.Timedelta(days=horizon_days)
    ends = pd.date_range(start, stop, freq="ME")
    return [pd.Timestamp(t) for t in ends[::-1][::every_months][::-1]]


def _naive(value) -> pd.Timestamp | None:
    """A statistics or bound value as a tz-naive (UTC) Timestamp; None when it is not a time."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts


def select_row_groups(pf, ids: tuple[int, int] | None, time_col: str | None, lower, upper) -> list[tuple[int, bool]]:
    """Row groups that may hold lo <= customer_id <= hi and lower <= time < upper, from their statistics.

    Returns `(group, needs_filter)` pairs: a group is dropped only when its statistics prove it
    holds no such row (a group without usable statistics is kept), and `needs_filter` is False
    when they prove every row of it is in range (no nulls either), so it needs no row filter.
    """
    meta = pf.metadata
    names = pf.schema_arrow.names
    id_idx = names.index("customer_id") if ids is not None and "customer_id" in names else -1
    t_idx = names.index(time_col) if time_col is not None and time_col in names else -1
    lo_t = _naive(lower) if lower is not None and t_idx >= 0 else None
    hi_t = _naive(upper) if upper is not None and t_idx >= 0 else None
    slack = pd.Timedelta(microseconds=1)  # statistics of coarser units are truncated

    def no_nulls(st) -> bool:
        return st.has_null_count and st.null_count == 0

    keep = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        inside = True
        if id_idx >= 0:
            assert ids is not None  # id_idx >= 0 only when ids is given
            st = rg.column(id_idx).statistics
            if st is not None and st.has_min_max:
                if st.max < ids[0] or st.min > ids[1]:
                    continue
                inside = inside and st.min >= ids[0] and st.max <= ids[1] and no_nulls(st)
            else:
                inside = False
        if lo_t is not None or hi_t is not None:
            st = rg.column(t_idx).statistics
            t_min = t_max = None
            if st is not None and st.has_min_max:
                t_min, t_max = _naive(st.min), _naive(st.max)
            if t_min is not None and t_max is not None:
                if lo_t is not None and t_max + slack < lo_t:
                    continue
                if hi_t is not None and t_min >= hi_t + slack:
                    continue
                inside = (
                    inside
                    and no_nulls(st)
                    and (lo_t is None or t_min >= lo_t)
                    and (hi_t is None or t_max + slack <= hi_t)
                )
            else:
                inside = False
        keep.append((g, not inside))
    return keep


def read_range_arrow(
    path: Path,
    ids: tuple[int, int] | None,
    time_col: str | None,
    lower,
    upper,
    columns: list[str] | None = None,
    customer_order: bool = True,
):
    """`read_range` as an Arrow table (string columns stay dictionary-encoded as in the file).

    Only row groups whose statistics straddle the range are filtered row by row.
    `customer_order`: rows come back ordered by customer_id, each customer's rows in file
    order (a stable sort; skipped when already in order). With the simulator's layout (per
    customer chunk, one row group per month) that is the customer-then-time order of the
    contract; `customer_order=False` leaves them in file order (cheaper, for order-free kernels).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    selected = select_row_groups(pf, ids, time_col, lower, upper)
    if not selected:
        schema = pf.schema_arrow
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
        return schema.empty_table()
    table = pf.read_row_groups([g for g, _ in selected], columns=columns)

    def mask_of(part):
        mask = None

        def both(m, new):
            return new if m is None else pc.and_(m, new)

        if ids is not None and "customer_id" in part.column_names:
            c = part["customer_id"]
            # a null id is kept (every range reads it), so the contract's check reports it instead of
            # the filter dropping it
            in_range = pc.and_(pc.greater_equal(c, ids[0]), pc.less_equal(c, ids[1])).fill_null(True)
            mask = both(mask, in_range)
        if time_col is not None and time_col in part.column_names:
            typ = part.schema.field(time_col).type
            # null times are kept too (for the contract's not-null check)
            if lower is not None:
                after = pc.greater_equal(part[time_col], pa.scalar(pd.Timestamp(lower), typ)).fill_null(True)
                mask = both(mask, after)
            if upper is not None:
                before = pc.less(part[time_col], pa.scalar(pd.Timestamp(upper), typ)).fill_null(True)
                mask = both(mask, before)
        return mask

    if any(f for _, f in selected):
        if all(f for _, f in selected):
            mask = mask_of(table)
            table = table.filter(mask) if mask is not None else table
        else:
            parts, offset = [], 0
            for g, needs_filter in selected:
                n = pf.metadata.row_group(g).num_rows
                part = table.slice(offset, n)
                offset += n
                mask = mask_of(part) if needs_filter else None
                parts.append(part.filter(mask) if mask is not None else part)
            table = pa.concat_tables(parts)
    if customer_order and len(selected) > 1 and "customer_id" in table.column_names:
        from features.contract import customer_order as stable_customer_order

        order = stable_customer_order(table["customer_id"].to_numpy())
        if order is not None:
            table = table.take(pa.array(order))
    return table


def read_range(
    path: Path,
    ids: tuple[int, int] | None,
    time_col: str | None,
    lower,
    upper,
    columns: list[str] | None = None,
    customer_order: bool = True,
) -> pd.DataFrame:
    """Rows of a Parquet file with lo <= customer_id <= hi and lower <= time < upper.

    Selects row groups from their `customer_id` and time-column statistics (the simulator
    writes one row group per customer chunk and month, so a time window skips whole months),
    reads them whole (faster than pyarrow's dataset filters on this layout), then filters the
    Arrow table; rows ordered by customer_id (see `read_range_arrow`).
    """
    table = read_range_arrow(path, ids, time_col, lower, upper, columns, customer_order)
    return table.to_pandas(self_destruct=True)


def read_partition(
    raw_dir: Path,
    lo: int,
    hi: int,
    start: pd.Timestamp | None,
    stop: pd.Timestamp | None,
    holdings_start: pd.Timestamp | None = None,
) -> dict[str, pd.DataFrame | None]:
    """Validated rows of customers lo..hi (inclusive) of every present table.

    Parquet reads push the customer range down to row groups and keep transactions and events
    in [start, stop) and holdings from `holdings_start` (what the requested dates can use);
    each frame is then checked and normalised by `features.contract.validate_frame` (the
    contract's checks, on the rows actually used) plus referential integrity against the
    range's customers. Raises `InputError` on any violation.
    """
    from core.errors import InputError
    from features.contract import REFERENCING_TABLES, validate_frame

    paths = raw_paths(raw_dir)
    out: dict[str, pd.DataFrame | None] = dict.fromkeys(vocab.TABLES)
    max_date = None
    order = sorted(paths, key=lambda t: (t != "market", vocab.TABLES.index(t)))  # market bounds the others
    for table in order:
        path = paths[table]
        lower = holdings_start if table == "holdings" else start if table in ("transactions", "events") else None
        col = TIME_COLUMN.get(table)
        try:
            frame = read_range(
                path,
                None if table == "market" else (int(lo), int(hi)),
                col,
                lower,
                stop if table in ("transactions", "events", "holdings") else None,
            )
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"{path}: cannot read as Parquet: {exc}") from exc
        frame = validate_frame(table, frame, max_date=max_date)
        if table == "market" and len(frame):
            max_date = frame["date"].max()
        out[table] = frame
    customers = out["customers"]
    assert customers is not None  # raw_paths requires customers.parquet
    ids = customers["customer_id"].to_numpy()
    for table in REFERENCING_TABLES:
        frame = out[table]
        if frame is not None and len(frame):
            unknown = ~np.isin(frame["customer_id"].to_numpy(), ids)
            if unknown.any():
                raise InputError(
                    f"{table}.customer_id: rule 'exists in customers' fails for {int(unknown.sum())} rows, e.g.\n"
                    f"{frame.loc[unknown].head(5).to_string()}"
                )
    return out


@dataclass(frozen=True)
class PartitionTask:
    """Everything a worker needs to build one customer range (picklable, no open handles)."""

    index: int
    lo: int
    hi: int
    raw_dir: str
    as_of: tuple[pd.Timestamp, ...]
    latest: pd.Timestamp | None
    snapshot_dates: tuple[pd.Timestamp, ...] | None
    feature_config: FeatureConfig
    label_config: LabelConfig
    parts_dir: str
    # the customer_id range read from the other tables: wider than lo..hi, so together the
    # partitions read every row and one of an id no customer has fails referential integrity
    read_lo: int | None = None
    read_hi: int | None = None


def read_task(task: PartitionTask) -> Prepared:
    """The validated raw rows one partition needs (every requested date's windows and labels), prepared."""
    dates = list(task.as_of) + ([task.latest] if task.latest is not None else [])
    lookback = max(task.feature_config.recency_lookback_days, 7 * N_WEEKS, registry.LONG_WINDOW_DAYS) + 1
    start = min(dates) - pd.Timedelta(days=lookback) if dates else None
    # the churn label's snapshot may lie a few days past T + H (`features.labels.horizon_months`)
    label_days = task.label_config.horizon_days + 1 + LABEL_SNAPSHOT_SLACK_DAYS
    stop = (max(task.as_of) + pd.Timedelta(days=label_days)) if task.as_of else None
    if task.latest is not None:
        stop = max(stop, task.latest + pd.Timedelta(days=1)) if stop is not None else task.latest + pd.Timedelta(days=1)
    # prepare straight from the reader so the raw frames are freed before the features are computed
    # holdings: the AUM history features and labels need 6 months before the earliest date
    holdings_start = (min(dates) - pd.DateOffset(months=8)) if dates else None
    lo = task.lo if task.read_lo is None else task.read_lo
    hi = task.hi if task.read_hi is None else task.read_hi
    return prepare(read_partition(Path(task.raw_dir), lo, hi, start, stop, holdings_start), task.snapshot_dates)


def run_partition(task: PartitionTask, prep: Prepared | None = None) -> dict[str, Any]:
    """Read one customer range (unless `prep`, its `read_task`, is given), build its panel and latest
    rows, write them as part files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if prep is None:
        prep = read_task(task)
    panel, latest = partition_prepared(prep, task.as_of, task.latest, task.feature_config, task.label_config)
    del prep
    result: dict[str, Any] = {"index": task.index, "panel_rows": len(panel), "latest_rows": 0}
    parts = Path(task.parts_dir)
    if task.as_of:
        schema = registry.arrow_schema(labels=True)
        pq.write_table(
            pa.Table.from_pandas(panel[schema.names], schema=schema, preserve_index=False),
            parts / f"panel-{task.index:05d}.parquet",
        )
    if latest is not None:
        lschema = registry.arrow_schema(labels=False)
        pq.write_table(
            pa.Table.from_pandas(latest[lschema.names], schema=lschema, preserve_index=False),
            parts / f"latest-{task.index:05d}.parquet",
        )
        result["latest_rows"] = len(latest)
    return result


def _row_group_starts(path: Path) -> np.ndarray | None:
    """First customer_id of each customer chunk of the file, if its chunks hold disjoint, ordered id ranges.

    A chunk is a run of consecutive row groups whose customer ranges overlap (the simulator
    writes one row group per month of each customer chunk); None when there are fewer than
    two chunks or statistics are missing.
    """
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    idx = meta.schema.to_arrow_schema().get_field_index("customer_id")
    if idx < 0 or meta.num_row_groups < 2:
        return None
    chunks: list[list] = []  # [lo, hi] customer ranges, disjoint and increasing
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(idx).statistics
        if st is None or not st.has_min_max:
            return None
        if not chunks or st.min > chunks[-1][1]:  # a new chunk
            chunks.append([st.min, st.max])
            continue
        chunks[-1] = [min(chunks[-1][0], st.min), max(chunks[-1][1], st.max)]
        while len(chunks) > 1 and chunks[-1][0] <= chunks[-2][1]:  # overlaps earlier chunks: merge
            last = chunks.pop()
            chunks[-1] = [min(chunks[-1][0], last[0]), max(chunks[-1][1], last[1])]
    if len(chunks) < 2:
        return None
    return np.array([c[0] for c in chunks])


def _balance(chunks: list[np.ndarray], pieces: list[np.ndarray], partition_size: int, workers: int) -> list[np.ndarray]:
    """Regroup whole `pieces` (in order) so the partition count is a multiple of `workers`, if possible.

    Five equal partitions on two workers take three rounds with one worker idle in the last;
    six smaller ones (still at most `partition_size` customers, still whole row-group chunks)
    take 2.5 rounds' worth of work. Keeps `chunks` when no such regrouping exists.
    """
    if workers <= 1 or len(chunks) % workers == 0 or len(pieces) <= len(chunks):
        return chunks
    target = -(-len(chunks) // workers) * workers
    while target <= len(pieces):
        # contiguous runs of pieces, the first ones one piece longer (larger partitions start first)
        groups = [np.concatenate(pieces[a[0] : a[-1] + 1]) for a in np.array_split(np.arange(len(pieces)), target)]
        if all(0 < len(g) <= partition_size for g in groups):
            return groups
        target += workers
    return chunks


def plan_partitions(
    customers_path: Path, partition_size: int, workers: int, layout_path: Path | None = None
) -> list[tuple[int, int]]:
    """Contiguous customer_id ranges (inclusive) of at most about `partition_size` customers.

    When `layout_path` (the largest table, transactions) has row groups with disjoint, ordered
    customer ranges (row groups of the same customers, e.g. one per month, count as one
    chunk), partitions follow chunk boundaries, so no row group is decoded by two workers; a
    chunk with more than `partition_size` customers is split evenly. Where whole chunks allow
    it, the number of partitions is a multiple of `workers` (no worker idles in the last
    round). There are at least `workers` partitions (when there are that many customers).
    """
    from features.contract import customer_ids

    ids = customer_ids(customers_path)  # the contract's rules for the id column: InputError if broken
    starts = _row_group_starts(layout_path) if layout_path is not None and layout_path.exists() else None
    if starts is None:
        n_parts = max(min(workers, len(ids)), -(-len(ids) // partition_size))
        chunks: list[np.ndarray] = np.array_split(ids, n_parts)
    else:
        group = np.maximum(np.searchsorted(starts, ids, side="right") - 1, 0)
        # whole row-group chunks (an oversized one split evenly): never split further
        pieces: list[tuple[np.ndarray, bool]] = []
        for g in np.unique(group):
            members = ids[group == g]
            if len(members) > partition_size:
                pieces.extend((m, True) for m in np.array_split(members, -(-len(members) // partition_size)))
            else:
                pieces.append((members, False))
        chunks = []
        current: list[np.ndarray] = []
        for members, oversized in pieces:
            if oversized:
                if current:
                    chunks.append(np.concatenate(current))
                    current = []
                chunks.append(members)
            elif sum(len(c) for c in current) + len(members) > partition_size:
                chunks.append(np.concatenate(current))
                current = [members]
            else:
                current.append(members)
        if current:
            chunks.append(np.concatenate(current))
        chunks = _balance(chunks, [m for m, _ in pieces], partition_size, workers)
        while len(chunks) < min(workers, len(ids)):  # keep every worker busy
            i = max(range(len(chunks)), key=lambda k: len(chunks[k]))
            big = chunks.pop(i)
            chunks[i:i] = np.array_split(big, 2)
    return [(int(c[0]), int(c[-1])) for c in chunks if len(c)]


def reading_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The id range each partition reads from holdings, transactions and events: from its first
    customer to just before the next partition's (the first from the smallest int64, the last to
    the largest), so rows of ids between, before or after the customers are read by exactly one
    partition, where referential integrity reports them instead of no partition reading them."""
    lo_all, hi_all = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
    starts = [lo_all] + [lo for lo, _ in ranges[1:]]
    ends = [lo - 1 for lo, _ in ranges[1:]] + [hi_all]
    return list(zip(starts, ends, strict=True))


def _concat_parts(parts: list[Path], dest: Path, schema) -> int:
    """Stream part files into one Parquet file, written atomically (`core.io.atomic_path`)."""
    import pyarrow.parquet as pq

    from core.io import atomic_path

    rows = 0
    with atomic_path(dest) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for part in parts:
            table = pq.read_table(part, schema=schema)
            if table.num_rows:
                writer.write_table(table)
                rows += table.num_rows
    return rows


def share_cores(workers: int) -> None:
    """Pool initializer: give pyarrow's decode threads this process's share of the cores.

    Each worker process otherwise starts a pool of one thread per core, so W workers on C cores
    run W x C decode threads that preempt each other.
    """
    import pyarrow as pa

    pa.set_cpu_count(max(1, (os.cpu_count() or 1) // max(workers, 1)))


def read_ahead(
    items: Sequence,
    read: Callable[[Any], Any],
    build: Callable[[Any, Any], Any],
    on_done: Callable[[], None] | None = None,
) -> list:
    """`[build(item, read(item)) for item in items]`, reading the next item while building this one.

    `read` runs on one helper thread, `build` on this one: Parquet decoding and most numpy work
    release the GIL, so the two share the cores. At most two items' reads are held at once; an
    error in either is raised here, in item order.
    """
    from concurrent.futures import ThreadPoolExecutor

    results = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clientlens-read") as reader:
        ahead = reader.submit(read, items[0]) if len(items) else None
        for i, item in enumerate(items):
            assert ahead is not None  # submitted for every item, items[0] before the loop
            data = ahead.result()
            ahead = reader.submit(read, items[i + 1]) if i + 1 < len(items) else None
            results.append(build(item, data))
            del data
            if on_done is not None:
                on_done()
    return results


def _run_local(tasks: list[PartitionTask], workers: int, on_done: Callable[[], None]) -> list[dict]:
    if workers <= 1 or len(tasks) <= 1:
        return read_ahead(tasks, read_task, run_partition, on_done)  # one process: next read overlaps this build
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # forkserver, not fork: forking a parent that already ran pyarrow's thread pool can deadlock. The
    # server imports the heavy modules once, then forks each worker from that clean state.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["features.panel", "features.contract"])
    n = min(workers, len(tasks))
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=share_cores, initargs=(n,)) as pool:
        # largest ranges first (stable): the small ones fill the last round
        futures = [pool.submit(run_partition, t) for t in sorted(tasks, key=lambda t: t.lo - t.hi)]
        results = []
        for fut in as_completed(futures):
            results.append(fut.result())
            on_done()
    return results


def _run_dask(tasks: list[PartitionTask], workers: int, scheduler: str | None, on_done: Callable[[], None]):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=max(workers, 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        futures = client.map(run_partition, sorted(tasks, key=lambda t: t.lo - t.hi), pure=False)  # largest first
        results = []
        for fut in as_completed(futures):
            results.append(fut.result())
            on_done()
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def build_panel(
    raw_dir: str | Path,
    out_dir: str | Path,
    as_of: Sequence | None = None,
    *,
    horizon_days: int = 90,
    every_months: int = 1,
    workers: int = 1,
    engine: str = "local",
    scheduler: str | None = None,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    feature_config: FeatureConfig | None = None,
    label_config: LabelConfig | None = None,
    latest: bool = True,
    panel: bool = True,
    on_partition: Callable[[], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Build `panel.parquet` (+ `latest.parquet`) in `out_dir`; return the summary.

    `as_of`: dates for the panel (default `default_as_of_dates`); `horizon_days` sets the
    label horizon (overrides `label_config.horizon_days`). Summary keys: `rows`, `columns`,
    `as_of`, `latest_as_of`, `latest_rows`, `out`, `panel`, `latest`, `missing_tables`,
    `incomplete_families` (family -> features left NaN because a table is missing),
    `warnings` (e.g. an empty market table), `partitions`, `engine`, `workers`, `seconds`.
    """
    from core.errors import InputError
    from features.contract import EMPTY_MARKET, open_table_file

    t0 = time.perf_counter()
    if engine not in ("local", "dask"):
        raise InputError(f"engine must be 'local' or 'dask', got {engine!r}")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    feature_config = feature_config or FeatureConfig()
    if horizon_days < 1:
        raise InputError(f"horizon_days must be >= 1, got {horizon_days}")
    label_config = (label_config or LabelConfig()).model_copy(update={"horizon_days": horizon_days})
    paths = raw_paths(Path(raw_dir))
    missing = [t for t in vocab.TABLES if t not in paths]
    first, last = data_dates(paths)
    if not panel:
        dates = []
    elif as_of:
        dates = sorted({pd.Timestamp(d).normalize() for d in as_of})
    else:
        dates = default_as_of_dates(first, last, horizon_days, every_months)
        if not dates:
            raise InputError(
                f"data from {first.date()} to {last.date()} is too short for a panel: need {WARMUP_MONTHS} months of "
                f"history plus a {horizon_days}-day horizon; pass --as-of dates explicitly"
            )
    warnings: list[str] = []
    if "market" in paths and open_table_file("market", paths["market"]).metadata.num_rows == 0:
        warnings.append(EMPTY_MARKET % paths["market"])
        log.warning(warnings[-1])
    snapshot_dates = None
    if "holdings" in paths:
        from core.io import read_table

        col = read_table(paths["holdings"], columns=["snapshot_date"], what="holdings table")["snapshot_date"]
        snapshot_dates = tuple(_naive(x) for x in col.dropna().drop_duplicates().sort_values())
    ranges = plan_partitions(paths["customers"], partition_size, workers, paths.get("transactions"))
    read_ranges = reading_ranges(ranges)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts_dir = out / f".parts-{uuid.uuid4().hex[:12]}"
    parts_dir.mkdir()
    tasks = [
        PartitionTask(
            i,
            lo,
            hi,
            str(Path(raw_dir).resolve()),
            tuple(dates),
            last if latest else None,
            snapshot_dates,
            feature_config,
            label_config,
            str(parts_dir.resolve()),
            *read_ranges[i],
        )
        for i, (lo, hi) in enumerate(ranges)
    ]
    if on_plan:
        on_plan(len(tasks))
    done = on_partition or (lambda: None)
    try:
        if engine == "dask":
            results = _run_dask(tasks, workers, scheduler, done)
        else:
            results = _run_local(tasks, workers, done)
        order = sorted(r["index"] for r in results)
        rows, panel_path = 0, None
        if panel:
            panel_path = out / "panel.parquet"
            rows = _concat_parts(
                [parts_dir / f"panel-{i:05d}.parquet" for i in order], panel_path, registry.arrow_schema(labels=True)
            )
        latest_rows, latest_path = 0, None
        if latest:
            latest_path = out / "latest.parquet"
            latest_rows = _concat_parts(
                [parts_dir / f"latest-{i:05d}.parquet" for i in order], latest_path, registry.arrow_schema(labels=False)
            )
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    uncomputable = registry.features_needing(set(missing))
    incomplete: dict[str, int] = {}
    for name in uncomputable:
        fam = registry.feature(name).family
        incomplete[fam] = incomplete.get(fam, 0) + 1
    if missing:
        log.warning("raw folder lacks %s: %d features left NaN (%s)", missing, len(uncomputable), incomplete)
    return {
        "rows": rows,
        "columns": len(registry.arrow_schema(labels=True)),
        "as_of": [d.date().isoformat() for d in dates],
        "horizon_days": horizon_days,
        "latest_as_of": last.date().isoformat() if latest else None,
        "latest_rows": latest_rows,
        "out": str(out),
        "panel": str(panel_path) if panel_path else None,
        "latest": str(latest_path) if latest_path else None,
        "missing_tables": missing,
        "incomplete_families": incomplete,
        "warnings": warnings,
        "partitions": len(tasks),
        "engine": engine,
        "workers": workers,
        "seconds": round(time.perf_counter() - t0, 2),
    }


__all__ = ["build_panel", "default_as_of_dates", "partition_tables", "read_partition", "run_partition"]
