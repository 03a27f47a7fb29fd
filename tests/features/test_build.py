"""Features at an as-of date, checked by hand on small inline frames that follow the raw contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import registry
from features.build import build_features
from features.config import FeatureConfig, TierThresholds
from tests.features.frames import validate_feature_frame

T = pd.Timestamp("2025-06-30")


def customers(n: int = 2, **overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "birth_date": pd.to_datetime(["1990-06-30"] * n),
            "onboard_date": pd.to_datetime(["2020-06-30"] * n),
            "occupation": ["salaried"] * n,
            "region": ["metro"] * n,
            "income_band": ["middle"] * n,
            "stated_risk": ["conservative"] * n,
            "risk_assessed_on": pd.to_datetime(["2020-06-30"] * n),
            "is_business_owner": [False] * n,
            "payroll_at_bank": [True] * n,
        }
    )
    for k, v in overrides.items():
        frame[k] = v
    return frame


def txns(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, ts, amount, direction, category, counterparty[, channel, product_type])."""
    out = []
    for i, r in enumerate(rows):
        cid, ts, amount, direction, category, cp, *rest = r
        channel = rest[0] if rest else "mobile"
        product = rest[1] if len(rest) > 1 else None
        out.append((i, cid, pd.Timestamp(ts), float(amount), direction, channel, category, cp, product))
    return pd.DataFrame(
        out,
        columns=[
            "txn_id",
            "customer_id",
            "ts",
            "amount",
            "direction",
            "channel",
            "category",
            "counterparty",
            "product_type",
        ],
    ).astype({"customer_id": np.int64})


def events(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, ts, event_type, topic)."""
    return pd.DataFrame(rows, columns=["customer_id", "ts", "event_type", "topic"]).astype(
        {"customer_id": np.int64, "ts": "datetime64[ns]"}
    )


def holdings(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, snapshot_date, product_id, product_type, market_value)."""
    from features import vocab

    out = [
        (c, pd.Timestamp(d), pid, pt, vocab.PRODUCTS[pt][1], float(v), vocab.PRODUCTS[pt][2])
        for c, d, pid, pt, v in rows
    ]
    return pd.DataFrame(
        out,
        columns=[
            "customer_id",
            "snapshot_date",
            "product_id",
            "product_type",
            "risk_level",
            "market_value",
            "is_liability",
        ],
    ).astype({"customer_id": np.int64})


def market(start="2024-01-01", end="2025-12-31", drift=0.001) -> pd.DataFrame:
    dates = pd.bdate_range(start, end)
    return pd.DataFrame(
        {
            "date": dates,
            "equity_index": 100 * np.exp(drift * np.arange(len(dates))),
            "deposit_rate_1y": np.linspace(3.0, 2.0, len(dates)),
        }
    )


def one(frame: pd.DataFrame, cid: int) -> pd.Series:
    return frame.set_index("customer_id").loc[cid]


def test_windows_include_T_and_exclude_later_days():
    tx = txns(
        [
            (1, "2025-06-30 23:00", 100, "out", "card_spend", "merchant"),  # on T: counts
            (1, "2025-07-01 00:00", 999, "out", "card_spend", "merchant"),  # after T: never
            (1, "2025-06-01 09:00", 10, "out", "card_spend", "merchant"),  # day 29 before T: in 30d
            (1, "2025-05-31 09:00", 1, "out", "card_spend", "merchant"),  # day 30: only 90d/180d
            (1, "2025-05-15", 5000, "in", "salary", "internal", "system"),
            (2, "2025-01-15", 50, "in", "transfer", "external_bank"),
        ]
    )
    f = build_features({"customers": customers(), "transactions": tx}, T)
    c1 = one(f, 1)
    assert c1["outflow_card_spend_30d"] == 110
    assert c1["outflow_card_spend_90d"] == 111
    assert c1["txn_count_30d"] == 2 and c1["txn_count_90d"] == 4
    assert c1["inflow_salary_90d"] == 5000 and c1["inflow_total_90d"] == 5000
    assert c1["net_flow_90d"] == 5000 - 111
    assert c1["days_since_last_txn"] == 0
    assert c1["days_since_last_salary"] == (T - pd.Timestamp("2025-05-15")).days
    assert c1["salary_months_6m"] == 1
    assert np.isnan(c1["salary_amount_cv_180d"])  # fewer than two salaries
    assert np.isnan(c1["txn_count_trend_90d"])  # nothing in the prior 90 days: no trend, not zero
    assert np.isnan(c1["days_since_last_brokerage_transfer"])
    c2 = one(f, 2)
    assert c2["txn_count_30d"] == 0 and c2["inflow_external_bank_180d"] == 50
    assert c2["digital_txn_share_90d"] != c2["digital_txn_share_90d"]  # NaN: no transactions in 90d


