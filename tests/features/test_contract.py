"""The raw data contract: good data passes, each kind of bad data is refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from core.errors import InputError
from features import vocab
from features.contract import SPECS, pandera_schema, read_raw, validate_frame, validate_raw

runner = CliRunner()


@pytest.fixture(scope="module")
def small_frames(sim_raw) -> dict[str, pd.DataFrame]:
    """The first 40 customers of the simulated bank, as validated frames."""
    return dict(read_raw(sim_raw, customer_ids=(1, 41)))


def _write(frames: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, df in frames.items():
        df.to_parquet(folder / f"{table}.parquet", index=False)
    return folder


def _mutated(small_frames, tmp_path, table: str, change) -> Path:
    frames = {t: df.copy() for t, df in small_frames.items()}
    frames[table] = change(frames[table])
    return _write(frames, tmp_path / "raw")


def _validate_cli(raw: Path) -> tuple[int, str, dict]:
    before = sorted(p.name for p in raw.iterdir())
    result = runner.invoke(app, ["validate", "--raw", str(raw), "--json"])
    assert sorted(p.name for p in raw.iterdir()) == before, "validate must not write anything"
    last = result.stdout.strip().splitlines()[-1]
    return result.exit_code, result.output, json.loads(last)


# ---------------------------------------------------------------- good data


def test_simulated_bank_passes_and_cli_reports_rows(sim_raw):
    code, _, summary = _validate_cli(sim_raw)
    assert code == 0
    assert summary["ok"] is True and summary["missing"] == []
    assert set(summary["rows"]) == set(vocab.TABLES)
    assert summary["rows"]["customers"] == 2_000
    assert summary["rows"]["transactions"] > 100_000


def test_frames_are_normalised(small_frames):
    tx = small_frames["transactions"]
    assert tx["txn_id"].dtype == np.int64 and tx["ts"].dtype == "datetime64[ns]"
    assert list(tx["category"].cat.categories) == list(vocab.TXN_CATEGORIES)
    assert tx["customer_id"].is_monotonic_increasing
    assert set(small_frames["customers"]["customer_id"]) == set(range(1, 41))
    assert set(small_frames["events"]["customer_id"]) <= set(range(1, 41))
    assert len(small_frames["market"]) > 300  # market is never filtered by customer


def test_customer_id_list_filter(sim_raw):
    frames = read_raw(sim_raw, tables=["events"], customer_ids=[3, 17])
    assert set(frames) == {"customers", "events"}  # customers comes along for integrity checks
    assert set(frames["customers"]["customer_id"]) == {3, 17}
    assert set(frames["events"]["customer_id"]) <= {3, 17}


def test_missing_optional_tables_are_reported_not_fatal(small_frames, tmp_path):
    raw = _write({"customers": small_frames["customers"], "market": small_frames["market"]}, tmp_path / "raw")
    frames = read_raw(raw)
    assert set(frames) == {"customers", "market"}
    assert frames.missing == ["holdings", "transactions", "events", "suitability_reviews"]
    code, _, summary = _validate_cli(raw)
    assert code == 0 and summary["missing"] == ["holdings", "transactions", "events", "suitability_reviews"]


def _reviews(small_frames) -> pd.DataFrame:
    ids = small_frames["customers"]["customer_id"].iloc[:3].to_numpy()
    return pd.DataFrame(
        {
            "customer_id": ids,
            "reviewed_at": pd.to_datetime(["2024-03-01", "2024-06-01", "2024-09-01"]),
            "reviewed_risk": pd.Series(["conservative", "balanced", "aggressive"], dtype=object),
        }
    )


def test_suitability_reviews_pass_and_are_optional(small_frames, tmp_path):
    frames = {t: df for t, df in small_frames.items() if t != "suitability_reviews"}
    raw = _write({**frames, "suitability_reviews": _reviews(small_frames)}, tmp_path / "with")
    out = read_raw(raw)
    assert list(out["suitability_reviews"]["reviewed_risk"].cat.categories) == list(vocab.RISK_CLASSES)
    assert len(out["suitability_reviews"]) == 3 and out.missing == []
    without = read_raw(_write(frames, tmp_path / "without"))
    assert "suitability_reviews" not in without and without.missing == ["suitability_reviews"]


@pytest.mark.parametrize(
    ("column", "change", "rule"),
    [
        ("customer_id", lambda df: df.assign(customer_id=[1, 2, 999_999]), "customer_id exists in customers"),
        ("reviewed_risk", lambda df: df.assign(reviewed_risk=["conservative", "cautious", "balanced"]), "vocabulary"),
        ("reviewed_at", lambda df: df.assign(reviewed_at=[pd.NaT, *df["reviewed_at"].iloc[1:]]), "not null"),
        ("reviewed_at", lambda df: df.assign(reviewed_at=df["reviewed_at"].astype(str)), "dtype"),
        ("customer_id+reviewed_at", lambda df: pd.concat([df, df.iloc[[0]]]), "unique key"),
    ],
)
def test_suitability_review_violations_name_table_column_rule(small_frames, tmp_path, column, change, rule):
    frames = {t: df for t, df in small_frames.items() if t != "suitability_reviews"}
    raw = _write({**frames, "suitability_reviews": change(_reviews(small_frames))}, tmp_path / "raw")
    _assert_refused(raw, f"suitability_reviews.{column}", rule)


def test_missing_customers_table_is_fatal(small_frames, tmp_path):
    raw = _write({"events": small_frames["events"]}, tmp_path / "raw")
    with pytest.raises(InputError, match="required table 'customers' is missing"):
        read_raw(raw)


def test_unsorted_input_comes_back_sorted(small_frames):
    shuffled = small_frames["events"].sample(frac=1.0, random_state=0)
    out = validate_frame("events", shuffled)
    assert out["customer_id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(out, small_frames["events"].reset_index(drop=True))


def test_plain_string_columns_are_accepted(small_frames):
    cust = small_frames["customers"].astype({"occupation": object, "stated_risk": "string"})
    out = validate_frame("customers", cust)
    assert isinstance(out["occupation"].dtype, pd.CategoricalDtype)


def test_pandera_schema_declares_every_column():
    for table, spec in SPECS.items():
        assert list(pandera_schema(table).columns) == spec.column_names


# ---------------------------------------------------------------- bad data, through the CLI (exit 2)


def _assert_refused(raw: Path, *needles: str) -> str:
    code, output, summary = _validate_cli(raw)
    assert code == 2, output
    assert summary["exit_code"] == 2
    for needle in needles:
        assert needle in summary["error"], summary["error"]
    return summary["error"]


def test_missing_column(small_frames, tmp_path):
    raw = _mutated(small_frames, tmp_path, "transactions", lambda df: df.drop(columns=["amount"]))
    _assert_refused(raw, "transactions.amount", "column present")


def test_wrong_dtype(small_frames, tmp_path):
    raw = _mutated(small_frames, tmp_path, "transactions", lambda df: df.assign(amount=df["amount"].astype(str)))
    _assert_refused(raw, "transactions.amount", "dtype is float")


def test_negative_amount(small_frames, tmp_path):
    def change(df):
        df.loc[5, "amount"] = -12.5
        return df

    error = _assert_refused(
        _mutated(small_frames, tmp_path, "transactions", change), "transactions.amount", "amount > 0", "1 of"
    )
    assert "-12.5" in error  # the offending row is shown


def test_negative_market_value(small_frames, tmp_path):
    def change(df):
        df.loc[0, "market_value"] = -1.0
        return df

    _assert_refused(_mutated(small_frames, tmp_path, "holdings", change), "holdings.market_value", "market_value >= 0")


def test_duplicate_txn_id(small_frames, tmp_path):
    def change(df):
        df.loc[10, "txn_id"] = df.loc[9, "txn_id"]
        return df

    _assert_refused(
        _mutated(small_frames, tmp_path, "transactions", change), "transactions.txn_id", "unique key (txn_id)", "2 of"
    )


def test_duplicate_holding_key(small_frames, tmp_path):
    raw = _mutated(small_frames, tmp_path, "holdings", lambda df: pd.concat([df, df.iloc[[3]]], ignore_index=True))
    _assert_refused(raw, "holdings.customer_id+snapshot_date+product_id", "unique key")


def test_duplicate_customer(small_frames, tmp_path):
    raw = _mutated(small_frames, tmp_path, "customers", lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True))
    _assert_refused(raw, "customers.customer_id", "unique key (customer_id)")


def test_unknown_customer(small_frames, tmp_path):
    def change(df):
        df.loc[0, "customer_id"] = 999_999
        return df

    _assert_refused(
        _mutated(small_frames, tmp_path, "events", change),
        "events.customer_id",
        "customer_id exists in customers",
        "999999",
    )


def test_unknown_category(small_frames, tmp_path):
    def change(df):
        df = df.astype({"category": object})
        df.loc[7, "category"] = "crypto"
        return df

    _assert_refused(
        _mutated(small_frames, tmp_path, "transactions", change),
        "transactions.category",
        "value in vocabulary",
        "crypto",
    )


def test_unknown_risk_level(small_frames, tmp_path):
    raw = _mutated(
        small_frames,
        tmp_path,
        "holdings",
        lambda df: df.assign(risk_level=df["risk_level"].astype(object).replace("R5", "R6").where(df.index != 0, "R9")),
    )
    _assert_refused(raw, "holdings.risk_level", "R9")


def test_null_in_required_column(small_frames, tmp_path):
    def change(df):
        df = df.astype({"event_type": object})
        df.loc[2, "event_type"] = None
        return df

    _assert_refused(_mutated(small_frames, tmp_path, "events", change), "events.event_type", "not null")


@pytest.mark.parametrize(("table", "column"), [("events", "customer_id"), ("customers", "payroll_at_bank")])
def test_null_in_integer_or_bool_column(small_frames, tmp_path, table, column):
    def change(df):
        df = df.astype({column: object})
        df.loc[1, column] = None
        return df

    _assert_refused(_mutated(small_frames, tmp_path, table, change), f"{table}.{column}", "not null", "1 of")


def test_birth_after_onboarding(small_frames, tmp_path):
    def change(df):
        df.loc[0, "birth_date"] = df.loc[0, "onboard_date"] + pd.Timedelta(days=1)
        return df

    _assert_refused(
        _mutated(small_frames, tmp_path, "customers", change), "customers.birth_date", "birth_date < onboard_date"
    )


def test_date_before_1900(small_frames, tmp_path):
    def change(df):
        df.loc[1, "birth_date"] = pd.Timestamp("1850-01-01")
        return df

    _assert_refused(_mutated(small_frames, tmp_path, "customers", change), "customers.birth_date", ">= 1900-01-01")


def test_date_after_last_market_date(small_frames, tmp_path):
    def change(df):
        df.loc[4, "ts"] = small_frames["market"]["date"].max() + pd.Timedelta(days=400)
        return df

    _assert_refused(_mutated(small_frames, tmp_path, "transactions", change), "transactions.ts", "last market date")


def test_every_violation_is_listed(small_frames, tmp_path):
    frames = {t: df.copy() for t, df in small_frames.items()}
    frames["transactions"].loc[0, "amount"] = 0.0
    frames["market"].loc[0, "equity_index"] = -1.0
    error = _assert_refused(
        _write(frames, tmp_path / "raw"), "2 problems", "transactions.amount", "market.equity_index"
    )
    assert "Traceback" not in error


def test_unreadable_file(small_frames, tmp_path):
    raw = _write({"customers": small_frames["customers"]}, tmp_path / "raw")
    (raw / "events.parquet").write_text("not parquet")
    _assert_refused(raw, "events.parquet", "cannot read as Parquet")


def test_validate_frame_in_memory(small_frames):
    bad = small_frames["market"].copy()
    bad.loc[3, "deposit_rate_1y"] = np.inf
    with pytest.raises(InputError, match=r"market\.deposit_rate_1y"):
        validate_frame("market", bad)
    with pytest.raises(InputError, match="unknown raw table"):
        validate_frame("accounts", bad)


def test_validate_raw_in_batches_matches_one_read(sim_raw):
    whole = read_raw(sim_raw)
    batched = validate_raw(sim_raw, batch_customers=700)
    assert batched.rows == whole.rows and batched.missing == []


def test_duplicate_txn_id_across_batches(small_frames, tmp_path):
    def change(df):
        last = df.index[-1]  # customer 40's last transaction takes customer 1's first id
        df.loc[last, "txn_id"] = df.loc[0, "txn_id"]
        return df

    raw = _mutated(small_frames, tmp_path, "transactions", change)
    with pytest.raises(InputError, match=r"transactions\.txn_id: rule 'unique key \(txn_id\)' fails across"):
        validate_raw(raw, batch_customers=10)
    result = runner.invoke(app, ["validate", "--raw", str(raw), "--batch-customers", "10", "--json"])
    assert (
        result.exit_code == 2 and "unique key (txn_id)" in json.loads(result.stdout.strip().splitlines()[-1])["error"]
    )


def test_violation_in_a_later_batch_names_the_batch(small_frames, tmp_path):
    def change(df):
        df.loc[df.index[-1], "amount"] = -1.0
        return df

    raw = _mutated(small_frames, tmp_path, "transactions", change)
    with pytest.raises(InputError, match=r"(?s)customer_id < inf: .*transactions\.amount"):
        validate_raw(raw, batch_customers=10)
