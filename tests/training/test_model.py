"""The model core: category maps re-applied at predict time, calibration, reasons, pickling, metrics."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from core import metrics as M
from core.errors import InputError
from training.model import Calibrator, TabularModel


@pytest.fixture(scope="module")
def binary_model():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n),
        }
    )
    y = ((frame["x"] + (frame["colour"] == "red") * 1.5 + rng.normal(0, 0.5, n)) > 0.8).astype(float).to_numpy()
    core = TabularModel(
        task="t",
        kind="binary",
        features=["x", "colour"],
        categories={"colour": ["blue", "green", "red"]},
        booster=None,
        calibrator=None,
        classes=["0", "1"],
    )
    X = core.matrix(frame)
    ds = lgb.Dataset(X, y, categorical_feature=[1], params={"verbosity": -1})
    core.booster = lgb.train(
        {
            "objective": "binary",
            "verbosity": -1,
            "seed": 0,
            "deterministic": True,
            "num_threads": 1,
            "min_data_per_group": 5,
            "cat_smooth": 1,
        },
        ds,
        num_boost_round=30,
    )
    core.calibrator = Calibrator("sigmoid").fit(core.raw_from_matrix(X), y.astype(int))
    return core, frame, y


def test_categories_are_mapped_with_training_codes_and_unknown_is_nan(binary_model):
    core, _, _ = binary_model
    X = core.matrix(pd.DataFrame({"x": [0.0, 0.0, 0.0, 0.0], "colour": ["red", "blue", "purple", None]}))
    assert X[:, 1].tolist()[:2] == [2.0, 0.0]
    assert np.isnan(X[2, 1]) and np.isnan(X[3, 1])
    # A frame with pandas `category` dtype in another category order gives the same codes (LightGBM #5244).
    cat = pd.DataFrame({"x": [0.0, 0.0], "colour": pd.Categorical(["red", "blue"], categories=["red", "blue", "zz"])})
    assert core.matrix(cat)[:, 1].tolist() == [2.0, 0.0]
    np.testing.assert_allclose(
        core.predict_proba(cat), core.predict_proba(pd.DataFrame({"x": [0.0, 0.0], "colour": ["red", "blue"]}))
    )


def test_batch_category_codes_equal_the_per_value_rule(binary_model):
    """Above 32 rows categories are mapped vectorised; every value still maps as a single row does
    (exact strings, unknown/None/NaN/pd.NA -> NaN, non-strings through `str`)."""
    core, _, _ = binary_model
    values = ["red", "blue", "purple", None, np.nan, pd.NA, "green", "", "Red"] * 8
    frame = pd.DataFrame({"x": np.zeros(len(values)), "colour": pd.Series(values, dtype=object)})
    batch = core.matrix(frame)[:, 1]
    single = np.array([core.matrix(frame.iloc[i : i + 1])[0, 1] for i in range(len(frame))])
    np.testing.assert_array_equal(batch, single)
    assert batch[:3].tolist()[:2] == [2.0, 0.0] and np.isnan(batch[2])
    as_cat = frame.assign(colour=frame["colour"].astype("category"))
    np.testing.assert_array_equal(core.matrix(as_cat)[:, 1], batch)


def test_predict_proba_is_calibrated_and_normalised(binary_model):
    core, frame, y = binary_model
    p = core.predict_proba(frame)
    assert p.shape == (len(frame), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert M.binary_metrics(y, p[:, 1])["roc_auc"] > 0.85
    assert set(np.unique(core.predict(frame))) <= {0, 1}


def test_missing_feature_is_an_input_error(binary_model):
    core, _, _ = binary_model
    with pytest.raises(InputError, match="colour"):
        core.matrix(pd.DataFrame({"x": [1.0]}))


def test_reasons_come_from_pred_contrib(binary_model):
    core, frame, _ = binary_model
    reasons = core.reasons(frame.head(3), top_k=2)
    assert len(reasons) == 3 and all(len(r) == 2 for r in reasons)
    assert {"feature", "value", "contribution"} <= set(reasons[0][0])
    contrib = core.booster.predict(core.matrix(frame.head(1)), pred_contrib=True)[0]
    top = reasons[0][0]
    j = core.features.index(top["feature"])
    assert top["contribution"] == pytest.approx(contrib[j])
    assert abs(top["contribution"]) >= abs(reasons[0][1]["contribution"])
    if top["feature"] == "colour":
        assert top["value"] in ("red", "green", "blue")


def test_pickle_roundtrip_keeps_predictions(binary_model):
    core, frame, _ = binary_model
    again = pickle.loads(pickle.dumps(core))
    np.testing.assert_allclose(again.predict_proba(frame), core.predict_proba(frame))


def test_multiclass_calibrator_rows_sum_to_one():
    rng = np.random.default_rng(1)
    raw = rng.dirichlet([1, 1, 1], size=300)
    y = np.array([rng.choice(3, p=r) for r in raw])
    for method in ("sigmoid", "isotonic"):
        cal = Calibrator(method).fit(raw, y).transform(raw)
        np.testing.assert_allclose(cal.sum(axis=1), 1.0)
        assert (cal > 0).all()


def _multiclass_transform_per_class(cal: Calibrator, proba: np.ndarray) -> np.ndarray:
    """`Calibrator.transform` of a multiclass calibrator as written before it took every class at once (#18):
    one `_one` per class column, stacked; the reference the block path must equal bit for bit."""
    cols = [cal._one(proba[:, c], prm) for c, prm in enumerate(cal.params_)]
    out = np.clip(np.column_stack(cols), 1e-300, None)
    return out / out.sum(axis=1, keepdims=True)


def test_multiclass_sigmoid_calibrator_takes_every_class_at_once_bit_for_bit():
    """One customer, a few and a batch, with probabilities at 0, 1, tiny, NaN and a class absent from the
    calibration rows (identity parameters as Python floats): the same bits as class by class, and a pickled
    calibrator (the block's parameters are not pickled) the same again."""
    import pickle

    rng = np.random.default_rng(3)
    raw = rng.dirichlet([1, 0.3, 0.05], size=400)
    y = np.array([rng.choice(3, p=r) for r in raw])
    fitted = Calibrator("sigmoid").fit(raw, y)
    absent = Calibrator("sigmoid").fit(raw, np.where(y == 2, 1, y))  # class 2 never seen: (1.0, 0.0)
    raw[:5] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1 - 1e-12, 1e-12, 0.0], [np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]
    assert absent.params_[2] == (1.0, 0.0)
    for cal in (fitted, absent):
        for rows in (slice(0, 1), slice(3, 4), slice(0, 7), slice(None)):
            want = _multiclass_transform_per_class(cal, raw[rows])
            np.testing.assert_array_equal(cal.transform(raw[rows]), want)
        back = pickle.loads(pickle.dumps(cal))
        assert "_slopes_cache" not in back.__dict__
        np.testing.assert_array_equal(back.transform(raw), cal.transform(raw))


def test_multiclass_sigmoid_calibrator_keeps_the_order_of_tiny_probabilities():
    """A tier model boosted from persistence gives most stayers P(move) far below 1e-6. The calibrator
    must not floor them to one value: at a 1e-6 floor 90% of the demo bank's mass customers shared one
    calibrated P(upgrade) and its upgrade AUC fell from 0.994 (raw) to 0.814 (docs/decisions/tier-model.md)."""
    rng = np.random.default_rng(3)
    n = 4000
    move = 10.0 ** rng.uniform(-14, -1, n)  # P(affluent) of a mass customer, from 1e-14 to 0.1
    raw = np.column_stack([1.0 - move, move * 0.999, move * 0.001])
    y = (rng.random(n) < move).astype(int)  # upgrades happen at the stated rate
    cal = Calibrator("sigmoid").fit(raw, y).transform(raw)
    order = np.argsort(move)
    assert (np.diff(cal[order, 1]) > 0).all()  # strictly increasing: no ties, no reversals
    assert np.isfinite(cal).all() and (cal > 0).all()
    np.testing.assert_allclose(cal.sum(axis=1), 1.0)
    up = (y == 1).astype(int)
    assert M.upgrade_auc(np.zeros(n, dtype=int), y, cal) == pytest.approx(M.upgrade_auc(np.zeros(n, dtype=int), y, raw))
    assert up.sum() > 5


def test_binary_sigmoid_calibrator_keeps_the_order_of_tiny_probabilities():
    """A churn booster puts most customers far below 1e-6 (86-92% of the churn task's customers before
    lambda_l2 was bounded). The binary calibrator used to floor them at 1e-6 before the logit, which gave
    them all one calibrated score: every one of them must keep its own, in order, and the AUC the raw one."""
    rng = np.random.default_rng(5)
    n = 3000
    p = 10.0 ** rng.uniform(-12, -0.5, n)
    y = (rng.random(n) < np.sqrt(p)).astype(int)
    raw = np.column_stack([1.0 - p, p])
    cal = Calibrator("sigmoid").fit(raw, y).transform(raw)
    order = np.argsort(p)
    assert (p < 1e-6).mean() > 0.4  # the rows the old floor tied
    assert (np.diff(cal[order, 1]) > 0).all()  # strictly increasing: no tie, no reversal
    assert np.isfinite(cal).all()
    assert M.binary_metrics(y, cal[:, 1])["roc_auc"] == pytest.approx(M.binary_metrics(y, p)["roc_auc"], abs=1e-12)


def test_binary_calibrator_pickled_before_the_tail_floor_scores_as_it_did():
    """A stored binary calibrator without `floor_` was fitted on 1e-6-floored logits: it keeps that floor."""
    p = np.array([1e-9, 1e-7, 1e-6, 0.3])
    raw = np.column_stack([1.0 - p, p])
    cal = Calibrator("sigmoid")
    cal.n_classes_, cal.params_ = 2, [(0.8, -0.5)]  # as unpickled from a model trained before
    out = cal.transform(raw)[:, 1]
    assert out[0] == out[1] == out[2] < out[3]
    cal.floor_ = 1e-300  # fitted now
    assert (np.diff(cal.transform(raw)[:, 1]) > 0).all()


def test_calibrate_is_what_proba_from_matrix_applies(binary_model):
    """`TabularModel.calibrate(raw, X)` (training calls it on held-out scores) is the prediction path's step."""
    core, frame, _ = binary_model
    X = core.matrix(frame)
    np.testing.assert_array_equal(core.calibrate(core.raw_from_matrix(X), X), core.proba_from_matrix(X))


def test_temperature_calibrator_keeps_every_rows_class_and_each_classs_order():
    """softmax(log p / T), one T: every row keeps its predicted class, every odds ratio is the raw one to
    the power 1/T (down to odds of 1e-14), and T lowers the log loss of an overconfident model."""
    rng = np.random.default_rng(4)
    n = 3000
    logits = rng.normal(0, 1, (n, 3)) * 12.0  # an overconfident model: probabilities down to ~1e-14
    raw = np.exp(logits - logits.max(axis=1, keepdims=True))
    raw /= raw.sum(axis=1, keepdims=True)
    truth = np.exp(logits / 4.0)  # the truth is 4x less sure
    truth /= truth.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=r) for r in truth])
    cal = Calibrator("temperature").fit(raw, y)
    assert 3.0 < cal.temperature_ < 5.0
    out = cal.transform(raw)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out.argmax(axis=1), raw.argmax(axis=1))
    # every odds ratio between two classes, in every row, is the raw one to the power 1/T: comparisons of
    # odds across rows and class pairs (P(up) of a mass row vs of an affluent row) keep the raw order
    for a, b in ((1, 0), (2, 1), (2, 0)):
        np.testing.assert_allclose(np.log(out[:, a] / out[:, b]), np.log(raw[:, a] / raw[:, b]) / cal.temperature_)
    assert M.multiclass_metrics(y, out)["log_loss"] < M.multiclass_metrics(y, raw)["log_loss"]
    back = pickle.loads(pickle.dumps(cal))
    np.testing.assert_array_equal(back.transform(raw), out)


