"""The churn drivers and the JSON decode of one `POST /score` batch, this tree against another, in one process (#18):

    nice -n 10 .venv/bin/python -m benchmarks.bench_drivers_ab --home /tmp/b8/home --against /tmp/main-tree

`--home` is a `benchmarks.bench_serving` home (trained); `--against` another checkout or `git archive` export
(e.g. main's). Its `serving/fast_json.py` and `training/treeshap.py` are loaded from their files beside this
tree's (their own imports come from this tree: those two files import nothing that differs) and its
`training/segments.py` likewise, so its `churn_drivers` runs with its own TreeSHAP tables
(`FamilyTreeShap`, put in `training.treeshap`'s cache for the churn booster while it runs). Each rep runs every
variant once, alternating, so a loaded machine slows both alike; times are CPU ms of this thread
(`time.thread_time`), medians over `--reps`, for `--rows` customers (the churn drivers: those of them the
champion flags) and for one customer. Before timing, both trees' outputs are compared: the same decoded
columns, bitwise the same TreeSHAP family sums, the same driver labels (on the batch and on NaN / zero-band
rows). Prints a table and writes benchmarks/out/bench_drivers_ab.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

OUT = Path(__file__).parent / "out"


def _load(tree: Path, relative: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, tree / relative)
    assert spec is not None and spec.loader is not None, tree / relative
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_drivers_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a `benchmarks.bench_serving` home (trained)")
    parser.add_argument("--against", type=Path, required=True, help="another tree (e.g. a `git archive main` export)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=21)
    args = parser.parse_args(argv)
    home = args.home
    os.environ.update({
        "CLIENTLENS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "CLIENTLENS_INFERENCE_LOG": tempfile.mkdtemp(prefix="bench-drivers-ab-log-"),
    })  # fmt: skip

    import pandas as pd

    from core.tasks import CHURN_DRIVERS
    from features.registry import FEATURES
    from serving.fast_json import FastRequests
    from serving.models_store import load_model_set
    from tests.serving.champions import to_request_rows
    from training import scoring, treeshap
    from training.segments import DEFAULT_DRIVERS, _family_groups, _named, churn_drivers

    other_json = _load(args.against, "serving/fast_json.py", "other_fast_json")
    other_shap_module = _load(args.against, "training/treeshap.py", "other_treeshap")
    other_segments = _load(args.against, "training/segments.py", "other_segments")

    frame = pd.read_parquet(home / "work" / "features" / "latest.parquet").reset_index(drop=True).head(args.rows)
    rows = to_request_rows(frame)
    body, body_one = (json.dumps({"customers": r}).encode() for r in (rows, rows[:1]))
    mine_json, their_json = (
        FastRequests(FEATURES, max(len(rows), 10)),
        other_json.FastRequests(FEATURES, max(len(rows), 10)),
    )
    decoded, theirs_decoded = mine_json.decode(body), their_json.decode(body)
    assert decoded is not None and theirs_decoded is not None
    for name, col in decoded.columns.items():
        other = theirs_decoded.columns[name]
        assert col.dtype == other.dtype and (col.tolist() == other.tolist() if col.dtype == object
                                             else np.array_equal(col, other, equal_nan=True)), name  # fmt: skip

    cores = load_model_set().cores
    churn = cores["churn"]
    out = scoring.score_columns(decoded.columns, len(rows), cores)
    X = churn.matrix(decoded.columns)
    flagged = X[np.asarray(out["churn"], dtype=bool)]
    groups = _named(_family_groups(DEFAULT_DRIVERS, churn.features))
    n_groups = len(CHURN_DRIVERS)
    mine_shap = treeshap.family_treeshap(churn.booster)
    their_shap = other_shap_module.FamilyTreeShap(churn.booster)
    for shap in (mine_shap, their_shap):
        shap.table(groups, n_groups)

    def their_drivers(rows_: np.ndarray) -> np.ndarray:
        mine = treeshap._SHAP[churn.booster]
        treeshap._SHAP[churn.booster] = their_shap  # the other tree's tables, through this tree's model.py
        try:
            return other_segments.churn_drivers(churn, rows_, DEFAULT_DRIVERS)
        finally:
            treeshap._SHAP[churn.booster] = mine

    rng = np.random.default_rng(0)
    edge = X[:300].copy()
    edge[rng.random(edge.shape) < 0.3] = np.nan
    edge[:5], edge[5:10], edge[10:15] = np.nan, 0.0, 1e-40
    checks: dict[str, bool] = {}
    for label, M in (("batch", X), ("flagged", flagged), ("NaN / zero band", edge)):
        leaves = churn.leaf_indices(M)
        a, ok_a = mine_shap.grouped(M, groups, n_groups, leaves)
        b, ok_b = their_shap.grouped(M, groups, n_groups, leaves)
        checks[f"TreeSHAP family sums bitwise equal ({label})"] = bool(
            np.array_equal(a, b) and np.array_equal(ok_a, ok_b)
        )
        checks[f"driver labels equal ({label})"] = bool((churn_drivers(churn, M) == their_drivers(M)).all())
    for k, v in checks.items():
        print(f"{k}: {v}")
    if not all(checks.values()):
        print("error: the trees disagree", file=sys.stderr)
        return 1

    leaves_flagged, leaves_one = churn.leaf_indices(flagged), churn.leaf_indices(flagged[:1])
    variants: dict[str, tuple[Any, Any]] = {
        f"decode, {len(rows)} customers": (lambda: their_json.decode(body), lambda: mine_json.decode(body)),
        "decode, 1 customer": (lambda: their_json.decode(body_one), lambda: mine_json.decode(body_one)),
        f"churn_drivers, {len(flagged)} flagged": (
            lambda: their_drivers(flagged),
            lambda: churn_drivers(churn, flagged),
        ),
        "churn_drivers, 1 row": (lambda: their_drivers(flagged[:1]), lambda: churn_drivers(churn, flagged[:1])),
        f"  TreeSHAP by family, {len(flagged)} rows": (
            lambda: their_shap.grouped(flagged, groups, n_groups, leaves_flagged),
            lambda: mine_shap.grouped(flagged, groups, n_groups, leaves_flagged),
        ),
        "  TreeSHAP by family, 1 row": (
            lambda: their_shap.grouped(flagged[:1], groups, n_groups, leaves_one),
            lambda: mine_shap.grouped(flagged[:1], groups, n_groups, leaves_one),
        ),
    }
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in variants}
    for _ in range(args.reps):
        for key, fns in variants.items():
            for side, fn in enumerate(fns):
                t = time.thread_time()
                fn()
                times[key][side].append((time.thread_time() - t) * 1e3)
    result = {k: {"against": float(np.median(a)), "this": float(np.median(b))} for k, (a, b) in times.items()}
    print(f"{'CPU ms (median of ' + str(args.reps) + ')':<44}{'against':>10}{'this':>10}{'ratio':>8}")
    for k, r in result.items():
        print(f"{k:<44}{r['against']:>10.3f}{r['this']:>10.3f}{r['against'] / r['this']:>7.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f}")
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_drivers_ab.json").write_text(json.dumps(
        {"cpu_ms": result, "checks": checks, "loadavg_1m": os.getloadavg()[0], "argv": sys.argv[1:]}, indent=2
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
