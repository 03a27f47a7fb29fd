"""Training beyond one machine: Optuna trials on Dask workers sharing one study, the final booster
fitted data-parallel by `lightgbm.dask` (DESIGN §9).

`fit_task(..., engine=DaskEngine(...))` hands the tuning and the booster to this module; everything
else (preparation, split, calibration, baselines, reasons, MLflow logging, promotion) is the local
code path, so a model trained here is the same `TabularModel` artefact.

How the work is spread:
- The panel: `read_source` reads the Parquet source with `dask.dataframe.read_parquet` and shuffles it
  by a hash of the customer id (one customer's rows in one partition), persisted on the workers. Each
  partition applies the spec's row filter, labels its rows and assigns their split itself
  (`labelled_partition`, `training_partition` via map_partitions); the split's keys (the time split's
  dates, the group split's groups) are gathered and split by `training.data.split`, so the sets are those
  of local training. The driver gathers only the rows of `--driver-share` of customers (all of them by
  default), for tuning, calibration, evaluation and the promotion holdout.
- Tuning: the driver's training and validation matrices go to every worker once
  (`Client.scatter(broadcast=True)`); one task per worker runs `study.optimize` against ONE study in a
  shared storage (Optuna's journal file, or an RDB URL such as the PostgreSQL behind MLflow), pruned by
  the median rule. Another machine joins by running the same command with the same `--study-storage`.
- The final booster: the best trial's parameters and early-stopped rounds, fitted by `DaskLGBMClassifier`
  (LightGBM's data-parallel tree learner) first on every training row where the workers hold it, then
  refitted for the same rounds on every non-test row (train + valid), as local training refits. The
  calibrator learns on the valid rows' scores from the train-only booster (which never saw them) and is
  applied to the refitted one: local training's out-of-fold principle (training.train).

Reproducibility (one seed, run to run): the driver's rows, the split, the study name and the warm-up
trials are exact: the warm-up parameter sets (the local sampler's startup count) are drawn once on the
driver by the seeded random sampler that TPE's startup uses, and queued in the study, so whichever
worker takes which, the set is the same, and each trial's score given its parameters is exact
(single-threaded LightGBM on the same matrices). Not exact: TPE's proposals after the warm-up and the
median pruner depend on which trials finished first, and the data-parallel refit depends on which
worker holds which partition (bin boundaries are found per worker). tests/training/test_distributed.py
states the tolerance. Local training (`training.tune`) stays exactly reproducible.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InputError
from core.settings import Settings
from training.data import Prepared, _as_numbers, _target, prepare, split
from training.spec import TaskSpec
from training.tune import (
    PLAIN_LGBM,
    PLAIN_TRIAL,
    TuneBudget,
    TuneResult,
    base_params,
    datasets,
    direction_of,
    fit_trial,
    pruner,
    sampler,
    search_space,
    start_trials,
)

log = logging.getLogger(__name__)

ENGINES = ("local", "dask")
LOCAL_WORKERS = 2  # `--engine dask` without `--scheduler`: a LocalCluster of this many workers
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


# ----------------------------------------------------------------------------- study storage


def default_storage(settings: Settings | None = None) -> str:
    """A journal file under the clientlens home: shared by the local workers (one file system)."""
    path = (settings or Settings()).home_dir / "studies" / "optuna-journal.log"
    return str(path)


def open_storage(url: str):
    """Optuna storage for `url`: an RDB URL (`postgresql://...`, `sqlite:///...`) or a journal file
    (a path, `journal:PATH` or `file:PATH`; file locks, so every process on one file system may write)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if "://" in url and not url.startswith("file://"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    path = Path(url.removeprefix("journal:").removeprefix("file://").removeprefix("file:"))
    if path.is_dir():
        raise InputError(f"--study-storage {url}: is a folder; give a journal file path or a database URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    # An open(2)-based lock: works on NFS as well as local disks (symlink locks do not everywhere).
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def study_name(task: str, seed: int, X: np.ndarray, y: np.ndarray) -> str:
    """The same data, task and seed give the same study on every machine (so they can join it)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return f"clientlens-{task}-seed{seed}-{h.hexdigest()[:12]}"


# ----------------------------------------------------------------------------- the cluster


@dataclass
class DaskEngine:
    """Where trials and the final fit run: a `distributed.Client`, and the study storage URL."""

    client: Any
    study_storage: str
    task: str = "model"
    partitions: int | None = None  # of the panel, by customer hash (default: 2 per worker)
    driver_share: float = 1.0  # of customers whose rows the driver gathers for tuning and evaluation
    panel: DaskPanel | None = None  # set by `read_source`
    train_rows: Any = None  # every training row on the workers (a Dask DataFrame), set by `read_source`
    refit_rows: Any = None  # every non-test (train + valid) row on the workers, set by `read_source`

    def read_source(self, spec: TaskSpec, seed: int) -> pd.DataFrame:
        """The panel read on the cluster (see `load_panel`); the driver's share comes back as pandas."""
        # Every `.compute()` on the way goes through THIS client, the one that persisted the panel. Dask sends
        # a compute to the process's current client otherwise: another client's graph, on another connection,
        # may reach the scheduler before this client's persist and find the shuffle's keys missing ("lost
        # dependencies"; it happened with the test suite's own client current and `--scheduler` connecting).
        with self.client.as_current():
            return load_panel(self, spec, seed)

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def tuner(self, ids: np.ndarray | None = None):
        """A function with `training.tune.tune`'s signature that tunes and fits on this cluster;
        `ids`: the training rows' customer ids, so each customer's rows stay in one partition."""

        def run(kind: str, n_classes: int, dtrain, dvalid, budget: TuneBudget) -> TuneResult:
            with self.client.as_current():  # as in `read_source`: the panel's client, not the process's current one
                return tune_on_dask(self, kind, n_classes, dtrain, dvalid, budget, ids_train=ids)

        return run


@contextmanager
def dask_engine(
    scheduler: str | None = None,
    *,
    workers: int = LOCAL_WORKERS,
    study_storage: str | None = None,
    task: str = "model",
    driver_share: float = 1.0,
    partitions: int | None = None,
    settings: Settings | None = None,
) -> Iterator[DaskEngine]:
    """A client on `scheduler`, or on a LocalCluster of `workers` single-threaded processes (closed on exit)."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters may share the machine
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        yield DaskEngine(
            client=client,
            study_storage=study_storage or default_storage(settings),
            task=task,
            partitions=partitions,
            driver_share=driver_share,
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------------------- tuning on the workers


def _run_trials(
    worker_index: int,
    n_trials: int,
    timeout: float | None,
    storage_url: str,
    name: str,
    seed: int,
    data: dict[str, Any],
    base: dict[str, Any],
    space: dict[str, tuple[float, float]] | None,
    early_stopping_rounds: int,
    max_rounds: int,
) -> int:
    """On a worker: join the study and run `n_trials` trials on the broadcast matrices."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dtrain, dvalid = datasets(
        data["X_train"],
        data["y_train"],
        data["w_train"],
        data["X_valid"],
        data["y_valid"],
        data["w_valid"],
        data["categorical"],
        data["features"],
        init_train=data["init_train"],
        init_valid=data["init_valid"],
    )

    def objective(trial: optuna.Trial) -> float:
        fixed_rounds = int(PLAIN_LGBM["n_estimators"]) if trial.number == PLAIN_TRIAL else None  # as local
        _, booster, value = fit_trial(
            trial,
            base,
            space,
            dtrain,
            dvalid,
            early_stopping_rounds=early_stopping_rounds,
            max_rounds=max_rounds,
            fixed_rounds=fixed_rounds,
        )
        trial.set_user_attr("best_iteration", int(booster.best_iteration or booster.current_iteration()))
        trial.set_user_attr("worker", worker_index)
        return value

    study = optuna.load_study(
        study_name=name,
        storage=open_storage(storage_url),
        sampler=sampler(seed + worker_index, n_trials),
        pruner=pruner(),
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=())
    return n_trials


def warmup_count(trials: int) -> int:
    """How many trials explore at random before TPE: the local sampler's startup count (`tune.sampler`)."""
    return int(sampler(0, trials)._n_startup_trials)


def warmup_params(seed: int, n: int, space: dict[str, tuple[float, float]] | None) -> list[dict[str, Any]]:
    """The first `n` parameter sets, drawn once on the driver by a seeded random sampler and queued in
    the study: the same set on every run whichever worker takes which (TPE's own startup draws, the
    local study's first trials, come from the same seeded random sampler)."""
    import optuna

    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = draws.ask()
        search_space(trial, space)
        out.append(dict(trial.params))
        draws.tell(trial, 0.0)
    return out


def _shares(total: int, parts: int) -> list[int]:
    """`total` trials over `parts` workers, as even as possible (the first ones take the remainder)."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def customer_chunks(ids: np.ndarray | None, n_rows: int, parts: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Row order and chunk sizes that keep each customer's rows in one chunk: rows sorted by customer,
    `parts` chunks of about equal size cut at customer boundaries."""
    if ids is None:
        order = np.arange(n_rows)
        keys = order
    else:
        order = np.argsort(ids, kind="stable")
        keys = np.asarray(ids)[order]
    cuts = [0]
    for i in range(1, parts):
        at = int(round(i * n_rows / parts))
        while 0 < at < n_rows and keys[at] == keys[at - 1]:  # move the cut past this customer's rows
            at += 1
        if at > cuts[-1] and at < n_rows:
            cuts.append(at)
    cuts.append(n_rows)
    return order, tuple(int(b - a) for a, b in itertools.pairwise(cuts))


def tune_on_dask(
    engine: DaskEngine,
    kind: str,
    n_classes: int,
    dtrain,
    dvalid,
    budget: TuneBudget,
    *,
    ids_train: np.ndarray | None = None,
) -> TuneResult:
    """`training.tune.tune`'s contract on a cluster: trials on every worker against one study, then the
    best parameters fitted by `lightgbm.dask`. The matrices are the Datasets' raw data (kept:
    `free_raw_data=False`); `budget.threads` is ignored (one thread per worker process).

    With the panel on the workers (`engine.refit_rows`) and no starting scores, the returned `booster` is
    refitted on every non-test row and `fold_boosters` holds the train-only booster (for the valid rows'
    held-out scores); otherwise `booster` is the train-only one and `fold_boosters` is empty."""
    import optuna
    from distributed import wait

    if kind == "regression":
        raise InputError("--engine dask trains classifiers (binary, multiclass); this spec is a regression")
    t0 = time.perf_counter()
    trials, seed, space, max_rounds = budget.trials, budget.seed, budget.space, budget.max_rounds
    base = {**base_params(kind, n_classes, seed, threads=1), **budget.fixed}
    metric, direction = base["metric"], direction_of(base["metric"])  # `fixed` may set the metric
    data = _arrays(dtrain, dvalid)
    name = study_name(engine.task, seed, data["X_train"], data["y_train"])
    storage = open_storage(engine.study_storage)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=optuna.study.StudyDirection[direction.upper()],
        sampler=sampler(seed, trials),
        pruner=pruner(),
        load_if_exists=True,
    )
    done_before = len(study.trials)
    if done_before == 0:  # a machine joining a running study adds no second start or warm-up
        # As `training.tune`: the plain LightGBM first (issue #15), then the seeded random warm-up draws.
        starts = start_trials(space)[:trials]
        for point in starts + warmup_params(seed, max(0, warmup_count(trials) - len(starts)), space):
            study.enqueue_trial(point)
    client = engine.client
    [shared] = client.scatter([data], broadcast=True)
    shares = _shares(trials, engine.n_workers)
    futures = [
        client.submit(
            _run_trials,
            i,
            n,
            budget.timeout,
            engine.study_storage,
            name,
            seed,
            shared,
            base,
            dict(space),
            budget.early_stopping_rounds,
            max_rounds,
            pure=False,
            key=f"optuna-{name}-{i}-{time.time_ns()}",
        )
        for i, n in enumerate(shares)
    ]
    wait(futures)
    for f in futures:
        f.result()  # re-raise a worker's failure here
    if budget.progress is not None:
        for _ in range(trials):
            budget.progress()
    log.info("tuning: %d trials on %d workers in %.1fs", trials, len(shares), time.perf_counter() - t0)
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError("every tuning trial was pruned or failed")
    best = study.best_trial
    params = {**base, **best.params, "bagging_freq": 1}
    rounds = int(best.user_attrs.get("best_iteration") or max_rounds)
    if engine.train_rows is not None and data["init_train"] is None:
        booster = fit_dask_frame(client, params, rounds, engine.train_rows, data["categorical"], data["features"])
    else:
        if engine.train_rows is not None:  # the prior's margins are computed on the driver (training.train)
            log.warning("boost_from_baseline: the booster is refitted on the driver's rows, not the whole panel")
        booster = fit_dask(
            client,
            params,
            rounds,
            data["X_train"],
            data["y_train"],
            data["w_train"],
            data["init_train"],
            data["categorical"],
            data["features"],
            ids_train,
            engine.n_workers,
        )
    value = _valid_score(booster, data["X_valid"], data["y_valid"], data["w_valid"], data["init_valid"], metric)
    final, held_out = booster, []
    if engine.refit_rows is not None and data["init_train"] is None:
        # As local training: the same parameters and rounds on train + valid; the train-only booster stays
        # for the valid rows' scores (the calibrator's), which the refitted booster has seen.
        t_refit = time.perf_counter()
        final = fit_dask_frame(client, params, rounds, engine.refit_rows, data["categorical"], data["features"])
        held_out = [booster]
        log.info("refitted on every non-test row on the workers in %.1fs", time.perf_counter() - t_refit)
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials[done_before:])
    log.info(
        "tuned %s on %d Dask workers: study %s, best %s=%.5f (trial %d, %d rounds); refit valid %s=%.5f",
        kind,
        engine.n_workers,
        name,
        metric,
        best.value,
        best.number,
        rounds,
        metric,
        value,
    )
    return TuneResult(
        booster=final,
        params={**params, "n_estimators": rounds, "study_name": name, "study_trial": best.number},
        best_iteration=rounds,
        best_value=value,
        metric=metric,
        direction=direction,
        n_trials=len(study.trials) - done_before,
        n_pruned=n_pruned,
        seconds=time.perf_counter() - t0,
        history=[float(t.value) for t in study.trials[done_before:] if t.value is not None],
        fold_boosters=held_out,
    )


