"""In-process cost of `training.scoring.score_columns` for 1 customer and for a batch (#18), this tree
against another git revision, side by side in one run:

    nice -n 10 .venv/bin/python -m benchmarks.bench_score_one --against main [--rows 1000 --rounds 3]

Trains a tiny tier / churn / risk model set once (the training tests' generated panel, one trial; cached
in benchmarks/out/score_one_models.pkl), compiles the boosters as the service does (lleaves, cached), then
alternates worker processes of this tree and of `--against` (exported with `git archive`), each timing
`score_columns` on the same columns (median of `--reps` calls; the reported figure is the median over the
rounds), and the risk posterior alone for one customer. Also checks that both trees return exactly the same
outputs on the same rows. Prints a table and writes benchmarks/out/bench_score_one.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parent.parent
MODELS = OUT / "score_one_models.pkl"


def _train(path: Path) -> None:
    from tests.training.conftest import make_panel, small_data_spec
    from training.spec import builtin_spec
    from training.train import fit_task

    panel, truth = make_panel(700, 4, seed=0)
    with tempfile.TemporaryDirectory() as d:
        models = {
            t: fit_task(small_data_spec(builtin_spec(t, Path(d))), panel, seed=0, trials=1, truth=truth).model
            for t in ("tier", "churn", "risk")
        }
    latest = panel[panel["as_of"] == panel["as_of"].max()].drop(columns=["tier_future", "churn", "revealed_risk"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"models": models, "latest": latest}))


def _columns(rows: int, home: Path | None = None) -> tuple[dict, int, dict]:
    """The models (compiled when possible) and the request-like columns of `rows` customers: the tiny
    set, or with `home` (a `benchmarks.bench_serving` home) its champions as the service loads them and
    the first `rows` customers of its feature table."""
    import pandas as pd

    from serving.compiled import compile_core
    from training.scoring import _columns as frame_columns
    from training.scoring import needed_columns

    if home is not None:
        from serving.models_store import load_model_set  # the store of this process's BENTOML_HOME (`_run`)

        models = load_model_set().cores
        frame = pd.read_parquet(home / "work" / "features" / "latest.parquet").head(rows).reset_index(drop=True)
        return models, len(frame), frame_columns(frame, needed_columns(models))
    blob = pickle.loads(MODELS.read_bytes())
    models, latest = blob["models"], blob["latest"]
    for core in models.values():
        compile_core(core, OUT / "score_one_compiled")
    frame = pd.concat([latest] * (1 + rows // len(latest)), ignore_index=True).head(rows)
    # A few awkward values so both paths see missing and unknown inputs.
    frame = frame.astype({"lifecycle_stage": object, "stated_risk": object, "tier": object})
    frame.loc[frame.index[1::7], "lifecycle_stage"] = None
    frame.loc[frame.index[2::11], "stated_risk"] = np.nan
    frame.loc[frame.index[3::13], "tier"] = "unknown_tier"
    cols = frame_columns(frame, needed_columns(models))
    return models, rows, cols


def _worker(rows: int, reps: int, dump: Path | None, home: Path | None = None) -> dict:
    from training.scoring import score_columns

    models, n, cols = _columns(rows, home)
    flagged = np.asarray(score_columns(cols, n, models)["churn"], dtype=bool)
    # One customer the churn model does not flag (no churn-driver attribution) and one it flags.
    quiet, churner = int(np.flatnonzero(~flagged)[0]), int(np.flatnonzero(flagged)[0])
    one = {k: v[quiet : quiet + 1] for k, v in cols.items()}
    one_churner = {k: v[churner : churner + 1] for k, v in cols.items()}

    def median_ms(fn, k: int) -> tuple[float, float]:
        """Medians of wall time and of this thread's CPU time (less disturbed by a loaded machine)."""
        for _ in range(5):
            fn()
        wall, cpu = [], []
        for _ in range(k):
            t, c = time.perf_counter(), time.thread_time()
            fn()
            cpu.append((time.thread_time() - c) * 1000)
            wall.append((time.perf_counter() - t) * 1000)
        return float(np.median(wall)), float(np.median(cpu))

    out: dict = {"compiled": all(m.predictor is not None for m in models.values()), "churn_flagged": int(flagged.sum())}
    risk = models["risk"]  # its calibrator is the risk posterior (`training.appetite`), the costliest step
    X_risk = risk.matrix(one)
    raw_risk = risk.raw_from_matrix(X_risk)
    for key, fn, k in (
        ("score_columns_1", lambda: score_columns(one, 1, models), reps),
        ("score_columns_1_churner", lambda: score_columns(one_churner, 1, models), reps),
        (f"score_columns_{n}", lambda: score_columns(cols, n, models), max(3, reps // 100)),
        ("risk_posterior_1", lambda: risk.calibrate(raw_risk, X_risk), reps),
    ):
        out[f"{key}_ms"], out[f"{key}_cpu_ms"] = median_ms(fn, k)
    if dump is not None:
        dump.write_bytes(pickle.dumps({"batch": score_columns(cols, n, models), "one": score_columns(one, 1, models)}))
    return out


def _same(a: dict, b: dict) -> list[str]:
    """Columns whose values differ (NaN equal to NaN, exact otherwise)."""
    bad = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            bad.append(key)
            continue
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                bad.append(key)
        elif list(x.tolist()) != list(y.tolist()):
            bad.append(key)
    return bad


def _run(src: Path, rows: int, reps: int, dump: Path, home: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    extra = []
    if home is not None:  # the home's stores, as `benchmarks.bench_serving_ab` gives its services
        env.update({"CLIENTLENS_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                    "BENTOML_HOME": str(home / "bentoml")})  # fmt: skip
        extra = ["--home", str(home)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_score_one", "--worker", "--rows", str(rows), "--reps", str(reps),
         "--dump", str(dump), "--models", str(MODELS), *extra],
        cwd=src, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"worker in {src} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    global MODELS
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="main", help="git revision to compare with")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=500, help="calls timed per round for one row (batch: reps/100)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", type=Path, default=MODELS)
    ap.add_argument("--home", type=Path, default=None, help="score a `bench_serving` home's champions instead")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    MODELS = args.models
    if args.worker:
        result = _worker(args.rows, args.reps, args.dump, args.home)
        print(json.dumps(result))
        return result
    if args.home is None and not MODELS.exists():
        print("training the tiny model set ...", file=sys.stderr)
        _train(MODELS)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.against], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        # The baseline may predate this script: run the worker from this tree against its modules.
        (base / "benchmarks" / "bench_score_one.py").write_text(Path(__file__).read_text())
        runs: dict[str, list[dict]] = {"this": [], args.against: []}
        for r in range(args.rounds):
            for label, src in (("this", ROOT), (args.against, base)):
                runs[label].append(_run(src, args.rows, args.reps, Path(tmp) / f"{label}.pkl", args.home))
                print(f"round {r + 1}/{args.rounds} {label}: {runs[label][-1]}", file=sys.stderr)
        a = pickle.loads((Path(tmp) / "this.pkl").read_bytes())
        b = pickle.loads((Path(tmp) / f"{args.against}.pkl").read_bytes())
        differ = {k: _same(a[k], b[k]) for k in ("one", "batch")}
    keys = [f"score_columns_{k}_{m}" for k in ("1", "1_churner", str(args.rows)) for m in ("ms", "cpu_ms")]
    keys += ["risk_posterior_1_ms", "risk_posterior_1_cpu_ms"]
    med = {lab: {k: float(np.median([x[k] for x in rs])) for k in keys} for lab, rs in runs.items()}
    result = {
        "machine": machine(),
        "against": args.against,
        "home": str(args.home) if args.home else None,
        "rows": args.rows,
        "rounds": args.rounds,
        "compiled": runs["this"][0]["compiled"],
        "churn_flagged": runs["this"][0]["churn_flagged"],
        "median_ms": med,
        "runs": runs,
        "outputs_differ": differ,
    }
    print(f"{'score_columns (median)':<34}{args.against:>12}{'this':>12}{'ratio':>8}")
    for k in keys:
        print(f"{k:<34}{med[args.against][k]:>12.3f}{med['this'][k]:>12.3f}{med[args.against][k] / med['this'][k]:>8.2f}")  # fmt: skip
    print(f"outputs differ: {differ}; compiled boosters: {result['compiled']}; churn-flagged in the batch: "
          f"{result['churn_flagged']}/{args.rows}; load {result['machine']['loadavg_1m']}")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_score_one.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
