"""Tier model vs persistence, boosted from the transition prior or not (issue #15 item 5).

    python -m benchmarks.bench_tier --features DIR [--variants prior,none] [--trials 8] [--timeout 40] [--seed 42]

`DIR` holds `panel.parquet` (`clientlens simulate` then `clientlens features`). `prior` is the shipped
tier spec (`boost_from_baseline` from persistence, `prior_strength` from the spec, or `--strength`);
`none` the same spec boosted from a constant. Prints one line per variant (macro F1, upgrade AUC, log
loss against persistence on the same test rows, and how many tier changes the model predicted and got
right) and writes benchmarks/out/bench_tier_<folder>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.machine import machine
from training.data import read_source
from training.spec import builtin_spec
from training.train import fit_task


def run(features: Path, variant: str, trials: int, timeout: float, seed: int, strength: float | None) -> dict:
    spec = builtin_spec("tier", features)
    update: dict = {"boost_from_baseline": variant == "prior"}
    if strength is not None:
        update["prior_strength"] = strength
    spec = spec.model_copy(update=update)
    started = time.perf_counter()
    r = fit_task(spec, read_source(spec), seed=seed, trials=trials, timeout=timeout, threads=1)
    assert r.y_test is not None and r.baseline_test is not None and r.proba_test is not None  # set by fit_task
    y, current = r.y_test.astype(int), r.baseline_test.argmax(axis=1)  # persistence predicts the current tier
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
    a = ap.parse_args()
    rows = [run(a.features, v, a.trials, a.timeout, a.seed, a.strength) for v in a.variants.split(",")]
    print("| variant | macro F1 model / persistence | upgrade AUC | log loss | changes: true / predicted / right |")
    print("|---|---|---|---|---|")
    for r in rows:
        m, b = r["model"], r["persistence"]
        print(
            f"| {r['variant']} | {m['macro_f1']:.4f} / {b['macro_f1']:.4f} | {m['upgrade_auc']:.4f} | "
            f"{m['log_loss']:.4f} / {b['log_loss']:.4f} | {r['changes']} / {r['predicted_changes']} / {r['right_changes']} |"
        )
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_tier_{a.features.name}.json").write_text(
        json.dumps({"machine": machine(), "args": {k: str(v) for k, v in vars(a).items()}, "runs": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