def _arrays(dtrain, dvalid) -> dict[str, Any]:
    """The raw matrices, labels, weights and starting scores behind two constructed Datasets."""
    cat = dtrain.categorical_feature
    return {
        "X_train": np.asarray(dtrain.data, dtype=np.float64),
        "y_train": np.asarray(dtrain.get_label(), dtype=np.float64),
        "w_train": dtrain.get_weight(),
        "X_valid": np.asarray(dvalid.data, dtype=np.float64),
        "y_valid": np.asarray(dvalid.get_label(), dtype=np.float64),
        "w_valid": dvalid.get_weight(),
        "categorical": [] if cat == "auto" else [int(c) for c in cat],
        "features": list(dtrain.feature_name) if isinstance(dtrain.feature_name, list) else None,
        "init_train": dtrain.get_init_score(),
        "init_valid": dvalid.get_init_score(),
    }


def fit_dask(
    client,
    params: dict[str, Any],
    rounds: int,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    init: np.ndarray | None,
    categorical: list[int],
    features: list[str],
    ids: np.ndarray | None,
    n_workers: int,
):
    """`DaskLGBMClassifier` on the rows partitioned by customer: returns the fitted `lightgbm.Booster`."""
    import dask.array as da

    order, chunks = customer_chunks(ids, len(y), n_workers)
    dX = da.from_array(np.ascontiguousarray(X[order]), chunks=(chunks, X.shape[1]))
    dy = da.from_array(y[order], chunks=(chunks,))
    dw = None if w is None else da.from_array(w[order], chunks=(chunks,))
    # multiclass starting scores (a tier `TransitionPrior`) are (n, classes): chunk the rows only
    dinit = None if init is None else da.from_array(np.ascontiguousarray(init[order]), chunks=(chunks, *init.shape[1:]))
    model = _classifier(client, params, rounds)
    model.fit(
        dX, dy, sample_weight=dw, init_score=dinit, categorical_feature=categorical or "auto", feature_name=features
    )
    return model.booster_


