"""The panel and latest tables: partitioning, engines, the CLI, missing tables, behaviour on simulated data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features import registry
from features.panel import build_panel, default_as_of_dates
from tests.features.frames import validate_feature_frame
from tests.features.toydata import toy_raw


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    """A tiny raw folder (40 customers) written like the simulator: sorted by customer, several row groups."""
    out = tmp_path_factory.mktemp("toy_raw")
    for table, frame in toy_raw(11, n_customers=40).items():
        frame.to_parquet(out / f"{table}.parquet", index=False, row_group_size=400)
    return out


@pytest.fixture(scope="module")
def toy_panel(toy_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy_features_w1")
    build_panel(toy_dir, out, workers=1, partition_size=7)
    return out


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / name)


def test_panel_and_latest_follow_the_schema(toy_panel):
    panel, latest = read(toy_panel, "panel.parquet"), read(toy_panel, "latest.parquet")
    validate_feature_frame(panel, labels=True, where="panel.parquet")
    validate_feature_frame(latest, where="latest.parquet")
    assert list(panel.columns) == registry.arrow_schema(labels=True).names
    assert list(latest.columns) == registry.arrow_schema(labels=False).names
    assert panel["as_of"].nunique() >= 6 and latest["as_of"].nunique() == 1
    assert panel[["customer_id", "as_of"]].equals(
        panel[["customer_id", "as_of"]].sort_values(["customer_id", "as_of"]).reset_index(drop=True)
    )
    assert set(panel["tier_future"].dropna()) <= {"mass", "affluent", "hnw"}
    assert panel["churn"].isin([0.0, 1.0]).sum() > 0 and panel["churn"].isna().sum() > 0
    assert not any(p.name.startswith(".") for p in toy_panel.iterdir())  # no temp files left


def test_default_as_of_dates():
    dates = default_as_of_dates(pd.Timestamp("2024-01-01"), pd.Timestamp("2025-06-30"), 90)
    assert dates[0] == pd.Timestamp("2024-07-31") and dates[-1] == pd.Timestamp("2025-03-31")
    assert all(d == d + pd.offsets.MonthEnd(0) for d in dates)
    every3 = default_as_of_dates(pd.Timestamp("2024-01-01"), pd.Timestamp("2025-06-30"), 90, every_months=3)
    assert every3[-1] == dates[-1] and len(every3) == 3


def test_two_workers_give_identical_output(toy_dir, toy_panel, tmp_path):
    summary = build_panel(toy_dir, tmp_path, workers=2, partition_size=7)
    assert summary["partitions"] == 6
    for name in ("panel.parquet", "latest.parquet"):
        pd.testing.assert_frame_equal(read(toy_panel, name), read(tmp_path, name))


@pytest.mark.slow
def test_dask_engine_gives_identical_output(toy_dir, toy_panel, tmp_path):
    """A real 2-worker LocalCluster (processes) runs the same partition function, reached by address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = build_panel(toy_dir, tmp_path, engine="dask", scheduler=cluster.scheduler_address, partition_size=10)
    assert summary["engine"] == "dask" and summary["partitions"] == 4
    for name in ("panel.parquet", "latest.parquet"):
        pd.testing.assert_frame_equal(read(toy_panel, name), read(tmp_path, name))


