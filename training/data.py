"""From a spec and a source table to a typed, split training set (pure functions apart from `read_source`)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from core.errors import InputError
from core.io import read_table
from training.spec import TaskSpec

log = logging.getLogger(__name__)


def read_source(spec: TaskSpec) -> pd.DataFrame:
    """Read the spec's source table (CSV, optionally compressed, or Parquet)."""
    return read_table(
        spec.source_path(),
        what=f"spec {spec.name!r} field source",
        csv_options=spec.read.csv_options(),
        fmt=spec.read.format,
    )


@dataclass
class Prepared:
    """A task's rows, encoded target and feature columns; `unlabelled` keeps rows with no target."""

    spec: TaskSpec
    X: pd.DataFrame
    y: np.ndarray
    classes: list[str] | None
    features: list[str]
    categorical: list[str]
    categories: dict[str, list[str]]
    weight: np.ndarray | None = None
    groups: np.ndarray | None = None
    times: np.ndarray | None = None
    ids: np.ndarray | None = None
    extras: pd.DataFrame = field(default_factory=pd.DataFrame)
    unlabelled: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.y)


def _require(frame: pd.DataFrame, spec: TaskSpec, field_name: str, columns: list[str | None]) -> None:
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        sample = ", ".join(list(frame.columns[:8]))
        raise InputError(
            f"spec {spec.name!r} field {field_name}: column(s) {missing} not in source "
            f"{spec.source_path().name} (columns include: {sample}, ...)"
        )


def _target(frame: pd.DataFrame, spec: TaskSpec) -> pd.Series:
    t = spec.target
    if t.expr is not None:
        try:
            values = frame.eval(t.expr, engine="python")
        except Exception as exc:
            raise InputError(f"spec {spec.name!r} field target.expr: cannot evaluate {t.expr!r}: {exc}") from None
        return pd.Series(values, index=frame.index)
    return frame[t.column]


def _as_numbers(frame: pd.DataFrame, spec: TaskSpec) -> pd.DataFrame:
    """The spec's `numeric` columns as float; text that is no number becomes NaN (logged with a count)."""
    if not spec.numeric:
        return frame
    frame = frame.copy()
    for c in spec.numeric:
        raw = frame[c]
        values = pd.to_numeric(raw.astype("string").str.strip().replace("", pd.NA), errors="coerce")
        lost = int((values.isna() & raw.notna()).sum())
        if lost:
            log.info("spec %r column %r: %d value(s) are not numbers, read as missing", spec.name, c, lost)
        frame[c] = values.astype("float64")
    return frame


def prepare(frame: pd.DataFrame, spec: TaskSpec) -> Prepared:
    """Select rows, build the target, choose feature columns and category maps. Raises InputError naming the field."""
    t = spec.target
    _require(frame, spec, "target.column", [t.column])
    _require(frame, spec, "id", [spec.id])
    _require(frame, spec, "group", [spec.group])
    _require(frame, spec, "weight", [spec.weight])
    _require(frame, spec, "split.time_column", [spec.split.time_column])
    _require(frame, spec, "categorical", list(spec.categorical))
    _require(frame, spec, "numeric", list(spec.numeric))
    frame = _as_numbers(frame, spec)
    _require(frame, spec, "keep_columns", list(spec.keep_columns))
    if spec.features is not None:
        _require(frame, spec, "features", list(spec.features))
    if spec.where:
        try:
            frame = frame.query(spec.where, engine="python")
        except Exception as exc:
            raise InputError(f"spec {spec.name!r} field where: cannot evaluate {spec.where!r}: {exc}") from None
        if frame.empty:
            raise InputError(f"spec {spec.name!r} field where: {spec.where!r} selects no rows")

    target = _target(frame, spec)
    labelled = target.notna().to_numpy()
    if labelled.sum() < 20:
        raise InputError(f"spec {spec.name!r} field target: only {int(labelled.sum())} labelled rows")

    # Feature columns: the listed ones, else everything that is not id/target/group/weight/time/drop.
    reserved = {c for c in (t.column, spec.id, spec.group, spec.weight, spec.split.time_column) if c}
    if spec.features is not None:
        features = [c for c in spec.features if c not in set(spec.drop)]
    else:
        features = [c for c in frame.columns if c not in reserved and c not in set(spec.drop)]
    if not features:
        raise InputError(f"spec {spec.name!r} field features: no feature columns left after drop")
    leaked = reserved & set(features)
    if leaked:
        raise InputError(f"spec {spec.name!r} field features: {sorted(leaked)} are id/target/group/weight/time columns")

    categorical = list(dict.fromkeys(spec.categorical))
    for c in features:
        if c in categorical:
            continue
        s = frame[c]
        if not (ptypes.is_numeric_dtype(s) or ptypes.is_bool_dtype(s)):
            categorical.append(c)
    categorical = [c for c in categorical if c in features]
    categories = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}

    lab = frame.loc[labelled]
    y_raw = target.loc[labelled]
    classes: list[str] | None = None
    if t.kind == "binary":
        if t.expr is not None:
            y = y_raw.astype(float).to_numpy()
        else:
            y = (y_raw.astype(str) == str(t.positive)).astype(float).to_numpy()
            if not (y_raw.astype(str) == str(t.positive)).any():
                raise InputError(
                    f"spec {spec.name!r} field target.positive: value {t.positive!r} never occurs in "
                    f"{t.column!r} (values: {sorted(map(str, y_raw.unique()))[:6]})"
                )
        if not set(np.unique(y)) <= {0.0, 1.0}:
            raise InputError(f"spec {spec.name!r} field target: binary target has values other than 0/1")
        if len(np.unique(y)) < 2:
            raise InputError(f"spec {spec.name!r} field target: only one class present")
        classes = list(t.classes) if t.classes else ["0", "1"]
    elif t.kind in ("multiclass", "ordinal"):
        values = y_raw.astype(str)
        present = sorted(values.unique().tolist())
        classes = list(t.classes) if t.classes else present
        unknown = sorted(set(present) - set(classes))
        if unknown:
            raise InputError(f"spec {spec.name!r} field target.classes: values {unknown} not in {classes}")
        lookup = {c: i for i, c in enumerate(classes)}
        y = values.map(lookup).to_numpy(dtype=float)
    else:
        y = pd.to_numeric(y_raw, errors="coerce").to_numpy(dtype=float)
        if np.isnan(y).any():
            raise InputError(f"spec {spec.name!r} field target: regression target is not numeric")

    weight = None
    if spec.weight:
        weight = pd.to_numeric(lab[spec.weight], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        if (weight < 0).any():
            raise InputError(f"spec {spec.name!r} field weight: negative weights in {spec.weight!r}")
    # Carried beside the features: keep_columns, and the baseline's own columns (a heuristic may rank by
    # columns the model does not use, e.g. with a `features` allow-list).
    b = spec.baseline
    baseline_cols = [*b.columns, *b.negative, *([b.column] if b.column else [])]
    extras_cols = [c for c in dict.fromkeys([*spec.keep_columns, *baseline_cols]) if c in frame.columns]
    unlabelled = None
    if (~labelled).any():
        keep = list(dict.fromkeys([c for c in (spec.id, spec.split.time_column) if c] + extras_cols + features))
        unlabelled = frame.loc[~labelled, keep].reset_index(drop=True)
    return Prepared(
        spec=spec,
        X=lab[features].reset_index(drop=True),
        y=y,
        classes=classes,
        features=features,
        categorical=categorical,
        categories=categories,
        weight=weight,
        groups=lab[spec.group].to_numpy() if spec.group else None,
        times=pd.to_datetime(lab[spec.split.time_column]).to_numpy() if spec.split.time_column else None,
        ids=lab[spec.id].to_numpy() if spec.id else None,
        extras=lab[extras_cols].reset_index(drop=True),
        unlabelled=unlabelled,
    )


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    test_time: object = None
    valid_time: object = None

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"n_train": len(self.train), "n_valid": len(self.valid), "n_test": len(self.test)}
        if self.test_time is not None:
            out["test_time"] = str(pd.Timestamp(self.test_time).date())
            out["valid_time"] = str(pd.Timestamp(self.valid_time).date())
        return out


