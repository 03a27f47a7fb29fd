"""Checks of built feature frames against the registry, for tests (not shipped: the builder
assembles its frames from `features.registry.FEATURES`, so production code has no use for them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import InputError
from features.registry import FEATURES, LABELS, feature_names


def validate_feature_frame(frame: pd.DataFrame, *, labels: bool = False, where: str = "feature table") -> pd.DataFrame:
    """Check a feature frame against the registry; raise `InputError` naming column, rule and examples.

    Returns the frame unchanged so it can be used inline.
    """

    def fail(column: str, rule: str, mask: pd.Series | None = None) -> None:
        example = ""
        if mask is not None:
            rows = frame.loc[mask, [c for c in ("customer_id", "as_of", column) if c in frame.columns]].head(3)
            example = f"; example rows:\n{rows.to_string()}"
        raise InputError(f"{where}: column {column!r} violates rule: {rule}{example}")

    expected = ["customer_id"] + feature_names() + (list(LABELS) if labels else [])
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        fail(missing[0], f"required column is missing ({len(missing)} missing: {missing[:5]})")
    if frame["customer_id"].dtype != np.int64:
        fail("customer_id", "dtype must be int64")
    keys = ["customer_id"] + (["as_of"] if "as_of" in frame.columns else [])
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        fail("customer_id", f"{keys} must be unique", dup)
    for feat in FEATURES:
        col = frame[feat.name]
        if feat.dtype in ("float", "int"):
            if col.dtype != np.float64:
                fail(feat.name, f"dtype must be float64 (declared {feat.dtype}), got {col.dtype}")
            if np.isinf(col.to_numpy()).any():
                fail(feat.name, "must not be infinite", pd.Series(np.isinf(col.to_numpy()), index=frame.index))
            if feat.dtype == "int":
                bad = col.notna() & (col != np.floor(col))
                if bad.any():
                    fail(feat.name, "declared int: values must be whole numbers", bad)
            if feat.lower is not None and (col < feat.lower).any():
                fail(feat.name, f"values must be >= {feat.lower}", col < feat.lower)
            if feat.upper is not None and (col > feat.upper).any():
                fail(feat.name, f"values must be <= {feat.upper}", col > feat.upper)
        elif feat.dtype == "bool":
            if col.dtype != bool:
                fail(feat.name, f"dtype must be bool, got {col.dtype}")
        else:
            bad = col.notna() & ~col.isin(feat.categories)
            if bad.any():
                fail(feat.name, f"values must be one of {list(feat.categories)} or null", bad)
    if labels:
        for name, (kind, cats) in LABELS.items():
            col = frame[name]
            if kind == "category":
                bad = col.notna() & ~col.isin(cats)
                if bad.any():
                    fail(name, f"values must be one of {list(cats)} or null", bad)
            else:
                bad = col.notna() & ~col.isin([0.0, 1.0])
                if bad.any():
                    fail(name, "values must be 0.0, 1.0 or NaN", bad)
    return frame
