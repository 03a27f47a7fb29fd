"""The real public datasets shipped beside the repository (../shared/data): BankChurners and SCF 2019."""

from __future__ import annotations

import pytest

from training.data import read_source
from training.spec import SPECS_DIR, load_spec
from training.train import fit_task

pytestmark = pytest.mark.slow


def test_bankchurners_churn_auc_at_least_099():
    spec = load_spec(SPECS_DIR / "bankchurners.yaml")
    frame = read_source(spec)
    r = fit_task(spec, frame, seed=0, trials=5)
    assert not any(c.startswith("Naive_Bayes") for c in r.model.features) and "CLIENTNUM" not in r.model.features
    assert r.metrics["roc_auc"] >= 0.99
    assert r.metrics["roc_auc"] > r.baseline["roc_auc"]


def test_scf_latent_risk_beats_heuristic_without_leaky_columns():
    spec = load_spec(SPECS_DIR / "scf2019_risk.yaml")
    frame = read_source(spec)
    r = fit_task(spec, frame, seed=0, trials=4)
    leaky = {"EQUITY", "FIN", "DEQ", "HEQUITY", "STOCKS", "NMMF", "RETEQ", "HSTOCKS", "HBROK", "NTRAD", "KGSTMF", "Y1"}
    assert not leaky & set(r.model.features)
    assert {"YY1", "WGT", "NOFINRISK"}.isdisjoint(r.model.features)
    assert r.split["kind"] == "group"
    assert r.metrics["roc_auc"] > r.baseline["roc_auc"] + 0.05
    assert 0.7 < r.metrics["roc_auc"] < 0.95  # a leak would show up as near-perfect AUC


@pytest.mark.parametrize(
    ("spec_file", "rows", "auc_range", "trials"),
    [
        # Each README's plain LightGBM reaches 0.84 (Telco), 0.77-0.80 (German), 0.87 (GMSC) on random
        # 20% holdouts; a bounded budget must land near there, and far below 0.99 (a leak would). GMSC:
        # 2 trials (plain LightGBM and LightGBM's defaults), each 3 folds of 80,000 rows.
        ("telco_churn.yaml", 7_043, (0.80, 0.90), 3),
        ("german_credit.yaml", 1_000, (0.65, 0.90), 3),
        ("give_me_some_credit.yaml", 150_000, (0.83, 0.90), 2),
    ],
)
def test_real_tables_train_within_their_published_range(spec_file, rows, auc_range, trials):
    spec = load_spec(SPECS_DIR / spec_file)
    frame = read_source(spec)
    assert len(frame) == rows
    r = fit_task(spec, frame, seed=0, trials=trials)
    assert auc_range[0] <= r.metrics["roc_auc"] <= auc_range[1]
    # The shipped specs average the best trial's fold boosters (German: 3 x 5 repeated folds).
    assert r.split["final"] == "folds"
    assert r.tuning.n_folds == spec.tuning.cv_folds * spec.tuning.cv_repeats
    assert r.model.booster.num_trees() == r.tuning.n_folds * r.tuning.best_iteration
    # Not asserted: beating the logistic baseline or plain LightGBM on one split with a few trials; that is
    # measured over 5 split seeds at the default budget by benchmarks/bench_real_tables.py (RESULTS.md).
    assert "roc_auc" in r.lgbm_default
    assert {"customerID", "Unnamed: 0", "class", "Churn"}.isdisjoint(r.model.features)


def test_text_in_a_numeric_column_becomes_missing():
    spec = load_spec(SPECS_DIR / "telco_churn.yaml")
    frame = read_source(spec)
    assert frame["TotalCharges"].dtype == object  # as the file holds it
    from training.data import prepare

    prep = prepare(frame, spec)
    assert "TotalCharges" not in prep.categorical
    assert int(prep.X["TotalCharges"].isna().sum()) == 11
