"""Serving latency and throughput vs in-process LightGBM: `python -m benchmarks.bench_serving`.

Setup (skipped with `--home DIR` pointing at a previous run's home): simulate a bank, build
features and labels, train tier / churn / risk with `--rounds` trees each (no early stopping)
through the training package, register and promote them in MLflow (all under a temporary
clientlens home). Then start the real service (`serving.process.running_service`, i.e.
`bentoml serve serving.service:Clientlens`) on a loopback port and measure, in one run:

- single-customer latency: POST /score with one customer (all three models, no explain),
  a new TCP connection per request, sequential; p50 / p90 / p99;
- batch throughput: 1,000 customers per request on keep-alive connections, with 1 and 2 client
  threads, customers/s: as JSON records (POST /score) and as an Arrow table with an Arrow
  answer (POST /score_arrow, `serving.arrow_io`); request bodies are built before timing;
- the lower bound, in this process on the same rows: the three LightGBM boosters' `predict` on
  the numpy matrices (single row: p50 of one row through all three; batch: rows/s in 1,000-row
  batches), the same for the compiled boosters the service predicts with (`serving.compiled`),
  and `training.scoring.score_frame` in process for reference;
- sustained load: `--sustain-seconds` at a fixed `--rate` of single-customer requests
  (plus one 100-customer batch a second), errors counted, the server's RSS (arbiter + workers)
  sampled every second: start, end, max and the least-squares slope.

Prints a table and writes `benchmarks/out/serving.json`; `--markdown` prints the RESULTS.md section.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from benchmarks.machine import machine, median_ms

OUT_DIR = Path(__file__).resolve().parent / "out"
# Issue #18: single customer within 2x the GET /livez floor of the same run; JSON batches >= 30k/s.
TARGETS = {"p50_ms": 2.0, "p99_ms": 6.0, "batch_customers_per_s": 30_000, "p50_over_floor": 2.0}


def prepare_home(home: Path, customers: int, rounds: int, seed: int) -> dict:
    """Simulate, build features, train and promote the three champions under `home`."""
    from tests.serving.champions import build_tables, train_champions

    t0 = time.perf_counter()
    tables = build_tables(home / "work", customers=customers, months=15, seed=seed)
    versions = train_champions(tables["panel"], tables["truth"], seed=seed, max_rounds=rounds, full_rounds=True)
    return {"latest": str(tables["latest"]), "versions": versions, "setup_seconds": time.perf_counter() - t0}


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}  # fmt: skip


def post(host: str, port: int, path: str, body: bytes, headers: dict, conn: http.client.HTTPConnection | None = None):
    """One POST; a fresh connection unless `conn` is given. Returns (status, seconds, conn)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=120)
    t = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - t
    if own:
        conn.close()
    return resp.status, elapsed, conn


def single_latency(host, port, bodies: list[bytes], headers, n: int, warmup: int = 100) -> dict:
    ms = []
    for i in range(n + warmup):
        status, elapsed, _ = post(host, port, "/score", bodies[i % len(bodies)], headers)
        if status != 200:
            raise RuntimeError(f"single request failed with {status}")
        if i >= warmup:
            ms.append(elapsed * 1000)
    return percentiles(ms)


def floor_latency(host, port, n: int, warmup: int = 50) -> dict:
    """GET /livez with a new connection per request: the HTTP + BentoML floor under any endpoint."""
    ms = []
    for i in range(n + warmup):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        t = time.perf_counter()
        conn.request("GET", "/livez")
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - t
        conn.close()
        if i >= warmup:
            ms.append(elapsed * 1000)
    return percentiles(ms)


