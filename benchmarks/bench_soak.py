"""Sustained load and a `kill -9` under load: `python -m benchmarks.bench_soak --home DIR`.

Against the real service (`serving.process.running_service`, `--workers` workers, loopback):

1. **Soak**: `--seconds` (default 600) at a fixed `--rate` of single-customer `POST /score`
   requests plus one `--batch`-customer request every `--batch-every` seconds, each on a new
   connection, from one client thread per kind. Counted: requests, non-200 answers, connection
   errors, latency; the server's RSS (arbiter + workers) every second: start, after warm-up,
   end, max and the least-squares slope after warm-up (the first 10% is start-up).
2. **Kill**: the same load for `--kill-seconds`; after a third of it one worker gets SIGKILL.
   Requests that fail while it restarts are counted (they are the ones it held). Then the
   server is stopped (SIGTERM, the orderly path) and the inference log is read back.

The guarantee checked (`serving.inference_log`): every customer of a request answered more than
`flush_seconds` + `--write-margin` seconds before the kill, and every customer answered after
it or on the surviving worker, is in the log; only customers answered in the last flush window
of the killed worker may be missing. Reported: answered, logged, missing, and missing rows that
the guarantee covers (must be 0).

Needs a home with champions: `--home` from `python -m benchmarks.bench_serving` (it prints where
it trains). Prints a summary and writes `benchmarks/out/soak.json`; `--markdown` prints the
RESULTS.md section.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from benchmarks.bench_serving import percentiles, server_rss
from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"


class Load:
    """Fixed-rate clients: singles at `rate`/s and a batch every `batch_every` s, answers recorded."""

    def __init__(self, host: str, port: int, singles: list[bytes], batch: bytes, rate: float, batch_every: float):
        self.host, self.port = host, port
        self.singles, self.batch = singles, batch
        self.rate, self.batch_every = rate, batch_every
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str, int, int]] = []  # (monotonic time, request id, customers, pid)
        self.statuses: dict[int, int] = {}
        self.conn_errors = 0
        self.late = 0
        self.ms: list[float] = []

    def _post(self, body: bytes, customers: int, timed: bool) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            t = time.perf_counter()
            conn.request("POST", "/score", body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - t
        except OSError:
            with self.lock:
                self.conn_errors += 1
            return
        finally:
            conn.close()
        with self.lock:
            self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
            if resp.status == 200:
                self.answers.append((time.monotonic(), json.loads(data)["request_id"], customers, 0))
                if timed:
                    self.ms.append(elapsed * 1000)

    def _run(self, every: float, bodies: list[bytes], customers: int, timed: bool) -> None:
        start = time.monotonic()
        i = 0
        while not self.stop.is_set():
            due = start + i * every
            now = time.monotonic()
            if due > now:
                self.stop.wait(due - now)
                if self.stop.is_set():
                    break
            elif now - due > 1.0:
                self.late += 1
            self._post(bodies[i % len(bodies)], customers, timed)
            i += 1

    def start(self, batch_customers: int) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._run, args=(1.0 / self.rate, self.singles, 1, True), daemon=True),
            threading.Thread(target=self._run, args=(self.batch_every, [self.batch], batch_customers, False),
                             daemon=True),
        ]  # fmt: skip
        for th in threads:
            th.start()
        return threads

    def summary(self) -> dict:
        ok = self.statuses.get(200, 0)
        return {
            "answered": ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": sum(v for k, v in self.statuses.items() if k != 200) + self.conn_errors,
            "connection_errors": self.conn_errors,
            "late_by_1s": self.late,
            "single_latency": percentiles(self.ms) if self.ms else {},
        }


def arbiter_pid(port: int) -> int:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "serve" in cmd and "--port" in cmd and str(port) in cmd:
            return proc.pid
    raise RuntimeError("server process not found")


def soak(host, port, singles, batch, batch_customers, args, pid) -> tuple[dict, Load]:
    load = Load(host, port, singles, batch, args.rate, args.batch_every)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    threads = load.start(batch_customers)
    while time.monotonic() - t0 < args.seconds:
        samples.append((time.monotonic() - t0, server_rss(pid) / 2**20))
        time.sleep(1.0)
    load.stop.set()
    for th in threads:
        th.join()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    settled = slice(max(1, len(rss) // 10), None)
    slope = float(np.polyfit(t[settled], rss[settled], 1)[0] * 60) if len(t) > 10 else float("nan")
    return {
        **load.summary(),
        "seconds": args.seconds, "rate_per_s": args.rate, "batch_customers": batch_customers,
        "batch_every_s": args.batch_every,
        "customers_answered": int(sum(a[2] for a in load.answers)),
        "rss_mib_start": float(rss[0]), "rss_mib_settled_start": float(rss[settled][0]), "rss_mib_end": float(rss[-1]),
        "rss_mib_max": float(rss.max()), "rss_slope_mib_per_min_after_warmup": slope,
        "rss_samples": len(rss),
    }, load  # fmt: skip


def kill_under_load(host, port, singles, batch, batch_customers, args, pid) -> tuple[dict, Load, float]:
    import psutil

    load = Load(host, port, singles, batch, args.rate, args.batch_every)
    threads = load.start(batch_customers)
    time.sleep(args.kill_seconds / 3)
    workers = psutil.Process(pid).children()
    victim = workers[0]
    kill_time = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    time.sleep(args.kill_seconds * 2 / 3)
    load.stop.set()
    for th in threads:
        th.join()
    replaced = sorted(p.pid for p in psutil.Process(pid).children())
    info = {**load.summary(), "seconds": args.kill_seconds, "workers_before": sorted(p.pid for p in workers),
            "killed": victim.pid, "workers_after": replaced}  # fmt: skip
    return info, load, kill_time


def check_log(log_root: Path, answers: list, kill_time: float, window: float) -> dict:
    """Which answered requests (soak and kill runs) are in the inference log, against the
    guarantee's window."""
    from serving.inference_log import read_inference_log

    logged = read_inference_log(root=log_root, columns=["request_id", "customer_id"])
    rows_by_request = logged.groupby("request_id").size().to_dict()
    missing, covered_missing, in_window = 0, 0, 0
    for t, request_id, customers, _ in answers:
        got = rows_by_request.get(request_id, 0)
        in_kill_window = kill_time - window <= t <= kill_time
        in_window += customers if in_kill_window else 0
        if got < customers:
            missing += customers - got
            if not in_kill_window:
                covered_missing += customers - got
    return {
        "customers_answered": int(sum(a[2] for a in answers)),
        "rows_logged_for_answered": int(sum(min(rows_by_request.get(r, 0), c) for _, r, c, _ in answers)),
        "customers_missing": missing,
        "customers_answered_in_window_before_kill": in_window,
        "missing_rows_the_guarantee_covers": covered_missing,
        "window_s": window,
    }