def test_metric_names_and_values():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 0, 1])
    p = np.array([0.1, 0.2, 0.8, 0.7, 0.3, 0.9, 0.2, 0.1, 0.4, 0.6])
    m = M.binary_metrics(y, p)
    assert set(m) == {"roc_auc", "pr_auc", "ks", "brier", "lift_at_10"}
    assert m["roc_auc"] == 1.0 and m["ks"] == 1.0 and m["lift_at_10"] == pytest.approx(2.5)
    proba = np.eye(3)[[0, 1, 2, 1]] * 0.9 + 0.1 / 3
    assert set(M.multiclass_metrics(np.array([0, 1, 2, 1]), proba)) == {"macro_f1", "log_loss", "accuracy"}
    assert set(M.regression_metrics(np.array([1.0, 2.0]), np.array([1.0, 2.5]))) == {"rmse", "r2"}
    # upgrade: P(future above current) ranks the upgraders first
    current = np.array([0, 0, 1, 1])
    future = np.array([1, 0, 2, 1])
    up = np.array([[0.2, 0.7, 0.1], [0.9, 0.1, 0.0], [0.0, 0.4, 0.6], [0.1, 0.8, 0.1]])
    assert M.upgrade_auc(current, future, up) == 1.0
    assert M.expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


def _prior_model(seed: int = 0):
    """A binary model boosted from a rank prior on `v` and `w` (LightGBM `init_score`), as `boost_from_baseline`."""
    from training.model import RankPrior

    rng = np.random.default_rng(seed)
    n = 800
    frame = pd.DataFrame(
        {
            "v": rng.poisson(3.0, n).astype(float),
            "w": rng.exponential(1.0, n),
            "x": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], size=n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "w"] = np.nan
    y = ((0.4 * frame["v"] + frame["w"].fillna(0) + frame["x"] + rng.normal(0, 1, n)) > 2.5).astype(float).to_numpy()
    core = TabularModel(
        task="t",
        kind="binary",
        features=["v", "w", "x", "colour"],
        categories={"colour": ["blue", "red"]},
        booster=None,
        calibrator=None,
        classes=["no", "yes"],
    )
    X = core.matrix(frame)
    core.prior = RankPrior.fit(X, core.features, ["v", "w"])
    ds = lgb.Dataset(X, y, init_score=core.prior.margin(X), categorical_feature=[3], params={"verbosity": -1})
    core.booster = lgb.train(
        {
            "objective": "binary",
            "verbosity": -1,
            "seed": 0,
            "deterministic": True,
            "num_threads": 1,
            "num_leaves": 2,
            "min_data_per_group": 5,
        },
        ds,
        num_boost_round=20,
    )
    core.calibrator = Calibrator("sigmoid").fit(core.raw_from_matrix(X), y.astype(int))
    return core, frame, X


