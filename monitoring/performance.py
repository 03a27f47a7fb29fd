"""Realised performance once labels arrive: join logged predictions with later labels.

A prediction logged at time `ts` for customer c is matched with the label row of c in a later
feature build (`panel.parquet`) whose `as_of` is the prediction's as-of date: exactly, when
the log carries an `as_of` column, otherwise the latest `as_of <= ts` within `tolerance`
(a label at as-of T describes (T, T + horizon], the period the prediction was about).

What a task is (its label, kind, classes, positive class, score columns, who its label is
defined for) comes from the task contract (`core.tasks`); every metric is `core.metrics`, the
same computation training reports, so a realised metric and its training-time value are
comparable. Pure functions of frames; the I/O lives in `monitoring.sources`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from core import metrics as M
from core.errors import InputError
from core.tasks import Task, task

logger = logging.getLogger(__name__)


# --- the contract, as monitoring reads it ---------------------------------------------------


def positive_score_column(t: Task) -> str:
    """The P(positive) column of a binary task (`churn_proba`, `risk_proba_aggressive`)."""
    if t.kind != "binary":
        raise ValueError(f"task {t.name} is {t.kind}, not binary")
    return t.score_column(t.positive) if t.classes else t.score_column()


def class_score_columns(t: Task, columns) -> list[str]:
    """A multiclass task's score columns present in `columns`, in the contract's class order."""
    present = set(t.classes_of(columns))
    return [t.score_column(c) for c in t.classes if c in present]


def eligible(t: Task, frame: pd.DataFrame) -> np.ndarray:
    """Which rows of `frame` the task's label is defined for (`Task.eligibility`).

    A rule on a column the frame does not carry cannot be applied: every row is kept and a
    warning says so (the estimate is then over the whole book)."""
    rule = t.eligibility
    if rule.column is not None and rule.column not in frame.columns:
        logger.warning("task %s: eligibility column %r not in the window; using every row", t.name, rule.column)
        return np.ones(len(frame), dtype=bool)
    return np.asarray(rule.mask(frame), dtype=bool)


# --- metrics (core.metrics, with what an unlabelled-looking window needs) -------------------


def binary_performance(y_true, proba) -> dict[str, float]:
    """`core.metrics.binary_metrics` plus rows and positive rate; NaN metrics for a single class."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    out: dict[str, float] = {"rows": int(y.size), "positive_rate": float(y.mean()) if y.size else float("nan")}
    if y.size == 0 or np.unique(y).size < 2:
        logger.warning("realised performance: labels have a single class; metrics undefined")
        out.update(dict.fromkeys(("roc_auc", "pr_auc", "ks", "brier", "lift_at_10"), float("nan")))
        return out
    out.update(M.binary_metrics(y, p))
    return out


