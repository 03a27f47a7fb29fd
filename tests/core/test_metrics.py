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
