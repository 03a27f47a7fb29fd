"""Population Stability Index, vectorised.

PSI = sum over bins of (c - r) * ln(c / r), with r, c the reference and current shares of
each bin. Numerical values are binned on reference quantiles (equal-mass bins), categories
bin by value. Empty bins get a floor share of 1e-4 so the log stays finite (the usual
convention; it caps one empty bin's contribution at about 0.001-0.1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPS = 1e-4


def _finite_sorted(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    arr.sort()
    return arr


def quantile_edges(reference_sorted: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at reference quantiles (unique, so ties merge bins)."""
    n = reference_sorted.size
    if n == 0:
        return np.empty(0)
    idx = (np.arange(1, bins) * n) // bins
    return np.unique(reference_sorted[idx])


def shares_from_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of `sorted_values` in each bin (-inf, e1), [e1, e2), ..., [ek, inf)."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    counts = np.diff(np.concatenate(([0], cuts, [sorted_values.size])))
    return counts / max(sorted_values.size, 1)


def psi_from_shares(ref_shares: np.ndarray, cur_shares: np.ndarray, eps: float = EPS) -> float:
    r = np.maximum(np.asarray(ref_shares, dtype=np.float64), eps)
    c = np.maximum(np.asarray(cur_shares, dtype=np.float64), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if values.size else values


def psi_sorted(reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int = 10) -> float:
    """PSI of two already-sorted finite arrays (the fast path shares the sort with drift tests).

    A reference with at most `bins` distinct values (a flag, a count, a market rate that is
    the same for everyone on a date) is binned by value over the values of both sides:
    quantile edges would put a moved constant in the same bin as before and report no shift.
    """
    if reference_sorted.size == 0 or current_sorted.size == 0:
        return float("nan")
    ref_values = _distinct_sorted(reference_sorted)
    if ref_values.size <= bins:
        cur_values = _distinct_sorted(current_sorted)
        keys = np.union1d(ref_values, cur_values)
        if keys.size <= 4 * bins:
            r = np.diff(np.searchsorted(reference_sorted, keys, side="left"), append=reference_sorted.size)
            c = np.diff(np.searchsorted(current_sorted, keys, side="left"), append=current_sorted.size)
            return psi_from_shares(r / reference_sorted.size, c / current_sorted.size)
    edges = quantile_edges(reference_sorted, bins)
    return psi_from_shares(shares_from_sorted(reference_sorted, edges), shares_from_sorted(current_sorted, edges))


def psi(reference, current, bins: int = 10) -> float:
    """PSI of a numerical variable (e.g. a score), binned on reference deciles by default.

    NaN and infinite values are ignored; returns NaN when either side has no finite value.
    """
    return psi_sorted(_finite_sorted(reference), _finite_sorted(current), bins)


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical variable, one bin per category seen on either side (nulls ignored)."""
    ref_counts = pd.Series(reference).value_counts(dropna=True)
    cur_counts = pd.Series(current).value_counts(dropna=True)
    if ref_counts.sum() == 0 or cur_counts.sum() == 0:
        return float("nan")
    keys = ref_counts.index.union(cur_counts.index)
    r = ref_counts.reindex(keys, fill_value=0).to_numpy(dtype=np.float64)
    c = cur_counts.reindex(keys, fill_value=0).to_numpy(dtype=np.float64)
    return psi_from_shares(r / r.sum(), c / c.sum())


def psi_table(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], bins: int = 10) -> dict[str, float]:
    """PSI of each numerical column (e.g. every score column) present in both frames."""
    return {col: psi(reference[col], current[col], bins) for col in columns}
