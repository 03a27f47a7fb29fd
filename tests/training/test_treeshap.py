"""The churn drivers' exact TreeSHAP from per-leaf tables (issue #18) against LightGBM's own `pred_contrib`:
numeric splits with NaN or zero as the missing value, categorical splits with NaN / negative / unseen codes,
features split again on a path, leaves too deep for the tables, a rank prior, binary and regression."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pytest

from core.tasks import CHURN_DRIVERS
from training import treeshap
from training.model import RankPrior, TabularModel, group_columns
from training.segments import DriverConfig, _vote, churn_drivers, prepare_drivers

FEATURES = ["deposit_rate_gap", "complaint_views", "login_count_3m", "views_mortgage_3m", "aum", "region", "age"]
REGION = FEATURES.index("region")


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, REGION] = rng.integers(0, 12, n)  # a category code
    X[rng.random(n) < 0.08, 2] = np.nan
    X[rng.random(n) < 0.10, 1] = 0.0
    X[rng.random(n) < 0.05, REGION] = np.nan
    logit = 1.2 * X[:, 0] + 0.9 * X[:, 1] - 0.8 * np.nan_to_num(X[:, 2]) + 0.6 * X[:, 3] * X[:, 0] - X[:, 4]
    logit += np.isin(X[:, REGION], [0, 4, 7]) * 1.5  # 0 on the left: NaN must not pass for code 0
    return X, (logit + rng.normal(0, 0.7, n) > 0.5).astype(float)


def _model(objective: str = "binary", prior: bool = False, **params) -> tuple[TabularModel, np.ndarray]:
    X, y = _data(1500, seed=params.pop("seed", 0))
    core = TabularModel(
        task="churn",
        kind="binary" if objective == "binary" else "regression",
        features=FEATURES,
        categories={},
        booster=None,
        calibrator=None,
        classes=["0", "1"] if objective == "binary" else None,
    )
    init = None
    if prior:
        core.prior = RankPrior.fit(X, FEATURES, ["age"], ["aum"])
        init = core.prior.margin(X)
    base = {"objective": objective, "verbosity": -1, "seed": 0, "deterministic": True, "num_threads": 1}
    data = lgb.Dataset(X, y, init_score=init, categorical_feature=[REGION], free_raw_data=False)
    core.booster = lgb.train({**base, "num_leaves": 15, "min_data_in_leaf": 5, **params}, data, 30)
    # scoring rows beyond training's: a negative, an unseen and a fractional code, NaN everywhere
    Xs, _ = _data(300, seed=1)
    Xs[:10, REGION] = [-1, 40, 2.7, -0.5, np.nan, 0, 11, 12, 1e12, -1e12]
    Xs[10:20, :] = np.nan
    Xs[20:30, 1] = [0.0, -0.0, 1e-40, -1e-40, 1e-30, np.nan, 0.0, 0.0, 0.0, 0.0]
    return core, Xs


def _reference(core: TabularModel, X: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    return group_columns(core.contributions(X), groups, n_groups)


CASES = {
    "binary, NaN missing": {},
    "binary, zero as missing": {"zero_as_missing": True},
    "binary, deep trees": {"num_leaves": 63, "max_depth": -1, "min_data_in_leaf": 2, "seed": 2},
    "binary, few features (splits repeat)": {"num_leaves": 31, "feature_fraction": 0.3, "seed": 3},
    "regression": {"objective": "regression"},
    "binary, no split at all (one single-leaf tree)": {"min_gain_to_split": 1e9},
    "binary with a rank prior": {"prior": True},
}


@pytest.mark.parametrize("case", CASES)
def test_tables_give_lightgbm_treeshap_per_feature_and_per_group(case):
    params = dict(CASES[case])
    core, X = _model(objective=params.pop("objective", "binary"), prior=params.pop("prior", False), **params)
    each = np.arange(len(FEATURES))
    groups = np.array([0, 1, 2, 3, -1, 2, 0])
    shap = treeshap.family_treeshap(core.booster)
    for grouping, n in ((each, len(FEATURES)), (groups, 4)):  # as serving builds them at model load
        shap.table(grouping, n)
    np.testing.assert_allclose(
        core.grouped_contributions(X, each, len(FEATURES), exact=True),
        _reference(core, X, each, len(FEATURES)),
        atol=1e-9,
    )
    np.testing.assert_allclose(
        core.grouped_contributions(X, groups, 4, exact=True), _reference(core, X, groups, 4), atol=1e-9
    )
    _, agrees = shap.grouped(X, groups, 4, core.booster.predict(X, pred_leaf=True))
    assert agrees.all()  # every row's splits reproduce LightGBM's leaves: no row fell back to pred_contrib


def test_categorical_and_repeated_splits_are_exercised():
    """The cases above only mean something if the trees split on the category and split a feature twice."""
    core, _ = _model(num_leaves=31, feature_fraction=0.3, seed=3)
    shap = treeshap.family_treeshap(core.booster)
    assert len(shap.cat_nodes) > 0
    assert max(len(f) for f in shap.features) < max(np.bincount(shap.entry_leaf))  # a path repeats a feature


def test_leaves_beyond_the_table_budget_use_half_tables(monkeypatch):
    monkeypatch.setattr(treeshap, "MAX_TABLE_DEPTH", 3)
    core, X = _model(num_leaves=63, min_data_in_leaf=2, seed=2)
    each = np.arange(len(FEATURES))
    table = treeshap.family_treeshap(core.booster).table(each, len(FEATURES))
    assert table.halves and len(table.pair_leaf)  # both ways are used
    np.testing.assert_allclose(
        core.grouped_contributions(X, each, len(FEATURES), exact=True),
        _reference(core, X, each, len(FEATURES)),
        atol=1e-9,
    )


def test_a_row_whose_splits_do_not_reproduce_lightgbm_gets_pred_contrib(caplog):
    core, X = _model()
    groups = np.arange(len(FEATURES))
    leaves = core.booster.predict(X[:20], pred_leaf=True)
    wrong = leaves.copy()
    wrong[3, 5] = (wrong[3, 5] + 1) % core.booster.dump_model()["tree_info"][5]["num_leaves"]
    shap = treeshap.family_treeshap(core.booster)
    _, agrees = shap.grouped(X[:20], groups, len(FEATURES), wrong)
    assert not agrees[3] and agrees[np.arange(20) != 3].all()
    with caplog.at_level(logging.WARNING, logger="training.treeshap"):
        got = treeshap.grouped_treeshap(core.booster, X[:20], wrong, groups, len(FEATURES))
    assert "1 of 20 rows fall back" in caplog.text
    np.testing.assert_allclose(got, core.booster.predict(X[:20], pred_contrib=True)[:, :-1], atol=1e-9)


def test_churn_drivers_are_treeshaps_family_vote():
    """With every row re-voted (`exact_margin` inf), the drivers are the vote on `pred_contrib`'s family
    sums, row for row; with the default margin, a row's driver does not depend on its batch."""
    core, X = _model(num_leaves=31, seed=4)
    names = [*CHURN_DRIVERS]
    config = DriverConfig(
        min_contribution=0.05,
        exact_margin=float("inf"),
        families={
            "rate_gap": ["deposit_rate_gap"],
            "service_incidents": ["complaint_views"],
            "disengagement": ["login_count_*"],
            "life_event": ["views_mortgage_*", "region"],
        },
        symptoms=["aum"],
    )
    groups = np.array([names.index(f) for f in ("rate_gap", "service_incidents", "disengagement", "life_event")]
                      + [-1, names.index("life_event"), names.index("other")])  # fmt: skip
    prepare_drivers(core, config)  # as serving does at model load
    best, top, _ = _vote(_reference(core, X, groups, len(names)), names.index("other"))
    expected = np.asarray(names, dtype=object)[np.where(top > 0.05, best, names.index("other"))]
    got = churn_drivers(core, X, config)
    assert (got == expected).all()
    assert len(set(got)) >= 3  # the vote is not trivially constant
    hybrid = config.model_copy(update={"exact_margin": 0.3})
    one_by_one = np.concatenate([churn_drivers(core, X[i : i + 1], hybrid) for i in range(40)])
    assert (churn_drivers(core, X[:40], hybrid) == one_by_one).all()


