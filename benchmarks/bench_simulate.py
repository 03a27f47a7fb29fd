"""Simulator throughput and memory: `python -m benchmarks.bench_simulate --customers N --months M`.

The simulation runs in a child process so its peak RSS (`ru_maxrss` of the child) is
measured alone, without this script's own imports. Output goes to a temporary folder
(default under /tmp) that is deleted afterwards unless `--keep`. Prints a table and writes
`benchmarks/out/simulate-<N>x<M>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def _child(args: argparse.Namespace) -> None:
    """Runs in the child process: simulate (or read and validate) and print a JSON line."""
    t0 = time.perf_counter()
    if args.child == "simulate":
        from features.simulate import simulate

        rows = simulate(args.out, args.customers, args.months, args.seed, chunk_size=args.chunk_size)
    else:
        from features.contract import read_raw

        rows = read_raw(args.out).rows
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "peak_rss_gib": _peak_rss_gib()}))


def _run_child(kind: str, args: argparse.Namespace, out: Path) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "benchmarks.bench_simulate", "--child", kind, "--customers", str(args.customers),
           "--months", str(args.months), "--seed", str(args.seed), "--chunk-size", str(args.chunk_size),
           "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{kind} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.parquet"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the simulated tables")
    parser.add_argument("--validate", action="store_true", help="also time read_raw (the contract) on the output")
    parser.add_argument("--child", choices=["simulate", "validate"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return {}

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_simulate_", dir="/tmp"))
    info = machine()
    try:
        sim, wall = _run_child("simulate", args, out)
        size = _folder_bytes(out)
        check = _run_child("validate", args, out) if args.validate else None
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    info["loadavg_1m_end"] = os.getloadavg()[0]  # the machine is shared: load says how much
    rows = sim["rows"]
    total = sum(rows.values())
    result = {
        "benchmark": "simulate",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"uv run python -m benchmarks.bench_simulate --customers {args.customers} --months {args.months}"
        f" --chunk-size {args.chunk_size}" + (" --validate" if args.validate else ""),
        "customers": args.customers,
        "months": args.months,
        "chunk_size": args.chunk_size,
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(sim["peak_rss_gib"], 2),
        "rows": rows,
        "rows_total": total,
        "rows_per_s": round(total / wall),
        "output_gib": round(size / 2**30, 2),
        "machine": info,
    }
    print(f"simulate {args.customers:,} customers x {args.months} months (chunk {args.chunk_size:,})")
    print(f"{'table':<14}{'rows':>16}{'rows/s':>14}")
    for table, n in rows.items():
        print(f"{table:<14}{n:>16,}{n / wall:>14,.0f}")
    print(f"{'total':<14}{total:>16,}{total / wall:>14,.0f}")
    print(f"wall {wall:.1f} s, peak RSS {result['peak_rss_gib']:.2f} GiB, output {result['output_gib']:.2f} GiB")
    if check is not None:
        (report, check_wall) = check
        read_rows = sum(report["rows"].values())
        result["validate"] = {
            "wall_s": round(check_wall, 1),
            "read_raw_s": round(report["seconds"], 1),
            "peak_rss_gib": round(report["peak_rss_gib"], 2),
            "rows": read_rows,
            "rows_per_s": round(read_rows / report["seconds"]),
        }
        v = result["validate"]
        print(f"read_raw (read + validate all five tables): {v['read_raw_s']} s, {v['rows_per_s']:,} rows/s, "
              f"peak RSS {v['peak_rss_gib']:.2f} GiB")  # fmt: skip
    print(
        f"machine: {info['nproc']} cpus, {info['memory_gib']} GiB, {info['cpu']}, "
        f"load {info['loadavg_1m']:.1f} -> {info['loadavg_1m_end']:.1f}"
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"simulate-{args.customers}x{args.months}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
