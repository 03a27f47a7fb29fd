"""A simulated bank: the demo's data source, the test fixture factory and the benchmark load.

The generative story (and every parameter) is told in `features/SIMULATOR.md`; this module
follows it section by section. Layout:

- `SimParams` — every tunable number of the story, typed and documented.
- `simulate_market(...)` — the shared market (pure; generated once per run).
- `generate_block(...)` — one block of `BLOCK_SIZE` customers (pure; numpy only, no
  Python loops over customers or rows). Its randomness comes from
  `SeedSequence([seed, 1, block_index])`, so a customer's data depends only on the seed and
  the block it falls in, never on the chunk size used to write the files.
- `simulate(...)` — the I/O shell: groups blocks into chunks, writes each chunk of a table to a
  temporary name as one Parquet row group (transactions, events, holdings: one row group per
  span of 10,000 customer ids and calendar month, so readers skip months by statistics), and
  renames every file only once all are done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from features import vocab

log = logging.getLogger(__name__)

BLOCK_SIZE = 1000
"""Customers per randomness block. Fixed: changing it changes every generated value."""

DEFAULT_START = date(2024, 1, 1)
DEFAULT_CHUNK_SIZE = 20_000
OUTPUT_TABLES = (*vocab.TABLES, "truth")
REGIMES = ("bull", "sideways", "bear")
_NS_PER_DAY = 86_400 * 10**9
_TXN_ID_STRIDE = 1_000_000  # txn_id = customer_id * stride + sequence within the customer


class SimParams(BaseModel):
    """Every tunable number of the generative story (see SIMULATOR.md for the why)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- market
    index_start: float = 3000.0
    regime_transition: tuple[tuple[float, float, float], ...] = (
        (0.75, 0.17, 0.08),  # from bull
        (0.25, 0.50, 0.25),  # from sideways
        (0.15, 0.20, 0.65),  # from bear
    )
    regime_initial: tuple[float, float, float] = (0.40, 0.35, 0.25)
    regime_daily_drift: tuple[float, float, float] = (0.0015, 0.0, -0.0017)
    regime_daily_vol: tuple[float, float, float] = (0.008, 0.009, 0.016)
    rate_start: float = Field(2.75, description="deposit_rate_1y in the first month, percent")
    rate_cut_prob: float = 0.35
    rate_hike_prob: float = 0.04
    rate_step: float = 0.25
    rate_floor: float = 0.25
    competitor_lag: float = Field(0.25, description="share of the gap competitors close each month")

    # --- wealth and wallet share (calibrated so ~0.75% HNW, ~10% affluent by bank AUM)
    log_wealth_mu: float = 9.5
    log_wealth_sigma: float = 2.55
    wallet_share_a: float = 1.6
    wallet_share_b: float = 1.6
    tier_affluent_min: float = 500_000.0
    tier_hnw_min: float = 10_000_000.0

    # --- risk appetite and the questionnaire
    appetite_cut_balanced: float = Field(-0.35, description="latent score above this is at least balanced")
    appetite_cut_aggressive: float = Field(0.8, description="latent score above this is aggressive")
    questionnaire_noise: float = 1.7
    questionnaire_bias: float = Field(0.8, description="answers lean conservative by this much")
    appetite_drift_per_sqrt_year: float = 0.25
    reassess_prob: float = Field(0.30, description="share ever re-assessed after onboarding")
    # #12: advisor-led suitability reviews (MiFID II periodic review), the `suitability_reviews` table. Drawn
    # from their own random stream, so every other table and truth column is unchanged (SIMULATOR.md §3b).
    review_rate_by_tier: tuple[float, float, float] = Field(
        (0.04, 0.12, 0.50),
        description="suitability reviews per customer-year by bank-AUM tier at start (mass, affluent, hnw)",
    )
    review_noise: float = Field(0.3, ge=0, description="sd of the advisor's assessment error on the appetite (no lean)")

    # --- churn
    churn_base_hazard: float = 0.0095
    churn_rate_gap_coef: float = 0.8
    churn_incident_coef: float = 1.1
    churn_engagement_coef: float = 1.2
    churn_payroll_coef: float = -0.6
    # #12 (churn cause): a home bought with another bank's mortgage, or tuition paid abroad, moves the
    # relationship: the hazard rises in the event month and the three after (log-term, x e^1.8 ~ 6).
    churn_life_event_coef: float = 1.8
    churn_life_event_months: int = 3
    incident_prob: float = 0.02
    pre_churn_signal_prob: float = Field(0.8, description="share of churners that show pre-churn signals")

    # --- life events: probability over a 24-month window for eligible customers
    home_purchase_prob: float = 0.07
    study_abroad_prob: float = 0.06
    retirement_prob: float = 0.30
    # (issue #14, life-event / need-signal story only) habitual browsing of the life-event topics
    # differs between customers: a lognormal taste (mean 1) on each topic's base rate, drawn from
    # its own random stream: only the events table is redrawn (SIMULATOR.md §4).
    life_topic_taste_sigma: float = Field(
        1.0, ge=0, description="per-customer lognormal spread of habitual life-topic browsing (not the need burst)"
    )
    retirement_research_months: tuple[int, int] = Field(
        (2, 6), description="months of pension browsing before a retirement (uniform, inclusive)"
    )

    # --- behaviour intensities (per customer-month)
    card_spend_rate: float = 7.0
    appetite_behaviour_coef: float = Field(
        0.4, description="log-rate of brokerage use and equity browsing per unit of appetite"
    )
    login_rate: float = 5.0
    brokerage_rate: float = 0.06
    blocked_appetite_boost: float = Field(
        0.8, description="extra brokerage/equity interest when suitability blocks appetite"
    )
    brokerage_taste_sigma: float = Field(1.2, description="per-customer lognormal spread of brokerage use")
    browse_taste_sigma: float = Field(1.0, description="per-customer lognormal spread of equity-fund browsing")
    # #12: a balanced appetite shows as interest in bond and balanced funds (the `fixed_income` topic),
    # peaking between the two appetite cuts; a cautious one as interest in deposit offers. R1-R3 content
    # that every stated profile may browse, so the questionnaire does not censor it.
    fixed_income_affinity_coef: float = Field(
        1.4, description="log-rate of fixed_income browsing at the centre of the balanced appetite band"
    )
    fixed_income_affinity_width: float = Field(0.6, description="appetite half-width of that bump")
    balanced_invest_coef: float = Field(
        0.8, description="log-odds of fund investing (and balanced-fund holding, weight) at the bump's centre"
    )
    deposit_caution_coef: float = Field(0.5, description="log-rate of deposits browsing per unit of caution")
    fixed_income_taste_sigma: float = Field(0.7, description="per-customer lognormal spread of fixed-income browsing")
    regime_response: tuple[float, float, float] = Field(
        (0.9, 0.0, -0.7), description="log-multiplier of equity interest per unit of responsiveness, by regime"
    )


@dataclass(frozen=True)
class Market:
    """The shared market: the daily table plus the monthly latent states behaviour reacts to."""

    frame: pd.DataFrame  # date, equity_index, deposit_rate_1y (the `market` table)
    month_starts: np.ndarray  # datetime64[ns], months + 1 boundaries
    regime: np.ndarray  # int8 per month, index into REGIMES
    rate: np.ndarray  # deposit_rate_1y per month (percent)
    rate_gap: np.ndarray  # competitor rate minus ours per month (percent points, >= 0 mostly)
    index_month_end: np.ndarray  # equity_index at each month end

    @property
    def months(self) -> int:
        return len(self.regime)