def test_rank_prior_is_the_heuristic_baseline_score():
    """The prior's ranks are the heuristic baseline's (shares of training values <= x, NaN lowest), as a logit."""
    from training.baselines import HeuristicBaseline

    core, frame, X = _prior_model()
    h = HeuristicBaseline(["v", "w"], [], 20, "binary", 2).fit(frame, frame.iloc[:0], np.zeros(len(frame)))
    new = pd.DataFrame({"v": [0.0, 3.0, 50.0, np.nan], "w": [np.nan, 0.5, 9.0, 0.1], "x": 0.0, "colour": "red"})
    for f in (frame, new):
        Xf = core.matrix(f)
        np.testing.assert_allclose(core.prior.ranks(Xf).mean(axis=1), h.raw_score(f, f.iloc[:0]), atol=1e-12)
        p = np.clip(h.raw_score(f, f.iloc[:0]), 1e-3, 1 - 1e-3)
        np.testing.assert_allclose(core.prior.margin(Xf), np.log(p / (1 - p)), atol=1e-12)


def assert_prior_survives(core: TabularModel, frame: pd.DataFrame, prior_columns: list[str]) -> None:
    """The prior is applied the same way through a predictor returning Booster.predict's probabilities
    (what serving.compiled attaches) and after pickling (the registered artefact)."""
    want = core.predict_proba(frame)
    core.use_predictor(lambda M: core.booster.predict(M, num_threads=1))
    try:
        np.testing.assert_allclose(core.predict_proba(frame), want, rtol=1e-9, atol=1e-12)
    finally:
        core.use_predictor(None)
    back = pickle.loads(pickle.dumps(core))
    assert back.prior is not None and back.prior.columns == prior_columns
    np.testing.assert_array_equal(back.predict_proba(frame), want)


