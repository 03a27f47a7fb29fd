"""Atomic writes leave the old file or the new one, never a part; the reader names what is wrong."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import InputError
from core.io import atomic_path, read_table, write_table, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "x.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.txt"]


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_tables_round_trip(tmp_path, name):
    frame = pd.DataFrame({"customer_id": [1, 2], "aum": [1.5, None]})
    path = write_table(frame, tmp_path / "sub" / name)
    pd.testing.assert_frame_equal(read_table(path), frame)


def test_unreadable_tables_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "nope.parquet", what="--features")
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_table(tmp_path / "empty.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError, match="cannot be read as Parquet"):
        read_table(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="is a folder"):
        read_table(tmp_path)