def _classifier(client, params: dict[str, Any], rounds: int):
    from lightgbm import DaskLGBMClassifier

    # LightGBM's sklearn names: `num_threads` is set by lightgbm.dask from each worker's threads.
    skip = {"objective", "metric", "num_threads", "num_class", "verbosity"}
    return DaskLGBMClassifier(
        client=client,
        objective=params["objective"],
        n_estimators=rounds,
        verbose=-1,
        **{k: v for k, v in params.items() if k not in skip},
    )


def fit_dask_frame(client, params: dict[str, Any], rounds: int, rows, categorical: list[int], features: list[str]):
    """`DaskLGBMClassifier` on every training row of the panel where the workers hold it (the partitions of
    `DaskPanel.training_rows`, by customer): returns the fitted `lightgbm.Booster`."""
    model = _classifier(client, params, rounds)
    weight = rows[WEIGHT_COLUMN_DASK] if WEIGHT_COLUMN_DASK in rows.columns else None
    model.fit(
        rows[features],
        rows[LABEL_COLUMN],
        sample_weight=weight,
        categorical_feature=categorical or "auto",
        feature_name=features,
    )
    return model.booster_


def _valid_score(booster, X, y, w, init, metric: str) -> float:
    """The refitted booster's validation metric (AUC for binary, log-loss for multiclass), the trials' yardstick."""
    raw = booster.predict(X, raw_score=True, num_threads=1)
    if init is not None:
        raw = raw + init
    if metric == "auc":
        from core.metrics import binary_metrics

        return float(binary_metrics(y, 1.0 / (1.0 + np.exp(-raw)), w)["roc_auc"])
    z = raw - raw.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pw = w if w is not None else np.ones(len(y))
    return float(-np.sum(pw * np.log(np.clip(p[np.arange(len(y)), y.astype(int)], 1e-15, None))) / pw.sum())


