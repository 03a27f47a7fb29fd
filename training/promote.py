"""Champion/challenger gate: re-score both on the challenger's holdout, move `champion` only on a clear win.

The decision and the numbers are recorded as tags on the challenger's model version
(`promotion_*`), so the registry says why every champion is the champion.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InputError
from training import registry as R
from training.spec import LOWER_IS_BETTER

log = logging.getLogger(__name__)


def holdout_score(model, holdout: pd.DataFrame, metric: str, classes: list[str] | None) -> float:
    """`metric` of `model` on a holdout whose `__target__` is encoded against `classes`."""
    # Imported here, not at the top: the first promotion of a task (every `make demo`) only moves an
    # alias, and training's modules (LightGBM, Optuna, scikit-learn) cost seconds to import.
    from core import metrics as M
    from training.train import TARGET_COLUMN, WEIGHT_COLUMN

    y = holdout[TARGET_COLUMN].to_numpy(dtype=float)
    w = holdout[WEIGHT_COLUMN].to_numpy(dtype=float) if WEIGHT_COLUMN in holdout.columns else None
    X = model.matrix(holdout)
    proba = model.proba_from_matrix(X)
    if model.kind == "multiclass" and classes is not None and list(model.classes) != list(classes):
        # Reorder the model's columns to the holdout's class order.
        idx = [model.classes.index(c) if c in model.classes else None for c in classes]
        proba = np.column_stack([proba[:, i] if i is not None else np.full(len(X), 1e-6) for i in idx])
        proba = proba / proba.sum(axis=1, keepdims=True)
    values = M.task_metrics(model.kind, y, proba, w)
    if metric not in values:
        raise InputError(f"promotion metric {metric!r} is not a {model.kind} metric ({sorted(values)})")
    return float(values[metric])


def promote(task: str, margin: float = 0.0, force: str | None = None) -> dict[str, Any]:
    """Move alias `champion` to the `challenger` if it beats the champion by more than `margin` on its holdout.

    `force` (a reason, e.g. "target redefined: risk is now binary") promotes the challenger whatever
    the gate says, for changes the gate cannot judge (a new target or feature set); the gate's own
    verdict and the reason are recorded with the decision.
    """
    c = R.client()
    name = R.model_name(task)
    challenger = R._version(task, R.CHALLENGER)
    now = pd.Timestamp.now(tz="UTC").isoformat()
    metric = (challenger.tags or {}).get("primary_metric", "roc_auc")
    # Only a missing alias means "no champion yet"; any other registry failure must surface,
    # never silently promote the challenger.
    aliases = c.get_registered_model(name).aliases or {}
    champion = c.get_model_version(name, str(aliases[R.CHAMPION])) if R.CHAMPION in aliases else None

    def record(promoted: bool, reason: str, numbers: dict[str, Any]) -> dict[str, Any]:
        if force and not promoted and champion is not None and str(champion.version) != str(challenger.version):
            promoted, reason = True, f"forced ({force}); the gate said: {reason}"
        tags = {
            "promotion_decision": "promoted" if promoted else "rejected",
            "promotion_reason": reason,
            "promotion_metric": metric,
            "promotion_margin": str(margin),
            "promotion_at": now,
            **{f"promotion_{k}": str(v) for k, v in numbers.items()},
        }
        for k, v in tags.items():
            c.set_model_version_tag(name, challenger.version, k, v)
        if promoted:
            c.set_registered_model_alias(name, R.CHAMPION, challenger.version)
        champ = str(challenger.version) if promoted else (str(champion.version) if champion else None)
        log.info("promotion of %s v%s: %s (%s)", name, challenger.version, tags["promotion_decision"], reason)
        return {
            "task": task,
            "model": name,
            "promoted": promoted,
            "champion": champ,
            "challenger": str(challenger.version),
            "reason": reason,
            "metric": metric,
            **numbers,
        }

    if champion is None:
        return record(True, "first champion: no champion existed", {})
    if str(champion.version) == str(challenger.version):
        return record(False, f"version {challenger.version} is already champion", {})

    challenger_model, _ = R.load_model(task, challenger.version)
    champion_model, _ = R.load_model(task, champion.version)
    holdout = R.load_holdout(challenger.run_id)
    missing = [f for f in champion_model.features if f not in holdout.columns]
    if missing:
        return record(
            False,
            f"champion v{champion.version} needs features missing from the challenger's holdout: "
            f"{missing[:5]}; not comparable",
            {},
        )
    classes = challenger_model.classes
    same_classes = (
        list(champion_model.classes or []) == list(classes or [])
        if challenger_model.kind == "binary"
        else set(champion_model.classes or []) == set(classes or [])
    )  # multiclass order is mapped below
    if champion_model.kind != challenger_model.kind or not same_classes:
        # e.g. risk moved from 3 classes to a binary aggressive / not_aggressive target: the champion
        # cannot be scored on the challenger's labels; never promote on a guess.
        return record(
            False,
            f"champion v{champion.version} predicts a different target ({champion_model.kind} "
            f"{champion_model.classes}) than the challenger ({challenger_model.kind} {classes}); "
            "not comparable (promote with --force REASON to replace it)",
            {},
        )
    s_new = holdout_score(challenger_model, holdout, metric, classes)
    s_old = holdout_score(champion_model, holdout, metric, classes)
    gain = (s_old - s_new) if metric in LOWER_IS_BETTER else (s_new - s_old)
    numbers = {
        "challenger_score": round(s_new, 6),
        "champion_score": round(s_old, 6),
        "gain": round(gain, 6),
        "champion_version": champion.version,
        "holdout_rows": len(holdout),
    }
    if gain > margin:
        reason = (
            f"challenger v{challenger.version} {metric}={s_new:.4f} beats champion v{champion.version} "
            f"{metric}={s_old:.4f} by {gain:.4f} > margin {margin}"
        )
        return record(True, reason, numbers)
    reason = (
        f"challenger v{challenger.version} {metric}={s_new:.4f} vs champion v{champion.version} "
        f"{metric}={s_old:.4f}: gain {gain:.4f} does not exceed margin {margin}"
    )
    return record(False, reason, numbers)
