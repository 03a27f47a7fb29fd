"""CBPE: the AUC estimated from calibrated scores alone is close to the realised AUC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from monitoring.cbpe import estimate_binary_performance, expected_roc_auc


def _calibrated_period(n: int, seed: int, *, shift: float = 0.0, base: float = -2.6):
    """Scores p = P(churn | x) exactly, and churn drawn from them: a calibrated model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)  # e.g. a falling-engagement index; shift = a later, riskier period
    p = 1 / (1 + np.exp(-(base + 1.3 * x)))
    y = (rng.random(n) < p).astype(float)
    return p, y


@pytest.mark.parametrize("seed", range(5))
def test_estimated_auc_within_003_of_realised_on_a_later_shifted_period(seed):
    p, y = _calibrated_period(20_000, seed, shift=0.5)  # the later period has drifted
    est = expected_roc_auc(p)
    assert abs(est - roc_auc_score(y, p)) < 0.03


def test_estimate_follows_a_change_in_discrimination():
    # a later period where the population is more homogeneous: the realised AUC falls, and so does the estimate
    p0, y0 = _calibrated_period(30_000, 1)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.4, 30_000)
    p1 = 1 / (1 + np.exp(-(-2.6 + 1.3 * x)))
    y1 = (rng.random(30_000) < p1).astype(float)
    assert roc_auc_score(y1, p1) < roc_auc_score(y0, p0) - 0.1
    assert expected_roc_auc(p1) < expected_roc_auc(p0) - 0.1
    assert abs(expected_roc_auc(p1) - roc_auc_score(y1, p1)) < 0.03


def test_expected_auc_handles_ties_like_sklearn_in_expectation():
    # two score values only: the expected AUC has a closed form
    p = np.array([0.2] * 500 + [0.6] * 500)
    pos = np.array([0.2 * 500, 0.6 * 500])
    neg = np.array([0.8 * 500, 0.4 * 500])
    self_pairs = 500 * 0.2 * 0.8 + 500 * 0.6 * 0.4
    expected = (pos[1] * neg[0] + 0.5 * (pos @ neg - self_pairs)) / (pos.sum() * neg.sum() - self_pairs)
    assert expected_roc_auc(p) == pytest.approx(expected)
    assert np.isnan(expected_roc_auc([0.3]))


def test_expected_threshold_metrics_match_realised():
    p, y = _calibrated_period(50_000, 3, base=-0.5)
    est = estimate_binary_performance(p, threshold=0.5)
    called = p >= 0.5
    tp = float((called & (y == 1)).sum())
    assert est["precision"] == pytest.approx(tp / called.sum(), abs=0.02)
    assert est["recall"] == pytest.approx(tp / y.sum(), abs=0.02)
    assert est["accuracy"] == pytest.approx(float((called == (y == 1)).mean()), abs=0.02)
    assert est["brier"] == pytest.approx(float(np.mean((p - y) ** 2)), abs=0.005)
    assert est["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=0.03)
    assert est["rows"] == 50_000
    top = np.argsort(-p)[:5_000]
    assert est["precision_top10"] == pytest.approx(float(y[top].mean()), abs=0.02)
    assert est["recall_top10"] == pytest.approx(float(y[top].sum() / y.sum()), abs=0.02)
