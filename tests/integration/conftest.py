"""Session services for the integration tests: a real PostgreSQL, a real `mlflow server` on it.

Without PostgreSQL installed the tests skip with the reason, except in CI (`CI` set), where they
fail: `.ci/run` installs it (`.ci/services.sh`), so a missing server there is a broken pipeline.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from types import SimpleNamespace

import pytest

from tests.integration.services import create_database, postgres_bin, running_mlflow_server, running_postgres


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """PostgreSQL + `mlflow server --serve-artifacts` on it; yields the URLs (stopped at session end)."""
    if postgres_bin() is None:
        reason = "PostgreSQL is not installed (no initdb under /usr/lib/postgresql or on PATH): run .ci/services.sh"
        if os.environ.get("CI"):
            pytest.fail(f"in CI: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("tracking")
    with ExitStack() as stack:
        pg = stack.enter_context(running_postgres("mlflow"))
        optuna_db = create_database(pg, "optuna")
        url = stack.enter_context(running_mlflow_server(pg, root / "artifacts", root / "mlflow-server.log"))
        yield SimpleNamespace(url=url, postgres=pg, optuna_db=optuna_db, artifacts=root / "artifacts", root=root)