# ----------------------------------------------------------------------------- the panel on the cluster

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
SPLIT_COLUMN, LABEL_COLUMN, WEIGHT_COLUMN_DASK = "__split", "__label", "__weight"
SAMPLE_BUCKETS = 10_000  # a customer is in the driver's sample when hash(id) % SAMPLE_BUCKETS < share


@dataclass(frozen=True)
class SplitRule:
    """`training.data.split` stated on its keys, so each partition assigns its own rows: the time
    split's last two dates, or the group split's valid and test groups (everything else trains)."""

    kind: str
    valid_time: Any = None
    test_time: Any = None
    valid_groups: frozenset = frozenset()
    test_groups: frozenset = frozenset()

    def assign(self, part: pd.DataFrame, spec: TaskSpec) -> np.ndarray:
        """0 train, 1 valid, 2 test for every row of `part` (labelled or not)."""
        if self.kind == "time":
            t = pd.to_datetime(part[spec.split.time_column]).to_numpy()
            return np.where(t == self.test_time, 2, np.where(t == self.valid_time, 1, 0)).astype(np.int8)
        g = part[spec.group]
        return np.where(g.isin(self.test_groups), 2, np.where(g.isin(self.valid_groups), 1, 0)).astype(np.int8)


def _eligible(part: pd.DataFrame, spec: TaskSpec) -> pd.DataFrame:
    """The rows `prepare` keeps before labelling: numeric columns parsed, the spec's `where` applied."""
    part = _as_numbers(part, spec)
    if spec.where:
        part = part.query(spec.where, engine="python")
    return part


