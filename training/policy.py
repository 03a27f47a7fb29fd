"""The service policy and the per-customer arbitration behind `next_action` / `actions`.

A `Policy` (typed; YAML only at the edge, `load_policy`) says how each class is served (the
service model: channel, team, review cadence, advisor roles), which actions exist (the action
catalogue: classes, life-cycle stages, product risk level, value, channel, the prediction that
drives it), when each applies (eligibility conditions) and the business levers (weights).

`arbitrate(cols, n, policy)` runs, on column arrays, the stages of an enterprise next-best-action
engine: eligibility (class, stage, conditions) -> suitability (the guard, below) -> priority
(propensity x value x lever) -> the top K per customer, each with a reason a person can read.

The suitability guard (`suitable_mask`) is not configurable: whatever the policy file says, an
action whose product risk level exceeds what the customer's assessed (stated) risk allows never
reaches the output, and a customer flagged hidden-aggressive (rated conservative, behaves
aggressive) gets no product at all, only conversations such as a re-assessment. Its limits come
from `features.vocab.MAX_RISK_LEVEL_FOR`, not from the policy, and a policy cannot switch it off.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _escape
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.io import load_yaml_model
from core.tasks import (
    ACTIONS_COLUMN,
    AGE_COLUMN,
    AUM_CHANGE_COLUMN,
    AUM_COLUMN,
    CHURN,
    HIDDEN_AGGRESSIVE_COLUMN,
    LIFECYCLE_COLUMN,
    NEXT_ACTION_COLUMN,
    NEXT_ACTION_REASON_COLUMN,
    RISK,
    SERVICE_CLASS_COLUMN,
    STATED_RISK_COLUMN,
    TIER_CLASSES,
    UPGRADE_COLUMN,
)
from features.vocab import LIFECYCLE_STAGES, MAX_RISK_LEVEL_FOR, RISK_LEVELS

logger = logging.getLogger(__name__)

DEFAULT_POLICY_PATH = Path(__file__).parent / "policies" / "default.yaml"

RiskLevel = Literal["R1", "R2", "R3", "R4", "R5"]
Propensity = Literal["none", "churn", "upgrade", "revealed_aggressive"]
# The prediction column behind each propensity source (the champions' outputs).
PROPENSITY_COLUMNS: dict[str, str] = {
    "churn": CHURN.score_column(),
    "upgrade": UPGRADE_COLUMN,
    "revealed_aggressive": RISK.score_column("aggressive"),
}
LEVEL_RANK = {level: i + 1 for i, level in enumerate(RISK_LEVELS)}  # R1 -> 1 ... R5 -> 5; no product -> 0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceModel(_Strict):
    """How a class is served: who, through which channel, how often, and how well each channel realises value."""

    channel: str = Field(description="The class's main contact channel (a key of `channels`).")
    team: str = Field(description="Who serves the class, for people (e.g. 'private banker + legal, tax, trust').")
    review: str = Field(description="The review cadence, for people (e.g. 'monthly portfolio review').")
    contacts_per_week: float = Field(ge=0, description="Contacts a served customer takes per week (slot use).")
    advisor_roles: list[str] = Field(default_factory=list, description="Roles allowed to serve the class.")
    min_seniority_years: float = Field(default=0, ge=0, description="Seniority an advisor needs for this class.")
    min_coverage: float = Field(
        default=0.0, ge=0, le=1, description="Share of the class the qualified advisors must be able to hold."
    )
    realisation: dict[str, float] = Field(
        description="Share of the customer's expected action value each service option realises "
        "(keys: an advisor role or a channel such as `digital`)."
    )


class Role(_Strict):
    max_clients: int = Field(gt=0, description="Most clients one advisor of this role may hold.")
    channel: str = Field(description="The channel this role's contacts use (a key of `channels`).")


class Channel(_Strict):
    weekly_slots: float | None = Field(default=None, ge=0, description="Contacts per week; null = unlimited.")


class Condition(_Strict):
    """One eligibility rule on a scored/feature column: `min <= value <= max`, `value in any_of`,
    or `value == equals`. A missing value never satisfies a condition."""

    column: str
    min: float | None = None
    max: float | None = None
    any_of: list[str] | None = None
    equals: bool | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if self.min is None and self.max is None and self.any_of is None and self.equals is None:
            raise ValueError(f"condition on {self.column!r} tests nothing: give min, max, any_of or equals")
        return self

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{self.column} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.column} <= {self.max:g}")
        if self.any_of is not None:
            parts.append(f"{self.column} in {'/'.join(self.any_of)}")
        if self.equals is not None:
            parts.append(f"{self.column} is {str(self.equals).lower()}")
        return " and ".join(parts)


class Action(_Strict):
    """One entry of the action catalogue."""

    name: str
    description: str = ""
    classes: list[str] = Field(description="Classes (asset tiers) the action applies to.")
    stages: list[str] | None = Field(default=None, description="Life-cycle stages; null = every stage.")
    product_risk: RiskLevel | None = Field(default=None, description="Risk level of the product; null = no product.")
    channel: str
    lever: str = Field(description="The business lever (a key of `levers`) weighting this action.")
    propensity: Propensity = Field(default="none", description="The prediction driving the action.")
    base_rate: float = Field(default=1.0, gt=0, le=1, description="Take-up rate, times the prediction if any.")
    value_fixed: float = Field(default=0.0, ge=0, description="Expected annual value per take-up (currency).")
    value_aum_rate: float = Field(default=0.0, ge=0, description="Expected annual value as a share of AUM.")
    customer_benefit: float = Field(default=0.0, ge=0, le=1, description="Benefit to the customer (0-1).")
    when: list[Condition] = Field(default_factory=list, description="Eligibility rules; all must hold.")

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in TIER_CLASSES]
        if bad or not v:
            raise ValueError(f"classes {bad or v}: choose from {', '.join(TIER_CLASSES)}")
        return v

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, v: list[str] | None) -> list[str] | None:
        bad = [s for s in v or [] if s not in LIFECYCLE_STAGES]
        if bad:
            raise ValueError(f"stages {bad}: choose from {', '.join(LIFECYCLE_STAGES)}")
        return v


class Policy(_Strict):
    """The service policy (see `training/policies/default.yaml` and docs/POLICY.md)."""

    version: int = 1
    top_k: int = Field(default=3, ge=1, le=10)
    default_action: str = "service_as_usual"
    trend_weight: float = Field(default=1.0, ge=0, description="How much the 3-month AUM trend scales value.")
    customer_weight: float = Field(default=0.5, ge=0, description="Weight of customer benefit in value.")
    same_region_bonus: float = Field(
        default=0.0, ge=0, description="Extra realisation when advisor and customer share a region."
    )
    service_models: dict[str, ServiceModel]
    roles: dict[str, Role]
    channels: dict[str, Channel]
    levers: dict[str, float]
    actions: list[Action]

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        missing = [c for c in TIER_CLASSES if c not in self.service_models]
        if missing:
            raise ValueError(f"service_models: no service model for class(es) {missing}")
        names = [a.name for a in self.actions]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise ValueError(f"actions: duplicate name(s) {dup}")
        for a in self.actions:
            if a.lever not in self.levers:
                raise ValueError(f"actions.{a.name}.lever: {a.lever!r} is not one of levers {sorted(self.levers)}")
            if a.channel not in self.channels:
                raise ValueError(
                    f"actions.{a.name}.channel: {a.channel!r} is not one of channels {sorted(self.channels)}"
                )
        for name, role in self.roles.items():
            if role.channel not in self.channels:
                raise ValueError(
                    f"roles.{name}.channel: {role.channel!r} is not one of channels {sorted(self.channels)}"
                )
        for cls, sm in self.service_models.items():
            if cls not in TIER_CLASSES:
                raise ValueError(f"service_models.{cls}: not a class; choose from {', '.join(TIER_CLASSES)}")
            for role_name in sm.advisor_roles:
                if role_name not in self.roles:
                    raise ValueError(
                        f"service_models.{cls}.advisor_roles: {role_name!r} is not one of roles {sorted(self.roles)}"
                    )
            for option in sm.realisation:
                if option not in self.roles and option not in self.channels:
                    raise ValueError(f"service_models.{cls}.realisation: {option!r} is neither a role nor a channel")
            if sm.channel not in self.channels:
                raise ValueError(
                    f"service_models.{cls}.channel: {sm.channel!r} is not one of channels {sorted(self.channels)}"
                )
        bad_levers = {k: v for k, v in self.levers.items() if v < 0}
        if bad_levers:
            raise ValueError(f"levers: weights must be >= 0, got {bad_levers}")
        return self


def load_policy(path: Path | str | None = None) -> Policy:
    """Read a policy YAML (default: the shipped one); a bad file is an `InputError` naming the field."""
    return load_yaml_model(path if path is not None else DEFAULT_POLICY_PATH, Policy, "--policy")


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_policy(DEFAULT_POLICY_PATH)
    return _DEFAULT


# -- column helpers ---------------------------------------------------------------------------
_STR_OR_NONE = {str, type(None)}


def _strings(values: Any, n: int) -> np.ndarray:
    """Each value as `str`, None for a missing one (None or NaN)."""
    if values is None:
        return np.full(n, None, dtype=object)
    if isinstance(values, np.ndarray) and values.dtype == object and set(map(type, values)) <= _STR_OR_NONE:
        return values.copy()  # already exactly that (a request's category column): no per-value loop
    return np.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], dtype=object)


def _floats(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf" and values.shape == (n,):
        return values.astype(np.float64)  # what `float(v)` gives for each value, without the loop
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(values):
        out[i] = np.nan if v is None else float(v)
    return out


def _bools(values: Any, n: int) -> np.ndarray:
    """True/False, or None when missing (a condition on a missing flag is never met)."""
    if values is None:
        return np.full(n, None, dtype=object)
    if n > SMALL_BATCH and isinstance(values, np.ndarray) and values.dtype.kind in "biuf" and values.shape == (n,):
        out = (values != 0).astype(object)  # `bool(v)` of a number, as Python's True / False
        if values.dtype.kind == "f":
            out[np.isnan(values)] = None
        return out
    return np.array([None if v is None or (isinstance(v, float) and v != v) else bool(v) for v in values], dtype=object)


def _finite(x: np.ndarray) -> np.ndarray:
    """`np.nan_to_num(x, nan=0.0)` (NaN -> 0, +-inf -> the largest finite floats), which costs ~10x a
    finiteness check: most columns have nothing to replace, most others only NaNs."""
    finite = np.isfinite(x)
    if finite.all():
        return x
    if not np.isinf(x).any():
        return np.where(finite, x, 0.0)
    return np.nan_to_num(x, nan=0.0)


def lifecycle_from_age(age: np.ndarray, occupation: np.ndarray | None = None) -> np.ndarray:
    """The feature build's life-cycle rule (<35 young professional, <60 family growth, else
    retirement; retired occupation = retirement), for rows that carry no `lifecycle_stage`."""
    young, family, retired = LIFECYCLE_STAGES
    stage = np.select([age < 35, age < 60], [young, family], retired).astype(object)
    if occupation is not None:
        stage[np.asarray(occupation, dtype=object) == "retired"] = retired
    stage[np.isnan(age)] = None
    return stage


_LIMITS = {k: LEVEL_RANK[v] for k, v in MAX_RISK_LEVEL_FOR.items()}


def allowed_level(stated_risk: np.ndarray) -> np.ndarray:
    """Highest product risk rank (1-5) each customer's assessed risk allows; 0 = no assessment (no product)."""
    return np.array([_LIMITS.get(s, 0) for s in stated_risk], dtype=np.int8)


