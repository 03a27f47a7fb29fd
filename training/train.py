"""The one training path: spec + frame → tuned, calibrated, evaluated model (no MLflow here).

`fit_task` is a function of a frame, a spec and a seed; `training.registry.log_training`
records its result. Metrics and baselines are computed on the same test rows.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import metrics as M
from core.errors import InputError
from core.tasks import TASKS
from training.appetite import AppetitePosterior
from training.baselines import Baseline, fit_baseline, fit_lgbm_default
from training.data import Prepared, Split, fingerprint, prepare, split
from training.model import Calibrator, OrdinalCalibrator, RankPrior, TabularModel, TransitionPrior
from training.spec import TaskSpec
from training.tune import (
    TuneBudget,
    TuneResult,
    bag,
    blas_threads,
    datasets,
    lgb_threads,
    metric_params,
    refit,
    refit_dataset,
    tune,
    tune_cv,
)

log = logging.getLogger(__name__)

REFERENCE_ROWS = 5000
TARGET_COLUMN = "__target__"
WEIGHT_COLUMN = "__weight__"


@dataclass
class TrainResult:
    spec: TaskSpec
    model: TabularModel
    metrics: dict[str, float]
    baseline: dict[str, float]
    baseline_description: str
    calibration: dict[str, float]
    tuning: TuneResult
    split: dict[str, Any]
    fingerprint: str
    seed: int
    reference: pd.DataFrame
    holdout: pd.DataFrame
    seconds: float
    # For plots: test labels, calibrated and raw scores, baseline scores.
    y_test: np.ndarray | None = field(repr=False, default=None)
    proba_test: np.ndarray | None = field(repr=False, default=None)
    raw_test: np.ndarray | None = field(repr=False, default=None)
    baseline_test: np.ndarray | None = field(repr=False, default=None)
    notes: list[str] = field(default_factory=list)
    # `baseline_lgbm_default`: plain LightGBM (300 trees, lr 0.03, 15 leaves) on the same rows and test set.
    lgbm_default: dict[str, float] = field(default_factory=dict)
    lgbm_default_test: np.ndarray | None = field(repr=False, default=None)


def _take(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[idx]


def _best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    grid = np.unique(np.quantile(p, np.linspace(0.5, 0.995, 100)))
    best_t, best_f = 0.5, -1.0
    for t in grid:
        pred = p >= t
        tp = float((pred & (y == 1)).sum())
        f = 2 * tp / (pred.sum() + (y == 1).sum()) if pred.sum() else 0.0
        if f > best_f:
            best_t, best_f = float(t), f
    return best_t


def _calibration_report(kind: str, y: np.ndarray, raw: np.ndarray, cal: np.ndarray) -> dict[str, float]:
    if kind == "binary":
        return {
            "ece_before": M.expected_calibration_error(y, raw[:, 1]),
            "ece_after": M.expected_calibration_error(y, cal[:, 1]),
            "brier_before": float(np.mean((raw[:, 1] - y) ** 2)),
            "brier_after": float(np.mean((cal[:, 1] - y) ** 2)),
        }
    onehot = np.eye(raw.shape[1])[y.astype(int)]
    return {
        "ece_before": M.expected_calibration_error(y.astype(int), raw),
        "ece_after": M.expected_calibration_error(y.astype(int), cal),
        "brier_before": float(np.mean(np.sum((raw - onehot) ** 2, axis=1))),
        "brier_after": float(np.mean(np.sum((cal - onehot) ** 2, axis=1))),
    }


def _named_binary(model: TabularModel) -> bool:
    """A binary model whose classes carry names (spec `target.classes`), not the default 0/1."""
    return model.kind == "binary" and list(model.classes or []) != ["0", "1"]


def _prediction_columns(model: TabularModel, proba: np.ndarray) -> dict[str, np.ndarray]:
    """`prediction` plus the probability columns, named as scoring names them for a built-in task
    (`core.tasks.Task.score_columns`: churn_proba, risk_proba_<class> ...), else `proba` / `proba_<class>`."""
    if model.kind == "regression":
        return {"prediction": proba}
    out: dict[str, np.ndarray] = {"prediction": model.labels_from_proba(proba)}
    contract = TASKS.get(model.task)
    if model.kind == "binary" and not _named_binary(model):
        out[contract.score_column() if contract else "proba"] = proba[:, 1]
        return out
    if _named_binary(model):
        out["prediction"] = np.asarray(model.classes, dtype=object)[out["prediction"].astype(int)]
    assert model.classes is not None  # a classifier past the binary-without-names case names its classes
    names = contract.score_columns(model.classes) if contract else [f"proba_{c}" for c in model.classes]
    out.update({name: proba[:, i] for i, name in enumerate(names)})
    return out


def tuning_folds(spec: TaskSpec, prep: Prepared, sp: Split, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, valid) row indices for the tuning objective, all inside the non-test rows.

    The spec's train/valid split when `tuning.cv_folds` is 1 or the non-test rows exceed
    `tuning.cv_max_rows`; otherwise k folds of the non-test rows: stratified by class (random split),
    whole groups per fold (group split), or out-of-time (time split: each of the last k periods before
    the test date validates a model trained on every earlier period)."""
    t = spec.tuning
    rest = np.sort(np.concatenate([sp.train, sp.valid]))
    if t.cv_folds < 2 or len(rest) > t.cv_max_rows:
        return [(sp.train, sp.valid)]
    rng = np.random.default_rng(seed + 7919)  # not the split's stream: folds differ from the split
    if spec.split.kind == "time":
        assert prep.times is not None  # prepare() sets times for a time split
        periods = np.unique(prep.times[rest])
        folds = []
        for when in periods[1:][-t.cv_folds :]:
            folds.append((rest[prep.times[rest] < when], rest[prep.times[rest] == when]))
        return folds
    if spec.split.kind == "group":
        assert prep.groups is not None  # prepare() sets groups for a group split
        uniq = rng.permutation(np.unique(prep.groups[rest]))
        fold_of_group = pd.Series(np.arange(len(uniq)) % t.cv_folds, index=uniq)
        fold = fold_of_group.reindex(prep.groups[rest]).to_numpy()
    else:
        fold = np.empty(len(rest), dtype=int)
        strata = prep.y[rest] if spec.target.kind != "regression" else np.zeros(len(rest))
        for value in np.unique(strata):
            members = np.where(strata == value)[0]
            fold[rng.permutation(members)] = np.arange(len(members)) % t.cv_folds
    folds = [(rest[fold != i], rest[fold == i]) for i in range(t.cv_folds) if (fold == i).any() and (fold != i).any()]
    if t.cv_repeats > 1:  # repeated k-fold: later repeats draw their own assignment (the first is unchanged)
        repeat = spec.model_copy(update={"tuning": t.model_copy(update={"cv_repeats": 1})})
        for r in range(1, t.cv_repeats):
            folds.extend(tuning_folds(repeat, prep, sp, seed + 104_729 * r))
    return folds


