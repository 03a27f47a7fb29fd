"""The latest materialised feature table, kept in memory for `POST /score_ids`.

The table is read once and re-read when the file changes (checked at most every
`check_seconds`), so a new `clientlens features` run is picked up without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.settings import Settings

logger = logging.getLogger(__name__)


def default_path() -> Path:
    """`CLIENTLENS_FEATURES_TABLE`, else `Settings().features/latest.parquet`."""
    env = os.environ.get("CLIENTLENS_FEATURES_TABLE")
    return Path(env).resolve() if env else Settings().features / "latest.parquet"


@dataclass(frozen=True)
class Snapshot:
    frame: pd.DataFrame
    index: pd.Index  # customer_id -> row position
    as_of: str | None
    mtime: float


class FeatureTable:
    def __init__(self, path: Path | None = None, *, check_seconds: float = 5.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.check_seconds = check_seconds
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _load(self, mtime: float) -> Snapshot:
        frame = pd.read_parquet(self.path)
        frame = frame.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
        as_of = None
        if "as_of" in frame.columns and len(frame):
            as_of = str(pd.Timestamp(frame["as_of"].max()).date())
        logger.info("loaded feature table %s (%d customers, as of %s)", self.path, len(frame), as_of)
        return Snapshot(frame, pd.Index(frame["customer_id"].to_numpy(np.int64)), as_of, mtime)

    def snapshot(self) -> Snapshot | None:
        """The current table (None if the file does not exist)."""
        now = time.monotonic()
        snap = self._snapshot
        if snap is not None and now - self._checked < self.check_seconds:
            return snap
        with self._lock:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return self._snapshot
            if self._snapshot is None or self._snapshot.mtime != mtime:
                self._snapshot = self._load(mtime)
            return self._snapshot
