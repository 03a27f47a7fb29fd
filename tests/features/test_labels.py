"""Labels at horizon H (docs/FEATURES.md, "Labels"), checked by hand on inline frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import LabelConfig
from features.labels import build_labels, horizon_months
from tests.features.test_build import customers, holdings, txns

T = pd.Timestamp("2025-04-01")  # T + 90 days = 2025-06-30, a snapshot date


def snapshots(cid: int, values: dict[str, float], product="current_account", pid="CA") -> list[tuple]:
    return [(cid, d, pid, product, v) for d, v in values.items()]


def one(frame: pd.DataFrame, cid: int) -> pd.Series:
    return frame.set_index("customer_id").loc[cid]


def test_tier_future_and_churn():
    rows = (
        snapshots(1, {"2025-03-31": 100_000, "2025-06-30": 40_000})  # halves -> churn
        + snapshots(2, {"2025-03-31": 100_000, "2025-06-30": 60_000})  # 60% stays -> no churn
        + snapshots(3, {"2025-03-31": 5_000, "2025-06-30": 0})  # below minimum AUM at T -> NaN
        + snapshots(4, {"2025-03-31": 400_000, "2025-06-30": 600_000})  # mass -> affluent
        + snapshots(5, {"2025-03-31": 50_000})  # everything closed by T+H -> churn
        + snapshots(6, {"2025-03-31": 50_000, "2025-06-30": 50_000, "2025-07-31": 1})  # after T+H ignored
    )
    lab = build_labels({"customers": customers(6), "holdings": holdings(rows)}, T)
    assert one(lab, 1)["churn"] == 1.0 and one(lab, 2)["churn"] == 0.0
    assert np.isnan(one(lab, 3)["churn"])
    assert one(lab, 4)["tier_future"] == "affluent" and one(lab, 4)["churn"] == 0.0
    assert one(lab, 5)["churn"] == 1.0 and one(lab, 5)["tier_future"] == "mass"
    assert one(lab, 6)["churn"] == 0.0
    # configurable eligibility
    lab2 = build_labels({"customers": customers(6), "holdings": holdings(rows)}, T, LabelConfig(churn_min_aum=1_000))
    assert one(lab2, 3)["churn"] == 1.0


def test_labels_are_null_without_a_snapshot_after_T():
    rows = snapshots(1, {"2025-03-31": 100_000})
    lab = build_labels({"customers": customers(1), "holdings": holdings(rows)}, T)
    assert lab["tier_future"].isna().all() and lab["churn"].isna().all() and lab["revealed_risk"].isna().all()


@pytest.mark.parametrize(
    ("stated", "buys", "expected"),
    [
        ("aggressive", [(50_000, "equity_fund")], "aggressive"),  # 50k of 150k in R4
        ("aggressive", [(20_000, "balanced_fund")], "balanced"),  # R3 share 20/120
        ("aggressive", [(1_000, "bond_fund")], "conservative"),
        ("balanced", [(50_000, "equity_fund")], None),  # capped at R3: not free to act
        ("conservative", [(50_000, "equity_fund")], None),
    ],
)
def test_revealed_risk(stated, buys, expected):
    rows = snapshots(1, {"2025-03-31": 100_000, "2025-06-30": 100_000})
    tx = txns(
        [(1, "2025-04-15", amount, "out", "investment_buy", "internal", "mobile", product) for amount, product in buys]
        + [(1, "2025-03-30", 10**7, "out", "investment_buy", "internal", "mobile", "equity_fund")]
    )  # before T
    cu = customers(1, stated_risk=[stated])
    lab = build_labels({"customers": cu, "holdings": holdings(rows), "transactions": tx}, T)
    got = one(lab, 1)["revealed_risk"]
    assert got == expected


def test_revealed_risk_counts_brokerage_outflows_and_needs_a_base():
    rows = snapshots(1, {"2025-03-31": 100_000, "2025-06-30": 100_000}) + snapshots(
        2, {"2025-03-31": 5_000, "2025-06-30": 5_000}
    )
    tx = txns([(1, "2025-05-01", 60_000, "out", "transfer", "brokerage")])
    cu = customers(2, stated_risk=["aggressive", "aggressive"])
    lab = build_labels({"customers": cu, "holdings": holdings(rows), "transactions": tx}, T)
    assert one(lab, 1)["revealed_risk"] == "aggressive"
    assert one(lab, 2)["revealed_risk"] is None  # base below 10,000: nothing revealed


def test_horizon_is_configurable():
    rows = snapshots(1, {"2025-03-31": 100_000, "2025-04-30": 100_000, "2025-06-30": 10_000})
    cfg = LabelConfig(horizon_days=30)
    lab = build_labels({"customers": customers(1), "holdings": holdings(rows)}, T, cfg)
    assert one(lab, 1)["churn"] == 0.0
    lab90 = build_labels({"customers": customers(1), "holdings": holdings(rows)}, T)
    assert one(lab90, 1)["churn"] == 1.0


@pytest.mark.parametrize(("horizon", "months"), [(30, 1), (60, 2), (75, 2), (90, 3), (180, 6), (365, 12)])
def test_churn_horizon_is_whole_months(horizon, months):
    assert horizon_months(horizon) == months


def _outcome_by_month(horizon: int, label: str, after: float) -> dict[str, tuple]:
    """`label` of two customers at every month-end T: AUM goes from 100,000 to `after` exactly k = whole months
    of the horizon after T (customer 1) or k + 1 months after (customer 2)."""
    k = horizon_months(horizon)
    ends = pd.date_range("2024-06-30", "2025-08-31", freq="ME")
    got = {}
    for i, t in enumerate(ends[: -(k + 1)]):
        rows = []
        for cid, lag in ((1, k), (2, k + 1)):
            rows += snapshots(cid, {str(d.date()): 100_000 if j < i + lag else after for j, d in enumerate(ends)})
        lab = build_labels(
            {"customers": customers(2), "holdings": holdings(rows)}, t, LabelConfig(horizon_days=horizon)
        )
        got[t.month_name()] = (one(lab, 1)[label], one(lab, 2)[label])
    return got


@pytest.mark.parametrize("horizon", [60, 90])
@pytest.mark.parametrize(
    ("label", "after", "expected"), [("churn", 40_000, (1.0, 0.0)), ("tier_future", 600_000, ("affluent", "mass"))]
)
def test_labels_mean_the_same_outcome_at_every_month_end(horizon, label, after, expected):
    """Holdings are month-end snapshots. The last snapshot <= T + 90 days is three month ends after a Nov,
    Dec or Jan month end and two after the others; churn and the future tier read whole months at every T."""
    got = _outcome_by_month(horizon, label, after)
    assert set(got.values()) == {expected}, got


def test_churn_is_null_until_its_month_is_in_the_data():
    rows = snapshots(1, {"2025-03-31": 100_000, "2025-04-30": 100_000, "2025-05-31": 10_000})
    lab = build_labels({"customers": customers(1), "holdings": holdings(rows)}, pd.Timestamp("2025-03-31"))
    assert np.isnan(one(lab, 1)["churn"])  # June 30 (3 months) is not in the data yet
    assert one(lab, 1)["tier_future"] is None  # the future tier reads the same month
    assert one(lab, 1)["revealed_risk"] is None  # stated risk unknown: the only label reading S_H


def test_reviewed_risk_is_the_latest_suitability_review_known_at_T():
    """#12: the latest review dated on or before T; never a later one; null without a review or a table."""
    reviews = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3, 3],
            "reviewed_at": pd.to_datetime(["2024-05-01", "2025-02-01", "2025-04-01", "2025-01-10", "2025-04-02"]),
            "reviewed_risk": ["conservative", "aggressive", "balanced", "balanced", "aggressive"],
        }
    )
    lab = build_labels({"customers": customers(4), "suitability_reviews": reviews}, T)
    assert one(lab, 1)["reviewed_risk"] == "aggressive"  # the later of two, both before T
    assert one(lab, 2)["reviewed_risk"] == "balanced"  # dated T itself: known at T
    assert one(lab, 3)["reviewed_risk"] == "balanced"  # the review the day after T is not known yet
    assert pd.isna(one(lab, 4)["reviewed_risk"])  # never reviewed
    early = build_labels({"customers": customers(4), "suitability_reviews": reviews}, pd.Timestamp("2024-04-30"))
    assert early["reviewed_risk"].isna().all()
    assert build_labels({"customers": customers(4)}, T)["reviewed_risk"].isna().all()  # a bank without the table
