"""1 vs 2 Dask workers on this machine (issue #16, docs/SCALING.md): `python -m benchmarks.bench_scaling`.

Three short measurements, each with a LocalCluster of W single-threaded worker processes (W = 1, 2),
the clusters started before the clock starts:

1. **features**: `features.panel.build_panel(--engine dask --workers W)` over a simulated bank
   (`--customers`, `--months`; the panel at its default month-end dates plus `latest`), seconds per
   million raw transaction rows;
2. **training**: the `--engine dask` path on a generated churn-like panel of `--rows` rows (four
   snapshots per customer, 30 features, written as Parquet): `DaskEngine.read_source` (read, shuffle by
   customer, label and split per partition, the driver's `--driver-share` of customers gathered) in
   seconds per million panel rows, then `lightgbm.dask` (`fit_dask_frame`) with fixed parameters and
   `--rounds` rounds on every training row, seconds per million training rows (and one process's
   `lightgbm.train` with one thread on the same rows, the reference);
3. **tuning**: `--trials` Optuna trials on the W workers against one journal-file study, trials per minute.

Memory per worker: the peak RSS of each worker process, sampled every 100 ms. Writes
`benchmarks/out/scaling.json` and prints a table. The machine is shared: the load average at the
start and end of each step is recorded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.machine import machine

OUT = Path(__file__).resolve().parent / "out"


@contextmanager
def worker_memory(client):
    """Peak RSS (bytes) of each Dask worker process while the block runs: a dict filled on exit."""
    import psutil

    pids = list(client.run(os.getpid).values())
    procs = [psutil.Process(p) for p in pids]
    peaks = {p: 0 for p in pids}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for proc in procs:
                with suppress(psutil.Error):
                    peaks[proc.pid] = max(peaks[proc.pid], proc.memory_info().rss)
            stop.wait(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out: dict[str, float] = {}
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out["max_worker_rss_gib"] = max(peaks.values()) / 2**30
        out["workers"] = len(peaks)


@contextmanager
def cluster(workers: int):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as lc,
        Client(lc) as client,
    ):
        # Imported on every worker before the clock starts, as the cluster start is (training.model pulls in
        # MLflow: seconds of CPU once per worker process, not per row).
        for module in ("features.panel", "training.distributed", "training.model"):
            client.run(importlib.import_module, module)
        yield client


def load() -> float:
    return round(os.getloadavg()[0], 1)


def bench_features(raw: Path, workers: int, scheduler: str) -> dict:
    import pandas as pd

    from features.panel import build_panel

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = build_panel(raw, out, workers=workers, engine="dask", scheduler=scheduler)
        seconds = time.perf_counter() - t0
    tx = pd.read_parquet(raw / "transactions.parquet", columns=["customer_id"]).shape[0]
    return {"seconds": seconds, "transactions": tx, "panel_rows": summary["rows"],
            "s_per_million_tx": seconds / (tx / 1e6)}  # fmt: skip


def churn_matrix(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 30))
    logit = 1.2 * X[:, 0] - X[:, 1] + 0.6 * X[:, 2] * X[:, 3] + 0.3 * np.sin(X[:, 4] * 3) - 1.5
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    ids = np.repeat(np.arange(rows // 4 + 1), 4)[:rows]  # four snapshots per customer
    return X, y, ids


PARAMS = {"objective": "binary", "metric": "auc", "learning_rate": 0.1, "num_leaves": 63,
          "min_child_samples": 50, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
          "seed": 0, "deterministic": True, "force_row_wise": True, "verbosity": -1}  # fmt: skip


def write_panel(X, y, ids, path: Path) -> Path:
    """The matrix as a churn-like panel: customer id, four month-end snapshots, 30 features, the label."""
    import pandas as pd

    snapshot = np.tile(np.arange(4), len(ids) // 4 + 1)[: len(ids)]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame.insert(0, "as_of", pd.Timestamp("2026-01-31") + pd.to_timedelta(snapshot * 31, unit="D"))
    frame.insert(0, "customer_id", ids)
    frame["churn"] = y
    frame.to_parquet(path, index=False, row_group_size=50_000)  # row groups: the partitions read in parallel
    return path


def panel_spec(path: Path):
    from training.spec import spec_from_dict

    return spec_from_dict(
        {"name": "bench", "source": path.name, "id": "customer_id", "split": {"kind": "time", "time_column": "as_of"},
         "target": {"column": "churn", "kind": "binary", "positive": 1.0}, "baseline": {"kind": "prior"}},
        base_dir=path.parent,
    )  # fmt: skip


def bench_training(client, panel: Path, rounds: int, driver_share: float) -> dict:
    """The `--engine dask` path: the panel read and shuffled by customer on the workers, labelled and split per
    partition, the driver's share gathered (`read_source`); then `lightgbm.dask` on every training row."""
    from distributed import wait

    from training.distributed import DaskEngine, fit_dask_frame

    spec = panel_spec(panel)
    engine = DaskEngine(client=client, study_storage="unused", task="bench", driver_share=driver_share)
    t0 = time.perf_counter()
    driver = engine.read_source(spec, seed=0)
    rows = client.persist(engine.train_rows)
    wait(rows)
    n_train = int(rows.map_partitions(len).compute().sum())
    read = time.perf_counter() - t0
    features = [f"f{i}" for i in range(30)]
    t1 = time.perf_counter()
    fit_dask_frame(client, dict(PARAMS), rounds, rows, [], features)
    fit = time.perf_counter() - t1
    n_panel = n_train * 2  # a time split over four snapshots trains on the first two
    return {"read_prepare_seconds": read, "fit_seconds": fit, "panel_rows": n_panel, "train_rows": n_train,
            "driver_rows": len(driver), "read_s_per_million_rows": read / (n_panel / 1e6),
            "s_per_million_rows": fit / (n_train / 1e6)}  # fmt: skip