def suitable_mask(level: np.ndarray, allowed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """THE suitability guard, (n customers x A actions): an action without a product (level 0) is
    always suitable; a product only if its level is within the allowed one and the customer is
    not flagged hidden-aggressive (who gets a re-assessment first, never a product push)."""
    level = level[None, :]
    return (level == 0) | ((level <= allowed[:, None]) & ~hidden[:, None])


# -- arbitration ----------------------------------------------------------------------------------
# Up to this many customers, rule tests run as plain Python set look-ups: a request for one customer
# would otherwise pay ~50 `np.isin` calls, each costlier than the whole test on one value (#18).
# Bigger books take the vectorised path; both give the same masks (tests/training/test_policy_fast.py).
SMALL_BATCH = 32


class _Plan:
    """What arbitration reads from a policy, worked out once per policy object (a `Policy` is frozen):
    per action its class and stage sets as look-up tables, its `any_of` sets, and the numeric
    constants of propensity, value and lever as arrays over the actions."""

    def __init__(self, policy: Policy):
        acts = policy.actions
        classes = sorted({c for a in acts for c in a.classes})
        stages = sorted({s for a in acts for s in a.stages or []})
        self.class_code = {c: i for i, c in enumerate(classes)}
        self.stage_code = {s: i for i, s in enumerate(stages)}
        # Row `len(classes)` (`len(stages)`) is every other value, a missing one included: never a
        # class of an action; a stage only of the actions that apply at every stage.
        self.class_table = np.array([[c in a.classes for a in acts] for c in [*classes, None]], dtype=bool).reshape(
            len(classes) + 1, len(acts)
        )
        self.stage_table = np.array(
            [[a.stages is None or s in a.stages for a in acts] for s in [*stages, None]], dtype=bool
        ).reshape(len(stages) + 1, len(acts))
        self.any_of = {id(c): frozenset(c.any_of) for a in acts for c in a.when if c.any_of is not None}
        self.level = np.array([LEVEL_RANK[a.product_risk] if a.product_risk else 0 for a in acts], dtype=np.int8)
        self.lever = np.array([policy.levers[a.lever] for a in acts], dtype=np.float64)
        self.base_rate = np.array([a.base_rate for a in acts], dtype=np.float64)
        self.value_fixed = np.array([a.value_fixed for a in acts], dtype=np.float64)
        self.value_aum_rate = np.array([a.value_aum_rate for a in acts], dtype=np.float64)
        self.benefit = np.array([1 + policy.customer_weight * a.customer_benefit for a in acts], dtype=np.float64)
        self.sources = [a.propensity for a in acts]
        self.source_index = np.array([_SOURCE_ORDER[src] for src in self.sources], dtype=np.intp)
        # the same constants per action as Python floats, for `_one_customer_values`
        self.per_action = list(
            zip(
                self.base_rate.tolist(),
                self.source_index.tolist(),
                self.value_fixed.tolist(),
                self.value_aum_rate.tolist(),
                self.benefit.tolist(),
                self.lever.tolist(),
                strict=True,
            )
        )
        self.ruled = [(j, a.when) for j, a in enumerate(acts) if a.when]
        self.ruled_index = np.array([j for j, _ in self.ruled], dtype=np.intp)
        # `_reason_templates` per answer to "does the book lack the aggressive-propensity column?"
        self.templates: dict[bool, list] = {}
        self.pieces: dict[int, tuple[list, _Pieces]] = {}  # `_pieces`, per templates
        # Each action's name and channel as JSON strings (`arbitrate(as_json=True)`), and those of the
        # default action and of its channels (a class's service channel, or "none"): ~40 `json.dumps` a
        # request otherwise (#18).
        self.encoded = [(json.dumps(a.name), json.dumps(a.channel)) for a in acts]
        self.default_encoded = json.dumps(policy.default_action)
        self.channel_encoded = {
            c: json.dumps(c) for c in [*(sm.channel for sm in policy.service_models.values()), "none"]
        }


_PLANS: dict[int, tuple[Policy, _Plan]] = {}


def _plan(policy: Policy) -> _Plan:
    """The policy's `_Plan`, cached by identity (the entry keeps the policy alive, so its id stays its own)."""
    hit = _PLANS.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_PLANS) > 16:  # a new dict, not cleared in place: another thread may be reading the old one
            globals()["_PLANS"] = {}
        hit = _PLANS[id(policy)] = (policy, _Plan(policy))
    return hit[1]