def test_prior_is_added_to_the_booster_at_every_prediction_path():
    """LightGBM does not store init_score: the model adds the prior's margin back, through the booster,
    a compiled predictor (serving) and after pickling (the registered artefact)."""
    core, frame, X = _prior_model()
    margin = core.booster.predict(X, raw_score=True) + core.prior.margin(X)
    np.testing.assert_allclose(core.raw_from_matrix(X)[:, 1], 1 / (1 + np.exp(-margin)), rtol=1e-12)
    # without the prior the booster alone ranks differently (it learned corrections, not the score)
    assert not np.allclose(core.booster.predict(X), core.raw_from_matrix(X)[:, 1])
    assert_prior_survives(core, frame, ["v", "w"])
    # an old pickle without a prior still loads (no prior)
    state = core.__getstate__()
    state.pop("prior")
    old = TabularModel.__new__(TabularModel)
    old.__setstate__(state)
    assert old.prior is None


def test_prior_reasons_are_additive_shapley_values():
    """Reasons include the prior: per row, every feature's contribution + the booster's bias = the log-odds."""
    core, frame, X = _prior_model()
    rows = frame.head(25)
    reasons = core.reasons(rows, top_k=len(core.features))
    bias = core.booster.predict(core.matrix(rows), pred_contrib=True)[:, -1]
    total = core.booster.predict(core.matrix(rows), raw_score=True) + core.prior.margin(core.matrix(rows))
    got = np.array([sum(r["contribution"] for r in row) for row in reasons]) + bias
    np.testing.assert_allclose(got, total, atol=1e-9)
    # the prior's share lands on its own columns: a row at the top of both ranks explains by them
    top = pd.DataFrame({"v": [frame["v"].max()], "w": [frame["w"].max()], "x": [0.0], "colour": ["red"]})
    assert {r["feature"] for r in core.reasons(top, top_k=2)[0]} == {"v", "w"}


