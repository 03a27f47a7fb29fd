"""LightGBM tuned by Optuna: seeded TPE sampler, median pruning on intermediate validation
scores (optuna-integration's LightGBMPruningCallback), early stopping, a trial and time budget.

Deterministic for a given data, spec and seed: TPESampler(seed), LightGBM `seed` +
`deterministic=True` + `force_row_wise=True` and a fixed thread count. A time budget
(`timeout`) can cut the study short, so only the trial budget is reproducible.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from core.settings import Settings

log = logging.getLogger(__name__)

VALID_NAME = "valid"


def lgb_threads(settings: Settings | None = None) -> int:
    """LightGBM threads: `CLIENTLENS_LGBM_THREADS` (`Settings.lgbm_threads`), default 1.

    One thread per trial is both deterministic and robust on a shared 2-core machine: with
    2 OpenMP threads and other work running, a trial was measured ~10x slower (busy-waiting).
    """
    return (settings or Settings()).lgbm_threads


def objective_of(kind: str, n_classes: int) -> tuple[dict[str, Any], str, str]:
    """LightGBM objective params, the validation metric and the study direction for a task kind."""
    if kind == "binary":
        return {"objective": "binary"}, "auc", "maximize"
    if kind == "multiclass":
        return {"objective": "multiclass", "num_class": n_classes}, "multi_logloss", "minimize"
    return {"objective": "regression"}, "rmse", "minimize"


def base_params(kind: str, n_classes: int, seed: int, threads: int | None = None) -> dict[str, Any]:
    obj, metric, _ = objective_of(kind, n_classes)
    return {
        **obj,
        "metric": metric,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads or lgb_threads(),
        "verbosity": -1,
    }


DEFAULT_SPACE: dict[str, tuple[float, float]] = {
    "learning_rate": (0.02, 0.3),
    "num_leaves": (7, 255),
    "min_child_samples": (5, 200),
    "feature_fraction": (0.4, 1.0),
    "bagging_fraction": (0.5, 1.0),
    "lambda_l1": (1e-8, 10.0),
    "lambda_l2": (1e-8, 10.0),
}


def search_space(trial, bounds: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    b = {**DEFAULT_SPACE, **(bounds or {})}
    return {
        "learning_rate": trial.suggest_float("learning_rate", *b["learning_rate"], log=True),
        "num_leaves": trial.suggest_int("num_leaves", int(b["num_leaves"][0]), int(b["num_leaves"][1]), log=True),
        "min_child_samples": trial.suggest_int(
            "min_child_samples", int(b["min_child_samples"][0]), int(b["min_child_samples"][1]), log=True
        ),
        "feature_fraction": trial.suggest_float("feature_fraction", *b["feature_fraction"]),
        "bagging_fraction": trial.suggest_float("bagging_fraction", *b["bagging_fraction"]),
        "bagging_freq": 1,
        "lambda_l1": trial.suggest_float("lambda_l1", *b["lambda_l1"], log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", *b["lambda_l2"], log=True),
    }


@dataclass
class TuneResult:
    booster: lgb.Booster
    params: dict[str, Any]
    best_iteration: int
    best_value: float
    metric: str
    direction: str
    n_trials: int
    n_pruned: int
    seconds: float
    history: list[float] = field(default_factory=list)


def datasets(
    X_train: np.ndarray,
    y_train: np.ndarray,
    w_train: np.ndarray | None,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    w_valid: np.ndarray | None,
    categorical_idx: list[int],
    feature_names: list[str] | None = None,
    init_train: np.ndarray | None = None,
    init_valid: np.ndarray | None = None,
) -> tuple[lgb.Dataset, lgb.Dataset]:
    """Binned once and shared by every trial (`feature_pre_filter=False` so min_child_samples may vary).

    `init_train` / `init_valid`: per-row starting scores (LightGBM `init_score`, log-odds for binary)
    that boosting corrects; the validation metric (early stopping, pruning) includes them."""
    ds_params = {"feature_pre_filter": False, "verbosity": -1, "max_bin": 255}
    names: list[str] | Literal["auto"] = list(feature_names) if feature_names else "auto"
    dtrain = lgb.Dataset(
        X_train,
        y_train,
        weight=w_train,
        init_score=init_train,
        categorical_feature=categorical_idx or "auto",
        feature_name=names,
        params=ds_params,
        free_raw_data=False,
    )
    dvalid = lgb.Dataset(
        X_valid,
        y_valid,
        weight=w_valid,
        init_score=init_valid,
        categorical_feature=categorical_idx or "auto",
        feature_name=names,
        reference=dtrain,
        params=ds_params,
        free_raw_data=False,
    )
    return dtrain.construct(), dvalid.construct()


def fit(
    params: dict[str, Any],
    dtrain: lgb.Dataset,
    dvalid: lgb.Dataset,
    *,
    early_stopping_rounds: int,
    max_rounds: int,
    callbacks: list | None = None,
) -> lgb.Booster:
    return lgb.train(
        params,
        dtrain,
        num_boost_round=max_rounds,
        valid_sets=[dvalid],
        valid_names=[VALID_NAME],
        callbacks=[
            lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False),
            *(callbacks or []),
        ],
    )


def fit_default(
    kind: str,
    n_classes: int,
    dtrain: lgb.Dataset,
    dvalid: lgb.Dataset,
    *,
    seed: int,
    early_stopping_rounds: int = 50,
    max_rounds: int = 2000,
    threads: int | None = None,
) -> lgb.Booster:
    """LightGBM with its default hyper-parameters (plus early stopping): the untuned reference."""
    return fit(
        base_params(kind, n_classes, seed, threads),
        dtrain,
        dvalid,
        early_stopping_rounds=early_stopping_rounds,
        max_rounds=max_rounds,
    )


def sampler(seed: int, trials: int):
    """TPE, seeded; a third of the budget (2 to 10 trials) explores at random first."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, trials // 3)))


