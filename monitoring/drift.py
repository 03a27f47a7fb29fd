"""Drift reports: feature drift, prediction drift (PSI of scores), performance, one status.

Two entry points, used by `clientlens drift` and `clientlens demo`:

- `run_file_drift(reference_df, current_df, out_dir, config)`: any two frames;
- `run_task_drift(task, since=None, out_dir=None)`: the inference log against the champion's
  reference sample (`reference.parquet` of its MLflow run).

What a task is (score columns, outputs, who its label is defined for) comes from `core.tasks`.
Market features (one value per date for every customer) are context, not customer drift: a
comparison of two dates always finds them "drifted", which says nothing about the customers;
the report shows their values at each date instead (`DriftResult.context`). Performance before
labels (CBPE) is estimated on the task's eligible population, the rows its label is defined for.

Both go through `evaluate()` (pure: frames in, `DriftResult` out) and then write the report:
Evidently's HTML with a clientlens summary on top, and a JSON file for machines, both
written atomically; add the Evidently snapshot to the workspace; in task mode attach the
files to the champion's MLflow run.

Verdicts come from `monitoring.stats` (Evidently's default tests, vectorised, on every row);
Evidently renders the report on at most `config.evidently_max_columns` columns (the scores,
then the features nearest to or past their threshold; every column is in the clientlens summary
on top) and `config.evidently_max_rows` rows per side, and the result records where Evidently's
own verdicts on what it saw differ from ours. Evidently's cost is per column (~23 s for the
demo's 153 columns at 3k rows, most of it plotly figures), so the cap is what keeps a drift run
in seconds; it changes what the report shows in detail, never a verdict. Within the report, the
per-column widgets the preset never shows are not built (`monitoring.evidently_widgets`).

Error of the sample Evidently sees (n rows per side, default 10k): each empirical CDF is
within eps = sqrt(ln(2/a) / 2n) of the full window's with probability 1 - a (DKW), i.e.
0.016 at n = 10k, a = 1% — so its histograms and any K-S distance are that close. The normed
Wasserstein distance has no distribution-free bound (heavy tails); the result reports the
largest observed difference between Evidently's statistic on the sample and ours on every
row (`evidently.max_statistic_difference`), and the columns whose verdicts differ. The
status never depends on the sample.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ClientlensError, InputError
from core.io import write_text_atomic
from core.settings import Settings
from core.tasks import (
    ACTIONS_COLUMN,
    HIDDEN_AGGRESSIVE_COLUMN,
    NEXT_ACTION_COLUMN,
    NEXT_ACTION_REASON_COLUMN,
    SERVICE_CLASS_COLUMN,
    TASKS,
    Task,
    is_score_column,
    reasons_column,
    version_column,
)
from core.tasks import task as task_contract
from monitoring.config import DriftConfig, DriftThresholds
from monitoring.evidently_widgets import value_drift_widgets_skipped
from monitoring.performance import class_score_columns, eligible, positive_score_column
from monitoring.psi import psi_table
from monitoring.stats import P_VALUE_METHODS, ColumnDrift, is_drift, table_drift

logger = logging.getLogger(__name__)

STATUSES = ("ok", "warn", "drift")
# Keys, timestamps, versions and model outputs: never monitored as features.
NON_FEATURE_COLUMNS = {"customer_id", "as_of", "ts", "request_id", "date", "index", "__index_level_0__"}
NON_FEATURE_PREFIXES = (version_column(""), reasons_column(""))
# Model outputs and labels of every task (contract), scoring's derived outputs, the service policy's
# outputs (issue #13), training's reference columns.
OUTPUT_COLUMNS = (
    {t.output for t in TASKS.values()}
    | {t.label for t in TASKS.values()}
    | {HIDDEN_AGGRESSIVE_COLUMN, "segment", NEXT_ACTION_COLUMN, NEXT_ACTION_REASON_COLUMN}
    | {ACTIONS_COLUMN, SERVICE_CLASS_COLUMN}
    | {"prediction", "target"}
    | {"reviewed_risk"}  # #12: the panel's latest suitability review known at T (fitting only, like a label)
)
# Registry family whose features are one value per date for every customer (reported as context).
CONTEXT_FAMILY = "market"
HTML_NAME = "drift_report.html"
JSON_NAME = "drift_report.json"


# --- columns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRoles:
    """Which columns are monitored, and how."""

    numerical: list[str]
    categorical: list[str]
    scores: list[str]
    ignored: list[str]
    source: str  # "registry", "dtypes" or "registry+dtypes"
    context: list[str] = field(default_factory=list)  # one value per date: reported, not drift-tested

    @property
    def features(self) -> list[str]:
        return self.numerical + self.categorical


def _registry_columns() -> tuple[list[str], list[str], list[str]] | None:
    try:
        from features.registry import categorical_features, features_of_family, numerical_features
    except ImportError:  # the feature registry is optional for two-file drift
        return None
    return list(numerical_features()), list(categorical_features()), list(features_of_family(CONTEXT_FAMILY))


def date_key(frame: pd.DataFrame) -> pd.Series | None:
    """The date each row describes: `as_of` when present, else the day of `ts`, else None (one date)."""
    if "as_of" in frame.columns:
        return pd.to_datetime(frame["as_of"]).dt.strftime("%Y-%m-%d")
    if "ts" in frame.columns:
        return pd.to_datetime(frame["ts"], utc=True).dt.strftime("%Y-%m-%d")
    return None


PROBE_ROWS = 2_000


def _constant_within_dates(frame: pd.DataFrame, columns: list[str]) -> set[str]:
    """Numerical columns holding one (non-null) value per date in `frame` (vectorised min == max).

    The first rows are checked first: a column with two values at one date among them varies at
    that date in the whole frame too, so only the columns that pass are checked on every row
    (on a 1M-row window nearly all columns are ruled out on 2,000 rows)."""
    if not columns or frame.empty:
        return set()
    if len(frame) > PROBE_ROWS:
        columns = sorted(_constant_within_dates(frame.iloc[:PROBE_ROWS], columns), key=columns.index)
        if not columns:
            return set()
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    key = date_key(frame)
    if key is None:
        lo, hi = values.min(), values.max()
    else:
        grouped = values.groupby(key.to_numpy())
        lo, hi = grouped.min(), grouped.max()
        same = (lo == hi) | (lo.isna() & hi.isna())
        return {c for c in columns if bool(same[c].all()) and bool(lo[c].notna().any())}
    return {c for c in columns if pd.notna(lo[c]) and lo[c] == hi[c]}


def resolve_columns(reference: pd.DataFrame, current: pd.DataFrame, *, use_registry: bool = True) -> ColumnRoles:
    """Monitored columns: the feature registry's types for registry features, else dtypes.

    Score columns (`*_proba`, `*_proba_<class>`) are prediction drift, not features. Keys
    (`customer_id`, `as_of`, `ts`, `request_id`), `version_*` and model outputs (`churn`,
    `segment`, `next_action`, ...) and datetimes are never monitored; any other common column
    outside the registry is typed by its dtype (numbers and bools numerical, the rest categorical).
    """
    if reference.empty or len(reference.columns) == 0:
        raise InputError("reference: no rows")
    if current.empty or len(current.columns) == 0:
        raise InputError("current: no rows")
    common = [c for c in reference.columns if c in set(current.columns)]
    if not common:
        raise InputError(
            "reference and current have no column in common "
            f"(reference: {', '.join(map(str, reference.columns[:8]))}; current: {', '.join(map(str, current.columns[:8]))})"
        )
    scores = [c for c in common if is_score_column(str(c)) and pd.api.types.is_numeric_dtype(reference[c])]
    rest = [c for c in common if c not in scores]
    registry = _registry_columns() if use_registry else None
    num_reg, cat_reg, ctx_reg = (set(r) for r in registry) if registry is not None else (set(), set(), set())
    numerical: list[str] = []
    categorical: list[str] = []
    from_registry = 0
    for c in rest:
        if c in num_reg or c in cat_reg:
            (numerical if c in num_reg else categorical).append(c)
            from_registry += 1
            continue
        if c in NON_FEATURE_COLUMNS or str(c).startswith(NON_FEATURE_PREFIXES) or c in OUTPUT_COLUMNS:
            continue
        dtype = reference[c].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numerical.append(c)
        elif pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
            continue
        else:
            categorical.append(c)
    typed_by_dtype = len(numerical) + len(categorical) - from_registry
    source = "registry" if typed_by_dtype == 0 else ("dtypes" if from_registry == 0 else "registry+dtypes")
    # Context: the registry's market features, and any numerical column with one value per date on
    # both sides (a value shared by every customer at a date cannot tell customers apart).
    candidates = [c for c in numerical if c not in ctx_reg]
    shared = _constant_within_dates(reference, candidates) & _constant_within_dates(current, candidates)
    context = [c for c in numerical + categorical if c in ctx_reg or c in shared]
    numerical = [c for c in numerical if c not in context]
    categorical = [c for c in categorical if c not in context]
    used = set(numerical) | set(categorical) | set(scores) | set(context)
    ignored = [c for c in common if c not in used]
    if not numerical and not categorical and not scores and not context:
        raise InputError(
            f"no monitorable column among the {len(common)} common columns ({', '.join(map(str, common[:8]))})"
        )
    return ColumnRoles(numerical, categorical, scores, ignored, source, context)


def _date_keys(frame: pd.DataFrame) -> np.ndarray:
    key = date_key(frame)
    return key.to_numpy() if key is not None else np.full(len(frame), "window", dtype=object)


def _values_by_date(frame: pd.DataFrame, column: str, keys: np.ndarray) -> tuple[dict[str, Any], bool]:
    """{date: value} (median of a number, most frequent category) and whether it varies within a date."""
    s = frame[column]
    numeric = pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)
    out: dict[str, Any] = {}
    varies = False
    for when, part in pd.Series(s.to_numpy(), index=keys).groupby(level=0, sort=True):
        values = part.dropna()
        if values.empty:
            out[str(when)] = None
            continue
        if numeric:
            v = values.astype(float)
            out[str(when)] = float(v.median())
            varies |= bool(v.min() != v.max())
        else:
            counts = values.astype(str).value_counts()
            out[str(when)] = str(counts.index[0])
            varies |= len(counts) > 1
    return out, varies


def context_report(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, Any]]:
    """Each context feature's value at every date of both windows, and the change between the last dates."""
    out: dict[str, dict[str, Any]] = {}
    if not columns:
        return out
    ref_keys, cur_keys = _date_keys(reference), _date_keys(current)  # once per frame, not per column
    for col in columns:
        ref, ref_varies = _values_by_date(reference, col, ref_keys)
        cur, cur_varies = _values_by_date(current, col, cur_keys)
        last_ref = next((v for v in reversed(ref.values()) if v is not None), None)
        last_cur = next((v for v in reversed(cur.values()) if v is not None), None)
        entry: dict[str, Any] = {
            "reference": ref,
            "current": cur,
            "reference_value": last_ref,
            "current_value": last_cur,
        }
        if isinstance(last_ref, float) and isinstance(last_cur, float):
            entry["change"] = last_cur - last_ref
        else:
            entry["change"] = None if last_ref == last_cur else f"{last_ref} -> {last_cur}"
        if ref_varies or cur_varies:
            entry["varies_within_date"] = True  # a market feature should not: worth a look upstream
        out[col] = entry
    return out


