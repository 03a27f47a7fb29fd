"""`task_metric` is `task_metrics(...)[name]` computed alone (#18: the bootstrap recomputes one metric)."""

from __future__ import annotations

import numpy as np
import pytest

from core import metrics as M


@pytest.mark.parametrize("kind", ["binary", "multiclass", "ordinal", "regression"])
def test_each_metric_alone_equals_the_kinds_table_bitwise(kind):
    rng = np.random.default_rng(3)
    n = 400
    weight = rng.random(n)
    if kind == "regression":
        y, proba = rng.normal(size=n), rng.normal(size=n)
    elif kind == "binary":
        y = rng.integers(0, 2, n)
        p = rng.random(n)
        proba = np.column_stack([1 - p, p])
    else:
        y, proba = rng.integers(0, 3, n), rng.dirichlet([1, 1, 1], n)
    for w in (None, weight):
        table = M.task_metrics(kind, y, proba, w)
        assert table  # every kind has headline metrics
        for name, value in table.items():
            assert M.task_metric(kind, name, y, proba, w) == value, (kind, name)
    assert np.isnan(M.task_metric(kind, "no_such_metric", y, proba))


@pytest.mark.parametrize("kind", ["multiclass", "ordinal"])
@pytest.mark.parametrize("name", sorted(M.ROW_MEANS))
def test_a_mean_of_row_values_is_the_metric_on_every_resample_bitwise(kind, name):
    rng = np.random.default_rng(5)
    n = 300
    y = rng.integers(0, 4, n)
    proba = rng.dirichlet([0.3, 1, 1, 2], n)
    proba[:5] = [1.0, 0.0, 0.0, 0.0]  # certain, right or wrong: the clipping at both ends
    proba[5:10] = [1e-300, 1 - 1e-300, 0.0, 0.0]
    weight = rng.random(n) * 3
    rows = M.row_values(kind, name, y, proba)
    assert rows is not None and rows.shape == (n,)
    for w in (None, weight):
        for _ in range(40):
            idx = rng.integers(0, n, n)
            wb = None if w is None else w[idx]
            assert float(np.average(rows[idx], weights=wb)) == M.task_metric(kind, name, y[idx], proba[idx], wb)


def test_metrics_that_are_not_row_means_have_no_row_values():
    rng = np.random.default_rng(0)
    y, proba = rng.integers(0, 3, 50), rng.dirichlet([1, 1, 1], 50)
    assert M.row_values("multiclass", "macro_f1", y, proba) is None
    assert M.row_values("ordinal", "roc_auc", y, proba) is None
    assert M.row_values("binary", "brier", y % 2, proba[:, :2]) is None
    assert M.row_values("multiclass", "log_loss", y + 3, proba) is None  # labels past the columns: sklearn says so
    assert M.row_values("multiclass", "log_loss", y, proba.astype(np.float32)) is None  # sklearn's float32 eps


@pytest.mark.parametrize("kind", ["binary", "ordinal"])
def test_a_resampled_roc_auc_is_sklearns_on_the_resampled_rows(kind):
    rng = np.random.default_rng(11)
    n = 250
    if kind == "binary":
        y = (rng.random(n) < 0.3).astype(float)
        p = np.round(np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1), 2)  # many ties
        proba = np.column_stack([1 - p, p])
    else:
        y = rng.integers(0, 3, n)
        proba = np.round(rng.dirichlet([1, 1, 1], n), 2)
    weight = rng.random(n) * 2
    for w in (None, weight):
        auc = M.resampled_metric(kind, "roc_auc", y, proba, w)
        assert auc is not None
        for _ in range(40):
            idx = rng.integers(0, n, n)
            wb = None if w is None else w[idx]
            assert auc(idx) == pytest.approx(M.task_metric(kind, "roc_auc", y[idx], proba[idx], wb), rel=1e-13, abs=0)


def test_resampled_metrics_leave_what_sklearn_treats_otherwise_to_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 40)
    p = rng.random(40)
    proba = np.column_stack([1 - p, p])
    assert M.resampled_metric("binary", "pr_auc", y, proba) is None
    assert M.resampled_metric("binary", "roc_auc", y + 1, proba) is None  # labels other than 0/1
    assert M.resampled_metric("binary", "roc_auc", y, np.where(p[:, None] > 0.9, np.nan, proba)) is None
    assert M.resampled_metric("binary", "roc_auc", y, proba, -np.ones(40)) is None
    zero = np.where(y == 1, 0.0, 1.0)  # every positive weighs nothing: sklearn's ROC is undefined
    assert np.isnan(M.resampled_metric("binary", "roc_auc", y, proba, zero)(np.arange(40)))
