"""The single declaration of every feature (DESIGN §5, STYLE 4): name, dtype, family, window,
description, categories, source tables and the bounds that hold by construction.

Imports only `features.vocab`. Everything else reads it: the builder (`features.build` names its
columns with this module's name functions, `windowed`, `flow`, `trend`, ..., and assembles
`FEATURES` in order), the feature-table schema (`arrow_schema`), serving's
request model (`serving.schemas.customer_model(FEATURES)`), drift monitoring
(`numerical_features`, `categorical_features`) and the generated reference (`features.reference`,
`docs/FEATURES.md`).

Storage: `float` and `int` features are float64 columns (an `int` feature holds whole
numbers; NaN means "not defined" or "not computable", e.g. a raw table was missing), `bool`
features are bool, `category` features are strings from `categories`, null when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from features import vocab

Dtype = Literal["float", "int", "category", "bool"]
Family = Literal["behaviour", "holdings", "profile", "market", "segment"]
FAMILIES: tuple[str, ...] = ("behaviour", "holdings", "profile", "market", "segment")

WINDOWS = (30, 90, 180)
# Long window for rare behaviour (brokerage transfers, equity-fund browsing): needs 365 days of raw history.
LONG_WINDOW_DAYS = 365
LIFECYCLE_STAGES = vocab.LIFECYCLE_STAGES
RELATIONSHIP_DEPTHS = ("basic", "multi_product", "ecosystem")
MARKET_REGIMES = ("bear", "sideways", "bull")

# Flows by category that carry a meaning on their own: (direction, category, windows).
CATEGORY_FLOWS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("in", "salary", WINDOWS),
    ("out", "card_spend", WINDOWS),
    ("out", "investment_buy", WINDOWS),
    ("in", "investment_sell", WINDOWS),
    ("out", "loan_repayment", (90,)),
    ("out", "fx", (90,)),
    ("out", "cash", (90,)),
    ("out", "bill_payment", (90,)),
)
# Flows by counterparty: (direction, counterparty, windows).
COUNTERPARTY_FLOWS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("out", "brokerage", WINDOWS),
    ("out", "overseas", WINDOWS),
    ("out", "external_bank", WINDOWS),
    ("in", "external_bank", WINDOWS),
)
FLOW_WORD = {"in": "inflow", "out": "outflow"}
# Trends (recent window / the equally long window before it) of these transaction series.
TRANSACTION_TRENDS: tuple[tuple[str, int], ...] = (
    ("txn_count", 30),
    ("txn_count", 90),
    ("inflow_total", 90),
    ("outflow_total", 90),
    ("outflow_card_spend", 90),
    ("outflow_investment_buy", 90),
    ("outflow_brokerage", 90),
)
# Recency: days since the last of these (name -> what it is).
TRANSACTION_RECENCY: dict[str, str] = {
    "txn": "any transaction",
    "salary": "a salary inflow",
    "investment_buy": "an investment_buy",
    "brokerage_transfer": "an outflow to a brokerage",
    "overseas_transfer": "an outflow overseas",
}


# --------------------------------------------------------------------------- names
# The one place a parametrised feature name is spelled: the declarations below and the builder
# (`features.build`) both call these, so the two cannot drift apart.


def windowed(base: str, days: int) -> str:
    """A feature over the `days` days up to T: `txn_count_90d`."""
    return f"{base}_{days}d"


def flow(direction: str, what: str, days: int) -> str:
    """Sum of one direction's transactions of a category or with a counterparty: `inflow_salary_90d`."""
    return windowed(f"{FLOW_WORD[direction]}_{what}", days)


def trend(base: str, days: int) -> str:
    """`base` over the `days` days up to T / the same over the `days` days before: `txn_count_trend_30d`."""
    return f"{base}_trend_{days}d"


def monthly(base: str, months: int) -> str:
    """A change or return over `months` calendar months: `aum_change_3m`."""
    return f"{base}_{months}m"


def days_since_last(what: str) -> str:
    return f"days_since_last_{what}"


def topic_views(topic: str, days: int) -> str:
    """Views and searches of one topic: `views_equity_funds_90d`."""
    return windowed(f"views_{topic}", days)


