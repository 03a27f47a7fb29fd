"""Issue #15: cross-validated tuning, the plain-LightGBM first trial, the refit on every non-test row,
out-of-fold calibration, `baseline_lgbm_default`, and the uncertainty of a test metric."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from training.data import prepare, split
from training.spec import spec_from_dict
from training.train import bootstrap_ci, fit_task, holdout_uncertainty, repeat_summary, tuning_folds
from training.tune import PLAIN_LGBM, datasets, refit_dataset, start_trials


def _table(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """A binary table with a numeric signal, a categorical one, groups and four periods."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "g": rng.choice(["x", "y", "z"], n),
            "household": rng.integers(0, n // 4, n),
            "month": pd.Timestamp("2025-01-31") + pd.to_timedelta(rng.integers(0, 4, n) * 30, unit="D"),
        }
    )
    logit = frame["a"] - 0.7 * frame["b"] ** 2 + 0.8 * (frame["g"] == "x") - 0.5
    frame["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


def _spec(tmp_path, **extra):
    data = {
        "name": "synthetic",
        "source": "t.csv",
        "target": {"column": "y", "kind": "binary", "positive": "yes"},
        "drop": ["household", "month"],
        **extra,
    }
    return spec_from_dict(data, base_dir=tmp_path)


def test_stratified_folds_partition_the_non_test_rows(tmp_path):
    spec = _spec(tmp_path)
    prep = prepare(_table(), spec)
    sp = split(prep, 0)
    folds = tuning_folds(spec, prep, sp, 0)
    rest = np.sort(np.concatenate([sp.train, sp.valid]))
    assert len(folds) == spec.tuning.cv_folds == 5
    valid = np.concatenate([b for _, b in folds])
    assert np.array_equal(np.sort(valid), rest)  # every non-test row validates exactly once
    assert not np.intersect1d(valid, sp.test).size
    rate = prep.y[rest].mean()
    for a, b in folds:
        assert np.array_equal(np.sort(np.concatenate([a, b])), rest)
        assert abs(prep.y[b].mean() - rate) < 0.01  # stratified


def test_group_and_time_folds(tmp_path):
    frame = _table()
    spec = spec_from_dict(
        {
            "name": "grouped",
            "source": "t.csv",
            "target": {"column": "y", "kind": "binary", "positive": "yes"},
            "group": "household",
            "split": {"kind": "group"},
            "drop": ["month"],
        },
        base_dir=tmp_path,
    )
    prep = prepare(frame, spec)
    sp = split(prep, 1)
    for a, b in tuning_folds(spec, prep, sp, 1):
        assert not set(prep.groups[a]) & set(prep.groups[b])  # a household never straddles a fold
    spec = spec_from_dict(
        {
            "name": "panel",
            "source": "t.csv",
            "target": {"column": "y", "kind": "binary", "positive": "yes"},
            "split": {"kind": "time", "time_column": "month"},
            "drop": ["household"],
        },
        base_dir=tmp_path,
    )
    prep = prepare(frame, spec)
    sp = split(prep, 0)
    folds = tuning_folds(spec, prep, sp, 0)
    assert len(folds) == 2  # 3 periods before the test period: the last two each validate once
    for a, b in folds:
        assert prep.times[a].max() < prep.times[b].min()  # out of time
        assert len(np.unique(prep.times[b])) == 1 and prep.times[b].max() < sp.test_time


def test_large_table_or_one_fold_tunes_on_the_split(tmp_path):
    frame = _table()
    for tuning in ({"cv_folds": 1}, {"cv_max_rows": 500}):
        spec = _spec(tmp_path, tuning=tuning)
        prep = prepare(frame, spec)
        sp = split(prep, 0)
        [(a, b)] = tuning_folds(spec, prep, sp, 0)
        assert np.array_equal(a, sp.train) and np.array_equal(b, sp.valid)


def test_start_trials_clip_to_the_spec_space():
    plain, lgbm_defaults = start_trials()
    assert plain["learning_rate"] == PLAIN_LGBM["learning_rate"] and plain["num_leaves"] == PLAIN_LGBM["num_leaves"]
    assert lgbm_defaults["num_leaves"] == 31
    [only] = start_trials({"num_leaves": (4.0, 8.0)})[:1]
    assert only["num_leaves"] == 8


@pytest.fixture(scope="module")
def one_trial(tmp_path_factory):
    """trials=1: the study is the plain-LightGBM trial only, so the final model is plain LightGBM."""
    tmp = tmp_path_factory.mktemp("t")
    spec = _spec(tmp, baseline={"kind": "prior"})
    frame = _table()
    return spec, frame, fit_task(spec, frame, seed=0, trials=1, timeout=None)


def test_one_trial_is_plain_lightgbm_refitted_on_every_non_test_row(one_trial):
    _, _, r = one_trial
    assert r.tuning.n_folds == 5 and r.tuning.n_trials == 1
    assert r.tuning.best_iteration == PLAIN_LGBM["n_estimators"]  # scored at its fixed 300 rounds
    assert r.tuning.params["learning_rate"] == PLAIN_LGBM["learning_rate"]
    assert r.split["n_refit"] == r.split["n_train"] + r.split["n_valid"]
    assert r.model.booster.num_trees() == PLAIN_LGBM["n_estimators"]
    # The same model as `baseline_lgbm_default` (LGBMClassifier on the same rows, category dtype), up to
    # how the two encode the categorical column.
    assert abs(r.metrics["roc_auc"] - r.lgbm_default["roc_auc"]) < 0.003
    assert r.lgbm_default["roc_auc"] > r.baseline["roc_auc"] + 0.1  # the prior baseline is 0.5


def test_calibrator_learns_on_out_of_fold_scores(one_trial):
    _, _, r = one_trial
    # Every non-test row scored by a fold booster that did not see it (not the refitted model).
    assert r.split["n_calibration"] == r.split["n_refit"]
    assert r.calibration["ece_after"] < 0.08


def test_same_data_spec_seed_give_same_metrics_with_folds(tmp_path, one_trial):
    spec, frame, _ = one_trial
    a, b = (fit_task(spec, frame, seed=2, trials=3, timeout=None) for _ in range(2))
    assert a.metrics == b.metrics and a.lgbm_default == b.lgbm_default and a.calibration == b.calibration
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    assert a.tuning.start_value == a.tuning.history[0]  # trial 0 is the plain LightGBM...
    assert len(set(a.tuning.history)) == 3  # ...then the study tries other parameters


def test_bootstrap_interval_brackets_the_metric_and_shrinks_with_rows():
    rng = np.random.default_rng(0)

    def scored(n):
        y = (rng.random(n) < 0.3).astype(float)
        p = np.clip(0.3 + 0.25 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1)
        return y, np.column_stack([1 - p, p])

    from sklearn.metrics import roc_auc_score

    y, p = scored(400)
    ci = bootstrap_ci("binary", "roc_auc", y, p, seed=0)
    assert ci["low"] < roc_auc_score(y, p[:, 1]) < ci["high"] and ci["samples"] == 200
    y2, p2 = scored(8000)
    ci2 = bootstrap_ci("binary", "roc_auc", y2, p2, seed=0)
    assert ci2["high"] - ci2["low"] < 0.5 * (ci["high"] - ci["low"])  # ~ 1/sqrt(20) as wide
    assert bootstrap_ci("binary", "roc_auc", y, p, seed=0) == ci  # seeded


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # the reference's NaN AUCs
@pytest.mark.parametrize("metric", ["log_loss", "roc_auc"])
def test_an_interval_is_the_one_recomputing_the_metric_on_each_resample(metric):
    """`bootstrap_ci` resamples without calling sklearn per resample (`core.metrics.resampled_metric`); the
    interval is the one computing sklearn's metric on each resample (log loss bit for bit, ROC AUC to
    rounding), with weights and with skipped (one-class) resamples."""
    from core import metrics as M

    rng = np.random.default_rng(1)
    n = 60
    y = np.where(rng.random(n) < 0.05, 2, rng.integers(0, 2, n))  # a rare class: some resamples lack it
    proba = rng.dirichlet([1, 1, 0.2], n)
    weight = rng.random(n)

    def recomputed(w, seed, samples=300):
        r, values = np.random.default_rng(seed), []
        for _ in range(samples):
            idx = r.integers(0, n, n)
            if len(np.unique(y[idx])) < 2:
                continue
            values.append(M.task_metric("ordinal", metric, y[idx], proba[idx], None if w is None else w[idx]))
        # an undefined metric (no top class drawn: sklearn's AUC is NaN) is left out; bootstrap_ci's tail
        v, tail = np.asarray([x for x in values if np.isfinite(x)]), (1 - 0.95) / 2
        return {"low": float(np.quantile(v, tail)), "high": float(np.quantile(v, 1 - tail)), "samples": float(len(v))}

    for w in (None, weight):
        for seed in (0, 7):
            ci, want = bootstrap_ci("ordinal", metric, y, proba, w, seed=seed, samples=300), recomputed(w, seed)
            if metric == "log_loss":
                assert ci == want
            else:
                assert ci == pytest.approx(want, rel=1e-13, abs=0) and ci["samples"] == want["samples"]


def test_uncertainty_and_repeats_cover_model_and_both_baselines(one_trial):
    spec, frame, r = one_trial
    u = holdout_uncertainty(r)
    for who, point in (("model", r.metrics), ("baseline", r.baseline), ("baseline_lgbm_default", r.lgbm_default)):
        assert u[who]["low"] <= point["roc_auc"] <= u[who]["high"]
    other = fit_task(spec, frame, seed=1, trials=1, timeout=None)
    rep = repeat_summary([r, other])
    assert rep["seeds"] == [0, 1] and rep["n"] == 2
    auc = [r.metrics["roc_auc"], other.metrics["roc_auc"]]
    assert rep["model"]["roc_auc"]["mean"] == pytest.approx(np.mean(auc))
    assert rep["model"]["roc_auc"]["sd"] == pytest.approx(np.std(auc, ddof=1))
    assert rep["baseline_lgbm_default"]["roc_auc"]["min"] == min(
        r.lgbm_default["roc_auc"], other.lgbm_default["roc_auc"]
    )
    assert set(rep["baseline"]) >= {"roc_auc"}


def _cli_json(result) -> dict:
    import json

    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_cli_repeats_and_bootstrap_land_in_json_and_mlflow(tmp_path):
    from typer.testing import CliRunner

    from clientlens.cli import app
    from training import registry as R

    _table(600).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "name: synthetic\nsource: t.csv\ndrop: [household, month]\n"
        "target: {column: y, kind: binary, positive: 'yes'}\ntuning: {cv_folds: 3}\n"
    )
    runner = CliRunner()
    args = ["train", "--spec", str(tmp_path / "s.yaml"), "--trials", "1", "--no-plots", "--json"]
    one = _cli_json(runner.invoke(app, args))
    assert one["baseline_lgbm_default"]["roc_auc"] > 0.6 and one["tuning"]["folds"] == 3
    ci = one["uncertainty"]["model"]
    assert ci["low"] <= one["metrics"]["roc_auc"] <= ci["high"]
    rep = _cli_json(runner.invoke(app, [*args, "--repeats", "2", "--seed", "5"]))
    assert rep["repeats"]["seeds"] == [5, 6] and "uncertainty" not in rep
    st = rep["repeats"]["baseline_lgbm_default"]["roc_auc"]
    assert st["min"] <= st["mean"] <= st["max"] and st["min"] < st["max"]  # two different splits
    logged = R.client().get_run(rep["run_id"]).data.metrics
    assert logged["repeats.model.roc_auc.mean"] == pytest.approx(rep["repeats"]["model"]["roc_auc"]["mean"])
    assert logged["baseline_lgbm_default.roc_auc"] == pytest.approx(rep["baseline_lgbm_default"]["roc_auc"])
    assert "ci95.model.low" in R.client().get_run(one["run_id"]).data.metrics
    bad = runner.invoke(app, [*args, "--repeats", "0"])
    assert bad.exit_code == 2