def _transition_model(seed: int = 0, *, prior: bool = True, calibration: str = "sigmoid"):
    """A three-tier model boosted from the persistence transition table (`TransitionPrior`), as the tier spec:
    the future tier is the current one unless a noisy `aum` crosses a threshold."""
    from training.model import TransitionPrior

    rng = np.random.default_rng(seed)
    n = 3000
    classes = ["mass", "affluent", "hnw"]
    aum = np.exp(rng.normal(0.0, 1.2, n))
    edges = [1.0, 4.0]
    current = np.digitize(aum, edges)
    future = np.digitize(aum * np.exp(rng.normal(0.05, 0.15, n)), edges)
    tier = np.asarray(classes, dtype=object)[current]
    tier[:20] = None  # a current tier missing: starts at the class shares
    frame = pd.DataFrame({"aum": aum, "tier": tier, "x": rng.normal(size=n)})
    core = TabularModel(
        task="tier",
        kind="multiclass",
        features=["aum", "tier", "x"],
        categories={"tier": sorted(classes)},
        booster=None,
        calibrator=None,
        classes=classes,
    )
    X = core.matrix(frame)
    init = None
    if prior:
        core.prior = TransitionPrior.fit(X, future, core.features, core.categories, "tier", classes)
        init = core.prior.margin(X)
    ds = lgb.Dataset(X, future, init_score=init, categorical_feature=[1], params={"verbosity": -1})
    params = {"objective": "multiclass", "num_class": 3, "verbosity": -1, "seed": 0, "deterministic": True}
    core.booster = lgb.train({**params, "num_threads": 1, "num_leaves": 7, "min_data_per_group": 5}, ds, 30)
    core.calibrator = Calibrator(calibration).fit(core.raw_from_matrix(X), future)
    return core, frame, X, future


