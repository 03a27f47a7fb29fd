"""Where drift runs get their data and where they attach results (the I/O side).

- `read_table(path)`: a reference / current / labels file (CSV or Parquet), validated.
- `read_window(since, until)`: the inference log (serving's `read_inference_log`).
- `champion(task)`: the champion's MLflow run: run id, version, training metrics, and its
  `reference.parquet` artefact (features + prediction columns).
- `attach_to_run(run_id, paths)`: log report files as artefacts of that run.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core import io
from core.errors import ClientlensError, InputError
from core.settings import Settings
from core.tasks import task as task_contract

logger = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference.parquet"


def read_table(path: str | Path, *, what: str = "table") -> pd.DataFrame:
    """A CSV or Parquet file as a frame (`core.io.read_table`); an empty table is an `InputError` too."""
    frame = io.read_table(path, what=what)
    if frame.empty:
        raise InputError(f"{what} {path}: has no rows")
    return frame


def read_window(since=None, until=None, *, root: Path | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """Logged inferences with since <= ts < until, read with serving's own reader."""
    from serving.inference_log import read_inference_log

    root = Path(root) if root is not None else (settings or Settings()).inference_log
    frame = read_inference_log(since, until, root=root)
    if frame.empty:
        span = f" since {since}" if since is not None else ""
        raise InputError(f"inference log: no rows{span} under {root} (has the service scored anything?)")
    return frame


@dataclass
class Champion:
    """The champion model of a task and what monitoring takes from its MLflow run."""

    task: str
    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    reference: pd.DataFrame | None = None
    reference_artifact: str | None = None


def _client(settings: Settings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri)


def _find_artifact(client, run_id: str, name: str, path: str | None = None, depth: int = 3) -> str | None:
    for item in client.list_artifacts(run_id, path):
        if not item.is_dir and Path(item.path).name == name:
            return item.path
    if depth > 0:
        for item in client.list_artifacts(run_id, path):
            if item.is_dir:
                found = _find_artifact(client, run_id, name, item.path, depth - 1)
                if found:
                    return found
    return None


def registered_model(task: str) -> str:
    """The registered model of a built-in task (training's registry names it)."""
    from training.registry import model_name

    return model_name(task_contract(task).name)


def champion(task: str, *, with_reference: bool = True, settings: Settings | None = None) -> Champion:
    """The `champion` alias of `clientlens-<task>`, its run's metrics and reference sample."""
    from mlflow.exceptions import MlflowException

    settings = settings or Settings()
    client = _client(settings)
    model_name = registered_model(task)
    try:
        version = client.get_model_version_by_alias(model_name, "champion")
    except MlflowException as exc:
        raise InputError(
            f"no champion for task {task!r} (registered model {model_name!r}, alias 'champion') in "
            f"{settings.tracking_uri}: train and promote first ({exc.message if hasattr(exc, 'message') else exc})"
        ) from None
    run_id = version.run_id
    if not run_id:
        raise ClientlensError(f"{model_name} version {version.version} has no source run")
    run = client.get_run(run_id)
    champ = Champion(task, model_name, str(version.version), run_id, dict(run.data.metrics))
    if with_reference:
        artifact = _find_artifact(client, run_id, REFERENCE_ARTIFACT)
        if artifact is None:
            raise InputError(f"champion run {run_id} of {model_name} has no {REFERENCE_ARTIFACT} artefact")
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, artifact, tmp)
            champ.reference = pd.read_parquet(local)
        champ.reference_artifact = artifact
    return champ


def attach_to_run(run_id: str, paths: list[Path], artifact_path: str, *, settings: Settings | None = None) -> None:
    """Log report files as artefacts of an existing (finished) MLflow run."""
    client = _client(settings or Settings())
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)