def fit_task(
    spec: TaskSpec,
    frame: pd.DataFrame,
    *,
    seed: int = 0,
    trials: int | None = None,
    timeout: float | None = None,
    truth: pd.DataFrame | None = None,
    threads: int | None = None,
    progress=None,
    engine=None,
) -> TrainResult:
    """Tune, calibrate and evaluate a LightGBM model for `spec` on `frame`, with its baseline on the same split.
    numpy's BLAS runs on as many threads as LightGBM (`blas_threads`)."""
    from concurrent.futures import ThreadPoolExecutor

    with blas_threads(threads), ThreadPoolExecutor(max_workers=1, thread_name_prefix="plain-lgbm") as side:
        return _fit_task(
            spec, frame, seed=seed, trials=trials, timeout=timeout, truth=truth, threads=threads, progress=progress,
            engine=engine, side=side,
        )  # fmt: skip


def _fit_task(
    spec: TaskSpec,
    frame: pd.DataFrame,
    *,
    seed: int,
    trials: int | None,
    timeout: float | None,
    truth: pd.DataFrame | None,
    threads: int | None,
    progress,
    engine,
    side: Executor,
) -> TrainResult:
    t0 = time.perf_counter()
    prep = prepare(frame, spec)
    sp = split(prep, seed)
    kind = spec.target.kind
    # An ordinal target trains ONE binary booster ("top class vs the rest") and splits its score
    # into the ordered classes with an `OrdinalCalibrator`; metrics are the multiclass ones.
    fit_kind = "binary" if kind == "ordinal" else kind
    eval_kind = "multiclass" if kind == "ordinal" else kind  # the baseline fits class tables
    k = len(prep.classes) if prep.classes and kind == "multiclass" else 2
    y_fit = prep.y
    classes = prep.classes or []  # set by prepare() for every classification target
    top_class = spec.target.top_class or ""
    if kind == "ordinal":
        y_fit = (prep.y >= classes.index(top_class)).astype(float)
    core = TabularModel(
        task=spec.name,
        kind=kind,
        features=prep.features,
        categories=prep.categories,
        booster=None,
        calibrator=None,
        classes=prep.classes if kind != "regression" else None,
    )
    X_all = core.matrix(prep.X)
    cat_idx = [prep.features.index(c) for c in prep.categorical]
    tr, va, te = sp.train, sp.valid, sp.test
    for name, idx in (("train", tr), ("valid", va), ("test", te)):
        if len(idx) == 0:
            raise InputError(f"spec {spec.name!r} field split: the {name} set is empty")
        if kind != "regression" and len(np.unique(prep.y[idx])) < 2:
            raise InputError(f"spec {spec.name!r} field split: the {name} set has a single class")
    budget = TuneBudget.from_spec(
        spec.tuning,
        seed=seed,
        trials=trials,
        timeout=timeout,
        threads=threads,
        fixed={**_monotone_params(spec, prep), **metric_params(spec.tuning.metric, fit_kind)},
        progress=progress,
    )
    rest = np.sort(np.concatenate([tr, va]))  # every non-test row: the final model refits on them

    def fit_plain(rows: np.ndarray):
        """`baseline_lgbm_default` on `rows` (the rows the model refits on)."""
        return fit_lgbm_default(
            task_kind=eval_kind,
            categories={c: prep.categories[c] for c in prep.categorical},
            X=prep.X.iloc[rows],
            y=prep.y[rows],
            weight=_take(prep.weight, rows),
            seed=seed,
            threads=threads or lgb_threads(),
            n_classes=len(classes) if eval_kind == "multiclass" else 2,
        )

    # The plain LightGBM needs nothing the tuning makes, so it trains on the `side` thread meanwhile (#18: 13 of
    # tier's 80 CPU-s in the demo): LightGBM releases the GIL and each booster has its own single thread, so the
    # same model, on a core the other work leaves idle. With an engine the refit rows are known only after tuning.
    plain_job = side.submit(fit_plain, rest) if engine is None else None
    if engine is None:
        result, calib_idx, calib_raw = _tune_and_refit(
            spec,
            prep,
            sp,
            core,
            X_all,
            y_fit,
            cat_idx,
            k,
            fit_kind,
            budget,
        )
    else:
        # #16: `engine` (training.distributed.DaskEngine) tunes on the cluster on the train/valid split (no
        # cross-validation), then refits on every non-test row on the workers; the calibrator learns on the
        # valid rows' scores from the train-only booster (which never saw them), as local out-of-fold scores.
        init_tr = init_va = None
        if spec.boost_from_baseline:
            core.prior = _prior(spec, prep, X_all[tr], prep.y[tr])
            init_tr, init_va = core.prior.margin(X_all[tr]), core.prior.margin(X_all[va])
        dtrain, dvalid = datasets(
            X_all[tr],
            y_fit[tr],
            _take(prep.weight, tr),
            X_all[va],
            y_fit[va],
            _take(prep.weight, va),
            cat_idx,
            prep.features,
            init_train=init_tr,
            init_valid=init_va,
        )
        result = engine.tuner(ids=_take(prep.ids, tr))(fit_kind, k, dtrain, dvalid, budget)
        # Refitted on train + valid: the train-only booster (`fold_boosters`) scores the valid rows. Without a
        # refit (boost_from_baseline, or no panel on the workers) the train-only booster is the final one.
        calib_idx = va
        core.booster = result.fold_boosters[0] if result.fold_boosters else result.booster
        calib_raw = core.raw_from_matrix(X_all[va])
        core.booster = result.booster
        if not result.fold_boosters:
            rest = tr

    notes: list[str] = []
    y_te, w_te = prep.y[te], _take(prep.weight, te)
    # The calibrator (and the F1 threshold) learn on held-out scores: out-of-fold predictions of boosters
    # that never saw those rows, applied to the final model refitted on every non-test row.
    raw_va, raw_te = calib_raw, core.raw_from_matrix(X_all[te])
    y_cal, w_cal = prep.y[calib_idx], _take(prep.weight, calib_idx)
    calibration: dict[str, float] = {}
    if kind != "regression":
        if kind == "ordinal" and spec.risk_posterior is not None:
            calibrator: Any = _risk_posterior(spec, prep, core, X_all, calib_idx, raw_va)
        elif kind == "ordinal":
            calibrator = OrdinalCalibrator().fit(raw_va, y_cal.astype(int), w_cal, k=len(classes))
        else:
            calibrator = Calibrator(spec.calibration).fit(raw_va, y_cal.astype(int), w_cal)
        core.calibrator = calibrator
        proba_va = core.calibrate(raw_va, X_all[calib_idx])
        proba_te = core.proba_from_matrix(X_all[te])
        if kind == "ordinal":  # "before" = the raw binary score's share of the top class, vs the top class
            top = (y_te >= classes.index(top_class)).astype(int)
            top_cal = np.column_stack([1 - proba_te[:, -1], proba_te[:, -1]])
            calibration = _calibration_report("binary", top, raw_te, top_cal)
        else:
            calibration = _calibration_report(kind, y_te, raw_te, proba_te)
        if kind == "binary":
            core.thresholds["positive"] = _best_f1_threshold(y_cal, proba_va[:, 1])
    else:
        proba_va, proba_te = raw_va, raw_te

    metrics = M.task_metrics(kind, y_te, proba_te, w_te)

    baseline: Baseline = fit_baseline(
        spec.baseline,
        task_kind=eval_kind,
        classes=prep.classes,
        categorical=prep.categorical,
        X=prep.X.iloc[rest],
        extras=prep.extras.iloc[rest],
        y=prep.y[rest],
        weight=_take(prep.weight, rest),
        seed=seed,
    )
    X_te, ex_te = prep.X.iloc[te].reset_index(drop=True), prep.extras.iloc[te].reset_index(drop=True)
    base_te = baseline.predict_proba(X_te, ex_te)
    base_metrics = M.task_metrics(kind, y_te, base_te, w_te)
    plain = plain_job.result() if plain_job is not None else fit_plain(rest)
    plain_te = plain.predict_proba(X_te, ex_te)
    plain_metrics = M.task_metrics(kind, y_te, plain_te, w_te)

    if spec.upgrade is not None and kind == "multiclass":
        lookup = {c: i for i, c in enumerate(classes)}
        col = spec.upgrade.current_column
        cur_src = X_te[col] if col in X_te.columns else ex_te[col]
        current = np.array([lookup.get(str(v), -1) for v in cur_src])
        metrics["upgrade_auc"] = M.upgrade_auc(current, y_te.astype(int), proba_te)
        base_metrics["upgrade_auc"] = M.upgrade_auc(current, y_te.astype(int), base_te)

    if spec.hidden_aggressive is not None and kind != "regression":
        ha = _hidden_aggressive(spec, prep, sp, core, baseline, truth)
        metrics.update(ha["model"])
        base_metrics.update(ha["baseline"])
        if "threshold" in ha:
            core.thresholds["hidden_aggressive"] = ha["threshold"]
        notes.extend(ha.get("notes", []))
        if kind == "ordinal" and truth is not None:
            lr = _latent_risk(spec, prep, sp, core, truth)
            metrics.update(lr["model"])
            base_metrics.update(lr["baseline"])

    if spec.churn_driver and truth is not None and kind == "binary":
        cd = churn_driver_evaluation(spec, prep, sp, core, truth, X_all[te], proba_te[:, 1], y_te)
        metrics.update(cd["model"])
        base_metrics.update(cd["baseline"])
        notes.extend(cd["notes"])

    pos_cls = spec.hidden_aggressive.positive_class if spec.hidden_aggressive else None
    core.metadata = {
        "task": spec.name,
        "target": spec.target.name,
        "seed": seed,
        "metric": spec.metric,
        "positive_class": pos_cls,
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "best_iteration": result.best_iteration,
    }
    if core.prior is not None:
        core.metadata["prior"] = core.prior.description

    # Reference sample for monitoring (raw feature values + predictions) and the holdout for promotion.
    reference = _reference_sample(core, prep, sp, X_te, proba_te, y_te, seed)
    holdout = pd.concat([X_te, ex_te[[c for c in ex_te.columns if c not in X_te.columns]]], axis=1)
    if spec.id:
        assert prep.ids is not None  # prepare() keeps the ids whenever the spec names an id column
        holdout.insert(0, spec.id, prep.ids[te])
    holdout[TARGET_COLUMN] = y_te
    if w_te is not None:
        holdout[WEIGHT_COLUMN] = w_te

    return TrainResult(
        spec=spec,
        model=core,
        metrics=metrics,
        baseline=base_metrics,
        baseline_description=baseline.description,
        calibration=calibration,
        tuning=result,
        split={
            "kind": spec.split.kind,
            **sp.describe(),
            "tuning_folds": result.n_folds,
            "n_refit": len(rest),
            "final": "folds" if spec.tuning.final == "folds" and result.n_folds > 1 and engine is None else "refit",
            "n_calibration": len(calib_idx),
        },
        fingerprint=fingerprint(frame, spec),
        seed=seed,
        reference=reference,
        holdout=holdout,
        seconds=time.perf_counter() - t0,
        y_test=y_te,
        proba_test=proba_te,
        raw_test=raw_te,
        baseline_test=base_te,
        notes=notes,
        lgbm_default=plain_metrics,
        lgbm_default_test=plain_te,
    )


