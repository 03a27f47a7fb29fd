"""Performance before labels arrive: confidence-based performance estimation (CBPE).

The idea is NannyML's CBPE: if the model's probabilities are calibrated, a row scored p is
a positive with probability p, so it counts as p of a positive and (1 - p) of a negative.
Summing those weights gives an expected confusion matrix at any threshold, and the expected
ROC AUC is the AUC with every row entered twice, once as a positive of weight p and once
as a negative of weight 1 - p (pairs of a row with itself excluded). These are ratios of
expectations, accurate to O(1/n) on windows of thousands of rows.

The estimate is as good as the calibration on the current window: it tracks a change in
the score distribution (covariate shift) but cannot see concept drift (the same features
meaning a different outcome) — only realised performance (`monitoring.performance`) can.

A model calibrated on a small validation split can be overconfident in the tail (churn: most
customers scored ~0.002 while ~1% of them churn), which inflates the expected AUC. As NannyML's
CBPE does, the scores are first recalibrated on the reference period's labelled rows when there
are enough of them (`ReferenceCalibration`: a logistic fit on the score's logit, which keeps the
model's ranking, so the estimate has no tie bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _clean(proba) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    return np.clip(p, 0.0, 1.0)


def expected_roc_auc(proba) -> float:
    """Expected ROC AUC of a binary classifier whose calibrated scores are `proba`.

    AUC = P(score of a positive > score of a negative) + 0.5 P(tie), with positive weight p_i
    and negative weight 1 - p_j on every pair i != j. Vectorised over the sorted unique scores.
    """
    p = _clean(proba)
    if p.size < 2:
        return float("nan")
    uniq, inverse = np.unique(p, return_inverse=True)
    pos = np.bincount(inverse, weights=p, minlength=uniq.size)  # expected positives per score value
    neg = np.bincount(inverse, weights=1.0 - p, minlength=uniq.size)
    neg_below = np.cumsum(neg) - neg  # negatives strictly below each score value
    self_pairs = np.sum(p * (1.0 - p))  # a row is never paired with itself
    # Within a tie group: pos_g * neg_g pairs tie (half credit), minus the self pairs.
    tie = pos * neg
    numerator = np.sum(pos * neg_below) + 0.5 * (np.sum(tie) - self_pairs)
    denominator = pos.sum() * neg.sum() - self_pairs
    if denominator <= 0:
        return float("nan")
    return float(numerator / denominator)


def expected_average_precision(proba) -> float:
    """Expected average precision (the PR AUC scikit-learn reports), ties grouped like sklearn."""
    p = _clean(proba)
    if p.size == 0 or p.sum() <= 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    # group ends of tied scores: precision and recall are only defined at distinct thresholds
    ends = np.r_[np.nonzero(np.diff(ps))[0], ps.size - 1]
    tp = np.cumsum(ps)[ends]
    k = ends + 1.0
    precision = tp / k
    recall = tp / p.sum()
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(precision * d_recall))


def expected_confusion(proba, threshold: float = 0.5) -> dict[str, float]:
    """Expected counts tp / fp / fn / tn when rows with p >= threshold are called positive."""
    p = _clean(proba)
    called = p >= threshold
    tp = float(p[called].sum())
    fp = float((1.0 - p[called]).sum())
    fn = float(p[~called].sum())
    tn = float((1.0 - p[~called]).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def estimate_binary_performance(proba, threshold: float = 0.5) -> dict[str, float]:
    """Every expected metric CBPE gives for a binary score: AUCs, Brier, and threshold metrics.

    `brier` is sum p(1-p)/n, the Brier score of calibrated probabilities; `precision`,
    `recall`, `f1`, `accuracy` call rows with p >= `threshold` positive; `precision_top10` and
    `recall_top10` call the 10% highest scores positive (ties broken arbitrarily).
    """
    p = _clean(proba)
    cm = expected_confusion(p, threshold)
    precision = _ratio(cm["tp"], cm["tp"] + cm["fp"])
    recall = _ratio(cm["tp"], cm["tp"] + cm["fn"])
    # the top 10% by score: what a retention campaign would contact (defined at any base rate)
    top = np.sort(p)[::-1][: max(1, int(np.ceil(0.1 * p.size)))] if p.size else p
    return {
        "roc_auc": expected_roc_auc(p),
        "pr_auc": expected_average_precision(p),
        "brier": float(np.mean(p * (1.0 - p))) if p.size else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "accuracy": _ratio(cm["tp"] + cm["tn"], float(p.size)),
        "precision_top10": float(top.mean()) if top.size else float("nan"),
        "recall_top10": _ratio(float(top.sum()), float(p.sum())),
        "positive_rate": float(p.mean()) if p.size else float("nan"),
        "threshold": float(threshold),
        "rows": int(p.size),
    }


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class ReferenceCalibration:
    """p -> sigmoid(a * logit(p) + b), fit on the reference's labelled rows."""

    slope: float
    intercept: float
    rows: int
    positives: int

    def __call__(self, proba) -> np.ndarray:
        z = self.slope * _logit(np.asarray(proba, dtype=np.float64)) + self.intercept
        return 1 / (1 + np.exp(-z))

    @classmethod
    def fit(cls, proba, labels, *, min_rows: int = 200, min_positives: int = 10) -> ReferenceCalibration | None:
        """None when the reference has too few labelled rows or positives to fit two numbers."""
        from sklearn.linear_model import LogisticRegression

        p = np.asarray(proba, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        ok = np.isfinite(p) & np.isfinite(y)
        p, y = p[ok], y[ok]
        positives = int(y.sum())
        if p.size < min_rows or positives < min_positives or positives == p.size:
            return None
        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y.astype(int))
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]), int(p.size), positives)
