"""Four-dimension classification on simulated data (issue #12): the three-class revealed risk against the
questionnaire, the hidden-aggressive ranking, and churn drivers against the simulator's recorded causes.

    uv run python -m benchmarks.bench_classify --customers 3000 --months 18 --seed 42 [--before-src DIR]

Runs the real CLI (`simulate`, `features`, `train risk --truth`, `train churn --truth`) in a scratch home
with the demo's budget (--trials 8 --timeout 40). With `--before-src` (a checkout of the previous commit),
`train risk` runs once more with that code on the SAME feature panel, for hidden_aggressive_auc before/after.
Prints a table and writes benchmarks/out/bench_classify_<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parent.parent


def _cli(args: list[str], home: Path, cwd: Path = ROOT) -> dict:
    env = {**os.environ, "CLIENTLENS_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "clientlens", *args, "--json"], capture_output=True, text=True, env=env, cwd=cwd
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"clientlens {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--months", type=int, default=18)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--before-src", default=None, help="checkout of the previous commit (hidden AUC before)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_classify_"))
    raw, feats = work / "raw", work / "features"
    budget = ["--trials", "8", "--timeout", "40", "--seed", str(args.seed)]
    t0 = time.perf_counter()
    _cli(["simulate", "--customers", str(args.customers), "--months", str(args.months), "--seed", str(args.seed),
          "--out", str(raw)], work / "home")  # fmt: skip
    _cli(["features", "--raw", str(raw), "--out", str(feats), "--workers", "1"], work / "home")
    truth = ["--truth", str(raw / "truth.parquet")]
    risk = _cli(["train", "risk", "--features", str(feats), *budget, *truth], work / "home")
    churn = _cli(["train", "churn", "--features", str(feats), *budget, *truth], work / "home")
    before = None
    if args.before_src:
        before = _cli(["train", "risk", "--features", str(feats), *budget, *truth], work / "home_before",
                      cwd=Path(args.before_src))  # fmt: skip
    m, b = risk["metrics"], risk["baseline"]
    rows = [
        ("latent_risk_accuracy", m.get("latent_risk_accuracy"), b.get("latent_risk_accuracy"), "questionnaire"),
        ("latent_risk_macro_f1", m.get("latent_risk_macro_f1"), b.get("latent_risk_macro_f1"), "questionnaire"),
        ("latent_risk_auc_ovr", m.get("latent_risk_auc_ovr"), b.get("latent_risk_auc_ovr"), "questionnaire"),
        ("hidden_aggressive_auc", m.get("hidden_aggressive_auc"), b.get("hidden_aggressive_auc"), "365d heuristic"),
        (
            "hidden_aggressive_auc (before)",
            (before or {}).get("metrics", {}).get("hidden_aggressive_auc"),
            None,
            "previous commit",
        ),
        (
            "churn_driver_accuracy",
            churn["metrics"].get("churn_driver_accuracy"),
            churn["baseline"].get("churn_driver_accuracy"),
            "most common cause",
        ),
    ]
    print(f"{'metric':34} {'clientlens':>10} {'baseline':>10}  baseline is")
    for name, v, base, what in rows:
        fmt = lambda x: f"{x:10.4f}" if isinstance(x, float) else f"{'-':>10}"  # noqa: E731
        print(f"{name:34} {fmt(v)} {fmt(base)}  {what}")
    result = {
        "machine": machine(),
        "args": vars(args),
        "seconds": round(time.perf_counter() - t0, 1),
        "risk": {"metrics": m, "baseline": b},
        "churn": {"metrics": churn["metrics"], "baseline": churn["baseline"], "notes": churn.get("notes")},
        "before_risk": before and {"metrics": before["metrics"], "baseline": before["baseline"]},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"bench_classify_{args.customers}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out} ({result['seconds']} s)")
    return result


if __name__ == "__main__":
    main()
