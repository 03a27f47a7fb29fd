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
