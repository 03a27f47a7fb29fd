"""The one scoring function for batch (`clientlens score`) and HTTP serving: `score_frame`.

Per customer: `tier` + `tier_proba_<class>` + `upgrade_proba`, `churn_proba` + `churn` +
`churn_driver`, `risk_appetite` (conservative / balanced / aggressive) + `risk_proba_<class>`,
`hidden_aggressive`, `stated_risk`, `risk_gap`, `lifecycle_stage`, `relationship_depth`, the
four-dimensional `segment`, the bank's `business_segment` (training.segments), and the service
policy's ranked `actions` with `next_action` first (training.policy: eligibility, suitability,
priority; a hidden-aggressive customer gets a re-assessment, never a product push).

Fast for single rows: the frame is turned into column arrays once, each model runs
`booster.predict` on a numpy matrix, and the output frame is built once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import tasks as T
from core.errors import InputError
from core.io import read_table, write_table
from features.requests import check_feature_frame
from training.policy import Policy, _strings, arbitrate, policy_inputs
from training.segments import DEFAULT_DRIVERS, DEFAULT_SCHEME, DriverConfig, SegmentScheme, risk_gap, segment_labels
from training.segments import churn_drivers as _churn_drivers

TASKS = T.TASK_NAMES


def _columns(frame: pd.DataFrame, names: set[str]) -> dict[str, np.ndarray]:
    """Column arrays; for a few rows one block conversion beats ~150 `frame[c]` look-ups (single-row serving)."""
    if len(frame) <= 32:
        values = frame.to_numpy(dtype=object)
        return {c: values[:, i] for i, c in enumerate(frame.columns) if c in names}
    return {c: frame[c].to_numpy() for c in names if c in frame.columns}


_as_str = _strings  # each value as `str`, None for a missing one (the policy's own rule)


def score_frame(
    features_df: pd.DataFrame,
    models: Mapping[str, Any],
    *,
    explain: int = 0,
    scheme: SegmentScheme | None = None,
    drivers: DriverConfig | None = None,
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
    cols = _columns(features_df, needed_columns(models, policy))
    out: dict[str, Any] = {}
    if "customer_id" in features_df.columns:
        out["customer_id"] = features_df["customer_id"].to_numpy()  # keep its dtype (cols may be an object block)
    out.update(
        score_columns(cols, len(features_df), models, explain=explain, scheme=scheme, drivers=drivers, policy=policy)
    )
    return pd.DataFrame(out, index=features_df.index)


# Feature-table columns scoring reads besides the models' features (the four dimensions at T).
CONTEXT_COLUMNS = ("customer_id", T.TIER.output, T.STATED_RISK_COLUMN, T.DEPTH_COLUMN, T.LIFECYCLE_COLUMN)


def needed_columns(models: Mapping[str, Any], policy: Policy | None = None) -> set[str]:
    needed = {*CONTEXT_COLUMNS, *policy_inputs(policy)}
    for m in models.values():
        needed.update(m.features)
    return needed


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
    *,
    explain: int = 0,
    scheme: SegmentScheme | None = None,
    drivers: DriverConfig | None = None,
    policy: Policy | None = None,
) -> dict[str, Any]:
    """The scoring core of `score_frame` on column arrays (`{column: array of n values}`).

    Returns `{output column: array}` in `score_frame`'s column order (without `customer_id`);
    `reasons_<task>` are lists. No DataFrame is built or read, which keeps single-customer
    HTTP requests cheap.
    """
    scheme = scheme or DEFAULT_SCHEME
    _check_tasks(models)
    out: dict[str, Any] = {}
    current_tier = _as_str(cols.get(T.TIER.output), n)
    stated = _as_str(cols.get(T.STATED_RISK_COLUMN), n)

    upgrade = np.full(n, np.nan)
    churn_p = np.full(n, np.nan)
    hidden = np.zeros(n, dtype=bool)
    risk_label = np.full(n, None, dtype=object)
    reasons: dict[str, list] = {}
    built: list[tuple[Any, np.ndarray]] = []  # models reading the same features share one matrix

    for name in TASKS:
        model = models.get(name)
        if model is None:
            continue
        task = T.task(name)
        X = _shared_matrix(model, cols, built)
        proba = model.proba_from_matrix(X)
        if explain:
            reasons[name] = model.reasons(None, explain, matrix=X)
        if task is T.CHURN:
            churn_p = proba[:, 1]
            flag = churn_p >= model.thresholds.get("positive", 0.5)
            out[task.score_column()] = churn_p
            out[task.output] = flag
            # Why a likely churner leaves (None for the others): the model's contributions by family.
            driver = np.full(n, None, dtype=object)
            if flag.any():
                driver[flag] = _churn_drivers(model, X[flag], drivers or DEFAULT_DRIVERS)
            out[T.CHURN_DRIVER_COLUMN] = driver
            continue
        labels = np.asarray(model.classes, dtype=object)[proba.argmax(axis=1)]
        out[task.output] = labels
        for i, col in enumerate(task.score_columns(model.classes)):
            out[col] = proba[:, i]
        if task is T.TIER:
            rank = {c: i for i, c in enumerate(model.classes)}
            cur = np.array([rank.get(t, -1) for t in current_tier], dtype=np.int64)
            higher = np.arange(len(model.classes))[None, :] > cur[:, None]
            upgrade = np.where(cur >= 0, (proba * higher).sum(axis=1), np.nan)
            out[T.UPGRADE_COLUMN] = upgrade
        else:  # risk
            risk_label = labels
            pos = model.metadata.get("positive_class") or T.AGGRESSIVE
            if pos in model.classes:
                p_aggr = proba[:, model.classes.index(pos)]
                hidden = (stated == T.STATED_CONSERVATIVE) & (p_aggr >= model.thresholds.get("hidden_aggressive", 0.5))
            out[T.HIDDEN_AGGRESSIVE_COLUMN] = hidden
            out[T.RISK_GAP_COLUMN] = risk_gap(labels, stated)

    asset_tier = np.where(current_tier == None, out.get(T.TIER.output, current_tier), current_tier)  # noqa: E711
    depth = _as_str(cols.get(T.DEPTH_COLUMN), n)
    lifecycle = _as_str(cols.get(T.LIFECYCLE_COLUMN), n)
    risk_seg = np.where(risk_label == None, stated, risk_label)  # noqa: E711
    out[T.STATED_RISK_COLUMN] = stated
    out[T.LIFECYCLE_COLUMN] = lifecycle
    out[T.DEPTH_COLUMN] = depth
    out[T.SEGMENT_COLUMN], out[T.BUSINESS_SEGMENT_COLUMN] = _segments(scheme, asset_tier, risk_seg, lifecycle, depth)
    # Ranked actions from the service policy (training/policy.py): class = the current asset tier.
    arb_cols = {**cols, **out, T.TIER.output: asset_tier}
    # `actions` leaves scoring as one JSON list per row: a plain string column in Parquet, CSV,
    # Arrow responses and the inference log alike (`json.loads` gives the list of dicts back).
    ranked = arbitrate(arb_cols, n, policy, as_json=True)
    out.update(ranked)
    for name, rs in reasons.items():
        out[T.reasons_column(name)] = rs
    return out


# Per scheme: each combination of the four classes seen -> its position in the segment and business-segment
# arrays. An entry is replaced, never changed in place: another thread may be reading the old one.
_SEGMENTS: dict[int, tuple[SegmentScheme, dict[tuple, int], np.ndarray, np.ndarray]] = {}


def _segments(scheme: SegmentScheme, *dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`segment_labels(*dims)` and `scheme.assign(*dims)`, remembered per combination of the four classes: a
    row's segment and business segment depend on its own four classes only, and a book has a few hundred
    combinations at most, while `assign` costs ~0.3 ms even for one row (a single customer's request, #18)
    and both are a Python loop over the rows (one dictionary look-up per row here)."""
    hit = _SEGMENTS.get(id(scheme))
    if hit is None or hit[0] is not scheme:
        if len(_SEGMENTS) > 16:
            _SEGMENTS.clear()
        hit = _SEGMENTS[id(scheme)] = (scheme, {}, np.empty(0, dtype=object), np.empty(0, dtype=object))
    keys = list(zip(*dims, strict=True))
    known = hit[1]
    try:
        at = [known[k] for k in keys]
    except KeyError:
        new = list(dict.fromkeys(k for k in keys if k not in known))
        labels, business = hit[2], hit[3]
        if len(known) + len(new) > 10_000:  # not class combinations (free-text classes?): do not grow
            known, labels, business = {}, labels[:0], business[:0]
            new = list(dict.fromkeys(keys))
        columns = [np.array(c, dtype=object) for c in zip(*new, strict=True)]
        known = {**known, **{k: len(known) + i for i, k in enumerate(new)}}
        labels = np.concatenate([labels, segment_labels(*columns)])
        business = np.concatenate([business, scheme.assign(*columns)])
        hit = _SEGMENTS[id(scheme)] = (scheme, known, labels, business)
        at = [known[k] for k in keys]
    index = np.array(at, dtype=np.intp)
    return hit[2][index], hit[3][index]


