"""Compiling the champion boosters (`serving.compiled`): LLVM code generation at lleaves' -O2 against -O0,
side by side (#18), with the level `serving.compiled.codegen_opt` picks for each model:

    nice -n 10 .venv/bin/python -m benchmarks.bench_compile --home /tmp/d7 [--rounds 2]

`--home` is a `clientlens demo` home (its champions and `features/latest.parquet`). Each (task, level)
compiles in a fresh process (the levels alternate, `--rounds` times): the CPU seconds of the compile,
then per-call time of the compiled function for 1 row and for every row of the book (median of many
calls, thread CPU time beside wall). The outputs of the two levels are compared bitwise, and against
LightGBM's `Booster.predict` (max |diff|). Prints a table and writes benchmarks/out/bench_compile.json.
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

import numpy as np

from benchmarks.machine import machine

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parent.parent
LIGHTGBM_DEFAULT_OPT = 2  # lleaves 1.3's `Model.compile` (llvmlite's target machine default)


def _export(home: Path, work: Path) -> list[str]:
    """Each champion's model text and its book rows as the booster sees them: `work/<task>.txt`, `<task>.npy`."""
    import pandas as pd

    from core.tasks import TASK_NAMES
    from training.registry import load_model

    latest = pd.read_parquet(home / "features" / "latest.parquet")
    for task in TASK_NAMES:
        core, _ = load_model(task, "champion")
        (work / f"{task}.txt").write_text(core.booster.model_to_string())
        np.save(work / f"{task}.npy", np.ascontiguousarray(core.matrix(latest), dtype=np.float64))
    return list(TASK_NAMES)


def _worker(model_txt: Path, rows: Path, level: int, out: Path, reps: int) -> dict:
    import lightgbm as lgb
    import lleaves

    from serving.compiled import _entry, compile_model

    X = np.load(rows)
    with tempfile.TemporaryDirectory() as tmp:
        c = time.process_time()
        model = lleaves.Model(model_file=str(model_txt))
        compile_model(model, Path(tmp) / "model.o", opt=level)
        compile_cpu = time.process_time() - c
        size = (Path(tmp) / "model.o").stat().st_size
    call = _entry(model)
    assert call is not None
    got = call(X)
    np.save(out, got)
    want = lgb.Booster(model_file=str(model_txt)).predict(X, num_threads=1)

    def median_us(M: np.ndarray, k: int) -> tuple[float, float]:
        for _ in range(5):
            call(M)
        wall, cpu = [], []
        for _ in range(k):
            t, c = time.perf_counter(), time.thread_time()
            call(M)
            cpu.append((time.thread_time() - c) * 1e6)
            wall.append((time.perf_counter() - t) * 1e6)
        return float(np.median(wall)), float(np.median(cpu))

    one, book = median_us(X[:1].copy(), reps), median_us(X, max(5, reps // 100))
    return {
        "compile_cpu_s": compile_cpu,
        "object_bytes": size,
        "trees": model.num_trees(),
        "one_row_us": one[0],
        "one_row_cpu_us": one[1],
        "book_rows": len(X),
        "book_ms": book[0] / 1e3,
        "book_cpu_ms": book[1] / 1e3,
        "max_abs_diff_vs_lightgbm": float(np.max(np.abs(got - want))),
    }


def _run(work: Path, task: str, level: int, reps: int) -> dict:
    out = work / f"{task}.O{level}.npy"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_compile", "--worker", str(work / f"{task}.txt"),
         str(work / f"{task}.npy"), str(level), str(out), "--reps", str(reps)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"worker {task} -O{level} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    from serving.compiled import codegen_opt

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, help="a `clientlens demo` home (CLIENTLENS_HOME)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2000, help="calls timed for one row (the book: reps/100)")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        txt, rows, level, out = args.worker
        result = _worker(Path(txt), Path(rows), int(level), Path(out), args.reps)
        print(json.dumps(result))
        return result
    if args.home is None:
        raise SystemExit("--home: a clientlens demo home is needed (its champions are compiled)")
    levels = (LIGHTGBM_DEFAULT_OPT, 0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tasks = _export(args.home, work)
        runs: dict[str, dict[int, list[dict]]] = {t: {lv: [] for lv in levels} for t in tasks}
        for r in range(args.rounds):
            for task in tasks:
                for level in levels if r % 2 == 0 else levels[::-1]:
                    runs[task][level].append(_run(work, task, level, args.reps))
                    print(f"round {r + 1} {task} -O{level}: {runs[task][level][-1]}", file=sys.stderr)
        chosen = {t: codegen_opt((work / f"{t}.txt").read_text()) for t in tasks}
        same = {t: bool(np.array_equal(np.load(work / f"{t}.O{levels[0]}.npy"), np.load(work / f"{t}.O{levels[1]}.npy")))
                for t in tasks}  # fmt: skip
    keys = ("compile_cpu_s", "one_row_us", "one_row_cpu_us", "book_ms", "book_cpu_ms")
    med = {
        t: {lv: {k: float(np.median([x[k] for x in rs])) for k in keys} for lv, rs in by.items()}
        for t, by in runs.items()
    }
    result = {"machine": machine(), "home": str(args.home), "levels": levels, "rounds": args.rounds,
              "median": med, "runs": runs, "bitwise_equal_between_levels": same, "codegen_opt_chosen": chosen}  # fmt: skip
    a, b = levels
    print(f"{'task':<7}{'measure (median)':<18}{f'-O{a}':>10}{f'-O{b}':>10}{'ratio':>8}")
    for t in tasks:
        for k in keys:
            print(f"{t:<7}{k:<18}{med[t][a][k]:>10.3f}{med[t][b][k]:>10.3f}{med[t][b][k] / med[t][a][k]:>8.2f}")
        r0 = runs[t][a][0]
        print(f"{t:<7}trees {r0['trees']}, serving.compiled picks -O{chosen[t]}, book rows {r0['book_rows']}, outputs bitwise equal: {same[t]}, max |diff| "
              f"vs LightGBM -O{a} {r0['max_abs_diff_vs_lightgbm']:.1e} / -O{b} {runs[t][b][0]['max_abs_diff_vs_lightgbm']:.1e}")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_compile.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