def month_starts(start: date | str | pd.Timestamp, months: int) -> np.ndarray:
    """First day of each simulated month plus the end boundary (months + 1 values)."""
    first = pd.Timestamp(start).to_period("M").to_timestamp()
    return pd.date_range(first, periods=months + 1, freq="MS").values.astype("datetime64[ns]")


def simulate_market(
    seed: int, months: int, start: date | str = DEFAULT_START, params: SimParams | None = None
) -> Market:
    """Daily business-day equity index under Markov-switching regimes, and a stepped deposit rate.

    Regimes switch monthly so that "a bull month" is a well-defined unit of behaviour.
    Loops here are over months (tens), never customers.
    """
    p = params or SimParams()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    bounds = month_starts(start, months)
    trans = np.asarray(p.regime_transition)
    regime = np.empty(months, dtype=np.int8)
    regime[0] = rng.choice(3, p=p.regime_initial)
    for m in range(1, months):
        regime[m] = rng.choice(3, p=trans[regime[m - 1]])
    days = pd.bdate_range(bounds[0], pd.Timestamp(bounds[-1]) - pd.Timedelta(days=1)).values.astype("datetime64[ns]")
    day_month = np.searchsorted(bounds, days, side="right") - 1
    drift = np.asarray(p.regime_daily_drift)[regime[day_month]]
    vol = np.asarray(p.regime_daily_vol)[regime[day_month]]
    index = p.index_start * np.exp(np.cumsum(drift + vol * rng.standard_normal(len(days))))
    month_end_idx = np.searchsorted(day_month, np.arange(months), side="right") - 1
    index_month_end = index[month_end_idx]

    rate = np.empty(months)
    rate[0] = p.rate_start
    u = rng.random(months)
    for m in range(1, months):
        step = -p.rate_step if u[m] < p.rate_cut_prob else p.rate_step if u[m] > 1 - p.rate_hike_prob else 0.0
        rate[m] = max(p.rate_floor, rate[m - 1] + step)
    competitor = np.empty(months)
    competitor[0] = rate[0]
    for m in range(1, months):
        competitor[m] = competitor[m - 1] + p.competitor_lag * (rate[m] - competitor[m - 1])
    frame = pd.DataFrame(
        {
            "date": days,
            "equity_index": np.round(index, 2),
            "deposit_rate_1y": np.round(rate[day_month], 4),
        }
    )
    return Market(frame, bounds, regime, rate, competitor - rate, index_month_end)


# ---------------------------------------------------------------- customer block


@dataclass
class Block:
    """Column arrays of one block, per table. String columns are (codes, vocabulary) pairs."""

    tables: dict[str, dict[str, Any]]  # column -> array, or (codes, vocabulary) for a category


LIFECYCLE_STAGES = vocab.LIFECYCLE_STAGES
LIFE_EVENTS = vocab.LIFE_EVENTS
_P = {name: i for i, name in enumerate(vocab.PRODUCT_TYPES)}
_NP = len(vocab.PRODUCT_TYPES)
# Catalogue: product_id = f"{prefix}-{variant:02d}"; a customer holds at most one variant of a type.
_PREFIX = {
    "current_account": ("CA", 1),
    "savings_deposit": ("SA", 2),
    "time_deposit": ("TD", 3),
    "money_market_fund": ("MMF", 2),
    "bond_fund": ("BF", 5),
    "balanced_fund": ("BLF", 4),
    "equity_fund": ("EQF", 8),
    "structured_product": ("SP", 4),
    "insurance": ("INS", 3),
    "pension": ("PEN", 2),
    "mortgage": ("MTG", 1),
    "personal_loan": ("PL", 1),
    "credit_card": ("CC", 3),
}
PRODUCT_CATALOG = tuple(f"{_PREFIX[t][0]}-{v + 1:02d}" for t in vocab.PRODUCT_TYPES for v in range(_PREFIX[t][1]))
_CATALOG_OFFSET = np.cumsum([0] + [_PREFIX[t][1] for t in vocab.PRODUCT_TYPES])[:-1]
_CATALOG_SIZE = np.array([_PREFIX[t][1] for t in vocab.PRODUCT_TYPES])
# Market beta and monthly carry of each product's value (deposits and liabilities: none).
_BETA = np.zeros(_NP)
_CARRY = np.zeros(_NP)
for _t, _b, _c in (
    ("money_market_fund", 0.0, 0.0015),
    ("bond_fund", 0.08, 0.0025),
    ("balanced_fund", 0.5, 0.002),
    ("equity_fund", 1.0, 0.0),
    ("structured_product", 0.7, 0.001),
    ("insurance", 0.0, 0.002),
    ("pension", 0.2, 0.003),
):
    _BETA[_P[_t]], _CARRY[_P[_t]] = _b, _c
_RISK_RANK = np.array([int(vocab.PRODUCTS[t][1][1]) for t in vocab.PRODUCT_TYPES])
_LIABILITY = np.array([vocab.PRODUCTS[t][2] for t in vocab.PRODUCT_TYPES])
_MAX_RANK = np.array([int(vocab.MAX_RISK_LEVEL_FOR[r][1]) for r in vocab.RISK_CLASSES])