def _tune_and_refit(
    spec: TaskSpec,
    prep: Prepared,
    sp: Split,
    core: TabularModel,
    X_all: np.ndarray,
    y_fit: np.ndarray,
    cat_idx: list[int],
    k: int,
    fit_kind: str,
    budget: TuneBudget,
) -> tuple[TuneResult, np.ndarray, np.ndarray]:
    """Tune on `tuning_folds`, refit the best parameters on every non-test row for the chosen number of
    rounds (the fold-mean score's peak, or the one split's early-stopped best; sets `core.booster`, and `core.prior` for boost_from_baseline), and return the result
    with the out-of-fold rows and their raw scores from the fold boosters (for the calibrator)."""
    rest = np.sort(np.concatenate([sp.train, sp.valid]))
    margin, threads, seed = None, budget.threads, budget.seed
    # rank tables of the feature values only (no labels), or the transition table (labels): every non-test row
    if spec.boost_from_baseline:
        core.prior = _prior(spec, prep, X_all[rest], prep.y[rest])
        margin = core.prior.margin(X_all)
    folds = tuning_folds(spec, prep, sp, seed)
    w = prep.weight
    dall = refit_dataset(X_all[rest], y_fit[rest], _take(w, rest), cat_idx, prep.features, _take(margin, rest), threads)
    if len(folds) == 1:
        (a, b) = folds[0]
        dtrain, dvalid = datasets(
            X_all[a],
            y_fit[a],
            _take(w, a),
            X_all[b],
            y_fit[b],
            _take(w, b),
            cat_idx,
            prep.features,
            init_train=_take(margin, a),
            init_valid=_take(margin, b),
            threads=threads,
        )
        result = tune(fit_kind, k, dtrain, dvalid, budget)
    else:
        local = [(np.searchsorted(rest, a), np.searchsorted(rest, b)) for a, b in folds]  # positions in `rest`
        result = tune_cv(fit_kind, k, dall, local, budget)
    raws = []
    for booster, (_, b) in zip(result.fold_boosters, folds, strict=True):
        core.booster = booster  # raw_from_matrix adds the prior's margin as the fold booster learned it
        raws.append(core.raw_from_matrix(X_all[b]))
    calib_idx = np.concatenate([b for _, b in folds])  # with repeats a row is scored once per repeat
    if spec.tuning.final == "folds" and len(folds) > 1:
        core.booster = bag(result.fold_boosters, result.best_iteration)
    else:
        core.booster = refit(result.params, dall, result.best_iteration)
    result.booster = core.booster
    return result, calib_idx, np.concatenate(raws)