def prepare(frame: pd.DataFrame, roles: ColumnRoles, *, what: str) -> pd.DataFrame:
    """The monitored columns with one dtype per role: float for numerical (bools as 0/1), strings for categories."""
    out = {}
    for col in roles.numerical + roles.scores:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            out[col] = s.astype(np.float64)
        elif pd.api.types.is_numeric_dtype(s.dtype):
            out[col] = s.astype(np.float64, copy=False)
        else:
            coerced = pd.to_numeric(s, errors="coerce")
            bad = s[coerced.isna() & s.notna()]
            if len(bad):
                raise InputError(
                    f"{what}: column {col!r} should be numerical; non-numeric values e.g. {bad.head(3).tolist()}"
                )
            out[col] = coerced.astype(np.float64)
    for col in roles.categorical:
        s = frame[col]
        out[col] = s if s.dtype == object else s.astype(object).where(s.notna(), None)
    return pd.DataFrame(out, index=frame.index)


# --- the result ---------------------------------------------------------------------------


@dataclass
class DriftResult:
    """Everything a drift run found, and where it wrote it."""

    status: str
    reasons: list[str]
    share_drifted: float
    drifted: list[str]
    psi: dict[str, float]
    columns: list[ColumnDrift]
    roles: ColumnRoles
    rows_reference: int
    rows_current: int
    thresholds: DriftThresholds
    task: str | None = None
    performance: dict[str, Any] | None = None
    estimated_performance: dict[str, Any] | None = None
    context: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidently: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    json_path: Path | None = None
    workspace: dict[str, str] | None = None
    mlflow: dict[str, str] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def summary(self) -> dict[str, Any]:
        """The `--json` summary (DESIGN §11): status, share_drifted, drifted, psi, report, json."""
        out: dict[str, Any] = {
            "status": self.status,
            "share_drifted": round(self.share_drifted, 6),
            "drifted": self.drifted,
            "psi": {k: _finite(v) for k, v in self.psi.items()},
            "report": str(self.report) if self.report else None,
            "json": str(self.json_path) if self.json_path else None,
            "reasons": self.reasons,
            "features": len(self.roles.features),
            "context": {
                k: {"reference": v["reference_value"], "current": v["current_value"]} for k, v in self.context.items()
            },
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
        }
        if self.task:
            out["task"] = self.task
        if self.performance:
            out["performance"] = _clean_json(self.performance)
        if self.estimated_performance:
            out["estimated_performance"] = _clean_json(self.estimated_performance)
        if self.workspace:
            out["workspace"] = self.workspace
        if self.mlflow:
            out["mlflow"] = self.mlflow
        return out

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report body (without Evidently's own metrics)."""
        return _clean_json(
            {
                "clientlens": {**self.summary(), "created": self.created, "column_types_from": self.roles.source},
                "thresholds": self.thresholds.model_dump(),
                "columns": [c.as_dict() for c in self.columns],
                "scores": self.roles.scores,
                "ignored_columns": self.roles.ignored,
                "evidently_comparison": self.evidently,
                "timings_s": self.timings,
            }
        )


def _finite(x):
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x


def _clean_json(obj):
    if isinstance(obj, dict):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return _finite(obj)


# --- pure evaluation ----------------------------------------------------------------------


def decide_status(share_drifted: float, psi: dict[str, float], thresholds: DriftThresholds) -> tuple[str, list[str]]:
    """ok / warn / drift from the drifted-feature share and the score PSIs, with the reasons."""
    level, reasons = 0, []
    if share_drifted >= thresholds.share_drift:
        level = 2
        reasons.append(f"{share_drifted:.0%} of features drifted (>= {thresholds.share_drift:.0%})")
    elif share_drifted >= thresholds.share_warn:
        level = 1
        reasons.append(f"{share_drifted:.0%} of features drifted (>= {thresholds.share_warn:.0%})")
    for score, value in psi.items():
        if value is None or not math.isfinite(value):
            continue
        if value >= thresholds.psi_drift:
            level = 2
            reasons.append(f"PSI of {score} = {value:.3f} (>= {thresholds.psi_drift})")
        elif value >= thresholds.psi_warn:
            level = max(level, 1)
            reasons.append(f"PSI of {score} = {value:.3f} (>= {thresholds.psi_warn})")
    return STATUSES[level], reasons


REFERENCE_TARGET = "target"  # the label column of training's reference sample (null where there is none)


def reference_calibration(t: Task, reference: pd.DataFrame | None):
    """`cbpe.ReferenceCalibration` of a binary task's positive score on the reference's labelled,
    eligible rows (training's reference sample carries `target`); None without enough labels."""
    from monitoring.cbpe import ReferenceCalibration

    col = positive_score_column(t)
    if reference is None or REFERENCE_TARGET not in reference.columns or col not in reference.columns:
        return None
    ref = reference[eligible(t, reference) & reference[REFERENCE_TARGET].notna().to_numpy()]
    target = ref[REFERENCE_TARGET]
    y = (target.astype(str) == t.positive) if t.classes else pd.to_numeric(target, errors="coerce")
    return ReferenceCalibration.fit(ref[col].to_numpy(dtype=float), np.asarray(y, dtype=float))


def _estimate(t: Task, current: pd.DataFrame, reference: pd.DataFrame | None = None) -> dict[str, Any] | None:
    """CBPE for one task on its eligible rows: binary metrics, or expected accuracy for multiclass."""
    from monitoring.cbpe import estimate_binary_performance

    keep = eligible(t, current)
    population = {"population": t.eligibility.describe(), "rows_window": len(current)}
    if t.kind == "binary":
        col = positive_score_column(t)
        if col not in current.columns:
            return None
        p = current[col].to_numpy(dtype=float)[keep]
        p = p[np.isfinite(p)]
        calibration = reference_calibration(t, reference)
        how = "the model's own"
        if calibration is not None:
            p = calibration(p)
            how = f"recalibrated on the reference's {calibration.rows:,} labelled rows ({calibration.positives:,} positive)"
        return {**estimate_binary_performance(p), **population, "calibration": how}
    if t.kind == "multiclass":
        cols = class_score_columns(t, current.columns)
        if len(cols) < 2:
            return None
        p = current[cols].to_numpy(dtype=float)[keep]
        p = p[np.isfinite(p).all(axis=1)]
        return {"accuracy": float(p.max(axis=1).mean()), "rows": len(p), **population} if len(p) else None
    return None


def estimate_performance(
    current: pd.DataFrame, task_name: str | None = None, reference: pd.DataFrame | None = None
) -> dict[str, Any] | None:
    """CBPE on the current window's scores, per task whose scores it holds (or only `task_name`),
    over each task's eligible population (`core.tasks.Task.eligibility`), recalibrated on the
    reference's labelled rows when it has them."""
    scope = [task_contract(task_name)] if task_name is not None else list(TASKS.values())
    out = {t.name: est for t in scope if (est := _estimate(t, current, reference)) is not None}
    return out or None


def evaluate(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    roles: ColumnRoles | None = None,
    task: str | None = None,
) -> DriftResult:
    """Feature drift, score PSI and status of `current` against `reference` (no I/O)."""
    config = config or DriftConfig()
    roles = roles or resolve_columns(reference, current)
    t0 = time.perf_counter()
    ref = prepare(reference, roles, what="reference")
    cur = prepare(current, roles, what="current")
    t1 = time.perf_counter()
    columns = table_drift(
        ref,
        cur,
        roles.numerical,
        roles.categorical,
        config.thresholds,
        psi_bins=config.psi_bins,
        workers=config.workers,
    )
    tested = [c for c in columns if c.method != "empty"]
    drifted = [c.column for c in tested if c.drifted]
    share = len(drifted) / len(tested) if tested else 0.0
    psi = psi_table(ref, cur, roles.scores, config.psi_bins)
    t2 = time.perf_counter()
    status, reasons = decide_status(share, psi, config.thresholds)
    empty = [c.column for c in columns if c.method == "empty"]
    if empty:
        reasons.append(f"not tested (no values on one side): {', '.join(empty)}")
    return DriftResult(
        status=status,
        reasons=reasons,
        share_drifted=share,
        drifted=drifted,
        psi=psi,
        columns=columns,
        roles=roles,
        rows_reference=len(reference),
        rows_current=len(current),
        thresholds=config.thresholds,
        task=task,
        estimated_performance=estimate_performance(current, task, reference),
        context=context_report(reference, current, roles.context),
        timings={"prepare": round(t1 - t0, 3), "statistics": round(t2 - t1, 3)},
    )


# --- Evidently ----------------------------------------------------------------------------


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    idx = np.random.default_rng(seed).choice(len(frame), size=rows, replace=False)
    idx.sort()
    return frame.iloc[idx]


def threshold_ratio(c: ColumnDrift) -> float:
    """How far a column is towards its drift threshold: >= 1 drifted (distances: statistic /
    threshold; p-value tests: threshold / p), so columns of different tests rank together."""
    if not math.isfinite(c.statistic) or not math.isfinite(c.threshold):
        return -1.0
    if c.method in P_VALUE_METHODS:
        return c.threshold / max(c.statistic, 1e-300)
    return c.statistic / c.threshold


def rendered_columns(result: DriftResult, cap: int) -> tuple[list[str], list[str]]:
    """(numerical, categorical) columns Evidently's report details: the score columns, then the
    tested features by `threshold_ratio` (every drifted one before any other), `cap` in all."""
    tested = sorted((c for c in result.columns if c.method != "empty"), key=threshold_ratio, reverse=True)
    chosen = set(result.roles.scores[:cap]) | {c.column for c in tested[: max(cap - len(result.roles.scores), 0)]}
    numerical = [c for c in result.roles.numerical + result.roles.scores if c in chosen]
    categorical = [c for c in result.roles.categorical if c in chosen]
    return numerical, categorical


def evidently_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    config: DriftConfig,
    timestamp: datetime | None = None,
):
    """Evidently's DataDriftPreset on at most `config.evidently_max_columns` monitored columns
    (`rendered_columns`) and `config.evidently_max_rows` rows per side (a uniform sample above it).

    Evidently's cost is per column and per row; it renders, it does not decide: the verdicts of
    every column on every row are `result.columns`. Returns (snapshot, comparison): comparison
    lists where Evidently's verdicts on what it saw differ from ours, and the largest statistic
    difference.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    roles = result.roles
    numerical, categorical = rendered_columns(result, config.evidently_max_columns)
    cols = numerical + categorical
    cap = config.evidently_max_rows
    # sample first, then convert: a large window is never copied whole for Evidently
    # only the rendered columns are converted (a 170-column window's other ~150 were converted and dropped)
    shown = dataclasses.replace(
        roles,
        numerical=[c for c in roles.numerical if c in numerical],
        scores=[c for c in roles.scores if c in numerical],
        categorical=categorical,
    )
    ref_s = prepare(_sample(reference, cap, config.seed), shown, what="reference")[cols]
    cur_s = prepare(_sample(current, cap, config.seed + 1), shown, what="current")[cols]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    tags = ["clientlens", result.status] + ([result.task] if result.task else ["adhoc"])
    metadata = {
        "status": result.status,
        "share_drifted": f"{result.share_drifted:.4f}",
        "drifted": ", ".join(result.drifted) or "-",
        "psi": json.dumps({k: round(v, 4) for k, v in result.psi.items() if math.isfinite(v)}),
    }
    preset = DataDriftPreset(columns=cols, drift_share=config.thresholds.share_drift)
    report = Report([preset], tags=tags, metadata=metadata)
    with value_drift_widgets_skipped():  # the per-column widgets the preset never shows
        snapshot = report.run(
            Dataset.from_pandas(cur_s, data_definition=definition),
            Dataset.from_pandas(ref_s, data_definition=definition),
            name=f"clientlens drift {result.task or 'adhoc'} {result.created}",
            timestamp=timestamp,
        )
    ours = {c.column: c for c in result.columns}
    disagreements, max_delta = [], 0.0
    for metric in snapshot.dict()["metrics"]:
        conf = metric.get("config", {})
        col = conf.get("column")
        if conf.get("type", "").endswith("ValueDrift") and col in ours:
            value = float(metric["value"])
            mine = ours[col]
            theirs = is_drift(conf.get("method", ""), value, float(conf.get("threshold", mine.threshold)))
            if conf.get("method") == mine.method:
                max_delta = max(max_delta, abs(value - mine.statistic))
            if theirs != mine.drifted:
                disagreements.append(
                    {
                        "column": col,
                        "ours": mine.drifted,
                        "evidently": theirs,
                        "statistic": mine.statistic,
                        "evidently_statistic": value,
                        "method": mine.method,
                    }
                )
    sampled = len(ref_s) < len(reference) or len(cur_s) < len(current)
    comparison = {
        "rows_reference": len(ref_s),
        "rows_current": len(cur_s),
        "sampled": sampled,
        "columns": len(cols),
        "columns_monitored": len(result.columns) + len(roles.scores),
        "rendered": cols,
        "disagreements": disagreements,
        "max_statistic_difference": max_delta,
    }
    return snapshot, comparison


# --- writing ------------------------------------------------------------------------------


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


_STATUS_COLOURS = {"ok": "#1b7f3b", "warn": "#b26a00", "drift": "#b3261e"}


def header_html(result: DriftResult) -> str:
    """The clientlens summary shown above Evidently's report."""
    colour = _STATUS_COLOURS[result.status]
    t = result.thresholds
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in result.reasons) or "<li>no threshold crossed</li>"
    psi_rows = (
        "".join(
            f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td><td>{_psi_band(v, t)}</td></tr>"
            for k, v in result.psi.items()
        )
        or "<tr><td colspan=3>no score columns in both windows</td></tr>"
    )
    ranked = sorted(result.columns, key=lambda c: (not c.drifted, -_norm_stat(c)))
    ev = result.evidently
    rendered = set(ev.get("rendered", []))

    def rows(cols: list[ColumnDrift]) -> str:
        return "".join(
            f"<tr class='{'drifted' if c.drifted else ''}'><td>{html.escape(c.column)}</td><td>{c.kind}</td>"
            f"<td>{html.escape(c.method)}</td><td class='num'>{_fmt(c.statistic)}</td><td class='num'>{_fmt(c.threshold)}</td>"
            f"<td class='num'>{_fmt(c.psi)}</td><td>{'drift' if c.drifted else 'ok'}</td>"
            f"<td>{'below' if c.column in rendered else ''}</td></tr>"
            for c in cols
        )

    col_head = (
        "<tr><th>feature</th><th>type</th><th>test</th><th>statistic</th><th>threshold</th><th>PSI</th>"
        "<th>verdict</th><th>Evidently detail</th></tr>"
    )
    col_rows = rows(ranked[:15])
    all_rows = (
        f"<details><summary style='font-size:13px;cursor:pointer'>All {len(ranked)} features</summary>"
        f"<table>{col_head}{rows(ranked[15:])}</table></details>"
        if len(ranked) > 15
        else ""
    )
    perf = _perf_html(result)
    context = _context_html(result)
    note = ""
    if ev.get("error"):
        note = f"Evidently's report could not be computed ({ev['error']}); the verdicts above are complete."
    elif ev:
        note = (
            f"Evidently's report below details {ev['columns']} of the {ev.get('columns_monitored', ev['columns'])} "
            "monitored columns (the score columns, then the features nearest to or past their threshold), computed on "
            f"{ev['rows_reference']:,} reference and {ev['rows_current']:,} "
            f"current rows{' (uniform sample)' if ev['sampled'] else ''}; the verdicts above use every column and row. "
            f"Verdicts that differ: {len(ev['disagreements'])}"
            + (f" ({', '.join(d['column'] for d in ev['disagreements'])})" if ev["disagreements"] else "")
            + f"; largest statistic difference {ev['max_statistic_difference']:.4f}. "
            f"Evidently's 'Dataset Drift' line counts only the columns it details, the {len(result.roles.scores)} "
            f"score columns included (with its share rule at {t.share_drift:.0%}); the clientlens status counts "
            "every feature and judges scores by PSI."
        )
    return f"""
<section id="clientlens-summary" style="font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
  margin: 16px 24px 8px; padding: 16px 20px; border: 1px solid #ddd; border-radius: 8px; background: #fafafa; color: #222;">
<style>
#clientlens-summary table {{ border-collapse: collapse; margin: 6px 16px 10px 0; font-size: 13px; }}
#clientlens-summary td, #clientlens-summary th {{ border-bottom: 1px solid #e3e3e3; padding: 3px 10px; text-align: left; }}
#clientlens-summary td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
#clientlens-summary tr.drifted td {{ color: #b3261e; font-weight: 600; }}
#clientlens-summary .flex {{ display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }}
#clientlens-summary h2 {{ margin: 0 0 6px; font-size: 20px; }}
#clientlens-summary h3 {{ margin: 10px 0 2px; font-size: 14px; color: #444; }}
#clientlens-summary .badge {{ display: inline-block; padding: 2px 12px; border-radius: 12px; color: white;
  background: {colour}; font-weight: 700; letter-spacing: .5px; }}
</style>
<h2>clientlens drift — {html.escape(result.task or "two-file comparison")} <span class="badge">{result.status.upper()}</span></h2>
<div style="font-size:13px;color:#555">{result.created} · reference {result.rows_reference:,} rows · current
 {result.rows_current:,} rows · {len(result.roles.features)} features (types from {result.roles.source}) ·
 {len(result.roles.context)} context columns (reported, not tested) ·
 drifted {len(result.drifted)} = {result.share_drifted:.1%} (warn ≥ {t.share_warn:.0%}, drift ≥ {t.share_drift:.0%}) ·
 score PSI warn ≥ {t.psi_warn}, drift ≥ {t.psi_drift}</div>
<ul style="margin:6px 0 0 0;font-size:13px">{reasons}</ul>
<div class="flex">
<div><h3>Prediction drift (PSI of scores)</h3><table><tr><th>score</th><th>PSI</th><th></th></tr>{psi_rows}</table></div>
{perf}
</div>
<h3>Features, drifted first (top 15 of {len(result.columns)})</h3>
<table>{col_head}{col_rows}</table>
{all_rows}
{context}
<div style="font-size:12px;color:#666">{html.escape(note)}</div>
</section>
"""