def _fit_label(target: pd.Series, spec: TaskSpec, classes: list[str]) -> np.ndarray:
    """The label the booster fits, encoded as `prepare` does (an ordinal target: top class vs the rest)."""
    t = spec.target
    if t.kind == "binary":
        return target.astype(float).to_numpy() if t.expr else (target.astype(str) == str(t.positive)).to_numpy(float)
    codes = target.astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=float)
    if t.kind == "ordinal":
        return (codes >= classes.index(t.top_class or "")).astype(float)
    return codes


def labelled_partition(
    part: pd.DataFrame, spec: TaskSpec, rule: SplitRule, classes: list[str], carry: tuple[str, ...] = ()
) -> pd.DataFrame:
    """One partition's eligible, labelled rows with their label and split (map_partitions): the id, the
    split keys, the `carry` columns, `__label` and `__split`. Same rows and values as `prepare` + `split`
    on the whole panel."""
    part = _eligible(part, spec)
    target = _target(part, spec)
    part = part.loc[target.notna().to_numpy()]
    target = target.loc[part.index]
    keys = [c for c in dict.fromkeys([spec.id, spec.group, spec.split.time_column, *carry]) if c]
    out = part[keys].copy()
    out[LABEL_COLUMN] = _fit_label(target, spec, classes)
    out[SPLIT_COLUMN] = rule.assign(part, spec)
    return out


