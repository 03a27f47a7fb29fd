"""The inference log: day-partitioned parts, atomic writes, buffered writer, reader for monitoring."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from serving.inference_log import (
    InferenceLogWriter,
    _to_table,
    list_parts,
    log_columns,
    log_frame,
    log_table,
    merge_records,
    read_inference_log,
    write_part,
)


def _rows(ts: str, n: int = 3, request_id: str = "r1") -> pd.DataFrame:
    feats = pd.DataFrame({"aum": np.arange(n, dtype=float), "region": ["metro", None, "rural"][:n]})
    outs = pd.DataFrame({"tier": ["mass"] * n, "churn_proba": np.linspace(0.1, 0.3, n), "churn": [False] * n})
    return log_frame(feats, outs, customer_ids=np.arange(n) + 100, request_id=request_id,
                     versions={"tier": "1", "churn": "2", "risk": "3"}, ts=pd.Timestamp(ts, tz="UTC"))  # fmt: skip


def test_layout_columns_and_round_trip(tmp_path):
    paths = write_part(_rows("2026-11-29 10:00"), tmp_path)
    assert len(paths) == 1
    assert paths[0].parent.name == "date=2026-11-29"
    assert paths[0].name.startswith("part-") and paths[0].suffix == ".parquet"
    assert not list(tmp_path.rglob("*.tmp"))
    log = read_inference_log(root=tmp_path)
    assert list(log.columns[:3]) == ["ts", "request_id", "customer_id"]
    assert {"aum", "region", "tier", "churn_proba", "version_tier", "version_churn", "version_risk"} <= set(log.columns)
    assert str(log["ts"].dtype) == "datetime64[ns, UTC]"
    assert log["customer_id"].tolist() == [100, 101, 102]
    assert log["version_churn"].unique().tolist() == ["2"]
    assert log["region"].tolist() == ["metro", None, "rural"]


def test_parts_dictionary_encode_only_strings_and_keep_statistics_of_the_keys(tmp_path):
    """The writer's cheaper encoding (#18): floats plain, strings by dictionary, min/max of the keys only."""
    import pyarrow.parquet as pq

    frame = _rows("2026-11-29 10:00", n=3)
    (path,) = write_part(frame, tmp_path)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunks = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert not any("DICTIONARY" in e for e in chunks["aum"].encodings)
    assert any("DICTIONARY" in e for e in chunks["region"].encodings)
    assert chunks["ts"].statistics is not None and chunks["customer_id"].statistics.has_min_max
    assert chunks["churn_proba"].statistics is None
    assert chunks["aum"].compression == "ZSTD"
    pd.testing.assert_frame_equal(read_inference_log(root=tmp_path), frame.reset_index(drop=True), check_dtype=False)


def test_rows_are_split_by_utc_day_and_filtered_by_time(tmp_path):
    frame = pd.concat([_rows("2026-11-28 23:59:59", request_id="a"), _rows("2026-11-29 00:00:01", request_id="b")])
    assert len(write_part(frame, tmp_path)) == 2
    assert len(read_inference_log(root=tmp_path)) == 6
    assert set(read_inference_log(since="2026-11-29", root=tmp_path)["request_id"]) == {"b"}
    assert set(read_inference_log(until="2026-11-29", root=tmp_path)["request_id"]) == {"a"}
    assert len(list_parts(tmp_path, since="2026-11-29")) == 1


def test_reader_ignores_temporary_files_and_handles_empty(tmp_path):
    assert read_inference_log(root=tmp_path / "nothing").empty
    write_part(_rows("2026-11-29 10:00"), tmp_path)
    (tmp_path / "date=2026-11-29" / ".part-crashed.parquet.tmp").write_bytes(b"half a file")
    assert len(read_inference_log(root=tmp_path)) == 3


def test_parts_with_different_columns_are_unioned(tmp_path):
    write_part(_rows("2026-11-29 10:00"), tmp_path)
    extra = _rows("2026-11-29 11:00").assign(new_feature=1.5)
    write_part(extra, tmp_path)
    log = read_inference_log(root=tmp_path)
    assert len(log) == 6 and log["new_feature"].isna().sum() == 3


def test_writer_buffers_and_flushes_on_close(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_seconds=3600).start()
    for i in range(5):
        writer.append_scored(
            ts=datetime(2026, 11, 29, 9, 30, tzinfo=UTC), request_id=f"r{i}", customer_ids=np.array([i]),
            features={"aum": np.array([float(i)]), "region": np.array(["metro"], dtype=object)},
            outputs={"tier": np.array(["mass"], dtype=object), "churn_proba": np.array([0.5])},
            versions={"tier": "1", "churn": "1", "risk": "1"},
        )  # fmt: skip
    writer.append(_rows("2026-11-29 10:00", n=2, request_id="frame"))
    assert read_inference_log(root=tmp_path).empty  # still buffered
    writer.close()
    log = read_inference_log(root=tmp_path)
    assert len(log) == 7 and writer.rows_written == 7
    assert sorted(log["request_id"].unique()) == ["frame", "r0", "r1", "r2", "r3", "r4"]
    assert len(list(tmp_path.rglob("part-*.parquet"))) == 1  # one part per flush and day