def _norm_stat(c: ColumnDrift) -> float:
    if not math.isfinite(c.statistic):
        return -1.0
    if c.method.endswith("p_value"):
        return 1.0 - c.statistic
    return c.statistic


def _psi_band(v: float, t: DriftThresholds) -> str:
    if v is None or not math.isfinite(v):
        return ""
    if v >= t.psi_drift:
        return "<b style='color:#b3261e'>drift</b>"
    if v >= t.psi_warn:
        return "<b style='color:#b26a00'>warn</b>"
    return "ok"


def _perf_html(result: DriftResult) -> str:
    parts = []
    if result.performance:
        perf = result.performance
        training = perf.get("training", {})
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td><td class='num'>{_fmt(training.get(k))}</td></tr>"
            for k, v in perf.get("metrics", {}).items()
            if k != "rows"
        )
        who = f", {html.escape(perf['population'])}" if perf.get("population") else ""
        parts.append(
            f"<div><h3>Realised performance ({perf.get('rows_matched', 0):,} labelled predictions{who})</h3>"
            f"<table><tr><th>metric</th><th>now</th><th>at training</th></tr>{rows}</table></div>"
        )
    if result.estimated_performance:
        for name, metrics in result.estimated_performance.items():
            at = metrics.get("threshold")
            labels = (
                {k: f"{k} (p ≥ {at:.2f})" for k in ("precision", "recall", "f1", "accuracy")} if at is not None else {}
            )
            labels.update(precision_top10="precision, top 10%", recall_top10="recall, top 10%")
            labels.update(
                {k: f"{k.removeprefix('training_')} at training" for k in metrics if k.startswith("training_")}
            )
            rows = "".join(
                f"<tr><td>{html.escape(labels.get(k, k))}</td><td class='num'>{_fmt(v)}</td></tr>"
                for k, v in metrics.items()
                if k not in ("rows", "threshold", "population", "rows_window", "calibration")
            )
            who = (
                f" on {metrics.get('rows', 0):,} of {metrics['rows_window']:,} rows ({html.escape(metrics['population'])};"
                f" probabilities: {html.escape(metrics.get('calibration', ''))})"
                if "rows_window" in metrics
                else ""
            )
            parts.append(
                f"<div><h3>Estimated {html.escape(name)} performance before labels (CBPE){who}</h3>"
                f"<table><tr><th>metric</th><th>expected</th></tr>{rows}</table></div>"
            )
    return "".join(parts)


