"""Real, small champions for the serving tests and the serving benchmark.

Simulates a small bank, builds features and labels with the features package, trains
tier / churn / risk with the training package (LightGBM, a short tuning budget), registers
them in MLflow and promotes them to `champion`. No mock anywhere: the service under test
serves exactly what `clientlens train` + `clientlens promote` would produce, only smaller.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RAW_TABLES = ("customers", "holdings", "transactions", "events", "market")
TASK_TARGETS = {
    "tier": {"column": "tier_future", "kind": "multiclass", "classes": ["mass", "affluent", "hnw"]},
    "churn": {"column": "churn", "kind": "binary", "positive": 1.0},
    # The shipped training/tasks/risk.yaml (read by `task_spec`): three ordered classes from the appetite posterior.
    "risk": {"column": "revealed_risk", "kind": "ordinal", "classes": ["conservative", "balanced", "aggressive"]},
}


def build_tables(work: Path, *, customers: int = 1500, months: int = 15, seed: int = 7) -> dict[str, Path]:
    """Simulate raw tables; write `panel.parquet` (two as-of dates, labelled) and `latest.parquet`."""
    from features.build import build_features
    from features.labels import build_labels
    from features.simulate import simulate

    raw = work / "raw"
    simulate(raw, customers, months, seed)
    tables = {t: pd.read_parquet(raw / f"{t}.parquet") for t in RAW_TABLES}
    last = pd.Timestamp(tables["market"]["date"].max()).normalize()
    frames = []
    for back in (120, 150):
        as_of = (last - pd.Timedelta(days=back)).normalize()
        feats = build_features(tables, as_of)
        labels = build_labels(tables, as_of)
        frames.append(feats.merge(labels, on="customer_id", how="left", suffixes=("", "_label")))
    panel = pd.concat(frames, ignore_index=True)
    feature_dir = work / "features"
    feature_dir.mkdir(parents=True, exist_ok=True)
    panel.to_parquet(feature_dir / "panel.parquet", index=False)
    latest = build_features(tables, last)
    latest.to_parquet(feature_dir / "latest.parquet", index=False)
    truth = pd.read_parquet(raw / "truth.parquet")
    truth.to_parquet(work / "truth.parquet", index=False)
    return {
        "panel": feature_dir / "panel.parquet",
        "latest": feature_dir / "latest.parquet",
        "truth": work / "truth.parquet",
    }


def task_spec(task: str, panel: Path, *, max_rounds: int = 60, full_rounds: bool = False):
    """A task spec over `panel` with a one-trial budget; `full_rounds` disables early stopping
    (the benchmark wants boosters of exactly `max_rounds` trees)."""
    from features.registry import categorical_features, feature_names
    from training.spec import spec_from_dict

    if task == "risk":
        return _shipped_risk_spec(panel, max_rounds=max_rounds, full_rounds=full_rounds)
    spec = {
        "name": task,
        "source": panel.name,
        "id": "customer_id",
        "target": TASK_TARGETS[task],
        "features": feature_names(),
        "categorical": categorical_features(),
        "split": {"kind": "random", "test_size": 0.25, "valid_size": 0.25},
        "tuning": {
            "trials": 1,
            "timeout": 600,
            "max_rounds": max_rounds,
            "early_stopping_rounds": max_rounds if full_rounds else 10,
        },
        "baseline": {"kind": "prior"},
        "keep_columns": ["stated_risk", "tier"],
    }
    if task == "tier":
        spec["upgrade"] = {}
        # as the shipped spec: the trees learn the change from persistence (a transition prior in the model)
        spec["baseline"] = {"kind": "persistence", "column": "tier"}
        spec["boost_from_baseline"] = True
        spec["prior_strength"] = 0.5
    return spec_from_dict(spec, base_dir=panel.parent)


def _shipped_risk_spec(panel: Path, *, max_rounds: int, full_rounds: bool):
    """The shipped risk spec (features, heuristic prior, monotone 2-leaf trees, the latent-appetite posterior
    `risk_posterior` and its columns), with only the budget and the split made fit for a two-date panel: a
    random split (an out-of-time split needs three dates) and one trial of at most `max_rounds` trees."""
    from training.spec import builtin_spec

    shipped = builtin_spec("risk", panel.parent)
    budget = {"trials": 1, "timeout": 600, "max_rounds": max_rounds}
    tuning = shipped.tuning.model_copy(update={**budget, "early_stopping_rounds": max_rounds if full_rounds else 10})
    split = shipped.split.model_copy(
        update={"kind": "random", "time_column": None, "test_size": 0.25, "valid_size": 0.25}
    )
    spec = shipped.model_copy(update={"source": panel.name, "tuning": tuning, "split": split})
    assert spec.risk_posterior is not None and TASK_TARGETS["risk"]["classes"] == spec.target.classes
    return spec


def train_champion(
    task: str, panel: Path, truth: Path | None = None, *, seed: int = 0, max_rounds: int = 60, full_rounds: bool = False
) -> str:
    """Train, register (alias challenger) and promote one task; returns the MLflow version."""
    from training.promote import promote
    from training.registry import log_training
    from training.train import fit_task

    spec = task_spec(task, panel, max_rounds=max_rounds, full_rounds=full_rounds)
    frame = pd.read_parquet(panel)
    truth_frame = pd.read_parquet(truth) if truth is not None and task == "risk" else None
    result = fit_task(spec, frame, seed=seed, trials=1, truth=truth_frame, threads=1)
    logged = log_training(result, plots=False)
    promote(task, margin=-1.0)  # force: these tests exercise serving, not the promotion gate
    return logged["version"]


def train_champions(
    panel: Path, truth: Path | None = None, *, seed: int = 0, max_rounds: int = 60, full_rounds: bool = False
) -> dict[str, str]:
    return {
        task: train_champion(task, panel, truth, seed=seed, max_rounds=max_rounds, full_rounds=full_rounds)
        for task in TASK_TARGETS
    }


def to_request_rows(frame: pd.DataFrame) -> list[dict]:
    """Feature rows as the JSON a client sends: `customer_id` + registry columns, NaN/None as null."""
    import math

    from features.registry import feature_names

    rows = []
    for record in frame[["customer_id", *feature_names()]].to_dict("records"):
        row = {}
        for key, value in record.items():
            if hasattr(value, "item"):
                value = value.item()
            row[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        rows.append(row)
    return rows
