"""Metrics named as DESIGN §11. Pure functions of labels, scores and optional weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm


def ks_statistic(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float:
    fpr, tpr, _ = skm.roc_curve(y, score, sample_weight=weight)
    return float(np.max(tpr - fpr))


def lift_at(y: np.ndarray, score: np.ndarray, share: float = 0.10, weight: np.ndarray | None = None) -> float:
    """Positive rate among the top `share` by score divided by the overall positive rate."""
    w = np.ones_like(score, dtype=float) if weight is None else np.asarray(weight, dtype=float)
    order = np.argsort(-score, kind="stable")
    cw = np.cumsum(w[order])
    top = order[cw <= share * cw[-1] + 1e-12]
    if len(top) == 0:
        top = order[:1]
    base = np.average(y, weights=w)
    return float(np.average(y[top], weights=w[top]) / base) if base > 0 else float("nan")


def precision_at(y: np.ndarray, score: np.ndarray, share: float) -> float:
    k = max(1, int(round(share * len(score))))
    top = np.argsort(-score, kind="stable")[:k]
    return float(np.mean(y[top]))


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-label (multiclass) or positive-class (binary, `proba` 1-d) probability, equal-width bins."""
    if proba.ndim == 2:
        conf = proba.max(axis=1)
        correct = (proba.argmax(axis=1) == y).astype(float)
    else:
        conf, correct = proba, y.astype(float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(ece)


Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]

# Each headline metric defined once, by name: `binary_metrics` / `multiclass_metrics` compute them all,
# `task_metric` one alone (a bootstrap recomputes one metric hundreds of times: #18).
BINARY: dict[str, Metric] = {
    "roc_auc": lambda y, p, w: float(skm.roc_auc_score(y, p, sample_weight=w)),
    "pr_auc": lambda y, p, w: float(skm.average_precision_score(y, p, sample_weight=w)),
    "ks": ks_statistic,
    "brier": lambda y, p, w: float(skm.brier_score_loss(y, p, sample_weight=w)),
    "lift_at_10": lambda y, p, w: lift_at(y, p, 0.10, w),
}
MULTICLASS: dict[str, Metric] = {
    "macro_f1": lambda y, proba, w: float(
        skm.f1_score(y, proba.argmax(axis=1), average="macro", labels=list(range(proba.shape[1])), sample_weight=w)
    ),
    "log_loss": lambda y, proba, w: float(
        skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=list(range(proba.shape[1])), sample_weight=w)
    ),
    "accuracy": lambda y, proba, w: float(skm.accuracy_score(y, proba.argmax(axis=1), sample_weight=w)),
}


# The class metrics that are a (weighted) mean of one value per row, that value: a bootstrap resamples these
# values instead of recomputing the metric on each resample (`row_values`), which gives the same numbers as
# MULTICLASS on the resampled rows (sklearn's per-row terms, then its `np.average`; tests/core/test_metrics.py)
# at a small part of the cost (sklearn's input checks were ~83% of a tier training's 600 log losses).
_EPS = float(np.finfo(np.float64).eps)
ROW_MEANS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    # skm.log_loss: -sum(xlogy(one-hot, clip(p, eps, 1 - eps))) per row = -log of the true class's clipped p
    "log_loss": lambda y, proba: -np.log(np.clip(np.clip(proba, 1e-15, 1)[np.arange(len(y)), y], _EPS, 1 - _EPS)),
    "accuracy": lambda y, proba: (proba.argmax(axis=1) == y).astype(np.float64),
}


def row_values(kind: str, name: str, y: np.ndarray, proba: np.ndarray) -> np.ndarray | None:
    """Per-row values whose `np.average(values[idx], weights=w[idx])` is `task_metric(kind, name, y[idx],
    proba[idx], w[idx])` for any resample `idx`; None when the metric is not such a mean (AUCs, F1, ...)."""
    # float64 only: sklearn clips other float types at their own epsilon
    if kind in ("multiclass", "ordinal") and name in ROW_MEANS and proba.ndim == 2 and proba.dtype == np.float64:
        y = y.astype(int)
        if len(y) and (y.min() < 0 or y.max() >= proba.shape[1]):
            return None  # labels outside the columns: sklearn's own error, from task_metric
        return ROW_MEANS[name](y, proba)
    return None


def _resampled_auc(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None) -> Callable[[np.ndarray], float] | None:
    """`roc_auc_score(y[idx], score[idx], sample_weight=weight[idx])` of resamples `idx`, from one sort of the
    scores: a resample is the rows weighted by how often it drew each, and the AUC is the weighted share of
    (positive, negative) pairs ranked right, ties counting half, which is the area under sklearn's ROC steps.
    Equal to sklearn's to rounding (~1e-16; tests/core/test_metrics.py) at 1/19-1/40 of its CPU, since sklearn's
    input checks dominate a bootstrap of hundreds of small resamples. None for what sklearn would reject or
    treat otherwise (labels other than 0/1, non-finite scores, negative weights): the caller asks sklearn."""
    y, score = np.asarray(y), np.asarray(score)
    if score.ndim != 1 or not np.isin(y, (0, 1)).all() or not np.isfinite(score).all():
        return None
    if weight is not None and not (np.isfinite(weight).all() and (weight >= 0).all()):
        return None
    n = len(y)
    _, group = np.unique(score, return_inverse=True)  # rank of each row's score among the distinct scores
    groups = int(group.max()) + 1 if n else 0
    positive = (y == 1).astype(np.float64)
    negative = 1.0 - positive

    def auc(idx: np.ndarray) -> float:
        drawn = np.bincount(idx, weights=None if weight is None else weight[idx], minlength=n)
        pos = np.bincount(group, weights=drawn * positive, minlength=groups)
        neg = np.bincount(group, weights=drawn * negative, minlength=groups)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos <= 0 or total_neg <= 0:
            return float("nan")  # sklearn: an undefined ROC (one class has no weight)
        below = np.cumsum(neg) - neg  # negative weight at strictly lower scores
        return float(pos @ (below + 0.5 * neg) / (total_pos * total_neg))

    return auc