def _context_html(result: DriftResult) -> str:
    """Context features (one value per date): their values at each date, not a drift verdict."""
    if not result.context:
        return ""

    def dates(values: dict[str, Any]) -> str:
        return ", ".join(f"{html.escape(d)}: {_fmt(v, 4)}" for d, v in values.items())

    rows = "".join(
        f"<tr><td>{html.escape(col)}</td><td>{dates(c['reference'])}</td><td>{dates(c['current'])}</td>"
        f"<td class='num'>{_fmt(c['change'], 4)}</td></tr>"
        for col, c in result.context.items()
    )
    return (
        "<h3>Context: market features, one value per date (reported, not tested per customer)</h3>"
        f"<table><tr><th>feature</th><th>reference</th><th>current</th><th>change</th></tr>{rows}</table>"
    )


def _inject(evidently_html: str, header: str) -> str:
    lower = evidently_html.lower()
    start = lower.find("<body")
    if start < 0:
        return header + evidently_html
    end = evidently_html.find(">", start) + 1
    return evidently_html[:end] + header + evidently_html[end:]


def write_report(result: DriftResult, snapshot, out_dir: Path) -> tuple[Path, Path]:
    """Write `drift_report.html` and `drift_report.json` into `out_dir` (each temp + rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / HTML_NAME, out_dir / JSON_NAME
    result.report, result.json_path = html_path, json_path
    header = header_html(result)
    if snapshot is not None:
        page = _inject(snapshot.get_html_str(as_iframe=False), header)
    else:
        page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>clientlens drift</title></head><body>{header}</body></html>"
    body = result.to_json()
    if snapshot is not None:
        body["evidently"] = _clean_json(json.loads(snapshot.json()))  # NaN -> null: strict JSON for machines
    write_text_atomic(json_path, json.dumps(body, indent=1, default=str, allow_nan=False))
    write_text_atomic(html_path, page)
    return html_path, json_path


def default_out_dir(task: str | None, settings: Settings | None = None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return (settings or Settings()).reports / "drift" / (task or "adhoc") / stamp


# --- entry points -------------------------------------------------------------------------


def _finish(
    result: DriftResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path | str | None,
    config: DriftConfig,
    settings: Settings,
    timestamp: datetime | None = None,
) -> DriftResult:
    """Evidently's report on `result`'s columns, then the workspace runs and the report files.
    `timestamp` (naive UTC): the time both workspace snapshots carry (default: now)."""
    snapshot = None
    if config.evidently_report:
        t0 = time.perf_counter()
        try:
            snapshot, result.evidently = evidently_snapshot(reference, current, result, config, timestamp)
        except Exception as exc:
            logger.warning(
                "Evidently's report failed (%s: %s); writing the clientlens summary only", type(exc).__name__, exc
            )
            snapshot, result.evidently = None, {"error": f"{type(exc).__name__}: {exc}"}
        result.timings["evidently"] = round(time.perf_counter() - t0, 3)
        if result.evidently.get("disagreements") and not result.evidently.get("sampled"):
            logger.warning("Evidently's verdicts differ from clientlens' on %s", result.evidently["disagreements"])
    t0 = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(result.task, settings)
    result.report = out_dir / HTML_NAME  # named in the workspace's summary snapshot
    if snapshot is not None and config.workspace:
        from monitoring.workspace import add_snapshot

        result.workspace = add_snapshot(
            snapshot, result, timestamp=timestamp, settings=settings, project=_WORKER.get("project")
        )
    write_report(result, snapshot, out_dir)
    result.timings["write"] = round(time.perf_counter() - t0, 3)
    return result


def run_file_drift(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    out_dir: Path | str | None = None,
    config: DriftConfig | None = None,
    *,
    task: str | None = None,
    labels: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> DriftResult:
    """Drift of `current_df` against `reference_df`; writes the report into `out_dir`.

    With `task` and `labels` (a panel with the task's label), also realised performance of
    the current window's predictions (the task's eligible population).
    """
    config = config or DriftConfig()
    settings = settings or Settings()
    if task is not None:
        reference_df = reference_scores(task_contract(task), reference_df)  # an unknown name is an InputError
    result = evaluate(reference_df, current_df, config, task=task)
    if labels is not None:
        if task is None:
            raise InputError("labels need a task (which label column and scores to compare)")
        from monitoring.performance import realised_performance

        estimate = (result.estimated_performance or {}).get(task)
        result.performance = realised_performance(task, current_df, labels, estimate=estimate)
    return _finish(result, reference_df, current_df, out_dir, config, settings)


def reference_scores(t: Task, reference: pd.DataFrame) -> pd.DataFrame:
    """The reference sample with `t`'s score columns as the contract names them.

    Training writes its reference with scoring's names (`churn_proba`, `risk_proba_<class>`);
    runs logged before that carry `proba` / `proba_<class>`, whose names come from the contract
    here (`Task.score_column`), so both compare with the inference log."""
    if any(t.is_score_column(str(c)) for c in reference.columns):
        return reference
    legacy = {"proba": t.score_column()} if "proba" in reference.columns else {}
    legacy |= {
        c: t.score_column(c.removeprefix("proba_")) for c in map(str, reference.columns) if c.startswith("proba_")
    }
    return reference.rename(columns=legacy) if legacy else reference


def training_metrics_for(names, run_metrics: dict[str, float]) -> dict[str, float]:
    """The champion run's metric for each realised metric name (tolerates test_/holdout_ prefixes)."""
    out = {}
    for name in names:
        for key in (name, f"test_{name}", f"holdout_{name}", f"test.{name}", f"val_{name}", f"valid_{name}"):
            if key in run_metrics:
                out[name] = run_metrics[key]
                break
    return out