def _coded(values: np.ndarray, code: dict[str, int], table: np.ndarray) -> np.ndarray:
    """(n x A) rows of `table` for each value's code (any value not in `code` takes the last row)."""
    other = len(table) - 1
    return table[np.array([code.get(v, other) if v is not None else other for v in values], dtype=np.intp)]


def _condition_mask(
    cond: Condition,
    cols: Mapping[str, Any],
    n: int,
    cache: dict[tuple[str, str], Any],
    any_of: frozenset[str] | None = None,
    *,
    small: bool | None = None,
) -> np.ndarray:
    raw = cols.get(cond.column)
    if raw is None:
        return np.zeros(n, dtype=bool)
    small = n <= SMALL_BATCH if small is None else small
    if small:
        return np.array(_condition_rows(cond, cols, n, cache, any_of), dtype=bool).reshape(n)
    ok = np.ones(n, dtype=bool)
    if cond.min is not None or cond.max is not None:
        x = cache.get(("f", cond.column))
        if x is None:
            x = cache[("f", cond.column)] = _floats(raw, n)
        with np.errstate(invalid="ignore"):
            if cond.min is not None:
                ok &= x >= cond.min
            if cond.max is not None:
                ok &= x <= cond.max
    if cond.any_of is not None:
        s = cache.get(("s", cond.column))
        if s is None:
            s = cache[("s", cond.column)] = _strings(raw, n)
        ok &= np.isin(s.astype(str), cond.any_of) & (s != None)  # noqa: E711
    if cond.equals is not None:
        b = cache.get(("b", cond.column))
        if b is None:
            b = cache[("b", cond.column)] = _bools(raw, n)
        ok &= b == cond.equals
    return ok


