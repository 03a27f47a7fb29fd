"""Classes a bank manages customers by, derived from the scores and the features at T (pure logic).

- `segment`: the four-dimensional class `tier/risk/lifecycle/depth`.
- `business_segment`: the bank's own coarser classes, an ordered rule table (`SegmentScheme`, typed;
  YAML only at the edge, `load_scheme`). The default is the common eight-class "asset x risk x
  ecosystem contribution" scheme (`DEFAULT_SCHEME`; rule table in docs/decisions/business-segments.md).
- `risk_gap`: revealed risk class rank minus the questionnaire's (-2..+2).
- `churn_driver`: why a likely churner leaves, from the churn model's own per-feature contributions
  summed by driver family (`DriverConfig`, feature-name patterns, first match wins).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.io import load_yaml_model
from core.tasks import CHURN_DRIVERS, RISK_CLASSES, RISK_RANK, TIER_CLASSES

LIFECYCLE_STAGES: tuple[str, ...] = ("young_professional", "family_growth", "retirement")
RELATIONSHIP_DEPTHS: tuple[str, ...] = ("basic", "multi_product", "ecosystem")
UNKNOWN = "unknown"


def segment_labels(tier: np.ndarray, risk: np.ndarray, lifecycle: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """`tier/risk/lifecycle/depth` per row (`unknown` for a missing part)."""
    return np.array(
        [
            f"{t or UNKNOWN}/{r or UNKNOWN}/{s or UNKNOWN}/{d or UNKNOWN}"
            for t, r, s, d in zip(tier, risk, lifecycle, depth, strict=True)
        ],
        dtype=object,
    )


SEGMENT_PARTS = 4  # tier/risk/lifecycle/depth, as `segment_labels` writes them


def segment_parts(segments: pd.Series) -> pd.DataFrame:
    """`segment_labels` read back: columns tier, risk, lifecycle, depth (None where a label has not four parts)."""
    parts = segments.astype(str).str.split("/", expand=False)
    rows = [p if len(p) == SEGMENT_PARTS else [None] * SEGMENT_PARTS for p in parts]
    return pd.DataFrame(rows, columns=["tier", "risk", "lifecycle", "depth"], index=segments.index)


def risk_gap(revealed: np.ndarray, stated: np.ndarray) -> np.ndarray:
    """Revealed class rank minus stated class rank (+2: questionnaire says conservative, behaviour
    aggressive); NaN where either is unknown. Float so the missing value survives Parquet and JSON."""
    r = np.array([RISK_RANK.get(v, np.nan) if v is not None else np.nan for v in revealed], dtype=np.float64)
    s = np.array([RISK_RANK.get(v, np.nan) if v is not None else np.nan for v in stated], dtype=np.float64)
    return r - s


# ----------------------------------------------------------------------------- business segments

_DIMENSIONS = {"tiers": TIER_CLASSES, "risk": RISK_CLASSES, "lifecycle": LIFECYCLE_STAGES, "depth": RELATIONSHIP_DEPTHS}


class SegmentRule(BaseModel):
    """One business segment: every dimension given must hold (a list of allowed classes); None = any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    tiers: list[str] | None = None
    risk: list[str] | None = None
    lifecycle: list[str] | None = None
    depth: list[str] | None = None

    @model_validator(mode="after")
    def _known_classes(self) -> SegmentRule:
        for dim, allowed in _DIMENSIONS.items():
            values = getattr(self, dim)
            if values is None:
                continue
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ValueError(f"segment {self.name!r} field {dim}: {bad or '[]'} not among {list(allowed)}")
        return self