def run_task_drift(
    task: str,
    since=None,
    out_dir: Path | str | None = None,
    config: DriftConfig | None = None,
    *,
    labels: pd.DataFrame | None = None,
    until=None,
    attach: bool = True,
    settings: Settings | None = None,
    champion=None,
) -> DriftResult:
    """The inference log (ts >= `since`) against the champion's reference sample.

    With `labels` (a later `panel.parquet`), adds realised performance next to the champion's
    training-time metrics. Attaches the report to the champion's MLflow run (`drift/<time>/`).
    `champion`: the task's `sources.Champion` already read.
    """
    from monitoring import sources

    config = config or DriftConfig()
    settings = settings or Settings()
    task_contract(task)  # an unknown name is an InputError before anything is read
    champ = champion if champion is not None else sources.champion(task, settings=settings)
    window = _evaluate_window(task, champ, since, until, config, labels, settings, attach=attach)
    return _write_window(window, out_dir, config, settings)


@dataclass
class _Window:
    """One task-mode window evaluated (verdicts decided, nothing written yet)."""

    result: DriftResult
    reference: pd.DataFrame
    current: pd.DataFrame
    run_id: str
    attach: bool


def _evaluate_window(
    task: str,
    champ,
    since,
    until,
    config: DriftConfig,
    labels: pd.DataFrame | None,
    settings: Settings,
    *,
    attach: bool,
) -> _Window:
    """Read the window [since, until) of the inference log and decide its verdicts (no file written):
    every `InputError` of a window (no rows, no common column, a non-numeric value) is raised here."""
    from monitoring import sources

    t = task_contract(task)
    current = sources.read_window(since, until, settings=settings)
    reference = reference_scores(t, champ.reference)
    # Compare like with like: the log holds every task's scores; keep this task's.
    others = [c for c in current.columns if is_score_column(str(c)) and not t.is_score_column(str(c))]
    result = evaluate(reference, current.drop(columns=others), config, task=task)
    if labels is not None:
        from monitoring.performance import realised_performance

        perf = realised_performance(task, current, labels, estimate=(result.estimated_performance or {}).get(task))
        perf["training"] = training_metrics_for(perf["metrics"], champ.metrics)
        result.performance = perf
    estimate = (result.estimated_performance or {}).get(task)
    if estimate:
        shown = [k for k in ("roc_auc", "pr_auc", "brier", "accuracy") if k in estimate]
        estimate.update({f"training_{k}": v for k, v in training_metrics_for(shown, champ.metrics).items()})
    result.mlflow = {"model": champ.model_name, "version": champ.version, "run_id": champ.run_id}
    return _Window(result, reference, current, champ.run_id, attach)