def load_models(tasks: list[str], alias: str = "champion") -> tuple[dict[str, Any], dict[str, str]]:
    """Load each task's model by alias: `({task: TabularModel}, {task: version})`."""
    from training.registry import load_model

    models, versions = {}, {}
    for task in tasks:
        core, info = load_model(task, alias)
        models[task], versions[task] = core, info["version"]
    return models, versions


def score_file(
    features: Path,
    out: Path,
    *,
    tasks: list[str],
    alias: str = "champion",
    policy: Policy | None = None,
    scheme: SegmentScheme | None = None,
) -> dict[str, Any]:
    """Batch-score a feature table with the `alias` models; writes Parquet (or CSV by extension)."""
    features, out = Path(features), Path(out)
    if not features.is_file():
        raise InputError(f"--features {features}: file not found")
    tasks = T.check_tasks(tasks, "--tasks")
    frame = read_table(features, what="--features")
    check_feature_frame(frame, what=f"--features {features}")  # the API's column rules (exit 2)
    models, versions = load_models(tasks, alias)
    scores = score_frame(frame, models, scheme=scheme, policy=policy)
    for task, v in versions.items():
        scores[T.version_column(task)] = v
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(scores, out)
    counts = scores["next_action"].value_counts().to_dict()
    return {
        "rows": len(scores),
        "out": str(out),
        "versions": versions,
        "next_action": counts,
        "hidden_aggressive": int(scores[T.HIDDEN_AGGRESSIVE_COLUMN].sum())
        if T.HIDDEN_AGGRESSIVE_COLUMN in scores
        else None,
        "classes": class_counts(scores),
    }


