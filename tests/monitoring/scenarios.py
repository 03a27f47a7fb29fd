"""Synthetic feature windows and named market scenarios: a test fixture (benchmarks import it too).

`feature_window(n, seed)` draws a frame shaped like a slice of the feature table (the column
names are real registry features; marginals are heavy-tailed amounts, counts, shares,
categories and flags; market features are one value for the whole window, as at one as-of date)
plus the model score columns named by the task contract (`core.tasks`). Scenarios return a shifted copy and
the columns they meant to move:

- `rate_cut`: deposit rates fall; money leaves deposits for external banks and brokerages.
- `bull_market`: equity rallies; equity-fund browsing, investment buys and brokerage
  transfers rise, and the churn / aggressive scores move with them.
- `channel_mix`: a new mobile app moves transactions from branches to digital channels.

These are monitoring fixtures, not the simulator (features/simulate.py is the real one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.tasks import RISK_CLASSES, TASKS, TIER_CLASSES

REGIONS = ("metro", "urban", "suburban", "rural")
INCOME_BANDS = ("low", "lower_middle", "middle", "upper_middle", "high")
CHURN, RISK, TIER = TASKS["churn"], TASKS["risk"], TASKS["tier"]
# The positive-class score of a binary task, every class's score of a multiclass one.
SCORE_COLUMNS = tuple(c for t in TASKS.values() for c in t.score_columns())

SCENARIO_COLUMNS = {
    "rate_cut": (
        "deposit_rate_1y",
        "aum_deposit",
        "deposit_share",
        "outflow_external_bank_90d",
        "outflow_brokerage_90d",
    ),
    "bull_market": (
        "views_equity_funds_90d",
        "count_investment_buy_90d",
        "outflow_investment_buy_90d",
        "outflow_brokerage_90d",
        "index_return_3m",
        CHURN.score_column(CHURN.positive),
        *RISK.score_columns(),
    ),
    "channel_mix": ("digital_txn_share_90d", "branch_txn_count_90d", "advisor_txn_count_90d"),
}
# The market columns a scenario moves: one value per window, so context, not customer drift.
SCENARIO_CONTEXT = {"rate_cut": {"deposit_rate_1y"}, "bull_market": {"index_return_3m"}, "channel_mix": set()}


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def feature_window(n: int, seed: int = 0, *, extra_numeric: int = 0) -> pd.DataFrame:
    """A window of `n` customers with feature-table-like marginals and score columns.

    `extra_numeric` appends that many generic numerical columns (`behaviour_extra_<i>`,
    mixed normal / lognormal / count / share) to reach benchmark widths.
    """
    rng = np.random.default_rng(seed)
    wealth = rng.lognormal(11.0, 1.4, n)
    engagement = rng.beta(2, 3, n)
    appetite = rng.normal(0, 1, n)
    age = np.clip(rng.normal(45, 14, n), 18, 95).round()
    deposit_share = np.clip(rng.beta(5, 2, n) - 0.1 * appetite.clip(0), 0, 1)
    aum = wealth * rng.beta(2, 2, n)
    txn_90 = rng.poisson(20 + 40 * engagement)
    digital = rng.beta(2 + 6 * engagement, 3, n)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "age": age,
            "tenure_years": np.round(rng.gamma(2.0, 4.0, n), 2),
            "aum": aum,
            "aum_deposit": aum * deposit_share,
            "aum_fund": aum * (1 - deposit_share) * rng.beta(2, 2, n),
            "deposit_share": deposit_share,
            "liabilities": np.where(rng.random(n) < 0.3, rng.lognormal(12, 1, n), 0.0),
            "product_count": 1.0 + rng.poisson(1.5 + 2 * engagement),
            "inflow_salary_90d": np.where(rng.random(n) < 0.7, rng.lognormal(9.5, 0.5, n) * 3, 0.0),
            "outflow_card_spend_90d": rng.lognormal(7.5, 1.0, n),
            "outflow_external_bank_90d": np.where(rng.random(n) < 0.4, rng.lognormal(8, 1.2, n), 0.0),
            "outflow_brokerage_90d": np.where(
                rng.random(n) < 0.08 + 0.08 * (appetite > 0.5), rng.lognormal(9, 1, n), 0.0
            ),
            "outflow_investment_buy_90d": np.where(rng.random(n) < 0.15, rng.lognormal(8.5, 1, n), 0.0),
            "count_investment_buy_90d": rng.poisson(0.4 + 0.6 * appetite.clip(0), n).astype(float),
            "txn_count_90d": txn_90.astype(float),
            "digital_txn_share_90d": digital,
            "branch_txn_count_90d": rng.binomial(txn_90, np.clip(0.6 * (1 - digital), 0, 1)).astype(float),
            "advisor_txn_count_90d": rng.poisson(0.3 + 0.5 * (wealth > 5e5), n).astype(float),
            "login_count_30d": rng.poisson(2 + 20 * engagement).astype(float),
            "views_equity_funds_90d": rng.poisson(0.5 + 2 * appetite.clip(0) * engagement).astype(float),
            "days_since_last_login": np.where(rng.random(n) < 0.1, np.nan, rng.exponential(6, n).round()),
            "salary_months_6m": rng.choice([0, 3, 5, 6], n, p=[0.25, 0.05, 0.1, 0.6]).astype(float),
            # market context: the same value for every customer at one as-of date
            "index_return_3m": np.full(n, round(rng.normal(0.01, 0.002), 4)),
            "deposit_rate_1y": np.full(n, round(rng.normal(2.5, 0.05), 2)),
            "region": rng.choice(REGIONS, n, p=[0.35, 0.3, 0.2, 0.15]),
            "income_band": rng.choice(INCOME_BANDS, n, p=[0.15, 0.25, 0.3, 0.2, 0.1]),
            "stated_risk": rng.choice(RISK_CLASSES, n, p=[0.55, 0.35, 0.10]),
            "tier": np.where(aum >= 1e7, TIER_CLASSES[2], np.where(aum >= 5e5, TIER_CLASSES[1], TIER_CLASSES[0])),
            "is_business_owner": rng.random(n) < 0.08,
            "payroll_at_bank": rng.random(n) < 0.6,
        }
    )
    for i in range(extra_numeric):
        kind = i % 4
        if kind == 0:
            col = rng.normal(0, 1, n)
        elif kind == 1:
            col = rng.lognormal(5, 1.2, n)
        elif kind == 2:
            col = rng.poisson(3, n).astype(float)
        else:
            col = rng.beta(2, 5, n)
        frame[f"behaviour_extra_{i}"] = col
    return add_scores(frame, rng)


def add_scores(frame: pd.DataFrame, rng: np.random.Generator | None = None) -> pd.DataFrame:
    """Score columns as a function of the features (so shifted features move the scores)."""
    rng = rng or np.random.default_rng(0)
    n = len(frame)
    out = frame.copy()
    churn_logit = (
        -2.5
        + 0.8 * np.log1p(out["outflow_external_bank_90d"]) / 8
        - 0.05 * out["login_count_30d"]
        + 0.6 * (out["outflow_brokerage_90d"] > 0)
        + rng.normal(0, 0.3, n)
    )
    out[CHURN.score_column(CHURN.positive)] = 1 / (1 + np.exp(-churn_logit))
    appetite = (
        0.5 * out["count_investment_buy_90d"]
        + 0.2 * out["views_equity_funds_90d"]
        + 0.8 * (out["outflow_brokerage_90d"] > 0)
    )
    # Ordered classes, lowest appetite first, whatever the contract declares (binary or 3-class).
    k = len(RISK.classes) or 2
    slopes = np.linspace(-1.0, 1.0, k)
    risk = _softmax(slopes[None, :] * (appetite.to_numpy()[:, None] - 1.0) + rng.normal(0, 0.2, (n, k)))
    if RISK.classes:
        for j, col in enumerate(RISK.score_columns()):
            out[col] = risk[:, j]
    else:  # one column, P(positive): the highest-appetite class
        out[RISK.score_column()] = risk[:, -1]
    log_aum = np.log1p(out["aum"].to_numpy())
    tier = _softmax(np.column_stack([13.1 - log_aum, np.zeros(n), log_aum - 16.1]) * 2)
    for j, col in enumerate(TIER.score_columns()):
        out[col] = tier[:, j]
    return out


def rate_cut(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Deposit rates fall 1.5 points; deposits move out to external banks and brokerages."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    out["deposit_rate_1y"] = out["deposit_rate_1y"] - 1.5  # one rate for everyone, like the market table
    moved = rng.beta(2, 5, n)  # share of deposits moved out
    out["deposit_share"] = out["deposit_share"] * (1 - moved)
    out["aum_deposit"] = out["aum_deposit"] * (1 - moved)
    out["outflow_external_bank_90d"] = out["outflow_external_bank_90d"] + np.where(
        rng.random(n) < 0.5, rng.lognormal(9, 1, n), 0.0
    )
    out["outflow_brokerage_90d"] = out["outflow_brokerage_90d"] + np.where(
        rng.random(n) < 0.3, rng.lognormal(9, 1, n), 0.0
    )
    return out


def bull_market(frame: pd.DataFrame, seed: int = 2) -> pd.DataFrame:
    """Equity index up 12% over 3 months; equity activity rises; scores are recomputed."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    out["index_return_3m"] = out["index_return_3m"] + 0.12
    out["views_equity_funds_90d"] = out["views_equity_funds_90d"] + rng.poisson(3, n)
    out["count_investment_buy_90d"] = out["count_investment_buy_90d"] + rng.poisson(1.5, n)
    buying = rng.random(n) < 0.5
    out["outflow_investment_buy_90d"] = out["outflow_investment_buy_90d"] + np.where(
        buying, rng.lognormal(9, 1, n), 0.0
    )
    out["outflow_brokerage_90d"] = out["outflow_brokerage_90d"] + np.where(
        rng.random(n) < 0.35, rng.lognormal(9.5, 1, n), 0.0
    )
    return add_scores(out, rng)


def channel_mix(frame: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """A new mobile app: the digital share of transactions jumps; branch and advisor visits fall."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out["digital_txn_share_90d"] = 1 - (1 - out["digital_txn_share_90d"]) * 0.4
    for col in ("branch_txn_count_90d", "advisor_txn_count_90d"):
        counts = out[col].to_numpy(dtype=float)
        known = np.isfinite(counts)
        thinned = np.full(counts.shape, np.nan)
        thinned[known] = rng.binomial(counts[known].astype(np.int64), 0.3)
        out[col] = thinned
    return out


SCENARIOS = {"rate_cut": rate_cut, "bull_market": bull_market, "channel_mix": channel_mix}

# The small window the CLI and dashboard tests write to files: features of every kind plus one score.
CLI_COLUMNS = [
    "customer_id",
    "aum",
    "deposit_share",
    "aum_deposit",
    "deposit_rate_1y",
    "outflow_external_bank_90d",
    "login_count_30d",
    "region",
    "churn_proba",
]
