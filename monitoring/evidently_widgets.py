"""Evidently's DataDriftPreset without the widgets nobody sees (#18: the demo's drift step).

`DataDriftPreset` (Evidently 0.7) makes one `ValueDrift` metric per column, and each builds two
plotly figures (drift over the index, the distributions) as its own widget, from plot data
(histograms, binned means, correlations) computed for them alone. The preset's `render` drops
those widgets: what the report shows is `DatasetDriftMetric`'s counters and `DataDriftTable`'s
table, whose rows carry their own copies of the same two figures, computed by the table. Neither
the HTML (`Snapshot.get_html_str`: the top-level widgets) nor the workspace UI (a snapshot's
top-level widgets and its metric values) shows a child metric's widget; it was only built (~1 of
the ~2.8 CPU-s of a 20-column report at 3k rows) and stored in the snapshot (half of its 1.4 MB).

`value_drift_widgets_skipped()`: while a report runs, a `ValueDrift` metric computes its drift
test only (Evidently's own test, chosen and called as Evidently chooses and calls it) and builds an
empty widget. The metric values, the top-level widgets, the HTML and what the UI shows are
unchanged (`tests/monitoring/test_evidently_widgets.py` compares both ways on the demo's kind of data). If an
Evidently upgrade moves either hook, nothing is skipped and the report is the full one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pandas as pd

_LOCK = threading.Lock()  # one patched run at a time in this process (the hooks are module/class attributes)


def _no_widget(self, *args, **kwargs) -> list:
    return []


def _test_only(full):
    """`get_one_column_drift` as `ValueDriftCalculation.calculate` uses it (the test's name, score, threshold
    and verdict), without the plot data of its widget; anything but a clean numerical or categorical column
    goes to Evidently's own function (its errors included)."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    def drift(*, current_data, reference_data, column_name, options, column_type, **kwargs):
        def evidently():
            return full(
                current_data=current_data,
                reference_data=reference_data,
                column_name=column_name,
                options=options,
                column_type=column_type,
                **kwargs,
            )

        if column_type not in (ColumnType.Numerical, ColumnType.Categorical):
            return evidently()
        if column_name not in current_data or column_name not in reference_data:
            return evidently()
        # as get_one_column_drift: infinities are missing values, missing values are dropped
        current = current_data[column_name].replace([-np.inf, np.inf], np.nan).dropna()
        reference = reference_data[column_name].replace([-np.inf, np.inf], np.nan).dropna()
        numeric = pd.api.types.is_numeric_dtype(current) and pd.api.types.is_numeric_dtype(reference)
        if current.empty or reference.empty or (column_type == ColumnType.Numerical and not numeric):
            return evidently()
        stattest = options.get_feature_stattest_func(column_name, column_type.value)
        threshold = options.get_threshold(column_name, column_type.value)
        test = get_stattest(reference, current, column_type, stattest)
        result = test(reference, current, column_type, threshold)
        return SimpleNamespace(
            column_name=column_name,
            column_type=column_type.value,
            stattest_name=test.display_name,
            drift_score=result.drift_score,
            drift_detected=result.drifted,
            stattest_threshold=result.actual_threshold,
        )

    return drift


@contextmanager
def value_drift_widgets_skipped() -> Iterator[bool]:
    """While the block runs, `ValueDrift` metrics compute their test only and build no widget; yields
    whether Evidently's hooks were found (False: the full report is built)."""
    try:
        from evidently.metrics import column_statistics
    except ImportError:  # another Evidently layout: build everything
        yield False
        return
    calculation = getattr(column_statistics, "ValueDriftCalculation", None)
    render = getattr(calculation, "__dict__", {}).get("_render")
    full = getattr(column_statistics, "get_one_column_drift", None)
    if not callable(render) or not callable(full):
        yield False
        return
    with _LOCK:
        calculation._render = _no_widget  # type: ignore[union-attr]
        column_statistics.get_one_column_drift = _test_only(full)
        try:
            yield True
        finally:
            calculation._render = render  # type: ignore[union-attr]
            column_statistics.get_one_column_drift = full