def test_bag_scores_the_mean_of_its_boosters_binary_and_multiclass():
    import lightgbm as lgb

    from training.tune import bag

    rng = np.random.default_rng(3)
    X = rng.random((1500, 3))
    X[:, 2] = rng.integers(0, 4, 1500)
    for params, y in (
        ({"objective": "binary"}, (X[:, 0] + X[:, 2] / 4 + rng.random(1500) > 1.2).astype(int)),
        ({"objective": "multiclass", "num_class": 3}, rng.integers(0, 3, 1500)),
    ):
        common = {**params, "verbosity": -1, "num_leaves": 7, "bagging_fraction": 0.7, "bagging_freq": 1}
        boosters = [lgb.train({**common, "seed": s}, lgb.Dataset(X, y, categorical_feature=[2]), 30) for s in range(3)]
        merged = bag(boosters, 20)
        mean = np.mean([b.predict(X, raw_score=True, num_iteration=20) for b in boosters], axis=0)
        assert merged.num_trees() == 3 * 20 * params.get("num_class", 1)
        assert np.allclose(merged.predict(X, raw_score=True), mean, atol=1e-12)
        if params["objective"] == "binary":  # TreeSHAP still adds up to the (mean) raw score
            assert np.allclose(merged.predict(X[:20], pred_contrib=True).sum(axis=1), mean[:20], atol=1e-12)


