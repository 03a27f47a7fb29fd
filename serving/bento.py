"""Build a Bento (the deployable unit: code, pinned requirements and the champion models)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping

from core.errors import ClientlensError
from serving.process import PROJECT_ROOT, service_env

BENTOFILE = PROJECT_ROOT / "serving" / "bentofile.yaml"


def build_bento(env: Mapping[str, str] | None = None, *, timeout: float = 600.0) -> dict:
    """`bentoml build -f serving/bentofile.yaml .` in the configured BentoML home; returns the
    Bento's tag and the models it packs. The champions must already be in the model store."""
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", str(BENTOFILE), str(PROJECT_ROOT), "--output", "tag"],
        cwd=PROJECT_ROOT, env=service_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ClientlensError(f"bentoml build failed:\n{(proc.stderr or proc.stdout)[-3000:]}")
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    info = subprocess.run(
        [sys.executable, "-m", "bentoml", "get", tag, "-o", "json"],
        cwd=PROJECT_ROOT, env=service_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if info.returncode != 0:
        raise ClientlensError(f"bentoml get {tag} failed: {info.stderr[-2000:]}")
    return {"tag": tag, "info": json.loads(info.stdout)}
