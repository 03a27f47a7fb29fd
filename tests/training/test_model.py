"""The model core: category maps re-applied at predict time, calibration, reasons, pickling, metrics."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from clientlens.errors import InputError
from training import metrics as M
from training.model import Calibrator, TabularModel


@pytest.fixture(scope="module")
def binary_model():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({
        "x": rng.normal(size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n),
    })
    y = ((frame["x"] + (frame["colour"] == "red") * 1.5 + rng.normal(0, 0.5, n)) > 0.8).astype(float).to_numpy()
    core = TabularModel(task="t", kind="binary", features=["x", "colour"],
                        categories={"colour": ["blue", "green", "red"]}, booster=None, calibrator=None, classes=["0", "1"])
    X = core.matrix(frame)
    ds = lgb.Dataset(X, y, categorical_feature=[1], params={"verbosity": -1})
    core.booster = lgb.train({"objective": "binary", "verbosity": -1, "seed": 0, "deterministic": True,
                              "num_threads": 1, "min_data_per_group": 5, "cat_smooth": 1}, ds, num_boost_round=30)
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
    np.testing.assert_allclose(core.predict_proba(cat), core.predict_proba(pd.DataFrame({"x": [0.0, 0.0], "colour": ["red", "blue"]})))



def test_batch_category_codes_equal_the_per_value_rule(binary_model):
    """Above 32 rows categories are mapped vectorised; every value still maps as a single row does
    (exact strings, unknown/None/NaN/pd.NA -> NaN, non-strings through `str`)."""
    core, _, _ = binary_model
    values = ["red", "blue", "purple", None, np.nan, pd.NA, "green", "", "Red"] * 8
    frame = pd.DataFrame({"x": np.zeros(len(values)), "colour": pd.Series(values, dtype=object)})
    batch = core.matrix(frame)[:, 1]
    single = np.array([core.matrix(frame.iloc[i:i + 1])[0, 1] for i in range(len(frame))])
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
