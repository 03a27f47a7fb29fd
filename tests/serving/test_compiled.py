"""Compiled boosters (serving.compiled): exactly LightGBM's output, cached, and never served unverified."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from serving import compiled
from training.model import TabularModel


def _model(kind: str, seed: int = 0) -> TabularModel:
    rng = np.random.default_rng(seed)
    n = 3000
    X = rng.normal(size=(n, 6))
    X[:, 1] = rng.integers(0, 5, n)  # a categorical code column
    X[:, 2] = np.round(X[:, 2])  # many exact zeros: LightGBM puts thresholds at its zero band
    X[rng.random((n, 6)) < 0.1] = np.nan
    score = (
        np.nan_to_num(X[:, 0]) + (np.nan_to_num(X[:, 1]) == 3) - 0.7 * np.nan_to_num(X[:, 2]) + rng.normal(0, 0.5, n)
    )
    if kind == "binary":
        y, params = (score > 0).astype(int), {"objective": "binary"}
    else:
        y, params = np.digitize(score, [-0.5, 0.8]), {"objective": "multiclass", "num_class": 3}
    data = lgb.Dataset(X, y, categorical_feature=[1], free_raw_data=False)
    booster = lgb.train({**params, "num_leaves": 15, "verbose": -1, "seed": seed}, data, num_boost_round=60)
    classes = None if kind == "binary" else ["low", "mid", "high"]
    return TabularModel(task=kind, kind=kind, features=[f"f{i}" for i in range(6)], categories={}, booster=booster,
                        calibrator=None, classes=classes)  # fmt: skip


def _inputs(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, 6)) * 2
    X[:, 1] = rng.integers(-1, 9, 2000)  # includes unseen and negative category codes
    X[:, 2] = rng.choice([0.0, -0.0, 1.0, -1.0, 1e-36, -1e-35, np.float32(-1e-35), 2.5], 2000)
    X[rng.random((2000, 6)) < 0.15] = np.nan
    return X


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_compiled_predictions_equal_lightgbm(tmp_path, kind):
    core = _model(kind)
    X = _inputs()
    expected = core.raw_from_matrix(X)
    assert compiled.compile_core(core, tmp_path)
    assert core.predictor is not None
    np.testing.assert_allclose(core.raw_from_matrix(X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(core.raw_from_matrix(X[:1]), expected[:1], rtol=0, atol=1e-12)
    # The direct call into the compiled function takes C-ordered float64 only; anything else goes through
    # lleaves' own conversion: the same numbers either way.
    fast = core.predictor
    np.testing.assert_array_equal(fast(np.asfortranarray(X)), fast(X))
    np.testing.assert_array_equal(fast(X[:, :].astype(np.float32)), fast(X.astype(np.float32).astype(np.float64)))
    np.testing.assert_array_equal(fast(X[::2]), fast(np.ascontiguousarray(X[::2])))


def test_the_object_file_is_cached_and_reused(tmp_path):
    core = _model("binary")
    assert compiled.compile_core(core, tmp_path)
    objects = list(tmp_path.glob("*.o"))
    assert len(objects) == 1 and not list(tmp_path.glob(".compile-*"))
    stamp = objects[0].stat().st_mtime_ns
    again = _model("binary")
    assert compiled.compile_core(again, tmp_path)
    assert list(tmp_path.glob("*.o")) == objects and objects[0].stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again.raw_from_matrix(_inputs()), core.raw_from_matrix(_inputs()), rtol=0, atol=0)
    other = _model("binary", seed=5)  # another model: another object file
    assert compiled.compile_core(other, tmp_path)
    assert len(list(tmp_path.glob("*.o"))) == 2


def test_a_disagreeing_compiled_model_is_not_used(tmp_path, monkeypatch):
    core = _model("binary")
    expected = core.raw_from_matrix(_inputs())
    monkeypatch.setattr(compiled, "compile_booster", lambda booster, directory=None: lambda X: np.zeros(len(X)))
    assert not compiled.compile_core(core, tmp_path)
    assert core.predictor is None
    np.testing.assert_array_equal(core.raw_from_matrix(_inputs()), expected)


def test_compilation_can_be_turned_off(tmp_path):
    core = _model("binary")
    assert not compiled.compile_core(core, tmp_path / "compiled", enabled=False)
    assert core.predictor is None and not (tmp_path / "compiled").exists()


def test_the_probe_exercises_thresholds_missing_values_and_categories():
    core = _model("multiclass")
    X = compiled.probe_matrix(core.booster)
    assert X.shape == (compiled.PROBE_ROWS, 6)
    assert np.isnan(X).any(axis=0).all()
    assert {0.0, 1.0, 3.0} <= set(np.unique(X[:, 1][~np.isnan(X[:, 1])]))


def test_the_compiled_predictor_is_not_pickled(tmp_path):
    import pickle

    core = _model("binary")
    compiled.compile_core(core, tmp_path)
    clone = pickle.loads(pickle.dumps(core))
    assert clone.predictor is None
    np.testing.assert_allclose(clone.raw_from_matrix(_inputs()), core.raw_from_matrix(_inputs()), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_both_code_generation_levels_give_bitwise_the_same_outputs(tmp_path, kind):
    """-O0 machine code (large forests, #18) computes exactly what lleaves' -O2 does: same IR, same order of sums."""
    import lleaves

    core = _model(kind)
    text = core.booster.model_to_string()
    (tmp_path / "model.txt").write_text(text)
    X = _inputs()
    out = {}
    for level in (0, 2):
        model = lleaves.Model(model_file=str(tmp_path / "model.txt"))
        compiled.compile_model(model, tmp_path / f"O{level}.o", level)
        out[level] = compiled._entry(model)(X)
        # read back from the object file, as another worker would
        cached = lleaves.Model(model_file=str(tmp_path / "model.txt"))
        compiled.compile_model(cached, tmp_path / f"O{level}.o", level)
        np.testing.assert_array_equal(compiled._entry(cached)(X), out[level])
    np.testing.assert_array_equal(out[0], out[2])
    band = ((np.abs(X) <= compiled.ZERO_BAND) & (X != 0)).any(axis=1)  # scored by the booster (module docstring)
    np.testing.assert_allclose(out[0][~band], core.booster.predict(X[~band]), rtol=0, atol=1e-12)
    assert compiled._cache_key(text, 0) != compiled._cache_key(text, 2)


def test_large_forests_are_generated_at_O0_small_ones_at_O2():
    leaves = {kind: int(sum(t["num_leaves"] for t in _model(kind).booster.dump_model()["tree_info"]))
              for kind in ("binary", "multiclass")}  # fmt: skip
    assert leaves["binary"] <= compiled.O2_MAX_LEAVES < leaves["multiclass"]
    assert compiled.codegen_opt(_model("binary").booster.model_to_string()) == 2
    assert compiled.codegen_opt(_model("multiclass").booster.model_to_string()) == 0
