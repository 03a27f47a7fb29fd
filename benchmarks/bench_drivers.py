"""churn_driver from path (Saabas) attributions vs TreeSHAP: `python -m benchmarks.bench_drivers --home DIR`.

On a clientlens home with a churn champion (e.g. after `make demo`) and its feature panel and simulator
truth, `training.segments.churn_drivers` three ways: `path` (path attributions only, `exact_margin` 0),
`hybrid` (the default: TreeSHAP re-votes rows within `exact_margin` of flipping) and `treeshap`
(TreeSHAP for every row, `exact_margin` inf); TreeSHAP is `training.treeshap`'s per-leaf tables. The
references use LightGBM `pred_contrib` itself: `pred_contrib` (its family vote for every row, as before
#18) and `hybrid_pred_contrib` (the hybrid with `pred_contrib` for the re-vote: main's code before the
tables). Measured: on the champion's flagged customers (P(churn) >= its threshold) on the panel's last
date, each one's agreement with `pred_contrib`, the hybrids' agreement with each other, the share re-voted
and the cost per customer; and `churn_driver_accuracy` as training defines it (true
churners with a recorded cause among the top 10% by P(churn)) against the constant baseline, on the last
labelled date (the held-out test date) and on every labelled date.

Prints a table and writes `benchmarks/out/drivers.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def accuracy(drivers: np.ndarray, cause: np.ndarray) -> float:
    return float(np.mean(drivers == cause)) if len(cause) else float("nan")


def reference_drivers(core, X: np.ndarray, config) -> np.ndarray:
    """`training.segments.churn_drivers` with LightGBM's `pred_contrib` for the TreeSHAP re-vote."""
    from core.tasks import CHURN_DRIVERS
    from training.model import group_columns
    from training.segments import _family_groups, _vote

    names = [*CHURN_DRIVERS]
    other = names.index("other")
    groups = _family_groups(config, core.features)
    best, top, runner_up = _vote(core.grouped_contributions(X, groups, len(names)), other)
    m, bar = config.exact_margin, config.min_contribution
    close = (np.abs(top - bar) < m) | ((top > bar - m) & (top - runner_up < m))
    if close.any():
        best[close], top[close], _ = _vote(group_columns(core.contributions(X[close]), groups, len(names)), other)
    return np.asarray(names, dtype=object)[np.where(top > bar, best, other)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_drivers", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a clientlens home with a churn champion")
    parser.add_argument("--panel", type=Path, help="feature panel (default HOME/features/panel.parquet)")
    parser.add_argument("--truth", type=Path, help="simulator truth (default HOME/demo/raw/truth.parquet)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved timing repetitions of each way")
    args = parser.parse_args(argv)
    home = args.home
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    os.environ.setdefault("CLIENTLENS_HOME", str(home))
    import pandas as pd

    from core import tasks as T
    from training.registry import load_model
    from training.segments import DEFAULT_DRIVERS, churn_drivers, prepare_drivers

    core, info = load_model("churn", "champion")
    panel = pd.read_parquet(args.panel or home / "features" / "panel.parquet")
    truth = pd.read_parquet(args.truth or home / "demo" / "raw" / "truth.parquet")
    label = T.CHURN.label
    cause_of = truth.drop_duplicates("customer_id").set_index("customer_id")[T.CHURN_CAUSE_COLUMN]
    result: dict = {
        "command": "uv run python -m benchmarks.bench_drivers " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "churn_version": info["version"],
        "trees": int(core.booster.num_trees()),
    }
    # Agreement on the customers the service names a driver for: flagged ones on the last date.
    last = panel[panel["as_of"] == panel["as_of"].max()]
    X = core.matrix(last)
    p = core.proba_from_matrix(X)[:, 1]
    Xf = X[p >= core.thresholds.get("positive", 0.5)]
    configs = {
        "path": DEFAULT_DRIVERS.model_copy(update={"exact_margin": 0.0}),
        "hybrid": DEFAULT_DRIVERS,
        "treeshap": DEFAULT_DRIVERS.model_copy(update={"exact_margin": float("inf")}),
    }
    _, build = _timed(prepare_drivers, core)  # the per-leaf tables, once (serving does it at model load)
    churn_drivers(core, Xf[:2])
    runs = {
        **{name: (churn_drivers, config) for name, config in configs.items()},
        "hybrid_pred_contrib": (reference_drivers, DEFAULT_DRIVERS),
        "pred_contrib": (reference_drivers, configs["treeshap"]),
    }
    named, times = {}, {name: [] for name in runs}
    for _ in range(args.reps):  # interleaved, so that each way sees the same load; the median is reported
        for name, (fn, config) in runs.items():
            named[name], elapsed = _timed(fn, core, Xf, config)
            times[name].append(elapsed)
    seconds = {name: float(np.median(t)) for name, t in times.items()}
    everything = configs["treeshap"]
    result["flagged"] = {
        "as_of": str(last["as_of"].iloc[0]),
        "n": len(Xf),
        "exact_margin": DEFAULT_DRIVERS.exact_margin,
        "table_build_seconds": build,
        "reps": args.reps,
        **{
            f"agreement_{k}": float(np.mean(named[k] == named["pred_contrib"]))
            for k in (*configs, "hybrid_pred_contrib")
        },
        "hybrid_equals_hybrid_pred_contrib": float(np.mean(named["hybrid"] == named["hybrid_pred_contrib"])),
        **{f"{k}_ms_per_customer": 1000 * seconds[k] / max(1, len(Xf)) for k in named},
    }
    # churn_driver_accuracy as training defines it, on the last labelled date and on every labelled date.
    labelled = panel[panel[label].notna()]
    for name, rows in (("last_labelled_date", labelled[labelled["as_of"] == labelled["as_of"].max()]),
                       ("all_labelled_dates", labelled)):  # fmt: skip
        Xr = core.matrix(rows)
        pr = core.proba_from_matrix(Xr)[:, 1]
        cause = rows["customer_id"].map(cause_of).to_numpy(dtype=object)
        pick = (pr >= np.quantile(pr, 0.9)) & (rows[label].to_numpy() == 1) & pd.notna(cause)
        truth_cause = cause[pick].astype(str)
        common = pd.Series(truth_cause).value_counts().idxmax() if len(truth_cause) else None
        d = {k: churn_drivers(core, Xr[pick], config) for k, config in configs.items()}
        d["hybrid_pred_contrib"] = reference_drivers(core, Xr[pick], DEFAULT_DRIVERS)
        d["pred_contrib"] = reference_drivers(core, Xr[pick], everything)
        result[name] = {
            "n": int(pick.sum()),
            **{f"churn_driver_accuracy_{k}": accuracy(v, truth_cause) for k, v in d.items()},
            "baseline_always": common,
            "churn_driver_accuracy_baseline": accuracy(np.full(len(truth_cause), common, dtype=object), truth_cause),
            **{f"agreement_{k}": float(np.mean(d[k] == d["pred_contrib"])) for k in ("path", "hybrid", "treeshap")},
            "hybrid_equals_hybrid_pred_contrib": float(np.mean(d["hybrid"] == d["hybrid_pred_contrib"])),
        }
    result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "drivers.json").write_text(json.dumps(result, indent=2))
    f = result["flagged"]
    print(
        f"churn champion v{result['churn_version']} ({result['trees']} trees); load {result['machine']['loadavg_1m']}"
    )
    print(f"flagged on {f['as_of']}: {f['n']}; agreement with pred_contrib: path {f['agreement_path']:.3f}, "
          f"hybrid {f['agreement_hybrid']:.3f} (exact_margin {f['exact_margin']}), treeshap tables "
          f"{f['agreement_treeshap']:.3f}; hybrid = hybrid on pred_contrib for "
          f"{f['hybrid_equals_hybrid_pred_contrib']:.3f}; tables built in {f['table_build_seconds']:.2f} s")  # fmt: skip
    print(
        f"ms per flagged customer (median of {args.reps} interleaved): "
        + ", ".join(f"{k} {f[f'{k}_ms_per_customer']:.3f}" for k in named)
    )
    print(f"{'churn_driver_accuracy':<22}{'n':>6}{'path':>8}{'hybrid':>8}{'TreeSHAP':>10}{'baseline':>10}"
          f"{'agree path':>12}{'agree hybrid':>14}{'hybrid=main':>13}")  # fmt: skip
    for name in ("last_labelled_date", "all_labelled_dates"):
        r = result[name]
        print(f"{name:<22}{r['n']:>6}{r['churn_driver_accuracy_path']:>8.3f}{r['churn_driver_accuracy_hybrid']:>8.3f}"
              f"{r['churn_driver_accuracy_pred_contrib']:>10.3f}{r['churn_driver_accuracy_baseline']:>10.3f}"
              f"{r['agreement_path']:>12.3f}{r['agreement_hybrid']:>14.3f}"
              f"{r['hybrid_equals_hybrid_pred_contrib']:>13.3f}")  # fmt: skip
    print(f"wrote {OUT_DIR / 'drivers.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
