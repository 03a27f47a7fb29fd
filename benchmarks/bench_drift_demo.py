"""The demo's drift step, standalone and primed: `python -m benchmarks.bench_drift_demo --demo-home HOME --split-at T`.

Runs `clientlens drift --task churn --split-at T --json` on a fresh copy of a finished demo's home (so every
run finds the same workspace history), alternating, N rounds, three ways:
- `against`: git REF (default `main`, exported with `git archive`, first on PYTHONPATH), a new process;
- `standalone`: this checkout, a new process (what a scheduler runs);
- `primed`: this checkout as `clientlens demo` runs the step (`clientlens.demo.prime_command`): the process
  imports `DRIFT_IMPORTS` first (as it does while the demo's service runs), then is sent the command line;
  wall is from sending it to the exit, CPU-s is the whole process tree's (the priming included) and the
  priming's own CPU-s is recorded apart.
Records wall, CPU-s (`os.wait4`), load and each run's verdicts (they must be the same in every run);
writes `benchmarks/out/drift-demo-primed.json`. The split time is the one the demo printed
(`[drift] clientlens drift --task churn --split-at ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _primed_ready(proc: subprocess.Popen, timeout: float = 120.0) -> float:
    """Wait until the primed process sits in its stdin read (its CPU time stops growing); its CPU-s so far."""
    last, deadline = -1.0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _cpu_of(proc.pid)
        if now == last and Path(f"/proc/{proc.pid}/wchan").read_text() not in ("", "0"):
            return now
        last = now
    raise SystemExit("the primed process did not finish its imports")


def one_run(variant: str, home: Path, split_at: str, old: Path, work: Path) -> dict:
    from clientlens.demo import DRIFT_IMPORTS, prime_command, run_command

    copy = work / "home"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(home, copy, symlinks=True)
    env = dict(os.environ, CLIENTLENS_HOME=str(copy))
    env.pop("PYTHONPATH", None)
    if variant == "against":
        env["PYTHONPATH"] = str(old)
    args = ["drift", "--task", "churn", "--split-at", split_at, "--json"]
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        priming = 0.0
        primed = None
        if variant == "primed":
            primed = prime_command(DRIFT_IMPORTS)
            priming = _primed_ready(primed)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        if primed is not None:
            code, out, err, cpu = run_command(args, primed=primed)
        else:
            code, out, err, cpu = run_command([sys.executable, "-m", "clientlens", *args])
        wall = time.perf_counter() - started
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code != 0:
        raise SystemExit(f"{variant}: exit {code}: {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    windows = [(w["status"], w["share_drifted"], w["drifted"], w["psi"]) for w in summary["windows"]]
    return {
        "variant": variant,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "priming_cpu_s": round(priming, 2),
        "load_1m_before": round(load, 2),
        "windows": windows,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-home", type=Path, required=True, help="a finished demo's CLIENTLENS_HOME")
    parser.add_argument("--split-at", required=True, help="the split time the demo's drift step used")
    parser.add_argument("--against", default="main", help="git ref to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="against,standalone,primed")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    variants = args.variants.split(",")
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "against"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", args.against], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        for r in range(args.rounds):
            for variant in variants if r % 2 == 0 else variants[::-1]:
                run = one_run(variant, args.demo_home, args.split_at, old, Path(tmp))
                runs.append({**run, "round": r})
                print(
                    f"{variant:<11} round {r}: wall {run['wall_s']:5.1f} s  CPU {run['cpu_s']:5.1f} s"
                    f" (priming {run['priming_cpu_s']:.1f})  load {run['load_1m_before']:.1f}",
                    flush=True,
                )
    out: dict = {
        "machine": machine(),
        "runs": runs,
        "same_verdicts": all(r["windows"] == runs[0]["windows"] for r in runs),
    }
    for variant in variants:
        mine = sorted(runs, key=lambda r: r["wall_s"])
        mine = [r for r in mine if r["variant"] == variant]
        out[variant] = {
            "wall_s": [r["wall_s"] for r in runs if r["variant"] == variant],
            "wall_s_median": mine[len(mine) // 2]["wall_s"],
            "cpu_s_median": sorted(r["cpu_s"] for r in mine)[len(mine) // 2],
        }
        print(
            f"{variant:<11} wall median {out[variant]['wall_s_median']:.1f} s, CPU median {out[variant]['cpu_s_median']:.1f} s"
        )
    print(f"same verdicts in every run: {out['same_verdicts']}")
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "drift-demo-primed.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
