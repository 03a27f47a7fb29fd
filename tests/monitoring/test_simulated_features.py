"""Drift on real feature snapshots from the simulator (features.simulate + features.panel).

Windows of 1,000 customers: Evidently's p-value regime (K-S / chi-square / z), as it would
run on windows this size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.config import DriftConfig
from monitoring.drift import evaluate
from tests.monitoring import scenarios

pytestmark = pytest.mark.slow

EARLY, LATE = "2024-08-31", "2025-03-31"


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> pd.DataFrame:
    from features.panel import build_panel
    from features.simulate import simulate

    raw = tmp_path_factory.mktemp("sim_raw")
    out = tmp_path_factory.mktemp("sim_features")
    simulate(raw, customers=2_000, months=18, seed=7)
    build_panel(raw, out, as_of=[EARLY, LATE], latest=False)
    return pd.read_parquet(out / "panel.parquet")


def _halves(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = np.random.default_rng(seed).permutation(len(frame))
    half = len(frame) // 2
    return frame.iloc[idx[:half]], frame.iloc[idx[half:]]


def test_random_customer_halves_of_one_snapshot_are_not_drift(panel):
    snap = panel[panel["as_of"] == LATE]
    statuses = []
    for seed in range(20):
        ref, cur = _halves(snap, seed)
        result = evaluate(ref, cur, DriftConfig(workers=1))
        assert result.roles.source == "registry" and len(result.roles.features) > 100
        statuses.append(result.status)
    assert statuses.count("drift") <= 2, statuses


# Injected columns that must be found at 1,000 rows. Not required: `aum_deposit` under
# rate_cut (a ~30% proportional cut of a balance spread over five orders of magnitude: K-S
# p ~ 0.3, PSI ~ 0.05 at this size) and `advisor_txn_count_90d` under channel_mix (the
# simulator's customers almost never use an advisor, so thinning a column of zeros is no shift).
MUST_FIND = {
    "rate_cut": {"deposit_share", "outflow_external_bank_90d", "outflow_brokerage_90d"},
    "channel_mix": {"digital_txn_share_90d", "branch_txn_count_90d"},
}


@pytest.mark.parametrize("scenario", sorted(MUST_FIND))
@pytest.mark.parametrize("seed", [0, 1])
def test_injected_shift_on_real_features_is_found_on_the_right_columns(panel, scenario, seed):
    snap = panel[panel["as_of"] == LATE]
    ref, cur = _halves(snap, seed)
    before = set(evaluate(ref, cur).drifted)  # chance findings of this split (correlated blocks at p < 0.05)
    after = set(evaluate(ref, scenarios.SCENARIOS[scenario](cur)).drifted)
    assert MUST_FIND[scenario] <= after
    # the injection adds its own columns and nothing else
    assert after - before <= set(scenarios.SCENARIO_COLUMNS[scenario])


def test_the_simulators_own_rate_cut_shows_in_market_features(panel):
    early, late = panel[panel["as_of"] == EARLY], panel[panel["as_of"] == LATE]
    result = evaluate(early, late)
    # deposit_rate_1y fell 2.00 -> 1.75 between the snapshots; the equity index turned. Both are one
    # value per date: context with their values at each date, never a per-customer drift verdict.
    from features.registry import features_of_family

    assert set(features_of_family("market")) & set(panel.columns) <= set(result.roles.context)
    assert not set(result.roles.context) & set(result.drifted)
    rate = result.context["deposit_rate_1y"]
    assert rate["reference_value"] == pytest.approx(2.0) and rate["current_value"] == pytest.approx(1.75)
    assert "varies_within_date" not in rate