def aum_in_risk_level(level: str) -> str:
    """AUM in one product risk level (`R1`..`R5`): `aum_r4`."""
    return f"aum_{level.lower()}"


def aum_in_family(family: str) -> str:
    """AUM in one product family: `aum_fund`."""
    return f"aum_{family}"


@dataclass(frozen=True)
class Feature:
    """One feature: what it is, how it is stored, where it comes from."""

    name: str
    dtype: Dtype
    family: Family
    window: str
    description: str
    categories: tuple[str, ...] | None = None
    sources: tuple[str, ...] = field(default=())  # raw tables it needs
    lower: float | None = None  # value bounds that hold by construction (validation, serving)
    upper: float | None = None

    def __post_init__(self) -> None:
        if (self.dtype == "category") != (self.categories is not None):
            raise ValueError(f"feature {self.name}: categories are required exactly for category features")
        if self.family not in FAMILIES:
            raise ValueError(f"feature {self.name}: unknown family {self.family!r}")


def _bounds(name: str, dtype: str) -> tuple[float | None, float | None]:
    """Bounds that hold by construction, from what the feature is."""
    if dtype in ("category", "bool"):
        return None, None
    if "corr" in name:
        return -1.0, 1.0
    if name in ("aum_drawdown_6m", "index_drawdown_6m"):
        return -1.0, 0.0
    if name.startswith("aum_change_") or name.startswith("index_return_"):
        return -1.0, None
    if "share" in name or name == "aum_hhi":
        return 0.0, 1.0
    if name == "deposit_rate_1y":
        return -5.0, 50.0  # the raw contract's range
    if name.startswith(("net_flow", "deposit_rate_change")):
        return None, None
    if name == "max_risk_level_held":
        return 0.0, 5.0
    return 0.0, None  # counts, sums, balances, days, ratios, ages, volatility