def test_final_folds_averages_the_fold_boosters(tmp_path):
    spec = _spec(tmp_path, baseline={"kind": "prior"}, tuning={"final": "folds"})
    frame = _table()
    r = fit_task(spec, frame, seed=0, trials=1, timeout=None)
    assert r.split["final"] == "folds" and r.tuning.n_folds == 5
    assert r.model.booster.num_trees() == 5 * PLAIN_LGBM["n_estimators"]
    X = r.model.matrix(r.holdout[r.model.features])
    mean = np.mean([b.predict(X, raw_score=True, num_iteration=300) for b in r.tuning.fold_boosters], axis=0)
    assert np.allclose(r.model.booster.predict(X, raw_score=True), mean)
    again = fit_task(spec, frame, seed=0, trials=1, timeout=None)
    assert again.metrics == r.metrics  # reproducible


def test_repeated_folds_each_partition_the_non_test_rows(tmp_path):
    spec = _spec(tmp_path, tuning={"cv_folds": 4, "cv_repeats": 3})
    prep = prepare(_table(), spec)
    sp = split(prep, 0)
    folds = tuning_folds(spec, prep, sp, 0)
    rest = np.sort(np.concatenate([sp.train, sp.valid]))
    assert len(folds) == 12
    once = tuning_folds(_spec(tmp_path, tuning={"cv_folds": 4}), prep, sp, 0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds[:4], once, strict=True))  # repeat 1 unchanged
    for r in range(3):
        assert np.array_equal(np.sort(np.concatenate([b for _, b in folds[4 * r : 4 * r + 4]])), rest)
    assert not np.array_equal(folds[0][1], folds[4][1])  # each repeat draws its own folds


