"""CBPE on the right population, on the simulator: a churn model trained on the panel's early months,
its estimate before labels at later as-of dates against the realised AUC there.

Churn's label exists only above the AUM minimum (`core.tasks.CHURN.eligibility`); the customers
below it are scored near zero, so an estimate over the whole book counts a crowd of easy
negatives and overshoots (the demo showed 0.989 against 0.940 at training).

Why these banks are built the way they are (measured, benchmarks/RESULTS.md "CBPE on a later period"):

- the label horizon is 75 days (two month-end snapshots), not the default 90. When these banks were
  measured the churn label read the last snapshot <= T + H, which for 90 days is three snapshots after
  the Nov, Dec and Jan month ends and two after the others (realised AUC 0.776 / 0.862 at the last two
  dates; 0.905 / 0.902 at 75 days). The label now reads H in whole months (`features.labels.
  horizon_months`: 75 days is two months at every as-of date, so these labels are unchanged).
- the default story holds a genuine concept drift: competitors' rates (`Market.rate_gap`) are
  latent, and the rate cuts of the later months push every customer's churn hazard up by the same
  factor, which no feature shows, so the model's low scores are too low there. CBPE cannot see
  that (its estimate stays at ~0.93-0.94); the realised AUC, once labels arrive, flags it. With the
  latent driver switched off (`SimParams(churn_rate_gap_coef=0)`) the later period shifts only in
  what the features see (regimes, our rate, customers' ageing and flows), and the estimate is
  within 0.03 of the realised AUC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import metrics as M
from core.tasks import TASKS
from monitoring.cbpe import expected_roc_auc
from monitoring.drift import estimate_performance, reference_scores
from monitoring.performance import estimate_check

# end to end on a loaded 2-core machine: above the suite's 300 s per-test default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CHURN = TASKS["churn"]
HORIZON_DAYS = 75  # two months (`features.labels.horizon_months`), see above


def _train(root, params=None):
    from features.panel import build_panel
    from features.simulate import simulate
    from training.spec import builtin_spec
    from training.train import fit_task

    simulate(root / "raw", customers=4_000, months=15, seed=5, params=params)
    build_panel(root / "raw", root / "features", horizon_days=HORIZON_DAYS)
    panel = pd.read_parquet(root / "features" / "panel.parquet")
    dates = sorted(panel["as_of"].unique())
    # out-of-time: trained on the months before, tested on the third-last as-of date. Two trials and no study
    # timeout: with churn.yaml's 120 s a loaded machine cut the study after its first trial, so the model (and
    # the gap checked below: 0.0333 once at load 11) depended on the load.
    spec = builtin_spec("churn", root / "features")
    spec = spec.model_copy(update={"tuning": spec.tuning.model_copy(update={"timeout": None})})
    result = fit_task(spec, panel[panel["as_of"].isin(dates[:-2])], trials=2)
    assert result.tuning.n_trials == 2  # the trial budget, whatever the machine's load
    return result, panel, dates


def _later(result, panel, dates) -> pd.DataFrame:
    """The two as-of dates after the training window, scored by the model, every customer."""
    later = panel[panel["as_of"].isin(dates[-2:])].copy()
    later[CHURN.score_column()] = result.model.predict_proba(later)[:, 1]
    return later


def _realised(later: pd.DataFrame) -> float:
    labelled = later["churn"].notna().to_numpy()
    y, p = later["churn"].to_numpy()[labelled], later[CHURN.score_column()].to_numpy()[labelled]
    return M.binary_metrics(y, p)["roc_auc"]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """The default simulator story (latent competitor rates included)."""
    return _train(tmp_path_factory.mktemp("cbpe_story"))


@pytest.fixture(scope="module")
def covariate_only(tmp_path_factory):
    """The same bank with the latent churn driver off: the later period shifts only in what features see."""
    from features.simulate import SimParams

    return _train(tmp_path_factory.mktemp("cbpe_covariate"), SimParams(churn_rate_gap_coef=0.0))


def test_estimate_on_the_eligible_population_is_within_003_of_realised(story):
    result, _, _ = story
    window = reference_scores(CHURN, result.reference)  # every customer at the held-out date, scored
    assert window["target"].notna().sum() < len(window)  # the book holds customers without a label
    realised = result.metrics["roc_auc"]
    estimate = estimate_performance(window.drop(columns="target"), "churn")["churn"]
    assert estimate["rows"] == int(CHURN.eligibility.mask(window).sum()) < len(window)
    # the whole book (the old behaviour) overshoots: the ineligible customers are easy "negatives"
    book = expected_roc_auc(window[CHURN.score_column()].to_numpy())
    print(f"held-out date: realised {realised:.3f}, CBPE eligible {estimate['roc_auc']:.3f}, whole book {book:.3f}")
    assert book > estimate["roc_auc"] + 0.03, (book, estimate["roc_auc"])
    # One date holds ~50 churners, so its realised AUC is noisy (Hanley-McNeil sd ~0.01-0.02). Measured
    # 2026-12-01 (benchmarks/RESULTS.md, "#17: the churn floor"): with an unregularised booster half the
    # eligible customers fell below a raw 1e-6, which the calibrator's logit clip turns into one score
    # (estimate 0.926 vs realised 0.974); with churn.yaml's lambda_l2 >= 0.1: 0.951 vs 0.977.
    assert abs(estimate["roc_auc"] - realised) < 0.03, (estimate["roc_auc"], realised)
    # no floor: few eligible customers share the lowest score (50.2% did before lambda_l2 >= 0.1; 0.3% after)
    eligible_scores = window[CHURN.score_column()].to_numpy()[CHURN.eligibility.mask(window)]
    assert np.mean(eligible_scores == eligible_scores.min()) < 0.05


def test_on_a_later_period_shifted_in_what_features_see_the_estimate_is_within_003(covariate_only):
    """The Done-when: the later two as-of dates, CBPE (recalibrated on the reference) vs realised AUC."""
    result, panel, dates = covariate_only
    later = _later(result, panel, dates)
    reference = reference_scores(CHURN, result.reference)
    # the later window did move: its scores are not the reference's
    assert abs(later[CHURN.score_column()].mean() - reference[CHURN.score_column()].mean()) > 0.001
    est = estimate_performance(later, "churn", reference)["churn"]
    assert est["calibration"].startswith("recalibrated on the reference's")
    realised = _realised(later)
    print(f"covariate shift only: realised {realised:.3f}, CBPE {est['roc_auc']:.3f}")
    assert abs(est["roc_auc"] - realised) < 0.03, (est["roc_auc"], realised)
    check = estimate_check(est, {"roc_auc": realised})
    assert check is not None and check["concept_drift_suspected"] is False


def _low_score_excess(later: pd.DataFrame) -> float:
    """Observed / expected churners among the lowest 80% of scores: the customers the model calls safe."""
    labelled = later[later["churn"].notna()]
    p = labelled[CHURN.score_column()].to_numpy()
    low = p <= np.quantile(p, 0.8)
    return float(labelled["churn"].to_numpy()[low].sum() / p[low].sum())


def test_latent_concept_drift_is_not_seen_by_the_estimate_and_is_flagged_by_labels(story, covariate_only):
    """The default story: competitors' rates (latent) raise every hazard in the later months, so the
    customers the model calls safe churn more than their scores say, and the AUC falls below CBPE."""
    gaps, excess = {}, {}
    for name, (result, panel, dates) in {"story": story, "covariate only": covariate_only}.items():
        reference = reference_scores(CHURN, result.reference)
        later = _later(result, panel, dates)
        est = estimate_performance(later, "churn", reference)["churn"]
        check = estimate_check(est, {"roc_auc": _realised(later)})
        assert check is not None and check["gap"] == pytest.approx(est["roc_auc"] - check["realised"])
        gaps[name], excess[name] = check["gap"], _low_score_excess(later)
        print(f"{name}: {check}; low-score churners observed/expected {excess[name]:.2f}")
    # measured (4,000 customers, seed 5): gap +0.031 (flagged) vs -0.010; excess 2.39 vs 1.03 (RESULTS.md).
    # After cross-validated tuning (2026-12-01): gap +0.064 vs +0.015, excess 1.72 vs 2.20 (the story's
    # saturated booster tied half its customers at one floor score); with churn.yaml's lambda_l2 >= 0.1:
    # gap +0.070 vs +0.025, excess 2.46 vs 1.99; after the risk story's fixed-income/deposit signals
    # redrew the banks (same seeds): excess 2.49 vs 2.19. The excess rests on a few dozen low-score
    # churners per bank, so only its direction is asserted; the gap is the flag the report raises.
    assert gaps["story"] > gaps["covariate only"] + 0.02
    assert excess["story"] > excess["covariate only"]
