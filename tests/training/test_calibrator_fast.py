"""The calibrators' preallocated `transform` (#18, one-customer requests) gives exactly the values of the
`np.column_stack` formulation it replaced, for one row and for many, at the edges (0, 1, NaN) too."""

from __future__ import annotations

import numpy as np
import pytest

from training.model import _EPS, _TAIL, Calibrator, OrdinalCalibrator, _logit


def _reference_calibrator(cal: Calibrator, proba: np.ndarray) -> np.ndarray:
    if cal.n_classes_ == 2:
        p1 = np.clip(cal._one(proba[:, 1], cal.params_[0]), 0.0, 1.0)
        return np.column_stack([1.0 - p1, p1])
    out = np.column_stack([cal._one(proba[:, c], prm) for c, prm in enumerate(cal.params_)])
    out = np.clip(out, _TAIL, None)
    return out / out.sum(axis=1, keepdims=True)


def _reference_ordinal(cal: OrdinalCalibrator, proba: np.ndarray) -> np.ndarray:
    p = cal._proba(_logit(np.atleast_2d(proba)[:, 1]), cal.slope_, np.asarray(cal.cuts_))
    p = np.clip(p, _EPS, None)
    return p / p.sum(axis=1, keepdims=True)


def _proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = rng.dirichlet(np.ones(k) * 0.5, size=n)
    p[:3] = np.eye(k)[[0, k - 1, 0]]  # exact 0 and 1
    p[3] = 1e-12
    p[3, 0] = 1 - 1e-12 * (k - 1)
    return p


def _labels(rng: np.random.Generator, proba: np.ndarray) -> np.ndarray:
    return np.array([rng.choice(len(row), p=row) for row in proba])


def _equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize(("method", "k"), [("sigmoid", 2), ("isotonic", 2), ("sigmoid", 3), ("isotonic", 3)])
def test_calibrator_transform_equals_the_column_stack_version(method, k):
    rng = np.random.default_rng(k)
    fit_rows = _proba(rng, 400, k)
    cal = Calibrator(method).fit(fit_rows, _labels(rng, fit_rows))
    rows = _proba(rng, 200, k)
    rows[5, 1] = np.nan  # a NaN propagates as before
    _equal(cal.transform(rows), _reference_calibrator(cal, rows))
    single = rows.astype(np.float32)  # the dtype follows the input as column_stack's did
    _equal(cal.transform(single), _reference_calibrator(cal, single))
    for i in (0, 3, 5, 17):  # one customer at a time, as the service scores them
        _equal(cal.transform(rows[i : i + 1]), _reference_calibrator(cal, rows[i : i + 1]))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_ordinal_transform_equals_the_column_stack_version(k):
    rng = np.random.default_rng(10 + k)
    fit_rows = _proba(rng, 400, 2)
    y = np.minimum((fit_rows[:, 1] * k + rng.normal(0, 0.5, 400)).astype(int).clip(0), k - 1)
    cal = OrdinalCalibrator().fit(fit_rows, y, k=k)
    rows = _proba(rng, 200, 2)
    rows[7, 1] = np.nan
    _equal(cal.transform(rows), _reference_ordinal(cal, rows))
    for i in (0, 1, 3, 7, 42):
        _equal(cal.transform(rows[i : i + 1]), _reference_ordinal(cal, rows[i : i + 1]))
