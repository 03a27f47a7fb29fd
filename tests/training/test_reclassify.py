"""Re-classification on hand-made scored frames: matrices, movers, the aggressive list, the report."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import InputError
from training.reclassify import reclassify, reclassify_panel, report_html

D0, D1 = pd.Timestamp("2025-03-31"), pd.Timestamp("2025-06-30")


def scored(tiers, risks, stated=None, depth=None) -> pd.DataFrame:
    n = len(tiers)
    frame = pd.DataFrame(
        {
            "customer_id": range(1, n + 1),
            "tier": tiers,
            "risk_appetite": risks,
            "risk_proba_aggressive": [0.9 if r == "aggressive" else 0.1 for r in risks],
            "stated_risk": stated or ["conservative"] * n,
            "next_action": "none",
            "reasons_risk": [[{"feature": "views_equity_funds_90d"}, {"feature": "age"}]] * n,
        }
    )
    frame["segment"] = frame["tier"] + "/" + frame["risk_appetite"]
    if depth is not None:
        frame["relationship_depth"] = depth
    return frame


def test_matrices_movers_and_the_aggressive_list():
    before = scored(
        ["mass", "mass", "affluent", "mass"], ["not_aggressive", "not_aggressive", "aggressive", "not_aggressive"]
    )
    after = scored(["affluent", "mass", "affluent", "mass"], ["aggressive", "not_aggressive", "aggressive", "aggressive"],
                   stated=["conservative", "conservative", "conservative", "balanced"])  # fmt: skip
    truth = pd.DataFrame({"customer_id": [1, 2, 3, 4], "hidden_aggressive": [True, False, True, False]})
    r = reclassify(before, after, before_date=D0, after_date=D1, truth=truth)
    tier = r.matrices["tier"]
    assert tier.loc["mass", "affluent"] == 1 and tier.loc["mass", "mass"] == 2 and tier.to_numpy().sum() == 4
    s = r.summary()
    assert s["moved"]["tier"] == 1 and s["moved"]["risk_appetite"] == 2
    # customer 3 was already aggressive; customer 4 is stated balanced: only customer 1 is listed
    assert r.potential_aggressive["customer_id"].tolist() == [1]
    assert r.truth_check["share"] == 1.0 and r.truth_check["base_rate_among_conservative_rated"] == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert {"relationship_depth", "lifecycle_stage"} <= set(r.skipped)  # tolerated, listed
    movers = r.movers
    assert set(movers[movers["customer_id"] == 1]["dimension"]) == {"tier", "risk_appetite", "segment"}
    page = report_html(r)
    assert "Tier flow" in page and "data:image/png;base64" in page and "lift" in page


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="no customer is present at both"):
        reclassify(scored(["mass"], ["aggressive"]), scored(["mass"], ["aggressive"]).assign(customer_id=99),
                   before_date=D0, after_date=D1)  # fmt: skip
    with pytest.raises(InputError, match="--from 'last spring' is not a date"):
        reclassify_panel(tmp_path, "last spring", "2025-06-30", tmp_path / "out", models={})
    with pytest.raises(InputError, match="must be after"):
        reclassify_panel(tmp_path, "2025-06-30", "2025-03-31", tmp_path / "out", models={})
    pd.DataFrame({"customer_id": [1], "as_of": [D1]}).to_parquet(tmp_path / "panel.parquet")
    with pytest.raises(InputError, match="no date at or before it"):
        reclassify_panel(tmp_path, "2020-01-01", "2025-06-30", tmp_path / "out", models={})
    with pytest.raises(InputError, match="both fall on"):
        reclassify_panel(tmp_path, "2025-07-01", "2025-07-31", tmp_path / "out", models={})
