"""`clientlens features` enforces the raw contract exactly as `clientlens validate` does (issue #18, defect 4).

Each broken raw folder is refused by both commands with exit 2 and a message naming the table and the
rule, and `features` writes nothing; what `validate` accepts (tz-aware times), `features` builds, with
the same values as the tz-naive data. An empty market table is accepted by both with a warning.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from tests.features.toydata import toy_raw

runner = CliRunner()


@pytest.fixture(scope="module")
def base_raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("contract_cli") / "raw"
    raw.mkdir()
    for table, frame in toy_raw(1, n_customers=12).items():
        frame.to_parquet(raw / f"{table}.parquet", index=False)
    return raw


def _copy(base: Path, tmp_path: Path, mutate: Callable[[Path], None]) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(base, raw)
    mutate(raw)
    return raw


def _rewrite(raw: Path, table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = raw / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _invoke(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    lines = result.stdout.strip().splitlines()
    return result.exit_code, json.loads(lines[-1]) if lines else {}


def _both_refuse(raw: Path, tmp_path: Path, *needles: str) -> None:
    """validate and features: exit 2, every needle (table, column, rule) in the message; nothing written."""
    out = tmp_path / "features"
    for args in (
        ["validate", "--raw", str(raw)],
        ["features", "--raw", str(raw), "--out", str(out), "--partition-size", "4"],
    ):
        code, summary = _invoke(*args)
        assert code == 2, (args[0], code, summary)
        for needle in needles:
            assert needle in summary["error"], (args[0], needle, summary["error"])
    assert not out.exists() or not list(out.glob("*.parquet")), list(out.iterdir())


def _duplicate_column(raw: Path, table: str, column: str) -> None:
    path = raw / f"{table}.parquet"
    t = pq.read_table(path)
    pq.write_table(pa.Table.from_arrays([*t.columns, t[column]], names=[*t.column_names, column]), path)


def _ts_in_year_3000(raw: Path) -> None:
    path = raw / "transactions.parquet"
    t = pq.read_table(path)
    ts = t["ts"].cast(pa.timestamp("us"), safe=False).to_pylist()
    ts[0] = dt.datetime(3000, 1, 1)
    t = t.set_column(t.column_names.index("ts"), "ts", pa.array(ts, pa.timestamp("us")))
    pq.write_table(t, path)


def _truncate(raw: Path) -> None:
    path = raw / "transactions.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _as_folder(raw: Path) -> None:
    path = raw / "events.parquet"
    frame = pd.read_parquet(path)
    path.unlink()
    path.mkdir()
    frame.to_parquet(path / "part-0.parquet", index=False)


def _unknown_customer(customer_id: int) -> Callable[[Path], None]:
    """A transaction of an id no customer has (the customers are 10, 20, ..., 120)."""

    def mutate(raw: Path) -> None:
        def change(df: pd.DataFrame) -> pd.DataFrame:
            extra = df.head(1).assign(customer_id=customer_id, txn_id=10**6)
            return pd.concat([df, extra], ignore_index=True)

        _rewrite(raw, "transactions", change)

    return mutate


CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    # below every customer, between two partitions (--partition-size 4: 10..40, 50..80, 90..120), above all
    **{
        f"unknown customer {cid} in transactions": (
            _unknown_customer(cid),
            ("transactions.customer_id", "exists in customers"),
        )
        for cid in (5, 45, 999_999)
    },
    "empty customers table": (
        lambda raw: _rewrite(raw, "customers", lambda df: df.head(0)),
        ("customers.customer_id", "at least one row"),
    ),
    "string customer_id": (
        lambda raw: _rewrite(raw, "customers", lambda df: df.assign(customer_id=df["customer_id"].astype(str))),
        ("customers.customer_id", "dtype is integer"),
    ),
    "string customer_id in transactions": (
        lambda raw: _rewrite(raw, "transactions", lambda df: df.assign(customer_id=df["customer_id"].astype(str))),
        ("transactions.customer_id", "dtype is integer"),
    ),
    "null customer_id": (
        lambda raw: _rewrite(
            raw, "customers", lambda df: df.assign(customer_id=df["customer_id"].astype("Int64").mask(df.index == 0))
        ),
        ("customers.customer_id", "not null"),
    ),
    "null customer_id in transactions": (
        lambda raw: _rewrite(
            raw,
            "transactions",
            lambda df: df.assign(customer_id=df["customer_id"].astype("Int64").mask(df.index == 3)),
        ),
        ("transactions.customer_id", "not null"),
    ),
    "duplicate column names": (
        lambda raw: _duplicate_column(raw, "transactions", "amount"),
        ("transactions.amount", "unique column names"),
    ),
    "truncated Parquet": (_truncate, ("transactions.parquet", "cannot read as Parquet")),
    "zero-byte Parquet": (
        lambda raw: (raw / "events.parquet").write_bytes(b""),
        ("events.parquet", "cannot read as Parquet", "0 bytes"),
    ),
    "dataset folder in place of a file": (_as_folder, ("events.parquet", "'events' is a folder")),
    "timestamp past 2262": (_ts_in_year_3000, ("transactions.ts", "2262-04-11")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_features_and_validate_refuse_the_same_broken_raw_data(case, base_raw, tmp_path):
    mutate, needles = CASES[case]
    _both_refuse(_copy(base_raw, tmp_path, mutate), tmp_path, *needles)


def _tz_aware(raw: Path) -> None:
    _rewrite(raw, "transactions", lambda df: df.assign(ts=df["ts"].dt.tz_localize("UTC")))
    # another zone for events: the contract compares in UTC
    _rewrite(raw, "events", lambda df: df.assign(ts=df["ts"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")))


def test_tz_aware_times_are_accepted_by_both_and_give_the_same_features(base_raw, tmp_path):
    raw = _copy(base_raw, tmp_path, _tz_aware)
    code, summary = _invoke("validate", "--raw", str(raw))
    assert code == 0, summary
    built = {}
    for name, folder in (("naive", base_raw), ("aware", raw)):
        code, summary = _invoke("features", "--raw", str(folder), "--out", str(tmp_path / name))
        assert code == 0, summary
        built[name] = {f: pd.read_parquet(tmp_path / name / f"{f}.parquet") for f in ("panel", "latest")}
    for f in ("panel", "latest"):
        assert len(built["naive"][f]) > 0
        pd.testing.assert_frame_equal(built["aware"][f], built["naive"][f], check_exact=True)


def test_an_empty_market_table_warns_in_both(base_raw, tmp_path, caplog):
    raw = _copy(base_raw, tmp_path, lambda raw: _rewrite(raw, "market", lambda df: df.head(0)))
    with caplog.at_level(logging.WARNING):
        code, _ = _invoke("validate", "--raw", str(raw))
    assert code == 0
    assert any("market table has no rows" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        code, summary = _invoke("features", "--raw", str(raw), "--out", str(tmp_path / "out"))
    assert code == 0, summary
    assert any("market table has no rows" in w for w in summary["warnings"])
    assert any("market table has no rows" in r.getMessage() for r in caplog.records)
    latest = pd.read_parquet(tmp_path / "out" / "latest.parquet")
    assert latest["index_return_6m"].isna().all() and len(latest) > 0
