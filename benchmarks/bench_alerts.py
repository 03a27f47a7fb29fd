"""Demand alerts: speed over a bank's last 30 days, and quality against the simulator's life events.

    python -m benchmarks.bench_alerts speed   --raw DIR            # e.g. 100,000 customers x 24 months
    python -m benchmarks.bench_alerts quality --raw DIR [--raw DIR2 ...]

- `speed`: `clientlens alerts --raw DIR --since <last day - 29> --out FILE --json` as a child
  process (the command a daily job runs, imports included), wall time and peak RSS; target < 30 s
  at 100,000 customers.
- `quality`: the default detector and the naive rule (raw window count >= N, same windows and
  episode rule) over every day with a full baseline, scored by
  `monitoring.alert_quality.life_event_quality` (precision, recall, median lead). The naive
  rule is run per page (each topic signal counts its own page: "3 mortgage views in 30 days",
  N = 2, 3, 4) and on the detector's pooled pages (N = 3, 4), so the gain of the own-history
  test is shown apart from the gain of pooling a need's pages.

Prints a table and writes `benchmarks/out/alerts-<mode>.json`.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"
NAIVE = (2, 3, 4)
NAIVE_POOLED = (3, 4)


def speed(raw: Path, days: int = 30) -> dict:
    from features.panel import data_dates, raw_paths

    paths = raw_paths(raw)
    _, last = data_dates({t: paths[t] for t in ("transactions", "events") if t in paths})
    since = (last - pd.Timedelta(days=days - 1)).date().isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "alerts.parquet"
        cmd = [
            sys.executable,
            "-c",
            "from clientlens.cli import main; main()",
            "alerts",
            "--raw",
            str(raw),
            "--since",
            since,
        ]
        cmd += ["--out", str(out), "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = usage.ru_maxrss / 1024
    return {
        "customers": summary["customers"],
        "since": since,
        "until": summary["until"],
        "alerts": summary["alerts"],
        "wall_seconds": round(wall, 2),
        "scan_seconds": summary["seconds"],
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),  # the child's CPU: less sensitive to load
        "peak_rss_mib": round(rss),
        "target_seconds": 30,
        "met": wall < 30,
    }


def quality(raw: Path) -> dict:
    from features.alerts import PER_PAGE_SOURCES, AlertConfig, alerts_from_raw, detect_alerts
    from features.contract import read_truth
    from monitoring.alert_quality import life_event_quality

    config = AlertConfig()
    truth = read_truth(raw)
    from features.panel import data_dates, raw_paths

    first, _ = data_dates(raw_paths(raw))
    since = first + pd.Timedelta(days=config.window_days + config.baseline_days)
    rows = {}
    t0 = time.perf_counter()
    scan = alerts_from_raw(raw, since, None, config)
    rows["own history (default)"] = life_event_quality(scan.alerts, truth, since, scan.data_end).as_dict()
    rows["own history (default)"]["seconds"] = round(time.perf_counter() - t0, 1)
    naive_rules = [(f"naive, per page >= {n}", n, PER_PAGE_SOURCES) for n in NAIVE]
    naive_rules += [(f"naive, pooled pages >= {n}", n, None) for n in NAIVE_POOLED]
    for name, n, sources in naive_rules:
        detector = functools.partial(detect_alerts, naive_count=n, sources=sources)
        naive = alerts_from_raw(raw, since, None, config, detector=detector)
        rows[name] = life_event_quality(naive.alerts, truth, since, naive.data_end).as_dict()
    return {"raw": str(raw), "customers": len(truth), "since": since.date().isoformat(), "rules": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["speed", "quality"])
    ap.add_argument("--raw", type=Path, action="append", required=True)
    args = ap.parse_args(argv)
    result: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "runs": []}
    for raw in args.raw:
        run = speed(raw) if args.mode == "speed" else quality(raw)
        result["runs"].append(run)
        if args.mode == "speed":
            print(f"{run['customers']:>8,} customers {run['since']}..{run['until']}: {run['wall_seconds']} s wall "
                  f"(scan {run['scan_seconds']} s, CPU {run['cpu_seconds']} s), {run['alerts']:,} alerts, peak RSS {run['peak_rss_mib']} MiB, "
                  f"target < 30 s: {'met' if run['met'] else 'NOT met'}")  # fmt: skip
        else:
            print(f"{raw} ({run['customers']:,} customers, alerts from {run['since']})")
            print(
                f"  {'rule':28s} {'alerts':>7s} {'prec':>6s} {'events':>7s} {'found':>6s} {'recall':>6s} {'lead':>5s}"
            )
            for name, q in run["rules"].items():
                print(f"  {name:28s} {q['alerts']:7d} {q['precision']:6.3f} {q['events']:7d} {q['found']:6d} "
                      f"{q['recall']:6.3f} {q['median_lead_days']!s:>5s}")  # fmt: skip
    result["machine_after"] = {"loadavg_1m": machine()["loadavg_1m"]}
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"alerts-{args.mode}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