def batch_throughput(
    host,
    port,
    bodies: list[bytes],
    headers,
    per_thread: int,
    threads: int,
    batch: int,
    path: str = "/score",
    pid: int | None = None,
    parse: bool = False,
) -> dict:
    """`threads` keep-alive connections, each sending `per_thread` pre-encoded bodies in turn.

    Also recorded, as the client shares the machine with the server: this process's CPU seconds
    (`client_cpu_s`: sending, reading and, with `parse`, decoding each JSON answer with msgspec
    as a real caller must) and, with the server's `pid`, each worker's CPU seconds
    (`worker_cpu_s`: two connections can land on the same worker, which then scores both while
    the other idles)."""
    import msgspec

    errors = []

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=300)
        for i in range(per_thread):
            conn.request("POST", path, body=bodies[(k + i) % len(bodies)], headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append(resp.status)
            elif parse:
                msgspec.json.decode(data)
        conn.close()

    worker(0)  # warm-up on one thread
    workers = worker_processes(pid) if pid else []
    cpu_before = [_cpu_s(w) for w in workers]
    client_before = time.process_time()
    t = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t
    client_cpu = time.process_time() - client_before
    worker_cpu = [round(_cpu_s(w) - c, 2) for w, c in zip(workers, cpu_before, strict=True)]
    rows = per_thread * threads * batch
    return {"path": path, "threads": threads, "requests": per_thread * threads, "customers": rows, "seconds": wall,
            "customers_per_s": rows / wall, "errors": len(errors), "parse": parse,
            "client_cpu_s": round(client_cpu, 2), "worker_cpu_s": worker_cpu}  # fmt: skip


def worker_processes(pid: int) -> list:
    """The `bentoml serve` worker processes (psutil) under the server process `pid`."""
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True) if "_bentoml_impl.worker" in " ".join(p.cmdline())]


def _cpu_s(proc) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    times = proc.cpu_times()
    return times.user + times.system


def in_process_bound(frame, batch: int, n_single: int) -> dict:
    """The three boosters' predict on numpy (the lower bound) and score_frame, in this process."""
    from serving.models_store import load_model_set
    from training.scoring import score_frame

    models = load_model_set()  # compiled, as the service loads them
    cores = models.cores
    rows = frame.head(batch)
    mats = {t: c.matrix(rows) for t, c in cores.items()}
    boosters = {t: c.booster for t, c in cores.items()}
    trees = {t: int(b.num_trees() / max(1, b.num_model_per_iteration())) for t, b in boosters.items()}
    lightgbm = {t: functools.partial(b.predict, num_threads=1) for t, b in boosters.items()}
    compiled = {t: c.predictor for t, c in cores.items() if c.predictor is not None}

    def measure(predictors: dict) -> tuple[dict, float]:
        def predict_all(i0: int, i1: int) -> None:
            for t, predict in predictors.items():
                predict(mats[t][i0:i1])

        for _ in range(20):
            predict_all(0, 1)
        single = []
        for i in range(n_single):
            t = time.perf_counter()
            predict_all(i % batch, i % batch + 1)
            single.append((time.perf_counter() - t) * 1000)
        reps = 10
        predict_all(0, batch)
        t = time.perf_counter()
        for _ in range(reps):
            predict_all(0, batch)
        return percentiles(single), reps * batch / (time.perf_counter() - t)

    single, booster_rate = measure(lightgbm)
    compiled_single, compiled_rate = measure(compiled) if len(compiled) == len(cores) else ({}, float("nan"))
    score_frame(rows, cores)
    t = time.perf_counter()
    for _ in range(3):
        score_frame(rows, cores)
    score_frame_rate = 3 * batch / (time.perf_counter() - t)
    one = frame.head(1)
    sf_single = []
    for _ in range(200):
        t = time.perf_counter()
        score_frame(one, cores)
        sf_single.append((time.perf_counter() - t) * 1000)
    return {
        **service_core(frame, cores, batch),
        "trees_per_model": trees,
        "versions": models.versions,
        "boosters_single_row": single,
        "boosters_batch_rows_per_s": booster_rate,
        "compiled_single_row": compiled_single,
        "compiled_batch_rows_per_s": compiled_rate,
        "score_frame_batch_rows_per_s": score_frame_rate,
        "score_frame_single_row": percentiles(sf_single),
    }


