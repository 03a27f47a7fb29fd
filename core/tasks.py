"""The task contract: one declaration per built-in prediction task, read by training, scoring,
serving, the inference log, monitoring and the demo. Adding a task = one `Task` here plus its
spec (`training/tasks/<name>.yaml`).

A task's scores are named once, here:
- a binary task without named classes (churn): one column `<prefix>` (P(positive)), plus the
  boolean flag column `<output>`;
- a task with named classes (tier, risk): `<prefix>_<class>` per class, plus the label column
  `<output>` (the most probable class).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from core.errors import InputError

TaskKind = Literal["binary", "multiclass", "regression"]

# The questionnaire's three risk classes, lowest first (DESIGN §3 `customers.stated_risk`).
RISK_CLASSES: tuple[str, ...] = ("conservative", "balanced", "aggressive")
# Asset tiers, lowest first; thresholds on bank AUM are `features.config.FeatureConfig` fields.
TIER_CLASSES: tuple[str, ...] = ("mass", "affluent", "hnw")
# The churn label is defined only for customers holding at least this much AUM at the as-of date.
CHURN_MIN_AUM = 10_000.0


RISK_RANK: Mapping[str, int] = MappingProxyType({c: i for i, c in enumerate(RISK_CLASSES)})
"""Each risk class's rank, lowest first (conservative 0 ... aggressive 2): the order risk gaps and
risk moves compare. Read-only."""


@dataclass(frozen=True)
class Eligibility:
    """Who a task's label is defined for, as a rule on the features at T (a person can read it).

    `column >= minimum` (a missing value is not eligible); no column = everyone."""

    column: str | None = None
    minimum: float | None = None

    def mask(self, frame: Any) -> Any:
        """Boolean array: which rows of `frame` (a DataFrame or a mapping of columns) are eligible."""
        import numpy as np

        if self.column is None:
            n = len(next(iter(frame.values()))) if isinstance(frame, Mapping) else len(frame)
            return np.ones(n, dtype=bool)
        values = np.asarray(frame[self.column], dtype=np.float64)
        return np.nan_to_num(values, nan=-np.inf) >= (self.minimum if self.minimum is not None else -np.inf)

    def describe(self) -> str:
        return "every customer" if self.column is None else f"{self.column} >= {self.minimum:,.0f} at the as-of date"


@dataclass(frozen=True)
class Task:
    """What every stage needs to know about a built-in task."""

    name: str
    kind: TaskKind
    label: str  # label column in panel.parquet
    output: str  # scored label / flag column: tier, churn, risk_appetite
    score_prefix: str  # tier_proba, churn_proba, risk_proba
    headline_metric: str  # the metric promotion compares and people read first
    classes: tuple[str, ...] = ()  # named classes, lowest first; () = binary 0/1
    positive: str | None = None  # binary: the positive class
    eligibility: Eligibility = field(default_factory=Eligibility)
    description: str = ""

    def score_columns(self, classes: Sequence[str] | None = None) -> list[str]:
        """The probability columns scoring writes, for `classes` (default: the declared ones)."""
        classes = list(self.classes if classes is None else classes)
        if self.kind == "binary" and not classes:
            return [self.score_prefix]
        return [self.score_column(c) for c in classes]

    def score_column(self, cls: str | None = None) -> str:
        """`<prefix>_<class>`, or `<prefix>` for a binary task without named classes."""
        return self.score_prefix if cls is None else f"{self.score_prefix}_{cls}"

    def is_score_column(self, name: str) -> bool:
        return name == self.score_prefix or name.startswith(self.score_prefix + "_")

    def classes_of(self, columns: Iterable[str]) -> list[str]:
        """The classes whose score columns are among `columns`, in column order."""
        prefix = self.score_prefix + "_"
        return [c.removeprefix(prefix) for c in columns if c.startswith(prefix)]


TIER = Task(
    name="tier",
    kind="multiclass",
    label="tier_future",
    output="tier",
    score_prefix="tier_proba",
    headline_metric="log_loss",
    classes=TIER_CLASSES,
    description="Future value tier (mass / affluent / hnw) at the label horizon.",
)
CHURN = Task(
    name="churn",
    kind="binary",
    label="churn",
    output="churn",
    score_prefix="churn_proba",
    headline_metric="roc_auc",
    eligibility=Eligibility("aum", CHURN_MIN_AUM),
    description="Churn within the horizon among customers with a minimum AUM at the as-of date.",
)
RISK = Task(
    name="risk",
    kind="multiclass",
    label="revealed_risk",
    output="risk_appetite",
    score_prefix="risk_proba",
    # P(aggressive) ranks the stated-conservatives (hidden aggressive); the three classes come from one
    # ordinal appetite score (training/tasks/risk.yaml, docs/decisions/risk-model.md).
    headline_metric="roc_auc",
    classes=RISK_CLASSES,
    positive="aggressive",
    description="Risk appetite (conservative / balanced / aggressive) revealed by behaviour; customers free "
    "to act on it train it, every customer is scored.",
)

TASKS: dict[str, Task] = {t.name: t for t in (TIER, CHURN, RISK)}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)

# Derived score columns that are not class probabilities (written by scoring, read by serving).
UPGRADE_COLUMN = "upgrade_proba"
HIDDEN_AGGRESSIVE_COLUMN = "hidden_aggressive"
# The stated value that marks a customer whose questionnaire blocks aggressive products, and the
# revealed class that makes such a customer "hidden aggressive" (DESIGN §6).
STATED_CONSERVATIVE = "conservative"
AGGRESSIVE = "aggressive"

# The four classification dimensions and the derived columns every scored row carries (batch, HTTP,
# inference log). Tier and risk are model outputs (`TIER.output`, `RISK.output`); the other two are
# read from the features at T.
STATED_RISK_COLUMN = "stated_risk"  # the questionnaire's class at T (a feature-table column)
RISK_GAP_COLUMN = "risk_gap"  # revealed class rank minus stated class rank: -2..+2 (null if either unknown)
LIFECYCLE_COLUMN = "lifecycle_stage"  # young_professional / family_growth / retirement ... (features at T)
DEPTH_COLUMN = "relationship_depth"  # basic / multi_product / ecosystem (features at T)
SEGMENT_COLUMN = "segment"  # tier/risk/lifecycle/depth
BUSINESS_SEGMENT_COLUMN = "business_segment"  # the bank's own coarser class (training.segments)
CHURN_DRIVER_COLUMN = "churn_driver"  # why a likely churner leaves, from the churn model's contributions
CHURN_DRIVERS: tuple[str, ...] = ("rate_gap", "service_incidents", "disengagement", "life_event", "other")
# Churners whose cause the simulator records in truth (`truth.churn_cause`), for `churn_driver_accuracy`.
CHURN_CAUSE_COLUMN = "churn_cause"


def task(name: str) -> Task:
    """The contract of a built-in task; an unknown name is an `InputError` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}: choose one of {', '.join(TASK_NAMES)}") from None


