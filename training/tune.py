"""LightGBM tuned by Optuna: seeded TPE sampler, median pruning on intermediate validation
scores (optuna-integration's LightGBMPruningCallback), early stopping, a trial and time budget.

`tune_cv` scores each trial on k folds of the non-test rows (`lgb.cv`): the objective is the mean
fold score, so the study picks parameters that are good on all the non-test rows rather than the
luckiest on one small validation split (issue #15). The plain LightGBM parameters a person would try
first (`START_TRIALS`) enter every study (`tune`, `tune_cv`) as its first trials; with folds the number
of boosting rounds is where the mean fold score peaks (early stopping on it); `refit` then trains on
all the non-test rows.

Deterministic for a given data, spec and seed: TPESampler(seed), LightGBM `seed` +
`deterministic=True` + `force_row_wise=True` and a fixed thread count. A time budget
(`timeout`) can cut the study short, so only the trial budget is reproducible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import lightgbm as lgb
import numpy as np

from core.settings import Settings

if TYPE_CHECKING:
    from training.spec import TuningSpec

log = logging.getLogger(__name__)

VALID_NAME = "valid"


def lgb_threads(settings: Settings | None = None) -> int:
    """LightGBM threads: `CLIENTLENS_LGBM_THREADS` (`Settings.lgbm_threads`), default 1.

    One thread per trial is both deterministic and robust on a shared 2-core machine: with
    2 OpenMP threads and other work running, a trial was measured ~10x slower (busy-waiting).
    """
    return (settings or Settings()).lgbm_threads


@contextmanager
def blas_threads(threads: int | None = None) -> Iterator[None]:
    """numpy's BLAS (OpenBLAS) on `threads` threads (default `lgb_threads()`) inside the block, as LightGBM is.

    OpenBLAS starts one thread per core and spins them between calls; beside another training on this 2-core
    machine that made the risk posterior's EM (12,000 rows x 121 grid values, small matrix products) 3.5x
    the CPU: 20-22 CPU-s against 5.7-6.4 on one thread (load 2-5), with bitwise the same fitted posterior
    (#18, `benchmarks/bench_train_threads.py`). OpenBLAS splits a product's output between its threads, so
    the thread count does not change what each output sums."""
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency (it limits BLAS the same way)

    with threadpool_limits(limits=threads or lgb_threads(), user_api="blas"):
        yield


def objective_of(kind: str, n_classes: int) -> tuple[dict[str, Any], str, str]:
    """LightGBM objective params, the validation metric and the study direction for a task kind."""
    if kind == "binary":
        return {"objective": "binary"}, "auc", "maximize"
    if kind == "multiclass":
        return {"objective": "multiclass", "num_class": n_classes}, "multi_logloss", "minimize"
    return {"objective": "regression"}, "rmse", "minimize"


def metric_params(metric: str | None, kind: str) -> dict[str, str]:
    """LightGBM's `metric` for a spec's `tuning.metric` (`roc_auc` / `log_loss`), as `fixed` parameters of a
    study; {} (the kind's default of `objective_of`) for None."""
    if metric is None:
        return {}
    return {"metric": "auc" if metric == "roc_auc" else "multi_logloss" if kind == "multiclass" else "binary_logloss"}


def direction_of(metric: str) -> str:
    """The study direction for a LightGBM validation metric: losses are minimised, AUC is maximised."""
    return "maximize" if metric == "auc" else "minimize"


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


# Searched only when a spec's `tuning.space` names them (so the built-in tasks' studies are unchanged):
# regularisation a small table needs. Each has LightGBM's own default as its "neutral" value, which the
# enqueued start trials use, so trial 0 stays the plain LightGBM. `extra_trees` takes [0, 1] (a choice).
OPTIONAL_SPACE: dict[str, tuple[float, float]] = {
    "min_sum_hessian_in_leaf": (1e-3, 10.0),
    "path_smooth": (1e-8, 10.0),
    "cat_smooth": (1.0, 100.0),
    "cat_l2": (1.0, 100.0),
    "min_data_per_group": (5, 200),
    "extra_trees": (0, 1),
}
NEUTRAL: dict[str, float] = {
    "min_sum_hessian_in_leaf": 1e-3,
    "path_smooth": 1e-8,
    "cat_smooth": 10.0,
    "cat_l2": 10.0,
    "min_data_per_group": 100,
    "extra_trees": 0,
}
_INT_PARAMS = ("num_leaves", "min_child_samples", "min_data_per_group", "extra_trees")


def search_space(trial, bounds: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    b = {**DEFAULT_SPACE, **(bounds or {})}
    params = {
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
    for name in OPTIONAL_SPACE:
        if name not in (bounds or {}):
            continue
        lo, hi = b[name]
        if name == "extra_trees":
            params[name] = bool(trial.suggest_int(name, int(lo), int(hi)))
        elif name in _INT_PARAMS:
            params[name] = trial.suggest_int(name, int(lo), int(hi), log=True)
        else:
            params[name] = trial.suggest_float(name, lo, hi, log=True)
    return params


# The plain LightGBM of issue #15 (`baseline_lgbm_default` fits it as a baseline): what a data scientist
# fits by hand, with a fixed number of trees and no early stopping.
PLAIN_LGBM: dict[str, float] = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 15}

# Enqueued as the first trials of every study (clipped to the search bounds): the plain LightGBM (lr 0.03,
# 15 leaves, no sampling, no regularisation), scored at exactly its 300 rounds, then LightGBM's own defaults
# (early-stopped as every other trial). If the plain model is the best on the tuning folds, the final model
# IS the plain model refitted on the same rows, so tuning cannot pick something worse on its own evidence.
START_TRIALS: tuple[dict[str, float], ...] = (
    {
        "learning_rate": PLAIN_LGBM["learning_rate"],
        "num_leaves": PLAIN_LGBM["num_leaves"],
        "min_child_samples": 20,
        "feature_fraction": 1.0,
        "bagging_fraction": 1.0,
        "lambda_l1": 1e-8,
        "lambda_l2": 1e-8,
    },
    {
        "learning_rate": 0.1,
        "num_leaves": 31,
        "min_child_samples": 20,
        "feature_fraction": 1.0,
        "bagging_fraction": 1.0,
        "lambda_l1": 1e-8,
        "lambda_l2": 1e-8,
    },
)
PLAIN_TRIAL = 0  # the trial number scored at PLAIN_LGBM's fixed rounds


def start_trials(bounds: dict[str, tuple[float, float]] | None = None) -> list[dict[str, float]]:
    """`START_TRIALS` inside the search bounds (a spec may narrow them), integers where the space has them;
    the `OPTIONAL_SPACE` parameters the spec searches at their `NEUTRAL` (LightGBM default) values."""
    b = {**DEFAULT_SPACE, **(bounds or {})}
    optional = {name: NEUTRAL[name] for name in OPTIONAL_SPACE if name in (bounds or {})}
    out = []
    for trial in START_TRIALS:
        point: dict[str, float] = {}
        for name, value in {**trial, **optional}.items():
            lo, hi = b[name]
            v = min(max(value, lo), hi)
            point[name] = int(round(v)) if name in _INT_PARAMS else float(v)
        if point not in out:
            out.append(point)
    return out


@dataclass(frozen=True)
class TuneBudget:
    """What one study may spend and how its trials are fitted, built once from `spec.tuning`
    (`from_spec`) and passed to `tune`, `tune_cv` and `training.distributed.tune_on_dask`.

    `fixed`: LightGBM parameters every trial uses as given (e.g. `monotone_constraints`);
    `space`: overrides of `DEFAULT_SPACE`'s bounds; `progress`: called after every trial."""

    trials: int
    timeout: float | None
    seed: int
    early_stopping_rounds: int = 50
    max_rounds: int = 2000
    threads: int | None = None
    space: dict[str, tuple[float, float]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[], None] | None = None
    # The best trial replaces the plain LightGBM (trial 0) only when it beats it by more than this on the
    # tuning objective: the best of many noisy fold scores is optimistic, so a tie within noise keeps plain.
    plain_margin: float = 0.0

    @classmethod
    def from_spec(
        cls,
        tuning: TuningSpec,
        *,
        seed: int,
        trials: int | None = None,
        timeout: float | None = None,
        threads: int | None = None,
        fixed: dict[str, Any] | None = None,
        progress: Callable[[], None] | None = None,
    ) -> TuneBudget:
        """The spec's budget; `trials` / `timeout` (the CLI's `--trials` / `--timeout`) override it when given."""
        return cls(
            trials=trials or tuning.trials,
            timeout=timeout if timeout is not None else tuning.timeout,
            seed=seed,
            early_stopping_rounds=tuning.early_stopping_rounds,
            max_rounds=tuning.max_rounds,
            threads=threads,
            space={str(name): bounds for name, bounds in tuning.space.items()},
            fixed=dict(fixed or {}),
            progress=progress,
            plain_margin=tuning.plain_margin,
        )


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
    # tune_cv: the best trial's booster per fold (all stopped at the round where the fold mean peaks), the
    # number of folds and the first enqueued (plain LightGBM) trial's score.
    fold_boosters: list[lgb.Booster] = field(default_factory=list, repr=False)
    n_folds: int = 1
    start_value: float | None = None


def _dataset(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    init: np.ndarray | None,
    categorical_idx: list[int],
    feature_names: list[str] | None,
    threads: int | None,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """One constructed LightGBM Dataset, binned as every Dataset of a study is (`reference`: reuse its bins).

    `feature_pre_filter=False` so min_child_samples may vary between trials. `threads` (default
    `lgb_threads()`) is set on the Dataset too: `lgb.cv` boosts its fold subsets with the Dataset's thread
    count, and all OpenMP threads busy-waiting on this shared machine made a 5-fold trial ~40x slower
    (measured: 55 s against 1.4 s wall for 100 rounds on 1,000 rows)."""
    names: list[str] | Literal["auto"] = list(feature_names) if feature_names else "auto"
    return lgb.Dataset(
        X,
        y,
        weight=w,
        init_score=init,
        categorical_feature=categorical_idx or "auto",
        feature_name=names,
        reference=reference,
        params={"feature_pre_filter": False, "verbosity": -1, "max_bin": 255, "num_threads": threads or lgb_threads()},
        free_raw_data=False,
    ).construct()


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
    threads: int | None = None,
) -> tuple[lgb.Dataset, lgb.Dataset]:
    """Train and valid Datasets, binned once on train and shared by every trial.

    `init_train` / `init_valid`: per-row starting scores (LightGBM `init_score`, log-odds for binary)
    that boosting corrects; the validation metric (early stopping, pruning) includes them."""
    dtrain = _dataset(X_train, y_train, w_train, init_train, categorical_idx, feature_names, threads)
    dvalid = _dataset(X_valid, y_valid, w_valid, init_valid, categorical_idx, feature_names, threads, reference=dtrain)
    return dtrain, dvalid


def refit_dataset(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    categorical_idx: list[int],
    feature_names: list[str] | None = None,
    init: np.ndarray | None = None,
    threads: int | None = None,
) -> lgb.Dataset:
    """The Dataset of every non-test row, for `refit` and `tune_cv` (binned as `datasets` bins its train)."""
    return _dataset(X, y, w, init, categorical_idx, feature_names, threads)


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
    """A trial stops when its validation score (k folds: the mean over the folds) falls below the median
    of earlier trials' at the same round."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30, interval_steps=5)


def fit_trial(
    trial,
    base: dict[str, Any],
    space,
    dtrain,
    dvalid,
    *,
    early_stopping_rounds: int,
    max_rounds: int,
    fixed_rounds: int | None = None,
) -> tuple[dict[str, Any], Any, float]:
    """One Optuna trial: `base` plus the sampled parameters, early-stopped and pruned on the validation
    metric (`fixed_rounds`: no early stopping, scored at that round). Returns (params, booster, score)."""
    from optuna_integration import LightGBMPruningCallback

    metric = base["metric"]
    params = {**base, **search_space(trial, space)}
    prune = LightGBMPruningCallback(trial, metric, valid_name=VALID_NAME, report_interval=5)
    if fixed_rounds:
        scores: dict = {}
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=fixed_rounds,
            valid_sets=[dvalid],
            valid_names=[VALID_NAME],
            callbacks=[prune, lgb.record_evaluation(scores)],
        )
        return params, booster, float(scores[VALID_NAME][metric][-1])
    booster = fit(
        params, dtrain, dvalid, early_stopping_rounds=early_stopping_rounds, max_rounds=max_rounds, callbacks=[prune]
    )
    return params, booster, float(booster.best_score[VALID_NAME][metric])


CV_NAME = "cv_agg"  # lgb.cv's name for the fold-mean scores


def fit_trial_cv(
    trial,
    base: dict[str, Any],
    space,
    data: lgb.Dataset,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    early_stopping_rounds: int,
    max_rounds: int,
    fixed_rounds: int | None = None,
) -> tuple[dict[str, Any], list[lgb.Booster], float, int]:
    """One trial over k folds of `data` (positions into it): `lgb.cv` boosts the folds in lockstep and
    early-stops on the MEAN fold score, so the chosen number of rounds is the folds' common best (steadier
    than each small fold's own); pruned on that mean. `fixed_rounds`: no early stopping, scored at that
    round (the plain LightGBM trial). Returns (params, fold boosters, best mean score, rounds)."""
    from optuna_integration import LightGBMPruningCallback

    metric = base["metric"]
    params = {**base, **search_space(trial, space)}
    stop = [] if fixed_rounds else [lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)]
    out = lgb.cv(
        params,
        data,
        num_boost_round=fixed_rounds or max_rounds,
        folds=folds,
        stratified=False,
        shuffle=False,
        return_cvbooster=True,
        callbacks=[*stop, LightGBMPruningCallback(trial, metric, valid_name=CV_NAME, report_interval=5)],
    )
    cvb = out["cvbooster"]
    assert isinstance(cvb, lgb.CVBooster)  # return_cvbooster=True
    curve = out[f"valid {metric}-mean"]
    assert isinstance(curve, list)
    rounds = int(fixed_rounds or cvb.best_iteration or len(curve))
    for booster in cvb.boosters:  # predict with the common best round, not every tree grown before stopping
        booster.best_iteration = rounds
    return params, list(cvb.boosters), float(curve[rounds - 1]), rounds


def refit(params: dict[str, Any], data: lgb.Dataset, rounds: int) -> lgb.Booster:
    """The final model: the chosen parameters trained on all the non-test rows for a fixed number of rounds."""
    return lgb.train(params, data, num_boost_round=rounds)


def bag(boosters: list[lgb.Booster], rounds: int) -> lgb.Booster:
    """One booster whose raw score is the MEAN of `boosters`' raw scores at `rounds` (`tuning.final: folds`):
    every booster's first `rounds` iterations, each leaf value divided by their number. A plain
    `lgb.Booster`, so scoring, SHAP, compiling and serving treat it as any model. Each booster's first tree
    carries its own starting score (boost_from_average), so the mean includes the mean start."""
    if len(boosters) == 1:
        return boosters[0]
    scale = 1.0 / len(boosters)
    head, tail = "", ""
    trees: list[str] = []
    for i, booster in enumerate(boosters):
        text = booster.model_to_string(num_iteration=rounds)
        start, end = text.index("\nTree=0\n"), text.index("\nend of trees")
        if i == 0:
            head, tail = text[:start], text[end:]
        trees.extend(block for block in text[start:end].split("\nTree=")[1:])
    out = []
    for n, block in enumerate(trees):
        lines = block.split("\n")
        lines[0] = str(n)  # the tree's number (the text after "Tree=")
        for j, line in enumerate(lines):
            key, _, values = line.partition("=")
            if key in ("leaf_value", "internal_value") and values:
                lines[j] = key + "=" + " ".join(repr(float(v) * scale) for v in values.split(" "))
        out.append("\n".join(lines))
    # tree_sizes (byte offsets for parallel loading) would be wrong after the edit; LightGBM parses without it
    head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
    return lgb.Booster(model_str=head + "".join("\nTree=" + b for b in out) + tail)


def _study(
    kind: str,
    n_classes: int,
    trial_fit,
    budget: TuneBudget,
    *,
    n_folds: int,
) -> TuneResult:
    """An Optuna study over `trial_fit(trial, base, fixed_rounds) -> (params, boosters, value, rounds)`;
    the first trials are `start_trials(budget.space)`, trial `PLAIN_TRIAL` at PLAIN_LGBM's fixed rounds."""
    import optuna

    trials, progress = budget.trials, budget.progress
    base = {**base_params(kind, n_classes, budget.seed, budget.threads), **budget.fixed}
    metric = base["metric"]  # `fixed` may set it (`metric_params`)
    direction = direction_of(metric)
    sign = 1.0 if direction == "maximize" else -1.0
    best: dict[str, Any] = {}
    history: list[float] = []

    plain_best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        plain = trial.number == PLAIN_TRIAL
        params, boosters, value, rounds = trial_fit(trial, base, int(PLAIN_LGBM["n_estimators"]) if plain else None)
        history.append(value)
        if plain:
            plain_best.update(value=value, boosters=boosters, params=params, rounds=rounds)
        if not best or sign * value > sign * best["value"]:
            best.update(value=value, boosters=boosters, params=params, rounds=rounds)
        if progress is not None:
            progress()
        return value

    study = optuna.create_study(
        direction=optuna.study.StudyDirection[direction.upper()], sampler=sampler(budget.seed, trials), pruner=pruner()
    )
    for point in start_trials(budget.space)[:trials]:
        study.enqueue_trial(point)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=budget.timeout, catch=())
    seconds = time.perf_counter() - t0
    if not best:
        raise RuntimeError("every tuning trial was pruned or failed")
    if plain_best and best is not plain_best and sign * (best["value"] - plain_best["value"]) <= budget.plain_margin:
        log.info(
            "best trial %s=%.5f is within %.4f of the plain LightGBM's %.5f: keeping the plain LightGBM",
            metric,
            best["value"],
            budget.plain_margin,
            plain_best["value"],
        )
        best = plain_best
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    log.info(
        "tuned %s on %d fold(s): best %s=%.5f after %d trials (%d pruned) in %.1fs; %d rounds",
        kind,
        n_folds,
        metric,
        best["value"],
        len(study.trials),
        n_pruned,
        seconds,
        best["rounds"],
    )
    return TuneResult(
        booster=best["boosters"][0],
        params=best["params"],
        best_iteration=int(best["rounds"]),
        best_value=best["value"],
        metric=metric,
        direction=direction,
        n_trials=len(study.trials),
        n_pruned=n_pruned,
        seconds=seconds,
        history=history,
        fold_boosters=best["boosters"],
        n_folds=n_folds,
        start_value=history[0] if history else None,
    )


def tune_cv(
    kind: str,
    n_classes: int,
    data: lgb.Dataset,
    folds: list[tuple[np.ndarray, np.ndarray]],
    budget: TuneBudget,
) -> TuneResult:
    """A study whose objective is the mean score over `folds` ((train, valid) positions into `data`).

    Returns the best trial's parameters, its fold boosters (`fold_boosters`, for out-of-fold scores) and
    the rounds to `refit` with; `booster` is the first fold's booster, not a final model."""

    def trial_fit(trial, base, fixed_rounds):
        return fit_trial_cv(
            trial,
            base,
            budget.space,
            data,
            folds,
            early_stopping_rounds=budget.early_stopping_rounds,
            max_rounds=budget.max_rounds,
            fixed_rounds=fixed_rounds,
        )

    return _study(kind, n_classes, trial_fit, budget, n_folds=len(folds))


def tune(
    kind: str,
    n_classes: int,
    dtrain: lgb.Dataset,
    dvalid: lgb.Dataset,
    budget: TuneBudget,
) -> TuneResult:
    """Run an Optuna study on one train/valid split; return the best trial's booster (trained on train,
    early-stopped on valid). The first trials are `start_trials(budget.space)`."""

    def trial_fit(trial, base, fixed_rounds):
        params, booster, value = fit_trial(
            trial,
            base,
            budget.space,
            dtrain,
            dvalid,
            early_stopping_rounds=budget.early_stopping_rounds,
            max_rounds=budget.max_rounds,
            fixed_rounds=fixed_rounds,
        )
        return params, [booster], value, int(fixed_rounds or booster.best_iteration or booster.current_iteration())

    return _study(kind, n_classes, trial_fit, budget, n_folds=1)