def class_counts(scores: pd.DataFrame) -> dict[str, dict[str, int]]:
    """How many customers fall in each class of the four dimensions (and the business segment)."""
    dims = [T.TIER.output, T.RISK.output, T.LIFECYCLE_COLUMN, T.DEPTH_COLUMN, T.BUSINESS_SEGMENT_COLUMN]
    return {
        d: {str(k): int(v) for k, v in scores[d].fillna("unknown").value_counts().sort_index().items()}
        for d in dims
        if d in scores.columns
    }


def questionnaire_vs_revealed(scores: pd.DataFrame) -> pd.DataFrame:
    """Stated (questionnaire, rows) against revealed (columns) risk class counts, in class order: the
    table a bank reads to see whom the questionnaire under- or over-rates (above the diagonal: behaviour
    shows more appetite than stated)."""
    order = list(T.RISK_CLASSES)
    table = pd.crosstab(
        scores[T.STATED_RISK_COLUMN].fillna("unknown"), scores[T.RISK.output].fillna("unknown")
    ).reindex(index=[*order, "unknown"], columns=order, fill_value=0)
    table = table.loc[table.sum(axis=1) > 0]
    table.index.name, table.columns.name = "stated", "revealed"
    return table


def classification_summary(scores: pd.DataFrame) -> str:
    """What the demo prints after batch scoring: class counts per dimension, then the questionnaire
    (rows) against the revealed risk class (columns)."""
    lines = []
    for dim, counts in class_counts(scores).items():
        lines.append(f"{dim}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if T.STATED_RISK_COLUMN in scores.columns and T.RISK.output in scores.columns:
        lines.append("questionnaire (rows) vs revealed (columns):")
        lines.extend(questionnaire_vs_revealed(scores).to_string().splitlines())
    return "\n".join(lines)