def _brute_shapley(r: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Shapley values / V of v(S) = prod_{k in S} z_k prod_{k not in S} r_k by enumerating coalitions."""
    from itertools import combinations
    from math import factorial

    d = len(r)

    def v(S: set[int]) -> float:
        return float(np.prod([z[k] if k in S else r[k] for k in range(d)]))

    phi = np.zeros(d)
    for k in range(d):
        rest = [j for j in range(d) if j != k]
        for size in range(d):
            for S in combinations(rest, size):
                weight = factorial(size) * factorial(d - size - 1) / factorial(d)
                phi[k] += weight * (v({*S, k}) - v(set(S)))
    return phi


def test_both_table_builders_are_the_shapley_values_of_the_leaf_game():
    """`_doubling` (every regular leaf) and `_shapley` (leaves with an empty child, r = 0) against coalitions."""
    rng = np.random.default_rng(5)
    for d in (1, 2, 5, 7):
        r = rng.uniform(0.05, 0.95, d)
        mask = rng.random((1, d)) < 0.6
        t, w = treeshap._gauss_legendre(d // 2 + 1)
        F, S = treeshap._doubling(r[None, :], mask, t)
        table = ((F * S) @ w)[0]
        for pattern in range(1 << d):
            z = ((pattern >> np.arange(d)) & 1).astype(float)
            brute = _brute_shapley(r, z)
            assert table[pattern] == pytest.approx(brute[mask[0]].sum(), abs=1e-12)
            with_empty = r.copy()
            with_empty[0] = 0.0
            np.testing.assert_allclose(treeshap._shapley(with_empty, z), _brute_shapley(with_empty, z), atol=1e-12)


def test_few_rows_before_the_tables_are_built_take_pred_contrib():
    """Training's driver accuracy scores a few dozen rows: building the tables would cost more than that."""
    core, X = _model(seed=6)
    groups = np.arange(len(FEATURES))
    few = X[: treeshap.TABLE_MIN_ROWS - 1]
    got = core.grouped_contributions(few, groups, len(FEATURES), exact=True)
    assert core.booster not in treeshap._SHAP  # nothing was built
    np.testing.assert_allclose(got, _reference(core, few, groups, len(FEATURES)), atol=1e-12)


def test_registered_tables_are_used_for_a_booster_without_building_them():
    """`register_family_treeshap` (the serving store reading tables back) makes another booster object of the same
    model use the given tables: `family_treeshap` returns them as they are, and a wrong type is refused."""
    core, X = _model(seed=7)
    built = treeshap.family_treeshap(core.booster)
    twin = lgb.Booster(model_str=core.booster.model_to_string())
    assert twin not in treeshap._SHAP
    treeshap.register_family_treeshap(twin, built)
    assert treeshap.family_treeshap(twin) is built
    with pytest.raises(TypeError, match="FamilyTreeShap"):
        treeshap.register_family_treeshap(twin, object())  # type: ignore[arg-type]
    assert treeshap.family_treeshap(twin) is built


def _numerical_decision(x: float, threshold: float, default_left: bool, missing: int) -> bool:
    """LightGBM's `Tree::NumericalDecision` for one value (missing: 0 None, 1 Zero, 2 NaN): True = left."""
    if np.isnan(x) and missing != 2:
        x = 0.0
    if (missing == 1 and -treeshap._ZERO <= x <= treeshap._ZERO) or (missing == 2 and np.isnan(x)):
        return default_left
    return bool(x <= threshold)


@pytest.mark.parametrize(
    "case", ["binary, NaN missing", "binary, zero as missing", "binary, few features (splits repeat)"]
)
def test_sides_and_patterns_equal_a_row_by_row_walk(case):
    """`sides` (one gather and one comparison for every numeric node) against LightGBM's decision value by value,
    and `patterns` (a sparse product) against each leaf's pattern counted entry by entry: bit k set when every
    split on the path's k-th feature agrees. The TreeSHAP sums read nothing else of the row, so equal patterns
    mean bitwise the same contributions."""
    core, X = _model(**CASES[case])
    X = np.vstack([X[:40], X[10:20], X[20:30]])  # NaN rows and values in and around LightGBM's zero band
    X[0, :] = np.inf
    X[1, :] = -np.inf
    X[2, :] = -0.0
    shap = treeshap.family_treeshap(core.booster)
    left = shap.sides(X)
    assert left.shape == (len(shap.node_feature) + 1, len(X)) and (left[-1] == 1).all()
    for node in shap.num_nodes:
        f, thr = shap.node_feature[node], shap.node_threshold[node]
        want = [_numerical_decision(x, thr, shap.node_default_left[node], shap.node_missing[node]) for x in X[:, f]]
        assert (left[node] == np.asarray(want)).all(), node
    disagree = np.zeros((len(shap.leaf_value), 64, len(X)), dtype=bool)
    for leaf, node, goes_left, bit in zip(
        shap.entry_leaf, shap.entry_node, shap.entry_left, shap.entry_bit, strict=True
    ):
        disagree[leaf, bit] |= (left[node] == 1) != goes_left
    depth = shap.leaf_depth
    want_z = np.zeros((len(shap.leaf_value), len(X)), dtype=np.int64)
    for leaf in range(len(shap.leaf_value)):
        for bit in range(depth[leaf]):
            want_z[leaf] |= (~disagree[leaf, bit]).astype(np.int64) << bit
    z = shap.patterns(left)
    assert z.dtype == np.int64 and np.array_equal(z, want_z)
    assert shap.repeat_bits.shape[1] > 0 or case != "binary, few features (splits repeat)"  # repeated splits exercised
    assert shap.agrees(left, core.booster.predict(X, pred_leaf=True)).all()