def check_tasks(names: Iterable[str], what: str = "tasks") -> list[str]:
    names = list(names)
    bad = [n for n in names if n not in TASKS]
    if bad:
        raise InputError(f"{what}: unknown task(s) {bad}; choose from {', '.join(TASK_NAMES)}")
    return names


def is_score_column(name: str) -> bool:
    """A model probability column of any task (`churn_proba`, `tier_proba_hnw`, `upgrade_proba` ...)."""
    return name == UPGRADE_COLUMN or any(t.is_score_column(name) for t in TASKS.values())


def version_column(task_name: str) -> str:
    """The column holding the model version that scored a row (inference log, batch scores)."""
    return f"version_{task_name}"


def reasons_column(task_name: str) -> str:
    return f"reasons_{task_name}"


# --- Service policy (issue #13): columns the policy and arbitration read and write ----------------
# Inputs (features / scores) the arbitration reads, with fallbacks when a book lacks them.
STATED_RISK_COLUMN = "stated_risk"
LIFECYCLE_COLUMN = "lifecycle_stage"
AGE_COLUMN = "age"
AUM_COLUMN = "aum"
AUM_CHANGE_COLUMN = "aum_change_3m"
# Outputs: the class the policy served, the first action and its reason, the ranked list.
SERVICE_CLASS_COLUMN = "service_class"
NEXT_ACTION_COLUMN = "next_action"
NEXT_ACTION_REASON_COLUMN = "next_action_reason"
ACTIONS_COLUMN = "actions"