def pruner():
    """A trial stops when its validation score falls below the median of earlier trials' at the same round."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30, interval_steps=5)


def fit_trial(
    trial, base: dict[str, Any], space, dtrain, dvalid, *, early_stopping_rounds: int, max_rounds: int
) -> tuple[dict[str, Any], Any, float]:
    """One Optuna trial: `base` plus the sampled parameters, early-stopped and pruned on the validation
    metric. Returns (params, booster, best validation score)."""
    from optuna_integration import LightGBMPruningCallback

    metric = base["metric"]
    params = {**base, **search_space(trial, space)}
    booster = fit(
        params,
        dtrain,
        dvalid,
        early_stopping_rounds=early_stopping_rounds,
        max_rounds=max_rounds,
        callbacks=[LightGBMPruningCallback(trial, metric, valid_name=VALID_NAME, report_interval=5)],
    )
    return params, booster, float(booster.best_score[VALID_NAME][metric])


def tune(
    kind: str,
    n_classes: int,
    dtrain: lgb.Dataset,
    dvalid: lgb.Dataset,
    *,
    trials: int,
    timeout: float | None,
    seed: int,
    early_stopping_rounds: int = 50,
    max_rounds: int = 2000,
    threads: int | None = None,
    space: dict[str, tuple[float, float]] | None = None,
    fixed: dict[str, Any] | None = None,
    progress=None,
) -> TuneResult:
    """Run an Optuna study; return the best trial's booster (trained on train, early-stopped on valid).

    `fixed`: LightGBM parameters every trial uses as given (e.g. `monotone_constraints`).
    """
    import optuna

    base = {**base_params(kind, n_classes, seed, threads), **(fixed or {})}
    metric, direction = base["metric"], objective_of(kind, n_classes)[2]
    sign = 1.0 if direction == "maximize" else -1.0
    best: dict[str, Any] = {}
    history: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        params, booster, value = fit_trial(
            trial, base, space, dtrain, dvalid, early_stopping_rounds=early_stopping_rounds, max_rounds=max_rounds
        )
        history.append(value)
        if not best or sign * value > sign * best["value"]:
            best.update(value=value, booster=booster, params=params, iteration=booster.best_iteration)
        if progress is not None:
            progress()
        return value

    study = optuna.create_study(
        direction=optuna.study.StudyDirection[direction.upper()], sampler=sampler(seed, trials), pruner=pruner()
    )
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
    seconds = time.perf_counter() - t0
    if not best:
        raise RuntimeError("every tuning trial was pruned or failed")
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    log.info(
        "tuned %s: best %s=%.5f after %d trials (%d pruned) in %.1fs",
        kind,
        metric,
        best["value"],
        len(study.trials),
        n_pruned,
        seconds,
    )
    return TuneResult(
        booster=best["booster"],
        params=best["params"],
        best_iteration=int(best["iteration"] or best["booster"].current_iteration()),
        best_value=best["value"],
        metric=metric,
        direction=direction,
        n_trials=len(study.trials),
        n_pruned=n_pruned,
        seconds=seconds,
        history=history,
    )