def _condition_rows(
    cond: Condition, cols: Mapping[str, Any], n: int, cache: dict[tuple[str, str], Any], any_of: frozenset[str] | None
) -> list[bool]:
    """`_condition_mask` for a few rows as Python comparisons on Python floats, strings and flags: on one
    customer each numpy operation (and `np.errstate`) costs more than the test itself (#18). The same
    float64 values and comparisons (NaN meets no bound; a bound is compared as a float64, as numpy does)."""
    raw = cols.get(cond.column)
    if raw is None:
        return [False] * n
    ok = [True] * n
    if cond.min is not None or cond.max is not None:
        x = cache.get(("F", cond.column))
        if x is None:
            f = cache.get(("f", cond.column))
            x = cache[("F", cond.column)] = (f if f is not None else _floats(raw, n)).tolist()
        low = None if cond.min is None else float(cond.min)
        high = None if cond.max is None else float(cond.max)
        ok = [o and (low is None or v >= low) and (high is None or v <= high) for o, v in zip(ok, x, strict=True)]
    if cond.any_of is not None:
        s = cache.get(("s", cond.column))
        if s is None:
            s = cache[("s", cond.column)] = _strings(raw, n)
        allowed = any_of if any_of is not None else frozenset(cond.any_of)
        ok = [o and v is not None and v in allowed for o, v in zip(ok, s, strict=True)]
    if cond.equals is not None:
        b = cache.get(("b", cond.column))
        if b is None:
            b = cache[("b", cond.column)] = _bools(raw, n)
        ok = [o and bool(v == cond.equals) for o, v in zip(ok, b, strict=True)]
    return ok


