"""Feature build time and memory vs a DuckDB reference: `python -m benchmarks.bench_features --customers N --months M`.

Three timings on the same Parquet data, in one run (compare them as ratios):

1. **full build**: `clientlens features --latest-only --workers W` (every registry feature for ONE as-of
   date, the last date in the data) in a child process; wall time and peak memory (RSS of the
   child and all its worker processes, sampled every 50 ms: the peak of the sum, and of the
   largest single process).
2. **DuckDB subset**: one SQL query computing per customer the 30/90/180-day sums and counts of
   transactions by category and direction at that date (DuckDB with W threads, warm, in process).
3. **pipeline subset**: the same aggregates, in the same shape (a row per customer, direction and
   category present), with the pipeline's own reader and kernel (`features.panel.read_range_arrow`:
   row groups chosen by `customer_id` and `ts` statistics; then `category_flows` here
   over the build's kernel `window_counts`), partitioned by customer range as
   `features.panel.plan_partitions` plans the build: on W warm local processes (largest
   ranges first, like the build) and, like `--workers 1`, one range after another in this
   process, the next range read while this one is counted (`features.panel.read_ahead`, as the
   build); reading with plain pyarrow (like DuckDB: no validation; Arrow columns straight to the
   kernel's arrays, rows left in file order since the kernel does not depend on it), and once more
   on W processes through the contract's validated reader (`features.contract.read_raw`, every
   month of the range).

Subset timings are repeated (`--repeats`, interleaved) and the medians compared. The data comes
from `--raw DIR` or is simulated into /tmp (kept for reuse). Prints a table and writes
`benchmarks/out/features-<N>x<M>.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import machine

OUT_DIR = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parents[1]
WINDOWS = (30, 90, 180)


def ensure_raw(customers: int, months: int, seed: int, raw: Path | None) -> Path:
    if raw is not None:
        return raw
    path = Path(tempfile.gettempdir()) / f"clientlens-bench-raw-{customers}x{months}-s{seed}"
    if not (path / "transactions.parquet").exists():
        from features.simulate import simulate

        print(f"simulating {customers:,} customers x {months} months into {path} ...", flush=True)
        t0 = time.perf_counter()
        simulate(path, customers, months, seed)
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def _tree_rss(proc) -> tuple[int, int]:
    """(sum, max) RSS in bytes over a psutil process and its descendants."""
    import psutil

    total = biggest = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        biggest = max(biggest, rss)
    return total, biggest


def full_build(raw: Path, workers: int, partition_size: int) -> dict:
    import psutil

    out = Path(tempfile.mkdtemp(prefix="clientlens-bench-features-"))
    cmd = [
        sys.executable,
        "-c",
        "from clientlens.cli import main; main()",
        "features",
        "--raw",
        str(raw),
        "--out",
        str(out),
        "--latest-only",
        "--workers",
        str(workers),
        "--partition-size",
        str(partition_size),
        "--json",
    ]
    peak = {"sum": 0, "max": 0}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            s, m = _tree_rss(ps)
            peak["sum"], peak["max"] = max(peak["sum"], s), max(peak["max"], m)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(stderr)
        raise SystemExit(f"feature build failed with exit code {proc.returncode}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return {
        "wall_s": round(wall, 2),
        "peak_rss_sum_gib": round(peak["sum"] / 2**30, 2),
        "peak_rss_max_process_gib": round(peak["max"] / 2**30, 2),
        "rows": summary["latest_rows"],
        "columns": summary["columns"] - 3,
        "as_of": summary["latest_as_of"],
        "partitions": summary["partitions"],
    }


def duckdb_subset(raw: Path, as_of, threads: int) -> tuple[float, object]:
    import duckdb
    import pandas as pd

    t_end = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    aggs = []
    for w in WINDOWS:
        since = t_end - pd.Timedelta(days=w)
        aggs.append(f"sum(amount) FILTER (WHERE ts >= TIMESTAMP '{since}') AS sum_{w}d")
        aggs.append(f"count(*) FILTER (WHERE ts >= TIMESTAMP '{since}') AS count_{w}d")
    lo = t_end - pd.Timedelta(days=max(WINDOWS))
    sql = f"""
        SELECT customer_id, direction, category, {", ".join(aggs)}
        FROM read_parquet('{raw / "transactions.parquet"}')
        WHERE ts < TIMESTAMP '{t_end}' AND ts >= TIMESTAMP '{lo}'
        GROUP BY ALL
    """
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"SELECT count(*) FROM read_parquet('{raw / 'customers.parquet'}')").fetchall()  # warm up
    t0 = time.perf_counter()
    result = con.sql(sql).to_arrow_table()
    return time.perf_counter() - t0, result


def category_flows(prep, as_of, windows=WINDOWS):
    """Sums and counts of transactions per customer, direction and category over `windows` at `as_of`.

    The behaviour family's kernel (`window_counts`, as `_transaction_features` calls it) on its
    own, in the shape of the equivalent SQL `GROUP BY customer_id, direction, category` that the
    benchmark runs in DuckDB: one row per (customer, direction, category) with a transaction in
    the largest window; columns `customer_id`, `direction`, `category` (categoricals), then
    `sum_<w>d` and `count_<w>d` per window. Rows of an unknown category are left out.
    (Benchmark-only: it lives here, not in the installed package; so does `arrow_codes`.)
    """
    import numpy as np
    import pandas as pd

    from features import vocab
    from features.build import CATEGORIES, N_CAT, N_DIR, window_counts

    tx = prep.tx
    t_end = (pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)).value
    group = np.where(tx["cat"] < 0, -1, tx["dir"].astype(np.int32) * N_CAT + tx["cat"])
    count, total = window_counts(tx["cust"], tx["ts"], group, prep.n, N_DIR * N_CAT, t_end, windows, tx["amount"])
    g, c = np.nonzero(count[-1])  # the groups present: some row in the largest window
    cols = {
        "customer_id": prep.customer_ids[c],
        "direction": pd.Categorical.from_codes(g // N_CAT, vocab.DIRECTIONS),
        "category": pd.Categorical.from_codes(g % N_CAT, CATEGORIES),
    }
    for i, w in enumerate(sorted(windows)):
        cols[f"sum_{w}d"] = total[i][g, c]
        cols[f"count_{w}d"] = count[i][g, c]
    return pd.DataFrame(cols)


def arrow_codes(column, categories):
    """int8 codes of an Arrow string column in a closed vocabulary (-1 for null or unknown).

    Dictionary-encoded columns (as the simulator writes them) are mapped through their
    dictionary, so no string is decoded per row.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    vocab_index = {v: i for i, v in enumerate(categories)}
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = np.empty(sum(len(c) for c in chunks), dtype=np.int8)
    offset = 0
    for chunk in chunks:
        part = out[offset : offset + len(chunk)]
        offset += len(chunk)
        if pa.types.is_dictionary(chunk.type):
            lookup = np.array([vocab_index.get(v, -1) for v in chunk.dictionary.to_pylist()] + [-1], dtype=np.int8)
            idx = chunk.indices
            if idx.null_count:
                idx = idx.fill_null(len(lookup) - 1)
            np.take(lookup, idx.to_numpy(zero_copy_only=False), out=part)
        else:
            codes = pc.index_in(chunk, value_set=pa.array(list(categories), type=pa.string()))
            part[:] = codes.fill_null(-1).to_numpy(zero_copy_only=False)
    return out


