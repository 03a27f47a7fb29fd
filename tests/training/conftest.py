"""Small generated panels for training tests (no dependency on the simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

RISK = np.array(["conservative", "balanced", "aggressive"], dtype=object)


def _tier(aum: np.ndarray) -> np.ndarray:
    return np.where(aum >= 10e6, "hnw", np.where(aum >= 0.5e6, "affluent", "mass")).astype(object)


def make_panel(n_customers: int = 700, n_dates: int = 4, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A panel shaped like `features/` output (a few features + the three labels) and its truth table."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_customers + 1)
    latent = rng.choice(3, size=n_customers, p=[0.5, 0.3, 0.2])
    # Stated profile: noisy, biased towards conservative.
    stated = np.where(rng.random(n_customers) < 0.6, latent, rng.choice(3, size=n_customers, p=[0.6, 0.25, 0.15]))
    age = rng.uniform(22, 80, n_customers)
    wealth = np.exp(rng.normal(12 + 0.8 * (latent == 2), 1.6, n_customers))
    engagement = rng.gamma(2.0, 1.0, n_customers)
    income = rng.choice(["low", "middle", "high"], size=n_customers)
    # Profile and long-window columns of the built-in risk spec, from their own generator so the
    # columns above keep the values they had before these were added.
    extra = np.random.default_rng([seed, 1])
    tenure = extra.uniform(0, 30, n_customers)
    # Registry categories only: batch scoring rejects others (features.requests).
    occupation = extra.choice(["salaried", "self_employed", "retired"], size=n_customers)
    business = extra.random(n_customers) < 0.1
    payroll = extra.random(n_customers) < 0.6
    stage = np.where(age < 35, "young_professional", np.where(age < 60, "family_growth", "retirement")).astype(object)
    # The risk posterior's columns (#12), from a third generator for the same reason.
    more = np.random.default_rng([seed, 2])
    assessed_days = more.integers(0, 3000, n_customers).astype(float)  # whole days, as the registry declares it
    rows = []
    dates = pd.date_range("2025-01-31", periods=n_dates, freq="ME")
    for d_i, d in enumerate(dates):
        aum = wealth * np.exp(rng.normal(0.02 * d_i, 0.1, n_customers))
        logins = rng.poisson(engagement * 10)
        views_eq = rng.poisson(0.5 + 2.5 * latent * engagement / 2)
        brokerage = rng.exponential(1.0, n_customers) * (latent == 2) * 20_000 * (rng.random(n_customers) < 0.6)
        churn_logit = -2.5 + 1.5 * (logins < 5) - 0.3 * engagement + rng.normal(0, 0.5, n_customers)
        churn = (rng.random(n_customers) < 1 / (1 + np.exp(-churn_logit))).astype(float)
        churn[aum < 10_000] = np.nan
        future_aum = (
            aum * np.exp(rng.normal(0.05 + 0.1 * (latent == 2), 0.3, n_customers)) * np.where(churn == 1, 0.3, 1)
        )
        revealed = np.where(rng.random(n_customers) < 0.8, latent, rng.choice(3, size=n_customers)).astype(int)
        revealed_lab = RISK[revealed].copy()
        revealed_lab[stated != 2] = None
        logins_365 = extra.poisson(engagement * 100)
        views_365 = extra.poisson(2.0 + 10.0 * latent * engagement / 2)
        topical_365 = views_365 + extra.poisson(20, n_customers)
        brokerage_n = extra.poisson(0.3 + 3.0 * (latent == 2) * (stated < 2))  # appetite the shelf blocks shows here
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids.astype("int64"),
                    "as_of": d,
                    "age": age + d_i / 12,
                    "tenure_years": tenure + d_i / 12,
                    "occupation": occupation,
                    "is_business_owner": business,
                    "payroll_at_bank": payroll,
                    "lifecycle_stage": stage,
                    "views_equity_funds_365d": views_365.astype(float),
                    "equity_funds_view_share_365d": views_365 / topical_365,
                    "equity_views_per_login_365d": views_365 / (1.0 + logins_365),
                    "count_outflow_brokerage_365d": brokerage_n.astype(float),
                    "outflow_brokerage_365d": brokerage_n * 5_000.0,
                    "brokerage_transfers_per_login_365d": brokerage_n / (1.0 + logins_365),
                    "invest_interest_per_login_365d": (brokerage_n + views_365) / (1.0 + logins_365),
                    "aum": aum,
                    "login_count_30d": logins.astype(float),
                    "views_equity_funds_90d": views_eq.astype(float),
                    "outflow_brokerage_90d": brokerage,
                    "income_band": income,
                    "relationship_depth": rng.choice(["basic", "multi_product", "ecosystem"], size=n_customers),
                    "stated_risk": RISK[stated],
                    "tier": _tier(aum),
                    "aum_r4": np.where(stated == 2, aum * 0.3 * (latent == 2), 0.0),  # capped by suitability
                    "tier_future": _tier(future_aum),
                    "churn": churn,
                    "revealed_risk": revealed_lab,
                    "stated_risk_age_days": assessed_days + 30 * d_i,
                    "views_fixed_income_90d": more.poisson(1.0 + 2.0 * (latent == 1)).astype(float),
                    "views_deposits_90d": more.poisson(1.0 + 1.0 * (latent == 0)).astype(float),
                    "login_count_90d": more.poisson(engagement * 30).astype(float),
                    "aum_fund": aum * (more.random(n_customers) < 0.5 + 0.3 * (latent > 0)),
                }
            )
        )
    panel = pd.concat(rows, ignore_index=True)
    # The latest suitability review known at T (the risk posterior's anchor rows), from a fourth generator so
    # every column above keeps its values: ~10% of customers reviewed before the first date, the class right
    # 90% of the time (an advisor's assessment, features/SIMULATOR.md §3b).
    review = np.random.default_rng([seed, 3])
    reviewed = review.random(n_customers) < 0.1
    assessed = np.where(review.random(n_customers) < 0.9, latent, review.choice(3, size=n_customers))
    per_customer = np.where(reviewed, RISK[assessed], None)
    panel["reviewed_risk"] = per_customer[panel["customer_id"].to_numpy() - 1]
    truth = pd.DataFrame({"customer_id": ids.astype("int64"), "latent_risk": RISK[latent]})
    return panel, truth


@pytest.fixture(scope="session")
def panel_and_truth():
    return make_panel()


@pytest.fixture
def features_dir(tmp_path, panel_and_truth):
    """A feature folder with panel.parquet, latest.parquet and the truth beside it."""
    panel, truth = panel_and_truth
    d = tmp_path / "features"
    d.mkdir()
    panel.to_parquet(d / "panel.parquet", index=False)
    last = panel[panel["as_of"] == panel["as_of"].max()].drop(columns=["tier_future", "churn", "revealed_risk"])
    last.to_parquet(d / "latest.parquet", index=False)
    truth.to_parquet(d / "truth.parquet", index=False)
    return d


def small_data_spec(spec):
    """The built-in spec with tree-size bounds that fit a few hundred training rows."""
    if not spec.tuning.space:
        return spec
    space = {**spec.tuning.space, "min_child_samples": (10, 40)}
    return spec.model_copy(update={"tuning": spec.tuning.model_copy(update={"space": space})})