class SegmentScheme(BaseModel):
    """An ordered rule table: the first matching rule names the row's `business_segment`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    segments: list[SegmentRule] = Field(min_length=1)
    default: str = Field("unclassified", description="Rows no rule matches (e.g. a dimension unknown).")

    @model_validator(mode="after")
    def _unique(self) -> SegmentScheme:
        names = [s.name for s in self.segments]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"segments: names repeat: {dup}")
        return self

    def assign(self, tier: np.ndarray, risk: np.ndarray, lifecycle: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """The business segment of each row (vectorised, first match wins)."""
        n = len(tier)
        values = {"tiers": tier, "risk": risk, "lifecycle": lifecycle, "depth": depth}
        as_str = {k: np.array([str(v) if v is not None else "" for v in a], dtype=object) for k, a in values.items()}
        out = np.full(n, self.default, dtype=object)
        todo = np.ones(n, dtype=bool)
        for rule in self.segments:
            m = todo.copy()
            for dim in _DIMENSIONS:
                allowed = getattr(rule, dim)
                if allowed is not None:
                    m &= np.isin(as_str[dim], allowed)
            out[m] = rule.name
            todo &= ~m
        return out


_WEALTH, _MASS = ["affluent", "hnw"], ["mass"]
_GROWTH, _STEADY = ["balanced", "aggressive"], ["conservative"]
_LOYAL, _LIGHT = ["multi_product", "ecosystem"], ["basic"]

# Asset (affluent+ vs mass) x risk (balanced/aggressive vs conservative) x ecosystem contribution
# (two or more product families vs basic): 2 x 2 x 2 = eight classes covering every known row.
DEFAULT_SCHEME = SegmentScheme(
    name="asset_risk_contribution",
    segments=[
        SegmentRule(name=f"{a}_{r}_{c}", tiers=tiers, risk=risk, depth=depth, description=desc)
        for a, tiers, a_desc in (("wealth", _WEALTH, "affluent or HNW"), ("mass", _MASS, "mass"))
        for r, risk, r_desc in (("growth", _GROWTH, "balanced or aggressive"), ("steady", _STEADY, "conservative"))
        for c, depth, c_desc in (("loyal", _LOYAL, "multi-product or ecosystem"), ("light", _LIGHT, "basic"))
        for desc in [f"{a_desc}, revealed {r_desc}, {c_desc} relationship"]
    ],
)


def load_scheme(path: str | Path) -> SegmentScheme:
    """A `SegmentScheme` from a YAML file; any problem is an `InputError` naming the file and field."""
    return load_yaml_model(path, SegmentScheme, "segment mapping")


def rule_table(scheme: SegmentScheme = DEFAULT_SCHEME) -> str:
    """The scheme as a Markdown table (docs and `--help`)."""
    lines = ["| business_segment | tier | revealed risk | life-cycle | relationship depth |", "|---|---|---|---|---|"]
    for r in scheme.segments:
        cells = [", ".join(v) if v else "any" for v in (r.tiers, r.risk, r.lifecycle, r.depth)]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    lines.append(f"| {scheme.default} | (no rule matches, e.g. a class unknown) | | | |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- churn drivers


class DriverConfig(BaseModel):
    """Driver families as feature-name patterns (fnmatch, first family that matches wins); a feature
    no pattern matches counts towards `other`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    families: dict[str, list[str]]
    symptoms: list[str] = Field(
        default_factory=list,
        description="Patterns of features that show the money LEAVING (AUM falling, transfers out), common to "
        "every churner whatever the reason: left out of the vote, so they neither name a driver nor count as other.",
    )
    min_contribution: float = Field(
        0.22,
        description="A row whose strongest family pushes churn up by less than this (log-odds; 0.22 = odds x1.25, "
        "the simulator's own bar for a cause) is `other`.",
    )
    exact_margin: float = Field(
        0.3,
        ge=0,
        description="Drivers are voted on cheap path attributions; a row whose vote is within this margin "
        "(log-odds) of the bar or of the runner-up family is re-voted on TreeSHAP. 0.3 reproduced "
        "TreeSHAP's driver for every flagged customer of the demo bank (benchmarks/bench_drivers.py).",
    )

    @model_validator(mode="after")
    def _known(self) -> DriverConfig:
        bad = [f for f in self.families if f not in CHURN_DRIVERS or f == "other"]
        if bad:
            raise ValueError(f"families: {bad} are not driver names {list(CHURN_DRIVERS[:-1])}")
        return self

    def family_of(self, feature: str) -> str | None:
        """The driver family of a feature, `other`, or None for a symptom (not a reason)."""
        if any(fnmatchcase(feature, p) for p in self.symptoms):
            return None
        for fam, patterns in self.families.items():
            if any(fnmatchcase(feature, p) for p in patterns):
                return fam
        return "other"