def resampled_metric(
    kind: str, name: str, y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None = None
) -> Callable[[np.ndarray], float] | None:
    """`idx -> task_metric(kind, name, y[idx], proba[idx], weight[idx])` for a bootstrap's resamples, without
    sklearn's per-call cost: bit for bit for the row means (log loss, accuracy), to rounding for ROC AUC; None
    for the other metrics (compute those with `task_metric`)."""
    rows = row_values(kind, name, y, proba)
    if rows is not None:
        return lambda idx: float(np.average(rows[idx], weights=None if weight is None else weight[idx]))
    if name == "roc_auc" and kind in ("binary", "ordinal"):
        return _resampled_auc(*_ranked(kind, y, proba), weight)
    return None


def binary_metrics(y: np.ndarray, p: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
    return {name: metric(y, p, weight) for name, metric in BINARY.items()}


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
    return {name: metric(y, proba, weight) for name, metric in MULTICLASS.items()}


def regression_metrics(y: np.ndarray, pred: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred, sample_weight=weight))),
        "r2": float(skm.r2_score(y, pred, sample_weight=weight)),
    }


def _ranked(kind: str, y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 0/1 labels and the score a binary or ordinal task's ranking metrics (ROC AUC, ...) read: binary, the
    positive class's probability; ordinal (ordered classes from one score), whether a row is in the top
    class and that class's probability."""
    if kind == "ordinal":
        return (y.astype(int) == proba.shape[1] - 1).astype(int), proba[:, -1]
    return y, proba[:, 1] if proba.ndim == 2 else proba


def task_metrics(kind: str, y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
    """The headline metrics of a task kind; `proba` is (n, 2) / (n, k) probabilities or (n,) predictions."""
    if kind == "binary":
        return binary_metrics(*_ranked(kind, y, proba), weight)
    if kind == "multiclass":
        return multiclass_metrics(y.astype(int), proba, weight)
    if kind == "ordinal":  # ordered classes from one score: the class metrics + how the score ranks the top class
        return {
            **multiclass_metrics(y.astype(int), proba, weight),
            "roc_auc": binary_metrics(*_ranked(kind, y, proba), weight)["roc_auc"],
        }
    return regression_metrics(y, proba, weight)


def task_metric(kind: str, name: str, y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None = None) -> float:
    """`task_metrics(kind, y, proba, weight)[name]` computed alone (the same definition); NaN for a name the
    kind does not have."""
    # ordinal as task_metrics: ROC AUC of how the score ranks the top class
    if (kind == "binary" and name in BINARY) or (kind == "ordinal" and name == "roc_auc"):
        return BINARY[name](*_ranked(kind, y, proba), weight)
    if kind in ("multiclass", "ordinal") and name in MULTICLASS:
        return MULTICLASS[name](y.astype(int), proba, weight)
    if kind == "regression":
        return regression_metrics(y, proba, weight).get(name, float("nan"))
    return float("nan")


def upgrade_auc(current_rank: np.ndarray, future_rank: np.ndarray, proba: np.ndarray) -> float:
    """AUC of P(future tier above current tier) = sum of the probabilities of the higher classes."""
    k = proba.shape[1]
    higher = np.arange(k)[None, :] > current_rank[:, None]
    score = (proba * higher).sum(axis=1)
    label = (future_rank > current_rank).astype(int)
    ok = current_rank >= 0
    if label[ok].min() == label[ok].max():
        return float("nan")
    return float(skm.roc_auc_score(label[ok], score[ok]))


def hidden_aggressive_metrics(truth_positive: np.ndarray, score: np.ndarray, share: float = 0.05) -> dict[str, float]:
    """Among stated-conservative customers: AUC of the aggressive score vs truth, precision in the top `share`."""
    y = truth_positive.astype(int)
    if len(y) == 0 or y.min() == y.max():
        return {"hidden_aggressive_auc": float("nan"), "hidden_aggressive_precision_at_5pct": float("nan")}
    return {
        "hidden_aggressive_auc": float(skm.roc_auc_score(y, score)),
        "hidden_aggressive_precision_at_5pct": precision_at(y, score, share),
        "hidden_aggressive_base_rate": float(y.mean()),
    }


def latent_class_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """A classification against the true latent class (simulated data): `latent_risk_accuracy`,
    `latent_risk_macro_f1` (predicted = argmax) and `latent_risk_auc_ovr` (one-vs-rest, macro; a
    one-hot `proba`, e.g. the questionnaire's class, is a valid if tied score) and `latent_risk_ece`."""
    y = np.asarray(y, dtype=int)
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    present = np.unique(y)
    auc = float("nan")
    if len(present) == k:
        auc = float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(k))))
    return {
        "latent_risk_accuracy": float(skm.accuracy_score(y, pred)),
        "latent_risk_macro_f1": float(skm.f1_score(y, pred, average="macro", labels=list(range(k)))),
        "latent_risk_auc_ovr": auc,
        # top-label calibration against the TRUE class: the yardstick for probabilities meant as a
        # posterior over the latent appetite (a one-hot questionnaire scores 1 - accuracy)
        "latent_risk_ece": expected_calibration_error(y, np.asarray(proba, dtype=float)),
    }