def test_writer_flushes_in_the_background_when_enough_rows_wait(tmp_path):
    import time

    writer = InferenceLogWriter(tmp_path, flush_seconds=3600, flush_rows=4).start()
    writer.append(_rows("2026-11-29 10:00", n=3))
    writer.append(_rows("2026-11-29 10:01", n=3))
    deadline = time.monotonic() + 10
    while not list(tmp_path.rglob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(read_inference_log(root=tmp_path)) == 6
    writer.close()


def test_writer_keeps_rows_when_a_write_fails(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the log folder should be")
    writer = InferenceLogWriter(blocked, flush_seconds=3600)
    writer.append(_rows("2026-11-29 10:00"))
    assert writer.flush() == [] and writer.rows_written == 0
    blocked.unlink()
    assert len(writer.flush()) == 1 and writer.rows_written == 3


def test_a_full_buffer_drops_the_oldest_requests_and_counts_their_customers(tmp_path, monkeypatch):
    """The log folder unwritable and requests arriving while a write fails: once more than `max_rows` wait,
    the oldest items go first, and a dropped request counts its customers (not its buffered tuple's
    fields), so rows dropped plus rows buffered is every row accepted."""
    import serving.inference_log as inference_log

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the log folder should be")
    writer = InferenceLogWriter(blocked, flush_seconds=3600, max_rows=10)

    def request(i: int, n: int) -> None:
        writer.append_scored(
            ts=datetime(2026, 11, 29, 9, 30, tzinfo=UTC), request_id=f"r{i}", customer_ids=np.arange(n),
            features={"aum": np.arange(n, dtype=float)}, outputs={"churn_proba": np.full(n, 0.5)},
            versions={"tier": "1", "churn": "1", "risk": "1"},
        )  # fmt: skip

    real_write = inference_log.write_part

    def write_while_requests_arrive(frame, root):
        request(1, 7)  # answered while the (failing) write of the first request is under way
        request(2, 5)
        return real_write(frame, root)

    monkeypatch.setattr(inference_log, "write_part", write_while_requests_arrive)
    request(0, 8)
    assert writer.flush() == []
    # 20 waiting > 10: the failed 8-row frame goes, then the 7-customer request; the 5 newest stay.
    assert (writer.rows_dropped, writer.buffered_rows) == (15, 5)
    monkeypatch.setattr(inference_log, "write_part", real_write)
    blocked.unlink()
    assert len(writer.flush()) == 1 and writer.rows_written == 5 and writer.buffered_rows == 0
    assert read_inference_log(root=blocked)["request_id"].unique().tolist() == ["r2"]


def _scored_like_the_service(i: int, n: int) -> tuple:
    """A request's buffered item with every kind of column scoring gives (floats with NaN, ints, bools,
    text and None, a column that is None throughout, JSON text)."""
    rng = np.random.default_rng(i)
    aum = rng.lognormal(10, 1, n)
    aum[::3] = np.nan
    features = {"aum": aum, "tenure_months": rng.integers(0, 200, n), "region": np.array(["metro", None, "rural"] * n, dtype=object)[:n],
                "has_mortgage": rng.random(n) < 0.5}  # fmt: skip
    outputs = {
        "tier": np.array(["mass", "affluent"] * n, dtype=object)[:n],
        "churn_proba": rng.random(n),
        "churn": rng.random(n) < 0.2,
        "churn_driver": np.array([None, "rates"] * n, dtype=object)[:n],
        "note": np.full(n, None, dtype=object),
        "upgrade_proba": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
        "actions": np.array(['[{"action": "call"}]'] * n, dtype=object),
    }
    return (np.datetime64(1_764_000_000_000_000_000 + i, "ns"), f"r{i}", np.arange(n) + 10 * i, features, outputs,
            {"tier": "3", "churn": "5", "risk": str(i)})  # fmt: skip


def test_buffered_requests_become_the_table_pandas_would_make_of_their_frame():
    """The writer builds a part's Arrow table from the merged columns (#18); it is the table
    `pa.Table.from_pandas` made of their frame: the same types and values (NaN and None as nulls)."""
    items = [_scored_like_the_service(i, n) for i, n in enumerate([1, 5, 2, 1])]
    data = merge_records(items)
    frame = pd.DataFrame(data)
    frame["ts"] = frame["ts"].dt.tz_localize("UTC")
    want, got = _to_table(frame), log_table(data)
    assert got.schema.remove_metadata() == want.schema.remove_metadata()
    assert got.equals(want) and got.column("aum").null_count == want.column("aum").null_count > 0


def test_the_writer_reads_back_what_it_was_given(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_seconds=3600)
    items = [_scored_like_the_service(i, n) for i, n in enumerate([3, 1, 4])]
    for item in items:
        ts, rid, ids, features, outputs, versions = item
        writer.append_scored(ts=ts, request_id=rid, customer_ids=ids, features=features, outputs=outputs,
                             versions=versions)  # fmt: skip
    writer.close()
    want = pd.concat([log_frame(f, o, customer_ids=ids, request_id=r, versions=v, ts=ts)
                      for ts, r, ids, f, o, v in items], ignore_index=True)  # fmt: skip
    got = read_inference_log(root=tmp_path)
    pd.testing.assert_frame_equal(got, want[got.columns])
    assert list(got.columns) == list(want.columns)


def test_the_writer_splits_requests_of_two_utc_days_into_two_parts(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_seconds=3600)
    for i, stamp in enumerate(["2026-11-29T23:59:59.999999999", "2026-11-30T00:00:00"]):
        _, _, ids, features, outputs, versions = _scored_like_the_service(i, 2)
        writer.append_scored(ts=np.datetime64(stamp, "ns"), request_id=f"r{i}", customer_ids=ids,
                             features=features, outputs=outputs, versions=versions)  # fmt: skip
    assert [p.parent.name for p in writer.flush()] == ["date=2026-11-29", "date=2026-11-30"]
    assert read_inference_log("2026-11-30", root=tmp_path)["request_id"].tolist() == ["r1", "r1"]


def test_rows_that_cannot_form_one_table_are_counted_as_dropped_and_the_writer_goes_on(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_seconds=3600)
    ts, rid, ids, features, outputs, versions = _scored_like_the_service(0, 2)
    writer.append_scored(ts=ts, request_id="bad", customer_ids=ids, features=features,
                         outputs={**outputs, "tier": np.array([1.5, "text"], dtype=object)}, versions=versions)  # fmt: skip
    assert writer.flush() == [] and writer.rows_dropped == 2 and writer.buffered_rows == 0
    writer.append_scored(ts=ts, request_id="good", customer_ids=ids, features=features, outputs=outputs,
                         versions=versions)  # fmt: skip
    assert len(writer.flush()) == 1 and writer.rows_written == 2
    assert read_inference_log(root=tmp_path)["request_id"].tolist() == ["good", "good"]


def test_buffered_requests_merge_as_their_log_columns_concatenated():
    """The writer's merge of many buffered requests (#18: one array per column, not ~190 per request) gives
    each request's `log_columns`, concatenated column by column, in the same column order, with None where
    a request lacks a column (mixed layouts, several rows, datetime and datetime64 stamps, a Series)."""
    versions = {"tier": "3", "churn": "5", "risk": "1"}
    one = {"age": np.array([41.0]), "region": np.array(["metro"], dtype=object)}
    out = {"churn_proba": np.array([0.2]), "tier": np.array(["mass"], dtype=object)}
    items = [
        (np.datetime64(1_700_000_000_000_000_000, "ns"), "a", np.array([1]), one, out, versions),
        (datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "b", np.array([2, 3, 4]),
         {"age": np.array([30.0, np.nan, 50.0]), "region": pd.Series(["rural", None, "metro"])},
         {"churn_proba": np.array([0.1, 0.5, 0.9]), "extra": np.array([1, 2, 3]), "customer_id": np.array([9, 9, 9])},
         {"tier": "4"}),
        (np.datetime64("2026-12-01T10:00:00.123456789"), "c", np.array([5]), one, out, versions),
    ]  # fmt: skip
    records = [log_columns(*item) for item in items]
    order = list(dict.fromkeys(c for r in records for c in r))
    got = merge_records(items)
    assert list(got) == order
    for c in order:
        want = np.concatenate([r[c] if c in r else np.full(len(r["customer_id"]), None, dtype=object) for r in records])
        assert got[c].dtype == want.dtype, c
        assert got[c].tolist() == want.tolist() or np.array_equal(got[c], want, equal_nan=True), c
    assert got["customer_id"].tolist() == [1, 2, 3, 4, 5]  # the key, never a same-named output
    assert got["extra"].tolist() == [None, 1, 2, 3, None]
    assert got["version_churn"].tolist() == ["5", "", "", "", "5"]
    single = merge_records(items[:1])
    assert list(single) == list(records[0]) and all(np.array_equal(single[c], records[0][c]) for c in single)


def test_requests_of_one_layout_merge_as_their_log_columns():
    """The usual buffer (every request the same columns, #18's gathered path), with a Series and a list."""
    versions = {"tier": "3", "churn": "5", "risk": "1"}
    items = [
        (np.datetime64(1_700_000_000_000_000_000 + i, "ns"), f"r{i}", np.array([i]),
         {"age": np.array([40.0 + i]), "region": pd.Series(["metro"]) if i == 1 else np.array([None], dtype=object)},
         {"churn_proba": [0.5] if i == 2 else np.array([0.1 * i]), "churn": np.array([i % 2 == 0])}, versions)
        for i in range(4)
    ]  # fmt: skip
    records = [log_columns(*item) for item in items]
    got = merge_records(items)
    assert list(got) == list(records[0])
    for c in got:
        want = np.concatenate([r[c] for r in records])
        assert got[c].dtype == want.dtype and got[c].tolist() == want.tolist(), c