def test_plain_margin_keeps_the_plain_lightgbm_unless_beaten_by_more(tmp_path):
    frame = _table()
    free = fit_task(_spec(tmp_path, baseline={"kind": "prior"}), frame, seed=2, trials=3, timeout=None)
    assert free.tuning.best_value > free.tuning.start_value  # the study found something better on the folds
    gap = free.tuning.best_value - free.tuning.start_value
    spec = _spec(tmp_path, baseline={"kind": "prior"}, tuning={"plain_margin": gap + 1e-6})
    kept = fit_task(spec, frame, seed=2, trials=3, timeout=None)
    assert kept.tuning.best_value == kept.tuning.start_value and kept.tuning.best_iteration == 300
    assert kept.tuning.params["learning_rate"] == PLAIN_LGBM["learning_rate"]


def test_optional_space_is_searched_only_when_named_and_starts_neutral(tmp_path):
    import optuna

    from training.tune import NEUTRAL, search_space

    assert "extra_trees" not in start_trials()[0]
    bounds = {"cat_smooth": (1.0, 50.0), "extra_trees": (0.0, 1.0), "min_data_per_group": (5.0, 200.0)}
    plain = start_trials(bounds)[0]
    assert plain["cat_smooth"] == NEUTRAL["cat_smooth"] and plain["extra_trees"] == 0
    assert plain["min_data_per_group"] == 100
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(plain)
    trial = study.ask()
    params = search_space(trial, bounds)
    assert params["extra_trees"] is False and params["cat_smooth"] == 10.0
    assert "path_smooth" not in params
    r = fit_task(_spec(tmp_path, tuning={"space": bounds}), _table(), seed=0, trials=2, timeout=None)
    assert r.tuning.n_trials == 2


