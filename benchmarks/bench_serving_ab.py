"""Two trees' services side by side, requests interleaved: `python -m benchmarks.bench_serving_ab`.

    .venv/bin/python -m benchmarks.bench_serving_ab --home <bench_serving home> --against main

On a loaded machine two benchmark runs one after the other measure the load as much as the code
(the 1-minute load moved 6 -> 10 between two `bench_serving` runs here). This script exports
`--against` (`git archive`), starts this tree's service and that tree's at the same time (same
home, same models, same feature table, own inference logs, `--workers` each) and alternates every
measurement between them, in rounds: `GET /livez` (the floor), single-customer `POST /score` (a new
connection each), and 1,000-customer JSON batches (keep-alive). Each server sees the same load,
so the ratios between them are the code's. Prints a table and writes
`benchmarks/out/serving_ab.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from benchmarks.bench_serving import percentiles, post
from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parent.parent


def _export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _service(stack: ExitStack, tree: Path, home: Path, name: str, workers: int) -> tuple[str, int]:
    """Start `tree`'s service (its own `serving.process.running_service`, run with that tree first on
    the path) in a child that prints its URL and waits for stdin to close."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": str(home / f"inference_log_{name}"),
        "CLIENTLENS_FEATURES_TABLE": str(home / "work" / "features" / "latest.parquet"),
        "CLIENTLENS_WORKERS": str(workers),
        "CLIENTLENS_RELOAD_SECONDS": "30",
    }
    code = (  # the other tree may predate `exit_on_signals`: its own handler, so a SIGTERM still stops the server
        "import signal, sys\n"
        "from pathlib import Path\n"
        "from serving.process import running_service\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
        f"with running_service(log_path=Path({str(home / f'ab-{name}.log')!r}), ready_timeout=600) as url:\n"
        "    print(url, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def close() -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(60)

    stack.callback(close)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        raise RuntimeError(f"service of {tree} did not start (log {home / f'ab-{name}.log'})")
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _livez(host: str, port: int) -> float:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=60)
    t = time.perf_counter()
    conn.request("GET", "/livez")
    conn.getresponse().read()
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_serving_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a `benchmarks.bench_serving` home (trained)")
    parser.add_argument("--against", default="main", help="git revision (or a source tree's folder) to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=200, help="single-customer requests per server per round")
    parser.add_argument("--batches", type=int, default=3, help="1,000-customer requests per server per round")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    import pandas as pd

    from tests.serving.champions import to_request_rows

    frame = pd.read_parquet(args.home / "work" / "features" / "latest.parquet").reset_index(drop=True)
    rows = to_request_rows(frame)
    singles = [json.dumps({"customers": [r]}).encode() for r in rows[:500]]
    batches = [json.dumps({"customers": rows[i : i + 1000]}).encode() for i in range(0, len(rows) - 999, 1000)][:4]
    headers = {"content-type": "application/json"}
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp, ExitStack() as stack:
        other = Path(args.against) if Path(args.against).is_dir() else _export(args.against, Path(tmp) / "against")
        trees = {"this": ROOT, "against": other}
        servers = {
            name: _service(stack, tree, args.home, name.replace("/", "_"), args.workers) for name, tree in trees.items()
        }
        for host, port in servers.values():  # warm up: first requests fill caches
            for b in singles[:100]:
                post(host, port, "/score", b, headers)
            post(host, port, "/score", batches[0], headers)
        flagged = _churn_flags(servers["this"], singles, headers)  # which bodies run the churn drivers
        floor: dict[str, list[float]] = {n: [] for n in servers}
        single: dict[str, list[float]] = {n: [] for n in servers}
        single_flagged: dict[str, list[bool]] = {n: [] for n in servers}
        batch: dict[str, list[float]] = {n: [] for n in servers}
        order = list(servers)
        for r in range(args.rounds):
            order.reverse()  # who goes first alternates
            for i in range(args.single):
                for name in order:
                    host, port = servers[name]
                    floor[name].append(_livez(host, port))
                    k = (r * args.single + i) % len(singles)
                    status, elapsed, _ = post(host, port, "/score", singles[k], headers)
                    assert status == 200, status
                    single[name].append(elapsed * 1000)
                    single_flagged[name].append(flagged[k])
            for i in range(args.batches):
                for name in order:
                    host, port = servers[name]
                    status, elapsed, _ = post(host, port, "/score", batches[i % len(batches)], headers)
                    assert status == 200, status
                    batch[name].append(1000 / elapsed)
            load.append(round(os.getloadavg()[0], 2))
    result = {
        "command": "python -m benchmarks.bench_serving_ab " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "loadavg_1m": load,
        "servers": {
            n: {
                "floor": percentiles(floor[n]),
                "single": percentiles(single[n]),
                # p99 is the churn-flagged customers' (their drivers run; ~8% of the book): both kinds apart
                "single_not_flagged": percentiles(
                    [t for t, f in zip(single[n], single_flagged[n], strict=True) if not f]
                ),
                "single_flagged": percentiles(
                    [t for t, f in zip(single[n], single_flagged[n], strict=True) if f] or [0.0]
                ),
                "batch_customers_per_s_median": float(np.median(batch[n])),
            }
            for n in servers
        },
    }
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "serving_ab.json").write_text(json.dumps(result, indent=2))
    print(f"load (1 min) per round: {load}")
    print(
        f"{'server':<10}{'floor p50':>10}{'single p50':>12}{'p50/floor':>10}{'single p99':>12}{'batch /s (1 thread)':>22}"
    )
    for n, s in result["servers"].items():
        f, o = s["floor"], s["single"]
        print(f"{n:<10}{f['p50_ms']:>10.2f}{o['p50_ms']:>12.2f}{o['p50_ms'] / f['p50_ms']:>10.2f}{o['p99_ms']:>12.2f}"
              f"{s['batch_customers_per_s_median']:>22,.0f}")  # fmt: skip
    for n, s in result["servers"].items():
        q, f = s["single_not_flagged"], s["single_flagged"]
        print(f"{n:<10} not churn-flagged (n {q['n']}) p50 {q['p50_ms']:.2f} p99 {q['p99_ms']:.2f} ms; "
              f"flagged (n {f['n']}, drivers run) p50 {f['p50_ms']:.2f} p99 {f['p99_ms']:.2f} ms")  # fmt: skip
    return 0


def _churn_flags(server: tuple[str, int], bodies: list[bytes], headers: dict) -> list[bool]:
    """Per single-customer body: does the churn model flag it (then `/score` also runs its drivers)?"""
    import http.client

    conn = http.client.HTTPConnection(*server, timeout=60)
    flags = []
    for body in bodies:
        conn.request("POST", "/score", body=body, headers=headers)
        flags.append(bool(json.loads(conn.getresponse().read())["results"][0]["churn"]["flag"]))
    conn.close()
    return flags


if __name__ == "__main__":
    raise SystemExit(main())
