"""The training path on a small generated panel: reproducible, beats baselines, risk excludes capped features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.spec import builtin_spec, load_spec
from training.train import fit_task

from .conftest import small_data_spec

TRIALS = 3


@pytest.fixture(scope="module")
def churn_runs(panel_and_truth, tmp_path_factory):
    panel, _ = panel_and_truth
    spec = builtin_spec("churn", tmp_path_factory.mktemp("f"))
    return [fit_task(spec, panel, seed=s, trials=TRIALS, timeout=None) for s in (3, 3, 4)]


def test_same_data_spec_seed_give_same_metrics(churn_runs):
    a, b, c = churn_runs
    assert a.metrics == b.metrics
    assert a.baseline == b.baseline
    assert a.fingerprint == b.fingerprint
    assert a.tuning.params == b.tuning.params
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    assert c.tuning.params != a.tuning.params  # the seed matters


def test_binary_metrics_and_baseline_side_by_side(churn_runs):
    r = churn_runs[0]
    names = {"roc_auc", "pr_auc", "ks", "brier", "lift_at_10"}
    assert set(r.metrics) == names and set(r.baseline) == names
    assert r.metrics["roc_auc"] > 0.6
    assert set(r.calibration) == {"ece_before", "ece_after", "brier_before", "brier_after"}
    assert 0 < r.model.thresholds["positive"] < 1
    assert r.split["kind"] == "time" and r.split["test_time"] > r.split["valid_time"]
    # reference sample: features + prediction columns named as scoring names them, from the test rows
    assert {"prediction", "churn_proba", "target"} <= set(r.reference.columns)
    assert set(r.model.features) <= set(r.reference.columns)


def test_reference_is_the_scored_population_not_only_the_labelled_rows(churn_runs, panel_and_truth):
    """Churn is labelled only above the AUM minimum, but the service scores everyone: the reference
    holds every customer at the test date, with predictions, and the label where there is one."""
    panel, _ = panel_and_truth
    r = churn_runs[0]
    at_test = panel[panel["as_of"] == pd.Timestamp(r.split["test_time"])]
    assert len(r.reference) == len(at_test)  # fewer than REFERENCE_ROWS: all of them
    unlabelled = at_test["churn"].isna()
    assert unlabelled.any() and r.reference["target"].isna().sum() == unlabelled.sum()
    assert r.reference["churn_proba"].notna().all()
    np.testing.assert_allclose(np.sort(r.reference["aum"].to_numpy()), np.sort(at_test["aum"].to_numpy()))
    assert r.reference.loc[r.reference["target"].isna(), "aum"].max() < 10_000


def test_tier_adds_upgrade_auc_and_beats_persistence_log_loss(panel_and_truth, tmp_path):
    panel, _ = panel_and_truth
    r = fit_task(builtin_spec("tier", tmp_path), panel, seed=0, trials=TRIALS)
    assert set(r.metrics) == {"macro_f1", "log_loss", "accuracy", "upgrade_auc"}
    assert set(r.baseline) == set(r.metrics)
    assert r.metrics["log_loss"] < r.baseline["log_loss"]
    assert r.metrics["upgrade_auc"] > 0.5


def test_risk_learns_from_free_customers_and_ranks_conservatives(panel_and_truth, tmp_path):
    panel, truth = panel_and_truth
    r = fit_task(small_data_spec(builtin_spec("risk", tmp_path)), panel, seed=0, trials=TRIALS, truth=truth)
    # capped-by-suitability features are not used; stated_risk reaches only the posterior (#12): every
    # labelled row is stated-aggressive, so the booster never splits on it
    assert "aum_r4" not in r.model.features and "aum_fund" not in r.model.features
    assert r.model.importance()["stated_risk"] == 0
    assert type(r.model.calibrator).__name__ == "AppetitePosterior"
    assert {"hidden_aggressive_auc", "hidden_aggressive_precision_at_5pct"} <= set(r.metrics)
    assert r.metrics["hidden_aggressive_auc"] >= 0.8
    assert r.metrics["hidden_aggressive_auc"] > r.baseline["hidden_aggressive_auc"] - 0.05
    assert 0 < r.model.thresholds["hidden_aggressive"] < 1
    # an ordinal target: one booster for the top class, three calibrated classes; the reference sample
    # names its score columns as scoring does (core.tasks)
    classes = ["conservative", "balanced", "aggressive"]
    assert r.model.kind == "ordinal" and r.model.classes == classes
    assert {"risk_proba_conservative", "risk_proba_balanced", "risk_proba_aggressive"} <= set(r.reference.columns)
    assert set(r.reference["prediction"]) <= set(classes)
    assert set(r.reference["target"].dropna()) <= set(classes)  # null: not free to act
    # the bank's headline against the truth, with the questionnaire as the baseline on the same rows
    for m in ("latent_risk_accuracy", "latent_risk_macro_f1", "latent_risk_auc_ovr", "latent_risk_ece"):
        assert 0 <= r.metrics[m] <= 1 and 0 <= r.baseline[m] <= 1
    assert r.metrics["latent_risk_n"] == panel["customer_id"].nunique()  # every customer at the test date
    # without truth the metrics are skipped, not invented
    r2 = fit_task(small_data_spec(builtin_spec("risk", tmp_path)), panel, seed=0, trials=2)
    assert "hidden_aggressive_auc" not in r2.metrics and any("truth" in n for n in r2.notes)
    assert "latent_risk_accuracy" not in r2.metrics


def test_latent_risk_baseline_is_the_questionnaire(panel_and_truth, tmp_path):
    """baseline.latent_risk_accuracy is exactly how often the stated class equals the truth at the test date."""
    panel, truth = panel_and_truth
    r = fit_task(small_data_spec(builtin_spec("risk", tmp_path)), panel, seed=0, trials=2, truth=truth)
    last = panel[panel["as_of"] == panel["as_of"].max()].merge(truth[["customer_id", "latent_risk"]], on="customer_id")
    assert r.baseline["latent_risk_accuracy"] == pytest.approx((last["stated_risk"] == last["latent_risk"]).mean())
    # a one-hot class is fully confident: its calibration error is its error rate
    assert r.baseline["latent_risk_ece"] == pytest.approx(1 - r.baseline["latent_risk_accuracy"])


def test_risk_boosts_from_the_heuristic_and_serves_what_it_trained(panel_and_truth, tmp_path):
    """`boost_from_baseline` (the shipped risk spec): the trees start at the heuristic baseline's score,
    ranked against the training rows; the model carries that prior, and every scoring path adds it."""
    from sklearn.metrics import roc_auc_score

    from training.baselines import HeuristicBaseline
    from training.data import prepare, split
    from training.scoring import score_frame
    from training.train import tuning_folds

    panel, truth = panel_and_truth
    spec = small_data_spec(builtin_spec("risk", tmp_path))
    assert spec.boost_from_baseline and spec.baseline.kind == "heuristic"
    r = fit_task(spec, panel, seed=0, trials=2, truth=truth)
    core = r.model
    assert core.prior is not None and core.prior.columns == list(spec.baseline.columns)
    assert "prior" in core.metadata
    prep = prepare(panel, spec)
    sp = split(prep, 0)
    X = core.matrix(prep.X)
    # the prior is the baseline's score, its rank tables from every non-test row (feature values only,
    # no labels: the final model refits on all of them, issue #15)
    rest = np.sort(np.concatenate([sp.train, sp.valid]))
    h = HeuristicBaseline(list(spec.baseline.columns), [], 20, "multiclass", 3).fit(
        prep.X.iloc[rest], prep.extras.iloc[rest], prep.y[rest]
    )
    te = prep.X.iloc[sp.test]
    np.testing.assert_allclose(
        core.prior.ranks(X[sp.test]).mean(axis=1), h.raw_score(te, prep.extras.iloc[sp.test]), atol=1e-12
    )
    # LightGBM's cross-validated AUC (computed WITH the init score) is the mean of the fold boosters' AUCs
    # with the saved model's prior added: the prior at prediction time is the one the trees were trained on
    # top of (the booster of an ordinal target scores the top class against the rest)
    top = prep.y == core.classes.index("aggressive")
    final = core.booster
    aucs, bare = [], []
    try:
        for booster, (_, b) in zip(r.tuning.fold_boosters, tuning_folds(spec, prep, sp, 0), strict=True):
            core.booster = booster
            aucs.append(roc_auc_score(top[b], core.raw_from_matrix(X[b])[:, 1]))
            bare.append(roc_auc_score(top[b], booster.predict(X[b])))
    finally:
        core.booster = final
    assert np.mean(aucs) == pytest.approx(r.tuning.best_value, abs=1e-9)
    # ... and without it the booster alone is another (worse-ranking) model
    assert np.mean(bare) != pytest.approx(np.mean(aucs), abs=1e-6)
    # `clientlens score` (score_frame) and the service's compiled predictor give the same probabilities
    rows = panel[panel["as_of"] == panel["as_of"].max()].reset_index(drop=True)
    want = core.predict_proba(rows)[:, core.classes.index("aggressive")]
    scored = score_frame(rows, {"risk": core})
    np.testing.assert_allclose(scored["risk_proba_aggressive"].to_numpy(), want, rtol=1e-12)
    # the importance plot counts the starting score too (the trees' gain alone would hide its columns)
    from training.plots import figures

    ax = figures(r)["importance.png"].axes[0]
    assert "starting score" in ax.get_title()
    assert {t.get_text() for t in ax.get_yticklabels()} >= set(spec.baseline.columns)
    from serving import compiled

    if not compiled.compile_core(core, tmp_path / "compiled"):
        pytest.skip("no compiled predictor here (lleaves missing or disabled)")
    try:
        np.testing.assert_allclose(
            core.predict_proba(rows)[:, core.classes.index("aggressive")], want, rtol=1e-9, atol=1e-12
        )
    finally:
        core.use_predictor(None)


def test_regression_spec(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "g": rng.choice(["x", "y"], 400)})
    frame["y"] = 2 * frame["a"] - frame["b"] + (frame["g"] == "x") + rng.normal(0, 0.1, 400)
    frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "s.yaml").write_text("name: reg\nsource: t.csv\ntarget: {column: y, kind: regression}\n")
    r = fit_task(load_spec(tmp_path / "s.yaml"), frame, seed=0, trials=2)
    assert set(r.metrics) == {"rmse", "r2"} and r.metrics["r2"] > 0.8 and r.metrics["r2"] > r.baseline["r2"] - 0.05


def test_monotone_constraints_hold_and_feature_allow_list(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 1500
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "unused": rng.normal(size=n), "g": rng.choice(["x", "y"], n)}
    )
    # y rises with a overall, but falls with a where b > 0: unconstrained trees follow that, +1 may not
    logit = frame["a"] - 2.5 * frame["a"] * (frame["b"] > 0) + (frame["g"] == "x")
    frame["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "name: mono\nsource: t.csv\nfeatures: [a, b, g]\n"
        "target: {column: y, kind: binary, positive: 'yes', classes: ['no', 'yes']}\n"
        "tuning: {monotone: {a: 1}, space: {num_leaves: [4, 8]}}\n"
    )
    r = fit_task(load_spec(tmp_path / "s.yaml"), frame, seed=0, trials=2)
    assert r.model.features == ["a", "b", "g"] and r.model.classes == ["no", "yes"]
    grid = pd.DataFrame({"a": np.linspace(-3, 3, 61), "b": 1.0, "g": "y"})
    p = r.model.predict_proba(grid)[:, 1]
    assert np.all(np.diff(p) >= -1e-12)  # never falls as `a` rises, even where the data says it should
    (tmp_path / "bad.yaml").write_text(
        "name: mono\nsource: t.csv\ntarget: {column: y, kind: binary, positive: 'yes'}\ntuning: {monotone: {g: 1}}\n"
    )
    from core.errors import InputError

    with pytest.raises(InputError, match="tuning.monotone.*numeric"):
        fit_task(load_spec(tmp_path / "bad.yaml"), frame, seed=0, trials=1)


def _with_reviews(panel: pd.DataFrame, truth: pd.DataFrame, share: float = 0.2) -> pd.DataFrame:
    """A `reviewed_risk` column as the panel carries it: the true class for a fixed `share` of customers."""
    ids = panel["customer_id"].unique()
    chosen = np.random.default_rng(0).choice(ids, int(share * len(ids)), replace=False)
    latent = panel[["customer_id"]].merge(truth[["customer_id", "latent_risk"]], on="customer_id", how="left")
    return panel.assign(reviewed_risk=np.where(panel["customer_id"].isin(chosen), latent["latent_risk"], None))


def test_risk_anchor_column_reaches_the_posterior_fit_and_never_the_booster(panel_and_truth, tmp_path, monkeypatch):
    """#12: `risk_posterior.anchor_column` passes the reviewed class (class index, -1 where none) to
    `AppetitePosterior.fit(anchor=)`, which then chooses the behaviour's temperature on those rows."""
    import training.appetite as appetite

    panel, truth = panel_and_truth
    panel = _with_reviews(panel, truth)
    anchored = small_data_spec(builtin_spec("risk", tmp_path))  # the shipped spec anchors on reviews
    assert anchored.risk_posterior is not None and anchored.risk_posterior.anchor_column == "reviewed_risk"
    unanchored = anchored.risk_posterior.model_copy(update={"anchor_column": None})
    plain = fit_task(anchored.model_copy(update={"risk_posterior": unanchored}), panel, seed=0, trials=2)
    assert plain.model.calibrator.temperature_ == 1.0 and "reviewed_risk" not in plain.model.features
    seen: list[np.ndarray] = []
    fit = appetite.AppetitePosterior.fit

    def recording(self, raw, X, label, iterations=60, anchor=None):
        seen.append(np.asarray(anchor))
        return fit(self, raw, X, label, iterations, anchor)

    monkeypatch.setattr(appetite.AppetitePosterior, "fit", recording)
    r = fit_task(anchored, panel, seed=0, trials=2)
    (anchor,) = seen
    assert set(np.unique(anchor)) <= {-1, 0, 1, 2} and 0.1 < (anchor >= 0).mean() < 0.3  # a fifth reviewed
    assert "reviewed_risk" not in r.model.features
    assert r.model.calibrator.temperature_ in appetite.TEMPERATURES and r.model.calibrator.anchor_sd_ > 0


def test_risk_anchor_column_must_be_a_keep_column_and_not_a_feature(tmp_path):
    from pydantic import ValidationError

    spec = builtin_spec("risk", tmp_path)
    assert spec.risk_posterior is not None
    data = spec.model_dump()
    assert data["risk_posterior"]["anchor_column"] == "reviewed_risk"
    data["keep_columns"] = [c for c in data["keep_columns"] if c != "reviewed_risk"]
    with pytest.raises(ValidationError, match="anchor_column 'reviewed_risk' must be one of keep_columns"):
        type(spec).model_validate(data)
    data["keep_columns"] = [*data["keep_columns"], "reviewed_risk"]
    data["features"] = [*data["features"], "reviewed_risk"]
    with pytest.raises(ValidationError, match="must not be a model feature"):
        type(spec).model_validate(data)
