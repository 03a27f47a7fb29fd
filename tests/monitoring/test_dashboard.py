"""The Evidently UI shows drift over time: dashboards defined in code, read back through the real
`evidently ui` server's HTTP API and rendered by a headless Chromium.

Three drift runs of the churn task (same distribution, a rate cut, a deeper rate cut; labels for
each window) go into the workspace; every panel the code declares must come back from the server
with a point per run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.settings import Settings
from monitoring.config import DriftConfig
from monitoring.drift import run_file_drift
from monitoring.workspace import SUMMARY_TAG, dashboard, workspace_dir
from tests.monitoring import scenarios

# end to end on a loaded 2-core machine: above the suite's 300 s per-test default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COLUMNS = scenarios.CLI_COLUMNS
DATES = ["2025-04-30", "2025-05-31", "2025-06-30"]


def _windows():
    """Reference + three current windows (each at its as-of date) and their churn labels."""
    reference = scenarios.feature_window(1_200, seed=1)[COLUMNS].assign(as_of=pd.Timestamp("2025-03-31"))
    rng = np.random.default_rng(0)
    out = []
    for k, when in enumerate(DATES):
        frame = scenarios.feature_window(1_200, seed=10 + k)
        for _ in range(k):  # 0, 1, 2 rate cuts; the churn score follows the outflows
            frame = scenarios.add_scores(scenarios.rate_cut(frame, seed=k), rng)
        frame = frame[COLUMNS].assign(as_of=pd.Timestamp(when))
        labels = frame[["customer_id", "as_of"]].assign(churn=(rng.random(len(frame)) < frame["churn_proba"]) * 1.0)
        out.append((frame, labels))
    return reference, out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def evidently_ui(isolated_home):
    """The real `evidently ui` (this environment's console script, not PATH) on the home's workspace."""
    port = _free_port()
    ws = workspace_dir(Settings())

    def start():
        exe = Path(sys.executable).with_name("evidently")
        proc = subprocess.Popen(
            [str(exe), "ui", "--workspace", str(ws), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240  # importing Evidently takes a while on a loaded machine
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"evidently ui exited with {proc.returncode}")
            try:
                _get(f"{base}/api/projects")
                return proc, base
            except OSError:
                time.sleep(1)
        raise RuntimeError("evidently ui did not answer within 240 s")

    started = []

    def run():
        proc, base = start()
        started.append(proc)
        return base

    yield run
    for proc in started:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboards_show_every_panel_with_a_point_per_run(evidently_ui, tmp_path):
    settings = Settings()
    reference, windows = _windows()
    results = [
        run_file_drift(
            reference,
            current,
            tmp_path / f"run{k}",
            DriftConfig(evidently_max_rows=1_200),
            task="churn",
            labels=labels,
            settings=settings,
        )
        for k, (current, labels) in enumerate(windows)
    ]
    assert [r.status for r in results] == ["ok", "drift", "drift"]
    base = evidently_ui()

    projects = {p["name"]: p["id"] for p in _get(f"{base}/api/projects")}
    assert set(projects) == {"clientlens-churn"}
    pid = projects["clientlens-churn"]
    board = _get(f"{base}/api/v2/dashboards/{pid}")
    titles = [p["title"] for p in board["panels"]]
    assert titles == [p.title for p in dashboard("churn").panels]
    assert len(board["tabs"]) == 1 and set(board["tabs"][0]["panels"]) == {p["id"] for p in board["panels"]}

    def points(panel_title: str) -> dict[str, list]:
        """{legend: values} of a panel, as the UI fetches them (one series per PanelMetric)."""
        panel = next(p for p in board["panels"] if p["title"] == panel_title)
        out = {}
        for value in panel["values"]:
            assert value["tags"] == [SUMMARY_TAG]
            body = {"series_filter": [{k: value[k] for k in ("tags", "metadata", "metric", "metric_labels")}]}
            series = _post(f"{base}/api/v2/snapshots/{pid}/data_series_batch", body)["series"]
            out[value["legend"]] = [v for s in series for v in s["values"] if v is not None]
        return out

    share = points("Share of drifted features")["share drifted"]
    assert share == pytest.approx([r.share_drifted for r in results])
    assert share[0] == 0.0 and share[-1] >= 0.3
    psi = points("Prediction drift: PSI of each score")["churn_proba"]
    assert psi == pytest.approx([r.psi["churn_proba"] for r in results]) and psi[-1] > psi[0]
    perf = points("churn: roc_auc estimated before labels (CBPE), realised, at training")
    assert perf["estimated (CBPE)"] == pytest.approx([r.estimated_performance["churn"]["roc_auc"] for r in results])
    assert perf["realised"] == pytest.approx([r.performance["metrics"]["roc_auc"] for r in results])
    assert perf["at training"] == []  # two-file mode has no champion run to read it from
    rows = points("Rows per window")
    assert rows["current"] == [1_200] * 3 and rows["reference"] == [1_200] * 3
    rate = points("Market context at each report (not drift-tested)")["deposit_rate_1y"]
    assert rate == pytest.approx([r.context["deposit_rate_1y"]["current_value"] for r in results])
    assert rate[2] < rate[1] < rate[0]  # two cuts of 1.5 points

    # What a person sees: the dashboard page rendered by a real browser.
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):  # .ci/services.sh installs it: in CI a missing browser is a failure
            pytest.fail("chromium not installed in CI (.ci/services.sh installs it)")
        pytest.skip("chromium not installed (apt-get install -y chromium): API checks passed, no screenshot")
    shot = tmp_path / "dashboard.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
            f"--screenshot={shot}",
            "--window-size=1400,2200",
            f"{base}/projects/{pid}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB"))
    # the plots' teal line colour is on the page (an empty dashboard or an error page has none)
    teal = (np.abs(image.astype(int) - [0, 176, 172]).sum(axis=2) < 60).sum()
    assert teal > 2_000, f"no plotted series in {shot}"
    print(f"dashboard screenshot: {shot}")