def _write_window(
    window: _Window,
    out_dir: Path | str | None,
    config: DriftConfig,
    settings: Settings,
    timestamp: datetime | None = None,
) -> DriftResult:
    """Evidently's report, the files, the workspace runs and the MLflow attachment of an evaluated window."""
    result = _render_window(window, out_dir, config, settings, timestamp)
    _attach_window(window, result, settings)
    return result


def _render_window(
    window: _Window,
    out_dir: Path | str | None,
    config: DriftConfig,
    settings: Settings,
    timestamp: datetime | None = None,
) -> DriftResult:
    """Everything of a window but its MLflow attachment (in a renderer process for `run_task_windows`)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = window.result
    if window.attach and result.mlflow is not None:
        result.mlflow["artifact_path"] = _artifact_path(result)
    result = _finish(result, window.reference, window.current, out_dir, config, settings, timestamp)
    logger.debug(
        "drift window %s rendered: %.2f s, %.2f CPU-s",
        result.created,
        time.perf_counter() - wall,
        time.process_time() - cpu,
    )
    return result


def _attach_window(window: _Window, result: DriftResult, settings: Settings) -> None:
    from monitoring import sources

    if window.attach and result.report is not None and result.json_path is not None:
        sources.attach_to_run(
            window.run_id, [result.report, result.json_path], _artifact_path(result), settings=settings
        )


def _artifact_path(result: DriftResult) -> str:
    """The window's MLflow folder, `drift/<created without separators>` (one per second, in window order)."""
    return f"drift/{result.created.replace(':', '').replace('-', '')}"


