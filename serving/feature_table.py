"""The latest materialised feature table, kept in memory for `POST /score_ids`.

The table is read once and re-read when the file changes (checked at most every
`check_seconds`), so a new `clientlens features` run is picked up without a restart.

A file that cannot be read as a feature table (truncated, not Parquet, no `customer_id`,
missing feature columns) never takes the service down: the table read before stays in use if
there is one (with a warning in the log), else `/score_ids` answers 503 and `/readyz` reports
not ready (`usable()`), both until a readable file replaces it. Messages meant for callers
(`problem()`) name no server path; the log does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io import read_table
from features.requests import check_feature_frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    frame: pd.DataFrame
    index: pd.Index  # customer_id -> row position
    as_of: str | None
    mtime: float


class FeatureTable:
    def __init__(self, path: Path, *, check_seconds: float = 5.0, features=None) -> None:
        if features is None:
            from features.registry import FEATURES as features
        self.path = Path(path)
        self.check_seconds = check_seconds
        self.features = features
        self.feature_names = [f.name for f in features]
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._failed_mtime: float | None = None  # mtime of a file that could not be read
        self._error: str | None = None
        self._lock = threading.Lock()

    def _load(self, mtime: float) -> Snapshot:
        frame = read_table(self.path, what="feature table")
        missing = [c for c in ("customer_id", *self.feature_names) if c not in frame.columns]
        if missing:
            raise InputError(f"feature table {self.path}: missing columns {missing[:5]} ({len(missing)} in all)")
        check_feature_frame(frame, self.features, what=f"feature table {self.path}")
        frame = frame.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
        as_of = None
        if "as_of" in frame.columns and len(frame):
            as_of = str(pd.Timestamp(frame["as_of"].max()).date())
        logger.info("loaded feature table %s (%d customers, as of %s)", self.path, len(frame), as_of)
        return Snapshot(frame, pd.Index(frame["customer_id"].to_numpy(np.int64)), as_of, mtime)

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked < self.check_seconds:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                self._error = None if self._snapshot is not None else "no materialised feature table"
                return
            if (self._snapshot is not None and self._snapshot.mtime == mtime) or self._failed_mtime == mtime:
                return
            try:
                self._snapshot = self._load(mtime)
                self._failed_mtime, self._error = None, None
            except Exception as exc:  # any unreadable file: keep serving what was read before
                self._failed_mtime = mtime
                kept = "keeping the table read before" if self._snapshot is not None else "/score_ids unavailable"
                logger.warning("cannot read the feature table %s (%s); %s", self.path, exc, kept)
                if self._snapshot is None:
                    self._error = "the feature table cannot be read (see the server log)"

    def snapshot(self) -> Snapshot | None:
        """The current table (None if there is no readable one)."""
        self._refresh()
        return self._snapshot

    def usable(self) -> bool:
        """False only while the file exists but no readable table is held (a missing file is not
        a fault of the running service: `/score_ids` is then simply unavailable)."""
        self._refresh()
        return self._snapshot is not None or self._failed_mtime is None

    def problem(self) -> str:
        """Why `/score_ids` cannot answer, for the caller (no server path in it)."""
        reason = self._error or "no materialised feature table"
        return f"{reason}: run `clientlens features` (or serve with --features FILE) to score by customer id"
