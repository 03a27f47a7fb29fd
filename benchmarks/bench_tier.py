"""Tier model vs persistence, boosted from the transition prior or not (issue #15 item 5).

    python -m benchmarks.bench_tier --features DIR [--variants prior,none] [--trials 8] [--timeout 40] [--seed 42] [--bootstrap 1000]

`DIR` holds `panel.parquet` (`clientlens simulate` then `clientlens features`). `prior` is the shipped
tier spec (`boost_from_baseline` from persistence, `prior_strength` from the spec, or `--strength`);
`none` the same spec boosted from a constant. Prints one line per variant (macro F1, upgrade AUC, log
loss against persistence on the same test rows, and how many tier changes the model predicted and got
right) and writes benchmarks/out/bench_tier_<folder>_s<seed>.json (<folder>: DIR, or its parent if DIR is `features`).

Upgrade AUC rests on the few customers whose tier rises on the one test date (5-16 at 3-4k customers),
so each line also gives a 95% bootstrap interval of the test rows (`--bootstrap` resamples, the same
resamples for the model and persistence; macro F1's is of the model's margin over persistence), the
number of upgrades, and the AUC of the uncalibrated scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine
from core import metrics as M
from training.data import read_source
from training.spec import builtin_spec
from training.train import fit_task


def bootstrap(current: np.ndarray, y: np.ndarray, model: np.ndarray, base: np.ndarray, samples: int, seed: int) -> dict:
    """95% percentile intervals over `samples` resamples of the test rows: upgrade AUC of the model and of
    persistence, and the model's macro F1 minus persistence's (resamples with no upgrade are skipped)."""
    rng = np.random.default_rng(seed)
    auc, base_auc, f1_gap = [], [], []
    for _ in range(samples):
        i = rng.integers(0, len(y), len(y))
        a = M.upgrade_auc(current[i], y[i], model[i])
        if not np.isfinite(a):
            continue
        auc.append(a)
        base_auc.append(M.upgrade_auc(current[i], y[i], base[i]))
        f1 = M.task_metrics("multiclass", y[i], model[i], None)["macro_f1"]
        f1_gap.append(f1 - M.task_metrics("multiclass", y[i], base[i], None)["macro_f1"])

    def ci(v: list[float]) -> list[float]:
        return [round(float(np.quantile(v, 0.025)), 4), round(float(np.quantile(v, 0.975)), 4)]

    return {"upgrade_auc": ci(auc), "persistence_upgrade_auc": ci(base_auc), "macro_f1_minus_persistence": ci(f1_gap)}


def run(
    features: Path, variant: str, trials: int, timeout: float, seed: int, strength: float | None, samples: int
) -> dict:
    spec = builtin_spec("tier", features)
    update: dict = {"boost_from_baseline": variant == "prior"}
    if strength is not None:
        update["prior_strength"] = strength
    spec = spec.model_copy(update=update)
    started = time.perf_counter()
    r = fit_task(spec, read_source(spec), seed=seed, trials=trials, timeout=timeout, threads=1)
    assert r.y_test is not None and r.baseline_test is not None and r.proba_test is not None  # set by fit_task
    y, current = r.y_test.astype(int), r.baseline_test.argmax(axis=1)  # persistence predicts the current tier
    lookup = {c: i for i, c in enumerate(r.model.classes or [])}
    tier = np.array([lookup.get(str(v), -1) for v in r.holdout["tier"]])  # the current tier, as upgrade_auc reads it
    pred = r.proba_test.argmax(axis=1)
    return {
        "variant": variant,
        "prior_strength": spec.prior_strength if variant == "prior" else None,
        "model": r.metrics,
        "persistence": r.baseline,
        "test_rows": int(len(y)),
        "changes": int((y != current).sum()),
        "predicted_changes": int((pred != current).sum()),
        "right_changes": int(((pred != current) & (pred == y)).sum()),
        "upgrades": int(((y > tier) & (tier >= 0)).sum()),
        "upgrade_auc_uncalibrated": M.upgrade_auc(tier, y, r.raw_test) if r.raw_test is not None else None,
        "ci95": bootstrap(tier, y, r.proba_test, r.baseline_test, samples, seed) if samples else None,
        "best_iteration": r.tuning.best_iteration,
        "trials": len(r.tuning.history) if r.tuning.history else trials,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--variants", default="prior,none")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=40)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--strength", type=float, default=None)
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% intervals (0: none)")
    a = ap.parse_args()
    rows = [run(a.features, v, a.trials, a.timeout, a.seed, a.strength, a.bootstrap) for v in a.variants.split(",")]
    print(
        "| variant | macro F1 model / persistence (CI of the gap) | upgrade AUC model (CI) / persistence | "
        "uncalibrated | upgrades | log loss | changes: true / predicted / right |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        m, b, ci = r["model"], r["persistence"], r["ci95"] or {}
        gap = ci.get("macro_f1_minus_persistence", ["-", "-"])
        auc = ci.get("upgrade_auc", ["-", "-"])
        print(
            f"| {r['variant']} | {m['macro_f1']:.4f} / {b['macro_f1']:.4f} ({gap[0]} to {gap[1]}) | "
            f"{m['upgrade_auc']:.4f} ({auc[0]}-{auc[1]}) / {b['upgrade_auc']:.4f} | "
            f"{r['upgrade_auc_uncalibrated']:.4f} | {r['upgrades']} | {m['log_loss']:.4f} / {b['log_loss']:.4f} | "
            f"{r['changes']} / {r['predicted_changes']} / {r['right_changes']} |"
        )
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    name = a.features.name if a.features.name != "features" else a.features.parent.name
    (out / f"bench_tier_{name}_s{a.seed}.json").write_text(
        json.dumps({"machine": machine(), "args": {k: str(v) for k, v in vars(a).items()}, "runs": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
