"""Tuning quality vs budget (DESIGN §10, issue #15): the tuned model at the spec's default budget against a
long reference study (default 200 trials, no time limit), both through `fit_task` (cross-validated
objective, plain LightGBM as the first trial, the spec's final model: refit or bagged folds), on the same split seeds
and test rows; plain LightGBM (`baseline_lgbm_default`) beside them.

    uv run python -m benchmarks.bench_tuning [--specs german_credit telco_churn] [--seeds 0 1 2]
        [--reference-trials 200]

Prints a table and writes benchmarks/out/bench_tuning.json. Target, on every seed tried: the tuned
model within 0.002 test AUC of the reference at <= 25% of its time. Beside each gap, how much of it the
test rows alone can explain: a paired bootstrap of the test rows (the same resamples score both models)
gives the sd and 95% interval of the gap and the sd of each model's test AUC. Times are wall clock and
process CPU time of the whole `fit_task` (the CPU ratio is the fairer one on a shared machine); LightGBM runs
single-threaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.machine import machine
from training.data import read_source
from training.spec import SPECS_DIR, load_spec
from training.train import fit_task

OUT = Path(__file__).parent / "out" / "bench_tuning.json"


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


BOOTSTRAP_SAMPLES = 1000


def paired_bootstrap(y: np.ndarray, tuned: np.ndarray, ref: np.ndarray, samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """Test-row noise of the gap (reference − tuned AUC): the test rows resampled with replacement, the
    same resample scoring both models (seeded; resamples with one class skipped)."""
    rng = np.random.default_rng(0)
    t_auc, r_auc = [], []
    for _ in range(samples):
        i = rng.integers(0, len(y), len(y))
        if len(np.unique(y[i])) < 2:
            continue
        t_auc.append(roc_auc_score(y[i], tuned[i]))
        r_auc.append(roc_auc_score(y[i], ref[i]))
    t, r = np.asarray(t_auc), np.asarray(r_auc)
    gap = r - t
    return {
        "samples": len(gap),
        "test_rows": len(y),
        "positives": int(np.sum(y == 1)),
        "gap_sd": float(gap.std(ddof=1)),
        "gap_ci95": [float(np.quantile(gap, 0.025)), float(np.quantile(gap, 0.975))],
        "tuned_auc_sd": float(t.std(ddof=1)),
        "reference_auc_sd": float(r.std(ddof=1)),
    }


def positive_scores(result) -> np.ndarray:
    p = np.asarray(result.proba_test)
    return p[:, 1] if p.ndim == 2 else p


def one(spec, frame, seed: int, reference_trials: int, timeout: float | None = None) -> dict:
    # `timeout`: lift the spec's wall-clock limit so the tuned arm runs its whole trial budget on a loaded machine.
    tuned, tw, tc = timed(lambda: fit_task(spec, frame, seed=seed, timeout=timeout, threads=1))
    # timeout=None would mean "the spec's timeout" in fit_task: the reference has no time limit.
    ref, rw, rc = timed(lambda: fit_task(spec, frame, seed=seed, trials=reference_trials, timeout=1e9, threads=1))
    row = {
        "seed": seed,
        "plain_lgbm_auc": tuned.lgbm_default["roc_auc"],
        "tuned": {"trials": tuned.tuning.n_trials, "test_auc": tuned.metrics["roc_auc"], "cv_auc": tuned.tuning.best_value,
                  "wall_s": tw, "cpu_s": tc},
        "reference": {"trials": ref.tuning.n_trials, "test_auc": ref.metrics["roc_auc"], "cv_auc": ref.tuning.best_value,
                      "wall_s": rw, "cpu_s": rc},
    }  # fmt: skip
    row["gap_auc"] = row["reference"]["test_auc"] - row["tuned"]["test_auc"]
    assert tuned.y_test is not None and np.array_equal(tuned.y_test, ref.y_test)  # the same test rows
    y_test = np.asarray(tuned.y_test).astype(int)
    row["bootstrap"] = paired_bootstrap(y_test, positive_scores(tuned), positive_scores(ref))
    # the bootstrap resamples the scores the metrics scored: their full-sample AUCs equal the rows' test AUCs
    row["bootstrap"]["full_sample_auc"] = {
        name: float(roc_auc_score(y_test, positive_scores(fit))) for fit, name in ((tuned, "tuned"), (ref, "reference"))
    }
    row["cpu_ratio"] = tc / rc
    row["wall_ratio"] = tw / rw
    row["meets_target"] = bool(row["gap_auc"] <= 0.002 and row["cpu_ratio"] <= 0.25)
    row["load_1min_end"] = os.getloadavg()[0]
    return row


def main(argv: list[str] | None = None) -> dict:
    import optuna

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=["german_credit"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--reference-trials", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=None, help="the tuned arm's study timeout (default: the spec's)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(logging.WARNING)

    tables = []
    out = Path(args.out)
    for name in args.specs:
        spec = load_spec(SPECS_DIR / f"{name}.yaml")
        frame = read_source(spec)
        rows = []
        for seed in args.seeds:
            rows.append(one(spec, frame, seed, args.reference_trials, args.timeout))
            r = rows[-1]
            print(
                f"{name:<16} seed {seed}: tuned {r['tuned']['test_auc']:.4f} ({r['tuned']['trials']} trials, "
                f"{r['tuned']['cpu_s']:.0f} cpu s)  reference {r['reference']['test_auc']:.4f} "
                f"({r['reference']['trials']} trials, {r['reference']['cpu_s']:.0f} cpu s)  plain {r['plain_lgbm_auc']:.4f}  "
                f"gap {r['gap_auc']:+.4f} (bootstrap sd {r['bootstrap']['gap_sd']:.4f})  cpu ratio {r['cpu_ratio']:.2f}  meets {r['meets_target']}  load {r['load_1min_end']:.1f}",
                flush=True,
            )
            tables.append({"table": name, "budget": spec.tuning.model_dump(include={"trials", "timeout"}), **r})
            summary = {
                "rows": tables,
                "reference_trials": args.reference_trials,
                "target": "gap <= 0.002 AUC at <= 25% of the reference CPU time, on every seed",
                "meets_target_every_seed": all(t["meets_target"] for t in tables),
                "machine": machine(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": "uv run python -m benchmarks.bench_tuning " + " ".join(argv or []),
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(summary, indent=2, default=float))
    return summary


if __name__ == "__main__":
    main()