def _declare() -> list[Feature]:
    f: list[Feature] = []

    def add(name, dtype, family, window, description, categories=None, sources=()):
        lower, upper = _bounds(name, dtype)
        f.append(Feature(name, dtype, family, window, description, categories, tuple(sources), lower, upper))

    def brokerage_transfers(w: int) -> None:  # declared for the 30/90/180-day windows and the long one
        add(
            windowed("count_outflow_brokerage", w),
            "int",
            "behaviour",
            f"{w}d",
            f"Number of outgoing transfers to brokerages in the {w} days up to T.",
            sources=tx,
        )

    tx, ev, ho, mk, cu = ("transactions",), ("events",), ("holdings",), ("market",), ("customers",)

    # --- behaviour: transaction flows -------------------------------------------------
    for w in WINDOWS:
        add(
            windowed("txn_count", w),
            "int",
            "behaviour",
            f"{w}d",
            f"Number of transactions in the {w} days up to T.",
            sources=tx,
        )
    for w in WINDOWS:
        add(
            windowed("inflow_total", w),
            "float",
            "behaviour",
            f"{w}d",
            f"Sum of incoming amounts in the {w} days up to T.",
            sources=tx,
        )
        add(
            windowed("outflow_total", w),
            "float",
            "behaviour",
            f"{w}d",
            f"Sum of outgoing amounts in the {w} days up to T.",
            sources=tx,
        )
        add(
            windowed("net_flow", w),
            "float",
            "behaviour",
            f"{w}d",
            f"Inflows minus outflows in the {w} days up to T.",
            sources=tx,
        )
    for direction, category, windows in CATEGORY_FLOWS:
        for w in windows:
            add(
                flow(direction, category, w),
                "float",
                "behaviour",
                f"{w}d",
                f"Sum of {direction!r} transactions of category {category!r} in the {w} days up to T.",
                sources=tx,
            )
    for w in WINDOWS:
        add(
            windowed("count_investment_buy", w),
            "int",
            "behaviour",
            f"{w}d",
            f"Number of investment_buy transactions in the {w} days up to T.",
            sources=tx,
        )
    for direction, counterparty, windows in COUNTERPARTY_FLOWS:
        for w in windows:
            add(
                flow(direction, counterparty, w),
                "float",
                "behaviour",
                f"{w}d",
                f"Sum of {direction!r} transactions with counterparty {counterparty!r} in the {w} days up to T.",
                sources=tx,
            )
    for w in WINDOWS:
        brokerage_transfers(w)
    # channels
    add(
        "digital_txn_share_90d",
        "float",
        "behaviour",
        "90d",
        "Share of transactions made on mobile or web in the 90 days up to T (NaN without transactions).",
        sources=tx,
    )
    add(
        "advisor_txn_count_90d",
        "int",
        "behaviour",
        "90d",
        "Transactions through an advisor in the 90 days up to T.",
        sources=tx,
    )
    add(
        "branch_txn_count_90d",
        "int",
        "behaviour",
        "90d",
        "Transactions at a branch in the 90 days up to T.",
        sources=tx,
    )
    # trends: recent window / the equally long window before it; NaN when the prior window is empty.
    for base, w in TRANSACTION_TRENDS:
        add(
            trend(base, w),
            "float",
            "behaviour",
            f"{w}d vs prior {w}d",
            f"{base} over the {w} days up to T divided by the same over the {w} days before (NaN if that is 0).",
            sources=tx,
        )
    # recency
    for name, what in TRANSACTION_RECENCY.items():
        add(
            days_since_last(name),
            "int",
            "behaviour",
            "365d",
            f"Days from the last {what} to T (NaN if none in the 365 days up to T).",
            sources=tx,
        )
    # salary regularity
    add(
        "salary_months_6m",
        "int",
        "behaviour",
        "6 calendar months",
        "Number of the 6 calendar months ending at T's month with at least one salary inflow.",
        sources=tx,
    )
    add(
        "salary_amount_cv_180d",
        "float",
        "behaviour",
        "180d",
        "Coefficient of variation of salary amounts in the 180 days up to T (NaN with fewer than 2 salaries).",
        sources=tx,
    )
    # response to market moves (weeks = 7-day blocks ending at T; up/down by the index change over the week)
    add(
        "invest_count_up_weeks_180d",
        "float",
        "behaviour",
        "180d weekly",
        "Mean weekly number of investment buys plus brokerage outflows in weeks the equity index rose (26 weeks to T).",
        sources=tx + mk,
    )
    add(
        "invest_count_down_weeks_180d",
        "float",
        "behaviour",
        "180d weekly",
        "Mean weekly number of investment buys plus brokerage outflows in weeks the equity index fell (26 weeks to T).",
        sources=tx + mk,
    )
    add(
        "invest_up_down_ratio_180d",
        "float",
        "behaviour",
        "180d weekly",
        "invest_count_up_weeks_180d / invest_count_down_weeks_180d (NaN if the down-week mean is 0).",
        sources=tx + mk,
    )
    add(
        "invest_index_corr_180d",
        "float",
        "behaviour",
        "180d weekly",
        "Correlation of weekly investment-buy plus brokerage-outflow amounts with weekly index returns "
        "(26 weeks to T; NaN if either is constant).",
        sources=tx + mk,
    )

    # --- behaviour: digital events ----------------------------------------------------
    for w in WINDOWS:
        add(
            windowed("login_count", w),
            "int",
            "behaviour",
            f"{w}d",
            f"Number of logins in the {w} days up to T.",
            sources=ev,
        )
    add("login_days_30d", "int", "behaviour", "30d", "Distinct days with a login in the 30 days up to T.", sources=ev)
    add(
        "days_since_last_login",
        "int",
        "behaviour",
        "365d",
        "Days from the last login to T (NaN if none in the 365 days up to T).",
        sources=ev,
    )
    for w in (30, 90):
        add(
            trend("login_count", w),
            "float",
            "behaviour",
            f"{w}d vs prior {w}d",
            f"Logins over the {w} days up to T divided by logins over the {w} days before (NaN if that is 0).",
            sources=ev,
        )
    add(
        "view_count_90d",
        "int",
        "behaviour",
        "90d",
        "Number of page views (any topic) in the 90 days up to T.",
        sources=ev,
    )
    add("search_count_90d", "int", "behaviour", "90d", "Number of searches in the 90 days up to T.", sources=ev)
    for topic in vocab.TOPICS:
        for w in (30, 90):
            add(
                topic_views(topic, w),
                "int",
                "behaviour",
                f"{w}d",
                f"Views and searches of topic {topic!r} in the {w} days up to T.",
                sources=ev,
            )
    for w in (30, 90):
        add(
            trend("views_equity_funds", w),
            "float",
            "behaviour",
            f"{w}d vs prior {w}d",
            f"equity_funds views and searches over the {w} days up to T divided by the {w} days before (NaN if 0).",
            sources=ev,
        )
    add(
        "equity_funds_view_share_90d",
        "float",
        "behaviour",
        "90d",
        "Share of topic views and searches about equity_funds in the 90 days up to T (NaN without any).",
        sources=ev,
    )
    add(
        "equity_views_index_corr_180d",
        "float",
        "behaviour",
        "180d weekly",
        "Correlation of weekly equity_funds views and searches with weekly index returns (26 weeks to T).",
        sources=ev + mk,
    )

    # --- behaviour: rare investment signals over a long window -----------------------------
    # Brokerage transfers and equity-fund browsing are rare events: a customer's rate needs a year
    # to separate from noise (measured on simulated data: (brokerage + equity views) / (1 + logins)
    # ranks hidden-aggressive conservatives at AUC 0.69 over 180 days, 0.82 over 365 days). Rates
    # per (1 + logins) take out how much a customer uses the bank's digital channels at all.
    w = LONG_WINDOW_DAYS
    brokerage_transfers(w)
    add(
        windowed("outflow_brokerage", w),
        "float",
        "behaviour",
        f"{w}d",
        f"Sum of outgoing transfers to brokerages in the {w} days up to T.",
        sources=tx,
    )
    add(
        windowed("count_investment_buy", w),
        "int",
        "behaviour",
        f"{w}d",
        f"Number of investment_buy transactions in the {w} days up to T.",
        sources=tx,
    )
    add(
        windowed("login_count", w),
        "int",
        "behaviour",
        f"{w}d",
        f"Number of logins in the {w} days up to T.",
        sources=ev,
    )
    for lw in (180, w):
        add(
            topic_views("equity_funds", lw),
            "int",
            "behaviour",
            f"{lw}d",
            f"Views and searches of topic 'equity_funds' in the {lw} days up to T.",
            sources=ev,
        )
        add(
            windowed("equity_funds_view_share", lw),
            "float",
            "behaviour",
            f"{lw}d",
            f"Share of topic views and searches about equity_funds in the {lw} days up to T (NaN without any).",
            sources=ev,
        )
    for lw in (180, w):
        add(
            windowed("brokerage_transfers_per_login", lw),
            "float",
            "behaviour",
            f"{lw}d",
            f"Outgoing transfers to brokerages / (1 + logins), both over the {lw} days up to T.",
            sources=tx + ev,
        )
        add(
            windowed("equity_views_per_login", lw),
            "float",
            "behaviour",
            f"{lw}d",
            f"equity_funds views and searches / (1 + logins), both over the {lw} days up to T.",
            sources=ev,
        )
        add(
            windowed("investment_buys_per_login", lw),
            "float",
            "behaviour",
            f"{lw}d",
            f"investment_buy transactions / (1 + logins), both over the {lw} days up to T.",
            sources=tx + ev,
        )
        add(
            windowed("invest_interest_per_login", lw),
            "float",
            "behaviour",
            f"{lw}d",
            f"(Brokerage transfers + equity_funds views and searches) / (1 + logins), over the {lw} days up to T.",
            sources=tx + ev,
        )

    # --- holdings (last month-end snapshot <= T) -----------------------------------------
    add(
        "aum",
        "float",
        "holdings",
        "snapshot",
        "Assets under management: non-liability market value at the last snapshot <= T (0 if nothing held).",
        sources=ho,
    )
    for level in vocab.RISK_LEVELS:
        add(
            aum_in_risk_level(level),
            "float",
            "holdings",
            "snapshot",
            f"Non-liability market value in risk level {level}.",
            sources=ho,
        )
    add("aum_high_risk_share", "float", "holdings", "snapshot", "Share of AUM in R4-R5 (NaN if AUM is 0).", sources=ho)
    for family in ("deposit", "fund", "insurance"):
        add(aum_in_family(family), "float", "holdings", "snapshot", f"Market value of {family} products.", sources=ho)
    add("deposit_share", "float", "holdings", "snapshot", "Share of AUM in deposits (NaN if AUM is 0).", sources=ho)
    add("liabilities", "float", "holdings", "snapshot", "Outstanding balance of all liabilities.", sources=ho)
    add("mortgage_balance", "float", "holdings", "snapshot", "Outstanding mortgage balance.", sources=ho)
    add(
        "aum_hhi",
        "float",
        "holdings",
        "snapshot",
        "Herfindahl concentration of AUM across products held (1 = one product; NaN if AUM is 0).",
        sources=ho,
    )
    add("product_count", "int", "holdings", "snapshot", "Number of products held (assets and liabilities).", sources=ho)
    add(
        "product_family_count",
        "int",
        "holdings",
        "snapshot",
        "Number of product families held (deposit, fund, insurance, liability).",
        sources=ho,
    )
    add(
        "max_risk_level_held",
        "int",
        "holdings",
        "snapshot",
        "Highest risk level held with positive value, 1..5 (0 if no asset held).",
        sources=ho,
    )
    add(
        "aum_share_above_suitability",
        "float",
        "holdings",
        "snapshot",
        "Share of AUM in risk levels above what the stated risk profile may buy (NaN if AUM is 0 or risk unknown).",
        sources=ho + cu,
    )
    for months in (1, 3, 6):
        add(
            monthly("aum_change", months),
            "float",
            "holdings",
            f"{months}m",
            f"AUM at T's snapshot / AUM at the snapshot {months} month(s) earlier - 1 "
            "(NaN if there is no such snapshot or AUM was 0 then).",
            sources=ho,
        )
    add(
        "aum_drawdown_6m",
        "float",
        "holdings",
        "6m",
        "AUM / highest AUM over the last 7 snapshots - 1 (<= 0; NaN if that maximum is 0).",
        sources=ho,
    )

    # --- profile ----------------------------------------------------------------------
    add("age", "float", "profile", "at T", "Age in years at T.", sources=cu)
    add("tenure_years", "float", "profile", "at T", "Years since onboarding at T.", sources=cu)
    add("occupation", "category", "profile", "static", "Occupation.", vocab.OCCUPATIONS, cu)
    add("region", "category", "profile", "static", "Region of residence.", vocab.REGIONS, cu)
    add("income_band", "category", "profile", "static", "Declared income band.", vocab.INCOME_BANDS, cu)
    add("is_business_owner", "bool", "profile", "static", "Owns a business.", sources=cu)
    add("payroll_at_bank", "bool", "profile", "static", "Salary is paid into this bank.", sources=cu)
    add(
        "stated_risk",
        "category",
        "profile",
        "at T",
        "Risk profile from the last questionnaire on or before T (null if assessed after T).",
        vocab.RISK_CLASSES,
        cu,
    )
    add(
        "stated_risk_age_days",
        "int",
        "profile",
        "at T",
        "Days since the risk questionnaire (NaN if after T).",
        sources=cu,
    )
    add(
        "lifecycle_stage",
        "category",
        "profile",
        "at T",
        "young_professional if age < 35, family_growth if < 60, else retirement (occupation retired counts as "
        "retirement).",
        LIFECYCLE_STAGES,
        cu,
    )

    # --- segment ----------------------------------------------------------------------
    add(
        "tier",
        "category",
        "segment",
        "snapshot",
        "Current value tier from aum and the configured thresholds (default mass < 0.5M <= affluent < 10M <= hnw).",
        vocab.TIERS,
        ho,
    )
    add(
        "aum_to_next_tier_ratio",
        "float",
        "segment",
        "snapshot",
        "aum / the lower bound of the next tier (NaN for hnw).",
        sources=ho,
    )
    add(
        "relationship_depth",
        "category",
        "segment",
        "at T",
        "ecosystem: >= 3 product families, a login in 90d and payroll (payroll_at_bank or a salary inflow in 90d); "
        "multi_product: >= 2 product families; basic: otherwise.",
        RELATIONSHIP_DEPTHS,
        ho + cu,
    )

    # --- market (the same for every customer at T) -----------------------------------
    for months in (1, 3, 6):
        add(
            monthly("index_return", months),
            "float",
            "market",
            f"{months}m",
            f"Equity index return over the {months} month(s) up to T (last close <= T).",
            sources=mk,
        )
    add(
        "index_volatility_3m",
        "float",
        "market",
        "3m",
        "Annualised standard deviation of daily log index returns over the 3 months up to T.",
        sources=mk,
    )
    add("index_drawdown_6m", "float", "market", "6m", "Index / its 6-month high - 1 (<= 0).", sources=mk)
    add(
        "deposit_rate_1y", "float", "market", "at T", "1-year deposit rate (percent) at the last date <= T.", sources=mk
    )
    for months in (3, 6):
        add(
            monthly("deposit_rate_change", months),
            "float",
            "market",
            f"{months}m",
            f"Change of the 1-year deposit rate (percentage points) over the {months} months up to T.",
            sources=mk,
        )
    add(
        "market_regime",
        "category",
        "market",
        "6m",
        "bull if index_return_6m >= +8%, bear if <= -8%, else sideways (thresholds are configuration).",
        MARKET_REGIMES,
        mk,
    )
    return f