def service_core(frame, cores, batch: int) -> dict:
    """What the service runs per request, in this process: decoding a JSON body to columns
    (pydantic model + `customers_to_columns`, the old path, vs `serving.fast_json`), the scoring
    core `score_columns` (1 row and `batch` rows), and the part of a batch spent on the churn
    drivers (TreeSHAP tables on the flagged customers, against LightGBM `pred_contrib`)."""
    from benchmarks.bench_drivers import reference_drivers
    from features.registry import FEATURES
    from serving.fast_json import FastRequests
    from serving.schemas import customer_model, customers_to_columns, score_request_model
    from tests.serving.champions import to_request_rows
    from training.scoring import score_columns
    from training.segments import DEFAULT_DRIVERS, churn_drivers

    rows = to_request_rows(frame.head(batch))
    model = score_request_model(customer_model(FEATURES), 10_000)
    fast = FastRequests(FEATURES, 10_000)

    out: dict = {}
    for n, reps in ((1, 300), (batch, 5)):
        body = json.dumps({"customers": rows[:n]}).encode()
        out[f"decode_pydantic_{n}_ms"] = median_ms(
            lambda b=body: customers_to_columns(model.model_validate_json(b).customers, FEATURES), reps
        )
        out[f"decode_fast_json_{n}_ms"] = median_ms(lambda b=body: fast.decode(b), reps)
        decoded = fast.decode(body)
        out[f"score_columns_{n}_ms"] = median_ms(lambda d=decoded, k=n: score_columns(d.columns, k, cores), reps)
    scored = score_columns(decoded.columns, batch, cores)
    flagged = np.asarray(scored["churn"], dtype=bool)
    churn = cores["churn"]
    X = churn.matrix(decoded.columns)[flagged]
    out["churn_flagged_in_batch"] = int(flagged.sum())
    out["churn_drivers_batch_ms"] = median_ms(lambda: churn_drivers(churn, X), 3)
    # The same vote on TreeSHAP for every flagged customer (the attribution before #18) and on path
    # attributions alone: cost and agreement of the default (path, TreeSHAP re-vote within exact_margin).
    treeshap = DEFAULT_DRIVERS.model_copy(update={"exact_margin": float("inf")})
    path_only = DEFAULT_DRIVERS.model_copy(update={"exact_margin": 0.0})
    out["churn_drivers_treeshap_batch_ms"] = median_ms(lambda: churn_drivers(churn, X, treeshap), 3)
    out["churn_drivers_path_only_batch_ms"] = median_ms(lambda: churn_drivers(churn, X, path_only), 3)
    # TreeSHAP is `training.treeshap`'s tables; the reference is LightGBM's own `pred_contrib`.
    out["churn_drivers_pred_contrib_batch_ms"] = median_ms(lambda: reference_drivers(churn, X, treeshap), 3)
    out["churn_drivers_hybrid_pred_contrib_batch_ms"] = median_ms(
        lambda: reference_drivers(churn, X, DEFAULT_DRIVERS), 3
    )
    reference = reference_drivers(churn, X, treeshap)
    out["churn_driver_agreement_default"] = float(np.mean(churn_drivers(churn, X) == reference))
    out["churn_driver_agreement_treeshap_tables"] = float(np.mean(churn_drivers(churn, X, treeshap) == reference))
    out["churn_driver_agreement_path_only"] = float(np.mean(churn_drivers(churn, X, path_only) == reference))
    out["churn_driver_default_equals_pred_contrib_hybrid"] = float(
        np.mean(churn_drivers(churn, X) == reference_drivers(churn, X, DEFAULT_DRIVERS))
    )
    return out