def customer_inputs(cols: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """The per-customer inputs arbitration reads, with the fallbacks for columns a book may lack:
    class = `service_class`, else the current `tier`; life-cycle stage = `lifecycle_stage`, else
    derived from `age`; hidden-aggressive = the flag, else False."""
    cls = _strings(cols.get(SERVICE_CLASS_COLUMN, cols.get("tier")), n)
    stage = (
        _strings(cols[LIFECYCLE_COLUMN], n)
        if cols.get(LIFECYCLE_COLUMN) is not None
        else lifecycle_from_age(_floats(cols.get(AGE_COLUMN), n), cols.get("occupation"))
    )
    hidden = _bools(cols.get(HIDDEN_AGGRESSIVE_COLUMN), n)
    return {
        "class": cls,
        "stage": stage,
        "stated": _strings(cols.get(STATED_RISK_COLUMN), n),
        "hidden": np.array([bool(h) for h in hidden], dtype=bool)
        if n <= SMALL_BATCH
        else np.asarray(hidden == True, dtype=bool),  # noqa: E712  # `bool(h)` of True, False or None
        "aum": _finite(_floats(cols.get(AUM_COLUMN), n)).clip(min=0),
        "trend": _finite(_floats(cols.get(AUM_CHANGE_COLUMN), n)).clip(-0.5, 0.5),
    }


def _propensities(policy: Policy, cols: Mapping[str, Any], n: int) -> np.ndarray:
    """(n, 1 + sources) propensity of each source (`"none"` = 1 first, then `PROPENSITY_COLUMNS`' order), in [0, 1].

    One block, so `_finite` and the clip run once for all sources (element by element the same values)."""
    out = np.empty((n, 1 + len(PROPENSITY_COLUMNS)), dtype=np.float64)
    out[:, 0] = 1.0
    for i, (source, column) in enumerate(PROPENSITY_COLUMNS.items(), start=1):
        values = cols.get(column)
        if values is None and source == "revealed_aggressive":
            values = cols.get(HIDDEN_AGGRESSIVE_COLUMN)  # no probabilities: the flag is 0/1 evidence
        out[:, i] = _floats(values, n)
    out[:, 1:] = _finite(out[:, 1:]).clip(0, 1)
    return out


_SOURCE_ORDER = {src: i for i, src in enumerate(["none", *PROPENSITY_COLUMNS])}  # `_propensities`' columns


def _matrices(
    policy: Policy, cols: Mapping[str, Any], n: int, inp: dict[str, np.ndarray], *, small: bool | None = None
):
    """(eligible, priority, propensity, value) as (n x A) arrays, eligibility before suitability.

    Class and stage eligibility are table look-ups by each customer's class / stage code; the
    value and propensity of every action are one array operation each (the same float operations,
    in the same order, as action by action)."""
    plan = _plan(policy)
    small = n <= SMALL_BATCH if small is None else small
    eligible = _coded(inp["class"], plan.class_code, plan.class_table)
    eligible &= _coded(inp["stage"], plan.stage_code, plan.stage_table)
    cache: dict[tuple[str, str], Any] = {}
    if small and plan.ruled:  # every rule as Python lists, applied to the matrix at once
        rules = []
        for _j, when in plan.ruled:
            ok = [True] * n
            for cond in when:
                met = _condition_rows(cond, cols, n, cache, plan.any_of.get(id(cond)))
                ok = [a and b for a, b in zip(ok, met, strict=True)]
            rules.append(ok)
        eligible[:, plan.ruled_index] &= np.array(rules, dtype=bool).reshape(len(rules), n).T
    else:
        for j, when in plan.ruled:
            m = eligible[:, j]  # a view: the conditions narrow the column in place
            for cond in when:
                m &= _condition_mask(cond, cols, n, cache, plan.any_of.get(id(cond)), small=small)
    if n == 1:
        one = _one_customer_values(policy, plan, cols, inp)
        if one is not None:
            return eligible, *one
    by_source = _propensities(policy, cols, n)
    prop = plan.base_rate[None, :] * by_source[:, plan.source_index]
    trend_factor = 1 + policy.trend_weight * inp["trend"]
    bank = plan.value_fixed[None, :] + (plan.value_aum_rate[None, :] * inp["aum"][:, None]) * trend_factor[:, None]
    value = bank * plan.benefit[None, :]
    priority = prop * value * plan.lever[None, :]
    return eligible, priority, prop, value


def _one_customer_values(
    policy: Policy, plan: _Plan, cols: Mapping[str, Any], inp: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`_matrices`' (priority, propensity, value) of ONE customer on Python floats (a single customer's
    request, #18: ~15 numpy calls on arrays of one row otherwise): the same float64 operations in the same
    order, so the same bits (tests/training/test_policy_fast.py). None when a propensity column is not a
    one-value array (`_matrices` then takes its array path)."""
    by_source = [1.0]
    for source, column in PROPENSITY_COLUMNS.items():
        values = cols.get(column)
        if values is None and source == "revealed_aggressive":
            values = cols.get(HIDDEN_AGGRESSIVE_COLUMN)
        if values is None:
            x = 0.0  # NaN, then `_finite`'s 0
        elif isinstance(values, np.ndarray) and values.shape == (1,):
            v = values[0]
            x = 0.0 if v is None else float(v)  # `_floats`: float(v), None missing
            # `_finite` then `clip(0, 1)` (which keeps -0.0, as min(max()) does): NaN -> 0, +-inf -> 1 / 0
            x = 0.0 if x != x else min(max(x, 0.0), 1.0)
        else:
            return None
        by_source.append(x)
    aum, trend = float(inp["aum"][0]), float(inp["trend"][0])
    trend_factor = 1 + policy.trend_weight * trend
    prop, value, priority = [], [], []
    for base_rate, source, fixed, rate, benefit, lever in plan.per_action:
        p = base_rate * by_source[source]
        v = (fixed + (rate * aum) * trend_factor) * benefit
        prop.append(p)
        value.append(v)
        priority.append(p * v * lever)
    return np.array([priority]), np.array([prop]), np.array([value])


def _reason(act: Action, i: int, prop: float, value: float, policy: Policy, cols: Mapping[str, Any], inp) -> str:
    src = act.propensity
    if src == "none":
        why = f"take-up {act.base_rate:.2f}"
    else:
        column = PROPENSITY_COLUMNS[src]
        if cols.get(column) is None and src == "revealed_aggressive":
            column = HIDDEN_AGGRESSIVE_COLUMN
        why = f"{column} {prop / act.base_rate:.2f} x take-up {act.base_rate:.2f}"
    rule = f"{inp['class'][i]}"
    if act.stages is not None:
        rule += f", {inp['stage'][i]}"
    for cond in act.when:
        rule += f", {cond.describe()}"
    product = f"; product {act.product_risk} within {inp['stated'][i]} limit" if act.product_risk else ""
    return (
        f"{act.name}: {why} x value {value:,.0f} (aum {inp['aum'][i]:,.0f}, 3m trend {inp['trend'][i]:+.0%})"
        f" x lever {act.lever} {policy.levers[act.lever]:g}; rule: {rule}{product}"
    )


_Template = tuple[str, str | None, str, str, bool, str, str]


def _reason_templates(policy: Policy, cols: Mapping[str, Any]) -> list[_Template]:
    """Per action, the parts of `_reason` that do not depend on the customer (name, propensity column,
    take-up, lever, stage flag, conditions, product), so a batch formats each reason from its row's
    numbers only (a 1,000-customer request writes ~2,500 reasons, #18). `_reason_from` joins them into
    exactly `_reason`'s string (tests/training/test_policy_fast.py)."""
    out = []
    for act in policy.actions:
        src = act.propensity
        column = None
        if src != "none":
            column = PROPENSITY_COLUMNS[src]
            if cols.get(column) is None and src == "revealed_aggressive":
                column = HIDDEN_AGGRESSIVE_COLUMN
        take_up = f"take-up {act.base_rate:.2f}"
        lever = f") x lever {act.lever} {policy.levers[act.lever]:g}; rule: "
        conditions = "".join(f", {cond.describe()}" for cond in act.when)
        product = f"; product {act.product_risk} within " if act.product_risk else ""
        out.append((f"{act.name}: ", column, take_up, lever, act.stages is not None, conditions, product))
    return out


def _reason_from(
    template: _Template,
    base_rate: float,
    prop: float,
    value: float,
    cls: Any,
    stage: Any,
    stated: Any,
    aum: float,
    trend: float,
) -> str:
    head, column, take_up, lever, staged, conditions, product = template
    why = take_up if column is None else f"{column} {prop / base_rate:.2f} x {take_up}"
    rule = f"{cls}, {stage}" if staged else f"{cls}"
    tail = f"{product}{stated} limit" if product else ""
    return f"{head}{why} x value {value:,.0f} (aum {aum:,.0f}, 3m trend {trend:+.0%}{lever}{rule}{conditions}{tail}"


def _json_float(x: float) -> str:
    """`json.dumps(x)` of a float: its repr, or NaN / Infinity / -Infinity."""
    return float.__repr__(x) if x - x == 0 else json.dumps(x)


def _json_action(action: str, channel: str, priority: float, reason: str) -> str:
    """`json.dumps` of one `{action, channel, priority, reason}` item, the `action` and `channel`
    already JSON-encoded (they repeat; the reason is escaped as json.dumps escapes it)."""
    return (
        f'{{"action": {action}, "channel": {channel}, "priority": {_json_float(priority)}, '
        f'"reason": {_escape(reason)}}}'
    )


# -- numbers as Python formats them, for a column of floats at once ---------------------------------
# Python's `.0f` / `.2f` / `round(x, 2)` round the exact binary value half to even, which is what
# `np.rint` does to a float (exactly) and to `100 * x` when that product's rounding error cannot cross a
# half (checked per value); the digits then come from tables. Any value the tables cannot vouch for
# (NaN, inf, huge, a near-tie) is formatted by Python itself (tests/training/test_policy_columns.py).
_LEAD = np.array([str(i) for i in range(1000)], dtype=object)  # a leading group of digits
_GROUP = np.array([f"{i:03d}" for i in range(1000)], dtype=object)  # a following group
_CENTS = np.array([f".{i:02d}" for i in range(100)], dtype=object)  # `.2f`'s decimals
_CENTS_REPR = np.array(["." + (f"{i:02d}".rstrip("0") or "0") for i in range(100)], dtype=object)  # repr's


def _signed(text: np.ndarray, x: np.ndarray, fast: np.ndarray, python: Any) -> list[str]:
    """`text` with a minus where `x` has its sign bit (-0.0 too: Python writes `-0`), and Python's
    `python(v)` wherever `fast` is False."""
    neg = np.signbit(x) & fast
    if neg.any():
        text = np.where(neg, "-" + text, text)
    out = text.tolist()
    for i in np.flatnonzero(~fast).tolist():
        out[i] = python(float(x[i]))
    return out


def _integer_text(k: np.ndarray) -> np.ndarray:
    """`str` of each non-negative int64."""
    text = _LEAD[np.minimum(k, 999)]
    big = k >= 1000
    if big.any():
        text[big] = [str(v) for v in k[big].tolist()]
    return text


def _thousands(x: np.ndarray) -> list[str]:
    """`f"{v:,.0f}"` of each float."""
    with np.errstate(invalid="ignore"):
        k = np.rint(np.abs(x))
        fast = k < 2.0**53  # an exact int64 (NaN and inf are not)
    whole = np.where(fast, k, 0.0).astype(np.int64)
    text = _LEAD[whole % 1000]
    at = np.flatnonzero(whole >= 1000)  # the values with more groups, and their groups so far
    rest, tail = whole[at] // 1000, _GROUP[whole[at] % 1000]
    while len(at):
        lead = rest < 1000
        text[at[lead]] = _LEAD[rest[lead]] + "," + tail[lead]
        more = ~lead
        at, rest, tail = at[more], rest[more], "," + tail[more]
        tail = _GROUP[rest % 1000] + tail
        rest //= 1000
    return _signed(text, x, fast, lambda v: f"{v:,.0f}")


def _cents(x: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """|x| in hundredths rounded as `.2f` rounds (int64), and where that is certain and |x| < `limit`."""
    with np.errstate(invalid="ignore", over="ignore"):
        hundred = np.abs(x) * 100.0  # within hundred * 2**-53 of the exact product
        k = np.rint(hundred)
        tie = np.abs(hundred - np.floor(hundred) - 0.5)
        fast = (np.abs(x) < limit) & (tie > hundred * 2.0**-50)
    return np.where(fast, k, 0.0).astype(np.int64), fast


def _two_decimals(x: np.ndarray) -> list[str]:
    """`f"{v:.2f}"` of each float."""
    k, fast = _cents(x, 2.0**44)
    return _signed(_integer_text(k // 100) + _CENTS[k % 100], x, fast, lambda v: f"{v:.2f}")


def _rounded_repr(x: np.ndarray) -> list[str]:
    """`_json_float(round(v, 2))` of each float: below 2**44 the float nearest a number of hundredths is
    written as those hundredths, trailing zeros dropped (no shorter decimal lies within half a unit of it)."""
    k, fast = _cents(x, 2.0**44)
    return _signed(_integer_text(k // 100) + _CENTS_REPR[k % 100], x, fast, lambda v: _json_float(round(v, 2)))


def _percent(x: np.ndarray) -> list[str]:
    """`f"{v:+.0%}"` of each float (Python multiplies by 100, then formats `.0f`)."""
    with np.errstate(invalid="ignore", over="ignore"):
        k = np.rint(np.abs(x) * 100.0)
        fast = k < 1000
    text = np.where(np.signbit(x), "-", "+") + _LEAD[np.where(fast, k, 0.0).astype(np.int64)] + "%"
    out = text.tolist()
    for i in np.flatnonzero(~fast).tolist():
        out[i] = f"{float(x[i]):+.0%}"
    return out


def _plain(text: Any) -> bool:
    """Whether `json.dumps` writes the string as it is, between quotes (printable ASCII, no quote or
    backslash; None stands for the text "None")."""
    return text is None or (text.isascii() and text.isprintable() and '"' not in text and "\\" not in text)


class _Pieces:
    """Per action, the fixed text around a reason's numbers (from `_reason_templates`) and its JSON head, as
    arrays over the actions so a batch gathers them per ranked item."""

    def __init__(self, policy: Policy, templates: list[_Template]):
        acts = policy.actions
        obj = functools.partial(np.array, dtype=object)
        before_ratio, before_value, lever, before_stated, after_stated = [], [], [], [], []
        for head, column, take_up, lever_text, _staged, conditions, product in templates:
            before_ratio.append(head + (take_up if column is None else f"{column} "))
            before_value.append(("" if column is None else f" x {take_up}") + " x value ")
            lever.append(lever_text)
            before_stated.append(conditions + product)
            after_stated.append(" limit" if product else "")
        self.before_ratio, self.before_value, self.lever = obj(before_ratio), obj(before_value), obj(lever)
        self.before_stated, self.after_stated = obj(before_stated), obj(after_stated)
        self.has_column = np.array([t[1] is not None for t in templates], dtype=bool)
        self.staged = np.array([t[4] for t in templates], dtype=bool)
        self.has_product = np.array([bool(t[6]) for t in templates], dtype=bool)
        self.base_rate = np.array([a.base_rate for a in acts], dtype=np.float64)
        self.names = obj([a.name for a in acts])
        self.channels = obj([a.channel for a in acts])
        texts = zip(before_ratio, before_value, lever, before_stated, after_stated, strict=True)
        self.plain = np.array([all(map(_plain, t)) for t in texts], dtype=bool)
        encoded = _plan(policy).encoded
        self.json_head = obj([f'{{"action": {name}, "channel": {channel}, "priority": ' for name, channel in encoded])


def _pieces(policy: Policy, templates: list[_Template]) -> _Pieces:
    """`_Pieces` of the policy for these templates, kept on its plan (one per `_reason_templates` case)."""
    cache = _plan(policy).pieces
    hit = cache.get(id(templates))
    if hit is None or hit[0] is not templates:
        hit = cache[id(templates)] = (templates, _Pieces(policy, templates))
    return hit[1]


class _RowTexts:
    """Per customer, the parts of a reason that depend on the customer only: `f"{cls}"`, `f"{cls}, {stage}"`,
    `f"{stated}"` and ` (aum <aum>, 3m trend <trend>`."""

    def __init__(self, inp: dict[str, np.ndarray]):
        def text(v: np.ndarray) -> np.ndarray:  # f"{v}": None -> "None" (the values are str or None)
            return np.where(v == None, "None", v)  # noqa: E711

        self.cls = text(inp["class"])
        self.class_stage = self.cls + ", " + text(inp["stage"])
        self.stated = text(inp["stated"])
        parts = (self.cls.tolist(), inp["stage"].tolist(), self.stated.tolist())
        if all(map(_plain, {v for part in parts for v in part})):  # the usual book: class names and stages
            self.plain = np.ones(len(self.cls), dtype=bool)
        else:
            self.plain = np.array([all(map(_plain, row)) for row in zip(*parts, strict=True)], dtype=bool)
        aum = np.array(_thousands(inp["aum"]), dtype=object)
        self.amounts = " (aum " + aum + ", 3m trend " + np.array(_percent(inp["trend"]), dtype=object)


class _Scores(NamedTuple):
    """(n x A) eligible-and-suitable, priority, propensity and value; (n x K) each row's actions by priority."""

    ok: np.ndarray
    order: np.ndarray
    priority: np.ndarray
    prop: np.ndarray
    value: np.ndarray


# next_action, its reason, actions (None where a row has no action), the rows without one
_Ranked = tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]


def _ranked_rows(
    policy: Policy, templates: list[_Template], scores: _Scores, inp: dict[str, np.ndarray], as_json: bool
) -> _Ranked:
    """Each customer's eligible and suitable actions in `order`, row by row (a few customers: each numpy
    call on a handful of values would cost more than the Python below)."""
    ok, order, priority, prop, value = scores
    n = len(ok)
    next_action = np.empty(n, dtype=object)  # None-filled
    reason = np.empty(n, dtype=object)
    actions = np.empty(n, dtype=object)  # one list per row (never a 2-D array, whatever the lengths)
    acts = policy.actions
    encoded = _plan(policy).encoded
    # Flat lists of Python floats for the per-row loop: the same float64 values, formatted and rounded as
    # numpy's scalars are, without indexing arrays element by element.
    a = ok.shape[1]
    ok_l, priority_l, prop_l, value_l = (x.ravel().tolist() for x in (ok, priority, prop, value))
    order_l, w = order.ravel().tolist(), order.shape[1]
    cls_l, stage_l, stated_l, aum_l, trend_l = (inp[k].tolist() for k in ("class", "stage", "stated", "aum", "trend"))
    missing = []
    for i in range(n):
        row: list = []
        base = i * a
        for j in order_l[i * w : (i + 1) * w]:
            if not ok_l[base + j]:
                break
            act = acts[j]
            priority_ij = round(priority_l[base + j], 2)
            why = _reason_from(
                templates[j],
                act.base_rate,
                prop_l[base + j],
                value_l[base + j],
                cls_l[i],
                stage_l[i],
                stated_l[i],
                aum_l[i],
                trend_l[i],
            )
            if not row:
                next_action[i], reason[i] = act.name, why
            if as_json:
                name, channel = encoded[j]
                row.append(_json_action(name, channel, priority_ij, why))
            else:
                row.append({"action": act.name, "channel": act.channel, "priority": priority_ij, "reason": why})
        if row:
            actions[i] = "[" + ", ".join(row) + "]" if as_json else row
        else:
            missing.append(i)
    return next_action, reason, actions, missing


def _default_rows(
    policy: Policy,
    eligible: np.ndarray,
    inp: dict[str, np.ndarray],
    ranked: _Ranked,
    as_json: bool,
) -> None:
    """The policy's default action, with a reason that says why, for each row left without an action (in place)."""
    next_action, reason, actions, missing = ranked
    for i in missing:
        why = f"{policy.default_action}: no eligible and suitable action for class {inp['class'][i]}"
        if eligible[i].any():
            why += f" ({int(eligible[i].sum())} eligible action(s) blocked by suitability)"
        sm = policy.service_models.get(inp["class"][i])
        channel = sm.channel if sm is not None else "none"  # never null: keeps the Parquet type stable
        if as_json:  # the one encoding of every row (`_json_action` = `json.dumps` of the item)
            plan = _plan(policy)
            actions[i] = "[" + _json_action(plan.default_encoded, plan.channel_encoded[channel], 0.0, why) + "]"
        else:
            actions[i] = [{"action": policy.default_action, "channel": channel, "priority": 0.0, "reason": why}]
        next_action[i], reason[i] = policy.default_action, why


def _ranked_columns(
    policy: Policy, templates: list[_Template], scores: _Scores, inp: dict[str, np.ndarray], as_json: bool
) -> _Ranked:
    """`_ranked_rows` for a batch, column by column (#18: a 1,000-customer request ranks ~2,500 actions).

    The ranked (row, action) items are gathered first, in row order; their numbers are formatted by
    `_thousands`, `_two_decimals` and `_rounded_repr` (the strings Python's formats give, from digit tables),
    each row's amounts once per row, and each action's fixed text once per policy (`_pieces`); the reason is
    then one f-string per item from those parts, exactly `_reason_from`'s string."""
    ok, order, priority, prop, value = scores
    n, a = ok.shape
    next_action = np.empty(n, dtype=object)  # None-filled
    reason = np.empty(n, dtype=object)
    actions = np.empty(n, dtype=object)
    rows = np.arange(n)[:, None]
    taken = np.logical_and.accumulate(ok[rows, order], axis=1)  # the ranked prefix of eligible, suitable actions
    r, position = np.nonzero(taken)  # row-major: each row's items best first
    if len(r) == 0:
        return next_action, reason, actions, list(range(n))
    j = order[r, position]
    flat = r * a + j
    pieces = _pieces(policy, templates)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = prop.ravel()[flat] / pieces.base_rate[j]
    ratio_s = np.where(pieces.has_column[j], np.array(_two_decimals(ratio), dtype=object), "")
    value_s = _thousands(value.ravel()[flat])
    per_row = _RowTexts(inp)
    rule = np.where(pieces.staged[j], per_row.class_stage[r], per_row.cls[r])
    stated = np.where(pieces.has_product[j], per_row.stated[r], "")
    why = [
        f"{p1}{ratio_}{p2}{value_}{amounts}{lever}{rule_}{p4}{stated_}{p5}"
        for p1, ratio_, p2, value_, amounts, lever, rule_, p4, stated_, p5 in zip(
            pieces.before_ratio[j].tolist(),
            ratio_s.tolist(),
            pieces.before_value[j].tolist(),
            value_s,
            per_row.amounts[r].tolist(),
            pieces.lever[j].tolist(),
            rule.tolist(),
            pieces.before_stated[j].tolist(),
            stated.tolist(),
            pieces.after_stated[j].tolist(),
            strict=True,
        )
    ]
    counts = np.bincount(r, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    first = starts[has]
    next_action[has] = pieces.names[j[first]]
    why_array = np.array(why, dtype=object)
    reason[has] = why_array[first]
    priority_ij = priority.ravel()[flat]
    items: list[Any]
    if as_json:  # a reason of plain characters only is its own JSON string body (no escaping to do)
        plain = (pieces.plain[j] & per_row.plain[r]).tolist()
        items = [
            f'{head}{p}, "reason": "{w}"}}' if plain_ else f'{head}{p}, "reason": {_escape(w)}}}'
            for head, p, w, plain_ in zip(
                pieces.json_head[j].tolist(), _rounded_repr(priority_ij), why, plain, strict=True
            )
        ]
    else:
        items = [
            {"action": acts_name, "channel": channel, "priority": round(p, 2), "reason": w}
            for acts_name, channel, p, w in zip(
                pieces.names[j].tolist(), pieces.channels[j].tolist(), priority_ij.tolist(), why, strict=True
            )
        ]
    bounds = zip(first.tolist(), (first + counts[has]).tolist(), strict=True)
    if as_json:
        actions[has] = ["[" + ", ".join(items[s:e]) + "]" for s, e in bounds]
    else:
        listed = np.empty(int(has.sum()), dtype=object)
        listed[:] = [items[s:e] for s, e in bounds]
        actions[has] = listed
    return next_action, reason, actions, np.flatnonzero(~has).tolist()


def arbitrate(
    cols: Mapping[str, Any], n: int, policy: Policy | None = None, *, top_k: int | None = None, as_json: bool = False
) -> dict[str, Any]:
    """The ranked actions of every customer (`{column: array of n values}` in, columns out).

    Returns `service_class`, `next_action` (the first action), `next_action_reason` and
    `actions` (per row a list of `{action, channel, priority, reason}`, best first, at most K).
    A customer with no eligible, suitable action gets the policy's default action and a reason
    that says so. With `as_json`, each row's `actions` is that list's `json.dumps` string, written
    as it is ranked (a batch's 1,000 lists cost more as dicts then JSON than its ranking, #18).
    """
    policy = policy or default_policy()
    k = top_k or policy.top_k
    inp = customer_inputs(cols, n)
    eligible, priority, prop, value = _matrices(policy, cols, n, inp)
    plan = _plan(policy)
    ok = eligible & suitable_mask(plan.level, allowed_level(inp["stated"]), inp["hidden"])
    by_priority = np.where(ok, priority, -np.inf)
    order = np.argsort(-by_priority, axis=1, kind="stable")[:, :k]
    lacks_aggressive = cols.get(PROPENSITY_COLUMNS["revealed_aggressive"]) is None
    templates = plan.templates.get(lacks_aggressive)
    if templates is None:  # once per policy and case: a single customer's request would pay it each time
        templates = plan.templates.setdefault(lacks_aggressive, _reason_templates(policy, cols))
    # A few customers: row by row on Python floats; a batch: column by column (the same strings).
    ranked_items = _ranked_rows if n <= SMALL_BATCH else _ranked_columns
    ranked = ranked_items(policy, templates, _Scores(ok, order, priority, prop, value), inp, as_json)
    _default_rows(policy, eligible, inp, ranked, as_json)
    next_action, reason, actions, _ = ranked
    return {
        SERVICE_CLASS_COLUMN: inp["class"],
        NEXT_ACTION_COLUMN: next_action,
        NEXT_ACTION_REASON_COLUMN: reason,
        ACTIONS_COLUMN: actions,
    }


def policy_inputs(policy: Policy | None = None) -> set[str]:
    """The feature / score columns arbitration may read (scoring keeps them from the feature table)."""
    policy = policy or default_policy()
    names = {
        SERVICE_CLASS_COLUMN,
        STATED_RISK_COLUMN,
        LIFECYCLE_COLUMN,
        AGE_COLUMN,
        "occupation",
        AUM_COLUMN,
        AUM_CHANGE_COLUMN,
    }
    names |= set(PROPENSITY_COLUMNS.values()) | {HIDDEN_AGGRESSIVE_COLUMN}
    names |= {c.column for a in policy.actions for c in a.when}
    return names


def expected_value(actions: Any) -> np.ndarray:
    """The policy's expected value of serving each customer: the sum of their ranked actions'
    priorities (`actions` rows as lists of dicts, or as the JSON strings scoring writes)."""
    import json

    rows = (json.loads(r) if isinstance(r, str) else (list(r) if r is not None else []) for r in actions)
    return np.array([sum(float(a["priority"]) for a in row) for row in rows], dtype=np.float64)
