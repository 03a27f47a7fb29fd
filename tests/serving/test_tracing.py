"""BentoML's OpenTelemetry middleware is off unless CLIENTLENS_TRACING asks for it (#18).

Each case builds the service's BentoML configuration in a fresh interpreter (the setting is read
when `serving.service` is imported) and asks the exclusion list BentoML hands to
`OpenTelemetryMiddleware` whether it would trace each URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATHS = ("/score", "/score_ids", "/score_arrow", "/livez", "/metrics")
PROBE = f"""
import json
from serving.service import Clientlens
Clientlens.inject_config()  # what `bentoml serve` does before building the app
from bentoml._internal.configuration.containers import BentoMLContainer
excluded = BentoMLContainer.tracing_excluded_urls.get()
print(json.dumps({{p: excluded.url_disabled("http://127.0.0.1:3000" + p) for p in {PATHS!r}}}))
"""


def untraced(tmp_path: Path, **env: str) -> dict[str, bool]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLIENTLENS_", "BENTOML_CONFIG"))}
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, "CLIENTLENS_HOME": str(tmp_path), "BENTOML_HOME": str(tmp_path / "bentoml"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_by_default_no_path_goes_through_the_tracing_middleware(tmp_path):
    assert untraced(tmp_path) == dict.fromkeys(PATHS, True)


@pytest.mark.parametrize("value", ["1", "true", "on"])
def test_clientlens_tracing_keeps_every_path_traced(tmp_path, value):
    assert untraced(tmp_path, CLIENTLENS_TRACING=value) == dict.fromkeys(PATHS, False)


def test_bentoml_configuration_overrides_the_default(tmp_path):
    """The exclusion is only the service's default: an operator's BentoML configuration wins."""
    got = untraced(tmp_path, BENTOML_CONFIG_OPTIONS='services.clientlens.tracing.excluded_urls=["/metrics"]')
    assert got == {**dict.fromkeys(PATHS, False), "/metrics": True}