def bench_local_training(X, y, rounds: int) -> dict:
    import lightgbm as lgb

    t0 = time.perf_counter()
    lgb.train({**PARAMS, "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=rounds)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(y), "s_per_million_rows": seconds / (len(y) / 1e6)}


def bench_tuning(client, rows: int, trials: int, journal: Path) -> dict:
    from training.distributed import DaskEngine
    from training.tune import TuneBudget, datasets

    X, y, ids = churn_matrix(rows, seed=1)
    n_train = int(rows * 0.8)
    dtrain, dvalid = datasets(X[:n_train], y[:n_train], None, X[n_train:], y[n_train:], None, [], None)
    engine = DaskEngine(client=client, study_storage=str(journal), task=f"bench-{time.time_ns()}")
    t0 = time.perf_counter()
    budget = TuneBudget(trials=trials, timeout=None, seed=0, early_stopping_rounds=20, max_rounds=300)
    result = engine.tuner(ids=ids[:n_train])("binary", 2, dtrain, dvalid, budget)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "trials": result.n_trials, "pruned": result.n_pruned,
            "trials_per_minute": result.n_trials / (seconds / 60)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--rows", type=int, default=400_000, help="training matrix rows")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--tune-rows", type=int, default=40_000)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--raw", type=Path, default=None)
    ap.add_argument("--driver-share", type=float, default=0.05, help="customers the driver gathers")
    ap.add_argument("--workers", default="1,2", help="worker counts in the order run (e.g. 2,1 to check order effects)")
    args = ap.parse_args()

    raw = args.raw or Path(tempfile.gettempdir()) / f"clientlens-scaling-raw-{args.customers}x{args.months}"
    if not (raw / "transactions.parquet").exists():
        from features.simulate import simulate

        simulate(raw, args.customers, args.months, 7)
    X, y, ids = churn_matrix(args.rows)
    panel = write_panel(X, y, ids, Path(tempfile.mkdtemp()) / "panel.parquet")
    train = np.arange(len(y)) % 4 < 2  # the time split's training rows, as in the panel
    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    results["local_training"] = {**bench_local_training(X[train], y[train], args.rounds), "load": load()}
    for workers in [int(w) for w in args.workers.split(",")]:
        with cluster(workers) as client, tempfile.TemporaryDirectory() as tmp:
            run: dict = {"workers": workers}
            for step, fn in (
                ("features", partial(bench_features, raw, workers, client.scheduler.address)),
                ("training", partial(bench_training, client, panel, args.rounds, args.driver_share)),
                ("tuning", partial(bench_tuning, client, args.tune_rows, args.trials, Path(tmp) / "j.log")),
            ):
                before = load()
                with worker_memory(client) as mem:
                    out = fn()
                run[step] = {**out, **mem, "load": [before, load()]}
                print(workers, step, json.dumps(run[step]), flush=True)
            results["runs"].append(run)
    OUT.mkdir(exist_ok=True)
    (OUT / "scaling.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{'workers':>8} {'features s/M tx':>16} {'read+label s/M rows':>20} {'train s/M rows':>15}"
          f" {'trials/min':>11} {'max worker RSS GiB':>19}")  # fmt: skip
    for r in results["runs"]:
        rss = max(r[s]["max_worker_rss_gib"] for s in ("features", "training", "tuning"))
        t = r["training"]
        print(f"{r['workers']:>8} {r['features']['s_per_million_tx']:>16.1f} {t['read_s_per_million_rows']:>20.1f}"
              f" {t['s_per_million_rows']:>15.1f} {r['tuning']['trials_per_minute']:>11.1f} {rss:>19.2f}")  # fmt: skip
    print(f"one process, lightgbm.train 1 thread: {results['local_training']['s_per_million_rows']:.1f} s per M rows")


if __name__ == "__main__":
    main()
