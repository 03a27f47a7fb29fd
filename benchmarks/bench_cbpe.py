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

`--floor FEATURES RAW` (#17): the demo's churn model on a built feature folder (`clientlens simulate` +
`clientlens features`), 8 trials, no time limit (so the trial budget, not the load, decides the champion),
seed 42: the share of eligible customers tied at the lowest calibrated score, the share whose raw booster
probability is <= 1e-6 (the calibrator's logit clip), CBPE vs the realised AUC at the held-out date, CBPE on a
quarter-earlier book and on `latest.parquet`, test AUC / lift@10 / churn_driver accuracy against its naive
baseline. `--lambda-l2-min 1e-8` puts back the search bound before #17. Writes `benchmarks/out/cbpe_floor.json`.
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


def floor(features: Path, raw: Path, lambda_l2_min: float | None, trials: int = 8, seed: int = 42) -> dict:
    """The churn floor on one bank (see the module docstring)."""
    from core import metrics as M
    from core.tasks import TASKS
    from features.contract import read_truth
    from monitoring.drift import estimate_performance, reference_scores
    from training.spec import builtin_spec
    from training.train import fit_task

    churn = TASKS["churn"]
    col = churn.score_column()
    spec = builtin_spec("churn", features)
    if lambda_l2_min is not None:
        space = {**spec.tuning.space, "lambda_l2": (lambda_l2_min, 10.0)}
        spec = spec.model_copy(update={"tuning": spec.tuning.model_copy(update={"space": space})})
    panel = pd.read_parquet(features / "panel.parquet")
    t0 = time.perf_counter()
    r = fit_task(spec, panel, seed=seed, trials=trials, timeout=1e9, truth=read_truth(raw))
    reference = reference_scores(churn, r.reference)
    dates = sorted(panel["as_of"].unique())
    books = {
        f"held-out {str(dates[-1])[:10]}": panel[panel["as_of"] == dates[-1]],
        f"earlier {str(dates[-4])[:10]}": panel[panel["as_of"] == dates[-4]],
        "latest": pd.read_parquet(features / "latest.parquet"),
    }
    out: dict = {
        "params": {k: r.tuning.params[k] for k in ("learning_rate", "num_leaves", "min_child_samples", "lambda_l2")},
        "rounds": r.tuning.best_iteration,
        "seconds": time.perf_counter() - t0,
        "test": {k: r.metrics.get(k) for k in ("roc_auc", "lift_at_10", "churn_driver_accuracy", "churn_driver_n")},
        "driver_baseline": r.baseline.get("churn_driver_accuracy"),
        "books": {},
    }
    for name, book in books.items():
        frame = book[churn.eligibility.mask(book)].copy()
        frame[col] = r.model.predict_proba(frame)[:, 1]
        raw_p = r.model.raw_from_matrix(r.model.matrix(frame))
        raw_p = raw_p[:, 1] if raw_p.ndim == 2 else raw_p
        est = estimate_performance(frame, "churn", reference)
        assert est is not None
        p = frame[col].to_numpy()
        row = {
            "eligible": len(frame),
            "at_floor": float(np.mean(p == p.min())),
            "raw_below_1e-6": float(np.mean(raw_p <= 1e-6)),
            "cbpe": est["churn"]["roc_auc"],
            "scored_above_0.3": int((p > 0.3).sum()),
        }
        if "churn" in frame and frame["churn"].notna().all():
            row["realised"] = M.binary_metrics(frame["churn"].to_numpy(), p)["roc_auc"]
        out["books"][name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=4_000)
    ap.add_argument("--floor", nargs=2, type=Path, metavar=("FEATURES", "RAW"), default=None)
    ap.add_argument("--lambda-l2-min", type=float, default=None)
    args = ap.parse_args()
    if args.floor:
        features, raw = args.floor
        res = {"machine": machine(), **floor(features, raw, args.lambda_l2_min)}
        t, p = res["test"], res["params"]
        print(f"lr {p['learning_rate']:.3f}, {p['num_leaves']} leaves, lambda_l2 {p['lambda_l2']:.2g}, {res['rounds']} rounds; "
              f"test AUC {t['roc_auc']:.3f}, lift@10 {t['lift_at_10']:.2f}, churn_driver {t['churn_driver_accuracy']:.3f} "
              f"(naive {res['driver_baseline']:.3f}, n {t['churn_driver_n']:.0f}); load {res['machine']['loadavg_1m']}")  # fmt: skip
        for name, b in res["books"].items():
            real = f", realised {b['realised']:.3f}" if "realised" in b else ""
            print(
                f"| {name} | {b['eligible']} | {b['at_floor']:.1%} | {b['raw_below_1e-6']:.1%} | {b['scored_above_0.3']} | {b['cbpe']:.3f}{real} |"
            )
        dest = Path(__file__).parent / "out" / "cbpe_floor.json"
        dest.parent.mkdir(exist_ok=True)
        dest.write_text(json.dumps(res, indent=2, default=str))
        return
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