def test_tuning_metric_log_loss_scores_every_trial_on_the_fold_log_loss(tmp_path):
    """`tuning.metric: log_loss`: the study minimises the mean fold log loss; the default stays AUC."""
    frame = _table(600)
    default = fit_task(_spec(tmp_path, baseline={"kind": "prior"}), frame, seed=0, trials=3, timeout=None)
    assert (default.tuning.metric, default.tuning.direction) == ("auc", "maximize")
    spec = _spec(tmp_path, baseline={"kind": "prior"}, tuning={"metric": "log_loss"})
    r = fit_task(spec, frame, seed=0, trials=3, timeout=None)
    assert (r.tuning.metric, r.tuning.direction) == ("binary_logloss", "minimize")
    assert r.tuning.best_value == min(r.tuning.history)  # the lowest loss wins, not the highest
    assert 0.0 < r.tuning.best_value < 0.69  # a log loss below the coin's, not an AUC
    with pytest.raises(Exception, match="roc_auc needs a binary"):
        spec_from_dict(
            {
                "name": "m",
                "source": "t.csv",
                "target": {"column": "y", "kind": "multiclass"},
                "tuning": {"metric": "roc_auc"},
            },
            base_dir=tmp_path,
        )


def test_refit_dataset_bins_as_the_train_dataset_of_datasets():
    """`datasets` and `refit_dataset` share one constructor: the same rows give the same bins (the same
    trees), the categorical column stays categorical, and the valid set is binned on the train's bins."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[:, 2] = rng.integers(0, 6, 400)
    y = (X[:, 0] + (X[:, 2] == 2) + rng.normal(size=400) > 0.5).astype(float)
    names = ["a", "b", "c"]
    dtrain, dvalid = datasets(X[:300], y[:300], None, X[300:], y[300:], None, [2], names, threads=1)
    dall = refit_dataset(X[:300], y[:300], None, [2], names, threads=1)
    assert dvalid.reference is dtrain and dall.num_data() == dtrain.num_data() == 300
    params = {"objective": "binary", "verbosity": -1, "seed": 0, "deterministic": True, "num_threads": 1,
              "force_row_wise": True, "min_data_in_leaf": 5}  # fmt: skip
    a, b = lgb.train(params, dtrain, 8), lgb.train(params, dall, 8)
    assert a.model_to_string() == b.model_to_string()
    infos = a.dump_model()["feature_infos"]
    assert set(range(6)) <= set(infos["c"]["values"]) and not infos["a"]["values"]  # c a category, a a number
