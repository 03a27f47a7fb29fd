"""CBPE on a later period against the realised AUC: `python -m benchmarks.bench_cbpe`.

Why the churn estimate before labels misses the realised AUC three months on, measured as the
slow test `tests/monitoring/test_cbpe_simulated.py` builds its banks: CUSTOMERS x 15 months,
seed 5, a churn model (`fit_task`, 2 trials) trained on the panel's as-of dates but the last two,
then at each of the last two dates: CBPE on the eligible population (recalibrated on the
reference sample, as the drift report does) vs the realised AUC, plus the bootstrap SD of the
realised AUC (200 resamples) and the observed / expected churners among the lowest 80% of scores.

Cases: the label horizon (90 days, the default, vs 75) x the simulator's latent churn driver
(competitors' rates, `churn_rate_gap_coef` 0.8, the default story, vs 0).

Prints a table and writes `benchmarks/out/cbpe.json`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.machine import machine


def _case(raw: Path, work: Path, horizon: int) -> list[dict]:
    from core import metrics as M
    from core.tasks import TASKS
    from features.panel import build_panel
    from monitoring.drift import estimate_performance, reference_scores
    from training.spec import builtin_spec
    from training.train import fit_task

    churn = TASKS["churn"]
    col = churn.score_column()
    build_panel(raw, work, horizon_days=horizon)
    panel = pd.read_parquet(work / "panel.parquet")
    dates = sorted(panel["as_of"].unique())
    result = fit_task(builtin_spec("churn", work), panel[panel["as_of"].isin(dates[:-2])], trials=2)
    reference = reference_scores(churn, result.reference)
    rows = [{"date": "test " + str(dates[-3])[:10], "realised": result.metrics["roc_auc"], "cbpe": None}]
    rng = np.random.default_rng(0)
    for d in [dates[-2:-1], dates[-1:], dates[-2:]]:
        later = panel[panel["as_of"].isin(d)].copy()
        later[col] = result.model.predict_proba(later)[:, 1]
        estimates = estimate_performance(later, "churn", reference)
        assert estimates is not None  # the window holds churn's score column
        est = estimates["churn"]
        lab = later[later["churn"].notna()]
        y, p = lab["churn"].to_numpy(), lab[col].to_numpy()
        boot = [M.binary_metrics(y[i], p[i])["roc_auc"] for i in (rng.integers(0, len(y), len(y)) for _ in range(200))]
        low = p <= np.quantile(p, 0.8)
        rows.append(
            {
                "date": " + ".join(str(x)[:10] for x in d),
                "realised": M.binary_metrics(y, p)["roc_auc"],
                "cbpe": est["roc_auc"],
                "realised_sd": float(np.std(boot)),
                "positives": int(y.sum()),
                "churn_rate": float(y.mean()),
                "low_score_observed_over_expected": float(y[low].sum() / p[low].sum()),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=4_000)
    args = ap.parse_args()
    from features.simulate import SimParams, simulate

    out: dict = {"machine": machine(), "customers": args.customers, "cases": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for coef in (0.8, 0.0):
            raw = Path(tmp) / f"raw_{coef}"
            simulate(raw, customers=args.customers, months=15, seed=5, params=SimParams(churn_rate_gap_coef=coef))
            for horizon in (90, 75):
                rows = _case(raw, Path(tmp) / f"feats_{coef}_{horizon}", horizon)
                out["cases"].append({"rate_gap_coef": coef, "horizon_days": horizon, "rows": rows})
                for r in rows:
                    cbpe = "" if r["cbpe"] is None else f"{r['cbpe']:.3f}"
                    gap = "" if r["cbpe"] is None else f"{r['cbpe'] - r['realised']:+.3f}"
                    extra = (
                        f"{r['realised_sd']:.3f} | {r['positives']} | {r['low_score_observed_over_expected']:.2f}"
                        if "positives" in r
                        else " |  | "
                    )
                    print(f"| {coef} | {horizon} | {r['date']} | {r['realised']:.3f} | {cbpe} | {gap} | {extra} |")
    out["seconds"] = time.perf_counter() - t0
    dest = Path(__file__).parent / "out" / "cbpe.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2, default=str))
    print(f"{out['seconds']:.0f} s; wrote {dest}")


if __name__ == "__main__":
    main()