def test_missing_events_table_keeps_schema_and_reports(toy_dir, toy_panel, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(toy_dir, raw)
    (raw / "events.parquet").unlink()
    out = tmp_path / "out"
    summary = build_panel(raw, out, partition_size=100)
    assert summary["missing_tables"] == ["events"]
    assert summary["incomplete_families"] == {"behaviour": len(registry.features_needing({"events"}))}
    panel = read(out, "panel.parquet")
    assert list(panel.columns) == list(read(toy_panel, "panel.parquet").columns)
    assert panel["login_count_30d"].isna().all() and panel["views_equity_funds_90d"].isna().all()
    assert panel["txn_count_30d"].notna().all() and panel["aum"].notna().all()


def test_cli_json_summary(toy_dir, tmp_path):
    from clientlens.cli import app

    result = CliRunner().invoke(
        app,
        [
            "features",
            "--raw",
            str(toy_dir),
            "--out",
            str(tmp_path),
            "--as-of",
            "2024-12-31",
            "--as-of",
            "2025-02-28",
            "--horizon-days",
            "60",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["as_of"] == ["2024-12-31", "2025-02-28"]
    assert summary["rows"] == len(read(tmp_path, "panel.parquet")) and summary["columns"] == len(
        registry.feature_names()
    ) + 2 + len(registry.LABELS)
    assert summary["out"] == str(tmp_path) and summary["missing_tables"] == []


def test_cli_bad_input_exits_2(tmp_path):
    from clientlens.cli import app

    result = CliRunner().invoke(app, ["features", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert "does not exist" in json.loads(result.stdout.strip().splitlines()[-1])["error"]


def test_contract_violation_writes_nothing(toy_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(toy_dir, raw)
    tx = pd.read_parquet(raw / "transactions.parquet")
    tx.loc[3, "amount"] = -5.0
    tx.to_parquet(raw / "transactions.parquet", index=False)
    from core.errors import InputError

    with pytest.raises(InputError, match="amount"):
        build_panel(raw, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------- behaviour on simulated data


@pytest.fixture(scope="module")
def sim_features(sim_raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim_features")
    build_panel(sim_raw, out, workers=1)
    return out


def test_churners_log_in_less_than_stayers(sim_features):
    panel = read(sim_features, "panel.parquet")
    churners = panel.loc[panel["churn"] == 1.0, "login_count_trend_30d"].dropna()
    stayers = panel.loc[panel["churn"] == 0.0, "login_count_trend_30d"].dropna()
    assert len(churners) >= 50
    assert churners.mean() < stayers.mean()
    assert churners.median() < stayers.median()


def test_hidden_aggressive_conservatives_transfer_more_to_brokerages(sim_raw, sim_features):
    from features.contract import read_truth

    latest = read(sim_features, "latest.parquet").merge(read_truth(sim_raw), on="customer_id")
    conservative = latest[latest["stated_risk"] == "conservative"]
    hidden = conservative["latent_risk"].astype(str) == "aggressive"
    assert hidden.sum() >= 30
    by = conservative.groupby(hidden.to_numpy())[["count_outflow_brokerage_180d", "views_equity_funds_90d"]].mean()
    assert by.loc[True, "count_outflow_brokerage_180d"] > 2 * by.loc[False, "count_outflow_brokerage_180d"]
    assert by.loc[True, "views_equity_funds_90d"] > by.loc[False, "views_equity_funds_90d"]


def test_revealed_risk_agrees_with_latent_risk(sim_raw, sim_features):
    from features.contract import read_truth

    panel = read(sim_features, "panel.parquet").merge(read_truth(sim_raw), on="customer_id")
    labelled = panel.dropna(subset=["revealed_risk"])
    assert (labelled["stated_risk"] == "aggressive").all()
    order = {"conservative": 0, "balanced": 1, "aggressive": 2}
    r = np.corrcoef(labelled["revealed_risk"].map(order), labelled["latent_risk"].astype(str).map(order))[0, 1]
    assert r > 0.2


def test_partitions_follow_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.panel import plan_partitions

    ids = np.arange(1, 31, dtype=np.int64)
    pq.write_table(pa.table({"customer_id": ids}), tmp_path / "customers.parquet")
    with pq.ParquetWriter(tmp_path / "transactions.parquet", pa.schema([("customer_id", pa.int64())])) as w:
        for lo in (1, 11, 21):  # three row groups of 10 customers
            w.write_table(pa.table({"customer_id": np.repeat(np.arange(lo, lo + 10), 3)}))
    plan = plan_partitions(tmp_path / "customers.parquet", 20, 1, tmp_path / "transactions.parquet")
    assert plan == [(1, 20), (21, 30)]  # whole row groups, at most 20 customers
    assert plan_partitions(tmp_path / "customers.parquet", 5, 1, tmp_path / "transactions.parquet") == [
        (1, 5),
        (6, 10),
        (11, 15),
        (16, 20),
        (21, 25),
        (26, 30),
    ]
    assert len(plan_partitions(tmp_path / "customers.parquet", 100, 4, tmp_path / "transactions.parquet")) == 4
    # without a usable layout: even ranges
    assert plan_partitions(tmp_path / "customers.parquet", 10, 1) == [(1, 10), (11, 20), (21, 30)]


def test_partitions_follow_customer_chunks_of_monthly_row_groups(tmp_path):
    """Row groups of one customer chunk (one per month, overlapping customer ranges) count as one chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.panel import plan_partitions

    ids = np.arange(1, 31, dtype=np.int64)
    pq.write_table(pa.table({"customer_id": ids}), tmp_path / "customers.parquet")
    with pq.ParquetWriter(tmp_path / "transactions.parquet", pa.schema([("customer_id", pa.int64())])) as w:
        for lo in (1, 11, 21):  # three chunks of 10 customers, three "months" each, not every customer active
            for skip in (0, 3, 1):
                w.write_table(pa.table({"customer_id": np.arange(lo + skip, lo + 10)}))
    assert plan_partitions(tmp_path / "customers.parquet", 20, 1, tmp_path / "transactions.parquet") == [
        (1, 20),
        (21, 30),
    ]
    assert plan_partitions(tmp_path / "customers.parquet", 10, 1, tmp_path / "transactions.parquet") == [
        (1, 10),
        (11, 20),
        (21, 30),
    ]


def test_read_range_skips_months_and_keeps_customer_time_order(sim_raw):
    import pyarrow.parquet as pq

    from features.panel import read_range, select_row_groups

    path = sim_raw / "transactions.parquet"
    pf = pq.ParquetFile(path)
    lo, hi = 300, 1_200
    lower, upper = pd.Timestamp("2025-03-15"), pd.Timestamp("2025-06-01")
    groups = select_row_groups(pf, (lo, hi), "ts", lower, upper)
    assert 0 < len(groups) <= 4 < pf.num_row_groups  # March..May (+ a boundary month at most)
    # one customer chunk: customers 300..1200 of 1..2000 need a row filter, so does March; nothing else
    assert all(needs_filter for _, needs_filter in groups)
    assert [f for _, f in select_row_groups(pf, None, "ts", lower, upper)] == [True, False, False]
    got = read_range(path, (lo, hi), "ts", lower, upper)
    everything = pd.read_parquet(path)
    want = everything[
        everything["customer_id"].between(lo, hi) & (everything["ts"] >= lower) & (everything["ts"] < upper)
    ]
    want = want.sort_values("customer_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    c, t = got["customer_id"].to_numpy(), got["ts"].to_numpy()
    assert np.all((np.diff(c) > 0) | ((np.diff(c) == 0) & (t[1:] >= t[:-1])))
    # file order on request (order-free kernels), same rows
    loose = read_range(path, (lo, hi), "ts", lower, upper, customer_order=False)
    pd.testing.assert_frame_equal(
        loose.sort_values("txn_id", ignore_index=True), got.sort_values("txn_id", ignore_index=True)
    )
    # nothing in range: an empty frame with the requested columns
    empty = read_range(path, (lo, hi), "ts", pd.Timestamp("2040-01-01"), None, columns=["customer_id", "ts"])
    assert len(empty) == 0 and list(empty.columns) == ["customer_id", "ts"]


def test_arrow_codes_map_dictionaries_to_the_vocabulary():
    import pyarrow as pa

    from benchmarks.bench_features import arrow_codes

    col = pa.chunked_array(
        [pa.array(["x", "b", None, "a"]).dictionary_encode(), pa.array(["b", "a", "b"]).dictionary_encode()]
    )
    assert arrow_codes(col, ["a", "b"]).tolist() == [-1, 1, -1, 0, 1, 0, 1]
    assert arrow_codes(pa.array(["a", "zz", None, "b"]), ["a", "b"]).tolist() == [0, -1, -1, 1]