# The renderer process of `run_task_windows` keeps its open workspace project here, so the processes it
# forks (one per window) inherit it and only write their own snapshot files.
_WORKER: dict[str, Any] = {}
_EVIDENTLY_MODULES = ("evidently.presets", "evidently.metrics", "evidently.sdk.panels", "evidently.ui.workspace")


def _renderer_main(conn, task: str, config: DriftConfig, settings: Settings, processes: int) -> None:
    """The renderer process: import Evidently (~6 CPU-s, the largest single cost of a drift run) and read the
    workspace (its history; nothing is written before every window is valid) while the parent reads the
    champion and decides every window's verdicts; then open the task's project, render the windows the parent
    sends, one forked process per window up to `processes` (they inherit the imports and the open project),
    and send the results back."""
    import importlib

    wall, cpu = time.perf_counter(), time.process_time()
    try:
        for module in _EVIDENTLY_MODULES:
            importlib.import_module(module)
        from monitoring.workspace import open_project, read_workspace, workspace_dir

        ws = read_workspace(workspace_dir(settings)) if config.workspace else None
        logger.debug(
            "drift renderer ready: %.2f s, %.2f CPU-s (Evidently imported, workspace read)",
            time.perf_counter() - wall,
            time.process_time() - cpu,
        )
        jobs = conn.recv()
    except EOFError:  # the parent is gone
        return
    except Exception as exc:  # the parent renders in process instead
        logger.warning("drift renderer could not start (%s: %s)", type(exc).__name__, exc)
        conn.send(("unavailable", None))
        return
    if jobs is None:  # the parent stopped (a bad window): nothing is written
        return
    try:
        if config.workspace:
            _WORKER["project"] = open_project(task, settings=settings, ws=ws)
        if processes > 1 and len(jobs) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # not multiprocessing.Pool: a window process that dies (a crash, the OOM killer) hangs a Pool for
            # ever; the executor raises BrokenProcessPool, which reaches the parent as this run's error
            fork = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=fork) as pool:
                results = list(pool.map(_render_window, *zip(*jobs, strict=True)))
        else:
            results = [_render_window(*job) for job in jobs]
        conn.send(("ok", results))
    except Exception as exc:
        conn.send(("error", exc))


