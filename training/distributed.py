"""Training beyond one machine: Optuna trials on Dask workers sharing one study, the final booster
fitted data-parallel by `lightgbm.dask` (DESIGN §9).

`fit_task(..., engine=DaskEngine(...))` hands the tuning and the booster to this module; everything
else (preparation, split, calibration, baselines, reasons, MLflow logging, promotion) is the local
code path, so a model trained here is the same `TabularModel` artefact.

How the work is spread:
- The training and validation matrices go to every worker once (`Client.scatter(broadcast=True)`).
- Tuning: one task per worker runs `study.optimize` against ONE study in a shared storage (Optuna's
  journal file, or an RDB URL such as the PostgreSQL behind MLflow); each worker's TPE sampler is
  seeded `seed + worker index`, trials are pruned by the median rule on intermediate validation scores.
  Another machine joins the same study by running the same command with the same `--study-storage`.
- The final booster: the best trial's parameters and its early-stopped number of rounds, fitted by
  `DaskLGBMClassifier` on the training rows partitioned by customer (one customer's rows in one
  partition, so no customer straddles two workers), LightGBM's data-parallel tree learner.

Reproducibility: with parallel trials the order in which trials finish (and so what TPE has seen when
it proposes the next one) depends on timing; a fixed seed fixes every worker's proposals given that
order, not the order. Local training (`training.tune`) stays exactly reproducible.
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

from core.errors import InputError
from core.settings import Settings
from training.tune import (
    PLAIN_LGBM,
    PLAIN_TRIAL,
    TuneResult,
    base_params,
    datasets,
    fit_trial,
    objective_of,
    pruner,
    sampler,
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

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def tuner(self, ids: np.ndarray | None = None):
        """A function with `training.tune.tune`'s signature that tunes and fits on this cluster;
        `ids`: the training rows' customer ids, so each customer's rows stay in one partition."""

        def run(kind: str, n_classes: int, dtrain, dvalid, **kwargs) -> TuneResult:
            return tune_on_dask(self, kind, n_classes, dtrain, dvalid, ids_train=ids, **kwargs)

        return run


@contextmanager
def dask_engine(
    scheduler: str | None = None,
    *,
    workers: int = LOCAL_WORKERS,
    study_storage: str | None = None,
    task: str = "model",
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
        yield DaskEngine(client=client, study_storage=study_storage or default_storage(settings), task=task)
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
    ids_train: np.ndarray | None = None,
) -> TuneResult:
    """`training.tune.tune`'s contract on a cluster: trials on every worker against one study, then the
    best parameters fitted by `lightgbm.dask`. The matrices are the Datasets' raw data (kept:
    `free_raw_data=False`); `threads` is ignored (one thread per worker process)."""
    import optuna
    from distributed import wait

    if kind == "regression":
        raise InputError("--engine dask trains classifiers (binary, multiclass); this spec is a regression")
    t0 = time.perf_counter()
    base = {**base_params(kind, n_classes, seed, threads=1), **(fixed or {})}
    metric, direction = base["metric"], objective_of(kind, n_classes)[2]
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
    if done_before == 0:  # a new study starts from the plain LightGBM, as `training.tune` does (issue #15)
        for point in start_trials(space)[:trials]:
            study.enqueue_trial(point)
    data = _arrays(dtrain, dvalid)
    client = engine.client
    [shared] = client.scatter([data], broadcast=True)
    shares = _shares(trials, engine.n_workers)
    futures = [
        client.submit(
            _run_trials,
            i,
            n,
            timeout,
            engine.study_storage,
            name,
            seed,
            shared,
            base,
            dict(space or {}),
            early_stopping_rounds,
            max_rounds,
            pure=False,
            key=f"optuna-{name}-{i}-{time.time_ns()}",
        )
        for i, n in enumerate(shares)
    ]
    wait(futures)
    for f in futures:
        f.result()  # re-raise a worker's failure here
    if progress is not None:
        for _ in range(trials):
            progress()
    log.info("tuning: %d trials on %d workers in %.1fs", trials, len(shares), time.perf_counter() - t0)
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError("every tuning trial was pruned or failed")
    best = study.best_trial
    params = {**base, **best.params, "bagging_freq": 1}
    rounds = int(best.user_attrs.get("best_iteration") or max_rounds)
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
        booster=booster,
        params={**params, "n_estimators": rounds, "study_name": name, "study_trial": best.number},
        best_iteration=rounds,
        best_value=value,
        metric=metric,
        direction=direction,
        n_trials=len(study.trials) - done_before,
        n_pruned=n_pruned,
        seconds=time.perf_counter() - t0,
        history=[float(t.value) for t in study.trials[done_before:] if t.value is not None],
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
    from lightgbm import DaskLGBMClassifier

    order, chunks = customer_chunks(ids, len(y), n_workers)
    dX = da.from_array(np.ascontiguousarray(X[order]), chunks=(chunks, X.shape[1]))
    dy = da.from_array(y[order], chunks=(chunks,))
    dw = None if w is None else da.from_array(w[order], chunks=(chunks,))
    dinit = None if init is None else da.from_array(init[order], chunks=(chunks,))
    # LightGBM's sklearn names: `num_threads` is set by lightgbm.dask from each worker's threads.
    skip = {"objective", "metric", "num_threads", "num_class", "verbosity"}
    model = DaskLGBMClassifier(
        client=client,
        objective=params["objective"],
        n_estimators=rounds,
        verbose=-1,
        **{k: v for k, v in params.items() if k not in skip},
    )
    model.fit(
        dX, dy, sample_weight=dw, init_score=dinit, categorical_feature=categorical or "auto", feature_name=features
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
