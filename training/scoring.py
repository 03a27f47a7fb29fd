"""The one scoring function for batch (`clientlens score`) and HTTP serving: `score_frame`.

Per customer: `tier` + `tier_proba_<class>` + `upgrade_proba`, `churn_proba` + `churn`,
`risk_appetite` + `risk_proba_<class>`, `hidden_aggressive`, `segment` and `next_action`
from a configurable `Playbook`. Next actions are conversations for people (an advisor, a
private banker, a suitability re-assessment), never an automatic product push.

Fast for single rows: the frame is turned into column arrays once, each model runs
`booster.predict` on a numpy matrix, and the output frame is built once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InputError
from core.tasks import ACTIONS_COLUMN
from training.policy import Policy, arbitrate, policy_inputs

TASKS = ("tier", "churn", "risk")
TIER_ORDER = ("mass", "affluent", "hnw")


class Rule(BaseModel):
    """A playbook rule: every condition given must hold; the first matching rule wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str
    tiers: list[str] | None = Field(default=None, description="Current asset tier in this list.")
    min_churn_proba: float | None = None
    hidden_aggressive: bool | None = None
    min_upgrade_proba: float | None = None
    risk_appetite: list[str] | None = None


def _default_rules() -> list[Rule]:
    return [
        Rule(action="private_banker_retention_call", tiers=["hnw"], min_churn_proba=0.3),
        Rule(action="suitability_reassessment", hidden_aggressive=True),
        Rule(action="retention_outreach", min_churn_proba=0.5),
        Rule(action="advisor_review", tiers=["affluent"], min_upgrade_proba=0.3),
        Rule(action="digital_engagement", tiers=["mass"], min_upgrade_proba=0.3),
    ]


