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