def markdown(r: dict) -> str:
    m, s, k, lg = r["machine"], r["soak"], r["kill"], r["log"]
    lat = s["single_latency"]
    return "\n".join([
        "## Serving: 10-minute soak and kill -9 under load (issue #18)",
        "",
        f"`{r['command']}` on {r['date']} (UTC). Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB; "
        f"1-min load average {m['loadavg_1m']} at start, {r['loadavg_1m_at_end']} at end (shared with other "
        f"sessions' jobs). Service: {r['workers']} workers, loopback, inference log flushed every "
        f"{r['flush_seconds']} s.",
        "",
        f"- Soak: {s['seconds']:.0f} s at {s['rate_per_s']:.0f} single-customer requests/s plus one "
        f"{s['batch_customers']}-customer request every {s['batch_every_s']:g} s (new connection each): "
        f"{s['answered']:,} answered, **{s['errors']} errors** (statuses {s['statuses']}), "
        f"{s['late_by_1s']} requests started > 1 s late; single latency p50 {lat.get('p50_ms', float('nan')):.1f} ms, "
        f"p99 {lat.get('p99_ms', float('nan')):.1f} ms.",
        f"- Memory (arbiter + workers): {s['rss_mib_start']:.0f} MiB at start, {s['rss_mib_settled_start']:.0f} MiB "
        f"after warm-up, {s['rss_mib_end']:.0f} MiB at end (max {s['rss_mib_max']:.0f}); slope after warm-up "
        f"{s['rss_slope_mib_per_min_after_warmup']:+.2f} MiB/min over {s['rss_samples']} samples.",
        f"- kill -9: worker {k['killed']} killed {k['seconds'] / 3:.0f} s into a {k['seconds']:.0f} s run at the same "
        f"load; workers before {k['workers_before']}, after {k['workers_after']}; {k['answered']:,} answered, "
        f"{k['errors']} failed (statuses {k['statuses']}, {k['connection_errors']} connection errors), "
        f"{k['late_by_1s']} started > 1 s late.",
        f"- Inference log (soak and kill runs): {lg['customers_answered']:,} customers answered, "
        f"{lg['rows_logged_for_answered']:,} logged, {lg['customers_missing']} missing; "
        f"{lg['customers_answered_in_window_before_kill']} were answered in the {lg['window_s']:g} s before the kill "
        f"(the window the guarantee leaves open); **missing rows the guarantee covers: "
        f"{lg['missing_rows_the_guarantee_covers']}**.",
        "",
        "Raw numbers: `benchmarks/out/soak.json`.",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_soak", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a clientlens home with champions (bench_serving)")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=20.0, help="single-customer requests/s")
    parser.add_argument("--batch", type=int, default=100, help="customers per batch request")
    parser.add_argument("--batch-every", type=float, default=1.0)
    parser.add_argument("--kill-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--flush-seconds", type=float, default=2.0)
    parser.add_argument("--write-margin", type=float, default=3.0, help="seconds allowed for one log write")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    home = args.home.resolve()
    log_root = home / f"soak-log-{int(time.time())}"
    env = {
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": str(log_root),
    }
    os.environ.update(env)
    import pandas as pd

    from serving.process import running_service
    from tests.serving.champions import to_request_rows

    frame = pd.read_parquet(home / "work" / "features" / "latest.parquet").reset_index(drop=True)
    rows = to_request_rows(frame)
    singles = [json.dumps({"customers": [r]}).encode() for r in rows[:500]]
    batch = json.dumps({"customers": rows[: args.batch]}).encode()
    serve_env = {**env, "CLIENTLENS_WORKERS": str(args.workers), "CLIENTLENS_RELOAD_SECONDS": "0",
                 "CLIENTLENS_LOG_FLUSH_SECONDS": str(args.flush_seconds)}  # fmt: skip
    result: dict = {
        "command": "uv run python -m benchmarks.bench_soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "workers": args.workers,
        "flush_seconds": args.flush_seconds,
    }
    with running_service(env=serve_env, log_path=home / "soak-server.log", ready_timeout=300) as url:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port
        pid = arbiter_pid(port)
        print(f"soak {args.seconds:.0f}s ...", file=sys.stderr)
        result["soak"], soaked = soak(host, port, singles, batch, args.batch, args, pid)
        print(f"kill -9 under load {args.kill_seconds:.0f}s ...", file=sys.stderr)
        result["kill"], load, kill_time = kill_under_load(host, port, singles, batch, args.batch, args, pid)
    # The server is stopped (orderly): everything not lost to the kill is on disk now.
    result["log"] = check_log(
        log_root, soaked.answers + load.answers, kill_time, args.flush_seconds + args.write_margin
    )
    server_log = (home / "soak-server.log").read_text(errors="replace")
    result["crash_log_lines"] = [line for line in server_log.splitlines() if " died: " in line]
    result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "soak.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("soak", "kill", "log", "crash_log_lines")}, indent=2))
    if args.markdown:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