def ab_balance(
    home: Path, env: dict, loads: list, per_thread: int, rounds: int, baseline: Path | None,
    single_bodies: list[bytes], n_single: int,
) -> int:  # fmt: skip
    """`rounds` rounds, alternating between this checkout's server and `baseline`'s (both up for the
    whole run, one measured at a time), of: the GET /livez floor and `n_single` single-customer
    requests (p50 / p99, a new connection each), then 2-thread batch throughput on each load (JSON,
    Arrow): customers/s and the busiest worker's share of the workers' CPU (0.5: the two
    connections went to different workers). Prints one line per measurement, then the medians."""
    from contextlib import ExitStack

    from serving.process import PROJECT_ROOT, exit_on_signals, running_service

    roots = {"branch": PROJECT_ROOT, **({"baseline": baseline.resolve()} if baseline else {})}
    rows: list[dict] = []
    with exit_on_signals(), ExitStack() as stack:
        servers = {}
        for name, root in roots.items():
            # Each its own BentoML home (a server wipes its metrics folder at start), same models.
            bento_home = home / f"bentoml-{name}"
            if not bento_home.exists():
                shutil.copytree(env["BENTOML_HOME"], bento_home, symlinks=True)
            server_env = {**env, "BENTOML_HOME": str(bento_home),
                          "CLIENTLENS_INFERENCE_LOG": str(home / f"inference_log_{name}")}  # fmt: skip
            url = stack.enter_context(running_service(
                env=server_env,
                log_path=home / f"bench-server-{name}.log", ready_timeout=600, root=root))  # fmt: skip
            parsed = urlparse(url)
            servers[name] = (parsed.hostname, parsed.port, server_pid(parsed.port))
        for r in range(rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                host, port, pid = servers[name]
                floor = floor_latency(host, port, 300)
                single = single_latency(host, port, single_bodies, {"content-type": "application/json"}, n_single)
                rows.append({"round": r, "server": name, "load": "single", "floor_p50_ms": floor["p50_ms"],
                             "p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"],
                             "loadavg_1m": os.getloadavg()[0]})  # fmt: skip
                print(f"round {r} {name:<8} floor p50 {floor['p50_ms']:.2f} ms  single p50 {single['p50_ms']:.2f} "
                      f"p99 {single['p99_ms']:.2f} ms ({single['p50_ms'] / floor['p50_ms']:.2f}x floor)  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
                for bodies, headers, path, kind in loads:
                    res = batch_throughput(host, port, bodies, headers, per_thread, 2, 1000, path, pid)
                    cpu = res["worker_cpu_s"]
                    share = max(cpu) / sum(cpu) if sum(cpu) > 0 else float("nan")
                    row = {"round": r, "server": name, "load": kind, "customers_per_s": res["customers_per_s"],
                           "worker_cpu_s": cpu, "busiest_share": share, "errors": res["errors"],
                           "loadavg_1m": os.getloadavg()[0]}  # fmt: skip
                    rows.append(row)
                    print(f"round {r} {name:<8} {kind:<5} {row['customers_per_s']:>8,.0f} customers/s  workers' CPU "
                          f"{cpu} s (busiest {share:.2f})  errors {row['errors']}  load {row['loadavg_1m']:.1f}",
                          flush=True)  # fmt: skip
    print(f"{'server':<9}{'floor p50':>10}{'single p50':>12}{'p99':>8}   (medians over rounds, ms)")
    for name in roots:
        mine = [r for r in rows if r["server"] == name and r["load"] == "single"]
        print(f"{name:<9}" + "".join(f"{np.median([r[k] for r in mine]):>{w}.2f}"
                                     for k, w in (("floor_p50_ms", 10), ("p50_ms", 12), ("p99_ms", 8))))  # fmt: skip
    print(f"{'server':<9}{'load':<6}{'median customers/s':>20}{'rounds split ~evenly':>22}")
    for name in roots:
        for kind in sorted({r["load"] for r in rows} - {"single"}):
            mine = [r for r in rows if r["server"] == name and r["load"] == kind]
            even = sum(r["busiest_share"] <= 0.65 for r in mine)
            print(
                f"{name:<9}{kind:<6}{np.median([r['customers_per_s'] for r in mine]):>20,.0f}{even:>17} of {len(mine)}"
            )
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "serving_ab.json").write_text(json.dumps(rows, indent=2))
    return 0