def test_trends_counterparties_and_recency():
    rows = [(1, f"2025-06-{d:02d}", 100, "out", "transfer", "brokerage") for d in (10, 20, 25)]
    rows += [(1, "2025-05-10", 100, "out", "transfer", "brokerage")]  # prior 30-day window
    rows += [(1, "2025-06-05", 700, "out", "transfer", "overseas", "web")]
    rows += [(1, "2025-06-06", 1000, "out", "investment_buy", "internal", "advisor", "equity_fund")]
    f = build_features({"customers": customers(1), "transactions": txns(rows)}, T)
    c = one(f, 1)
    assert c["outflow_brokerage_30d"] == 300 and c["count_outflow_brokerage_30d"] == 3
    assert c["outflow_brokerage_90d"] == 400 and c["count_outflow_brokerage_90d"] == 4
    assert c["txn_count_trend_30d"] == 5 / 1
    assert c["outflow_overseas_30d"] == 700
    assert c["days_since_last_brokerage_transfer"] == 5
    assert c["days_since_last_overseas_transfer"] == 25
    assert c["outflow_investment_buy_30d"] == 1000 and c["count_investment_buy_30d"] == 1
    assert c["advisor_txn_count_90d"] == 1
    assert c["digital_txn_share_90d"] == pytest.approx(5 / 6)


def test_events_login_and_topic_intensity():
    ev = events(
        [
            (1, "2025-06-29", "login", None),
            (1, "2025-06-29 18:00", "login", None),
            (1, "2025-06-10", "login", None),
            (1, "2025-05-20", "login", None),
            (1, "2025-06-28", "view", "equity_funds"),
            (1, "2025-06-27", "search", "equity_funds"),
            (1, "2025-04-02", "view", "equity_funds"),
            (1, "2025-06-01", "view", "mortgage"),
            (1, "2025-07-02", "view", "equity_funds"),  # after T
        ]
    )
    f = build_features({"customers": customers(1), "events": ev}, T)
    c = one(f, 1)
    assert c["login_count_30d"] == 3 and c["login_days_30d"] == 2 and c["login_count_90d"] == 4
    assert c["days_since_last_login"] == 1
    assert c["login_count_trend_30d"] == 3 / 1
    assert c["views_equity_funds_30d"] == 2 and c["views_equity_funds_90d"] == 3
    assert c["views_mortgage_30d"] == 1
    assert c["equity_funds_view_share_90d"] == pytest.approx(3 / 4)
    assert np.isnan(c["views_equity_funds_trend_30d"])  # no equity views in the 30 days before: NaN, not 0