DEFAULT_DRIVERS = DriverConfig(
    families={
        # the competitor pays more: market deposit rates and money moving to other banks
        "rate_gap": ["deposit_rate_*", "views_deposits_*", "views_fixed_income_*"],
        # the bank let the customer down: complaint browsing (fees follow incidents)
        "service_incidents": ["*complaint*", "*incident*", "*fee*"],
        # the customer is drifting away: fewer logins, transactions, views
        "disengagement": [
            "login_*",
            "days_since_last_login",
            "days_since_last_txn",
            "txn_count_*",
            "digital_txn_share_*",
            "view_count_*",
            "search_count_*",
        ],
        # a life change moves the money: mortgage, study abroad, pension, overseas accounts
        "life_event": [
            "views_mortgage_*",
            "views_study_abroad_*",
            "views_pension_*",
            "views_overseas_account_*",
            "outflow_overseas_*",
            "views_fx_*",
            "outflow_fx_*",
            "mortgage_balance",
        ],
    },
    symptoms=[
        "aum",
        "aum_*",
        "*external_bank*",
        "outflow_total_*",
        "inflow_total_*",
        "net_flow_*",
        "deposit_share",
        "product_count",
        "product_family_count",
        "tier",
        "liabilities",
    ],
)


_GROUPS: dict[tuple[int, tuple[str, ...]], tuple[DriverConfig, np.ndarray]] = {}


def _family_groups(config: DriverConfig, features: list[str]) -> np.ndarray:
    """Per feature, its index in CHURN_DRIVERS (-1 = symptom), cached: the fnmatch patterns cost more than
    a single customer's attribution."""
    key = (id(config), tuple(features))
    hit = _GROUPS.get(key)
    if hit is None or hit[0] is not config:
        names = [*CHURN_DRIVERS]
        family = [config.family_of(f) for f in features]
        groups = np.array([-1 if fam is None else names.index(fam) for fam in family], dtype=np.int64)
        if len(_GROUPS) > 64:
            _GROUPS.clear()
        hit = _GROUPS[key] = (config, groups)
    return hit[1]


def churn_drivers(model: Any, X: np.ndarray, config: DriverConfig = DEFAULT_DRIVERS) -> np.ndarray:
    """Per row of the churn model's matrix `X`, the driver family whose features push P(churn) up most
    (sum of the model's path contributions, log-odds: `TabularModel.grouped_contributions`). `model` is a
    binary `TabularModel`."""
    if len(X) == 0:
        return np.array([], dtype=object)
    names = [*CHURN_DRIVERS]
    groups = _family_groups(config, model.features)
    # Path (Saabas) attributions by family first (a gather per leaf). Where the path vote is within
    # `exact_margin` of flipping (the bar or the runner-up), TreeSHAP decides (`training.treeshap`'s tables,
    # ~0.1 ms per row against ~1 ms for LightGBM's `pred_contrib`, #18). Each
    # row's answer depends on that row alone, so a batch and a single request name the same driver.
    leaves = model.leaf_indices(X)  # both votes read the same rows' leaves
    by_family = model.grouped_contributions(X, groups, len(names), leaves=leaves)
    best, top, runner_up = _vote(by_family, names.index("other"))
    m, bar = config.exact_margin, config.min_contribution
    close = (np.abs(top - bar) < m) | ((top > bar - m) & (top - runner_up < m))
    if close.any():
        exact = model.grouped_contributions(X[close], _named(groups), len(names), exact=True, leaves=leaves[close])
        best[close], top[close], _ = _vote(exact, names.index("other"))
    strong = top > bar
    return np.asarray(names, dtype=object)[np.where(strong, best, names.index("other"))]


def _named(groups: np.ndarray) -> np.ndarray:
    """The grouping TreeSHAP re-votes on: "other" never votes, so its features are left out (-1) like the
    symptoms; the named families' sums are unchanged (Shapley values are per feature) and fewer leaves are visited."""
    return np.where(groups == [*CHURN_DRIVERS].index("other"), -1, groups)


def prepare_drivers(model: Any, config: DriverConfig = DEFAULT_DRIVERS) -> None:
    """Build `churn_drivers`' per-leaf tables for `model` now (path attributions and TreeSHAP by family;
    about a second for the serving benchmark's 300 trees), not on the first flagged customer's request."""
    if model.kind == "multiclass":
        return
    from training.model import path_attribution
    from training.treeshap import family_treeshap

    groups = _family_groups(config, model.features)
    path_attribution(model.booster).table(groups, len(CHURN_DRIVERS))
    family_treeshap(model.booster).table(_named(groups), len(CHURN_DRIVERS))


def _vote(by_family: np.ndarray, other: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the strongest named family, its contribution and the runner-up's (`other` never votes:
    it is the answer only when no named family pushes churn up enough)."""
    named = by_family.copy()
    named[:, other] = -np.inf
    rows = np.arange(len(named))
    best = named.argmax(axis=1)
    top = named[rows, best]
    named[rows, best] = -np.inf
    return best, top, named.max(axis=1)
