"""Typed configuration of feature and label construction (passed explicitly, never global)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.tasks import CHURN_MIN_AUM


class TierThresholds(BaseModel):
    """Value tier on bank AUM (non-liability market value), in the bank's currency.

    mass < `affluent_min` <= affluent < `hnw_min` <= hnw.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    affluent_min: float = Field(500_000.0, gt=0)
    hnw_min: float = Field(10_000_000.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> TierThresholds:
        if self.hnw_min <= self.affluent_min:
            raise ValueError("hnw_min must be greater than affluent_min")
        return self


class FeatureConfig(BaseModel):
    """How features at an as-of date are computed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: TierThresholds = TierThresholds()
    # Recency features look back this far; older activity counts as "none" (NaN).
    recency_lookback_days: int = Field(365, ge=180)
    # Market regime at T from the 6-month index return.
    bull_return_6m: float = 0.08
    bear_return_6m: float = -0.08
    # Relationship depth: ecosystem needs this many product families (plus digital use and payroll).
    ecosystem_min_families: int = Field(3, ge=1)


class LabelConfig(BaseModel):
    """How labels at horizon H after T are computed (see docs/FEATURES.md, "Labels")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_days: int = Field(90, ge=1)
    # churn is defined only for customers with at least this AUM at T.
    churn_min_aum: float = Field(CHURN_MIN_AUM, ge=0)
    # churn = 1 when AUM at T+H <= churn_aum_fraction * AUM at T (or every product closed).
    churn_aum_fraction: float = Field(0.5, gt=0, lt=1)
    # revealed_risk: share of the risk base (AUM at T+H + buys + brokerage outflows in (T, T+H])
    revealed_aggressive_share: float = Field(0.30, gt=0, le=1)  # in R4-R5 or brokerage
    revealed_balanced_share: float = Field(0.15, gt=0, le=1)  # in R3-R5 or brokerage
    # ... among customers whose risk base is at least this large (below it nothing is revealed).
    revealed_min_base: float = Field(10_000.0, ge=0)
    # Lowest product risk level a customer must be allowed to buy to be "free to act" on an appetite.
    revealed_min_allowed_level: str = Field("R4", pattern=r"^R[1-5]$")

    @model_validator(mode="after")
    def _ordered(self) -> LabelConfig:
        if self.revealed_balanced_share > self.revealed_aggressive_share:
            raise ValueError("revealed_balanced_share must not exceed revealed_aggressive_share")
        return self