# Occupation probabilities by age group (<25, 25-62, >=63), columns in vocab.OCCUPATIONS order.
_OCC_PROBS = np.array(
    [
        # salaried civil prof self biz retired student unemployed
        [0.40, 0.03, 0.05, 0.04, 0.01, 0.00, 0.42, 0.05],
        [0.45, 0.12, 0.15, 0.11, 0.07, 0.02, 0.00, 0.08],
        [0.06, 0.02, 0.04, 0.04, 0.04, 0.80, 0.00, 0.00],
    ]
)
_O = {name: i for i, name in enumerate(vocab.OCCUPATIONS)}
_OCC_INCOME = np.array([0.0, 0.2, 0.8, 0.3, 1.0, -0.4, -1.6, -1.4])
_BAND_CUTS = np.array([-1.0, -0.3, 0.4, 1.1])  # income score -> vocab.INCOME_BANDS
_BAND_INCOME = np.array([3_000.0, 6_000.0, 10_000.0, 18_000.0, 40_000.0])  # monthly, bank currency


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probs` (n x k), vectorised."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return (u[:, None] >= cum).sum(axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _days_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (b - a).astype("timedelta64[ns]").astype(np.int64) / _NS_PER_DAY


LIFE_TOPICS = ("pension", "study_abroad", "overseas_account", "mortgage", "insurance")


def _life_topic_habits(rng: np.random.Generator, n: int, p: SimParams) -> dict[str, np.ndarray]:
    """Per-customer multiplier (lognormal, mean 1) of each life-event topic's habitual browsing rate.

    Some customers read about pensions or mortgages every month with no event coming, others
    never do: the raw count of views says little until it is set against the customer's own habit.
    """
    sigma = p.life_topic_taste_sigma
    return {t: np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2) for t in LIFE_TOPICS}


def generate_block(block_index: int, n: int, market: Market, seed: int, params: SimParams | None = None) -> Block:
    """Generate customers `block_index * BLOCK_SIZE + 1 ..` (n of them) and all their rows.

    Pure: the result depends only on the arguments. Arrays are customer x month (n x M)
    or customer x month x product (n x M x P); rows are expanded from Poisson counts.
    """
    p = params or SimParams()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, block_index]))
    M = market.months
    bounds = market.month_starts
    start = bounds[0]
    ids = block_index * BLOCK_SIZE + 1 + np.arange(n, dtype=np.int64)
    months = np.arange(M)

    # ---- 1. who they are
    age = 18.0 + 67.0 * rng.beta(2.0, 2.3, n)
    group = np.where(age < 25, 0, np.where(age < 63, 1, 2))
    occ = _choice_rows(rng, _OCC_PROBS[group])
    stage = np.where(age < 35, 0, np.where(age < 60, 1, 2))
    income_score = _OCC_INCOME[occ] + 0.4 * np.clip((age - 25) / 20, -0.5, 1.0) + 0.8 * rng.standard_normal(n)
    band = np.searchsorted(_BAND_CUTS, income_score)
    income = _BAND_INCOME[band] * np.exp(0.25 * rng.standard_normal(n))
    knowledge = 0.4 * income_score + 0.3 * (occ == _O["professional"]) + 0.9 * rng.standard_normal(n)
    region = _choice_rows(rng, np.tile([0.35, 0.30, 0.20, 0.15], (n, 1)))
    is_owner = (
        (occ == _O["business_owner"]) | ((occ == _O["self_employed"]) & (rng.random(n) < 0.4)) | (rng.random(n) < 0.01)
    )
    employed = np.isin(occ, [_O["salaried"], _O["civil_servant"], _O["professional"]])
    payroll = rng.random(n) < np.where(employed, 0.55, np.where(occ == _O["retired"], 0.03, 0.08))
    tenure_years = np.minimum(rng.exponential(6.0, n), age - 18.0) + 0.05
    birth = start - (age * 365.25 * _NS_PER_DAY).astype("timedelta64[ns]")
    onboard = start - (tenure_years * 365.25 * _NS_PER_DAY).astype("timedelta64[ns]")
    birth = birth.astype("datetime64[D]").astype("datetime64[ns]")
    onboard = onboard.astype("datetime64[D]").astype("datetime64[ns]")

    # ---- 2. wealth and wallet share
    age_wealth = np.clip((np.minimum(age, 68) - 40) / 20, -1.2, 1.4)
    z_wealth = 0.55 * income_score + 0.45 * age_wealth + 0.7 * rng.standard_normal(n)
    log_wealth = p.log_wealth_mu + p.log_wealth_sigma * z_wealth / 0.95
    wealth = np.exp(log_wealth)
    share = rng.beta(p.wallet_share_a + 0.8 * payroll, p.wallet_share_b, n)
    aum0 = wealth * share

    # ---- 3. risk appetite, questionnaire, staleness
    appetite = (
        0.45 * knowledge + 0.35 * z_wealth - 0.35 * (age - 45) / 15 + 0.25 * is_owner + 0.75 * rng.standard_normal(n)
    )
    latent = np.searchsorted([p.appetite_cut_balanced, p.appetite_cut_aggressive], appetite)
    reassessed = rng.random(n) < p.reassess_prob
    assessed = onboard + ((start - onboard).astype(np.int64) * rng.random(n) * reassessed).astype("timedelta64[ns]")
    assessed = assessed.astype("datetime64[D]").astype("datetime64[ns]")
    years_stale = _days_between(assessed, np.full(n, start)) / 365.25
    appetite_then = appetite + p.appetite_drift_per_sqrt_year * np.sqrt(years_stale) * rng.standard_normal(n)
    answers = appetite_then + p.questionnaire_noise * rng.standard_normal(n) - p.questionnaire_bias
    stated = np.searchsorted([p.appetite_cut_balanced, p.appetite_cut_aggressive], answers)
    max_rank = _MAX_RANK[stated]
    # Appetite the bank's shelf cannot serve: it leaks into brokerage transfers and browsing.
    blocked = np.clip(latent - stated, 0, None).astype(float)
    # how strongly equity interest follows the regime: appetite plus a personal streak
    respond = np.clip(0.15 + 0.6 * np.clip(appetite, 0, None) + 0.35 * rng.standard_normal(n), 0, None)
    # Tastes unrelated to appetite: some cautious people browse funds, some bold ones never log in.
    brokerage_taste = np.exp(p.brokerage_taste_sigma * rng.standard_normal(n) - p.brokerage_taste_sigma**2 / 2)
    browse_taste = np.exp(p.browse_taste_sigma * rng.standard_normal(n) - p.browse_taste_sigma**2 / 2)
    engagement = rng.standard_normal(n) - 0.5 * (age - 45) / 15
    declining = rng.random(n) < 0.25
    eng_slope = np.where(declining, -rng.uniform(0.02, 0.10, n), rng.normal(0.0, 0.01, n))
    eng_trend = eng_slope[:, None] * months[None, :]  # log-intensity drift per month

    # ---- 4. life events (at most one per customer, inside the window)
    life = np.full(n, -1)
    life_month = np.full(n, M + 10)
    lead = rng.integers(1, 4, n)
    if M >= 5:
        scale = min(1.0, M / 24)
        u = rng.random(n)
        home = (age >= 25) & (age < 46) & (u < p.home_purchase_prob * scale)
        study = ~home & (age >= 42) & (age < 56) & (u > 1 - p.study_abroad_prob * scale)
        retire = (
            (age >= 57) & (age < 66) & (occ != _O["retired"]) & (rng.random(n) < min(0.9, p.retirement_prob * scale))
        )
        life = np.select([home, study, retire], [0, 1, 2], -1)
        life_month = np.where(life >= 0, rng.integers(3, M, n), M + 10)
    life_day = rng.random(n)
    rel = months[None, :] - life_month[:, None]  # months since the life event
    before_event = (rel < 0) & (rel >= -lead[:, None])
    after_event = rel >= 0

    # ---- 5. churn: monthly hazard, first hit wins
    incident = rng.random((n, M)) < p.incident_prob
    incident_recent = incident.astype(float)
    incident_recent[:, 1:] += 0.6 * incident[:, :-1]
    incident_recent[:, 2:] += 0.3 * incident[:, :-2]
    decline = np.clip(-eng_slope, 0, None) * 10  # 0..1 for customers drifting away
    life_moves = _life_event_churn_push(p, life, rel)
    log_h = (
        np.log(p.churn_base_hazard)
        + p.churn_rate_gap_coef * market.rate_gap[None, :]
        + p.churn_incident_coef * incident_recent
        + p.churn_engagement_coef * decline[:, None]
        + p.churn_payroll_coef * payroll[:, None]
        - 0.35 * (tenure_years[:, None] > 3)
        + 0.3 * (aum0[:, None] < 2_000)
        + life_moves
    )
    hit = rng.random((n, M)) < np.exp(log_h)
    hit[:, 0] = False  # nobody leaves in the first month: every churner has some history
    churn_month = np.where(hit.any(axis=1), hit.argmax(axis=1), M)
    churn_cause = _churn_cause(p, market.rate_gap, incident_recent, decline, life_moves, churn_month)
    churn_frac = rng.uniform(0.05, 0.95, n)  # when in its month the customer leaves
    churned = churn_month < M
    to_churn = churn_month[:, None] - months[None, :]  # months until churn (<=0: churned)
    signals = churned & (rng.random(n) < p.pre_churn_signal_prob)
    pre = np.where(signals[:, None] & (to_churn >= 1) & (to_churn <= 3), to_churn, 0)  # 1..3 or 0
    # share of each month the customer is still a customer
    active = np.where(to_churn > 0, 1.0, np.where(to_churn == 0, churn_frac[:, None], 0.0))
    login_pre = np.array([1.0, 0.40, 0.60, 0.80])[pre]
    out_pre = np.array([1.0, 4.0, 3.0, 2.0])[pre]
    balance_pre = np.array([1.0, 0.35, 0.60, 0.85])[pre]

    # ---- 6. market reactions
    regime = market.regime
    regime_coef = np.asarray(p.regime_response)[regime]
    equity_interest = np.exp(regime_coef[None, :] * respond[:, None])  # n x M
    rate_drop = np.clip(market.rate[0] - market.rate, 0, None)  # percent points below the start
    rate_push = 1.0 + 0.5 * rate_drop[None, :] * (appetite[:, None] > -0.3)

    # ---- 7. holdings: what is held, then values per month-end
    wz = (np.log(np.maximum(aum0, 1.0)) - 9.5) / 2.0
    allowed = _RISK_RANK[None, :] <= max_rank[:, None]
    # #12: a balanced appetite is what turns a saver into a fund investor (bond and balanced funds)
    balanced_taste = _balanced_affinity(p, appetite)
    invests = rng.random(n) < _sigmoid(-0.9 + 0.8 * appetite + 0.8 * wz + p.balanced_invest_coef * balanced_taste)
    hold_p = np.zeros((n, _NP))
    hold_p[:, _P["current_account"]] = 1.0
    hold_p[:, _P["savings_deposit"]] = 0.6
    hold_p[:, _P["time_deposit"]] = _sigmoid(-0.5 + 0.6 * wz - 0.5 * appetite)
    hold_p[:, _P["money_market_fund"]] = 0.15 + 0.25 * invests
    hold_p[:, _P["bond_fund"]] = 0.65 * invests
    hold_p[:, _P["balanced_fund"]] = invests * _sigmoid(-0.4 + p.balanced_invest_coef * 2 * balanced_taste)
    hold_p[:, _P["equity_fund"]] = invests * _sigmoid(-0.6 + 1.8 * appetite)
    hold_p[:, _P["structured_product"]] = invests * (aum0 > 1e6) * 0.4
    hold_p[:, _P["insurance"]] = _sigmoid(-1.5 + 0.03 * (age - 40) + 0.3 * wz)
    hold_p[:, _P["pension"]] = np.where(age > 45, 0.3, 0.08)
    hold_p[:, _P["mortgage"]] = np.where((age > 28) & (age < 58), 0.25, 0.03)
    hold_p[:, _P["personal_loan"]] = 0.08
    hold_p[:, _P["credit_card"]] = _sigmoid(0.2 + 0.4 * income_score)
    hold_p *= allowed | _LIABILITY[None, :]  # suitability: nothing above the stated profile
    held: np.ndarray = rng.random((n, _NP)) < hold_p
    tilt = np.array([-0.3, -0.2, -0.4, -0.1, 0.0, 0.4, 1.0, 1.0, 0.0, 0.0, 0, 0, 0])
    shape = np.array([1.0, 1.2, 2.0, 1.0, 1.5, 1.5, 1.5, 2.0, 0.8, 1.0, 1, 1, 1])
    weights = rng.gamma(shape[None, :], 1.0, (n, _NP)) * np.exp(tilt[None, :] * appetite[:, None])
    weights[:, _P["balanced_fund"]] *= np.exp(p.balanced_invest_coef * balanced_taste)  # #12: the core holding
    weights *= held & ~_LIABILITY[None, :]
    weights /= weights.sum(axis=1, keepdims=True)
    variant = (rng.random((n, _NP)) * _CATALOG_SIZE[None, :]).astype(np.int64)

    index_factor = market.index_month_end / p.index_start  # vs the index before month 0
    growth = index_factor[:, None] ** _BETA[None, :] * np.exp(_CARRY[None, :] * (months[:, None] + 1))  # M x P
    walk = np.exp(np.cumsum(0.03 * rng.standard_normal((n, M)), axis=1))
    value = aum0[:, None, None] * weights[:, None, :] * growth[None, :, :] * walk[:, :, None]  # n x M x P
    # Falling rates: time deposits roll off into funds the customer may hold (or savings).
    td = _P["time_deposit"]
    moved = value[:, :, td] * (1 - np.minimum(market.rate / market.rate[0], 1.0)[None, :] ** 1.5)
    value[:, :, td] -= moved
    dest = np.where(
        held[:, _P["bond_fund"]],
        _P["bond_fund"],
        np.where(held[:, _P["money_market_fund"]], _P["money_market_fund"], _P["savings_deposit"]),
    )
    held[np.arange(n), dest] |= held[:, td]
    value[np.arange(n)[:, None], months[None, :], dest[:, None]] += moved
    # Home purchase: deposits pay the down payment; a mortgage appears.
    price = np.clip(income * 12 * rng.uniform(5, 10, n), 300_000, None)
    deposits = [_P["current_account"], _P["savings_deposit"], _P["time_deposit"]]
    home_after = (life == 0)[:, None] & after_event
    value[:, :, deposits] *= np.where(home_after, 0.5, 1.0)[:, :, None]
    # Retirement: a lump sum moves into a pension product.
    retire_after = (life == 2)[:, None] & after_event
    value[:, :, _P["pension"]] += np.where(retire_after, 0.15 * aum0[:, None] + 12 * income[:, None], 0.0)
    holds = np.broadcast_to(held[:, None, :], (n, M, _NP)).copy()
    holds[:, :, _P["pension"]] |= retire_after
    holds[:, :, _P["mortgage"]] |= home_after
    # Liabilities: outstanding balances (amortising), credit card from spending.
    mortgage0 = income * 12 * rng.uniform(1, 6, n)
    amort = 1 - 0.004 * (months[None, :] + 1)
    value[:, :, _P["mortgage"]] = np.where(
        home_after, 0.7 * price[:, None] * (1 - 0.004 * np.maximum(rel + 1, 0)), mortgage0[:, None] * amort
    )
    value[:, :, _P["personal_loan"]] = (income * rng.uniform(2, 12, n))[:, None] * (1 - 0.03 * months[None, :]).clip(
        0.1
    )
    value[:, :, _P["credit_card"]] = income[:, None] * rng.uniform(0.05, 0.8, (n, M))
    # Churn: balances fall ahead of leaving, then everything but a dormant current account closes.
    value *= balance_pre[:, :, None]
    gone = to_churn <= 0
    holds &= ~gone[:, :, None]
    holds[:, :, _P["current_account"]] |= gone & held[:, None, _P["current_account"]]
    value[:, :, _P["current_account"]] = np.where(gone, rng.uniform(0, 50, (n, M)), value[:, :, _P["current_account"]])
    value *= np.exp(0.02 * rng.standard_normal(value.shape))
    hi, hm, hp = np.nonzero(holds)
    hv = np.round(value[hi, hm, hp], 2)

    # ---- 8. transactions: Poisson counts per customer-month and stream, expanded to rows
    rows: list[tuple] = []
    cm_shape = (n, M)
    employed_now = (employed | (occ == _O["self_employed"]))[:, None] & ~retire_after
    activity = np.exp(0.3 * eng_trend)  # declining customers do less of everything

    def stream(lam, category, direction, channel, counterparty, product, amount_scale, amount_sigma, once=False):
        """One kind of transaction: Poisson(lam) per customer-month, or at most one if `once`."""
        lam = np.broadcast_to(lam, cm_shape) * active
        counts = (rng.random(cm_shape) < lam).astype(np.int64) if once else rng.poisson(lam)
        rows.append((counts, category, direction, channel, counterparty, product, amount_scale, amount_sigma))

    C = {c: i for i, c in enumerate(vocab.TXN_CATEGORIES)}
    IN, OUT = vocab.DIRECTIONS.index("in"), vocab.DIRECTIONS.index("out")
    CH = {c: i for i, c in enumerate(vocab.CHANNELS)}
    CP = {c: i for i, c in enumerate(vocab.COUNTERPARTIES)}
    digital_ch = np.where(engagement > -0.5, CH["mobile"], CH["web"])
    aum_now = value[:, :, ~_LIABILITY].sum(axis=2)
    deposit_now = value[:, :, deposits].sum(axis=2)
    funds = [_P["money_market_fund"], _P["bond_fund"], _P["balanced_fund"], _P["equity_fund"], _P["structured_product"]]
    fund_holder = np.asarray(held[:, funds].any(axis=1))[:, None]
    # #12: an investor buys the riskiest fund held that the appetite wants (equity only when aggressive)
    best_fund = np.select(
        [
            held[:, _P["equity_fund"]] & (latent == 2),
            held[:, _P["balanced_fund"]] & (latent >= 1),
            held[:, _P["bond_fund"]],
            held[:, _P["money_market_fund"]],
            held[:, _P["balanced_fund"]],
        ],
        [_P["equity_fund"], _P["balanced_fund"], _P["bond_fund"], _P["money_market_fund"], _P["balanced_fund"]],
        _P["equity_fund"],
    )
    inc = income[:, None]
    stream(payroll[:, None] & employed_now, C["salary"], IN, CH["system"], CP["internal"], -1, inc, 0.03, once=True)
    stream(
        p.card_spend_rate * np.sqrt(income / 8000)[:, None] * activity,
        C["card_spend"],
        OUT,
        CH["pos"],
        CP["merchant"],
        -1,
        0.02 * inc,
        0.9,
    )
    stream(0.5 + 0.8 * (engagement < 0)[:, None], C["cash"], OUT, CH["atm"], CP["internal"], -1, 0.05 * inc, 0.6)
    stream(2.2 * activity, C["bill_payment"], OUT, digital_ch[:, None], CP["merchant"], -1, 0.04 * inc, 0.7)
    stream(0.8 * activity, C["transfer"], OUT, digital_ch[:, None], CP["internal"], -1, 0.1 * inc, 1.0)
    stream(0.6 + 0.9 * ~payroll[:, None], C["transfer"], IN, CH["system"], CP["external_bank"], -1, 0.5 * inc, 0.8)
    stream(
        0.3 * out_pre,
        C["transfer"],
        OUT,
        digital_ch[:, None],
        CP["external_bank"],
        -1,
        0.05 * inc + 0.15 * deposit_now * (out_pre > 1),
        0.8,
    )
    brokerage_lam = (
        p.brokerage_rate
        * (brokerage_taste * np.exp(p.appetite_behaviour_coef * appetite))[:, None]
        * (1 + p.blocked_appetite_boost * blocked[:, None])
        * equity_interest
        * rate_push
    )
    stream(brokerage_lam, C["transfer"], OUT, digital_ch[:, None], CP["brokerage"], -1, 0.04 * aum_now + inc, 0.8)
    stream(0.3 * brokerage_lam, C["transfer"], IN, CH["system"], CP["brokerage"], -1, 0.04 * aum_now + inc, 0.8)
    buy_lam = fund_holder * 0.25 * np.exp(0.7 * appetite)[:, None] * equity_interest * rate_push
    stream(
        buy_lam,
        C["investment_buy"],
        OUT,
        digital_ch[:, None],
        CP["internal"],
        best_fund[:, None],
        0.03 * aum_now + 1000,
        0.7,
    )
    sell_lam = fund_holder * 0.12 * np.exp(-0.3 * regime_coef)[None, :] * out_pre
    stream(
        sell_lam,
        C["investment_sell"],
        IN,
        digital_ch[:, None],
        CP["internal"],
        best_fund[:, None],
        0.04 * aum_now + 1000,
        0.7,
    )
    stream(
        held[:, None, _P["mortgage"]] & ~home_after,
        C["loan_repayment"],
        OUT,
        CH["system"],
        CP["internal"],
        _P["mortgage"],
        0.012 * mortgage0[:, None],
        0.02,
        once=True,
    )
    stream(
        home_after & (rel > 0),
        C["loan_repayment"],
        OUT,
        CH["system"],
        CP["internal"],
        _P["mortgage"],
        0.006 * price[:, None],
        0.02,
        once=True,
    )
    stream(
        held[:, None, _P["personal_loan"]],
        C["loan_repayment"],
        OUT,
        CH["system"],
        CP["internal"],
        _P["personal_loan"],
        0.1 * inc,
        0.05,
        once=True,
    )
    stream(
        held[:, None, _P["credit_card"]] * 0.95,
        C["loan_repayment"],
        OUT,
        CH["system"],
        CP["internal"],
        _P["credit_card"],
        0.3 * inc,
        0.5,
        once=True,
    )
    stream(
        home_after & (rel == 0),
        C["transfer"],
        OUT,
        CH["branch"],
        CP["external_bank"],
        -1,
        0.3 * price[:, None],
        0.1,
        once=True,
    )
    stream(
        retire_after & (rel == 0),
        C["investment_buy"],
        OUT,
        CH["advisor"],
        CP["internal"],
        _P["pension"],
        0.15 * aum0[:, None] + 12 * inc,
        0.05,
        once=True,
    )
    study_after = (life == 1)[:, None] & after_event
    stream(
        0.04 + 1.0 * study_after + 0.05 * (wz > 1)[:, None],
        C["fx"],
        OUT,
        digital_ch[:, None],
        CP["internal"],
        -1,
        0.3 * inc + 0.002 * aum_now,
        0.8,
    )
    stream(
        0.02 + 0.8 * study_after,
        C["transfer"],
        OUT,
        digital_ch[:, None],
        CP["overseas"],
        -1,
        np.where(study_after, 2.0 * inc + 20_000, 0.3 * inc),
        0.6,
    )
    stream(0.2 + 1.0 * incident, C["fee"], OUT, CH["system"], CP["internal"], -1, np.full(cm_shape, 25.0), 0.8)
    stream(
        deposit_now > 1000,
        C["interest"],
        IN,
        CH["system"],
        CP["internal"],
        -1,
        deposit_now * market.rate[None, :] / 1200 + 0.01,
        0.05,
        once=True,
    )

    counts = np.stack([r[0] for r in rows])  # S x n x M
    s_idx, c_idx, m_idx = np.nonzero(counts)
    reps = counts[s_idx, c_idx, m_idx]
    s_row, c_row, m_row = (np.repeat(a, reps) for a in (s_idx, c_idx, m_idx))
    nt = len(s_row)

    # rows come out stream-major, so each stream owns one contiguous slice
    bounds_s = np.r_[0, np.cumsum(counts.sum(axis=(1, 2)))]

    def per_stream(k: int, dtype) -> np.ndarray:
        """Broadcast stream attribute k (scalar, per customer or per customer-month) to every row."""
        out = np.empty(nt, dtype=dtype)
        for s, r in enumerate(rows):
            lo, hi_ = bounds_s[s], bounds_s[s + 1]
            if lo == hi_:
                continue
            v = r[k]
            out[lo:hi_] = np.broadcast_to(np.asarray(v), cm_shape)[c_row[lo:hi_], m_row[lo:hi_]] if np.ndim(v) else v
        return out

    category = per_stream(1, np.int32)
    direction = per_stream(2, np.int32)
    channel = per_stream(3, np.int32)
    counterparty = per_stream(4, np.int32)
    product = per_stream(5, np.int32)
    amount_scale = per_stream(6, np.float64)
    sigma = per_stream(7, np.float64)
    amount = np.round(np.maximum(amount_scale * np.exp(sigma * rng.standard_normal(nt) - sigma**2 / 2), 0.01), 2)
    # Card spend is sometimes online; cash and bills sometimes at the branch.
    web = (category == C["card_spend"]) & (rng.random(nt) < 0.15)
    channel[web] = CH["web"]
    branch = np.isin(category, [C["bill_payment"], C["transfer"]]) & (channel != CH["system"]) & (rng.random(nt) < 0.05)
    channel[branch] = CH["branch"]
    ts = _timestamps(
        rng, bounds, c_row, m_row, active, fixed_day=(category == C["salary"]) | (category == C["interest"])
    )
    order = np.lexsort((ts, c_row))
    c_sorted = c_row[order]
    txn_cust = ids[c_sorted]
    run_start = np.r_[0, np.flatnonzero(np.diff(c_sorted)) + 1]
    seq = np.arange(nt) - np.repeat(run_start, np.diff(np.r_[run_start, nt]))
    txn = {
        "txn_id": txn_cust * _TXN_ID_STRIDE + seq,
        "customer_id": txn_cust,
        "ts": ts[order].astype("datetime64[ns]"),
        "amount": amount[order],
        "direction": (direction[order], vocab.DIRECTIONS),
        "channel": (channel[order], vocab.CHANNELS),
        "category": (category[order], vocab.TXN_CATEGORIES),
        "counterparty": (counterparty[order], vocab.COUNTERPARTIES),
        "product_type": (product[order], vocab.PRODUCT_TYPES),
    }

    # ---- 9. events: logins and topic views/searches
    T = {t: i for i, t in enumerate(vocab.TOPICS)}
    fixed_income_interest, deposit_interest = _savings_interest(p, appetite, rng)
    login_lam = p.login_rate * np.exp(0.6 * engagement[:, None] + eng_trend) * login_pre
    ev: list[tuple[np.ndarray, int]] = [(login_lam, -1)]
    eng = np.exp(0.4 * engagement)[:, None] * np.exp(eng_trend) * login_pre
    need_rng = np.random.default_rng(np.random.SeedSequence([seed, 14, block_index]))
    habit = _life_topic_habits(need_rng, n, p)
    # retirement is planned: its pension research starts 2-6 months ahead (the other events' 1-3)
    retire_lead = need_rng.integers(p.retirement_research_months[0], p.retirement_research_months[1] + 1, n)
    before_retirement = (life == 2)[:, None] & (rel < 0) & (rel >= -retire_lead[:, None])
    topic_lam = {
        "equity_funds": 0.25
        * (browse_taste * np.exp(p.appetite_behaviour_coef * appetite))[:, None]
        * (1 + p.blocked_appetite_boost * blocked[:, None])
        * equity_interest,
        "fixed_income": 0.2 * rate_push * fixed_income_interest[:, None],
        "deposits": (0.25 + 0.15 * rate_drop[None, :]) * deposit_interest[:, None],
        "pension": 0.08 * habit["pension"][:, None] + 2.0 * before_retirement + 0.5 * retire_after,
        "study_abroad": 0.03 * habit["study_abroad"][:, None]
        + 1.8 * ((life == 1)[:, None] & before_event)
        + 0.4 * study_after,
        "overseas_account": 0.03 * habit["overseas_account"][:, None] + 1.2 * ((life == 1)[:, None] & before_event),
        "fx": 0.08 + 1.0 * ((life == 1)[:, None] & before_event) + 0.5 * study_after,
        "mortgage": 0.06 * habit["mortgage"][:, None] + 2.5 * ((life == 0)[:, None] & before_event) + 0.3 * home_after,
        "insurance": 0.12 * habit["insurance"][:, None] + 0.5 * ((life == 0)[:, None] & before_event),
        "promotions": 0.35,
        "complaints": 0.02 + 1.5 * incident,
    }
    for topic, lam in topic_lam.items():
        ev.append((np.broadcast_to(lam, cm_shape) * eng, T[topic]))
    ev_counts = np.stack([rng.poisson(lam * active) for lam, _ in ev])
    e_idx, c_idx, m_idx = np.nonzero(ev_counts)
    reps = ev_counts[e_idx, c_idx, m_idx]
    e_row, c_row, m_row = (np.repeat(a, reps) for a in (e_idx, c_idx, m_idx))
    ne = len(e_row)
    topic_codes = np.array([t for _, t in ev], dtype=np.int32)[e_row]
    etype = np.where(topic_codes < 0, 0, np.where(rng.random(ne) < 0.7, 1, 2)).astype(np.int32)
    ets = _timestamps(rng, bounds, c_row, m_row, active)
    order = np.lexsort((ets, c_row))
    events = {
        "customer_id": ids[c_row[order]],
        "ts": ets[order].astype("datetime64[ns]"),
        "event_type": (etype[order], vocab.EVENT_TYPES),
        "topic": (topic_codes[order], vocab.TOPICS),
    }

    # ---- 10. the tables
    snapshot = (bounds[1:] - np.timedelta64(1, "D")).astype("datetime64[ns]")  # month ends
    holdings = {
        "customer_id": ids[hi],
        "snapshot_date": snapshot[hm],
        "product_id": ((_CATALOG_OFFSET[hp] + variant[hi, hp]).astype(np.int32), PRODUCT_CATALOG),
        "product_type": (hp.astype(np.int32), vocab.PRODUCT_TYPES),
        "risk_level": ((_RISK_RANK[hp] - 1).astype(np.int32), vocab.RISK_LEVELS),
        "market_value": hv,
        "is_liability": _LIABILITY[hp],
    }
    customers = {
        "customer_id": ids,
        "birth_date": birth,
        "onboard_date": onboard,
        "occupation": (occ.astype(np.int32), vocab.OCCUPATIONS),
        "region": (region.astype(np.int32), vocab.REGIONS),
        "income_band": (band.astype(np.int32), vocab.INCOME_BANDS),
        "stated_risk": (stated.astype(np.int32), vocab.RISK_CLASSES),
        "risk_assessed_on": assessed,
        "is_business_owner": is_owner,
        "payroll_at_bank": payroll,
    }
    month_len = (bounds[1:] - bounds[:-1]).astype(np.int64)
    cm = np.minimum(churn_month, M - 1)
    churn_date = np.where(
        churned, bounds[cm] + (churn_frac * month_len[cm]).astype("timedelta64[ns]"), np.datetime64("NaT")
    )
    lm = np.minimum(life_month, M - 1)
    life_date = np.where(
        life >= 0, bounds[lm] + (life_day * month_len[lm]).astype("timedelta64[ns]"), np.datetime64("NaT")
    )
    tier_by_wealth = np.searchsorted([p.tier_affluent_min, p.tier_hnw_min], wealth, side="right")
    truth = {
        "customer_id": ids,
        "latent_risk": (latent.astype(np.int32), vocab.RISK_CLASSES),
        "risk_appetite": np.round(appetite, 4),
        "wealth": np.round(wealth, 2),
        "wallet_share": np.round(share, 4),
        "true_tier": (tier_by_wealth.astype(np.int32), vocab.TIERS),
        "lifecycle_stage": (stage.astype(np.int32), LIFECYCLE_STAGES),
        "churn_date": churn_date.astype("datetime64[ns]").astype("datetime64[s]").astype("datetime64[ns]"),
        "life_event": (life.astype(np.int32), LIFE_EVENTS),
        "life_event_date": life_date.astype("datetime64[ns]").astype("datetime64[D]").astype("datetime64[ns]"),
        "hidden_aggressive": (latent == 2) & (stated == 0),
        "incidents": incident.sum(axis=1).astype(np.int16),
        "churn_cause": (churn_cause.astype(np.int32), CHURN_CAUSES),
    }
    reviews = _suitability_reviews(p, seed, block_index, ids, aum0, appetite, bounds, churn_date)
    tables = {"customers": customers, "holdings": holdings, "transactions": txn, "events": events, "truth": truth}
    return Block({**tables, "suitability_reviews": reviews})


def _suitability_reviews(
    p: SimParams,
    seed: int,
    block_index: int,
    ids: np.ndarray,
    aum0: np.ndarray,
    appetite: np.ndarray,
    bounds: np.ndarray,
    churn_date: np.ndarray,
) -> dict[str, object]:
    """Advisor-led suitability reviews in the simulated window (SIMULATOR.md §3b): a Poisson number per customer
    at a rate set by the bank-AUM tier at the start (advised, wealthier customers are reviewed more often), at
    uniform times while still a customer; the advisor's class is the appetite's class with a small error and no
    lean. Its own stream `SeedSequence([seed, 21, block_index])`: nothing else is redrawn."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 21, block_index]))
    n = len(ids)
    tier = np.searchsorted([p.tier_affluent_min, p.tier_hnw_min], aum0, side="right")
    start, end = bounds[0].astype(np.int64), bounds[-1].astype(np.int64)
    stop = np.where(np.isnat(churn_date), end, churn_date.astype("datetime64[ns]").astype(np.int64))
    years = np.clip(stop - start, 0, None) / (365.25 * _NS_PER_DAY)
    count = rng.poisson(np.asarray(p.review_rate_by_tier)[tier] * years)
    who = np.repeat(np.arange(n), count)
    at = start + (rng.random(len(who)) * (stop[who] - start)).astype(np.int64)
    at = at.astype("datetime64[ns]").astype("datetime64[D]").astype("datetime64[ns]")  # a review is dated by day
    assessed = appetite[who] + p.review_noise * rng.standard_normal(len(who))
    reviewed = np.searchsorted([p.appetite_cut_balanced, p.appetite_cut_aggressive], assessed)
    order = np.lexsort((at, who))
    # one review per customer and day (the contract's key): a second one the same day is the same review
    first = np.r_[True, (np.diff(who[order]) != 0) | (np.diff(at[order]) != np.timedelta64(0))]
    order = order[first[: len(order)]]
    return {
        "customer_id": ids[who[order]],
        "reviewed_at": at[order],
        "reviewed_risk": (reviewed[order].astype(np.int32), vocab.RISK_CLASSES),
    }


# Why a churner left (truth.churn_cause); the driver vocabulary of core.tasks.CHURN_DRIVERS.
CHURN_CAUSES = ("rate_gap", "service_incidents", "disengagement", "life_event", "other")
# A hazard term counts as THE cause when it multiplies the monthly hazard by at least this (x1.25).
_CAUSE_MIN_LOG_LIFT = float(np.log(1.25))


def _balanced_affinity(p: SimParams, appetite: np.ndarray) -> np.ndarray:
    """0..1, peaking (1) half-way between the two appetite cuts: how "balanced" an appetite is."""
    centre = (p.appetite_cut_balanced + p.appetite_cut_aggressive) / 2
    return np.exp(-(((appetite - centre) / p.fixed_income_affinity_width) ** 2))


def _savings_interest(p: SimParams, appetite: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers of `fixed_income` and `deposits` browsing by appetite (#12's balanced-class signal):
    a bump centred between the two appetite cuts (bond and balanced funds are a balanced investor's
    core), and exp(-coef * appetite) for deposit offers. The per-customer taste comes from a child of
    the block's seed sequence, so no draw of the block's own stream moves."""
    bump = _balanced_affinity(p, appetite)
    seed_seq = cast(np.random.SeedSequence, rng.bit_generator.seed_seq)  # a SeedSequence for default_rng
    child = np.random.default_rng(seed_seq.spawn(1)[0])
    sigma = p.fixed_income_taste_sigma
    taste = np.exp(sigma * child.standard_normal(len(appetite)) - sigma**2 / 2)
    return taste * np.exp(p.fixed_income_affinity_coef * bump), np.exp(-p.deposit_caution_coef * appetite)


def _life_event_churn_push(p: SimParams, life: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Log-hazard term (n x months) of a life change that moves the money elsewhere: a home purchase
    (the mortgage often comes from another bank) or a child's study abroad (tuition and an overseas
    account), in the event month and the `churn_life_event_months` after it. Retirement moves money
    into the bank's pension instead, so it adds nothing."""
    moving = np.isin(life, [LIFE_EVENTS.index("home_purchase"), LIFE_EVENTS.index("child_study_abroad")])
    window = (rel >= 0) & (rel <= p.churn_life_event_months)
    return p.churn_life_event_coef * (moving[:, None] & window)


def _churn_cause(
    p: SimParams,
    rate_gap: np.ndarray,
    incident_recent: np.ndarray,
    decline: np.ndarray,
    life_moves: np.ndarray,
    churn_month: np.ndarray,
) -> np.ndarray:
    """Cause code per customer (-1 = not a churner): the largest of the hazard's push terms in the
    month the customer left (competitor rate gap, recent service incidents, declining engagement, a
    life event that moves the money), `other` when none lifts the hazard by a quarter (the base hazard,
    tenure, small balances). No random draw."""
    n, months = incident_recent.shape
    churned = churn_month < months
    m = np.minimum(churn_month, months - 1)
    terms = np.column_stack(
        [
            p.churn_rate_gap_coef * rate_gap[m],
            p.churn_incident_coef * incident_recent[np.arange(n), m],
            p.churn_engagement_coef * decline,
            life_moves[np.arange(n), m],
        ]
    )
    cause = np.where(terms.max(axis=1) >= _CAUSE_MIN_LOG_LIFT, terms.argmax(axis=1), CHURN_CAUSES.index("other"))
    return np.where(churned, cause, -1)


def _timestamps(rng, bounds, c_row, m_row, active, fixed_day=None) -> np.ndarray:
    """A time (whole seconds) in the part of month m_row the customer was still a customer."""
    month_ns = (bounds[1:] - bounds[:-1]).astype(np.int64)
    frac = rng.random(len(c_row)) * active[c_row, m_row]
    if fixed_day is not None:
        # salary and interest land on a fixed day (25th / month end), within the active span
        fixed = np.minimum(0.8, active[c_row, m_row] * 0.999)
        frac = np.where(fixed_day, fixed, frac)
    offset = (frac * month_ns[m_row]).astype(np.int64) // 10**9 * 10**9
    return bounds[:-1].astype(np.int64)[m_row] + offset


# ---------------------------------------------------------------- writing


def _arrow_column(value) -> pa.Array:
    if isinstance(value, tuple):
        codes, values = value
        codes = np.asarray(codes, dtype=np.int32)
        mask = codes < 0
        return pa.DictionaryArray.from_arrays(
            pa.array(np.where(mask, 0, codes), type=pa.int32(), mask=mask if mask.any() else None),
            pa.array(list(values), type=pa.string()),
        )
    arr = np.asarray(value)
    if arr.dtype.kind == "M":
        mask = np.isnat(arr)
        return pa.array(arr.astype("datetime64[ns]"), type=pa.timestamp("ns"), mask=mask if mask.any() else None)
    return pa.array(arr)


def to_arrow(columns: dict[str, object]) -> pa.Table:
    """A table's column arrays (string columns as (codes, vocabulary)) as an Arrow table."""
    return pa.table({name: _arrow_column(v) for name, v in columns.items()})


def _concat(blocks: list[Block], table: str) -> dict[str, object]:
    first = blocks[0].tables[table]
    out: dict[str, object] = {}
    for name, v in first.items():
        if isinstance(v, tuple):
            out[name] = (np.concatenate([b.tables[table][name][0] for b in blocks]), v[1])
        else:
            out[name] = np.concatenate([b.tables[table][name] for b in blocks])
    return out


# tables written as one row group per (span of ROW_GROUP_CUSTOMERS customer ids, calendar month): a
# reader skips months by the time column's statistics, and a worker reads a span without its neighbours
MONTHLY_ROW_GROUPS = {"transactions": "ts", "events": "ts", "holdings": "snapshot_date"}
ROW_GROUP_CUSTOMERS = 10_000


def _dictionary_columns(table: str, schema: pa.Schema) -> bool | list[str]:
    """Columns to dictionary-encode: in the monthly tables only strings, `customer_id` and the snapshot date.

    Row groups of one month are small; a per-row-group dictionary of nearly unique values
    (timestamps, amounts, txn_id) only makes the file bigger and slower to write and read.
    """
    if table not in MONTHLY_ROW_GROUPS:
        return True
    return [f.name for f in schema if pa.types.is_dictionary(f.type) or f.name in ("customer_id", "snapshot_date")]


def _by_month(columns: dict[str, object], time_col: str, bounds: np.ndarray) -> tuple[dict[str, object], np.ndarray]:
    """A chunk's rows reordered by (customer span, month), stable (so customer, then time within one),
    and the rows per (span, month) in that order.

    Spans are ids `ROW_GROUP_CUSTOMERS·s + 1 … ROW_GROUP_CUSTOMERS·(s + 1)`, aligned to ids, not to
    the chunk, so any chunk size that is a multiple of the span writes the same file.
    """
    months = len(bounds) - 1
    t = np.asarray(columns[time_col]).astype("datetime64[ns]", copy=False)
    month = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, months - 1)
    span = (np.asarray(columns["customer_id"]) - 1) // ROW_GROUP_CUSTOMERS
    first = int(span.min()) if len(span) else 0
    n_keys = (int(span.max()) - first + 1) * months if len(span) else months
    key = (span - first) * months + month
    key = key.astype(np.uint16 if n_keys <= 2**16 else np.int64)  # uint16: a linear-time radix sort
    counts = np.bincount(key, minlength=n_keys)
    if len(key) < 2 or bool(np.all(key[1:] >= key[:-1])):
        return columns, counts
    order = np.argsort(key, kind="stable")
    del key, month, span, t
    for name, v in list(columns.items()):  # in place, one column at a time: one extra column of memory
        columns[name] = (np.asarray(v[0])[order], v[1]) if isinstance(v, tuple) else np.asarray(v)[order]
    return columns, counts


def simulate(
    out_dir: str | Path,
    customers: int,
    months: int,
    seed: int,
    start: date | str = DEFAULT_START,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    params: SimParams | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Simulate a bank and write the five raw tables plus `truth.parquet` to `out_dir`.

    Returns rows per table. Files appear atomically: each is written to a temporary name and
    all are renamed only after every chunk succeeded. `chunk_size` (rounded up to a multiple
    of BLOCK_SIZE) bounds memory and sets the customer span of row groups (transactions, events,
    holdings: at most `ROW_GROUP_CUSTOMERS`, one row group per span and month); it changes the
    row groups and the row order between them, never the rows.
    `on_chunk(n_customers)` is called after each chunk (progress bars).
    """
    if customers < 1:
        raise ValueError("customers must be >= 1")
    if months < 1:
        raise ValueError("months must be >= 1")
    p = params or SimParams()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blocks_per_chunk = max(1, -(-chunk_size // BLOCK_SIZE))
    n_blocks = -(-customers // BLOCK_SIZE)
    market = simulate_market(seed, months, start, p)
    tmp = {t: out / f".{t}.parquet.tmp-{os.getpid()}" for t in OUTPUT_TABLES}
    writers: dict[str, pq.ParquetWriter] = {}
    rows = dict.fromkeys(OUTPUT_TABLES, 0)
    try:
        market_table = pa.Table.from_pandas(market.frame, preserve_index=False)
        pq.write_table(market_table, tmp["market"], compression="zstd")
        rows["market"] = market_table.num_rows
        for b0 in range(0, n_blocks, blocks_per_chunk):
            blocks = []
            for b in range(b0, min(n_blocks, b0 + blocks_per_chunk)):
                n = min(BLOCK_SIZE, customers - b * BLOCK_SIZE)
                blocks.append(generate_block(b, n, market, seed, p))
            for table in ("customers", "holdings", "transactions", "events", "suitability_reviews", "truth"):
                columns = _concat(blocks, table)
                counts = None
                if table in MONTHLY_ROW_GROUPS:
                    columns, counts = _by_month(columns, MONTHLY_ROW_GROUPS[table], market.month_starts)
                at = to_arrow(columns)
                del columns
                if table not in writers:
                    writers[table] = pq.ParquetWriter(
                        tmp[table], at.schema, compression="zstd", use_dictionary=_dictionary_columns(table, at.schema)
                    )
                if counts is None or at.num_rows == 0:
                    writers[table].write_table(at, row_group_size=max(at.num_rows, 1))
                else:  # one row group per (customer span, month) that has rows
                    offset = 0
                    for c in counts[counts > 0].tolist():
                        writers[table].write_table(at.slice(offset, c), row_group_size=c)
                        offset += c
                rows[table] += at.num_rows
            if on_chunk is not None:
                on_chunk(sum(len(b.tables["customers"]["customer_id"]) for b in blocks))
        for w in writers.values():
            w.close()
        writers.clear()
        for t in OUTPUT_TABLES:
            os.replace(tmp[t], out / f"{t}.parquet")
    finally:
        for w in writers.values():
            w.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)
    log.info("simulated %d customers x %d months into %s: %s", customers, months, out, rows)
    return rows
