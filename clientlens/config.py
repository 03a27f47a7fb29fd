"""Where clientlens keeps things. Every location can be overridden by environment variable.

Nothing here touches the disk at import time; call the functions.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The embedded-defaults home folder (`CLIENTLENS_HOME`, default `./.clientlens`)."""
    return Path(os.environ.get("CLIENTLENS_HOME", ".clientlens")).resolve()


def tracking_uri() -> str:
    """MLflow tracking URI: `MLFLOW_TRACKING_URI`, else SQLite under the home folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{home() / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where a local MLflow store keeps run artefacts."""
    return Path(os.environ.get("CLIENTLENS_ARTIFACTS", home() / "mlartifacts")).resolve()


def bentoml_home() -> Path:
    """The BentoML model store (`BENTOML_HOME`, default under the home folder)."""
    return Path(os.environ.get("BENTOML_HOME", home() / "bentoml")).resolve()


def inference_log_dir() -> Path:
    """Append-only inference log, partitioned by day (`CLIENTLENS_INFERENCE_LOG`)."""
    return Path(os.environ.get("CLIENTLENS_INFERENCE_LOG", home() / "inference_log")).resolve()


def reports_dir() -> Path:
    """Drift and performance reports (`CLIENTLENS_REPORTS`)."""
    return Path(os.environ.get("CLIENTLENS_REPORTS", home() / "reports")).resolve()


def features_dir() -> Path:
    """The latest materialised feature tables (`CLIENTLENS_FEATURES`)."""
    return Path(os.environ.get("CLIENTLENS_FEATURES", home() / "features")).resolve()
