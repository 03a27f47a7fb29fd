"""Realised performance once labels arrive: join logged predictions with later labels.

A prediction logged at time `ts` for customer c is matched with the label row of c in a later
feature build (`panel.parquet`) whose `as_of` is the prediction's as-of date: exactly, when
the log carries an `as_of` column, otherwise the latest `as_of <= ts` within `tolerance`
(a label at as-of T describes (T, T + horizon], the period the prediction was about).
Pure functions of frames; the I/O lives in `monitoring.sources`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskInfo:
    """What monitoring needs to know about a built-in task."""

    name: str
    label: str  # label column in panel.parquet
    kind: str  # "binary" | "multiclass"
    score_prefix: str  # score columns: churn_proba, tier_proba_<class>, risk_proba_<class>
    classes: tuple[str, ...] = ()

    def score_columns(self, columns) -> list[str]:
        if self.kind == "binary":
            return [self.score_prefix] if self.score_prefix in columns else []
        return [c for c in columns if c.startswith(self.score_prefix)]


TASKS: dict[str, TaskInfo] = {
    "churn": TaskInfo("churn", "churn", "binary", "churn_proba"),
    "tier": TaskInfo("tier", "tier_future", "multiclass", "tier_proba_", ("mass", "affluent", "hnw")),
    "risk": TaskInfo("risk", "revealed_risk", "multiclass", "risk_proba_", ("conservative", "balanced", "aggressive")),
}


def task_info(task: str) -> TaskInfo:
    try:
        return TASKS[task]
    except KeyError:
        raise InputError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}") from None


def is_score_column(name: str) -> bool:
    """Model probability columns as written by `training.scoring.score_frame`."""
    return name.endswith("_proba") or "_proba_" in name


# --- metrics ------------------------------------------------------------------------------


def binary_metrics(y_true, proba) -> dict[str, float]:
    """roc_auc, pr_auc, ks, brier, lift_at_10 (DESIGN §11 names), plus rows and positive rate."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    out: dict[str, float] = {"rows": int(y.size), "positive_rate": float(y.mean()) if y.size else float("nan")}
    if y.size == 0 or np.unique(y).size < 2:
        logger.warning("realised performance: labels have a single class; AUCs undefined")
        out.update(roc_auc=float("nan"), pr_auc=float("nan"), ks=float("nan"))
    else:
        fpr, tpr, _ = roc_curve(y, p)
        out.update(
            roc_auc=float(roc_auc_score(y, p)),
            pr_auc=float(average_precision_score(y, p)),
            ks=float(np.max(tpr - fpr)),
        )
    out["brier"] = float(brier_score_loss(y, p)) if y.size else float("nan")
    if y.size and y.mean() > 0:
        top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(0.1 * y.size)))]
        out["lift_at_10"] = float(y[top].mean() / y.mean())
    else:
        out["lift_at_10"] = float("nan")
    return out


def multiclass_metrics(y_true, proba: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    """macro_f1, accuracy, log_loss over `classes` (the columns of `proba`, in that order)."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    y = pd.Series(y_true).astype(str).to_numpy()
    p = np.clip(proba.to_numpy(dtype=np.float64), 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    pred = np.asarray(classes)[np.argmax(p, axis=1)]
    out = {
        "rows": int(y.size),
        "macro_f1": float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
    }
    order = np.argsort(np.asarray(classes, dtype=str))  # sklearn's log_loss wants sorted labels
    try:
        out["log_loss"] = float(log_loss(y, p[:, order], labels=list(np.asarray(classes)[order])))
    except ValueError as exc:
        logger.warning("realised performance: log_loss undefined (%s)", exc)
        out["log_loss"] = float("nan")
    return out


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


def realised_performance(
    task: str,
    predictions: pd.DataFrame,
    panel: pd.DataFrame,
    *,
    tolerance: pd.Timedelta | str | None = "92D",
) -> dict:
    """The task's metrics on logged predictions joined with labels from a later feature build.

    Returns `{"task", "rows_predictions", "rows_matched", "metrics"}`; raises `InputError`
    when nothing matches (names both time ranges so the user sees why).
    """
    info = task_info(task)
    joined = join_labels(predictions, panel, info.label, tolerance=tolerance)
    if joined.empty:
        when = "as_of" if "as_of" in predictions.columns else "ts"
        pmin, pmax = predictions[when].min(), predictions[when].max()
        raise InputError(
            f"no logged {task} prediction matched a label: predictions {when} {pmin} .. {pmax}, "
            f"labelled panel as_of {panel['as_of'].min()} .. {panel['as_of'].max()} "
            f"(label {info.label!r}, tolerance {tolerance})"
        )
    scores = info.score_columns(joined.columns)
    if not scores:
        raise InputError(f"predictions: no {info.score_prefix}* score column for task {task!r}")
    if info.kind == "binary":
        metrics = binary_metrics(joined[info.label].astype(float), joined[scores[0]])
    else:
        classes = [c.removeprefix(info.score_prefix) for c in scores]
        if len(classes) == 2:
            # A binary model with named classes [negative, positive] (spec target.classes, e.g. risk's
            # not_aggressive / aggressive): positive = the label equals the positive class, as in training.
            positive = (joined[info.label].astype(str) == classes[1]).astype(float)
            metrics = binary_metrics(positive, joined[scores[1]])
        else:
            metrics = multiclass_metrics(joined[info.label], joined[scores], classes)
    return {
        "task": task,
        "label": info.label,
        "rows_predictions": len(predictions),
        "rows_matched": len(joined),
        "metrics": metrics,
    }