def training_partition(
    part: pd.DataFrame,
    spec: TaskSpec,
    rule: SplitRule,
    features: list[str],
    categories: dict,
    classes: list[str],
    splits: tuple[str, ...] = ("train",),
) -> pd.DataFrame:
    """One partition's labelled rows of `splits` (default the training rows) as the booster's float matrix
    (`TabularModel.matrix` coding), with `__label` and `__weight` (map_partitions)."""
    from training.model import TabularModel

    part = _eligible(part, spec)
    target = _target(part, spec)
    codes = [SPLIT_CODES[s] for s in splits]
    keep = target.notna().to_numpy() & np.isin(rule.assign(part, spec), codes)
    part, target = part.loc[keep], target.loc[keep]
    coder = TabularModel(
        task=spec.name,
        kind=spec.target.kind,
        features=features,
        categories=categories,
        booster=None,
        calibrator=None,
        classes=classes,
    )
    out = pd.DataFrame(coder.matrix(part), columns=features, index=part.index)
    out[LABEL_COLUMN] = _fit_label(target, spec, classes)
    if spec.weight:
        out[WEIGHT_COLUMN_DASK] = pd.to_numeric(part[spec.weight], errors="coerce").fillna(0.0).to_numpy(float)
    return out


def read_panel(spec: TaskSpec, partitions: int):
    """The spec's Parquet source as a Dask DataFrame hash-partitioned by customer: all of one
    customer's rows in one partition (a customer never straddles two workers)."""
    import dask.dataframe as dd

    path = spec.source_path()
    if path.suffix != ".parquet" and not path.is_dir():
        raise InputError(f"spec {spec.name!r} field source: --engine dask reads Parquet, got {path.name}")
    if not spec.id:
        raise InputError(f"spec {spec.name!r} field id: --engine dask partitions by customer and needs an id column")
    return dd.read_parquet(str(path)).shuffle(on=spec.id, npartitions=partitions)


def customer_share(part: pd.DataFrame, id_column: str, share: float) -> pd.DataFrame:
    """The rows of a fixed pseudo-random `share` of customers (by a hash of the id; the same customers
    on every run and machine)."""
    if share >= 1.0:
        return part
    bucket = pd.util.hash_pandas_object(part[id_column], index=False).to_numpy() % SAMPLE_BUCKETS
    return part.loc[bucket < int(round(share * SAMPLE_BUCKETS))]