def _subset_read(raw: str, lo: int, hi: int, as_of: str, validated: bool):
    """One customer range's transactions as the kernel's arrays (`features.build.Prepared`)."""
    import numpy as np
    import pandas as pd

    from features import vocab
    from features.build import CATEGORIES, Prepared, positions, prepare

    t_end = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    since = t_end - pd.Timedelta(days=max(WINDOWS))
    if validated:
        from features.contract import read_raw

        return prepare(read_raw(raw, tables=["transactions"], customer_ids=(lo, hi + 1)))
    # the pipeline's reader (row groups chosen by customer_id and ts statistics), straight from
    # Arrow to the kernel's arrays: no pandas, dictionary columns mapped to codes by dictionary
    import pyarrow as pa

    from features.panel import read_range_arrow

    cols = ["customer_id", "ts", "amount", "direction", "category"]
    tx = read_range_arrow(
        Path(raw) / "transactions.parquet", (lo, hi), "ts", since, t_end, columns=cols, customer_order=False
    )  # the kernel does not depend on row order
    ids = np.arange(lo, hi + 1, dtype=np.int64)  # simulated ids are dense
    cust, _ = positions(tx["customer_id"].to_numpy(), ids)  # as `prepare` does
    prep = Prepared(customer_ids=ids, customers=pd.DataFrame({"customer_id": ids}))
    ts = tx["ts"].cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy()
    prep.tx = {
        "cust": cust,
        "ts": ts,
        "amount": tx["amount"].to_numpy(),
        "dir": arrow_codes(tx["direction"], vocab.DIRECTIONS),
        "cat": arrow_codes(tx["category"], CATEGORIES),
    }
    return prep