def multiclass_performance(y_true, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """`core.metrics.multiclass_metrics` over `classes` (the columns of `proba`, in that order)."""
    labels = pd.Series(y_true).astype(str).to_numpy()
    index = {c: i for i, c in enumerate(classes)}
    known = np.array([v in index for v in labels])
    if not known.all():
        unknown = sorted(set(labels[~known]))[:5]
        raise InputError(f"labels: classes {unknown} have no score column (scored classes: {classes})")
    y = np.array([index[v] for v in labels], dtype=int)
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return {"rows": int(y.size), **M.multiclass_metrics(y, p)}


def task_performance(t: Task, labelled: pd.DataFrame) -> dict[str, float]:
    """The task's metrics on rows carrying both its label and its score columns."""
    if t.kind == "binary":
        col = positive_score_column(t)
        if col not in labelled.columns:
            raise InputError(f"predictions: no {col!r} score column for task {t.name!r}")
        label = labelled[t.label]
        # Named classes: positive = the label is the positive class (a 3-class label counts as
        # "aggressive or not" for a binary risk model, as in training); else the label is 0/1.
        y = (label.astype(str) == t.positive).astype(float) if t.classes else label.astype(float)
        return binary_performance(y, labelled[col])
    if t.kind == "multiclass":
        cols = class_score_columns(t, labelled.columns)
        if not cols:
            raise InputError(f"predictions: no {t.score_prefix}_<class> score columns for task {t.name!r}")
        return multiclass_performance(labelled[t.label], labelled[cols].to_numpy(), t.classes_of(cols))
    raise InputError(f"task {t.name!r}: realised performance of a {t.kind} task is not monitored")


# --- joining predictions with labels --------------------------------------------------------


def join_labels(
    predictions: pd.DataFrame,
    panel: pd.DataFrame,
    label: str,
    *,
    tolerance: pd.Timedelta | str | None = "92D",
) -> pd.DataFrame:
    """Predictions with the matching later label in column `label`; unmatched rows dropped.

    `predictions` needs `customer_id` and either `as_of` or `ts`; `panel` needs
    `customer_id`, `as_of` and `label`. Rows whose label is null (ineligible) are dropped.
    """
    for col in ("customer_id", "as_of", label):
        if col not in panel.columns:
            raise InputError(f"labels table: column {col!r} missing (has {', '.join(map(str, panel.columns[:12]))}...)")
    if "customer_id" not in predictions.columns:
        raise InputError("predictions: column 'customer_id' missing")
    labels = panel[["customer_id", "as_of", label]].dropna(subset=[label]).copy()
    labels["as_of"] = pd.to_datetime(labels["as_of"]).dt.tz_localize(None)
    preds = predictions.drop(columns=[label], errors="ignore").copy()
    if "as_of" in preds.columns:
        preds["as_of"] = pd.to_datetime(preds["as_of"]).dt.tz_localize(None)
        joined = preds.merge(labels, on=["customer_id", "as_of"], how="inner")
    elif "ts" in preds.columns:
        ts = pd.to_datetime(preds["ts"], utc=True).dt.tz_localize(None)
        preds = preds.assign(_ts=ts.astype("datetime64[ns]")).sort_values("_ts", kind="stable")
        labels = labels.astype({"as_of": "datetime64[ns]"}).sort_values("as_of", kind="stable")
        joined = pd.merge_asof(
            preds,
            labels,
            left_on="_ts",
            right_on="as_of",
            by="customer_id",
            direction="backward",
            tolerance=pd.Timedelta(tolerance) if tolerance is not None else None,
        )
        joined = joined.dropna(subset=[label]).drop(columns="_ts")
    else:
        raise InputError("predictions: need an 'as_of' or a 'ts' column to match labels")
    return joined.reset_index(drop=True)


ESTIMATE_TOLERANCE = 0.03  # |CBPE - realised| AUC beyond this: the estimate's assumptions failed


def estimate_check(
    estimate: dict[str, Any] | None, realised: dict[str, float], tolerance: float = ESTIMATE_TOLERANCE
) -> dict[str, Any] | None:
    """The CBPE estimate made before labels against the realised metric once they exist.

    CBPE reads calibrated scores, so it follows a change in who the customers are (covariate shift)
    but not a change in what the same features mean for the outcome (concept drift). When the
    realised AUC falls short of the estimate by more than `tolerance`, the scores were no longer
    calibrated on this window: `concept_drift_suspected` says so (the fix is retraining on newer
    labels, not a better estimate). None when there is no estimate or no AUC on both sides.
    """
    if not estimate or "roc_auc" not in estimate or "roc_auc" not in realised:
        return None
    est, real = float(estimate["roc_auc"]), float(realised["roc_auc"])
    if not (np.isfinite(est) and np.isfinite(real)):
        return None
    gap = est - real
    return {
        "metric": "roc_auc",
        "estimated": est,
        "realised": real,
        "gap": gap,
        "tolerance": tolerance,
        "concept_drift_suspected": bool(gap > tolerance),
    }


def realised_performance(
    task_name: str,
    predictions: pd.DataFrame,
    panel: pd.DataFrame,
    *,
    tolerance: pd.Timedelta | str | None = "92D",
    estimate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The task's metrics on logged predictions of its eligible population joined with later labels.

    Returns `{"task", "label", "population", "rows_predictions", "rows_eligible", "rows_matched",
    "metrics"}`, plus `estimate_check` (`estimate_check`) when the window's CBPE `estimate` is given;
    raises `InputError` when nothing matches (names both time ranges so the user sees why).
    """
    t = task(task_name)
    keep = eligible(t, predictions)
    joined = join_labels(predictions[keep], panel, t.label, tolerance=tolerance)
    if joined.empty:
        when = "as_of" if "as_of" in predictions.columns else "ts"
        pmin, pmax = predictions[when].min(), predictions[when].max()
        raise InputError(
            f"no logged {task_name} prediction matched a label: predictions {when} {pmin} .. {pmax}, "
            f"labelled panel as_of {panel['as_of'].min()} .. {panel['as_of'].max()} "
            f"(label {t.label!r}, tolerance {tolerance})"
        )
    metrics = task_performance(t, joined)
    out = {
        "task": task_name,
        "label": t.label,
        "population": t.eligibility.describe(),
        "rows_predictions": len(predictions),
        "rows_eligible": int(keep.sum()),
        "rows_matched": len(joined),
        "metrics": metrics,
    }
    if (check := estimate_check(estimate, metrics)) is not None:
        out["estimate_check"] = check
    return out