def test_transition_prior_is_the_persistence_baselines_transition_matrix():
    """Each row starts at log P(future | current) of the persistence baseline fitted on the same rows;
    a missing current tier starts at the training class shares."""
    from training.baselines import PersistenceBaseline

    core, frame, X, y = _transition_model()
    base = PersistenceBaseline("tier", core.classes).fit(frame, frame.iloc[:0], y)
    margin = core.prior.margin(X)
    known = frame["tier"].notna().to_numpy()
    current = base._current(frame, frame.iloc[:0])
    np.testing.assert_allclose(np.exp(margin[known]), base.transition_[current[known]], rtol=1e-12)
    share = (np.bincount(y, minlength=3) + 1.0) / (len(y) + 3.0)
    np.testing.assert_allclose(np.exp(margin[~known]), np.tile(share, (int((~known).sum()), 1)), rtol=1e-12)
    # an unseen category code or a NaN code is 'unknown' too
    odd = X[:2].copy()
    odd[:, 1] = [np.nan, 9.0]
    np.testing.assert_allclose(np.exp(core.prior.margin(odd)), np.tile(share, (2, 1)), rtol=1e-12)
    # tempered (`prior_strength`): strength x log P, so softmax gives P ** strength renormalised
    half = type(core.prior).fit(X, y, core.features, core.categories, "tier", core.classes, strength=0.5)
    np.testing.assert_allclose(half.margin(X), 0.5 * margin, rtol=1e-12)
    with pytest.raises(InputError, match="categorical"):
        type(core.prior).fit(X, y, core.features, core.categories, "aum", core.classes)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7, 8, 9])
