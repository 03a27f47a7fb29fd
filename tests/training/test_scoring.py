"""score_frame: the one scoring function for batch and HTTP (columns, actions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.scoring import score_frame
from training.spec import builtin_spec
from training.train import fit_task

from .conftest import small_data_spec


@pytest.fixture(scope="module")
def models(panel_and_truth, tmp_path_factory):
    panel, truth = panel_and_truth
    d = tmp_path_factory.mktemp("f")
    return {
        t: fit_task(small_data_spec(builtin_spec(t, d)), panel, seed=0, trials=2, truth=truth).model
        for t in ("tier", "churn", "risk")
    }


def test_score_frame_columns(models, panel_and_truth):
    panel, _ = panel_and_truth
    latest = panel[panel["as_of"] == panel["as_of"].max()].drop(columns=["tier_future", "churn", "revealed_risk"])
    out = score_frame(latest, models)
    expected = {
        "customer_id",
        "tier",
        "tier_proba_mass",
        "tier_proba_affluent",
        "tier_proba_hnw",
        "upgrade_proba",
        "churn_proba",
        "churn",
        "churn_driver",
        "risk_appetite",
        "risk_proba_conservative",
        "risk_proba_balanced",
        "risk_proba_aggressive",
        "hidden_aggressive",
        "stated_risk",
        "risk_gap",
        "lifecycle_stage",
        "relationship_depth",
        "segment",
        "business_segment",
        "next_action",
    }
    assert expected <= set(out.columns)
    assert len(out) == len(latest) and (out.index == latest.index).all()
    np.testing.assert_allclose(out[["tier_proba_mass", "tier_proba_affluent", "tier_proba_hnw"]].sum(axis=1), 1.0)
    # hidden aggressive only among stated conservatives, and they are sent to a person, never a product
    assert (latest.loc[out["hidden_aggressive"], "stated_risk"] == "conservative").all()
    assert out["hidden_aggressive"].any()
    assert set(out.loc[out["hidden_aggressive"], "next_action"]) <= {
        "suitability_reassessment",
        "private_banker_retention_call",
    }
    risk_cols = ["risk_proba_conservative", "risk_proba_balanced", "risk_proba_aggressive"]
    np.testing.assert_allclose(out[risk_cols].sum(axis=1), 1.0)
    assert set(out["risk_appetite"]) <= {"conservative", "balanced", "aggressive"}
    # risk_gap = revealed rank - stated rank; segment = tier/risk/lifecycle/depth with the features' values
    rank = {"conservative": 0, "balanced": 1, "aggressive": 2}
    expected_gap = out["risk_appetite"].map(rank) - latest["stated_risk"].map(rank)
    np.testing.assert_array_equal(out["risk_gap"].to_numpy(), expected_gap.to_numpy(dtype=float))
    parts = out["segment"].str.split("/", expand=True)
    assert parts.shape[1] == 4
    assert (parts[1] == out["risk_appetite"]).all()
    assert (parts[2] == latest["lifecycle_stage"]).all() and (parts[3] == latest["relationship_depth"]).all()
    assert (out["stated_risk"] == latest["stated_risk"]).all()
    # churn_driver is named for flagged churners only
    assert out.loc[out["churn"], "churn_driver"].notna().all() and out.loc[~out["churn"], "churn_driver"].isna().all()
    assert set(out["churn_driver"].dropna()) <= {
        "rate_gap",
        "service_incidents",
        "disengagement",
        "life_event",
        "other",
    }
    # one row scores the same as in a batch (batch and HTTP give the same numbers)
    one = score_frame(latest.iloc[[5]], models)
    pd.testing.assert_frame_equal(one.reset_index(drop=True), out.iloc[[5]].reset_index(drop=True))


def test_reasons_are_optional(models, panel_and_truth):
    panel, _ = panel_and_truth
    out = score_frame(panel.head(3), models, explain=2)
    assert len(out["reasons_churn"].iloc[0]) == 2 and {"feature", "value", "contribution"} <= set(
        out["reasons_risk"].iloc[0][0]
    )