def _stratified_pick(rng: np.random.Generator, idx: np.ndarray, strata: np.ndarray | None, share: float) -> np.ndarray:
    """Pick `share` of `idx`, per stratum when given, deterministically for a seeded `rng`."""
    if strata is None:
        perm = rng.permutation(idx)
        return np.sort(perm[: max(1, int(round(share * len(idx))))])
    picked = []
    for value in np.unique(strata[idx]):
        members = idx[strata[idx] == value]
        perm = rng.permutation(members)
        picked.append(perm[: max(1, int(round(share * len(members))))])
    return np.sort(np.concatenate(picked))


def split(prep: Prepared, seed: int) -> Split:
    """Train/valid/test indices over the labelled rows, as the spec's split says."""
    s = prep.spec.split
    n = len(prep)
    rng = np.random.default_rng(seed)
    all_idx = np.arange(n)
    if s.kind == "time":
        times = prep.times
        assert times is not None  # prepare() sets times for a time split
        uniq = np.unique(times)
        if len(uniq) < 3:
            raise InputError(
                f"spec {prep.spec.name!r} field split: out-of-time split needs at least 3 distinct "
                f"{s.time_column!r} values, found {len(uniq)}"
            )
        test = all_idx[times == uniq[-1]]
        valid = all_idx[times == uniq[-2]]
        train = all_idx[times < uniq[-2]]
        return Split(train, valid, test, test_time=uniq[-1], valid_time=uniq[-2])
    if s.kind == "group":
        groups = prep.groups
        assert groups is not None  # prepare() sets groups for a group split
        uniq = np.unique(groups)
        perm = rng.permutation(uniq)
        n_test = max(1, int(round(s.test_size * len(uniq))))
        n_valid = max(1, int(round(s.valid_size * (len(uniq) - n_test))))
        test_g, valid_g = set(perm[:n_test].tolist()), set(perm[n_test : n_test + n_valid].tolist())
        gl = pd.Series(groups)
        test = all_idx[gl.isin(test_g).to_numpy()]
        valid = all_idx[gl.isin(valid_g).to_numpy()]
        train = all_idx[~gl.isin(test_g | valid_g).to_numpy()]
        return Split(train, valid, test)
    strata = prep.y if prep.spec.target.kind != "regression" else None
    test = _stratified_pick(rng, all_idx, strata, s.test_size)
    rest = np.setdiff1d(all_idx, test)
    valid = _stratified_pick(rng, rest, strata, s.valid_size)
    train = np.setdiff1d(rest, valid)
    return Split(train, valid, test)


def fingerprint(frame: pd.DataFrame, spec: TaskSpec) -> str:
    """sha256 over the rows and columns of the training frame and the spec (without local paths)."""
    h = hashlib.sha256()
    h.update(json.dumps(list(map(str, frame.columns))).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update(spec.model_dump_json(exclude={"base_dir", "source"}).encode())
    h.update(Path(spec.source).name.encode())
    return h.hexdigest()
