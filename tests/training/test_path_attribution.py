"""Churn drivers' cheap attribution (issue #18): path (Saabas) contributions from per-leaf tables,
checked against LightGBM's own TreeSHAP, the TreeSHAP re-vote of close rows, and the business-segment
cache of single-customer scoring."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from core.tasks import CHURN_DRIVERS
from training.model import RankPrior, TabularModel, group_columns, path_attribution, register_path_attribution
from training.segments import DriverConfig, churn_drivers

FEATURES = ["deposit_rate_gap", "complaint_views", "login_count_3m", "views_mortgage_3m", "aum", "age"]


def _model(num_leaves: int, rounds: int = 40, seed: int = 0, prior: bool = False) -> tuple[TabularModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 1500
    X = rng.normal(size=(n, len(FEATURES)))
    X[rng.random(n) < 0.05, 2] = np.nan  # missing values take the default branch
    logit = 1.2 * X[:, 0] + 0.9 * X[:, 1] - 0.8 * X[:, 2] + 0.6 * X[:, 3] * X[:, 0] - 1.0 * X[:, 4]
    y = (logit + rng.normal(0, 0.7, n) > 0.5).astype(float)
    core = TabularModel(
        task="churn",
        kind="binary",
        features=FEATURES,
        categories={},
        booster=None,
        calibrator=None,
        classes=["0", "1"],
    )
    params = {"objective": "binary", "verbosity": -1, "seed": seed, "deterministic": True, "num_threads": 1}
    init = None
    if prior:
        core.prior = RankPrior.fit(X, FEATURES, ["age"], ["aum"])
        init = core.prior.margin(X)
    core.booster = lgb.train({**params, "num_leaves": num_leaves}, lgb.Dataset(X, y, init_score=init), rounds)
    return core, X


def test_path_contributions_add_up_to_the_raw_score_like_treeshap():
    core, X = _model(num_leaves=15)
    each = np.arange(len(FEATURES))
    path = core.grouped_contributions(X[:200], each, len(FEATURES))
    shap = core.booster.predict(X[:200], pred_contrib=True)
    np.testing.assert_allclose(path.sum(axis=1), shap[:, :-1].sum(axis=1), atol=1e-9)
    # ... but not split the same way (else TreeSHAP would never be needed)
    assert np.abs(path - shap[:, :-1]).max() > 1e-3


def test_stumps_give_exactly_treeshap():
    """One split per tree: the path attribution of a stump is its Shapley value."""
    core, X = _model(num_leaves=2, rounds=60)
    each = np.arange(len(FEATURES))
    np.testing.assert_allclose(
        core.grouped_contributions(X, each, len(FEATURES)),
        core.booster.predict(X, pred_contrib=True)[:, :-1],
        atol=1e-10,
    )


def test_groups_sum_their_features_and_leave_out_minus_one():
    core, X = _model(num_leaves=15)
    groups = np.array([0, 1, 1, 2, -1, 0])
    each = core.grouped_contributions(X[:50], np.arange(len(FEATURES)), len(FEATURES))
    got = core.grouped_contributions(X[:50], groups, 3)
    np.testing.assert_allclose(got, group_columns(each, groups, 3), atol=1e-12)
    exact = core.grouped_contributions(X[:50], groups, 3, exact=True)
    np.testing.assert_allclose(exact, group_columns(core.contributions(X[:50]), groups, 3), atol=1e-12)


def test_a_rank_prior_adds_its_exact_share():
    core, X = _model(num_leaves=7, prior=True)
    each = np.arange(len(FEATURES))
    path = core.grouped_contributions(X[:100], each, len(FEATURES))
    raw = core.booster.predict(X[:100], raw_score=True) + core.prior.margin(X[:100])
    bias = core.booster.predict(X[:100], pred_contrib=True)[:, -1]
    np.testing.assert_allclose(path.sum(axis=1) + bias, raw, atol=1e-9)


def test_tables_are_built_once_per_booster():
    core, _ = _model(num_leaves=7)
    assert path_attribution(core.booster) is path_attribution(core.booster)


def test_drivers_per_row_equal_batch_and_close_rows_are_revoted_on_treeshap():
    core, X = _model(num_leaves=31, rounds=80, seed=3)

    def drivers(rows: np.ndarray, margin: float) -> np.ndarray:
        return churn_drivers(core, rows, DriverConfig(families=FAMILIES, symptoms=["aum"], exact_margin=margin))

    treeshap = drivers(X, np.inf)
    agree = {}
    for margin in (0.0, 0.3, 100.0):
        batch = drivers(X, margin)
        singles = np.concatenate([drivers(X[i : i + 1], margin) for i in range(200)])
        assert (batch[:200] == singles).all()  # a row's driver never depends on the other rows
        assert set(batch) <= set(CHURN_DRIVERS)
        agree[margin] = float(np.mean(batch == treeshap))
    # the path vote alone differs from TreeSHAP on some rows; re-voting the close ones recovers part
    # of them; a margin that takes every row is TreeSHAP itself
    assert agree[0.0] < agree[0.3] < 1.0 and agree[100.0] == 1.0


FAMILIES = {
    "rate_gap": ["deposit_rate_*"],
    "service_incidents": ["*complaint*"],
    "disengagement": ["login_*"],
    "life_event": ["views_mortgage_*"],
}


def test_business_segments_cached_per_combination_equal_the_scheme():
    from training.scoring import _segments
    from training.segments import DEFAULT_SCHEME

    rng = np.random.default_rng(1)
    dims = [
        rng.choice(np.array(["mass", "affluent", "hnw", None], dtype=object), 400),
        rng.choice(np.array(["conservative", "balanced", "aggressive", None], dtype=object), 400),
        rng.choice(np.array(["young_professional", "family_growth", "retirement", "other", None], dtype=object), 400),
        rng.choice(np.array(["basic", "multi_product", "ecosystem", None], dtype=object), 400),
    ]
    want = DEFAULT_SCHEME.assign(*dims)
    assert len(set(want)) > 2
    for _ in range(2):  # cold, then every combination cached
        assert (_segments(DEFAULT_SCHEME, *dims)[1] == want).all()
    one = [d[:1] for d in dims]
    assert (_segments(DEFAULT_SCHEME, *one)[1] == DEFAULT_SCHEME.assign(*one)).all()


def test_registered_path_attribution_is_returned_for_a_booster_without_building_it():
    """`register_path_attribution` (the serving store reading tables back) is what `path_attribution` returns."""
    core, _ = _model(num_leaves=7)
    built = path_attribution(core.booster)
    twin = lgb.Booster(model_str=core.booster.model_to_string())
    register_path_attribution(twin, built)
    assert path_attribution(twin) is built
    with pytest.raises(TypeError, match="PathAttribution"):
        register_path_attribution(twin, object())  # type: ignore[arg-type]