def subset_partition(raw: str, lo: int, hi: int, as_of: str, validated: bool):
    """One customer range: read transactions, aggregate with the pipeline's kernel."""
    return category_flows(_subset_read(raw, lo, hi, as_of, validated), as_of, WINDOWS)


def _warm(_: int = 0) -> int:
    import features.build
    import features.contract  # noqa: F401

    return 0


def pipeline_subset(raw: Path, as_of, workers: int, ranges, validated: bool, pool) -> tuple[float, object]:
    import pandas as pd

    t0 = time.perf_counter()
    # like features.panel._run_local: largest ranges first, results in range order
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0] - ranges[i][1])
    futures = {i: pool.submit(subset_partition, str(raw), *ranges[i], str(as_of), validated) for i in order}
    frames = [futures[i].result() for i in range(len(ranges))]
    result = pd.concat(frames, ignore_index=True)
    return time.perf_counter() - t0, result


def pipeline_subset_inprocess(raw: Path, as_of, ranges) -> tuple[float, object]:
    """The pipeline's `--workers 1` shape: partitions one after another in this process, the next
    range's read overlapping this one's kernel (`features.panel.read_ahead`, as the build does)."""
    import pandas as pd

    from features.panel import read_ahead

    t0 = time.perf_counter()
    frames = read_ahead(
        ranges,
        lambda r: _subset_read(str(raw), r[0], r[1], str(as_of), False),
        lambda _, prep: category_flows(prep, as_of, WINDOWS),
    )
    result = pd.concat(frames, ignore_index=True)
    return time.perf_counter() - t0, result


