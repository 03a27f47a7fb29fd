"""Point in time (DESIGN §5): data after T never changes features at T; labels use only (T, T+H]
(holdings: up to the month-rounded snapshot S_C, at most `LABEL_SNAPSHOT_SLACK_DAYS` past T+H).

Hypothesis draws a small random bank (`tests.features.toydata`), an as-of date T and a list of
edits to rows dated after a cut-off (add, remove or change rows of any table), then checks
the features at T (cut-off T) or the labels at T (cut-off T+H) are identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import vocab
from features.build import build_features
from features.config import LabelConfig
from features.labels import LABEL_SNAPSHOT_SLACK_DAYS, build_labels
from tests.features.toydata import toy_raw

START, END = pd.Timestamp("2024-01-01"), pd.Timestamp("2025-06-30")
TABLES = ("transactions", "events", "holdings", "market", "customers")
KINDS = ("add", "remove", "change")

edits = st.lists(
    st.tuples(st.sampled_from(TABLES), st.sampled_from(KINDS), st.integers(0, 2**31 - 1)), min_size=1, max_size=6
)
as_of_days = st.integers(0, (END - START).days - 30)


def _after(frame: pd.DataFrame, column: str, cutoff: pd.Timestamp) -> np.ndarray:
    """Rows dated after the calendar day `cutoff` (time >= cutoff + 1 day)."""
    return (frame[column] >= cutoff + pd.Timedelta(days=1)).to_numpy()


def _times_after(rng, cutoff: pd.Timestamp, k: int) -> pd.DatetimeIndex:
    lo = (cutoff + pd.Timedelta(days=1)).value
    return pd.to_datetime(rng.integers(lo, lo + 200 * 86_400 * 10**9, k))


def edit_after(raw: dict[str, pd.DataFrame], cutoff: pd.Timestamp, table: str, kind: str, seed: int):
    """Return a copy of `raw` with one table edited only in rows dated after `cutoff`."""
    rng = np.random.default_rng(seed)
    raw = dict(raw)
    df = raw[table].copy()
    ids = raw["customers"]["customer_id"].to_numpy()
    column = {
        "transactions": "ts",
        "events": "ts",
        "holdings": "snapshot_date",
        "market": "date",
        "customers": "onboard_date",
    }[table]
    after = _after(df, column, cutoff)
    if kind == "remove" and after.any():
        drop = after & (rng.random(len(df)) < 0.5)
        df = df.loc[~drop]
    elif kind == "change" and after.any():
        idx = np.flatnonzero(after)
        if table == "transactions":
            df.loc[df.index[idx], "amount"] = rng.uniform(1, 1e6, len(idx))
            df.loc[df.index[idx], "category"] = rng.choice(vocab.TXN_CATEGORIES, len(idx))
            df.loc[df.index[idx], "counterparty"] = rng.choice(vocab.COUNTERPARTIES, len(idx))
        elif table == "events":
            df.loc[df.index[idx], "topic"] = rng.choice(vocab.TOPICS, len(idx))
        elif table == "holdings":
            df.loc[df.index[idx], "market_value"] = rng.uniform(0, 1e8, len(idx))
        elif table == "market":
            df.loc[df.index[idx], "equity_index"] = rng.uniform(1, 1e4, len(idx))
            df.loc[df.index[idx], "deposit_rate_1y"] = rng.uniform(0, 10, len(idx))
        else:
            df.loc[df.index[idx], "stated_risk"] = rng.choice(vocab.RISK_CLASSES, len(idx))
            df.loc[df.index[idx], "occupation"] = rng.choice(vocab.OCCUPATIONS, len(idx))
    elif kind == "add":
        k = int(rng.integers(1, 40))
        if table == "transactions":
            new = df.sample(k, replace=True, random_state=seed % 2**32).copy()
            new["ts"] = _times_after(rng, cutoff, k)
            new["amount"] = rng.uniform(1, 1e6, k)
            new["customer_id"] = rng.choice(ids, k)
            new["txn_id"] = df["txn_id"].max() + 1 + np.arange(k)
        elif table == "events":
            new = df.sample(k, replace=True, random_state=seed % 2**32).copy()
            new["ts"] = _times_after(rng, cutoff, k)
            new["customer_id"] = rng.choice(ids, k)
        elif table == "holdings":
            new = df.sample(k, replace=True, random_state=seed % 2**32).copy()
            new["snapshot_date"] = _times_after(rng, cutoff, k).normalize() + pd.offsets.MonthEnd(0)
            new["market_value"] = rng.uniform(0, 1e8, k)
            new["product_id"] = [f"new-{i}" for i in range(k)]
        elif table == "market":
            dates = pd.bdate_range(df["date"].max() + pd.Timedelta(days=1), periods=k)
            new = pd.DataFrame(
                {"date": dates, "equity_index": rng.uniform(1, 1e4, k), "deposit_rate_1y": rng.uniform(0, 5, k)}
            )
        else:
            new = df.sample(min(k, len(df)), random_state=seed % 2**32).copy()
            new["customer_id"] = ids.max() + 1 + np.arange(len(new))
            new["onboard_date"] = _times_after(rng, cutoff, len(new)).normalize()
            new["risk_assessed_on"] = new["onboard_date"]
        df = pd.concat([df, new], ignore_index=True)
    if table == "customers" and kind == "change":
        # a questionnaire dated after T is unknown at T: changing its answer must not matter
        late = _after(df, "risk_assessed_on", cutoff)
        df.loc[late, "stated_risk"] = rng.choice(vocab.RISK_CLASSES, int(late.sum()))
    raw[table] = df
    return raw


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), day=as_of_days, ops=edits)
def test_features_at_T_ignore_everything_after_T(seed, day, ops):
    raw = toy_raw(
        seed, n_customers=5, start=str(START.date()), end=str(END.date()), txn_per_customer=60, events_per_customer=40
    )
    as_of = START + pd.Timedelta(days=day)
    before = build_features(raw, as_of)
    edited = raw
    for table, kind, s in ops:
        edited = edit_after(edited, as_of, table, kind, s)
    after = build_features(edited, as_of)
    pd.testing.assert_frame_equal(before, after)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), day=as_of_days, ops=edits, horizon=st.sampled_from([30, 90]))
def test_labels_use_nothing_after_T_plus_H(seed, day, ops, horizon):
    raw = toy_raw(
        seed, n_customers=5, start=str(START.date()), end=str(END.date()), txn_per_customer=60, events_per_customer=40
    )
    as_of = START + pd.Timedelta(days=day)
    cfg = LabelConfig(horizon_days=horizon)
    before = build_labels(raw, as_of, cfg)
    edited = raw
    cutoff = as_of + pd.Timedelta(days=horizon)
    # holdings are read at S_C, the month-rounded snapshot, which can lie a few days past T + H
    # (3 month ends after Feb 29 is May 31, 92 days): documented as LABEL_SNAPSHOT_SLACK_DAYS
    late_snapshot = cutoff + pd.Timedelta(days=LABEL_SNAPSHOT_SLACK_DAYS)
    for table, kind, s in ops:
        edited = edit_after(edited, late_snapshot if table == "holdings" else cutoff, table, kind, s)
    after = build_labels(edited, as_of, cfg)
    # labels matter for the panel's rows: customers onboarded on or before T
    known = raw["customers"].loc[raw["customers"]["onboard_date"] <= as_of, "customer_id"]
    before = before[before["customer_id"].isin(known)].reset_index(drop=True)
    after = after[after["customer_id"].isin(known)].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_labels_do_look_after_T():
    """Sanity check of the harness: an edit inside (T, T+H] can change a label."""
    raw = toy_raw(5, n_customers=30)
    as_of = pd.Timestamp("2025-01-31")
    before = build_labels(raw, as_of)
    ho = raw["holdings"].copy()
    ho.loc[ho["snapshot_date"] == pd.Timestamp("2025-04-30"), "market_value"] *= 100
    after = build_labels({**raw, "holdings": ho}, as_of)
    assert not before["tier_future"].equals(after["tier_future"])
