"""Realised performance: logged predictions joined with labels from a later feature build."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from core import metrics as M
from core.errors import InputError
from core.tasks import CHURN_MIN_AUM, TASKS
from monitoring.performance import (
    binary_performance,
    join_labels,
    multiclass_performance,
    positive_score_column,
    realised_performance,
)

CHURN, RISK, TIER = TASKS["churn"], TASKS["risk"], TASKS["tier"]


def _panel(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for as_of in ("2025-01-31", "2025-02-28"):
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": np.arange(n, dtype=np.int64),
                    "as_of": pd.Timestamp(as_of),
                    "churn": np.where(rng.random(n) < 0.1, np.nan, (rng.random(n) < 0.2).astype(float)),
                    "tier_future": rng.choice(["mass", "affluent", "hnw"], n, p=[0.7, 0.25, 0.05]),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_join_on_as_of_when_logged():
    panel = _panel()
    preds = pd.DataFrame(
        {"customer_id": [1, 2, 3], "as_of": pd.to_datetime(["2025-02-28"] * 3), "churn_proba": [0.1, 0.2, 0.3]}
    )
    joined = join_labels(preds, panel, "churn")
    expected = panel[(panel.as_of == "2025-02-28") & panel.customer_id.isin([1, 2, 3])].dropna(subset=["churn"])
    assert list(joined["customer_id"]) == list(expected["customer_id"])
    assert list(joined["churn"]) == list(expected["churn"])


def test_join_on_ts_takes_the_latest_as_of_before_the_prediction():
    panel = _panel()
    preds = pd.DataFrame(
        {
            "customer_id": [5, 5, 6],
            "ts": pd.to_datetime(["2025-02-10 10:00", "2025-03-05 09:00", "2024-06-01 00:00"], utc=True),
            "churn_proba": [0.1, 0.2, 0.3],
        }
    )
    joined = join_labels(preds, panel.fillna({"churn": 0.0}), "churn")
    assert len(joined) == 2  # customer 6's prediction predates every labelled as_of
    assert list(joined["as_of"]) == [pd.Timestamp("2025-01-31"), pd.Timestamp("2025-02-28")]


def test_realised_binary_performance_and_no_match_error():
    panel = _panel(2000)
    latest = panel[panel.as_of == "2025-02-28"].dropna(subset=["churn"])
    rng = np.random.default_rng(1)
    proba = np.clip(0.2 + 0.3 * (latest["churn"].to_numpy() - 0.2) + rng.normal(0, 0.1, len(latest)), 0.001, 0.999)
    preds = latest[["customer_id", "as_of"]].assign(churn_proba=proba)
    perf = realised_performance("churn", preds, panel)
    assert perf["rows_matched"] == len(latest)
    assert perf["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(latest["churn"], proba))
    assert set(perf["metrics"]) >= {"roc_auc", "pr_auc", "ks", "brier", "lift_at_10"}
    with pytest.raises(InputError, match="matched a label"):
        realised_performance("churn", preds.assign(as_of=pd.Timestamp("2030-01-01")), panel)
    with pytest.raises(InputError, match="unknown task"):
        realised_performance("nope", preds, panel)


def test_realised_multiclass_performance():
    panel = _panel(600)
    latest = panel[panel.as_of == "2025-01-31"]
    onehot = (
        pd.get_dummies(latest["tier_future"]).reindex(columns=["mass", "affluent", "hnw"], fill_value=0).to_numpy(float)
    )
    proba = 0.7 * onehot + 0.1
    preds = latest[["customer_id", "as_of"]].copy()
    for i, c in enumerate(["mass", "affluent", "hnw"]):
        preds[TIER.score_column(c)] = proba[:, i]
    perf = realised_performance("tier", preds, panel)
    assert perf["metrics"]["accuracy"] == pytest.approx(1.0)
    assert perf["metrics"]["macro_f1"] == pytest.approx(1.0)
    assert perf["metrics"]["log_loss"] == pytest.approx(-np.log(0.8), rel=1e-6)


def test_metric_functions_on_edge_cases():
    out = binary_performance([0, 0, 0], [0.1, 0.2, 0.3])
    assert np.isnan(out["roc_auc"]) and np.isnan(out["lift_at_10"]) and out["rows"] == 3
    m = multiclass_performance(["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    assert m["accuracy"] == 1.0
    with pytest.raises(InputError, match="no score column"):
        multiclass_performance(["a", "c"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])


def test_realised_and_training_time_metrics_agree_on_the_same_rows():
    """Monitoring's realised metrics are training's (`core.metrics`) on the same labels and scores.

    15 rows: the top 10% is 1.5 rows, where the old monitoring definition (ceil: 2 rows) and
    training's weighted cumulative cut (1 row) give different lifts, so this fails if they part."""
    rng = np.random.default_rng(7)
    n = 15
    y = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0], dtype=float)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    p[np.argmax(p)] = 0.99  # the single top row ...
    y[np.argmax(p)] = 1.0  # ... is a positive; the second-highest row below
    order = np.argsort(-p)
    y[order[1]] = 0.0
    preds = pd.DataFrame(
        {"customer_id": np.arange(n), "as_of": pd.Timestamp("2025-01-31"), "aum": CHURN_MIN_AUM, "churn_proba": p}
    )
    panel = preds[["customer_id", "as_of"]].assign(churn=y)
    realised = realised_performance("churn", preds, panel)["metrics"]
    training = M.task_metrics("binary", y, np.column_stack([1 - p, p]))
    for name, value in training.items():
        assert realised[name] == pytest.approx(value, abs=1e-12), name
    assert realised["lift_at_10"] == pytest.approx(1.0 / y.mean())  # one row, a positive


def test_realised_performance_counts_the_eligible_population_only():
    """Churn's label is defined above the AUM minimum: a row below it never counts, even if a
    (stale) label row exists for it."""
    n = 400
    rng = np.random.default_rng(2)
    aum = np.where(np.arange(n) < 100, CHURN_MIN_AUM / 10, CHURN_MIN_AUM * 5)
    y = (rng.random(n) < 0.3).astype(float)
    p = np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.1, n)
    p[:100] = 0.99 - 0.98 * y[:100]  # the ineligible rows are scored exactly wrong
    preds = pd.DataFrame(
        {"customer_id": np.arange(n), "as_of": pd.Timestamp("2025-01-31"), "aum": aum, CHURN.score_column(): p}
    )
    panel = preds[["customer_id", "as_of"]].assign(churn=y)
    perf = realised_performance("churn", preds, panel)
    assert perf["rows_eligible"] == 300 and perf["rows_matched"] == 300
    assert perf["metrics"]["roc_auc"] == pytest.approx(M.binary_metrics(y[100:], p[100:])["roc_auc"])
    assert positive_score_column(CHURN) == "churn_proba"


def test_estimate_check_flags_a_realised_auc_below_the_estimate():
    from monitoring.performance import ESTIMATE_TOLERANCE, estimate_check

    ok = estimate_check({"roc_auc": 0.93}, {"roc_auc": 0.915})
    assert ok["concept_drift_suspected"] is False and ok["gap"] == pytest.approx(0.015)
    bad = estimate_check({"roc_auc": 0.93}, {"roc_auc": 0.93 - ESTIMATE_TOLERANCE - 0.01})
    assert bad["concept_drift_suspected"] is True and bad["tolerance"] == ESTIMATE_TOLERANCE
    assert estimate_check(None, {"roc_auc": 0.9}) is None
    assert estimate_check({"accuracy": 0.8}, {"accuracy": 0.7}) is None
    assert estimate_check({"roc_auc": float("nan")}, {"roc_auc": 0.9}) is None