def check_agreement(duck, ours) -> bool:
    """The two subsets hold the same groups with the same sums and counts (every group, every window)."""
    import numpy as np

    keys = ["customer_id", "direction", "category"]
    d = duck.to_pandas()
    d[keys[1:]] = d[keys[1:]].astype(str)
    o = ours.astype({"direction": str, "category": str})
    if len(d) != len(o):
        return False
    both = d.merge(o, on=keys, how="inner", suffixes=("_duck", "_ours"))
    if len(both) != len(d):
        return False
    for w in WINDOWS:
        for kind in ("sum", "count"):
            want, got = both[f"{kind}_{w}d_duck"].fillna(0).to_numpy(), both[f"{kind}_{w}d_ours"].to_numpy()
            if not np.allclose(got, want, rtol=1e-9, atol=1e-6):
                return False
    return True


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--raw", type=Path, default=None, help="raw folder (default: simulate into /tmp)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-size", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the subset timings")
    args = parser.parse_args(argv)

    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from features.panel import data_dates, plan_partitions, raw_paths, share_cores

    raw = ensure_raw(args.customers, args.months, args.seed, args.raw)
    info = machine()
    paths = raw_paths(raw)
    _, last = data_dates(paths)
    ranges = plan_partitions(paths["customers"], args.partition_size, args.workers, paths.get("transactions"))

    print("full build (one as-of date) ...", flush=True)
    full = full_build(raw, args.workers, args.partition_size)
    ctx = mp.get_context("forkserver")
    times: dict[str, list[float]] = {"duckdb": [], "pipeline": [], "inprocess": [], "validated": []}
    subset_partition(str(raw), *ranges[0], str(last), False)  # warm this process too
    with ProcessPoolExecutor(
        max_workers=args.workers, mp_context=ctx, initializer=share_cores, initargs=(args.workers,)
    ) as pool:  # as the build's pool
        list(pool.map(_warm, range(args.workers * 2)))
        # interleaved repeats: on a shared machine the load drifts; compare medians of one run
        for rep in range(args.repeats):
            print(f"subsets, round {rep + 1}/{args.repeats} ...", flush=True)
            t, duck = duckdb_subset(raw, last, args.workers)
            times["duckdb"].append(t)
            t, ours = pipeline_subset(raw, last, args.workers, ranges, False, pool)
            times["pipeline"].append(t)
            t, _ = pipeline_subset_inprocess(raw, last, ranges)
            times["inprocess"].append(t)
            t, _ = pipeline_subset(raw, last, args.workers, ranges, True, pool)
            times["validated"].append(t)
    agree = check_agreement(duck, ours)
    med = {k: statistics.median(v) for k, v in times.items()}
    duck_s, ours_s, ours_valid_s, inproc_s = med["duckdb"], med["pipeline"], med["validated"], med["inprocess"]

    result = {
        "benchmark": "features",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"uv run python -m benchmarks.bench_features --customers {args.customers} --months {args.months}"
        f" --workers {args.workers}",
        "customers": args.customers,
        "months": args.months,
        "workers": args.workers,
        "raw": str(raw),
        "as_of": str(last.date()),
        "full_build": full,
        "subset": {
            "what": "per customer x direction x category: sum and count of amount over 30/90/180 days",
            "repeats": args.repeats,
            "times_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
            "duckdb_s": round(duck_s, 2),
            "pipeline_s": round(ours_s, 2),
            "pipeline_validated_s": round(ours_valid_s, 2),
            "pipeline_inprocess_s": round(inproc_s, 2),
            "ratio_inprocess_to_duckdb": round(inproc_s / duck_s, 2),
            "ratio_pipeline_to_duckdb": round(ours_s / duck_s, 2),
            "ratio_validated_to_duckdb": round(ours_valid_s / duck_s, 2),
            "results_agree": agree,
        },
        "targets": {"full_build_s": 60, "full_build_gib": 4, "subset_ratio": 1.0},
        "machine": info,
    }
    print(
        f"\nfeatures: {args.customers:,} customers x {args.months} months, as-of {last.date()}, "
        f"{args.workers} workers, {full['partitions']} partitions"
    )
    print(f"{'measure':<52}{'value':>12}{'target':>10}")
    print(f"{'full build wall (s)':<52}{full['wall_s']:>12.1f}{'< 60':>10}")
    print(f"{'full build peak RSS, all processes (GiB)':<52}{full['peak_rss_sum_gib']:>12.2f}{'< 4':>10}")
    print(f"{'full build peak RSS, largest process (GiB)':<52}{full['peak_rss_max_process_gib']:>12.2f}{'':>10}")
    print(f"{'subset: DuckDB, median (s)':<52}{duck_s:>12.2f}")
    print(f"{f'subset: pipeline, {args.workers} processes, median (s)':<52}{ours_s:>12.2f}")
    print(f"{'subset: pipeline, 1 process (workers=1), median (s)':<52}{inproc_s:>12.2f}")
    print(f"{f'subset: pipeline, {args.workers} processes, validated read, median (s)':<52}{ours_valid_s:>12.2f}")
    print(f"{f'ratio pipeline ({args.workers} processes) / DuckDB':<52}{ours_s / duck_s:>12.2f}{'<= 1.0':>10}")
    print(f"{'ratio pipeline (1 process) / DuckDB':<52}{inproc_s / duck_s:>12.2f}{'<= 1.0':>10}")
    print(f"{'ratio validated pipeline / DuckDB':<52}{ours_valid_s / duck_s:>12.2f}")
    print(f"{'subset results agree':<52}{agree!s:>12}")
    print(f"machine: {info['nproc']} cpus, {info['memory_gib']} GiB, {info['cpu']}, load {info['loadavg_1m']:.1f}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"features-{args.customers}x{args.months}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