def split_rule(panel, spec: TaskSpec, seed: int) -> SplitRule:
    """The split's keys gathered from the partitions (distinct dates or groups of labelled rows), split by
    `training.data.split` itself on those keys: the same valid and test sets as on the whole panel."""
    kind = spec.split.kind
    if kind not in ("time", "group"):
        raise InputError(
            f"spec {spec.name!r} field split: --engine dask splits per partition by time or group, "
            f"not {kind!r} (a random row split depends on the row order of the whole table)"
        )
    column = spec.split.time_column if kind == "time" else spec.group

    def keys(part: pd.DataFrame) -> pd.Series:
        part = _eligible(part, spec)
        return part.loc[_target(part, spec).notna().to_numpy(), column].drop_duplicates()

    values = panel.map_partitions(keys, meta=(column, panel[column].dtype)).drop_duplicates().compute().to_numpy()
    values = np.sort(pd.to_datetime(values).to_numpy() if kind == "time" else values)
    on_keys = Prepared(spec=spec, X=pd.DataFrame(index=range(len(values))), y=np.zeros(len(values)), classes=None,
                       features=[], categorical=[], categories={})  # fmt: skip
    if kind == "time":
        on_keys.times = values
        sp = split(on_keys, seed)
        return SplitRule(kind, valid_time=sp.valid_time, test_time=sp.test_time)
    on_keys.groups = values
    sp = split(on_keys, seed)
    return SplitRule(
        kind, valid_groups=frozenset(values[sp.valid].tolist()), test_groups=frozenset(values[sp.test].tolist())
    )


@dataclass
class DaskPanel:
    """The panel on the workers (hash-partitioned by customer) and what the driver gathered from it."""

    frame: Any  # dask DataFrame of the source rows
    spec: TaskSpec
    rule: SplitRule
    driver_share: float
    features: list[str] | None = None  # set by `training_rows` from the driver's `prepare`
    categories: dict[str, list[str]] | None = None
    classes: list[str] | None = None

    def training_rows(self, prep: Prepared, splits: tuple[str, ...] = ("train",)):
        """Every row of `splits` (default the training rows) on the cluster, coded like the driver's `prep`
        (its features, categories and classes): a Dask DataFrame of the float matrix, `__label`, `__weight`."""
        self.features, self.categories, self.classes = prep.features, prep.categories, prep.classes or []
        columns = [*prep.features, LABEL_COLUMN, *([WEIGHT_COLUMN_DASK] if self.spec.weight else [])]
        meta = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
        return self.frame.map_partitions(
            training_partition, self.spec, self.rule, prep.features, prep.categories, self.classes, splits, meta=meta
        )


def load_panel(engine: DaskEngine, spec: TaskSpec, seed: int) -> pd.DataFrame:
    """`training.data.read_source` for `--engine dask`: the panel stays on the workers (`engine.panel`);
    the driver gets the rows of `engine.driver_share` of customers (all splits) for tuning, calibration
    and evaluation, gathered from the partitions (no pandas read of the whole table on the driver)."""
    # Persisted: the shuffle by customer runs once; every later step reads the workers' partitions.
    panel = engine.client.persist(read_panel(spec, engine.partitions or 2 * engine.n_workers))
    if engine.driver_share < 1.0 and spec.split.kind != "time":
        raise InputError(
            f"spec {spec.name!r} field split: a driver share below 1 needs a time split (a group split of a "
            "sample would draw other groups than the cluster's)"
        )
    rule = split_rule(panel, spec, seed)
    engine.panel = DaskPanel(frame=panel, spec=spec, rule=rule, driver_share=engine.driver_share)
    frame = panel.map_partitions(customer_share, spec.id, engine.driver_share).compute()
    # Sorted, so the driver's rows (and the study name hashed from them) do not depend on the partitioning.
    order = [c for c in (spec.id, spec.split.time_column) if c]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    # The coding (features, categories, classes) fit_task will derive from the same frame, for the workers.
    prep = prepare(frame, spec)
    engine.train_rows = engine.panel.training_rows(prep)
    engine.refit_rows = engine.panel.training_rows(prep, ("train", "valid"))  # the final booster's rows
    log.info(
        "panel on %d partitions (by customer); the driver holds %d rows (%.0f%% of customers)",
        panel.npartitions,
        len(frame),
        100 * engine.driver_share,
    )
    return frame
