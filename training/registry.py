"""MLflow side of training: one experiment per task, run logging, the model registry, loaders.

Nothing happens at import; every function sets the tracking URI from `core.settings.Settings`.

Loaders for other stages:
- `load_champion(task) -> (TabularModel, version_info)` unwraps the pyfunc once;
- `load_model(task, alias_or_version)` the same for any alias/version;
- `load_reference(task, alias="champion") -> DataFrame` the monitoring reference sample.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ClientlensError, InputError
from core.settings import Settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
REFERENCE_ARTIFACT = "reference.parquet"
HOLDOUT_ARTIFACT = "holdout.parquet"
PIP_REQUIREMENTS = ["lightgbm==4.7.0", "mlflow==3.17.2", "pandas>=2.2,<3", "numpy", "scikit-learn", "pyarrow"]


def model_name(task: str) -> str:
    return task if task.startswith("clientlens-") else f"clientlens-{task}"


def client():
    """An MlflowClient on `Settings().tracking_uri` (also sets the fluent API's URI)."""
    import mlflow

    mlflow.set_tracking_uri(Settings().tracking_uri)
    return mlflow.MlflowClient(tracking_uri=Settings().tracking_uri)


def experiment_id(name: str) -> str:
    """Get or create the experiment; local stores keep artefacts under `Settings().artifacts`."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    uri = Settings().tracking_uri
    location = None
    if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        location = (Settings().artifacts / name).as_uri()
    return c.create_experiment(name, artifact_location=location)


def _flat_params(result) -> dict[str, Any]:
    spec = result.spec
    p: dict[str, Any] = {
        "task": spec.name,
        "source": Path(spec.source).name,
        "target": spec.target.expr or spec.target.column,
        "target_kind": spec.target.kind,
        "split_kind": spec.split.kind,
        "group": spec.group,
        "weight": spec.weight,
        "where": spec.where,
        "seed": result.seed,
        "n_features": len(result.model.features),
        "n_categorical": len(result.model.categories),
        "baseline": result.baseline_description,
        "calibration": spec.calibration,
        "tuning_trials": result.tuning.n_trials,
        # The budget the study was given (the CLI's --cv-folds / --max-rounds may override the spec's).
        "tuning_cv_folds": spec.tuning.cv_folds,
        "tuning_max_rounds": spec.tuning.max_rounds,
        "tuning_pruned": result.tuning.n_pruned,
        "best_iteration": result.tuning.best_iteration,
        "dataset_fingerprint": result.fingerprint,
        **{f"split_{k}": v for k, v in result.split.items() if k != "kind"},
    }
    for k, v in result.tuning.params.items():
        p[f"lgb_{k}"] = v
    return {k: ("" if v is None else str(v)[:500]) for k, v in p.items()}


def _input_example(model, frame: pd.DataFrame) -> pd.DataFrame:
    ex = frame[model.features].head(5).copy()
    for c in ex.columns:
        if c in model.categories:
            ex[c] = ex[c].astype(object).where(ex[c].notna(), None).map(lambda v: None if v is None else str(v))
        elif pd.api.types.is_bool_dtype(ex[c]):
            continue  # bool stays bool: the feature table stores bools (a float64 schema rejects them)
        else:
            ex[c] = pd.to_numeric(ex[c], errors="coerce").astype("float64")
    return ex.reset_index(drop=True)


def _finite(d: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if v is not None and np.isfinite(v)}


# What MLflow's `log_model` tells the console that this module answers by design, so that `clientlens train`
# shows clientlens' report and the registry's lines only (README, "Data scientists"):
MODEL_LOGGING_NOTES = (
    "Passing a Python object as `python_model`",  # the pyfunc wraps the fitted model (cloudpickle), by design
    "Failed to resolve installed pip version",  # `.venv` is made by uv, without pip; requirements are pinned
    "Detected uv project",  # INFO lines on the files it copies beside the model
    "Copied uv.lock",
    "Copied pyproject.toml",
    "Validating input example against model signature",
)


class _DropNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in MODEL_LOGGING_NOTES)


@contextmanager
def quiet_model_logging() -> Iterator[None]:
    """Leave out `MODEL_LOGGING_NOTES`, as warnings or as records reaching the `mlflow` logger's handlers
    (where MLflow prints; it does not propagate to the root logger). Everything else passes."""
    handlers = logging.getLogger("mlflow").handlers
    drop = _DropNotes()
    with warnings.catch_warnings():
        for note in MODEL_LOGGING_NOTES:
            warnings.filterwarnings("ignore", message=".*" + re.escape(note), category=UserWarning)
        for handler in handlers:
            handler.addFilter(drop)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(drop)


def log_training(result, *, plots: bool = True) -> dict[str, Any]:
    """Log a `TrainResult` as one MLflow run, register the model and give it alias `challenger`."""
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from training.model import ClientlensPyfunc

    spec = result.spec
    name = model_name(spec.name)
    c = client()
    exp = experiment_id(name)
    with mlflow.start_run(experiment_id=exp, run_name=f"{spec.name}-seed{result.seed}") as run:
        mlflow.set_tags(
            {
                "task": spec.name,
                "dataset_fingerprint": result.fingerprint,
                "baseline": result.baseline_description,
                "primary_metric": spec.metric,
            }
        )
        mlflow.log_params(_flat_params(result))
        mlflow.log_metrics(_finite(result.metrics))
        mlflow.log_metrics(_finite({f"baseline_{k}": v for k, v in result.baseline.items()}))
        mlflow.log_metrics(_finite({f"baseline_lgbm_default.{k}": v for k, v in result.lgbm_default.items()}))
        mlflow.log_metrics(_finite({f"calibration_{k}": v for k, v in result.calibration.items()}))
        mlflow.log_metrics(
            {
                "tuning_seconds": result.tuning.seconds,
                "train_seconds": result.seconds,
                "tuning_best_valid": result.tuning.best_value,
            }
        )
        for step, value in enumerate(result.tuning.history):
            mlflow.log_metric("tuning_trial_valid", value, step=step)
        mlflow.log_dict(spec.model_dump(mode="json", exclude={"base_dir"}), "spec.json")
        mlflow.log_dict(
            {
                "metrics": result.metrics,
                "baseline": result.baseline,
                "baseline_lgbm_default": result.lgbm_default,
                "calibration": result.calibration,
                "baseline_description": result.baseline_description,
                "split": result.split,
                "notes": result.notes,
            },
            "evaluation.json",
        )
        with tempfile.TemporaryDirectory() as tmp:
            ref = Path(tmp) / REFERENCE_ARTIFACT
            result.reference.to_parquet(ref, index=False)
            mlflow.log_artifact(str(ref))
            hold = Path(tmp) / HOLDOUT_ARTIFACT
            result.holdout.to_parquet(hold, index=False)
            mlflow.log_artifact(str(hold))
        if plots:
            import matplotlib.pyplot as plt

            from training.plots import figures

            for fname, fig in figures(result).items():
                mlflow.log_figure(fig, f"plots/{fname}")
                plt.close(fig)
        example = _input_example(result.model, result.reference)
        # The inputs' schema on its own, so that MLflow's hint on integer columns (which cannot be missing at
        # inference) is shown when it is about a feature; the outputs' integers (the predicted class) never are.
        inputs = infer_signature(example).inputs
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer", category=UserWarning)
            outputs = infer_signature(result.model.predict_frame(example)).inputs
        with quiet_model_logging():
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=ClientlensPyfunc(result.model),
                signature=ModelSignature(inputs=inputs, outputs=outputs),
                input_example=example,
                registered_model_name=name,
                pip_requirements=PIP_REQUIREMENTS,
                metadata={
                    "task": spec.name,
                    "kind": result.model.kind,
                    "classes": result.model.classes,
                    "features": len(result.model.features),
                },
            )
        version = str(info.registered_model_version)
        run_id = run.info.run_id
    c.set_registered_model_alias(name, CHALLENGER, version)
    tags = {
        "task": spec.name,
        "run_id": run_id,
        "dataset_fingerprint": result.fingerprint,
        "primary_metric": spec.metric,
        f"metric_{spec.metric}": f"{result.metrics.get(spec.metric, float('nan')):.6f}",
        f"baseline_{spec.metric}": f"{result.baseline.get(spec.metric, float('nan')):.6f}",
        "trained_at": result.model.metadata.get("trained_at", ""),
    }
    for k, v in tags.items():
        c.set_model_version_tag(name, version, k, v)
    c.update_model_version(name, version, description=_describe(result))
    return {"model": name, "version": version, "run_id": run_id, "model_uri": info.model_uri}


def _describe(result) -> str:
    m = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if np.isfinite(v))
    b = ", ".join(f"{k}={v:.4f}" for k, v in result.baseline.items() if np.isfinite(v))
    return f"{result.spec.name}: {m} | baseline ({result.baseline_description}): {b}"


def _version(task: str, ref: str):
    """A model version by alias (`champion`, `challenger`) or number."""
    from mlflow.exceptions import MlflowException

    c = client()
    name = model_name(task)
    try:
        if str(ref).isdigit():
            return c.get_model_version(name, str(ref))
        return c.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        raise InputError(
            f"model {name}: no version {ref!r} in the registry at {Settings().tracking_uri} ({exc.message.splitlines()[0]})"
        ) from None


def version_info(mv) -> dict[str, Any]:
    """Plain facts about a model version: name, version, aliases, run, training date, headline metrics."""
    c = client()
    run = c.get_run(mv.run_id) if mv.run_id else None
    metrics = dict(run.data.metrics) if run else {}
    return {
        "name": mv.name,
        "version": str(mv.version),
        "aliases": list(getattr(mv, "aliases", []) or []),
        "run_id": mv.run_id,
        "created_at": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat(),
        "tags": dict(mv.tags or {}),
        "metrics": {k: v for k, v in metrics.items() if not k.startswith(("tuning_", "train_"))},
    }


def load_model(task: str, ref: str = CHAMPION):
    """`(TabularModel, version_info)` for an alias or version number; unwraps the pyfunc once."""
    import mlflow

    mv = _version(task, ref)
    client()
    pyfunc = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}")
    core = pyfunc.unwrap_python_model().core
    return core, version_info(mv)


def load_champion(task: str):
    """The champion of `task` (tier, churn, risk or a spec name): `(TabularModel, version_info)`."""
    return load_model(task, CHAMPION)


def download_run_artifact(run_id: str, path: str) -> Path:
    import mlflow

    client()
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
    except Exception as exc:
        raise ClientlensError(f"run {run_id}: cannot fetch artefact {path}: {exc}") from None


def load_reference(task: str, ref: str = CHAMPION) -> pd.DataFrame:
    """The monitoring reference sample (`reference.parquet`: features + prediction columns + target)."""
    mv = _version(task, ref)
    return pd.read_parquet(download_run_artifact(mv.run_id, REFERENCE_ARTIFACT))


def load_holdout(run_id: str) -> pd.DataFrame:
    return pd.read_parquet(download_run_artifact(run_id, HOLDOUT_ARTIFACT))


def evaluation(run_id: str) -> dict[str, Any]:
    return json.loads(download_run_artifact(run_id, "evaluation.json").read_text())
