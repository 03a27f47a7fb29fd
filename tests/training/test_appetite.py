"""The latent-appetite posterior (#12): fitted without truth, it recovers the questionnaire's lean and noise
on data drawn from its own story, beats the questionnaire against the truth, and scores the same row the
same way on every path (subsets, a compiled predictor, after pickling)."""

from __future__ import annotations

import pickle
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from training.appetite import AppetitePosterior
from training.model import TabularModel

CLASSES = ["conservative", "balanced", "aggressive"]
CUTS = np.array([-0.35, 0.8])
LEAN, NOISE = 0.8, 1.5
FEATURES = ["age", "occupation", "stated_risk", "stated_risk_age_days", "views_fixed_income_90d", "login_count_90d"]
CATEGORIES = {"occupation": ["employee", "professional", "retired"], "stated_risk": CLASSES}


def _bank(n: int = 3000, seed: int = 3) -> dict[str, np.ndarray]:
    """Customers drawn from the posterior's own story: a profile-driven appetite, a questionnaire that
    leans conservative, a behaviour score that blocked appetite amplifies, a fixed-income bump, labels
    for the stated-aggressive only."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(25, 75, n)
    occ = rng.integers(0, 3, n)
    appetite = -0.5 * (age - 50) / 15 + 0.4 * (occ == 1) - 0.3 * (occ == 2) + rng.standard_normal(n)
    latent = np.searchsorted(CUTS, appetite)
    years = rng.exponential(3.0, n)
    stated = np.searchsorted(CUTS, appetite - LEAN + np.sqrt(NOISE**2 + 0.1 * years) * rng.standard_normal(n))
    logins = rng.poisson(20 * np.exp(0.5 * rng.standard_normal(n)))
    blocked = np.clip(latent - stated, 0, None)
    score = 0.9 * appetite + 0.5 * blocked + 0.6 * rng.standard_normal(n)
    bump = np.exp(-(((appetite - CUTS.mean()) / 0.6) ** 2))
    views = rng.poisson(np.exp(0.2 + 1.4 * bump + 0.5 * np.log1p(logins) - 1.5 + 0.5 * rng.standard_normal(n)))
    label = np.where(stated == 2, np.searchsorted(CUTS, appetite + 0.7 * rng.standard_normal(n)), -1)
    return {
        "age": age,
        "occupation": occ.astype(float),
        "stated_risk": stated.astype(float),
        "stated_risk_age_days": years * 365.25,
        "views_fixed_income_90d": views.astype(float),
        "login_count_90d": logins.astype(float),
        "score": score,
        "latent": latent,
        "latent_appetite": appetite,
        "label": label,
    }


def _posterior(**overrides) -> AppetitePosterior:
    kwargs = {
        "features": FEATURES,
        "categories": CATEGORIES,
        "classes": CLASSES,
        "stated": "stated_risk",
        "stated_age_days": "stated_risk_age_days",
        "profile": ["age", "occupation"],
        "measures": ["views_fixed_income_90d"],
        "covariates": ["login_count_90d"],
    }
    return AppetitePosterior(**(kwargs | overrides))


def _matrix(bank: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([bank[f] for f in FEATURES])


def _raw(score: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-score))
    return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def fitted():
    bank = _bank()
    X = _matrix(bank)
    post = _posterior().fit(_raw(bank["score"]), X, bank["label"])
    return bank, X, post


def test_recovers_the_questionnaire_story_and_beats_it(fitted):
    bank, X, post = fitted
    # the scale is fixed by a unit residual appetite variance, as drawn here, so the story's numbers come back
    assert post.lean_ == pytest.approx(LEAN, abs=0.35)
    assert post.q_sd_ == pytest.approx(NOISE, abs=0.5)
    np.testing.assert_allclose(post.cuts_, CUTS, atol=0.35)
    # the class probabilities against the truth, on fresh customers (never the label: scoring has none)
    test = _bank(seed=11)
    proba = post.transform(_raw(test["score"]), _matrix(test))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    model_acc = float(np.mean(proba.argmax(axis=1) == test["latent"]))
    stated_acc = float(np.mean(test["stated_risk"] == test["latent"]))
    assert model_acc > stated_acc + 0.10, (model_acc, stated_acc)
    # each stated group's class mix follows the questionnaire's model, not the labelled (stated-aggressive) mix
    cons = test["stated_risk"] == 0
    truth_share = np.bincount(test["latent"][cons], minlength=3) / cons.sum()
    np.testing.assert_allclose(proba[cons].mean(axis=0), truth_share, atol=0.10)  # measured: max gap 0.081
    labelled = test["stated_risk"] == 2
    labelled_share = np.bincount(test["latent"][labelled], minlength=3) / labelled.sum()
    assert labelled_share[2] - truth_share[2] > 0.3  # far from what a model of the labelled rows carries over


def test_a_row_scores_the_same_alone_in_a_batch_and_after_pickling(fitted):
    bank, X, post = fitted
    raw = _raw(bank["score"])
    full = post.transform(raw, X)
    rows = np.array([5, 17, 1234, 2999])
    np.testing.assert_allclose(post.transform(raw[rows], X[rows]), full[rows], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(post.transform(raw[:1], X[:1]), full[:1], rtol=1e-12, atol=1e-15)
    back = pickle.loads(pickle.dumps(post))
    np.testing.assert_array_equal(back.transform(raw, X), full)
    # one likelihood reads the cached tables: rebuilt from the parameters (no cache after unpickling) they give
    # the same numbers, and an M-step drops them so the next E-step reads the new parameters
    inp = post.inputs(raw, X)
    assert post._plan() is post._plan()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(post))._loglik(inp), post._loglik(inp))
    moved = pickle.loads(pickle.dumps(post))
    moved.lean_ += 0.5  # away from the optimum, so the M-step moves every parameter
    before = moved._loglik(inp, bank["label"])  # builds the tables
    moved._m_step(inp, bank["label"], moved._weights(before))
    assert moved.lean_ != post.lean_ + 0.5
    np.testing.assert_array_equal(moved._loglik(inp), pickle.loads(pickle.dumps(moved))._loglik(inp))
    # a tempered behaviour (what review rows choose) scores a row alone as in a batch, and less confidently
    assert post.temperature_ == 1.0  # no review rows: untempered
    tempered = pickle.loads(pickle.dumps(post))
    tempered.temperature_ = 2.5
    soft = tempered.transform(raw, X)
    np.testing.assert_allclose(tempered.transform(raw[rows], X[rows]), soft[rows], rtol=1e-12, atol=1e-15)
    assert soft.max(axis=1).mean() < full.max(axis=1).mean()
    # an unknown stated risk or a missing questionnaire age is scored from the rest, not an error
    X2 = X[:3].copy()
    X2[0, FEATURES.index("stated_risk")] = np.nan
    X2[1, FEATURES.index("stated_risk_age_days")] = np.nan
    assert np.isfinite(post.transform(raw[:3], X2)).all()
    # absurd but finite values (what the serving fuzz test sends) still give probabilities, not NaN
    X3 = X[:3].copy()
    X3[:, FEATURES.index("age")] = [8.3e307, -1.5e308, 1e200]
    X3[:, FEATURES.index("login_count_90d")] = 1.7e308
    p3 = post.transform(raw[:3], X3)
    assert np.isfinite(p3).all() and np.allclose(p3.sum(axis=1), 1.0)


def test_the_model_artefact_carries_the_posterior_on_every_prediction_path(fitted):
    bank, X, post = fitted
    y = (bank["latent"] == 2).astype(float)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y, feature_name=FEATURES),
        num_boost_round=20,
    )
    core = TabularModel(
        task="risk",
        kind="ordinal",
        features=FEATURES,
        categories=CATEGORIES,
        booster=booster,
        calibrator=post,
        classes=CLASSES,
    )
    frame = pd.DataFrame({f: bank[f] for f in FEATURES})
    frame["occupation"] = np.asarray(CATEGORIES["occupation"], dtype=object)[bank["occupation"].astype(int)]
    frame["stated_risk"] = np.asarray(CLASSES, dtype=object)[bank["stated_risk"].astype(int)]
    want = core.predict_proba(frame)
    np.testing.assert_allclose(want, post.transform(core.raw_from_matrix(X), X), rtol=1e-12)
    assert list(core.predict_frame(frame.iloc[:2]).columns) == ["prediction", *[f"proba_{c}" for c in CLASSES]]
    core.use_predictor(lambda M: booster.predict(M, num_threads=1))  # what serving.compiled attaches
    try:
        np.testing.assert_allclose(core.predict_proba(frame), want, rtol=1e-9, atol=1e-12)
    finally:
        core.use_predictor(None)
    back = pickle.loads(pickle.dumps(core))
    np.testing.assert_array_equal(back.predict_proba(frame), want)
    one = {f: frame[f].to_numpy()[:1] for f in FEATURES}  # a single customer as a mapping (the HTTP path)
    np.testing.assert_allclose(back.predict_proba(one), want[:1], rtol=1e-9, atol=1e-12)


def test_a_posterior_column_that_is_not_a_feature_is_an_input_error():
    with pytest.raises(InputError, match="views_deposits_90d"):
        AppetitePosterior(
            features=FEATURES,
            categories=CATEGORIES,
            classes=CLASSES,
            stated="stated_risk",
            stated_age_days="stated_risk_age_days",
            profile=["age"],
            measures=["views_deposits_90d"],
            covariates=[],
        )


def test_an_anchor_without_a_review_is_no_anchor(fitted):
    """A bank with no suitability review yet (the shipped spec anchors on them): the anchor column is all -1.
    The fit is the one without an anchor, untempered, with no warning (it took the mean of no rows, and the
    temperature was the first of eight NaN scores)."""
    bank, X, post = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none_reviewed = _posterior().fit(_raw(bank["score"]), X, bank["label"], anchor=np.full(len(X), -1))
    assert none_reviewed.temperature_ == 1.0 and not hasattr(none_reviewed, "anchor_sd_")
    raw = _raw(bank["score"])
    np.testing.assert_array_equal(none_reviewed.transform(raw, X), post.transform(raw, X))


def test_correlated_residuals_and_a_review_anchor_are_fitted_from_their_own_story():
    """Two measures whose noise shares a cause (the score's view share falls as deposit views rise: corr -0.5)
    and an accurate advisor review of 10% of the customers (the same cuts, no lean): the fit recovers the
    correlation, the review's small error and the questionnaire's lean, and a row scores the same alone, in a
    batch and with a measure missing (its marginal)."""
    rng = np.random.default_rng(5)
    bank = _bank(n=2500, seed=5)
    a = bank["latent_appetite"]
    noise = rng.multivariate_normal([0, 0], [[0.36, -0.12], [-0.12, 0.16]], len(a))  # sd 0.6 / 0.4, corr -0.5
    score = 0.9 * a + noise[:, 0]
    deposits = 2.0 - 0.4 * a + noise[:, 1]  # log1p of the count column, kept away from the clip at zero
    features = [*FEATURES, "views_deposits_90d"]
    X = np.column_stack([_matrix(bank), np.expm1(deposits)])
    review = np.where(rng.random(len(a)) < 0.10, np.searchsorted(CUTS, a + 0.2 * rng.standard_normal(len(a))), -1)
    post = _posterior(
        features=features, measures=["views_fixed_income_90d", "views_deposits_90d"], correlated_residuals=True
    ).fit(_raw(score), X, bank["label"], iterations=40, anchor=review)
    cov = post.emission_cov_
    assert cov is not None
    corr = cov[0, 2] / np.sqrt(cov[0, 0] * cov[2, 2])  # booster score and deposits
    assert corr == pytest.approx(-0.5, abs=0.12), corr
    assert abs(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])) < 0.12  # fixed-income views: independent noise
    assert post.anchor_sd_ < 0.5  # the review is accurate (drawn with sd 0.2)
    assert post.temperature_ <= 1.5  # the story's own evidence is not overstated, so the reviews keep it near 1
    assert post.lean_ == pytest.approx(LEAN, abs=0.35)
    raw = _raw(score)
    full = post.transform(raw, X)
    rows = np.array([3, 400, 2499])
    np.testing.assert_allclose(post.transform(raw[rows], X[rows]), full[rows], rtol=1e-12, atol=1e-15)
    inp = post.inputs(raw, X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(post))._loglik(inp), post._loglik(inp))
    X_missing = X[:2].copy()
    X_missing[0, features.index("views_deposits_90d")] = np.nan
    p = post.transform(raw[:2], X_missing)
    assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], full[1], rtol=1e-12)
    assert not np.allclose(p[0], full[0])  # the missing measure's evidence is gone, not imputed as zero


def _inputs_column_by_column(post: AppetitePosterior, raw: np.ndarray, X: np.ndarray) -> dict[str, np.ndarray]:
    """The posterior's inputs as they were computed before the gathers (one numpy call per column): the
    reference the vectorised `inputs` must equal bit for bit."""
    cols = []
    for j in post.profile_index:
        v = X[:, j]
        if j in post.profile_levels:
            cols += [(v == level).astype(float) for level in range(1, post.profile_levels[j])]
        else:
            cols.append(np.nan_to_num(v, nan=0.0))
    raw_prof = np.column_stack(cols) if cols else np.zeros((len(X), 0))
    from training.appetite import _EPS, Z_MAX

    prof = np.minimum(np.maximum((raw_prof - post.profile_mean_) / post.profile_sd_, -Z_MAX), Z_MAX)
    score = np.clip(np.atleast_2d(raw)[:, 1], _EPS, 1 - _EPS)
    meas = [np.log(score / (1 - score))] + [np.log1p(np.clip(X[:, j], 0, None)) for j in post.measure_index]
    cov = [np.log1p(np.nan_to_num(np.clip(X[:, j], 0, None), nan=0.0)) for j in post.covariate_index]
    covariates = np.minimum(np.maximum((np.column_stack(cov) - post.cov_mean_) / post.cov_sd_, -Z_MAX), Z_MAX)
    return {"raw_profile": raw_prof, "profile": np.column_stack([np.ones(len(X)), prof]),
            "measures": np.column_stack(meas), "covariates": covariates}  # fmt: skip


def test_the_gathered_inputs_equal_the_column_by_column_ones_bit_for_bit(fitted):
    bank, X, post = fitted
    raw = _raw(bank["score"])
    X = X.copy()
    rng = np.random.default_rng(5)
    # the cases a request can bring: missing and absurd numbers, negative counts, unknown category codes
    for col, values in [("age", [np.nan, 8.3e307, -1.5e308, np.inf]), ("occupation", [np.nan, -1.0, 7.0, 2.0]),
                        ("login_count_90d", [np.nan, -3.0, 1.7e308, 0.0]),
                        ("views_fixed_income_90d", [np.nan, -1.0, np.inf, 5.0])]:  # fmt: skip
        rows = rng.choice(len(X), size=40, replace=False)
        X[rows, FEATURES.index(col)] = rng.choice(values, size=40)
    for what in (post, pickle.loads(pickle.dumps(post))):  # a posterior pickled before the plan existed too
        for sl in (slice(None), slice(0, 1), slice(7, 9)):
            want = _inputs_column_by_column(what, raw[sl], X[sl])
            np.testing.assert_array_equal(what._profile_raw(X[sl]), want["raw_profile"])
            assert what._profile_raw(X[sl]).dtype == want["raw_profile"].dtype
            got = what.inputs(raw[sl], X[sl])
            for name in ("profile", "measures", "covariates"):
                np.testing.assert_array_equal(getattr(got, name), want[name])
    assert "_input_plan_cache" not in pickle.loads(pickle.dumps(post)).__dict__
    # a profile of numbers only keeps the matrix's own dtype, as stacking its columns did
    numbers = _posterior(profile=["age"])
    numbers.profile_mean_, numbers.profile_sd_ = np.zeros(1), np.ones(1)
    X32 = X.astype(np.float32)
    assert numbers._profile_raw(X32).dtype == np.float32
    np.testing.assert_array_equal(numbers._profile_raw(X32)[:, 0], np.nan_to_num(X32[:, 0], nan=0.0))


def _prior_and_questionnaire_as_before(post: AppetitePosterior, inp) -> np.ndarray:
    """The (n, G) prior and questionnaire terms of the log-likelihood, as first written."""
    from training.appetite import GRID

    plan = post._plan()
    mu = inp.profile @ post.theta_
    ll = -0.5 * (GRID[None, :] - mu[:, None]) ** 2
    rows = inp.stated >= 0
    if rows.any():
        ll[rows] += plan.stated[inp.stale_bin[rows], :, inp.stated[rows]]
    return ll


def _transform_as_before(post: AppetitePosterior, raw: np.ndarray, X: np.ndarray) -> np.ndarray:
    """`transform` as written before the single-customer helpers (column stacks, `np.clip`, `nan_to_num`,
    row selections on every measure): the reference the current one must equal bit for bit."""
    from training.appetite import _EPS, GRID, STALE_BINS

    inp = post.inputs(raw, X)  # checked against its own reference above
    years = np.zeros(len(X)) if post.age_index is None else np.nan_to_num(X[:, post.age_index], nan=0.0) / 365.25
    np.testing.assert_array_equal(inp.stale_bin, np.searchsorted(STALE_BINS, np.clip(years, 0, None)))
    plan = post._plan()
    ll = _prior_and_questionnaire_as_before(post, inp)
    dummies = np.column_stack([(inp.stated == j).astype(float) for j in range(post.n_classes_ - 1)])
    U = np.column_stack([np.ones(len(inp.stated)), inp.covariates, dummies, inp.profile[:, 1:]])
    np.testing.assert_array_equal(post._row_design(inp), U)
    temperature = getattr(post, "temperature_", 1.0)
    if plan.whiten is not None:
        ll = ll + post._correlated_loglik(inp, U, plan) / temperature
    else:
        behaviour = ll if temperature == 1.0 else np.zeros_like(ll)
        for k, coef in enumerate(plan.coefs):
            y = inp.measures[:, k]
            seen = np.isfinite(y)
            by_power = U[seen] @ coef.T
            mean = by_power[:, :1] + by_power[:, 1:2] * GRID[None, :] + by_power[:, 2:3] * GRID[None, :] ** 2
            sd = post.emission_sd_[k]
            behaviour[seen] += -0.5 * ((y[seen, None] - mean) / sd) ** 2 - np.log(sd)
        ll = ll if temperature == 1.0 else ll + behaviour / temperature
    w = np.exp(ll - ll.max(axis=1, keepdims=True))
    w = w / w.sum(axis=1, keepdims=True)
    p = np.clip(w @ plan.class_mass, _EPS, None)
    return p / p.sum(axis=1, keepdims=True)


def test_scoring_equals_the_column_stacking_code_bit_for_bit(fitted):
    """One customer, a few and a batch, with missing / absurd measures: `transform` gives exactly the bits
    of the code before the single-customer helpers (#18), at temperature 1 and above."""
    bank, X, post = fitted
    post = pickle.loads(pickle.dumps(post))
    raw = _raw(bank["score"])
    X = X.copy()
    rng = np.random.default_rng(11)
    for col, values in [("age", [np.nan, -3.0, np.inf]), ("login_count_90d", [np.nan, -3.0, 1.7e308]),
                        ("views_fixed_income_90d", [np.nan, np.inf, 5.0])]:  # fmt: skip
        rows = rng.choice(len(X), size=60, replace=False)
        X[rows, FEATURES.index(col)] = rng.choice(values, size=60)
    for temperature in (1.0, 2.5):
        post.temperature_ = temperature
        for sl in (slice(0, 1), slice(5, 6), slice(7, 12), slice(None)):
            np.testing.assert_array_equal(post.transform(raw[sl], X[sl]), _transform_as_before(post, raw[sl], X[sl]))


def _loglik_as_before(post: AppetitePosterior, inp, label=None, anchor=None, temperature: float = 1.0) -> np.ndarray:
    """`_loglik` as written before it worked in place (#18): one expression per term, each a new array."""
    from training.appetite import _GRID_SQUARED, GRID

    plan = post._plan()
    ll = _prior_and_questionnaire_as_before(post, inp)
    for given, sd in ((label, getattr(post, "label_sd_", None)), (anchor, getattr(post, "anchor_sd_", None))):
        if given is not None:
            table = post._ordinal(GRID, post.cuts_, sd)
            rows = given >= 0
            ll[rows] += np.log(table[:, given[rows]]).T
    U = post._row_design(inp)
    behaviour = ll if temperature == 1.0 else np.zeros_like(ll)
    for k, coef in enumerate(plan.coefs):
        y = inp.measures[:, k]
        seen = np.isfinite(y)
        every = seen.all()
        by_power = (U if every else U[seen]) @ coef.T
        mean = by_power[:, :1] + by_power[:, 1:2] * GRID[None, :] + by_power[:, 2:3] * _GRID_SQUARED
        term = -0.5 * (((y[:, None] if every else y[seen, None]) - mean) / post.emission_sd_[k]) ** 2 - np.log(
            post.emission_sd_[k]
        )
        if every:
            behaviour += term
        else:
            behaviour[seen] += term
    return ll if temperature == 1.0 else ll + behaviour / temperature


def test_the_in_place_likelihood_equals_the_expressions_bit_for_bit(fitted):
    """The fitting likelihood too (labels, review anchors, tempered behaviour, unknown questionnaires, missing
    measures; all rows, one row, a few): `_loglik` in place gives exactly the bits of the expressions it replaced."""
    bank, X, post = fitted
    post = pickle.loads(pickle.dumps(post))
    post.anchor_sd_ = 0.5  # what `fit(anchor=)` starts from
    raw = _raw(bank["score"])
    X = X.copy()
    rng = np.random.default_rng(12)
    for col, values in [("stated_risk", [np.nan, 7.0]), ("views_fixed_income_90d", [np.nan, np.inf, 5.0])]:
        rows = rng.choice(len(X), size=60, replace=False)
        X[rows, FEATURES.index(col)] = rng.choice(values, size=60)
    inp = post.inputs(raw, X)
    assert (inp.stated < 0).any() and (inp.stated >= 0).any() and not np.isfinite(inp.measures).all()
    label = np.where(rng.random(len(X)) < 0.5, np.asarray(bank["label"]), -1)
    anchor = np.where(rng.random(len(X)) < 0.1, rng.integers(0, 3, len(X)), -1)
    for sl in (slice(None), slice(0, 1), slice(3, 40)):
        part = type(inp)(**{f: getattr(inp, f)[sl] for f in inp.__dataclass_fields__})
        for args in ((None, None), (label[sl], None), (label[sl], anchor[sl])):
            for temperature in (1.0, 2.5):
                got = post._loglik(part, *args, temperature=temperature)
                np.testing.assert_array_equal(got, _loglik_as_before(post, part, *args, temperature=temperature))


def test_the_behaviour_of_a_few_rows_in_one_block_equals_the_loop_bit_for_bit(fitted, monkeypatch):
    """One customer and a few (every measure observed): the one-block behaviour
    terms (`_behaviour_of_few`, the single-customer path, #18) give exactly the bits of the expressions, and
    `transform` exactly those of the code before the single-customer helpers."""
    bank, X, post = fitted
    raw = _raw(bank["score"])
    inp = post.inputs(raw, X)
    seen = np.flatnonzero(np.isfinite(inp.measures).all(axis=1))
    calls = []
    real = AppetitePosterior._behaviour_of_few
    monkeypatch.setattr(AppetitePosterior, "_behaviour_of_few", lambda *a: calls.append(1) or real(*a))
    blocks = [seen[i : i + 1] for i in range(0, 150)] + [seen[:2], seen[5:21], seen[40:72]]
    for rows in blocks:
        part = type(inp)(**{f: getattr(inp, f)[rows] for f in inp.__dataclass_fields__})
        np.testing.assert_array_equal(post._loglik(part), _loglik_as_before(post, part))
        np.testing.assert_array_equal(
            post.transform(raw[rows], X[rows]), _transform_as_before(post, raw[rows], X[rows])
        )
    assert len(calls) == 2 * len(blocks)  # the block path ran every time (none of the rows lacks a measure)


def test_one_rows_questionnaire_equals_the_batch_rule(fitted):
    """One customer's stated class and staleness bin (Python floats, #18) are the batch's, for every kind of
    code and questionnaire age a request can bring: known classes, unknown codes, NaN, negative, fractional,
    infinite and absurd ages."""
    _bank, X, post = fitted
    n = 14
    odd = np.repeat(X[:1], n, axis=0)
    codes = [0.0, 1.0, 2.0, 2.5, -0.5, -0.0, 99.0, np.nan, np.inf, -np.inf, 1.0, 0.0, 2.0, 1.0]
    days = [0.0, 400.0, 1e4, np.nan, np.inf, -np.inf, -5.0, 8e307, 1.7e308, 365.25, 730.5, 2556.75, 4383.0, 1.0]
    odd[:, post.stated_index] = codes
    assert post.age_index is not None
    odd[:, post.age_index] = days
    stated, stale = post._questionnaire(odd)
    assert len(set(stale.tolist())) > 3 and (stated < 0).any() and (stated >= 0).any()
    for i in range(n):
        one_stated, one_stale = post._questionnaire_of_one(odd[i : i + 1])
        assert one_stated.dtype == stated.dtype and one_stale.dtype == stale.dtype
        assert (one_stated.tolist(), one_stale.tolist()) == ([stated[i]], [stale[i]]), i
        got = post.inputs(_raw(np.full(1, 0.3)), odd[i : i + 1])
        assert (got.stated.tolist(), got.stale_bin.tolist()) == ([stated[i]], [stale[i]])