def _risk_posterior(
    spec: TaskSpec, prep: Prepared, core: TabularModel, X_all: np.ndarray, calib_idx: np.ndarray, raw_cal: np.ndarray
) -> AppetitePosterior:
    """#12: fit the latent-appetite measurement model on EVERY customer at the calibration rows' dates:
    the labelled calibration rows (scored by boosters that never saw them) and the unlabelled rows of
    the same dates (which no booster saw), so each stated group enters with its whole population."""
    rp = spec.risk_posterior
    assert rp is not None and prep.classes is not None
    post = AppetitePosterior(
        features=prep.features,
        categories=prep.categories,
        classes=prep.classes,
        stated=rp.stated_column,
        stated_age_days=rp.stated_age_days,
        profile=rp.profile,
        measures=rp.measures,
        covariates=rp.covariates,
        correlated_residuals=rp.correlated_residuals,
    )
    X, raw, label = X_all[calib_idx], raw_cal, prep.y[calib_idx].astype(int)
    if rp.label_where_positive:  # e.g. fund holders: a saver's "conservative" label reveals no choice
        col = rp.label_where_positive
        src = prep.X if col in prep.X.columns else prep.extras
        if col not in src.columns:
            raise InputError(f"spec {spec.name!r} field risk_posterior.label_where_positive: no column {col!r}")
        value = pd.to_numeric(src[col].iloc[calib_idx], errors="coerce").fillna(0).to_numpy()
        label = np.where(value > 0, label, -1)
    unl = prep.unlabelled
    if unl is not None and len(unl):
        if spec.split.time_column and prep.times is not None:  # the calibration rows' dates only
            dates = np.unique(prep.times[calib_idx])
            unl = unl[np.isin(pd.to_datetime(unl[spec.split.time_column]).to_numpy(), dates)]
        if len(unl):
            X_unl = core.matrix(unl)
            X = np.vstack([X, X_unl])
            raw = np.vstack([raw, core.raw_from_matrix(X_unl)])
            label = np.concatenate([label, np.full(len(X_unl), -1)])
    anchor = None
    if rp.anchor_column:  # #12: the assessed class known at T (e.g. a suitability review); -1 where none
        col, code = rp.anchor_column, {c: i for i, c in enumerate(prep.classes)}
        values = [prep.extras[col].iloc[calib_idx]] + ([unl[col]] if unl is not None and len(unl) else [])
        anchor = pd.concat(values).astype(object).map(code).fillna(-1).astype(int).to_numpy()
    return post.fit(raw, X, label, anchor=anchor)


