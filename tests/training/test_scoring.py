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


def test_segments_cached_per_combination_equal_the_labels_and_the_scheme():
    """`_segments` (both segment columns from one look-up per row, #18) gives exactly `segment_labels` and
    `scheme.assign`: missing and empty classes, unknown ones, one row, no rows, a second scheme, and a book of
    free-text classes past the cache's cap."""
    from training import scoring
    from training.segments import DEFAULT_SCHEME, SegmentRule, SegmentScheme, segment_labels

    rng = np.random.default_rng(3)

    def book(n, extra=()):
        return [
            rng.choice(np.array(["mass", "affluent", "hnw", None, "", *extra], dtype=object), n),
            rng.choice(np.array(["conservative", "balanced", "aggressive", None], dtype=object), n),
            rng.choice(np.array(["young_professional", "family_growth", "retirement", "other", None], dtype=object), n),
            rng.choice(np.array(["basic", "multi_product", "ecosystem", None], dtype=object), n),
        ]

    other = SegmentScheme(name="two", default="rest", segments=[SegmentRule(name="rich", tiers=["hnw"])])
    for scheme in (DEFAULT_SCHEME, other, DEFAULT_SCHEME):
        for dims in (book(500), book(500, extra=("platinum",)), book(1), book(0)):
            seg, business = scoring._segments(scheme, *dims)
            assert seg.dtype == business.dtype == object and len(seg) == len(dims[0])
            assert seg.tolist() == segment_labels(*dims).tolist()
            assert business.tolist() == scheme.assign(*dims).tolist()
    free = book(10_050)
    free[0] = np.array([f"tier {i}" for i in range(10_050)], dtype=object)  # 10,050 combinations: over the cap
    seg, business = scoring._segments(DEFAULT_SCHEME, *free)
    assert seg.tolist() == segment_labels(*free).tolist()
    assert business.tolist() == DEFAULT_SCHEME.assign(*free).tolist()
    again = book(300)
    assert scoring._segments(DEFAULT_SCHEME, *again)[1].tolist() == DEFAULT_SCHEME.assign(*again).tolist()
