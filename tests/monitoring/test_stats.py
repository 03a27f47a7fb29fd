"""The vectorised statistics equal Evidently's DataDriftPreset defaults, column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring.config import DriftThresholds
from monitoring.stats import (
    CHI_SQUARE,
    JENSEN_SHANNON,
    KS,
    WASSERSTEIN,
    Z_TEST,
    categorical_drift,
    numerical_drift,
    table_drift,
    wasserstein_sorted,
)


@pytest.mark.parametrize("n,m", [(1, 1), (5, 7), (1000, 1000), (1001, 2999), (30_000, 17_777)])
def test_wasserstein_equals_scipy(n, m):
    rng = np.random.default_rng(n + m)
    a, b = rng.lognormal(0, 1, n), rng.lognormal(0.1, 1.2, m)
    assert wasserstein_sorted(np.sort(a), np.sort(b)) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_wasserstein_with_ties_equals_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 20, 3001).astype(float), rng.integers(0, 22, 4500).astype(float)
    assert wasserstein_sorted(np.sort(a), np.sort(b)) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_method_selection_follows_evidently_defaults():
    rng = np.random.default_rng(0)
    t = DriftThresholds()
    big = lambda x: pd.Series(x)
    assert numerical_drift("x", big(rng.normal(size=2000)), big(rng.normal(size=2000)), t).method == WASSERSTEIN
    assert (
        numerical_drift("x", big(rng.integers(0, 4, 2000) * 1.0), big(rng.integers(0, 4, 900) * 1.0), t).method
        == JENSEN_SHANNON
    )
    assert numerical_drift("x", big(rng.normal(size=1000)), big(rng.normal(size=5000)), t).method == KS
    assert (
        numerical_drift("x", big(rng.integers(0, 4, 500) * 1.0), big(rng.integers(0, 4, 500) * 1.0), t).method
        == CHI_SQUARE
    )
    assert (
        numerical_drift("x", big(rng.integers(0, 2, 500) * 1.0), big(rng.integers(0, 2, 500) * 1.0), t).method == Z_TEST
    )
    assert (
        categorical_drift("c", big(rng.choice(list("ab"), 800)), big(rng.choice(list("ab"), 800)), t).method == Z_TEST
    )
    assert (
        categorical_drift("c", big(rng.choice(list("abc"), 800)), big(rng.choice(list("abc"), 800)), t).method
        == CHI_SQUARE
    )
    assert (
        categorical_drift("c", big(rng.choice(list("abc"), 1800)), big(rng.choice(list("abc"), 80)), t).method
        == JENSEN_SHANNON
    )


def test_nan_and_inf_are_dropped_and_all_nan_is_not_tested():
    t = DriftThresholds()
    ref = pd.Series([np.nan] * 10 + list(np.linspace(0, 1, 2000)))
    cur = pd.Series([np.inf, -np.inf] + list(np.linspace(0, 1, 2000)))
    res = numerical_drift("x", ref, cur, t)
    assert res.rows_reference == 2000 and res.rows_current == 2000
    assert res.statistic == pytest.approx(0.0) and not res.drifted
    empty = numerical_drift("x", pd.Series([np.nan, np.nan]), cur, t)
    assert empty.method == "empty" and not empty.drifted


def _parity_frames(n: int, seed: int):
    rng = np.random.default_rng(seed)

    def window(shift: bool, k: int):
        return pd.DataFrame(
            {
                "aum": rng.lognormal(11 + (0.5 if shift else 0), 1.4, k),
                "login_count_30d": rng.poisson(8 if shift else 6, k).astype(float),
                "deposit_share": rng.beta(5, 2, k),
                "salary_months_6m": rng.choice([0.0, 3.0, 6.0], k, p=[0.1, 0.2, 0.7] if shift else [0.3, 0.1, 0.6]),
                "payroll_at_bank": (rng.random(k) < (0.3 if shift else 0.6)).astype(float),
                "is_business_owner": (rng.random(k) < 0.08).astype(float),
                "days_since_last_login": np.where(rng.random(k) < 0.1, np.nan, rng.exponential(6, k)),
                "region": rng.choice(["metro", "urban", "rural"], k, p=[0.2, 0.3, 0.5] if shift else [0.4, 0.4, 0.2]),
                "stated_risk": rng.choice(["conservative", "balanced", "aggressive"], k),
                "has_app": rng.choice(["yes", "no"], k, p=[0.8, 0.2] if shift else [0.5, 0.5]),
            }
        )

    return window(False, n), window(True, n + 37)


@pytest.mark.parametrize("n", [800, 3000], ids=["p-value tests", "distance tests"])
def test_verdicts_and_statistics_equal_plain_evidently(n):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = _parity_frames(n, seed=n)
    categorical = ["region", "stated_risk", "has_app"]
    numerical = [c for c in ref.columns if c not in categorical]
    ours = {c.column: c for c in table_drift(ref, cur, numerical, categorical)}
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    snap = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    seen = 0
    for metric in snap.dict()["metrics"]:
        conf = metric["config"]
        if not conf["type"].endswith("ValueDrift"):
            continue
        mine = ours[conf["column"]]
        assert mine.method == conf["method"], conf["column"]
        assert mine.threshold == pytest.approx(conf["threshold"])
        assert mine.statistic == pytest.approx(float(metric["value"]), rel=1e-6, abs=1e-9), conf["column"]
        seen += 1
    assert seen == len(ref.columns)
    drifted = {c for c, r in ours.items() if r.drifted}
    assert {"aum", "login_count_30d", "salary_months_6m", "payroll_at_bank", "region", "has_app"} <= drifted
    assert "stated_risk" not in drifted and "deposit_share" not in drifted