class _Renderer:
    """The parent's end of `_renderer_main`: started before MLflow opens its store (forked, the child shares
    only the imports done so far); `render(jobs)` or `stop()`."""

    def __init__(self, task: str, config: DriftConfig, settings: Settings, windows: int):
        import multiprocessing
        import os

        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        processes = min(windows, os.cpu_count() or 1)
        self.process = ctx.Process(target=_renderer_main, args=(child, task, config, settings, processes))
        self.process.start()
        child.close()
        self.sent = False

    @staticmethod
    def start(task: str, config: DriftConfig, settings: Settings, windows: int) -> _Renderer | None:
        import multiprocessing

        if not config.evidently_report or "fork" not in multiprocessing.get_all_start_methods():
            return None
        return _Renderer(task, config, settings, windows)

    def render(self, jobs: list[tuple]) -> list[DriftResult] | None:
        """The rendered results, or None when the renderer could not start (render in process then)."""
        try:
            self.conn.send(jobs)
            self.sent = True
        except OSError:  # the renderer has stopped: its reason is waiting in the pipe
            pass
        try:
            status, payload = self.conn.recv()
        except EOFError:
            raise ClientlensError(f"drift renderer process died (exit {self.process.exitcode})") from None
        if status == "error":
            raise payload
        return payload if status == "ok" else None

    def stop(self) -> None:
        """Wait for the renderer to exit; one never sent work (a bad window) has only read: end it now."""
        if self.sent:
            self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


def run_task_windows(
    task: str,
    split_at: list[str],
    since=None,
    until=None,
    *,
    config: DriftConfig | None = None,
    labels: pd.DataFrame | None = None,
    attach: bool = True,
    settings: Settings | None = None,
) -> list[DriftResult]:
    """`run_task_drift` on consecutive windows of the inference log, [since, t1), [t1, t2), ... [tn, until),
    in order (each its own report, workspace run and MLflow attachment), reading the champion and paying the
    imports once (#18: the demo's two windows, 2 x 15 CPU-s in two processes).

    All or nothing: every window is read and evaluated (its verdicts decided) before any is written, so a
    bad window (empty, no monitorable column, a non-numeric value, labels that do not match) raises its
    `InputError` with no report, workspace run or MLflow folder written for any window.

    Speed (#18, the demo's drift step): a forked renderer process imports Evidently and opens the workspace
    project while this process reads the champion and evaluates; it then makes the windows' Evidently reports,
    files and workspace runs in processes of its own, one per window up to one per core (each snapshot stamped
    with its window's `created` time, so the workspace keeps the windows in order). The MLflow attachments are
    made here, in order, once every window is written.
    """
    from monitoring import sources
    from serving.inference_log import _utc

    bounds = [since, *split_at, until]
    try:
        times = [_utc(b) for b in bounds if b is not None]
    except ValueError as exc:
        raise InputError(f"--since/--split-at/--until: not a time ({exc})") from None
    if not split_at or any(a >= b for a, b in pairwise(times)):
        raise InputError(f"--split-at {', '.join(split_at)}: the times must increase, inside --since/--until")
    config = config or DriftConfig()
    settings = settings or Settings()
    task_contract(task)
    logger.debug("drift renderer forked at %.2f CPU-s of this process", time.process_time())
    renderer = _Renderer.start(task, config, settings, len(bounds) - 1)
    try:
        champ = sources.champion(task, settings=settings)
        windows: list[_Window] = []
        for i, (lo, hi) in enumerate(pairwise(bounds), 1):
            own = dataclasses.replace(champ, reference=None if champ.reference is None else champ.reference.copy())
            try:
                windows.append(_evaluate_window(task, own, lo, hi, config, labels, settings, attach=attach))
            except InputError as exc:
                span = f"[{lo or 'start'}, {hi or 'end'})"
                raise InputError(
                    f"window {i} of {len(bounds) - 1} {span}: {exc}; nothing was written for any window"
                ) from None
        # Each window's MLflow folder (`drift/<created>`, to the second) and workspace time is its own, in
        # window order: a window evaluated within the same second as the one before is stamped a second later
        # (the old code slept into the next second, on the critical path of the demo's step).
        stamps = [datetime.strptime(w.result.created, "%Y-%m-%dT%H:%M:%SZ") for w in windows]  # naive UTC
        for i in range(1, len(stamps)):
            if stamps[i] <= stamps[i - 1]:
                stamps[i] = stamps[i - 1] + timedelta(seconds=1)
                windows[i].result.created = stamps[i].strftime("%Y-%m-%dT%H:%M:%SZ")
        logger.debug("drift windows evaluated: %.2f CPU-s in this process so far", time.process_time())
        jobs = [(w, None, config, settings, at) for w, at in zip(windows, stamps, strict=True)]
        results = renderer.render(jobs) if renderer is not None else None
        if results is None:
            results = [_render_window(*job) for job in jobs]
    finally:
        if renderer is not None:
            renderer.stop()
    for window, result in zip(windows, results, strict=True):
        _attach_window(window, result, settings)
    logger.debug("drift windows written and attached: %.2f CPU-s in this process", time.process_time())
    return results
