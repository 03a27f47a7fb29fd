"""The inference log: day-partitioned parts, atomic writes, buffered writer, reader for monitoring."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from serving.inference_log import InferenceLogWriter, list_parts, log_frame, read_inference_log, write_part


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