def _unlabelled_at_test(prep: Prepared, sp: Split) -> pd.DataFrame | None:
    """The rows without a label that the model would score alongside the test split: those at the
    test as-of date with a time split, else all of them (None when every row is labelled)."""
    unl = prep.unlabelled
    if unl is not None and sp.test_time is not None:
        unl = unl[pd.to_datetime(unl[prep.spec.split.time_column]).to_numpy() == sp.test_time]
    return unl


def _reference_sample(
    core: TabularModel, prep: Prepared, sp: Split, X_te: pd.DataFrame, proba_te: np.ndarray, y_te: np.ndarray, seed: int
) -> pd.DataFrame:
    """Up to `REFERENCE_ROWS` rows of the population the deployed model scores, with its predictions.

    That is every row of the test split's as-of date, labelled or not: labels exist only for some
    customers (churn above the AUM minimum, risk for customers free to act on their appetite), while
    the service scores the whole book, so a reference of labelled rows alone would make the book look
    drifted on day one. Without a time split the unlabelled rows join the test rows. `target` is the
    label where there is one (null elsewhere).
    """
    X, proba = X_te.reset_index(drop=True), proba_te
    target = pd.Series(_decode_target(prep, y_te))
    unl = _unlabelled_at_test(prep, sp)
    if unl is not None and len(unl):
        X_unl = unl[prep.features].reset_index(drop=True)
        X = pd.concat([X, X_unl], ignore_index=True)
        proba = np.concatenate([proba, core.proba_from_matrix(core.matrix(X_unl))])
        target = target.reindex(range(len(X)))  # null where there is no label
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(X))[: min(REFERENCE_ROWS, len(X))])
    reference = X.iloc[idx].reset_index(drop=True).copy()
    for name, values in _prediction_columns(core, proba[idx]).items():
        reference[name] = values
    reference["target"] = target.iloc[idx].to_numpy()
    return reference


def _decode_target(prep: Prepared, y: np.ndarray) -> np.ndarray:
    kind = prep.spec.target.kind
    if kind in ("multiclass", "ordinal") or (kind == "binary" and prep.classes != ["0", "1"]):
        return np.asarray(prep.classes, dtype=object)[y.astype(int)]
    return y