def server_rss(pid: int) -> int:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def server_pid(port: int) -> int:
    """The `bentoml serve` arbiter listening on `port` (the process group leader we started)."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "serve" in cmd and "--port" in cmd and str(port) in cmd:
            return proc.info["pid"]
    raise RuntimeError("server process not found")


def sustained(host, port, single_bodies, batch_body, headers, seconds: float, rate: float, pid: int) -> dict:
    """Fixed-rate single-customer requests (+ one 100-customer batch per second) for `seconds`."""
    stop = threading.Event()
    samples: list[tuple[float, int]] = []

    def sampler() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - t0, server_rss(pid)))
            stop.wait(1.0)

    sampler_thread = threading.Thread(target=sampler, daemon=True)
    sampler_thread.start()
    errors, ms, late = 0, [], 0
    start = time.monotonic()
    i = 0
    next_batch = start
    while True:
        due = start + i / rate
        now = time.monotonic()
        if now - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:
            late += 1
        if time.monotonic() >= next_batch:
            status, _, _ = post(host, port, "/score", batch_body, headers)
            errors += status != 200
            next_batch += 1.0
        try:
            status, elapsed, _ = post(host, port, "/score", single_bodies[i % len(single_bodies)], headers)
            errors += status != 200
            ms.append(elapsed * 1000)
        except OSError:
            errors += 1
        i += 1
    stop.set()
    sampler_thread.join()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples]) / 2**20
    slope = float(np.polyfit(t, rss, 1)[0] * 60) if len(t) > 2 else float("nan")
    # Memory after warm-up: first 10% of the samples are start-up allocations (caches, pools).
    settled = rss[max(1, len(rss) // 10) :]
    return {
        "seconds": seconds, "rate_per_s": rate, "requests": i, "errors": errors, "late_by_1s": late,
        "latency": percentiles(ms) if ms else {}, "rss_mib_start": float(rss[0]), "rss_mib_end": float(rss[-1]),
        "rss_mib_max": float(rss.max()), "rss_mib_settled_min": float(settled.min()),
        "rss_mib_settled_max": float(settled.max()), "rss_slope_mib_per_min": slope,
    }  # fmt: skip


def single_rows(single: dict, floor: dict) -> list[str]:
    """The floor and single-customer rows of the table, each target judged on its own."""

    def met(ok: bool) -> str:
        return "yes" if ok else "no"

    p50, p99, ratio = single["p50_ms"], single["p99_ms"], single["p50_ms"] / floor["p50_ms"]
    return [
        f"| floor: GET /livez, new connection per request, p50 / p99 | {floor['p50_ms']:.2f} / {floor['p99_ms']:.2f} ms "
        "| | |",
        f"| single customer POST /score (3 models), p50 | {p50:.2f} ms | <= {TARGETS['p50_ms']} ms "
        f"| {met(p50 <= TARGETS['p50_ms'])} |",
        f"| single customer p50 / floor p50 | {ratio:.1f}x | <= {TARGETS['p50_over_floor']}x "
        f"| {met(ratio <= TARGETS['p50_over_floor'])} |",
        f"| single customer, p99 | {p99:.2f} ms | <= {TARGETS['p99_ms']} ms | {met(p99 <= TARGETS['p99_ms'])} |",
    ]


def markdown(result: dict) -> str:
    m, s, b, lb, sus = (result["machine"], result["single"], result["batch"], result["in_process"], result["sustained"])
    fl = result["floor_livez"]
    n = result["batch_size"]
    lines = [
        "## Serving: speed against the floor (issue #18, helper `speed`)",
        "",
        f"`{result['command']}` on {result['date']} (UTC). Machine: {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB RAM; 1-min load average {m['loadavg_1m']} at start, {result['loadavg_1m_at_end']} "
        "at end (shared with other sessions' jobs; the client runs on the same 2 cores as the server: compare "
        "the ratios within this run).",
        "",
        f"Service: `bentoml serve serving.service:Clientlens`, {result['workers']} worker(s), loopback. Models: "
        f"tier / churn / risk champions with {', '.join(f'{k} {v}' for k, v in lb['trees_per_model'].items())} "
        f"trees (iterations), {result['features']} features, trained on a simulated bank of {result['customers']} "
        "customers. Valid `/score` bodies take the msgspec path (`serving.fast_json`).",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        *single_rows(s, fl),
    ]
    for r in b:
        body = "JSON, POST /score" if r["path"] == "/score" else "Arrow in/out, POST /score_arrow"
        body += ", answers parsed by the client (msgspec)" if r.get("parse") else ""
        target = TARGETS["batch_customers_per_s"] if r["path"] == "/score" and r["threads"] == 2 else None
        cpu = f"; client CPU {r['client_cpu_s']:.2f} s, workers {r['worker_cpu_s']} s in {r['seconds']:.1f} s"
        lines.append(
            f"| batch of {n:,}, {body}, {r['threads']} client thread(s) | {r['customers_per_s']:,.0f} customers/s "
            f"({r['errors']} errors{cpu if 'client_cpu_s' in r else ''}) | {f'>= {target:,} /s' if target else ''} "
            f"| {('yes' if r['customers_per_s'] >= target else 'no') if target else ''} |"
        )
    lines += [
        "",
        "In process, same models and rows (median ms; what one request costs the worker):",
        "",
        "| step | 1 customer | 1,000 customers |",
        "|---|---|---|",
        f"| decode JSON to columns: pydantic model + `customers_to_columns` (the old path, still the error path) "
        f"| {lb['decode_pydantic_1_ms']:.3f} | {lb[f'decode_pydantic_{n}_ms']:.1f} |",
        f"| decode JSON to columns: `serving.fast_json` (msgspec) | {lb['decode_fast_json_1_ms']:.3f} "
        f"| {lb[f'decode_fast_json_{n}_ms']:.1f} |",
        f"| `score_columns` (all scoring: 3 models, calibration, segments, policy, churn drivers) "
        f"| {lb['score_columns_1_ms']:.3f} | {lb[f'score_columns_{n}_ms']:.1f} |",
        f"| of which churn drivers for the {lb['churn_flagged_in_batch']} flagged customers (path attributions, "
        f"TreeSHAP tables re-vote within `exact_margin`; agreement with `pred_contrib` "
        f"{lb['churn_driver_agreement_default']:.3f}, with main's hybrid "
        f"{lb['churn_driver_default_equals_pred_contrib_hybrid']:.3f}) | | {lb['churn_drivers_batch_ms']:.1f} |",
        f"| the same hybrid with LightGBM `pred_contrib` for the re-vote (main before the tables) | "
        f"| {lb['churn_drivers_hybrid_pred_contrib_batch_ms']:.1f} |",
        f"| churn drivers on the TreeSHAP tables for every flagged customer (agreement with `pred_contrib` "
        f"{lb['churn_driver_agreement_treeshap_tables']:.3f}) | | {lb['churn_drivers_treeshap_batch_ms']:.1f} |",
        f"| churn drivers on `pred_contrib` for every flagged customer (before #18) | "
        f"| {lb['churn_drivers_pred_contrib_batch_ms']:.1f} |",
        f"| churn drivers on path attributions alone (agreement {lb['churn_driver_agreement_path_only']:.3f}) | "
        f"| {lb['churn_drivers_path_only_batch_ms']:.1f} |",
        f"| the 3 compiled boosters alone | {lb['compiled_single_row']['p50_ms']:.3f} "
        f"| {1000 * n / lb['compiled_batch_rows_per_s']:.1f} |",
        f"| `score_frame` (batch scoring's frame wrapper) | {lb['score_frame_single_row']['p50_ms']:.3f} "
        f"| {1000 * n / lb['score_frame_batch_rows_per_s']:.1f} |",
        "",
        (
            f"Sustained (short, this script): {sus['seconds']:.0f} s at {sus['rate_per_s']:.0f} single-customer "
            f"requests/s plus one 100-customer batch per second: {sus['requests']:,} requests, "
            f"**{sus['errors']} errors**. "
            if sus
            else "No sustained load (`--sustain-seconds 0`). "
        )
        + "Raw numbers: `benchmarks/out/serving.json`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_serving", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="reuse a clientlens home from a previous run (skips training)")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=300, help="trees per booster")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--single", type=int, default=2000, help="single-customer requests")
    parser.add_argument("--batches", type=int, default=20, help="1,000-customer requests per client thread")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--sustain-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0, help="single-customer requests/s while sustained")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md section")
    parser.add_argument("--ab-rounds", type=int, default=0,
                        help="only the floor, single-customer latency and 2-thread batch throughput (JSON, Arrow) with "
                             "each worker's CPU share, this many rounds; alternating with a server of "
                             "--baseline-root when given")  # fmt: skip
    parser.add_argument(
        "--baseline-root",
        type=Path,
        help="with --ab-rounds: another checkout (e.g. `git archive main`) to serve side by side",
    )
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="clientlens-bench-serving-"))
    env = {
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": str(home / "inference_log"),
    }
    os.environ.update(env)
    info = {}
    if args.home is None:
        home.mkdir(parents=True, exist_ok=True)
        print(f"training champions under {home} ...", file=sys.stderr)
        info = prepare_home(home, args.customers, args.rounds, args.seed)
    latest_path = home / "work" / "features" / "latest.parquet"

    import pandas as pd

    from features.registry import FEATURES
    from serving.process import exit_on_signals, import_models, running_service
    from tests.serving.champions import to_request_rows

    frame = pd.read_parquet(latest_path).reset_index(drop=True)
    rows = to_request_rows(frame)
    single_bodies = [json.dumps({"customers": [r]}).encode() for r in rows[:500]]
    batch = 1000
    batch_bodies = [json.dumps({"customers": rows[i:i + batch]}).encode()
                    for i in range(0, max(batch, len(rows) - batch + 1), batch)][:4]  # fmt: skip
    batch_bodies = [b for b in batch_bodies if b.count(b'"customer_id"') == batch] or batch_bodies
    small_batch = json.dumps({"customers": rows[:100]}).encode()
    from serving.arrow_io import ARROW_STREAM, request_table, to_arrow_stream

    arrow_bodies = [to_arrow_stream(request_table(frame.iloc[i:i + batch]))
                    for i in range(0, max(batch, len(frame) - batch + 1), batch)][:4]  # fmt: skip
    arrow_headers = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}

    import_models(env)  # the service's store; the in-process bound loads the same models from it
    headers = {"content-type": "application/json"}
    if args.ab_rounds:
        serve_env = {**env, "CLIENTLENS_FEATURES_TABLE": str(latest_path), "CLIENTLENS_WORKERS": str(args.workers),
                     "CLIENTLENS_RELOAD_SECONDS": "0"}  # fmt: skip
        loads = [(batch_bodies, headers, "/score", "json"), (arrow_bodies, arrow_headers, "/score_arrow", "arrow")]
        return ab_balance(home, serve_env, loads, args.batches, args.ab_rounds, args.baseline_root, single_bodies,
                          args.single)  # fmt: skip
    print("in-process bound ...", file=sys.stderr)
    bound = in_process_bound(frame, batch, 2000)
    serve_env = {**env, "CLIENTLENS_FEATURES_TABLE": str(latest_path), "CLIENTLENS_WORKERS": str(args.workers),
                 "CLIENTLENS_RELOAD_SECONDS": "30"}  # fmt: skip
    result: dict = {
        "command": "uv run python -m benchmarks.bench_serving " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "workers": args.workers,
        "customers": args.customers,
        "features": len(FEATURES),
        "setup": info,
        "in_process": bound,
        "targets": TARGETS,
        "batch_size": batch,
    }
    # SIGTERM / SIGINT stop the server too (its own process group; a killed script used to orphan it).
    with (
        exit_on_signals(),
        running_service(env=serve_env, log_path=home / "bench-server.log", ready_timeout=600) as url,
    ):
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port
        pid = server_pid(port)
        result["floor_livez"] = floor_latency(host, port, min(args.single, 1000))
        print("single-customer latency ...", file=sys.stderr)
        result["single"] = single_latency(host, port, single_bodies, headers, args.single)
        print("batch throughput ...", file=sys.stderr)
        result["batch"] = (
            [
                batch_throughput(host, port, batch_bodies, headers, args.batches, threads, batch, pid=pid)
                for threads in (1, 2)
            ]
            + [batch_throughput(host, port, batch_bodies, headers, args.batches, 2, batch, pid=pid, parse=True)]
            + [
                batch_throughput(
                    host, port, arrow_bodies, arrow_headers, args.batches, threads, batch, "/score_arrow", pid
                )
                for threads in (1, 2)
            ]
        )
        result["sustained"] = None
        if args.sustain_seconds > 0:
            print(f"sustained load {args.sustain_seconds:.0f}s ...", file=sys.stderr)
            result["sustained"] = sustained(host, port, single_bodies, small_batch, headers, args.sustain_seconds,
                                            args.rate, pid)  # fmt: skip
    result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "serving.json").write_text(json.dumps(result, indent=2))

    s, lb = result["single"], result["in_process"]
    print(f"{'measure':<44}{'service':>16}{'in-process':>16}{'ratio':>8}")
    print(f"{'single customer p50 (ms)':<44}{s['p50_ms']:>16.2f}{lb['boosters_single_row']['p50_ms']:>16.3f}"
          f"{s['p50_ms'] / lb['boosters_single_row']['p50_ms']:>8.1f}")  # fmt: skip
    print(f"{'single customer p99 (ms)':<44}{s['p99_ms']:>16.2f}{lb['boosters_single_row']['p99_ms']:>16.3f}"
          f"{s['p99_ms'] / lb['boosters_single_row']['p99_ms']:>8.1f}")  # fmt: skip
    for r in result["batch"]:
        label = f"{r['path']} 1,000/batch customers/s, threads={r['threads']}{', parsed' if r['parse'] else ''}"
        print(f"{label:<44}{r['customers_per_s']:>16,.0f}{lb['boosters_batch_rows_per_s']:>16,.0f}"
              f"{lb['boosters_batch_rows_per_s'] / r['customers_per_s']:>8.1f}   client CPU {r['client_cpu_s']:.2f} s, "
              f"workers' CPU {r['worker_cpu_s']} s in {r['seconds']:.2f} s")  # fmt: skip
    fl = result["floor_livez"]
    print(f"{'floor: GET /livez p50 / p99 (ms)':<44}{fl['p50_ms']:>8.2f} / {fl['p99_ms']:.2f}")
    print(f"{'single customer p50 / floor p50':<44}{s['p50_ms'] / fl['p50_ms']:>16.2f}")
    for key in (
        "decode_pydantic_1_ms",
        "decode_fast_json_1_ms",
        "score_columns_1_ms",
        f"decode_pydantic_{batch}_ms",
        f"decode_fast_json_{batch}_ms",
        f"score_columns_{batch}_ms",
        "churn_drivers_batch_ms",
        "churn_drivers_treeshap_batch_ms",
        "churn_drivers_path_only_batch_ms",
        "churn_driver_agreement_default",
        "churn_driver_agreement_path_only",
        "churn_drivers_pred_contrib_batch_ms",
        "churn_drivers_hybrid_pred_contrib_batch_ms",
        "churn_driver_agreement_treeshap_tables",
        "churn_driver_default_equals_pred_contrib_hybrid",
    ):
        print(f"{'in process ' + key:<44}{lb[key]:>16.3f}")  # fmt: skip
    print(f"{'score_frame in process, 1 row p50 (ms)':<44}{lb['score_frame_single_row']['p50_ms']:>16.2f}")
    sus = result["sustained"]
    if sus:
        print(f"sustained: {sus['requests']} requests, {sus['errors']} errors, RSS {sus['rss_mib_start']:.0f} -> "
              f"{sus['rss_mib_end']:.0f} MiB (slope {sus['rss_slope_mib_per_min']:+.2f} MiB/min)")  # fmt: skip
    print(f"wrote {OUT_DIR / 'serving.json'}")
    if args.markdown:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