def test_rank_prior_of_one_row_equals_the_batch_bit_for_bit(k):
    """One customer's starting score (Python floats, #18) has the bits of the batch's: ties, missing values,
    values outside the training range, negative columns; 8 or more columns take the batch path."""
    from training.model import RankPrior

    rng = np.random.default_rng(k)
    X = np.round(rng.normal(size=(300, 10)) * 3, 1)
    X[rng.random(X.shape) < 0.1] = np.nan
    features = [f"f{i}" for i in range(10)]
    prior = RankPrior.fit(X[:200], features, features[: (k + 1) // 2], features[(k + 1) // 2 : k])
    assert len(prior.index) == k
    test = np.vstack([X[200:], np.full((1, 10), np.nan), np.full((1, 10), 1e9), np.full((1, 10), -1e9)])
    batch = prior.margin(test)
    for i in range(len(test)):
        one = prior.margin(test[i : i + 1])
        np.testing.assert_array_equal(one, batch[i : i + 1])
        np.testing.assert_array_equal(one, prior._margin_of_ranks(prior.ranks(test[i : i + 1])))


def test_transition_prior_of_one_row_equals_the_batch_rule():
    """One customer's current class (the Python rule of a single request, #18) is the batch's for every kind of
    code: each class, a category that is not a class, missing, negative, fractional, too large, infinite."""
    core, _frame, X, _y = _transition_model()
    prior = core.prior
    prior = type(prior)(prior.columns[0], prior.index[0], [*prior.codes, -1], prior.log_transition, prior.log_share)
    odd = np.repeat(X[:1], 12, axis=0)
    codes = [0.0, 1.0, 2.0, 3.0, np.nan, -1.0, -0.0, 1.7, 4.0, 99.0, np.inf, -np.inf]
    odd[:, prior.index[0]] = codes
    batch = prior.current(odd)
    assert set(batch.tolist()) == {0, 1, 2, 3}  # a class each, and 3 = unknown (not a class, missing, out of range)
    for i in range(len(odd)):
        one = prior.current(odd[i : i + 1])
        assert one.dtype == batch.dtype and one.tolist() == [batch[i]], codes[i]
        np.testing.assert_array_equal(prior.margin(odd[i : i + 1]), prior.margin(odd)[i : i + 1])


@pytest.mark.parametrize("calibration", ["sigmoid", "temperature"])  # the tier spec ships temperature
def test_transition_prior_is_added_at_every_prediction_path(calibration):
    """softmax(booster raw + prior) through the booster, a predictor returning Booster.predict's
    probabilities (what serving.compiled attaches) and after pickling; reasons credit the current tier."""
    core, frame, X, y = _transition_model(calibration=calibration)
    raw = core.booster.predict(X, raw_score=True) + core.prior.margin(X)
    want_raw = np.exp(raw - raw.max(axis=1, keepdims=True))
    np.testing.assert_allclose(core.raw_from_matrix(X), want_raw / want_raw.sum(axis=1, keepdims=True), rtol=1e-10)
    # the booster alone learned only the change: it is far from the level without the prior
    stays = (frame["tier"].to_numpy() != np.asarray(core.classes, dtype=object)[y]).mean()  # persistence's errors
    assert (core.booster.predict(X).argmax(axis=1) != y).mean() > 2 * stays
    assert (core.predict_proba(frame).argmax(axis=1) != y).mean() <= stays
    assert_prior_survives(core, frame, ["tier"])
    # reasons: the current tier's share of the predicted class is log P(class | tier) - log P(class)
    # (a customer predicted to stay: being in that tier makes it likelier than its share, a positive reason)
    X_rows = X[20:40]
    chosen = core.proba_from_matrix(X_rows).argmax(axis=1)
    extra = (
        core.contributions(X_rows)[:, 1]
        - core.booster.predict(X_rows, pred_contrib=True).reshape(20, 3, 4)[np.arange(20), chosen, 1]
    )
    np.testing.assert_allclose(extra, core.prior.contributions(X_rows, chosen)[:, 0], atol=1e-12)
    stay = chosen == core.prior.current(X_rows)
    assert stay.sum() > 10 and (core.prior.contributions(X_rows, chosen)[stay, 0] > 0).all()


@pytest.mark.parametrize(
    "x",
    [
        np.array([0.5, -1.0, np.nan, np.inf]),
        np.array([1, 2, 3, 4]),
        np.array([True, False, True, False]),
        np.array([0.5, None, "2.5", 3], dtype=object),
        np.array([0.5, "abc", None, 1.0], dtype=object),  # not a number: the per-column coercion
        pd.array([1, None, 3, 4], dtype="Int64"),  # pd.NA does not convert as a block
    ],
)
def test_few_row_matrix_equals_the_per_column_conversion(binary_model, x):
    """Up to 32 rows `matrix` converts every column in one block; each value gets the per-column
    path's float (NaN / inf / ints / bools / numeric strings / coerced junk / pd.NA alike)."""
    core, _, _ = binary_model
    colour = np.array(["red", None, "purple", "blue"], dtype=object)
    for rows in (slice(0, 1), slice(1, 2), slice(0, 4)):
        cols = {"x": x[rows], "colour": colour[rows]}
        got, want = core.matrix(cols), core._column_matrix(cols)
        assert got.shape == want.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        frame = pd.DataFrame({"x": pd.Series(x[rows]), "colour": colour[rows]})
        np.testing.assert_array_equal(core.matrix(frame), core._column_matrix(frame))
        frame.index = [7, 3, 9, 1][: len(frame)]  # rows are taken by position, not by label
        np.testing.assert_array_equal(core.matrix(frame), core._column_matrix(frame))


def test_matrix_names_the_missing_features_of_a_dict_a_frame_and_a_mapping(binary_model):
    """The one set comparison for a dict of columns (#18) still finds every missing feature, as the per-feature
    look-up does for a frame or another mapping; the feature set is not pickled."""
    import pickle
    from types import MappingProxyType

    core, frame, _ = binary_model
    cols = {c: frame[c].to_numpy()[:1] for c in core.features}
    np.testing.assert_array_equal(core.matrix(cols), core.matrix(frame.head(1)))
    short = {c: v for c, v in cols.items() if c != "colour"}
    for data in (short, MappingProxyType(short), frame.drop(columns="colour")):
        with pytest.raises(InputError, match=r"missing feature column\(s\) \['colour'\]"):
            core.matrix(data)
    assert "_features_cache" not in pickle.loads(pickle.dumps(core)).__dict__
