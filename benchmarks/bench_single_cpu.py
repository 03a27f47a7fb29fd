"""Worker CPU per single-customer request, trees side by side: `python -m benchmarks.bench_single_cpu`.

    .venv/bin/python -m benchmarks.bench_single_cpu --home <bench_serving home> --against main

On a machine shared with other jobs, latency measures the neighbours as much as the code: a request that
needs 1 ms of CPU takes 3-8 ms when four other processes want the two cores. The CPU time the worker
spends per request moves much less. This script starts this tree's service and `--against`'s (a git
revision, exported with `git archive`, or a source folder; `benchmarks.bench_serving_ab._service`, one
worker each, same home and models, own inference logs), then alternates blocks of requests between them
in rounds: `GET /livez` (the floor) and single-customer `POST /score` (a new connection each, as
`bench_serving`). Per block it reads the worker's CPU time from /proc, split into the main thread (the
event loop: HTTP, middleware, decoding, scoring, the response) and the other threads (the inference-log
writer, the champion watcher), and the wall p50 / p99. Reports the medians over rounds; writes
`benchmarks/out/single_cpu.json`. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"


def _request(host: str, port: int, path: str, body: bytes) -> float:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    t = time.perf_counter()
    if path == "/livez":
        conn.request("GET", path)
    else:
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    elapsed = (time.perf_counter() - t) * 1000
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{path} answered {resp.status}")
    return elapsed


def _workers(port: int) -> list[int]:
    from benchmarks.bench_serving import server_pid, worker_processes

    return [p.pid for p in worker_processes(server_pid(port))]


def _cpu_seconds(workers: list[int]) -> np.ndarray:
    """(main thread, other threads) CPU seconds of the worker processes so far."""
    ticks = np.zeros(2)
    for pid in workers:
        for tid in os.listdir(f"/proc/{pid}/task"):
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[0 if int(tid) == pid else 1] += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_single_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a `benchmarks.bench_serving` home (trained)")
    parser.add_argument("--against", default="main", help="git revision (or a source tree's folder) to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=400, help="POST /score per server per round (GET /livez: half)")
    args = parser.parse_args(argv)

    import pandas as pd

    from benchmarks.bench_serving_ab import ROOT, _export, _service
    from tests.serving.champions import to_request_rows

    frame = pd.read_parquet(args.home / "work" / "features" / "latest.parquet").reset_index(drop=True)
    bodies = [json.dumps({"customers": [r]}).encode() for r in to_request_rows(frame)[:500]]
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp, ExitStack() as stack:
        other = Path(args.against) if Path(args.against).is_dir() else _export(args.against, Path(tmp) / "against")
        servers = {}
        for name, tree in {"this": ROOT, "against": other}.items():
            host, port = _service(stack, tree, args.home, f"cpu_{name}", 1)
            servers[name] = (host, port, _workers(port))
        for host, port, _ in servers.values():  # warm up: first requests fill caches
            for body in bodies[:150]:
                _request(host, port, "/score", body)
        blocks: dict[tuple[str, str], list[dict]] = {(n, p): [] for n in servers for p in ("/livez", "/score")}
        order = list(servers)
        for r in range(args.rounds):
            order.reverse()  # who goes first alternates
            for path in ("/livez", "/score"):
                count = args.single if path == "/score" else args.single // 2
                for name in order:
                    host, port, workers = servers[name]
                    before = _cpu_seconds(workers)
                    ms = [_request(host, port, path, bodies[(r * count + i) % len(bodies)]) for i in range(count)]
                    main_s, other_s = (_cpu_seconds(workers) - before) / count * 1000
                    blocks[(name, path)].append({"cpu_main_ms": main_s, "cpu_other_ms": other_s,
                                                 "p50_ms": float(np.percentile(ms, 50)),
                                                 "p99_ms": float(np.percentile(ms, 99))})  # fmt: skip
            load.append(round(os.getloadavg()[0], 2))
    keys = ("cpu_main_ms", "cpu_other_ms", "p50_ms", "p99_ms")
    medians = {f"{n} {p}": {k: float(np.median([b[k] for b in bs])) for k in keys} for (n, p), bs in blocks.items()}
    result = {
        "command": "python -m benchmarks.bench_single_cpu " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "loadavg_1m": load,
        "against": args.against,
        "medians": medians,
        "blocks": {f"{n} {p}": bs for (n, p), bs in blocks.items()},
    }
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "single_cpu.json").write_text(json.dumps(result, indent=2))
    print(f"load (1 min) per round: {load}")
    print(f"{'server':<10}{'path':<8}{'CPU main ms':>12}{'CPU other ms':>13}{'p50 ms':>8}{'p99 ms':>8}  per request")
    for key, m in medians.items():
        name, path = key.split()
        print(
            f"{name:<10}{path:<8}{m['cpu_main_ms']:>12.3f}{m['cpu_other_ms']:>13.3f}{m['p50_ms']:>8.2f}{m['p99_ms']:>8.2f}"
        )
    for name in servers:
        s, f = medians[f"{name} /score"], medians[f"{name} /livez"]
        total = s["cpu_main_ms"] + s["cpu_other_ms"]
        print(f"{name}: /score CPU {total:.3f} ms = {total / f['cpu_main_ms']:.2f}x the /livez floor's; "
              f"p50 {s['p50_ms'] / f['p50_ms']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