def test_long_window_rare_signals_and_rates_per_login():
    # T = 2025-06-30: the 365-day window is 2024-07-01 .. T, the 180-day window 2025-01-02 .. T.
    tx = txns(
        [
            (1, "2025-06-20", 100, "out", "transfer", "brokerage"),  # in 180d and 365d
            (1, "2024-09-01", 300, "out", "transfer", "brokerage"),  # only 365d
            (1, "2024-07-01 00:00", 50, "out", "transfer", "brokerage"),  # day 364: the window's first day
            (1, "2024-06-30 23:59", 999, "out", "transfer", "brokerage"),  # day 365: outside
            (1, "2024-10-01", 80, "in", "transfer", "brokerage"),  # inbound: not a transfer to a brokerage
            (1, "2024-12-01", 1000, "out", "investment_buy", "internal", "mobile", "equity_fund"),
            (1, "2025-07-01", 500, "out", "transfer", "brokerage"),  # after T
        ]
    )
    ev = events(
        [
            (1, "2025-06-29", "login", None),
            (1, "2025-03-01", "login", None),
            (1, "2024-08-01", "login", None),
            (1, "2025-06-28", "view", "equity_funds"),
            (1, "2024-08-02", "search", "equity_funds"),
            (1, "2024-08-03", "view", "mortgage"),
            (1, "2025-07-02", "view", "equity_funds"),  # after T
        ]
    )
    f = build_features({"customers": customers(2), "transactions": tx, "events": ev}, T)
    c = one(f, 1)
    assert c["count_outflow_brokerage_365d"] == 3 and c["outflow_brokerage_365d"] == 450
    assert c["count_investment_buy_365d"] == 1
    assert c["login_count_365d"] == 3
    assert c["views_equity_funds_180d"] == 1 and c["views_equity_funds_365d"] == 2
    assert c["equity_funds_view_share_180d"] == 1.0 and c["equity_funds_view_share_365d"] == pytest.approx(2 / 3)
    assert c["brokerage_transfers_per_login_180d"] == pytest.approx(1 / 3)  # 1 transfer, 2 logins
    assert c["brokerage_transfers_per_login_365d"] == pytest.approx(3 / 4)
    assert c["equity_views_per_login_365d"] == pytest.approx(2 / 4)
    assert c["investment_buys_per_login_365d"] == pytest.approx(1 / 4)
    assert c["invest_interest_per_login_365d"] == pytest.approx((3 + 2) / 4)
    assert 2 not in f["customer_id"].tolist()  # no activity in 180 days: not an active customer, not a row
    # without events, the rates that need logins are NaN, the transaction counts are not
    f = build_features({"customers": customers(1), "transactions": tx}, T)
    assert one(f, 1)["count_outflow_brokerage_365d"] == 3 and np.isnan(one(f, 1)["brokerage_transfers_per_login_365d"])


def test_holdings_aum_split_change_and_tier():
    rows = []
    for d, v in (("2024-12-31", 100_000), ("2025-03-31", 200_000), ("2025-05-31", 300_000), ("2025-06-30", 400_000)):
        rows.append((1, d, "CA", "current_account", v))
        rows.append((1, d, "EF", "equity_fund", v))
        rows.append((1, d, "MG", "mortgage", 50_000))
    rows.append((2, "2025-06-30", "CA", "current_account", 20_000_000))
    rows.append((1, "2025-07-31", "EF", "equity_fund", 1))  # after T
    f = build_features({"customers": customers(), "holdings": holdings(rows)}, T)
    c = one(f, 1)
    assert c["aum"] == 800_000 and c["aum_r1"] == 400_000 and c["aum_r4"] == 400_000
    assert c["aum_high_risk_share"] == 0.5 and c["deposit_share"] == 0.5 and c["aum_fund"] == 400_000
    assert c["liabilities"] == 50_000 and c["mortgage_balance"] == 50_000
    assert c["aum_hhi"] == 0.5
    assert c["product_count"] == 3 and c["product_family_count"] == 3 and c["max_risk_level_held"] == 4
    assert c["aum_change_1m"] == pytest.approx(800 / 600 - 1)
    assert c["aum_change_3m"] == pytest.approx(800 / 400 - 1)
    assert c["aum_change_6m"] == pytest.approx(800 / 200 - 1)
    assert c["aum_share_above_suitability"] == 0.5  # conservative may hold up to R2
    assert c["tier"] == "affluent" and c["aum_to_next_tier_ratio"] == pytest.approx(0.08)
    c2 = one(f, 2)
    assert c2["tier"] == "hnw" and np.isnan(c2["aum_change_1m"])  # held nothing a month before
    assert np.isnan(c2["aum_to_next_tier_ratio"])
    # thresholds are configuration
    cfg = FeatureConfig(tiers=TierThresholds(affluent_min=900_000, hnw_min=30_000_000))
    g = build_features({"customers": customers(), "holdings": holdings(rows)}, T, cfg)
    assert one(g, 1)["tier"] == "mass" and one(g, 2)["tier"] == "affluent"


