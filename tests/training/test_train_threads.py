"""Threads in `fit_task` (#18): numpy's BLAS on LightGBM's thread count, and the plain LightGBM baseline on a side
thread during tuning; both give the same numbers as before."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import training.train as train
from training.appetite import AppetitePosterior
from training.baselines import fit_lgbm_default
from training.data import prepare, split
from training.spec import builtin_spec
from training.tune import blas_threads


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_blas_threads_limits_inside_and_restores_after():
    before = _blas_threads()
    with blas_threads(1):
        assert _blas_threads() == {1}
    with threadpool_limits(limits=2, user_api="blas"), blas_threads(1):
        assert _blas_threads() == {1}
    assert _blas_threads() == before


def test_the_plain_lightgbm_trains_beside_the_tuning_and_is_the_sequential_one(panel_and_truth, tmp_path, monkeypatch):
    panel, _ = panel_and_truth
    spec = builtin_spec("churn", tmp_path)
    seen: list[tuple[str, set[int]]] = []

    def recording(**kw):
        seen.append((threading.current_thread().name, _blas_threads()))
        return fit_lgbm_default(**kw)

    monkeypatch.setattr(train, "fit_lgbm_default", recording)
    result = train.fit_task(spec, panel, seed=3, trials=2, timeout=None)
    assert [name.startswith("plain-lgbm") for name, _ in seen] == [True]
    assert seen[0][1] == {1}  # the side thread runs under the process-wide BLAS limit too
    prep = prepare(panel, spec)
    sp = split(prep, 3)
    rest, te = np.sort(np.concatenate([sp.train, sp.valid])), sp.test
    alone = fit_lgbm_default(task_kind="binary", categories={c: prep.categories[c] for c in prep.categorical},
                             X=prep.X.iloc[rest], y=prep.y[rest], weight=None, seed=3)  # fmt: skip
    X_te, ex_te = prep.X.iloc[te].reset_index(drop=True), prep.extras.iloc[te].reset_index(drop=True)
    np.testing.assert_array_equal(result.lgbm_default_test, alone.predict_proba(X_te, ex_te))


@pytest.mark.slow  # a risk fit_task and two EM fits (~25 s)
def test_the_risk_posterior_em_gives_the_same_bits_on_one_or_two_blas_threads(panel_and_truth, tmp_path, monkeypatch):
    """The EM is where BLAS threads cost most (small products over 10^4 rows): one thread must fit exactly the
    posterior two did."""
    panel, truth = panel_and_truth
    calls: list[tuple] = []
    fit = AppetitePosterior.fit

    def capture(self, raw, X, label, iterations=60, anchor=None):
        calls.append((copy.deepcopy(self), raw.copy(), X.copy(), np.array(label), anchor))
        return fit(self, raw, X, label, iterations=iterations, anchor=anchor)

    monkeypatch.setattr(AppetitePosterior, "fit", capture)
    train.fit_task(builtin_spec("risk", tmp_path), panel, seed=0, trials=2, truth=truth)
    (post, raw, X, label, anchor), *_ = calls
    assert len(X) > 1000
    fitted = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            fitted[threads] = fit(copy.deepcopy(post), raw, X, label, anchor=anchor)
    state = {t: {k: v for k, v in p.__dict__.items() if k.endswith("_")} for t, p in fitted.items()}
    assert pickle.dumps(state[1]) == pickle.dumps(state[2])