def _prior(spec: TaskSpec, prep: Prepared, X_train: np.ndarray, y_train: np.ndarray) -> RankPrior | TransitionPrior:
    """`boost_from_baseline`: the heuristic baseline's score as the trees' starting point, its rank
    tables from the training rows (as `HeuristicBaseline.fit` takes them); multiclass: persistence's
    transition table (`TransitionPrior`)."""
    b = spec.baseline
    if spec.target.kind == "multiclass":
        if b.column not in prep.categorical:
            raise InputError(
                f"spec {spec.name!r} field boost_from_baseline: baseline.column {b.column!r} is not a categorical feature"
            )
        return TransitionPrior.fit(
            X_train, y_train, prep.features, prep.categories, str(b.column), prep.classes or [], spec.prior_strength
        )
    bad = sorted(c for c in [*b.columns, *b.negative] if c not in prep.features or c in prep.categorical)
    if bad:
        raise InputError(
            f"spec {spec.name!r} field boost_from_baseline: baseline columns {bad} are not numeric feature columns"
        )
    return RankPrior.fit(X_train, prep.features, list(b.columns), list(b.negative))


def _monotone_params(spec: TaskSpec, prep: Prepared) -> dict[str, Any]:
    """LightGBM `monotone_constraints` in feature order from the spec's `tuning.monotone` (empty: none)."""
    mono = spec.tuning.monotone
    if not mono:
        return {}
    bad = sorted(c for c in mono if c not in prep.features or c in prep.categorical)
    if bad:
        raise InputError(
            f"spec {spec.name!r} field tuning.monotone: {bad} are not numeric feature columns of the model"
        )
    return {"monotone_constraints": [int(mono.get(c, 0)) for c in prep.features]}


def _population_at_test(spec: TaskSpec, prep: Prepared, sp: Split, extra: list[str], field_name: str) -> pd.DataFrame:
    """Every row the deployed model would score at the test date (labelled test rows and the unlabelled
    ones), with the id, time, features, carried columns and `extra` columns."""
    cols = list(
        dict.fromkeys(
            [c for c in (spec.id, spec.split.time_column) if c] + extra + prep.features + list(prep.extras.columns)
        )
    )
    lab = pd.concat([prep.X, prep.extras[[c for c in prep.extras.columns if c not in prep.X.columns]]], axis=1)
    if spec.id:
        lab[spec.id] = prep.ids
    if spec.split.time_column:
        lab[spec.split.time_column] = prep.times
    parts = [lab.iloc[sp.test]]
    unl = _unlabelled_at_test(prep, sp)
    if unl is not None:
        parts.append(unl)
    missing = [c for c in cols if c not in parts[0].columns]
    if missing:
        raise InputError(
            f"spec {spec.name!r} field {field_name}: columns {missing} not available (add to keep_columns)"
        )
    return pd.concat([p[cols] for p in parts], ignore_index=True)


def _with_truth(spec: TaskSpec, pop: pd.DataFrame, truth: pd.DataFrame, column: str) -> np.ndarray:
    """`truth[column]` for each row of `pop` (by id; None where the customer is not in the truth table)."""
    if not spec.id or spec.id not in truth.columns or column not in truth.columns:
        raise InputError(f"truth table needs columns {spec.id!r} and {column!r}")
    t = pop[[spec.id]].merge(truth[[spec.id, column]].drop_duplicates(spec.id), on=spec.id, how="left")
    return t[column].astype(object).where(t[column].notna(), None).to_numpy()


def _latent_risk(
    spec: TaskSpec, prep: Prepared, sp: Split, core: TabularModel, truth: pd.DataFrame
) -> dict[str, dict[str, float]]:
    """The bank's headline: over EVERY customer at the test date, the revealed class (argmax) against
    the simulator's `truth.latent_risk`, and the questionnaire (`stated_risk`) on the same rows as the
    baseline. `latent_risk_accuracy`, `latent_risk_macro_f1`, `latent_risk_auc_ovr`."""
    ha, classes = spec.hidden_aggressive, prep.classes
    assert ha is not None and classes is not None  # called only for a risk spec with hidden_aggressive
    pop = _population_at_test(spec, prep, sp, [ha.stated_column], "hidden_aggressive")
    latent = _with_truth(spec, pop, truth, ha.truth_column)
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup.get(str(v), -1) if v is not None else -1 for v in latent])
    stated = np.array([lookup.get(str(v), -1) for v in pop[ha.stated_column].astype(object)])
    rows = (y >= 0) & (stated >= 0)  # both known: the same rows for model and baseline
    proba = core.predict_proba(pop.loc[rows])
    k = len(classes)
    stated_proba = np.eye(k)[stated[rows]]  # the questionnaire as a (certain) class
    return {
        "model": {**M.latent_class_metrics(y[rows], proba), "latent_risk_n": float(rows.sum())},
        "baseline": M.latent_class_metrics(y[rows], stated_proba),
    }


