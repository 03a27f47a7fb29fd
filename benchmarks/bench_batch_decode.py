"""Where the CPU time of one `POST /score` batch goes, in process (#18 "JSON batches of 1,000"):

    nice -n 10 .venv/bin/python -m benchmarks.bench_batch_decode --home /tmp/json6/home [--rows 1000 --reps 9]

`--home` is a `benchmarks.bench_serving` home (its champions as the service loads them, compiled,
and its feature table). Times, as CPU milliseconds of this thread (`time.thread_time`, so other
processes on a loaded machine inflate them less than wall time; median of `--reps`; the log's write as
CPU of the whole process, which pyarrow's own threads share), each step the
service runs for one JSON body of `--rows` customers: the msgspec decode to columns
(`serving.fast_json`), `training.scoring.score_columns` and its parts (each model's matrix,
prediction and calibration, the churn drivers, the policy's ranked actions), the response items
and their JSON, and the inference log's append. To compare with another tree, run this file with
that tree first on `PYTHONPATH` (e.g. a `git archive main` export). Prints a table and writes
benchmarks/out/bench_batch_decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import median_ms

OUT = Path(__file__).parent / "out"


def cpu_ms(fn, reps: int) -> float:
    return median_ms(fn, reps, clock=time.thread_time)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_batch_decode", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--home", type=Path, required=True, help="a `benchmarks.bench_serving` home (trained)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args(argv)
    home = args.home
    log_dir = Path(tempfile.mkdtemp(prefix="bench-batch-decode-log-"))
    os.environ.update({
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": str(log_dir),
    })  # fmt: skip

    import pandas as pd

    from features.registry import FEATURES
    from serving import service
    from serving.fast_json import FastRequests
    from serving.inference_log import InferenceLogWriter
    from serving.models_store import load_model_set
    from tests.serving.champions import to_request_rows
    from training import scoring
    from training.policy import arbitrate
    from training.segments import DEFAULT_DRIVERS, churn_drivers

    frame = pd.read_parquet(home / "work" / "features" / "latest.parquet").reset_index(drop=True).head(args.rows)
    n = len(frame)
    body = json.dumps({"customers": to_request_rows(frame)}).encode()
    models = load_model_set()
    cores = models.cores
    fast = FastRequests(FEATURES, max(n, 10_000))
    decoded = fast.decode(body)
    assert decoded is not None, "the fast path declined a valid body"
    cols = decoded.columns
    out = scoring.score_columns(cols, n, cores)
    reps = args.reps
    steps: dict[str, float] = {}
    steps["decode (msgspec to columns)"] = cpu_ms(lambda: fast.decode(body), reps)
    steps["score_columns"] = cpu_ms(lambda: scoring.score_columns(cols, n, cores), reps)
    for name in ("tier", "churn", "risk"):
        m = cores[name]
        X = m.matrix(cols)
        steps[f"  {name}: matrix"] = cpu_ms(lambda m=m: m.matrix(cols), reps)
        steps[f"  {name}: booster"] = cpu_ms(lambda m=m, X=X: m.raw_from_matrix(X), reps)
        raw = m.raw_from_matrix(X)
        steps[f"  {name}: calibration"] = cpu_ms(lambda m=m, X=X, raw=raw: m.calibrate(raw, X), reps)
    churn = cores["churn"]
    flagged = np.asarray(out["churn"], dtype=bool)
    Xf = churn.matrix(cols)[flagged]
    steps[f"  churn drivers ({int(flagged.sum())} flagged)"] = cpu_ms(
        lambda: churn_drivers(churn, Xf, DEFAULT_DRIVERS), reps
    )
    arb_cols = {**cols, **out}
    try:  # since #18 (json6) `arbitrate` writes the actions' JSON itself
        arbitrate(arb_cols, n, as_json=True)
        steps["  policy: ranked actions as JSON (arbitrate)"] = cpu_ms(
            lambda: arbitrate(arb_cols, n, as_json=True), reps
        )
    except TypeError:
        steps["  policy: ranked actions (arbitrate)"] = cpu_ms(lambda: arbitrate(arb_cols, n), reps)
        actions = arbitrate(arb_cols, n)["actions"]
        steps["  policy: actions as JSON"] = cpu_ms(lambda: [json.dumps(a) for a in actions], reps)
    ids = decoded.ids.tolist()
    steps["response items (_results)"] = cpu_ms(lambda: service._results(ids, out, False), reps)
    items = service._results(ids, out, False)
    payload = {"request_id": "0" * 32, "versions": models.versions, "results": items}
    steps["response JSON"] = cpu_ms(lambda: service._json(payload), reps)
    log = InferenceLogWriter(log_dir, flush_seconds=3600, flush_rows=10**9)
    outputs = {c: v for c, v in out.items() if not c.startswith("reasons_")}

    def append() -> None:
        log.append_scored(ts=np.datetime64(time.time_ns(), "ns"), request_id="0" * 32, customer_ids=decoded.ids,
                          features=cols, outputs=outputs, versions=models.versions)  # fmt: skip

    steps["inference log append"] = cpu_ms(append, reps)
    log.flush()

    per_part = max(1, 20_000 // n)  # the writer's part: `Settings.log_flush_rows` (20,000) rows at a time

    def append_and_flush() -> None:
        for _ in range(per_part):
            append()
        log.flush()

    # The writer's share of one request: a 20,000-row part merged and written, per request. Process CPU:
    # pyarrow converts big pandas frames (the writer's path before #18's `log_table`) on its own threads.
    steps["inference log write (writer, all threads)"] = (
        median_ms(append_and_flush, max(3, reps // 3), clock=time.process_time) / per_part
    )
    log.close()
    total = sum(v for k, v in steps.items() if not k.startswith("  "))
    print(f"{'step (CPU ms per request of ' + str(n) + ' customers)':<52}{'ms':>10}")
    for k, v in steps.items():
        print(f"{k:<52}{v:>10.2f}")
    print(f"{'total (top-level steps)':<52}{total:>10.2f}")
    print(f"body {len(body) / 1e6:.2f} MB; load average {os.getloadavg()[0]:.2f}")
    OUT.mkdir(exist_ok=True)
    result = {"rows": n, "body_bytes": len(body), "steps_cpu_ms": steps, "total_cpu_ms": total,
              "loadavg_1m": os.getloadavg()[0], "argv": sys.argv[1:]}  # fmt: skip
    (OUT / "bench_batch_decode.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
