from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.psi import psi, psi_categorical


def test_psi_of_same_distribution_is_noise_level():
    rng = np.random.default_rng(0)
    a, b = rng.beta(2, 5, 20_000), rng.beta(2, 5, 20_000)
    # ~ (bins - 1) * (1/n + 1/m) under no change
    assert psi(a, b) < 0.003


def test_psi_grows_with_the_shift_and_crosses_the_bands():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 50_000)
    values = [psi(ref, rng.normal(shift, 1, 50_000)) for shift in (0.1, 0.4, 0.8)]
    assert values[0] < 0.1 <= values[1] < 0.25 <= values[2]
    assert values == sorted(values)


def test_psi_matches_the_textbook_formula():
    ref = np.repeat(np.arange(10.0), 100)  # deciles are the ten values
    cur = np.concatenate([np.repeat(np.arange(10.0), 80), np.full(200, 9.0)])
    r = np.full(10, 0.1)
    c = np.array([0.08] * 9 + [0.28])
    assert psi(ref, cur) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))


def test_psi_ignores_nan_and_is_nan_when_a_side_is_empty():
    assert psi([0.1, 0.2, np.nan, 0.3], [0.1, 0.2, 0.3, np.inf]) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(psi([np.nan], [0.1, 0.2]))


def test_psi_categorical_new_category_counts():
    ref = pd.Series(["branch"] * 600 + ["mobile"] * 400)
    cur = pd.Series(["branch"] * 300 + ["mobile"] * 500 + ["app"] * 200)
    assert psi_categorical(ref, ref) == pytest.approx(0.0)
    assert psi_categorical(ref, cur) > 0.25


def test_psi_sees_a_moved_constant_and_a_flag():
    # a market rate is the same for every customer on a date: quantile bins would miss the move
    assert psi(np.full(1000, 2.0), np.full(1000, 1.75)) > 5
    assert psi(np.full(1000, 2.0), np.full(1000, 2.0)) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    flag_ref, flag_cur = (rng.random(10_000) < 0.6) * 1.0, (rng.random(10_000) < 0.3) * 1.0
    expected = (0.7 - 0.4) * np.log(0.7 / 0.4) + (0.3 - 0.6) * np.log(0.3 / 0.6)
    assert psi(flag_ref, flag_cur) == pytest.approx(expected, abs=0.02)