def churn_driver_evaluation(
    spec: TaskSpec,
    prep: Prepared,
    sp: Split,
    core: TabularModel,
    truth: pd.DataFrame,
    X_test: np.ndarray,
    proba_test: np.ndarray,
    y_test: np.ndarray,
) -> dict[str, Any]:
    """`churn_driver_accuracy`: among the test rows in the top 10% by churn probability that truly
    churned and whose cause the simulator recorded (`truth.churn_cause`), the share whose driver
    (training.segments.churn_drivers) names that cause. Baseline: always the most common cause among
    those same rows (the best constant answer, so the bar is honest)."""
    from core.tasks import CHURN_CAUSE_COLUMN
    from training.segments import DEFAULT_DRIVERS, churn_drivers

    out: dict[str, Any] = {"model": {}, "baseline": {}, "notes": []}
    if CHURN_CAUSE_COLUMN not in truth.columns:
        out["notes"].append(f"truth has no {CHURN_CAUSE_COLUMN!r}: churn_driver metrics skipped")
        return out
    assert spec.id is not None and prep.ids is not None  # the churn task has an id column
    ids = pd.DataFrame({spec.id: prep.ids[sp.test]})
    cause = _with_truth(spec, ids, truth, CHURN_CAUSE_COLUMN)
    top = proba_test >= np.quantile(proba_test, 0.9)
    rows = top & (y_test == 1) & np.array([c is not None for c in cause])
    if not rows.any():
        out["notes"].append("no true churner with a recorded cause in the top 10%: churn_driver metrics skipped")
        return out
    drivers = churn_drivers(core, X_test[rows], DEFAULT_DRIVERS)
    truth_cause = cause[rows].astype(str)
    common = pd.Series(truth_cause).value_counts().idxmax()
    out["model"] = {
        "churn_driver_accuracy": float(np.mean(drivers == truth_cause)),
        "churn_driver_n": float(rows.sum()),
    }
    out["baseline"] = {"churn_driver_accuracy": float(np.mean(truth_cause == common))}
    out["notes"].append(f"churn_driver baseline: always {common!r}")
    return out


def _hidden_aggressive(
    spec: TaskSpec, prep: Prepared, sp: Split, core: TabularModel, baseline: Baseline, truth: pd.DataFrame | None
) -> dict[str, Any]:
    """Score stated-conservatives at the test date (labelled or not) and check against truth when given."""
    ha = spec.hidden_aggressive
    assert ha is not None  # called only when the spec has a hidden_aggressive section
    if prep.classes is None or ha.positive_class not in prep.classes:
        raise InputError(
            f"spec {spec.name!r} field hidden_aggressive.positive_class: {ha.positive_class!r} is not "
            f"one of the model's classes {prep.classes} (a binary target names them in target.classes)"
        )
    pos = prep.classes.index(ha.positive_class)
    pop = _population_at_test(spec, prep, sp, [ha.stated_column], "hidden_aggressive")
    pop = pop[pop[ha.stated_column].astype(str) == ha.stated_value].reset_index(drop=True)
    out: dict[str, Any] = {"model": {}, "baseline": {}, "notes": []}
    if pop.empty:
        out["notes"].append(f"no {ha.stated_value} customers at the test date; hidden-aggressive metrics skipped")
        return out
    score = core.predict_proba(pop)[:, pos]
    out["threshold"] = float(np.quantile(score, 1 - ha.flag_share))
    if truth is None:
        out["notes"].append("no truth table: hidden_aggressive metrics need --truth (simulated data)")
        return out
    latent = _with_truth(spec, pop, truth, ha.truth_column)
    known = np.array([v is not None for v in latent])
    y = np.array([str(v) == ha.positive_class for v in latent[known]])
    out["model"] = M.hidden_aggressive_metrics(y, score[known], ha.flag_share)
    base_score = baseline.score(pop.drop(columns=[c for c in (spec.id,) if c]), pop, pos)
    out["baseline"] = M.hidden_aggressive_metrics(y, base_score[known], ha.flag_share)
    out["model"]["hidden_aggressive_n"] = float(known.sum())
    return out


# ----------------------------------------------------------------------------- jobs (I/O)


def find_truth(features_dir: Path | str | None) -> Path | None:
    """The simulator's `truth.parquet` beside a feature folder's tables (`DIR/truth.parquet`), or None:
    nothing records which raw folder a feature folder came from, so pass `--truth` otherwise."""
    if features_dir is None:
        return None
    path = Path(features_dir) / "truth.parquet"
    return path if path.is_file() else None


BOOTSTRAP_SAMPLES = 200


