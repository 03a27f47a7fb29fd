"""Drift-report time and memory, clientlens vs plain Evidently: `python -m benchmarks.bench_drift`.

Data: `tests.monitoring.scenarios.feature_window` (feature-table-like marginals; the test fixture,
imported from `tests/`) widened to 100 columns (+ the task contract's score columns; its two
market columns are context, so 98 features are tested), a current window with injected shifts (a
rate cut on four deposit-flow features and the deposit rate, a channel-mix change on three, two
generic columns moved), seeded.

Jobs, each in its own child process so its peak RSS (ru_maxrss) is its own:
- `clientlens` on ROWS x 100 (default 1M): `monitoring.drift.run_file_drift` end to end, i.e.
  the vectorised statistics on every row and column, the Evidently HTML report on a 10k-row sample
  (`--max-evidently-rows`) of at most 20 columns (`--max-evidently-columns`: the scores, then the
  features nearest to or past their threshold),
  JSON + HTML written, snapshot added to an Evidently workspace;
- `evidently` on each of --evidently-rows (default 50k and 100k) x 100: plain
  `Report([DataDriftPreset()]).run(current, reference)` (+ `get_html_str` separately), and
  `clientlens` on the same rows, to compare verdicts column by column and time as a ratio.
Evidently's time at ROWS is extrapolated linearly from its two largest sizes.

Prints a table and writes `benchmarks/out/drift-<ROWS>.json`.

`--demo-home HOME --split-at TIME [--against REF] [--rounds N]`: the demo's drift step instead (#18):
`clientlens drift --task churn --split-at TIME --json` on a copy of a finished demo's home (fresh copy
per run, so every run finds the same workspace history), this checkout against git REF (default `main`,
exported with `git archive` and put first on PYTHONPATH), alternating, N rounds. Records wall, CPU-s
(the command and every process it waited for) and load for each run, and that both give the same verdicts;
writes `benchmarks/out/drift-demo-step.json`. The split time is the one the demo printed
(`[drift] clientlens drift --task churn --split-at ...`). With `--window-widgets`: the later window rendered
in this process, Evidently's per-column widgets built vs skipped (`monitoring.evidently_widgets`), alternating
N rounds: CPU-s per render and the stored snapshot's size (`benchmarks/out/drift-demo-window-widgets.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"
FEATURES = 100
SEED = 2026


def windows(rows: int):
    """Reference and shifted current window, ROWS x 100 features (+ scores), and the injected columns."""
    from tests.monitoring import scenarios

    extra = FEATURES - 30  # feature_window has 30 features of its own
    ref = scenarios.feature_window(rows, seed=SEED, extra_numeric=extra)
    cur = scenarios.feature_window(rows, seed=SEED + 1, extra_numeric=extra)
    cur = scenarios.channel_mix(scenarios.rate_cut(cur))
    cur["behaviour_extra_0"] = cur["behaviour_extra_0"] + 0.3  # normal(0, 1) -> mean +0.3 sd
    cur["behaviour_extra_3"] = cur["behaviour_extra_3"] * 1.5  # a share, scaled
    # the deposit rate moves too, but it is market context (one value per window), not a customer feature
    context = scenarios.SCENARIO_CONTEXT["rate_cut"] | scenarios.SCENARIO_CONTEXT["channel_mix"]
    moved = (*scenarios.SCENARIO_COLUMNS["rate_cut"], *scenarios.SCENARIO_COLUMNS["channel_mix"])
    injected = [c for c in moved if c not in context]
    injected += ["behaviour_extra_0", "behaviour_extra_3"]
    return ref, cur, injected


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _PeakRss:
    """Samples this process's RSS every 20 ms while a block runs: the block's own peak."""

    def __enter__(self):
        import gc
        import threading

        import psutil

        gc.collect()
        try:  # hand freed heap back to the OS so the baseline is what is really held
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self._proc = psutil.Process()
        self.start_mib = self.peak_mib = self._proc.memory_info().rss / 2**20
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak_mib = max(self.peak_mib, self._proc.memory_info().rss / 2**20)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._proc.memory_info().rss / 2**20)


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (less sensitive than wall time to other users' load)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _child_clientlens(rows: int, out: str, max_evidently_rows: int, max_evidently_columns: int) -> dict:
    import evidently.presets  # noqa: F401 - import cost (~10 s) is per process, not per report: excluded for both

    from monitoring.config import DriftConfig
    from monitoring.drift import run_file_drift

    ref, cur, injected = windows(rows)
    with _PeakRss() as mem:
        c0 = _cpu_s()
        t0 = time.perf_counter()
        config = DriftConfig(evidently_max_rows=max_evidently_rows, evidently_max_columns=max_evidently_columns)
        result = run_file_drift(ref, cur, out, config)
        seconds = time.perf_counter() - t0
        cpu = _cpu_s() - c0
    return {
        "job": "clientlens",
        "rows": rows,
        "features": len(result.roles.features),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "timings": result.timings,
        "peak_rss_mib": mem.peak_mib,
        "rss_before_mib": mem.start_mib,
        "added_rss_mib": mem.peak_mib - mem.start_mib,
        "process_max_rss_mib": _rss_mib(),
        "status": result.status,
        "drifted": sorted(result.drifted),
        "injected": sorted(injected),
        "verdicts": {c.column: c.drifted for c in result.columns},
        "statistics": {c.column: c.statistic for c in result.columns},
        "evidently_sample": result.evidently,
    }


def _child_evidently(rows: int) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from monitoring.drift import prepare, resolve_columns
    from monitoring.stats import is_drift

    ref, cur, injected = windows(rows)
    roles = resolve_columns(ref, cur)
    ref, cur = prepare(ref, roles, what="reference"), prepare(cur, roles, what="current")
    cols = roles.features
    definition = DataDefinition(numerical_columns=roles.numerical, categorical_columns=roles.categorical)
    ref, cur = ref[cols], cur[cols]
    with _PeakRss() as mem:
        c0 = _cpu_s()
        t0 = time.perf_counter()
        snap = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        seconds = time.perf_counter() - t0
        cpu = _cpu_s() - c0
    t1 = time.perf_counter()
    snap.get_html_str(as_iframe=False)
    html_seconds = time.perf_counter() - t1
    verdicts, statistics = {}, {}
    for metric in snap.dict()["metrics"]:
        conf = metric["config"]
        if conf["type"].endswith("ValueDrift"):
            verdicts[conf["column"]] = bool(is_drift(conf["method"], float(metric["value"]), float(conf["threshold"])))
            statistics[conf["column"]] = float(metric["value"])
    return {
        "job": "evidently",
        "rows": rows,
        "features": len(cols),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "html_seconds": html_seconds,
        "peak_rss_mib": mem.peak_mib,
        "rss_before_mib": mem.start_mib,
        "added_rss_mib": mem.peak_mib - mem.start_mib,
        "process_max_rss_mib": _rss_mib(),
        "drifted": sorted(c for c, v in verdicts.items() if v),
        "injected": sorted(injected),
        "verdicts": verdicts,
        "statistics": statistics,
    }


def _run_child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_drift", "--child", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(a: dict, b: dict, injected: list[str]) -> dict:
    common = sorted(set(a["verdicts"]) & set(b["verdicts"]))
    differ = [c for c in common if a["verdicts"][c] != b["verdicts"][c]]
    return {
        "columns_compared": len(common),
        "verdicts_differ": differ,
        "injected_agree": all(a["verdicts"].get(c) == b["verdicts"].get(c) for c in injected),
        "injected_detected": {
            "a": sorted(c for c in injected if a["verdicts"].get(c)),
            "b": sorted(c for c in injected if b["verdicts"].get(c)),
        },
    }


def demo_step(home: Path, split_at: str, against: str, rounds: int) -> dict:
    """The demo's drift command, this checkout vs git `against`, alternating on fresh copies of `home`."""
    import shutil

    repo = Path(__file__).resolve().parent.parent
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "against"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", against], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        variants = {"this checkout": None, against: str(old)}
        for r in range(rounds):
            order = list(variants.items()) if r % 2 else list(variants.items())[::-1]
            for name, path in order:
                copy = Path(tmp) / "home"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(home, copy, symlinks=True)
                env = dict(os.environ, CLIENTLENS_HOME=str(copy))
                env.pop("PYTHONPATH", None)
                if path:
                    env["PYTHONPATH"] = path
                load = os.getloadavg()[0]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                args = [sys.executable, "-m", "clientlens", "drift", "--task", "churn", "--split-at", split_at]
                proc = subprocess.run([*args, "--json", "--debug"], env=env, capture_output=True, text=True, cwd=tmp)
                wall = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: exit {proc.returncode}: {proc.stderr[-2000:]}")
                summary = json.loads(proc.stdout.strip().splitlines()[-1])
                windows = [(w["status"], w["share_drifted"], w["drifted"], w["psi"]) for w in summary["windows"]]
                runs.append(
                    {
                        "variant": name,
                        "round": r,
                        "wall_s": round(wall, 2),
                        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
                        "load_1m_before": round(load, 2),
                        "windows": windows,
                        # this checkout's own account of its processes (renderer ready, each window rendered)
                        "timeline": [
                            line.split("monitoring.drift: ", 1)[1]
                            for line in proc.stderr.splitlines()
                            if "monitoring.drift: drift " in line
                        ],
                    }
                )
                print(f"{name:<16} round {r}: wall {wall:6.1f} s  CPU {runs[-1]['cpu_s']:6.1f} s  load {load:.1f}")
    same = all(run["windows"] == runs[0]["windows"] for run in runs)
    out: dict = {"runs": runs, "same_verdicts": same}
    for name in variants:
        mine = [run for run in runs if run["variant"] == name]
        out[name] = {
            "wall_s_min": min(run["wall_s"] for run in mine),
            "wall_s_median": sorted(run["wall_s"] for run in mine)[len(mine) // 2],
            "cpu_s_median": sorted(run["cpu_s"] for run in mine)[len(mine) // 2],
        }
        print(f"{name:<16} wall min {out[name]['wall_s_min']:.1f} s, median {out[name]['wall_s_median']:.1f} s; "
              f"CPU median {out[name]['cpu_s_median']:.1f} s")  # fmt: skip
    print(f"same verdicts in every run: {same}")
    return out


def window_widgets(home: Path, split_at: str, rounds: int) -> dict:
    """The later window of the demo's drift step rendered in one process (Evidently's report, the workspace runs,
    HTML + JSON), the per-column widgets built (as before `monitoring.evidently_widgets`) and skipped, alternating;
    on a fresh copy of `home`. CPU-s per render, the stored snapshot's size, and that both give the same verdicts."""
    import contextlib
    import importlib
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "home"
        shutil.copytree(home, copy, symlinks=True)
        os.environ["CLIENTLENS_HOME"] = str(copy)
        from core.settings import Settings
        from monitoring import drift, sources
        from monitoring.config import DriftConfig
        from monitoring.workspace import open_project, read_workspace, workspace_dir

        for module in drift._EVIDENTLY_MODULES:
            importlib.import_module(module)
        settings, config = Settings(), DriftConfig()
        champ = sources.champion("churn", settings=settings)
        window = drift._evaluate_window("churn", champ, split_at, None, config, None, settings, attach=False)
        drift._WORKER["project"] = open_project("churn", settings=settings, ws=read_workspace(workspace_dir(settings)))
        skipped = drift.value_drift_widgets_skipped
        variants = {"widgets built": lambda: contextlib.nullcontext(False), "widgets skipped": skipped}
        drift._render_window(window, Path(tmp) / "warm", config, settings, None)  # first-use costs, once
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        try:
            for r in range(rounds):
                for name in list(variants) if r % 2 else list(variants)[::-1]:
                    drift.value_drift_widgets_skipped = variants[name]  # type: ignore[assignment]
                    load, c0 = os.getloadavg()[0], time.process_time()
                    result = drift._render_window(window, Path(tmp) / f"{r}-{name}", config, settings, None)
                    cpu = time.process_time() - c0
                    ws = result.workspace or {}
                    stored = next(Path(ws["workspace"]).glob(f"*/snapshots/{ws['snapshot_id']}.json"))
                    runs[name].append(
                        {
                            "cpu_s": round(cpu, 3),
                            "load_1m": round(load, 2),
                            "snapshot_bytes": stored.stat().st_size,
                            "html_bytes": result.report.stat().st_size if result.report else None,
                            "verdicts": (result.status, result.drifted, result.evidently.get("disagreements")),
                        }
                    )
        finally:
            drift.value_drift_widgets_skipped = skipped
    out: dict = {"runs": runs}
    for name, mine in runs.items():
        cpus = sorted(run["cpu_s"] for run in mine)
        out[name] = {"cpu_s_median": cpus[len(cpus) // 2], "snapshot_bytes": mine[0]["snapshot_bytes"]}
        print(f"{name:<16} CPU-s {[run['cpu_s'] for run in mine]} median {cpus[len(cpus) // 2]:.2f}; "
              f"snapshot {mine[0]['snapshot_bytes']:,} B; HTML {mine[0]['html_bytes']:,} B")  # fmt: skip
    verdicts = [run["verdicts"] for mine in runs.values() for run in mine]
    out["same_verdicts"] = all(v == verdicts[0] for v in verdicts)
    print(f"same verdicts in every run: {out['same_verdicts']}")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-home", type=Path, help="a finished demo's CLIENTLENS_HOME: time its drift step")
    parser.add_argument("--split-at", help="with --demo-home: the split time the demo's drift step used")
    parser.add_argument("--against", default="main", help="with --demo-home: git ref to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="with --demo-home: runs of each variant")
    parser.add_argument(
        "--window-widgets",
        action="store_true",
        help="with --demo-home: one window rendered in process, per-column widgets built vs skipped",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per window for clientlens")
    parser.add_argument("--evidently-rows", default="50000,100000", help="sizes for plain Evidently (comma-separated)")
    parser.add_argument("--max-evidently-rows", type=int, default=10_000, help="clientlens' Evidently sample per side")
    parser.add_argument(
        "--max-evidently-columns", type=int, default=20, help="columns clientlens' Evidently report details"
    )
    parser.add_argument("--child", choices=["clientlens", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--child-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.demo_home is not None:
        if not args.split_at:
            parser.error("--demo-home needs --split-at (the time the demo's drift step printed)")
        info = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "command": "uv run python -m benchmarks.bench_drift "
            + " ".join(argv if argv is not None else sys.argv[1:]),
        }
        if args.window_widgets:
            res = {"info": info, **window_widgets(args.demo_home, args.split_at, args.rounds)}
            name = "drift-demo-window-widgets.json"
        else:
            res = {"info": info, **demo_step(args.demo_home, args.split_at, args.against, args.rounds)}
            name = "drift-demo-step.json"
        res["info"]["loadavg_1m_at_end"] = os.getloadavg()[0]
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / name).write_text(json.dumps(res, indent=1, default=str))
        return res

    if args.child:
        os.environ.setdefault("CLIENTLENS_HOME", args.child_out or tempfile.mkdtemp())
        if args.child == "clientlens":
            res = _child_clientlens(
                args.child_rows, args.child_out, args.max_evidently_rows, args.max_evidently_columns
            )
        else:
            res = _child_evidently(args.child_rows)
        print(json.dumps(res, default=float))
        return res

    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": "uv run python -m benchmarks.bench_drift " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    sizes = [int(s) for s in args.evidently_rows.split(",") if s]
    results: dict = {"info": info, "clientlens": {}, "evidently": {}, "comparison": {}}
    with tempfile.TemporaryDirectory() as tmp:
        env_home = Path(tmp)
        for rows in [*sizes, args.rows]:
            out = env_home / f"clientlens-{rows}"
            print(f"clientlens {rows:,} x {FEATURES} ...", file=sys.stderr, flush=True)
            results["clientlens"][rows] = _run_child(
                [
                    "clientlens",
                    "--child-rows",
                    str(rows),
                    "--child-out",
                    str(out),
                    "--max-evidently-rows",
                    str(args.max_evidently_rows),
                    "--max-evidently-columns",
                    str(args.max_evidently_columns),
                ]
            )
        for rows in sizes:
            print(f"plain Evidently {rows:,} x {FEATURES} ...", file=sys.stderr, flush=True)
            results["evidently"][rows] = _run_child(["evidently", "--child-rows", str(rows)])
    injected = results["clientlens"][args.rows]["injected"]
    for rows in sizes:
        results["comparison"][f"clientlens@{rows} vs evidently@{rows}"] = compare(
            results["clientlens"][rows], results["evidently"][rows], injected
        )
    if sizes:
        biggest = max(sizes)
        results["comparison"][f"clientlens@{args.rows} vs evidently@{biggest}"] = compare(
            results["clientlens"][args.rows], results["evidently"][biggest], injected
        )
    if len(sizes) >= 2:
        (n1, n2) = sorted(sizes)[-2:]
        extra = {}
        for key, name in (("seconds", "wall"), ("cpu_seconds", "cpu")):
            t1, t2 = results["evidently"][n1][key], results["evidently"][n2][key]
            extra[name] = t2 + (t2 - t1) / (n2 - n1) * (args.rows - n2)
        results["evidently_extrapolated_seconds"] = {args.rows: extra}
    results["info"]["loadavg_1m_at_end"] = os.getloadavg()[0]

    print(
        f"\nDrift report, {FEATURES} features, {len(injected)} injected shifts ({info['machine']['nproc']} CPUs, "
        f"load {info['machine']['loadavg_1m']:.1f})"
    )
    print(f"{'job':<12}{'rows':>11}{'wall s':>9}{'CPU s':>9}{'data MiB':>10}{'+peak MiB':>11}  drifted")
    for job in ("clientlens", "evidently"):
        for rows, r in sorted(results[job].items()):
            print(
                f"{job:<12}{rows:>11,}{r['seconds']:>9.1f}{r['cpu_seconds']:>9.1f}{r['rss_before_mib']:>10.0f}"
                f"{r['added_rss_mib']:>11.0f}  {len(r['drifted'])}" + (f"  {r['timings']}" if "timings" in r else "")
            )
    for rows, t in results.get("evidently_extrapolated_seconds", {}).items():
        print(f"{'evidently':<12}{rows:>11,}{t['wall']:>9.0f}{t['cpu']:>9.0f}{'':>21}  (linear extrapolation)")
    for name, c in results["comparison"].items():
        print(
            f"{name}: injected agree={c['injected_agree']}, verdicts differ on {len(c['verdicts_differ'])}/"
            f"{c['columns_compared']} {c['verdicts_differ']}"
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.max_evidently_rows == 10_000 else f"-sample{args.max_evidently_rows}"
    suffix += "" if args.max_evidently_columns == 20 else f"-columns{args.max_evidently_columns}"
    path = OUT_DIR / f"drift-{args.rows}{suffix}.json"
    path.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