def test_aum_change_is_nan_without_a_snapshot_that_old():
    rows = [(1, d, "CA", "current_account", 1000) for d in ("2025-04-30", "2025-05-31", "2025-06-30")]
    f = build_features({"customers": customers(1), "holdings": holdings(rows)}, T)
    c = one(f, 1)
    assert c["aum_change_1m"] == 0 and np.isnan(c["aum_change_3m"]) and np.isnan(c["aum_change_6m"])


def test_profile_stated_risk_is_point_in_time():
    cu = customers(
        2,
        risk_assessed_on=pd.to_datetime(["2025-01-01", "2025-08-01"]),
        stated_risk=["aggressive", "balanced"],
        occupation=["retired", "student"],
        birth_date=pd.to_datetime(["1990-06-30", "2000-06-30"]),
    )
    f = build_features({"customers": cu}, T)
    c1, c2 = one(f, 1), one(f, 2)
    assert c1["stated_risk"] == "aggressive" and c1["stated_risk_age_days"] == (T - pd.Timestamp("2025-01-01")).days
    assert c2["stated_risk"] is None and np.isnan(c2["stated_risk_age_days"])  # assessed after T: unknown at T
    assert c1["age"] == pytest.approx(35, abs=0.01) and c1["lifecycle_stage"] == "retirement"
    assert c2["lifecycle_stage"] == "young_professional" and c2["tenure_years"] == pytest.approx(5, abs=0.01)


def test_market_features_and_response_to_market():
    mk = market()
    rows = [
        (1, d.strftime("%Y-%m-%d"), 100, "out", "investment_buy", "internal", "mobile", "equity_fund")
        for d in pd.date_range("2025-01-10", "2025-06-27", freq="14D")
    ]
    f = build_features({"customers": customers(1), "market": mk, "transactions": txns(rows)}, T)
    c = one(f, 1)
    idx = mk.set_index("date")["equity_index"]
    assert c["index_return_3m"] == pytest.approx(idx[:T].iloc[-1] / idx[: T - pd.DateOffset(months=3)].iloc[-1] - 1)
    assert c["market_regime"] == "bull"  # steady rise
    assert c["deposit_rate_change_6m"] < 0
    assert c["invest_count_up_weeks_180d"] > 0
    assert np.isnan(c["invest_count_down_weeks_180d"])  # the index never fell: no down weeks


def test_missing_tables_keep_the_schema_stable():
    f = build_features({"customers": customers()}, T)
    assert list(f.columns) == ["customer_id", "as_of"] + registry.feature_names()
    validate_feature_frame(f)
    assert f["aum"].isna().all() and f["tier"].isna().all() and f["login_count_30d"].isna().all()
    assert f["age"].notna().all()


def test_customers_onboarded_after_T_are_not_rows():
    cu = customers(2, onboard_date=pd.to_datetime(["2020-01-01", "2025-07-15"]))
    f = build_features({"customers": cu}, T)
    assert f["customer_id"].tolist() == [1]


def test_full_frame_validates_against_the_registry():
    from tests.features.toydata import toy_raw

    f = build_features(toy_raw(3, n_customers=30), "2025-03-31")
    validate_feature_frame(f)
    assert len(f) > 0
    assert f["aum"].notna().all()
