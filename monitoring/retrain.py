"""Retraining on a trigger: drift verdict -> features for the new window -> challenger -> gate.

`retrain(task, raw)` closes the loop `clientlens drift` opens:

1. the trigger: the task's latest drift verdict (`<reports>/drift/<task>/<time>/drift_report.json`,
   or a given report). With `if_drift=True` nothing is trained unless that verdict is `drift`;
   without it the job retrains on schedule and records the verdict it saw;
2. features for the new window: `features.panel.build_panel` on the raw folder (the newest data),
   into a fresh folder;
3. a challenger on the task's own spec (`training.spec.builtin_spec`), or on a challenger spec file
   (`spec=`: e.g. a new feature set to try; its `source` is read in the new window's features
   folder), logged and registered with alias `challenger` (`training.train.run_training`);
4. the champion/challenger gate on the challenger's holdout, the newest as-of date
   (`training.promote.promote`): `champion` moves only on a clear win;
5. the chain recorded on the challenger's MLflow model version (tags `retrain_*` next to the
   gate's `promotion_*`) and the drift report attached to its run (`retrain/drift_report.json`).

A running service picks up a promoted champion by itself (it polls the alias). As a scheduled job,
e.g. nightly after the drift run (cron):

    15 2 * * *  clientlens drift --task churn --since "$(date -d yesterday +%F)" --json
    30 2 * * *  clientlens retrain churn --raw /data/raw --if-drift --json

Both exit 0 whether or not anything was promoted (`promoted: true|false` in the JSON); a failure
exits 1, bad input 2.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.settings import Settings
from core.tasks import task as task_contract
from monitoring.drift import JSON_NAME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """What a drift report decided, and where it is."""

    status: str
    share_drifted: float
    drifted: list[str]
    created: str
    report: str
    task: str | None

    @property
    def is_drift(self) -> bool:
        return self.status == "drift"


def latest_drift_report(task: str, settings: Settings) -> Path | None:
    """The newest `drift_report.json` of the task (report folders are named by UTC time)."""
    root = settings.reports / "drift" / task
    reports = sorted(root.glob(f"*/{JSON_NAME}")) if root.is_dir() else []
    return reports[-1] if reports else None


def read_verdict(path: str | Path) -> Verdict:
    """The verdict of a drift report JSON; a missing or foreign file is an `InputError`."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    if not path.is_file():
        raise InputError(f"drift report {path}: file not found (run `clientlens drift` first)")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        summary = body["clientlens"]
        return Verdict(
            status=str(summary["status"]),
            share_drifted=float(summary["share_drifted"]),
            drifted=list(summary.get("drifted", [])),
            created=str(summary.get("created", "")),
            report=str(path),
            task=summary.get("task"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"drift report {path}: not a clientlens drift report ({type(exc).__name__}: {exc})") from None


def _champion_version(task: str) -> str | None:
    from training import registry as R

    aliases = R.client().get_registered_model(R.model_name(task)).aliases or {}
    return str(aliases[R.CHAMPION]) if R.CHAMPION in aliases else None


def _record_chain(task: str, version: str, run_id: str, tags: dict[str, str], report: Path | None) -> None:
    """The trigger and the inputs on the challenger's model version; the drift report on its run."""
    from training import registry as R

    c = R.client()
    name = R.model_name(task)
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)
        c.set_tag(run_id, key, value)
    if report is not None:
        c.log_artifact(run_id, str(report), artifact_path="retrain")


def retrain(
    task: str,
    raw: str | Path,
    *,
    if_drift: bool = False,
    drift_report: str | Path | None = None,
    features_dir: str | Path | None = None,
    as_of: list | None = None,
    horizon_days: int = 90,
    workers: int = 1,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int = 0,
    margin: float = 0.0,
    spec: str | Path | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run the chain for a built-in task; return the `--json` summary (`promoted`, `champion`, `reason`, ...).

    `raw`: the raw-data folder holding the new window. `features_dir`: where to build its features
    (default `<features>/retrain/<task>/<UTC time>`). `trials` / `timeout` / `seed`: the training
    budget (default: the spec's). `margin`: the gain the challenger needs on the spec's metric.
    `spec`: a challenger spec YAML for the same task (default: the built-in one).
    """
    from features.panel import build_panel
    from training.promote import promote
    from training.spec import builtin_spec, load_spec
    from training.train import run_training

    settings = settings or Settings()
    t = task_contract(task)
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(f"--raw {raw}: not a folder of raw tables")
    report = Path(drift_report) if drift_report is not None else latest_drift_report(t.name, settings)
    verdict = read_verdict(report) if report is not None else None
    if verdict is not None and verdict.task not in (None, t.name):
        raise InputError(f"drift report {verdict.report} is for task {verdict.task!r}, not {t.name!r}")
    base: dict[str, Any] = {"task": t.name, "drift": asdict(verdict) if verdict else None}
    if if_drift and (verdict is None or not verdict.is_drift):
        why = "no drift report" if verdict is None else f"latest drift verdict is {verdict.status!r}"
        logger.info("retrain %s: %s; nothing trained", t.name, why)
        return {
            **base,
            "retrained": False,
            "promoted": False,
            "champion": _champion_or_none(t.name),
            "reason": f"--if-drift: {why} ({verdict.report if verdict else settings.reports / 'drift' / t.name})",
        }

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    features_dir = Path(features_dir) if features_dir is not None else settings.features / "retrain" / t.name / stamp
    challenger_spec = builtin_spec(t.name, features_dir) if spec is None else load_spec(spec, base_dir=features_dir)
    if challenger_spec.name != t.name:  # the gate compares versions of one registered model
        raise InputError(f"--spec {spec}: field name is {challenger_spec.name!r}, not the task {t.name!r}")
    built = build_panel(raw, features_dir, as_of=as_of, horizon_days=horizon_days, workers=workers)
    truth = raw / "truth.parquet"
    trained = run_training(
        challenger_spec,
        seed=seed,
        trials=trials,
        timeout=timeout,
        truth_path=truth if truth.is_file() else None,
        plots=False,
    )
    gate = promote(t.name, margin)
    latest = built.get("as_of") or []
    chain = {
        "retrain_trigger": "drift" if verdict is not None and verdict.is_drift else "scheduled",
        "retrain_drift_report": verdict.report if verdict else "",
        "retrain_drift_status": verdict.status if verdict else "",
        "retrain_drift_share": f"{verdict.share_drifted:.4f}" if verdict else "",
        "retrain_drift_created": verdict.created if verdict else "",
        "retrain_raw": str(raw.resolve()),
        "retrain_features": str(features_dir),
        "retrain_window_as_of": str(latest[-1]) if latest else "",
        "retrain_spec": str(Path(spec).resolve()) if spec is not None else f"builtin:{t.name}",
        "retrain_run_id": trained["run_id"],
        "retrain_decision": "promoted" if gate["promoted"] else "rejected",
    }
    _record_chain(t.name, trained["version"], trained["run_id"], chain, Path(verdict.report) if verdict else None)
    return {
        **base,
        "retrained": True,
        "promoted": bool(gate["promoted"]),
        "champion": gate["champion"],
        "challenger": trained["version"],
        "reason": gate["reason"],
        "run_id": trained["run_id"],
        "metrics": trained["metrics"],
        "gate": {k: v for k, v in gate.items() if k not in ("task", "model", "promoted", "champion", "reason")},
        "features": {"out": str(features_dir), "rows": built.get("rows"), "as_of": [str(d) for d in latest]},
    }


def _champion_or_none(task: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return _champion_version(task)
    except MlflowException:  # no registered model yet
        return None
