"""CBPE on the right population, on the simulator: a churn model trained on the panel's early months,
its estimate before labels at the held-out (later) as-of date against the realised AUC there.

Churn's label exists only above the AUM minimum (`core.tasks.CHURN.eligibility`); the customers
below it are scored near zero, so an estimate over the whole book counts a crowd of easy
negatives and overshoots (the demo showed 0.989 against 0.940 at training).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import metrics as M
from core.tasks import TASKS
from monitoring.cbpe import expected_roc_auc
from monitoring.drift import estimate_performance, reference_scores

# end to end on a loaded 2-core machine: above the suite's 300 s per-test default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
CHURN = TASKS["churn"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from features.panel import build_panel
    from features.simulate import simulate
    from training.spec import builtin_spec
    from training.train import fit_task

    root = tmp_path_factory.mktemp("cbpe_bank")
    simulate(root / "raw", customers=4_000, months=15, seed=5)
    build_panel(root / "raw", root / "features")
    panel = pd.read_parquet(root / "features" / "panel.parquet")
    dates = sorted(panel["as_of"].unique())
    # out-of-time split: trained on the months before, tested on the last as-of date given
    result = fit_task(builtin_spec("churn", root / "features"), panel[panel["as_of"].isin(dates[:-2])], trials=2)
    return result, panel, dates


def test_estimate_on_the_eligible_population_is_within_003_of_realised(trained):
    result, _, _ = trained
    window = reference_scores(CHURN, result.reference)  # every customer at the held-out date, scored
    assert window["target"].notna().sum() < len(window)  # the book holds customers without a label
    realised = result.metrics["roc_auc"]
    estimate = estimate_performance(window.drop(columns="target"), "churn")["churn"]
    assert estimate["rows"] == int(CHURN.eligibility.mask(window).sum()) < len(window)
    assert abs(estimate["roc_auc"] - realised) < 0.03, (estimate["roc_auc"], realised)
    # the whole book (the old behaviour) overshoots: the ineligible customers are easy "negatives"
    book = expected_roc_auc(window[CHURN.score_column()].to_numpy())
    print(f"held-out date: realised {realised:.3f}, CBPE eligible {estimate['roc_auc']:.3f}, whole book {book:.3f}")
    assert book > realised + 0.03, (book, realised)


def test_reference_recalibration_is_used_and_reported(trained):
    """With the reference's labels the scores are recalibrated before CBPE; the report says so."""
    result, panel, dates = trained
    reference = reference_scores(CHURN, result.reference)
    later = panel[panel["as_of"] == dates[-1]].copy()
    later[CHURN.score_column()] = result.model.predict_proba(later)[:, 1]
    est = estimate_performance(later, "churn", reference)["churn"]
    assert est["calibration"].startswith("recalibrated on the reference's")
    own = estimate_performance(later, "churn")["churn"]
    assert own["calibration"] == "the model's own" and own["roc_auc"] != est["roc_auc"]
    labelled = later["churn"].notna().to_numpy()
    realised = M.binary_metrics(later["churn"].to_numpy()[labelled], later[CHURN.score_column()].to_numpy()[labelled])
    # Measured (4,000 customers, seed 5): realised 0.862 three months on, estimate 0.93-0.95. The AUC
    # fell because the outcome's relation to the features moved (concept drift), which no estimate
    # from scores can see; the gap is reported, not asserted away.
    print(f"later period: realised {realised['roc_auc']:.3f}, CBPE {est['roc_auc']:.3f}, own {own['roc_auc']:.3f}")
    assert np.isfinite(est["roc_auc"]) and 0.5 < est["roc_auc"] < 1
