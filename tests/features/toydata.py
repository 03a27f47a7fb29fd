"""Tiny random raw tables that follow the raw contract, for unit and property tests.

Not the simulator (`features.simulate` tells a generative story); this only draws
independent rows with the right columns, dtypes and vocabularies, fast, from a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import vocab


def toy_raw(
    seed: int = 0,
    n_customers: int = 8,
    start: str = "2024-01-01",
    end: str = "2025-06-30",
    txn_per_customer: int = 120,
    events_per_customer: int = 80,
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    span_ns = end_ts.value - start_ts.value
    ids = np.arange(1, n_customers + 1, dtype=np.int64) * 10
    onboard = start_ts + pd.to_timedelta(rng.integers(-2000, 200, n_customers), unit="D")
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "birth_date": pd.to_datetime(
                start_ts - pd.to_timedelta(rng.integers(20 * 365, 80 * 365, n_customers), unit="D")
            ),
            "onboard_date": pd.to_datetime(onboard),
            "occupation": pd.array(rng.choice(vocab.OCCUPATIONS, n_customers), dtype="string"),
            "region": pd.array(rng.choice(vocab.REGIONS, n_customers), dtype="string"),
            "income_band": pd.array(rng.choice(vocab.INCOME_BANDS, n_customers), dtype="string"),
            "stated_risk": pd.array(rng.choice(vocab.RISK_CLASSES, n_customers), dtype="string"),
            "risk_assessed_on": pd.to_datetime(onboard + pd.to_timedelta(rng.integers(0, 400, n_customers), unit="D")),
            "is_business_owner": rng.random(n_customers) < 0.2,
            "payroll_at_bank": rng.random(n_customers) < 0.6,
        }
    )

    def times(k: int) -> pd.Series:
        return pd.to_datetime(start_ts.value + rng.integers(0, span_ns, k))

    k = n_customers * txn_per_customer
    cat = rng.choice(vocab.TXN_CATEGORIES, k)
    direction = np.where(
        np.isin(cat, ["salary", "investment_sell", "interest"]), "in", np.where(rng.random(k) < 0.3, "in", "out")
    )
    direction[np.isin(cat, ["card_spend", "investment_buy", "fee", "loan_repayment", "bill_payment"])] = "out"
    product = np.where(
        np.isin(cat, ["investment_buy", "investment_sell"]),
        rng.choice(["bond_fund", "balanced_fund", "equity_fund", "structured_product"], k),
        None,
    )
    transactions = (
        pd.DataFrame(
            {
                "txn_id": np.arange(k, dtype=np.int64),
                "customer_id": rng.choice(ids, k),
                "ts": times(k),
                "amount": np.round(rng.lognormal(6, 1.5, k), 2) + 0.01,
                "direction": pd.array(direction, dtype="string"),
                "channel": pd.array(rng.choice(vocab.CHANNELS, k), dtype="string"),
                "category": pd.array(cat, dtype="string"),
                "counterparty": pd.array(rng.choice(vocab.COUNTERPARTIES, k), dtype="string"),
                "product_type": pd.array(product, dtype="string"),
            }
        )
        .sort_values(["customer_id", "ts"], kind="stable")
        .reset_index(drop=True)
    )

    k = n_customers * events_per_customer
    etype = rng.choice(vocab.EVENT_TYPES, k, p=[0.5, 0.35, 0.15])
    events = (
        pd.DataFrame(
            {
                "customer_id": rng.choice(ids, k),
                "ts": times(k),
                "event_type": pd.array(etype, dtype="string"),
                "topic": pd.array(np.where(etype == "login", None, rng.choice(vocab.TOPICS, k)), dtype="string"),
            }
        )
        .sort_values(["customer_id", "ts"], kind="stable")
        .reset_index(drop=True)
    )

    month_ends = pd.date_range(start_ts, end_ts, freq="ME")
    rows = []
    for cid in ids:
        held = rng.choice(vocab.PRODUCT_TYPES, rng.integers(1, 5), replace=False)
        scale = 10 ** rng.uniform(3, 7.3)
        close_after = month_ends[rng.integers(len(month_ends))] if rng.random() < 0.25 else None
        for j, p in enumerate(held):
            _fam, level, liab = vocab.PRODUCTS[p]
            value = scale * rng.uniform(0.1, 1)
            for d in month_ends:
                if close_after is not None and d > close_after:
                    break
                value *= np.exp(rng.normal(0, 0.15))
                rows.append((cid, d, f"{cid}-{j}", p, level, float(value), liab))
    holdings = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "snapshot_date",
            "product_id",
            "product_type",
            "risk_level",
            "market_value",
            "is_liability",
        ],
    )
    for col in ("product_id", "product_type", "risk_level"):
        holdings[col] = holdings[col].astype("string")
    holdings = holdings.sort_values(["customer_id", "snapshot_date", "product_id"], kind="stable").reset_index(
        drop=True
    )

    dates = pd.bdate_range(start_ts - pd.Timedelta(days=200), end_ts)
    market = pd.DataFrame(
        {
            "date": dates,
            "equity_index": 1000 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, len(dates)))),
            "deposit_rate_1y": np.round(3 + np.cumsum(rng.normal(0, 0.01, len(dates))), 3),
        }
    )
    # suitability reviews (#12): half the customers, one review each; their own generator, so the other
    # tables are what they were before the table existed
    rrng = np.random.default_rng([seed, 21])
    who = np.sort(rrng.choice(ids, max(1, n_customers // 2), replace=False))
    reviews = pd.DataFrame(
        {
            "customer_id": who,
            "reviewed_at": pd.to_datetime(start_ts.value + rrng.integers(0, span_ns, len(who))).normalize(),
            "reviewed_risk": pd.array(rrng.choice(vocab.RISK_CLASSES, len(who)), dtype="string"),
        }
    )
    return {
        "customers": customers,
        "holdings": holdings,
        "transactions": transactions,
        "events": events,
        "market": market,
        "suitability_reviews": reviews,
    }