FEATURES: list[Feature] = _declare()
_BY_NAME: dict[str, Feature] = {feat.name: feat for feat in FEATURES}
if len(_BY_NAME) != len(FEATURES):  # pragma: no cover - guards the declaration itself
    raise RuntimeError("duplicate feature names in the registry")

LABELS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "tier_future": ("category", vocab.TIERS),
    "churn": ("float", None),
    "revealed_risk": ("category", vocab.RISK_CLASSES),
    # #12: not a label of the future but a fitting-only column like one: the latest suitability review's class
    # known at T (null if none). Panel only (never in latest.parquet), never a booster feature (the specs that
    # take every column drop it); the risk posterior's fit reads it as anchor rows (`risk_posterior.anchor_column`).
    "reviewed_risk": ("category", vocab.RISK_CLASSES),
}


def feature(name: str) -> Feature:
    """The declaration of one feature (KeyError names it if unknown)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}") from None


def feature_names() -> list[str]:
    """Every feature column, in table order."""
    return [f.name for f in FEATURES]


def categorical_features() -> list[str]:
    return [f.name for f in FEATURES if f.dtype == "category"]


def numerical_features() -> list[str]:
    """float, int and bool features (bools drift-monitor as 0/1)."""
    return [f.name for f in FEATURES if f.dtype != "category"]


def categories_of(name: str) -> tuple[str, ...]:
    feat = feature(name)
    if feat.categories is None:
        raise ValueError(f"feature {name!r} is not categorical")
    return feat.categories


def features_of_family(family: str) -> list[str]:
    return [f.name for f in FEATURES if f.family == family]


def features_needing(tables: set[str] | frozenset[str]) -> list[str]:
    """Features that cannot be computed when any of `tables` is missing."""
    return [f.name for f in FEATURES if set(f.sources) & set(tables)]


def arrow_schema(*, labels: bool = False):
    """The Parquet (Arrow) schema of feature tables: ids, every feature, and optionally the labels."""
    import pyarrow as pa

    types = {"float": pa.float64(), "int": pa.float64(), "bool": pa.bool_(), "category": pa.string()}
    fields = [pa.field("customer_id", pa.int64(), nullable=False), pa.field("as_of", pa.timestamp("ns"))]
    fields += [pa.field(f.name, types[f.dtype]) for f in FEATURES]
    if labels:
        fields += [pa.field(name, types[kind]) for name, (kind, _) in LABELS.items()]
    return pa.schema(fields)