def bootstrap_ci(
    kind: str,
    metric: str,
    y: np.ndarray,
    proba: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    seed: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap interval of one test metric: the test rows resampled with replacement
    `samples` times (seeded). Resamples where the metric is undefined (one class) are skipped."""
    rng = np.random.default_rng(seed)
    n = len(y)
    values = []
    fast = M.resampled_metric(kind, metric, y, proba, weight)  # log loss, ROC AUC: without sklearn's per-call cost
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if kind != "regression" and len(np.unique(yb)) < 2:
            continue
        if fast is not None:
            values.append(fast(idx))
        else:  # that metric alone, not all of the kind's
            values.append(M.task_metric(kind, metric, yb, proba[idx], _take(weight, idx)))
    v = np.asarray([x for x in values if np.isfinite(x)])
    if len(v) == 0:
        return {"low": float("nan"), "high": float("nan"), "samples": 0.0}
    tail = (1 - level) / 2
    return {"low": float(np.quantile(v, tail)), "high": float(np.quantile(v, 1 - tail)), "samples": float(len(v))}


def holdout_uncertainty(result: TrainResult, samples: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """`--json` `uncertainty` for one split: a 95% bootstrap interval of the headline test metric for the
    model, the task baseline and `baseline_lgbm_default` (the same resamples for all three)."""
    spec, kind = result.spec, result.spec.target.kind
    metric, y, w = spec.metric, result.y_test, result.holdout.get(WEIGHT_COLUMN)
    w = None if w is None else w.to_numpy()
    assert y is not None and result.proba_test is not None  # fit_task sets the test labels and scores
    out: dict[str, Any] = {
        "metric": metric,
        "level": 0.95,
        "method": f"bootstrap of the test rows, {samples} resamples",
    }
    for name, proba in (
        ("model", result.proba_test),
        ("baseline", result.baseline_test),
        ("baseline_lgbm_default", result.lgbm_default_test),
    ):
        if proba is not None:
            out[name] = bootstrap_ci(kind, metric, y, proba, w, seed=result.seed, samples=samples)
    return out


def repeat_summary(results: list[TrainResult]) -> dict[str, Any]:
    """`--repeats N`: mean, sd (n-1), min and max of every test metric over the split seeds, for the model,
    the task baseline and `baseline_lgbm_default`, with each seed's values."""

    def stats(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
        keys = [k for k in rows[0] if all(k in r for r in rows)]
        out = {}
        for k in keys:
            a = np.asarray([r[k] for r in rows], dtype=float)
            a = a[np.isfinite(a)]
            if len(a):
                sd = float(a.std(ddof=1)) if len(a) > 1 else 0.0
                out[k] = {"mean": float(a.mean()), "sd": sd, "min": float(a.min()), "max": float(a.max())}
        return out

    return {
        "n": len(results),
        "seeds": [r.seed for r in results],
        "model": stats([r.metrics for r in results]),
        "baseline": stats([r.baseline for r in results]),
        "baseline_lgbm_default": stats([r.lgbm_default for r in results]),
        "per_seed": [
            {"seed": r.seed, "model": r.metrics, "baseline": r.baseline, "baseline_lgbm_default": r.lgbm_default}
            for r in results
        ],
    }


def _flat(prefix: str, tree: dict[str, Any]) -> dict[str, float]:
    """Nested numbers as MLflow metric names `prefix.a.b` (lists and text left out)."""
    out: dict[str, float] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(f"{prefix}.{k}", v))
        elif isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
            out[f"{prefix}.{k}"] = float(v)
    return out


def run_training(
    spec: TaskSpec,
    *,
    seed: int = 0,
    trials: int | None = None,
    timeout: float | None = None,
    truth_path: Path | str | None = None,
    plots: bool = True,
    progress=None,
    engine=None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Read the source, fit, log to MLflow, register (alias `challenger`); return the `--json` summary.

    `repeats` > 1: also fit on split seeds seed+1 .. seed+repeats-1 and report every metric's mean, sd and
    range over the seeds (`repeats`); the model of `seed` is the one logged and registered. Otherwise
    `uncertainty` holds a bootstrap interval of the headline test metric."""
    from training.data import read_source
    from training.registry import log_training

    # #16 hook: `--engine dask` reads the panel on the cluster; the driver gets its share back as pandas.
    frame = read_source(spec) if engine is None else engine.read_source(spec, seed)
    truth = None
    if spec.hidden_aggressive is not None or spec.churn_driver:
        path = Path(truth_path) if truth_path else find_truth(spec.source_path().parent)
        if path is not None and path.is_dir():
            path = path / "truth.parquet"
        if truth_path and (path is None or not path.is_file()):
            raise InputError(f"--truth {truth_path}: no truth.parquet there")
        if path is not None:
            from features.contract import read_truth  # raw data is read through the contract

            truth = read_truth(path.parent) if path.name == "truth.parquet" else pd.read_parquet(path)
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {repeats}")
    results = [
        fit_task(spec, frame, seed=s, trials=trials, timeout=timeout, truth=truth, progress=progress, engine=engine)
        for s in range(seed, seed + repeats)
    ]
    result = results[0]
    logged = log_training(result, plots=plots)
    spread: dict[str, Any] = {}
    if repeats > 1:
        spread["repeats"] = repeat_summary(results)
        extra = _flat("repeats", {k: spread["repeats"][k] for k in ("model", "baseline", "baseline_lgbm_default")})
    else:
        spread["uncertainty"] = holdout_uncertainty(result)
        extra = _flat("ci95", {k: v for k, v in spread["uncertainty"].items() if isinstance(v, dict)})
    from training.registry import client

    c = client()
    for key, value in extra.items():
        c.log_metric(logged["run_id"], key, value)
    return {
        "task": spec.name,
        **logged,
        "metrics": result.metrics,
        "baseline": result.baseline,
        "baseline_lgbm_default": result.lgbm_default,
        **spread,
        "baseline_description": result.baseline_description,
        "calibration": result.calibration,
        "split": result.split,
        "tuning": {
            "trials": result.tuning.n_trials,
            "pruned": result.tuning.n_pruned,
            "seconds": round(result.tuning.seconds, 2),
            "best_valid": result.tuning.best_value,
            "folds": result.tuning.n_folds,
            "rounds": result.tuning.best_iteration,
            "plain_lgbm_valid": result.tuning.start_value,
        },
        "dataset_fingerprint": result.fingerprint,
        "notes": result.notes,
    }
