"""Training with numpy's BLAS on one thread (`training.tune.blas_threads`, the default) against OpenBLAS's own
thread count (one per core), on the demo's tasks and budget (#18): CPU seconds per arm, and whether both arms
fitted the same model (booster text, calibrator and thresholds, test metrics: compared as bytes).

    uv run python -m benchmarks.bench_train_threads --features FEATURES_DIR --truth RAW_DIR/truth.parquet
        [--tasks risk churn tier] [--rounds 2]

Each fit is its own process (`fit_task` on the demo's `clientlens train` budget), the arms alternating within a
round so the machine's load falls on both alike; prints one line per fit and a summary, and exits 1 if any two
fits of a task differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ARMS = ("blas1", "blas_default")


def fit_once(task: str, features: Path, truth: Path | None, arm: str) -> dict:
    """One `fit_task` on the demo's budget for `task`; `arm` blas_default leaves OpenBLAS's thread count alone."""
    import training.train as train
    from clientlens.commands.train import with_tuning
    from clientlens.demo import DemoConfig, tuning_budget
    from features.contract import read_truth
    from training.data import read_source
    from training.spec import builtin_spec

    if arm == "blas_default":
        train.blas_threads = lambda threads=None: nullcontext()  # type: ignore[assignment]
    budget = tuning_budget(DemoConfig(), task)
    trials = int(budget[budget.index("--trials") + 1])
    folds = int(budget[budget.index("--cv-folds") + 1]) if "--cv-folds" in budget else None
    spec = with_tuning(builtin_spec(task, features), cv_folds=folds)
    frame = read_source(spec)
    truth_frame = read_truth(truth.parent) if truth is not None and task in ("risk", "churn") else None
    wall, cpu = time.perf_counter(), time.process_time()
    result = train.fit_task(spec, frame, seed=DemoConfig().seed, trials=trials, timeout=1800, truth=truth_frame)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    core = result.model
    parts = {
        "booster": core.booster.model_to_string().encode(),
        "calibrator": pickle.dumps((core.calibrator, core.thresholds), protocol=pickle.HIGHEST_PROTOCOL),
        "metrics": json.dumps(result.metrics, sort_keys=True).encode(),
        "baseline": json.dumps(result.baseline, sort_keys=True).encode(),
        "lgbm_default": json.dumps(result.lgbm_default, sort_keys=True).encode(),
    }
    return {
        "task": task,
        "arm": arm,
        "wall": round(wall, 2),
        "cpu": round(cpu, 2),
        "model_sha256": hashlib.sha256(b"".join(parts.values())).hexdigest()[:16],
        "parts_sha256": {k: hashlib.sha256(v).hexdigest()[:12] for k, v in parts.items()},
        "best_params": {k: v for k, v in result.tuning.params.items() if k not in ("verbosity",)},
        "rounds": result.tuning.best_iteration,
        "metrics": result.metrics,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--truth", type=Path, default=None)
    parser.add_argument("--tasks", nargs="+", default=["risk", "churn", "tier"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("TASK", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(fit_once(args.child[0], args.features, args.truth, args.child[1])))
        return 0
    from benchmarks.machine import machine

    print(json.dumps({"machine": machine()}))
    rows: list[dict] = []
    for r in range(args.rounds):
        for task in args.tasks:
            for arm in ARMS if r % 2 == 0 else ARMS[::-1]:
                cmd = [sys.executable, "-m", "benchmarks.bench_train_threads", "--features", str(args.features)]
                cmd += [*(["--truth", str(args.truth)] if args.truth else []), "--child", task, arm]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                row = json.loads(out)
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("task", "arm", "wall", "cpu", "model_sha256", "parts_sha256")}))
    same = True
    for task in args.tasks:
        mine = [row for row in rows if row["task"] == task]
        digests = {row["model_sha256"] for row in mine}
        same &= len(digests) == 1
        cpu = {arm: [row["cpu"] for row in mine if row["arm"] == arm] for arm in ARMS}
        print(
            f"{task}: CPU-s blas1 {cpu['blas1']} vs default {cpu['blas_default']}; "
            f"{'the same model' if len(digests) == 1 else 'DIFFERENT models'} ({sorted(digests)}); "
            f"best params {mine[0]['best_params']}, rounds {mine[0]['rounds']}, metrics {mine[0]['metrics']}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
