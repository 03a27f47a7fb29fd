"""Drift history: every report goes into a local Evidently workspace.

One project per task (`clientlens-churn`, ...) and `clientlens-adhoc` for two-file runs, so
`evidently ui --workspace <home>/evidently_workspace` shows drift over time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.settings import Settings

logger = logging.getLogger(__name__)


def workspace_dir() -> Path:
    return Settings().home_dir / "evidently_workspace"


def project_name(task: str | None) -> str:
    return f"clientlens-{task or 'adhoc'}"


def add_snapshot(snapshot, task: str | None, *, path: Path | None = None) -> dict[str, str]:
    """Add an Evidently snapshot to the task's project (created on first use)."""
    from evidently.ui.workspace import Workspace

    path = Path(path) if path is not None else workspace_dir()
    path.mkdir(parents=True, exist_ok=True)
    ws = Workspace.create(str(path))
    name = project_name(task)
    found = ws.search_project(name)
    if found:
        project = found[0]
    else:
        description = f"clientlens drift reports for task {task}" if task else "clientlens two-file drift reports"
        project = ws.create_project(name, description=description)
    ref = ws.add_run(project.id, snapshot)
    snapshot_id = getattr(ref, "id", None) or getattr(ref, "snapshot_id", None) or ref
    logger.info("added drift snapshot %s to Evidently project %s in %s", snapshot_id, name, path)
    return {"workspace": str(path), "project": name, "project_id": str(project.id), "snapshot_id": str(snapshot_id)}
