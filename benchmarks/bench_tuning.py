"""Tuning quality vs budget (DESIGN §10): default LightGBM vs the tuned model (default budget) vs a long
reference study, all on the same BankChurners split (seed 0), scored on the same test rows.

    uv run python -m benchmarks.bench_tuning [--reference-trials 200] [--spec training/specs/bankchurners.yaml]

Prints a table and writes benchmarks/out/bench_tuning.json. Target: the tuned model within 0.002
test AUC of the reference at <= 25% of its time. Times are wall clock and process CPU time (the CPU
ratio is the fairer one on a shared machine). LightGBM runs single-threaded in all three.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score

from benchmarks.machine import machine
from training.data import prepare, read_source, split
from training.model import TabularModel
from training.spec import SPECS_DIR, load_spec
from training.tune import datasets, fit_default, tune

OUT = Path(__file__).parent / "out" / "bench_tuning.json"


def main(argv: list[str] | None = None) -> dict:
    import optuna

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(SPECS_DIR / "bankchurners.yaml"))
    ap.add_argument("--reference-trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(logging.WARNING)

    spec = load_spec(args.spec)
    prep = prepare(read_source(spec), spec)
    sp = split(prep, args.seed)
    core = TabularModel(
        task=spec.name,
        kind=spec.target.kind,
        features=prep.features,
        categories=prep.categories,
        booster=None,
        calibrator=None,
        classes=prep.classes,
    )
    X = core.matrix(prep.X)
    cat_idx = [prep.features.index(c) for c in prep.categorical]
    dtrain, dvalid = datasets(
        X[sp.train], prep.y[sp.train], None, X[sp.valid], prep.y[sp.valid], None, cat_idx, prep.features
    )
    X_test, y_test = X[sp.test], prep.y[sp.test]

    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    rows = {}
    booster, wall, cpu = timed(lambda: fit_default("binary", 2, dtrain, dvalid, seed=args.seed, threads=1))
    rows["default LightGBM"] = {
        "trials": 1,
        "test_auc": roc_auc_score(y_test, booster.predict(X_test)),
        "wall_s": wall,
        "cpu_s": cpu,
    }
    budget = spec.tuning
    for label, trials, timeout in (
        ("tuned (default budget)", budget.trials, budget.timeout),
        (f"reference ({args.reference_trials} trials)", args.reference_trials, None),
    ):
        res, wall, cpu = timed(
            lambda t=trials, to=timeout: tune(
                "binary",
                2,
                dtrain,
                dvalid,
                trials=t,
                timeout=to,
                seed=args.seed,
                threads=1,
                early_stopping_rounds=budget.early_stopping_rounds,
                max_rounds=budget.max_rounds,
            )
        )
        rows[label] = {
            "trials": res.n_trials,
            "pruned": res.n_pruned,
            "valid_auc": res.best_value,
            "test_auc": roc_auc_score(y_test, res.booster.predict(X_test)),
            "wall_s": wall,
            "cpu_s": cpu,
        }
    ref = rows[f"reference ({args.reference_trials} trials)"]
    tuned = rows["tuned (default budget)"]
    summary = {
        "dataset": spec.name,
        "split": sp.describe(),
        "rows": rows,
        "gap_auc_tuned_vs_reference": ref["test_auc"] - tuned["test_auc"],
        "wall_ratio_tuned_vs_reference": tuned["wall_s"] / ref["wall_s"],
        "cpu_ratio_tuned_vs_reference": tuned["cpu_s"] / ref["cpu_s"],
        "gap_auc_default_vs_reference": ref["test_auc"] - rows["default LightGBM"]["test_auc"],
        "target": "gap <= 0.002 AUC at <= 25% of the reference time",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "uv run python -m benchmarks.bench_tuning",
    }
    summary["meets_target"] = bool(
        summary["gap_auc_tuned_vs_reference"] <= 0.002 and summary["cpu_ratio_tuned_vs_reference"] <= 0.25
    )
    print(f"{'model':<28}{'trials':>7}{'pruned':>7}{'test AUC':>10}{'wall s':>9}{'cpu s':>9}")
    for k, r in rows.items():
        print(
            f"{k:<28}{r['trials']:>7}{r.get('pruned', 0):>7}{r['test_auc']:>10.4f}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}"
        )
    print(
        f"gap tuned vs reference: {summary['gap_auc_tuned_vs_reference']:+.4f} AUC; "
        f"time ratio wall {summary['wall_ratio_tuned_vs_reference']:.2f}, cpu {summary['cpu_ratio_tuned_vs_reference']:.2f}; "
        f"meets target: {summary['meets_target']}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=float))
    return summary


if __name__ == "__main__":
    main()
