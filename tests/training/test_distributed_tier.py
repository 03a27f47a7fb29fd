"""A multiclass model boosted from persistence (`TransitionPrior`, the tier spec) trained on Dask: the
(n, k) starting scores reach the workers' booster, and the artefact adds the same prior back (issue #15
item 5 on the #16 engine). Uses the real 2-worker cluster of `test_distributed`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import metrics as M
from tests.training.test_distributed import cluster, engine_on  # noqa: F401  (the module-scoped cluster fixture)

CLASSES = ["mass", "affluent", "hnw"]


def tier_frame(n_customers: int = 1500, months: int = 4, seed: int = 0) -> pd.DataFrame:
    """Monthly snapshots: the next tier is the current one unless a noisy `aum` crosses a threshold."""
    rng = np.random.default_rng(seed)
    aum = np.exp(rng.normal(0.0, 1.2, n_customers))
    edges = [1.0, 4.0]
    frames = []
    for month in range(months):
        nxt = aum * np.exp(rng.normal(0.05, 0.15, n_customers))
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": np.arange(n_customers),
                    "as_of": pd.Timestamp("2026-01-31") + pd.offsets.MonthEnd(month),
                    "aum": aum,
                    "x": rng.normal(size=n_customers),
                    "tier_now": np.asarray(CLASSES, dtype=object)[np.digitize(aum, edges)],
                    "tier_next": np.asarray(CLASSES, dtype=object)[np.digitize(nxt, edges)],
                }
            )
        )
        aum = nxt
    return pd.concat(frames, ignore_index=True)


def tier_spec(tmp_path):
    from training.spec import spec_from_dict

    return spec_from_dict(
        {
            "name": "synthetic",
            "source": "frame.parquet",
            "id": "customer_id",
            "target": {"column": "tier_next", "kind": "multiclass", "classes": CLASSES},
            "categorical": ["tier_now"],
            "split": {"kind": "time", "time_column": "as_of"},
            "tuning": {"trials": 1, "timeout": 600, "max_rounds": 200, "early_stopping_rounds": 20, "cv_folds": 1},
            "baseline": {"kind": "persistence", "column": "tier_now"},
            # strength 1: the prior alone is persistence's level, so a booster that never saw it is far off
            "boost_from_baseline": True,
            "prior_strength": 1.0,
        },
        base_dir=tmp_path,
    )


@pytest.mark.slow
def test_tier_prior_on_dask_is_the_init_score_of_the_workers_booster(cluster, tmp_path):  # noqa: F811
    """The Dask booster trains from the transition prior's (n, 3) margins: it is close to a local booster
    fitted with those margins as `init_score` (same rows, parameters and rounds) and far from one fitted
    without them; the artefact's probabilities are softmax(booster raw + prior) and beat persistence.
    (Before the fix, `fit_dask` chunked the (n, 3) margins as a vector and the fit raised ValueError.)"""
    from training.data import prepare, split
    from training.model import TransitionPrior
    from training.train import fit_task
    from training.tune import refit, refit_dataset

    frame = tier_frame()
    frame.to_parquet(tmp_path / "frame.parquet", index=False)
    spec = tier_spec(tmp_path)
    engine = engine_on(cluster, tmp_path)
    dask = fit_task(spec, engine.read_source(spec, seed=0), seed=0, engine=engine)
    core = dask.model
    assert isinstance(core.prior, TransitionPrior)

    test = frame[frame["as_of"] == frame["as_of"].max()]
    X = core.matrix(test)
    raw = core.booster.predict(X, raw_score=True)
    want = np.exp(raw + core.prior.margin(X) - (raw + core.prior.margin(X)).max(axis=1, keepdims=True))
    np.testing.assert_allclose(core.raw_from_matrix(X), want / want.sum(axis=1, keepdims=True), rtol=1e-10)
    assert dask.metrics["log_loss"] < dask.baseline["log_loss"]  # better than persistence

    # The same rows, parameters and rounds in one process, with and without the prior as init_score.
    prep = prepare(frame, spec)
    tr = split(prep, 0).train
    X_tr = core.matrix(prep.X.iloc[tr])
    params = {k: v for k, v in dask.tuning.params.items() if k not in ("n_estimators", "study_name", "study_trial")}
    cat = [core.features.index("tier_now")]
    rounds = dask.tuning.best_iteration

    def local(init):
        data = refit_dataset(X_tr, prep.y[tr], None, cat, core.features, init, 1)
        return refit({**params, "num_threads": 1}, data, rounds).predict(X, raw_score=True)

    def proba(booster_raw):  # what the artefact predicts with that booster: softmax(raw + prior)
        z = booster_raw + core.prior.margin(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    y = np.array([CLASSES.index(v) for v in test["tier_next"]])

    def loss(p):
        return M.multiclass_metrics(y, p)["log_loss"]

    ours = loss(core.raw_from_matrix(X))
    with_prior = loss(proba(local(core.prior.margin(X_tr))))
    without = loss(proba(local(None)))  # a booster that never saw the prior, with the prior added
    assert without > with_prior + 0.02, (ours, with_prior, without)  # the comparison can tell them apart
    assert abs(ours - with_prior) < 0.25 * (without - with_prior), (ours, with_prior, without)
