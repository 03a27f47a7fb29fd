"""End to end on the simulator: simulate → features → train tier, churn, risk (few trials) → each beats its baseline.

The full-size numbers (20,000 customers, default budgets) are in benchmarks/RESULTS.md, "## Models".
"""

from __future__ import annotations

import pytest

from training.spec import builtin_spec
from training.train import find_truth, fit_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from features.panel import build_panel
    from features.simulate import simulate

    root = tmp_path_factory.mktemp("sim")
    simulate(root / "raw", customers=4000, months=15, seed=11)
    build_panel(root / "raw", root / "features")
    return root


@pytest.fixture(scope="module")
def panel(simulated):
    import pandas as pd

    return pd.read_parquet(simulated / "features" / "panel.parquet")


@pytest.fixture(scope="module")
def truth(simulated):
    import pandas as pd

    return pd.read_parquet(simulated / "raw" / "truth.parquet")


def test_churn_beats_logistic_regression(simulated, panel):
    r = fit_task(builtin_spec("churn", simulated / "features"), panel, seed=0, trials=3)
    assert r.metrics["roc_auc"] > r.baseline["roc_auc"]
    assert r.metrics["pr_auc"] > r.baseline["pr_auc"]


def test_tier_beats_persistence(simulated, panel):
    r = fit_task(builtin_spec("tier", simulated / "features"), panel, seed=0, trials=3)
    assert r.metrics["log_loss"] < r.baseline["log_loss"]
    assert r.metrics["upgrade_auc"] > r.baseline["upgrade_auc"]


def test_risk_ranks_hidden_aggressive_level_with_the_yearly_browsing_heuristic(simulated, panel, truth):
    r = fit_task(builtin_spec("risk", simulated / "features"), panel, seed=0, trials=3, truth=truth)
    assert r.model.kind == "ordinal" and r.model.classes == ["conservative", "balanced", "aggressive"]
    assert r.metrics["roc_auc"] > r.baseline["roc_auc"]  # on the free customers' own label
    # Measured on this panel: model 0.873, the 365-day browsing/transfer heuristic (the spec's baseline)
    # 0.878, its 90-day version 0.670. At 3k-4k customers the heuristic is level with or above the model;
    # at 20k the model is slightly above it (benchmarks/RESULTS.md, "risk").
    assert r.metrics["hidden_aggressive_auc"] >= 0.80
    assert r.metrics["hidden_aggressive_auc"] >= r.baseline["hidden_aggressive_auc"] - 0.03


def test_truth_is_found_next_to_the_features_or_given(simulated, tmp_path):
    assert find_truth(tmp_path) is None
    (tmp_path / "truth.parquet").write_bytes((simulated / "raw" / "truth.parquet").read_bytes())
    assert find_truth(tmp_path) == tmp_path / "truth.parquet"