class Playbook(BaseModel):
    """Ordered rules from predictions to a suggested next action (for a person to take)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=_default_rules)
    default_action: str = "service_as_usual"


DEFAULT_PLAYBOOK = Playbook()


def _columns(frame: pd.DataFrame, names: set[str]) -> dict[str, np.ndarray]:
    """Column arrays; for a few rows one block conversion beats ~150 `frame[c]` look-ups (single-row serving)."""
    if len(frame) <= 32:
        values = frame.to_numpy(dtype=object)
        return {c: values[:, i] for i, c in enumerate(frame.columns) if c in names}
    return {c: frame[c].to_numpy() for c in names if c in frame.columns}


def _as_str(values: np.ndarray | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    return np.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], dtype=object)


def score_frame(
    features_df: pd.DataFrame,
    models: Mapping[str, Any],
    playbook: Playbook | None = None,
    *,
    explain: int = 0,
    policy: Policy | None = None,
) -> pd.DataFrame:
    """Score each row with the given models (`{"tier": TabularModel, "churn": ..., "risk": ...}`, any subset).

    Returns one row per input row (same index) with `customer_id` (if present) and the
    columns of the tasks given, then `segment` and `next_action`. With `explain=k`, adds
    `reasons_<task>`: the top-k `{feature, value, contribution}` per row.

    A thin frame wrapper around `score_columns` (which the HTTP service calls on the request's
    column arrays directly): both paths run exactly the same code on the same values.
    """
    _check_tasks(models)
    needed = {"customer_id", "tier", "stated_risk", "relationship_depth", *policy_inputs(policy)}
    for m in models.values():
        needed.update(m.features)
    cols = _columns(features_df, needed)
    out: dict[str, Any] = {}
    if "customer_id" in features_df.columns:
        out["customer_id"] = features_df["customer_id"].to_numpy()  # keep its dtype (cols may be an object block)
    out.update(score_columns(cols, len(features_df), models, playbook, explain=explain, policy=policy))
    return pd.DataFrame(out, index=features_df.index)


def _shared_matrix(model: Any, cols: Mapping[str, Any], built: list[tuple[Any, np.ndarray]]) -> np.ndarray:
    """`model.matrix(cols)`, reused from a model with the same features and category maps (the
    matrix is then identical; nothing writes to it)."""
    for other, X in built:
        if other.features == model.features and other.categories == model.categories:
            return X
    X = model.matrix(cols)
    built.append((model, X))
    return X


def _check_tasks(models: Mapping[str, Any]) -> None:
    unknown = set(models) - set(TASKS)
    if unknown:
        raise InputError(f"score_frame: unknown task(s) {sorted(unknown)}; expected {TASKS}")


def score_columns(
    cols: Mapping[str, Any],
    n: int,
    models: Mapping[str, Any],
    playbook: Playbook | None = None,
    *,
    explain: int = 0,
    policy: Policy | None = None,
) -> dict[str, Any]:
    """The scoring core of `score_frame` on column arrays (`{column: array of n values}`).

    Returns `{output column: array}` in `score_frame`'s column order (without `customer_id`);
    `reasons_<task>` are lists. No DataFrame is built or read, which keeps single-customer
    HTTP requests cheap.
    """
    playbook = playbook or DEFAULT_PLAYBOOK
    _check_tasks(models)
    out: dict[str, Any] = {}
    current_tier = _as_str(cols.get("tier"), n)
    stated = _as_str(cols.get("stated_risk"), n)

    upgrade = np.full(n, np.nan)
    churn_p = np.full(n, np.nan)
    hidden = np.zeros(n, dtype=bool)
    risk_label = np.full(n, None, dtype=object)
    reasons: dict[str, list] = {}
    built: list[tuple[Any, np.ndarray]] = []  # models reading the same features share one matrix

    for task in TASKS:
        model = models.get(task)
        if model is None:
            continue
        X = _shared_matrix(model, cols, built)
        proba = model.proba_from_matrix(X)
        if explain:
            reasons[task] = model.reasons(None, explain, matrix=X)
        if task == "tier":
            labels = np.asarray(model.classes, dtype=object)[proba.argmax(axis=1)]
            out["tier"] = labels
            for i, c in enumerate(model.classes):
                out[f"tier_proba_{c}"] = proba[:, i]
            rank = {c: i for i, c in enumerate(model.classes)}
            cur = np.array([rank.get(t, -1) for t in current_tier], dtype=np.int64)
            higher = np.arange(len(model.classes))[None, :] > cur[:, None]
            upgrade = np.where(cur >= 0, (proba * higher).sum(axis=1), np.nan)
            out["upgrade_proba"] = upgrade
        elif task == "churn":
            churn_p = proba[:, 1]
            out["churn_proba"] = churn_p
            out["churn"] = churn_p >= model.thresholds.get("positive", 0.5)
        else:
            labels = np.asarray(model.classes, dtype=object)[proba.argmax(axis=1)]
            risk_label = labels
            out["risk_appetite"] = labels
            for i, c in enumerate(model.classes):
                out[f"risk_proba_{c}"] = proba[:, i]
            pos = model.metadata.get("positive_class") or "aggressive"
            if pos in model.classes:
                p_aggr = proba[:, model.classes.index(pos)]
                hidden = (stated == "conservative") & (p_aggr >= model.thresholds.get("hidden_aggressive", 0.5))
            out["hidden_aggressive"] = hidden

    asset_tier = np.where(current_tier == None, out.get("tier", current_tier), current_tier)  # noqa: E711
    depth = _as_str(cols.get("relationship_depth"), n)
    risk_seg = np.where(risk_label == None, stated, risk_label)  # noqa: E711
    out["segment"] = np.array(
        [
            f"{a or 'unknown'}/{r or 'unknown'}/{d or 'unknown'}"
            for a, r, d in zip(asset_tier, risk_seg, depth, strict=True)
        ],
        dtype=object,
    )
    # Ranked actions from the service policy (training/policy.py): class = the current asset tier.
    arb_cols = {**cols, **out, "tier": asset_tier}
    ranked = arbitrate(arb_cols, n, policy)
    # `actions` leaves scoring as one JSON list per row: a plain string column in Parquet, CSV,
    # Arrow responses and the inference log alike (`json.loads` gives the list of dicts back).
    ranked[ACTIONS_COLUMN] = np.array([json.dumps(a) for a in ranked[ACTIONS_COLUMN]], dtype=object)
    out.update(ranked)
    for task, rs in reasons.items():
        out[f"reasons_{task}"] = rs
    return out


def next_actions(
    playbook: Playbook,
    tier: np.ndarray,
    churn_proba: np.ndarray,
    hidden_aggressive: np.ndarray,
    upgrade_proba: np.ndarray,
    risk_appetite: np.ndarray,
) -> np.ndarray:
    """Apply the playbook's rules in order (vectorised); unmatched rows get the default action."""
    n = len(tier)
    action = np.full(n, None, dtype=object)
    todo = np.ones(n, dtype=bool)
    for rule in playbook.rules:
        m = todo.copy()
        if rule.tiers is not None:
            m &= np.isin(tier.astype(str), rule.tiers)
        if rule.min_churn_proba is not None:
            m &= np.nan_to_num(churn_proba, nan=-1.0) >= rule.min_churn_proba
        if rule.hidden_aggressive is not None:
            m &= hidden_aggressive == rule.hidden_aggressive
        if rule.min_upgrade_proba is not None:
            m &= np.nan_to_num(upgrade_proba, nan=-1.0) >= rule.min_upgrade_proba
        if rule.risk_appetite is not None:
            m &= np.isin(risk_appetite.astype(str), rule.risk_appetite)
        action[m] = rule.action
        todo &= ~m
        if not todo.any():
            break
    action[todo] = playbook.default_action
    return action


def load_models(tasks: list[str], alias: str = "champion") -> tuple[dict[str, Any], dict[str, str]]:
    """Load each task's model by alias: `({task: TabularModel}, {task: version})`."""
    from training.registry import load_model

    models, versions = {}, {}
    for task in tasks:
        core, info = load_model(task, alias)
        models[task], versions[task] = core, info["version"]
    return models, versions


def score_file(
    features: Path, out: Path, *, tasks: list[str], alias: str = "champion", playbook: Playbook | None = None
) -> dict[str, Any]:
    """Batch-score a feature table with the `alias` models; writes Parquet (or CSV by extension)."""
    features, out = Path(features), Path(out)
    if not features.is_file():
        raise InputError(f"--features {features}: file not found")
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise InputError(f"--tasks: unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    frame = pd.read_parquet(features) if features.suffix != ".csv" else pd.read_csv(features)
    models, versions = load_models(tasks, alias)
    scores = score_frame(frame, models, playbook)
    for task, v in versions.items():
        scores[f"version_{task}"] = v
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".csv":
        scores.to_csv(tmp, index=False)
    else:
        scores.to_parquet(tmp, index=False)
    tmp.replace(out)
    counts = scores["next_action"].value_counts().to_dict()
    return {
        "rows": len(scores),
        "out": str(out),
        "versions": versions,
        "next_action": counts,
        "hidden_aggressive": int(scores["hidden_aggressive"].sum()) if "hidden_aggressive" in scores else None,
    }
