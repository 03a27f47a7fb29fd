"""The revealed-risk posterior: a measurement model of one latent risk appetite (issue #12).

Why (docs/decisions/risk-model.md): the customers free to act on their appetite (the labelled rows) are a
biased sample of the book (mostly aggressive), so a model of their label carries their class mix to every
customer. This model instead treats every customer's appetite `a` as latent and fits, on EVERY customer
at the calibration dates (labelled or not, no truth), how each observation measures it:

- prior: `a ~ N(profile' theta, 1)` (age, income, occupation, business owner: what the questionnaire asks);
- the questionnaire: `stated = cut(a - lean + e, kappa)`, `e ~ N(0, s0^2 + s1^2 * years since it was
  taken)`: the bank's classes are cuts of the same appetite, answers lean conservative and go stale;
- the revealed label (free customers only, fitting only): `label = cut(a + u, kappa)`, `u ~ N(0, sL^2)`;
- behaviour: each measurement `m_k` (the booster's logit, log views of fixed income / deposit pages, ...)
  `~ N(b_k0 + b_k1 a + b_k2 a^2 + c_k' z, t_k^2)` with covariates `z` (engagement), the quadratic term
  letting a balanced appetite peak in fixed-income interest.

Two optional parts (#12 calibration, `docs/decisions/risk-model.md`): `correlated_residuals` gives the behaviour
measurements one residual covariance (they share non-appetite causes: the booster's view shares fall as deposit
and fixed-income views rise), fitted by ECM; `fit(anchor=)` takes an accurate class assessment of a few customers
(an advisor's suitability review: `review = cut(a + r, kappa)`, the same cuts, no lean) as anchor rows, which pin
where the cuts sit in the book, and picks the behaviour likelihood's temperature that best predicts those reviews.
The simulated bank now carries such reviews (`suitability_reviews`, the panel's
`reviewed_risk` known at T, passed by `risk_posterior.anchor_column`); the shipped spec uses neither (see
benchmarks/RESULTS.md, "#12 suitability reviews": the anchor lowers macro-F1 on seed 7).

Fitted by EM on a grid of `a`; a customer's class probabilities are the posterior mass of `a` between the
cuts given the profile, the questionnaire and the behaviour (never the label: scoring has none). Each stated
group's class mix follows from the questionnaire's measurement model rather than from the labelled rows.
Everything needed to score is carried here (pickled inside `training.model.TabularModel`), so training,
batch scoring and serving compute the same posterior from the same feature matrix.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr

log = logging.getLogger(__name__)

_EPS = 1e-6
GRID = np.linspace(-6.0, 6.0, 121)
MAX_FIT_ROWS = 12_000
TEMPERATURES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)  # candidates for the behaviour's temperature
STALE_BINS = np.array([1.0, 2.0, 4.0, 7.0, 12.0])  # years since the questionnaire: bin edges
# Standardised profile and covariate values are bounded so a row's log-likelihood cannot overflow (an age of
# 8e307 made every grid value -inf and the probabilities NaN: found by the serving fuzz test). No real row
# comes near it, so every real row scores exactly as before.
Z_MAX = 1e6
_FEW_ROWS = 32  # up to this many rows, `_loglik` adds the behaviour of all measures in one block


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.minimum(np.maximum(p, _EPS), 1 - _EPS)  # = np.clip (NaN stays NaN), without its Python layers
    return np.log(p / (1 - p))


# Scoring one customer runs ~60 numpy calls on arrays of one row; the helpers below give the same values
# (bit for bit, tests/training/test_appetite.py) with less Python around each call (#18):
# `np.clip(x, 0, None)` is `np.maximum(x, 0)` (numpy's own `_clip` calls exactly that).
_GRID_SQUARED = GRID[None, :] ** 2  # computed once, as `GRID[None, :] ** 2` was on every call


def _nan_to_zero(x: np.ndarray) -> np.ndarray:
    """`np.nan_to_num(x, nan=0.0)`, which costs ~10x a finiteness check: most rows have nothing to replace."""
    if np.isfinite(x).all():
        return x
    return np.nan_to_num(x, nan=0.0)


def _columns(*blocks: np.ndarray) -> np.ndarray:
    """`np.column_stack(blocks)` for 1-D and 2-D float blocks of the same length, filled in place."""
    n = len(blocks[0])
    parts = [b if b.ndim == 2 else b[:, None] for b in blocks]
    out = np.empty((n, sum(p.shape[1] for p in parts)), dtype=np.result_type(*parts))
    at = 0
    for p in parts:
        out[:, at : at + p.shape[1]] = p
        at += p.shape[1]
    return out


def _ordinal_table(a: np.ndarray, cuts: np.ndarray, sd: np.ndarray | float) -> np.ndarray:
    """P(class j | a) along a new last axis: `a` and `sd` broadcast against each other (last axis 1)."""
    c = ndtr((cuts - a) / sd)  # (..., k - 1)
    ones = np.ones(c.shape[:-1] + (1,))
    return np.clip(np.concatenate([c, ones], axis=-1) - np.concatenate([ones * 0, c], axis=-1), 1e-12, None)


def _patterns(seen: np.ndarray) -> list[tuple[bool, ...]]:
    """The distinct patterns of observed measures among the rows of `seen` (n, k)."""
    if seen.all():  # the common case, and one customer at a time: no sort
        return [(True,) * seen.shape[1]]
    return [tuple(bool(v) for v in row) for row in np.unique(seen, axis=0)]


@dataclass
class PosteriorInputs:
    """Per-row inputs in model units: profile design, measurements, covariates, stated class, years."""

    profile: np.ndarray  # (n, p) with an intercept column
    measures: np.ndarray  # (n, k); NaN = not observed
    covariates: np.ndarray  # (n, q)
    stated: np.ndarray  # (n,) class index, -1 unknown
    stale_bin: np.ndarray  # (n,) index into the staleness bins


@dataclass(frozen=True)
class _ScoringPlan:
    """Fitted tables scoring reads (see `AppetitePosterior._plan`)."""

    stated: np.ndarray  # (staleness bin, G, class) log P(stated | a)
    coefs: list[np.ndarray]  # per measure, (3, row terms): coefficient of a^power on each row term
    class_mass: np.ndarray  # (G, class)
    emission_sd: np.ndarray  # (measure,) `emission_sd_` as float64
    log_emission_sd: np.ndarray  # (measure,) `np.log(emission_sd_[k])` of each, as the per-measure loop takes it
    # correlated residuals: per pattern of observed measures (a tuple of bools), the whitening matrix W of the
    # observed block (W' W = its inverse covariance) and the log-determinant of that block; None = independent
    whiten: dict[tuple[bool, ...], tuple[np.ndarray, float]] | None = None


@dataclass(frozen=True)
class _InputPlan:
    """Where `AppetitePosterior.inputs` reads each block of the model matrix (see `_input_plan`)."""

    width: int  # profile columns before the intercept
    numeric: np.ndarray  # profile columns taken as numbers ...
    numeric_src: np.ndarray  # ... from these model-matrix columns
    levels: np.ndarray  # profile columns that are one-hot levels ...
    level_src: np.ndarray  # ... of these model-matrix columns ...
    level_code: np.ndarray  # ... equal to these category codes
    measures: np.ndarray  # model-matrix columns of the measures (after the booster's logit)
    covariates: np.ndarray  # model-matrix columns of the covariates


class AppetitePosterior:
    """Calibrated three-class risk probabilities from a latent-appetite measurement model (see module doc).

    `transform(raw, X)`: `raw` is the booster's (n, 2) output (its top-class score is one measurement),
    `X` the model matrix (feature order of the `TabularModel`). Column positions and category maps are
    fixed at `fit` time.
    """

    method = "appetite_posterior"
    needs_matrix = True

    def __init__(
        self,
        *,
        features: list[str],
        categories: dict[str, list[str]],
        classes: list[str],
        stated: str,
        stated_age_days: str | None,
        profile: list[str],
        measures: list[str],
        covariates: list[str],
        booster_stated: bool = True,
        booster_profile: bool = True,
        correlated_residuals: bool = False,
    ):
        self.booster_stated, self.booster_profile = booster_stated, booster_profile
        self.correlated_residuals = correlated_residuals
        missing = [
            c
            for c in [stated, *([stated_age_days] if stated_age_days else []), *profile, *measures, *covariates]
            if c not in features
        ]
        if missing:
            from core.errors import InputError

            raise InputError(f"risk posterior: columns {missing} are not model features (add them to `features`)")
        self.classes = list(classes)
        self.n_classes_ = len(classes)
        pos = {f: i for i, f in enumerate(features)}
        self.stated_index = pos[stated]
        # category code of the stated column -> class index (-1 for a category that is not a class)
        self.stated_codes = np.array([self.classes.index(c) if c in self.classes else -1 for c in categories[stated]])
        self.age_index = pos[stated_age_days] if stated_age_days else None
        self.profile_names = list(profile)
        self.profile_index = [pos[c] for c in profile]
        self.profile_levels = {pos[c]: len(categories[c]) for c in profile if c in categories}
        self.measure_names = ["booster_logit", *measures]
        self.measure_index = [pos[c] for c in measures]
        self.covariate_index = [pos[c] for c in covariates]

    # -- inputs ------------------------------------------------------------------------------------
    def _input_plan(self) -> _InputPlan:
        """The column positions `_profile_raw` and `inputs` gather, as index arrays (built once, from the
        attributes a pickled posterior already has): one fancy-indexing gather per block instead of a numpy
        call per column, which is most of the posterior's time for a single customer (#18)."""
        plan = self.__dict__.get("_input_plan_cache")
        if plan is None:
            numeric, numeric_src, levels, level_src, level_code = [], [], [], [], []
            width = 0
            for j in self.profile_index:
                if j in self.profile_levels:  # one-hot of the category codes (first level and unknown = 0)
                    for level in range(1, self.profile_levels[j]):
                        levels.append(width)
                        level_src.append(j)
                        level_code.append(level)
                        width += 1
                else:
                    numeric.append(width)
                    numeric_src.append(j)
                    width += 1
            ints = functools.partial(np.asarray, dtype=np.intp)
            plan = _InputPlan(
                width=width,
                numeric=ints(numeric),
                numeric_src=ints(numeric_src),
                levels=ints(levels),
                level_src=ints(level_src),
                level_code=np.asarray(level_code, dtype=np.float64),
                measures=ints(self.measure_index),
                covariates=ints(self.covariate_index),
            )
            self.__dict__["_input_plan_cache"] = plan
        return plan

    def _profile_raw(self, X: np.ndarray) -> np.ndarray:
        plan = self._input_plan()
        if plan.width == 0:
            return np.zeros((len(X), 0))
        # the dtype `np.column_stack` of the per-column arrays had: the one-hot columns are float64
        dtype = np.result_type(X.dtype, np.float64) if len(plan.levels) else X.dtype
        out = np.empty((len(X), plan.width), dtype=dtype)
        if len(plan.numeric):
            out[:, plan.numeric] = _nan_to_zero(X[:, plan.numeric_src])
        if len(plan.levels):
            out[:, plan.levels] = X[:, plan.level_src] == plan.level_code
        return out

    def inputs(self, raw: np.ndarray, X: np.ndarray) -> PosteriorInputs:
        plan = self._input_plan()
        prof = np.minimum(np.maximum((self._profile_raw(X) - self.profile_mean_) / self.profile_sd_, -Z_MAX), Z_MAX)
        score = _logit(np.atleast_2d(raw)[:, 1])
        meas = _columns(score, np.log1p(np.maximum(X[:, plan.measures], 0)))
        covariates = (
            np.minimum(
                np.maximum(
                    (np.log1p(_nan_to_zero(np.maximum(X[:, plan.covariates], 0))) - self.cov_mean_) / self.cov_sd_,
                    -Z_MAX,
                ),
                Z_MAX,
            )
            if len(plan.covariates)
            else np.zeros((len(X), 0))
        )
        stated, stale_bin = self._questionnaire_of_one(X) if len(X) == 1 else self._questionnaire(X)
        return PosteriorInputs(
            profile=_columns(np.ones(len(X)), prof),
            measures=meas,
            covariates=covariates,
            stated=stated,
            stale_bin=stale_bin,
        )

    def _questionnaire(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) stated class index (-1 unknown) and (n,) staleness bin of each row of `X`."""
        code = X[:, self.stated_index]
        ok = np.isfinite(code) & (code >= 0) & (code < len(self.stated_codes))
        stated = np.full(len(X), -1)
        stated[ok] = self.stated_codes[code[ok].astype(int)]
        years = np.zeros(len(X)) if self.age_index is None else _nan_to_zero(X[:, self.age_index]) / 365.25
        return stated, STALE_BINS.searchsorted(np.maximum(years, 0))

    def _questionnaire_of_one(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_questionnaire` of one row on Python floats (a single customer's request, #18): the same rule
        (`nan_to_num`: NaN -> 0, +-inf -> the largest floats), the same float64 division; same values, dtypes."""
        code = float(X[0, self.stated_index])
        known = math.isfinite(code) and 0 <= code < len(self.stated_codes)
        stated = int(self.stated_codes[int(code)]) if known else -1
        days = 0.0 if self.age_index is None else float(X[0, self.age_index])
        if not math.isfinite(days):
            days = 0.0 if days != days else math.copysign(sys.float_info.max, days)
        years = days / 365.25
        return np.array([stated]), STALE_BINS.searchsorted(np.array([max(years, 0.0)]))

    # -- the model's pieces ------------------------------------------------------------------------
    @staticmethod
    def _ordinal(a: np.ndarray, cuts: np.ndarray, sd: float) -> np.ndarray:
        """(len(a), k) P(class j | a) for a probit cut at `cuts` with noise `sd`."""
        c = ndtr((cuts[None, :] - a[:, None]) / sd)
        up = np.column_stack([c, np.ones(len(c))])
        lo = np.column_stack([np.zeros(len(c)), c])
        return np.clip(up - lo, 1e-12, None)

    def _stated_sd(self, bins: np.ndarray) -> np.ndarray:
        years = np.concatenate([[0.5], (STALE_BINS[:-1] + STALE_BINS[1:]) / 2, [STALE_BINS[-1] + 3]])[bins]
        return np.sqrt(self.q_sd_**2 + self.q_stale_**2 * years)

    def _loglik(
        self,
        inp: PosteriorInputs,
        label: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
        temperature: float = 1.0,
    ) -> np.ndarray:
        """(n, G) log joint density of each row's observations and each grid value of the appetite, from the
        cached `_plan()` tables (fitting drops them after each M-step). `label` only when fitting: scoring
        has none."""
        plan = self._plan()
        mu = inp.profile @ self.theta_
        # In place, one (n, G) pass per operation and no temporaries: the same operations in the same order as
        # the expressions in the comments (so the same bits; tests/training/test_appetite.py), at ~2.5x less time
        # for a batch (#18).
        ll = np.subtract(GRID[None, :], mu[:, None])
        np.square(ll, out=ll)
        ll *= -0.5  # -0.5 * (GRID[None, :] - mu[:, None]) ** 2
        rows = inp.stated >= 0  # the questionnaire: log P(stated | a), by staleness bin
        if rows.all():
            ll += plan.stated[inp.stale_bin, :, inp.stated]
        elif rows.any():
            ll[rows] += plan.stated[inp.stale_bin[rows], :, inp.stated[rows]]
        if label is not None:
            table = self._ordinal(GRID, self.cuts_, self.label_sd_)
            rows = label >= 0
            ll[rows] += np.log(table[:, label[rows]]).T
        if anchor is not None:  # an accurate assessment of the class: the same cuts, no lean
            table = self._ordinal(GRID, self.cuts_, self.anchor_sd_)
            rows = anchor >= 0
            ll[rows] += np.log(table[:, anchor[rows]]).T
        U = self._row_design(inp)
        if plan.whiten is not None:
            return ll + self._correlated_loglik(inp, U, plan) / temperature
        if temperature == 1.0 and len(ll) <= _FEW_ROWS and np.isfinite(inp.measures).all():
            return self._behaviour_of_few(ll, inp, U, plan)
        # the behaviour, tempered by `temperature` (chosen on review rows, see `_choose_temperature`)
        behaviour = ll if temperature == 1.0 else np.zeros_like(ll)  # in place at 1: the same bits as ever
        term, squared = np.empty_like(ll), np.empty_like(ll)
        for k, coef in enumerate(plan.coefs):
            y = inp.measures[:, k]
            seen = np.isfinite(y)
            every = seen.all()  # then the same arithmetic without the row selections (one customer: each costs)
            by_power = (U if every else U[seen]) @ coef.T
            t, sq = term[: len(by_power)], squared[: len(by_power)]
            np.multiply(by_power[:, 1:2], GRID[None, :], out=t)
            t += by_power[:, :1]
            np.multiply(by_power[:, 2:3], _GRID_SQUARED, out=sq)
            t += sq  # mean = by_power[:, :1] + by_power[:, 1:2] * GRID[None, :] + by_power[:, 2:3] * GRID**2
            np.subtract((y if every else y[seen])[:, None], t, out=t)
            t /= self.emission_sd_[k]
            np.square(t, out=t)
            t *= -0.5
            t -= np.log(self.emission_sd_[k])  # -0.5 * ((y - mean) / sd) ** 2 - np.log(sd)
            if every:
                behaviour += t
            else:
                behaviour[seen] += t
        return ll if temperature == 1.0 else ll + behaviour / temperature

    def _behaviour_of_few(self, ll: np.ndarray, inp: PosteriorInputs, U: np.ndarray, plan: _ScoringPlan) -> np.ndarray:
        """`_loglik`'s behaviour terms added to `ll` (in place) for a few rows with every measure observed, all
        measures at once on a (measure, row, G) block: each element goes through the same operations in the same
        order as the per-measure loop (so the same bits; tests/training/test_appetite.py), in ~10 numpy calls
        instead of ~10 per measure (a single customer's request, #18)."""
        k = len(plan.coefs)
        by_power = np.empty((k, len(ll), 3))
        for m, coef in enumerate(plan.coefs):
            np.matmul(U, coef.T, out=by_power[m])  # = `U @ coef.T`, the loop's product
        t = by_power[:, :, 1:2] * GRID  # (k, n, G)
        t += by_power[:, :, :1]
        t += by_power[:, :, 2:3] * _GRID_SQUARED
        np.subtract(inp.measures.T[:, :, None], t, out=t)
        t /= plan.emission_sd[:, None, None]
        np.square(t, out=t)
        t *= -0.5
        t -= plan.log_emission_sd[:, None, None]
        for m in range(k):  # measure by measure, in the loop's order
            ll += t[m]
        return ll

    @staticmethod
    def _residuals(inp: PosteriorInputs, U: np.ndarray, coefs: list[np.ndarray]) -> np.ndarray:
        """(n, G, k) measure minus its mean at each grid value (NaN where the measure is not observed)."""
        out = np.empty((len(U), len(GRID), len(coefs)))
        for k, coef in enumerate(coefs):
            by_power = U @ coef.T
            mean = by_power[:, :1] + by_power[:, 1:2] * GRID[None, :] + by_power[:, 2:3] * GRID[None, :] ** 2
            out[:, :, k] = inp.measures[:, k, None] - mean
        return out

    def _correlated_loglik(self, inp: PosteriorInputs, U: np.ndarray, plan: _ScoringPlan) -> np.ndarray:
        """(n, G) joint Gaussian log density of the observed measures, residuals correlated across measures
        (the same customer's engagement, the view-share arithmetic): each row by its pattern of observed ones."""
        assert plan.whiten is not None
        r = self._residuals(inp, U, plan.coefs)
        seen = np.isfinite(inp.measures)
        ll = np.zeros((len(U), len(GRID)))
        for pattern in _patterns(seen):
            if not any(pattern):
                continue
            rows = (seen == np.array(pattern)).all(axis=1)
            W, logdet = plan.whiten[pattern]
            z = r[rows][:, :, np.array(pattern)] @ W.T  # (m, G, observed)
            ll[rows] = -0.5 * np.sum(z**2, axis=2) - 0.5 * logdet
        return ll

    def _row_design(self, inp: PosteriorInputs) -> np.ndarray:
        """(n, R) row terms of the emissions: 1, covariates, stated-group dummies, profile."""
        dummies = [(inp.stated == j).astype(float) for j in range(self.n_classes_ - 1)]
        return _columns(np.ones(len(inp.stated)), inp.covariates, *dummies, inp.profile[:, 1:])

    def _terms(self, k: int, n_cov: int, n_prof: int) -> list[tuple[int, int]]:
        """(power of a, row term) pairs of measure k's mean: a quadratic in a plus the covariates; the
        booster's score (k = 0) also shifts and tilts by stated group (appetite the shelf blocks shows as
        more browsing) and by profile (the booster saw the profile directly)."""
        terms = [(0, 0), (1, 0), (2, 0)] + [(0, 1 + c) for c in range(n_cov)]
        if k == 0 and self.booster_stated:
            for j in range(self.n_classes_ - 1):
                terms += [(0, 1 + n_cov + j), (1, 1 + n_cov + j)]
        if k == 0 and self.booster_profile:
            terms += [(0, n_cov + self.n_classes_ + c) for c in range(n_prof)]
        return terms

    def _emission_mean(self, k: int, U: np.ndarray) -> np.ndarray:
        """(n, G) mean of measure k for rows with design U at each grid value."""
        coef = np.zeros((3, U.shape[1]))  # coefficient of a^power on each row term
        for (pw, r), b in zip(self.emission_terms_[k], self.emission_[k], strict=True):
            coef[pw, r] += b
        by_power = U @ coef.T  # (n, 3)
        return by_power[:, :1] + by_power[:, 1:2] * GRID[None, :] + by_power[:, 2:3] * GRID[None, :] ** 2

    @staticmethod
    def _weights(ll: np.ndarray) -> np.ndarray:
        w = np.exp(ll - ll.max(axis=1, keepdims=True))
        return w / w.sum(axis=1, keepdims=True)

    def _class_mass(self) -> np.ndarray:
        """(G, k) share of each grid cell in each class (cells split at the cuts, so the output is smooth)."""
        h = GRID[1] - GRID[0]
        edges = np.concatenate([[-np.inf], self.cuts_, [np.inf]])
        lo, hi = GRID - h / 2, GRID + h / 2
        mass = np.column_stack(
            [
                np.clip(np.minimum(hi, edges[j + 1]) - np.maximum(lo, edges[j]), 0, None) / h
                for j in range(len(edges) - 1)
            ]
        )
        return mass / mass.sum(axis=1, keepdims=True)

    # -- fitting -----------------------------------------------------------------------------------
    def fit(
        self,
        raw: np.ndarray,
        X: np.ndarray,
        label: np.ndarray,
        iterations: int = 60,
        anchor: np.ndarray | None = None,
    ) -> AppetitePosterior:
        """EM on every row given (labelled or not); `label` is the revealed class index, -1 where unknown.
        `anchor` (fitting only, like the label): an accurate class assessment where one exists (e.g. an
        advisor's suitability review), -1 elsewhere; it measures the class cuts without the questionnaire's lean.
        Above `MAX_FIT_ROWS` rows a fixed-seed random sample is used (a few dozen parameters)."""
        if len(X) > MAX_FIT_ROWS:
            keep = np.sort(np.random.default_rng(0).choice(len(X), MAX_FIT_ROWS, replace=False))
            raw, X, label = np.atleast_2d(raw)[keep], X[keep], np.asarray(label)[keep]
            anchor = None if anchor is None else np.asarray(anchor)[keep]
        if anchor is not None and not np.any(np.asarray(anchor) >= 0):  # e.g. a bank with no reviews yet
            log.info("risk posterior: no row has a review: fitted without the anchor")
            anchor = None
        if anchor is not None:
            anchor = np.asarray(anchor, dtype=int)
            self.anchor_sd_ = 0.5
        prof = self._profile_raw(X)
        self.profile_mean_ = prof.mean(axis=0)
        self.profile_sd_ = np.where(prof.std(axis=0) > 0, prof.std(axis=0), 1.0)
        cov = [np.log1p(np.nan_to_num(np.clip(X[:, j], 0, None), nan=0.0)) for j in self.covariate_index]
        covm = np.column_stack(cov) if cov else np.zeros((len(X), 0))
        self.cov_mean_ = covm.mean(axis=0) if cov else np.zeros(0)
        self.cov_sd_ = np.where(covm.std(axis=0) > 0, covm.std(axis=0), 1.0) if cov else np.zeros(0)
        inp = self.inputs(raw, X)
        label = np.asarray(label, dtype=int)
        k_meas = inp.measures.shape[1]
        q = inp.covariates.shape[1]
        # start: no behaviour (zero slopes, unit noise), a questionnaire of moderate noise
        self.theta_ = np.zeros(inp.profile.shape[1])
        self.cuts_ = np.array([-0.5, 0.7])
        self.lean_, self.q_sd_, self.q_stale_, self.label_sd_ = 0.5, 1.2, 0.2, 0.8
        n_prof = inp.profile.shape[1] - 1
        self.emission_terms_ = [self._terms(k, q, n_prof) for k in range(k_meas)]
        self.emission_ = [np.zeros(len(t)) for t in self.emission_terms_]
        for k in range(k_meas):
            self.emission_[k][0] = np.nanmean(inp.measures[:, k])
        self.emission_sd_ = np.array([max(float(np.nanstd(inp.measures[:, k])), 1e-3) for k in range(k_meas)])
        self.emission_cov_ = np.diag(self.emission_sd_**2) if self.correlated_residuals else None
        self.__dict__.pop("_plan_cache", None)  # tables of an earlier fit
        prev = -np.inf
        for it in range(iterations):
            ll = self._loglik(inp, label, anchor)
            m = ll.max(axis=1, keepdims=True)
            total = float(np.sum(m[:, 0] + np.log(np.exp(ll - m).sum(axis=1))))
            w = self._weights(ll)
            self._m_step(inp, label, w, anchor)
            if it > 5 and total - prev < 1e-5 * len(X):  # per row: the class probabilities have settled
                break
            prev = total
        self.loglik_ = total
        self.iterations_ = it + 1
        self.temperature_ = 1.0 if anchor is None else self._choose_temperature(inp, anchor)
        log.info(
            "risk posterior: %d rows, %d EM iterations, cuts %s, lean %.2f, questionnaire sd %.2f (+%.2f/yr^0.5)",
            len(X),
            self.iterations_,
            np.round(self.cuts_, 2),
            self.lean_,
            self.q_sd_,
            self.q_stale_,
        )
        return self

    def _choose_temperature(self, inp: PosteriorInputs, anchor: np.ndarray) -> float:
        """The behaviour likelihood's temperature that best predicts the reviewed class on the review rows from
        everything else (profile, questionnaire, behaviour; never the review itself): the measurement model
        treats the behaviour as independent evidence given the appetite, which overstates it when the
        measures share non-appetite causes (#12: confidence 0.96 right 75% of the time)."""
        rows = np.flatnonzero(anchor >= 0)
        sub = PosteriorInputs(
            profile=inp.profile[rows],
            measures=inp.measures[rows],
            covariates=inp.covariates[rows],
            stated=inp.stated[rows],
            stale_bin=inp.stale_bin[rows],
        )
        mass = self._plan().class_mass
        score = {}
        for t in TEMPERATURES:
            p = np.clip(self._weights(self._loglik(sub, temperature=t)) @ mass, _EPS, None)
            score[t] = float(np.mean(np.log(p[np.arange(len(rows)), anchor[rows]] / p.sum(axis=1))))
        best = max(score, key=lambda t: score[t])
        log.info("risk posterior: behaviour temperature %.2f from %d review rows (%s)", best, len(rows), score)
        return best

    def _m_step(self, inp: PosteriorInputs, label: np.ndarray, w: np.ndarray, anchor: np.ndarray | None = None) -> None:
        ea = w @ GRID
        # prior mean: least squares of E[a] on the profile (unit residual variance fixes the scale)
        self.theta_ = np.linalg.lstsq(inp.profile, ea, rcond=None)[0]
        # behaviour emissions: weighted least squares over (row, grid) pairs via the moments of a
        mom = np.column_stack([w @ GRID**p for p in range(5)])
        U = self._row_design(inp)
        for k in range(0 if self.correlated_residuals else inp.measures.shape[1]):
            y = inp.measures[:, k]
            s = np.isfinite(y)
            terms = self.emission_terms_[k]
            Us, ys, ms = U[s], y[s], mom[s]
            t = len(terms)
            gram = [(Us * ms[:, p : p + 1]).T @ Us for p in range(5)]  # sum_i E[a^p] U_ir U_ir'
            cross = [(ms[:, p] * ys) @ Us for p in range(3)]
            pw = np.array([p_ for p_, _ in terms])
            rr = np.array([r_ for _, r_ in terms])
            A = np.empty((t, t))
            for a_ in range(t):
                for b_ in range(t):
                    A[a_, b_] = gram[pw[a_] + pw[b_]][rr[a_], rr[b_]]
            bvec = np.array([cross[pw[a_]][rr[a_]] for a_ in range(t)])
            self.emission_[k] = np.linalg.solve(A + 1e-6 * np.eye(t), bvec)
            mean = self._emission_mean(k, Us)
            var = float(np.sum(w[s] * (ys[:, None] - mean) ** 2) / s.sum())
            self.emission_sd_[k] = max(np.sqrt(var), 1e-3)
        if self.correlated_residuals:
            self._m_step_correlated(inp, U, w, mom)
        # questionnaire and label probits: expected counts per (class, staleness bin, grid value)
        nb = len(STALE_BINS) + 1
        kc = self.n_classes_
        counts = np.zeros((kc, nb, len(GRID)))
        for j in range(kc):
            for b in range(nb):
                rows = (inp.stated == j) & (inp.stale_bin == b)
                if rows.any():
                    counts[j, b] = w[rows].sum(axis=0)
        lab = np.zeros((kc, len(GRID)))
        for j in range(kc):
            if (label == j).any():
                lab[j] = w[label == j].sum(axis=0)
        anc = np.zeros((kc, len(GRID)))
        if anchor is not None:
            for j in range(kc):
                if np.any(anchor == j):
                    anc[j] = w[anchor == j].sum(axis=0)

        years = np.concatenate([[0.5], (STALE_BINS[:-1] + STALE_BINS[1:]) / 2, [STALE_BINS[-1] + 3]])
        stated_counts = counts.transpose(1, 2, 0)  # (bin, G, class)

        def nll(x: np.ndarray) -> float:
            cuts = x[0] + np.concatenate([[0.0], np.cumsum(np.exp(x[1 : kc - 1]))])
            lean, qsd, qst, lsd = x[kc - 1], np.exp(x[kc]), np.exp(x[kc + 1]), np.exp(x[kc + 2])
            sd = np.sqrt(qsd**2 + qst**2 * years)[:, None, None]  # (bin, 1, 1)
            table = _ordinal_table(GRID[None, :, None] - lean, cuts, sd)  # (bin, G, class)
            out = -float(np.sum(stated_counts * np.log(table)))
            out -= float(np.sum(lab.T * np.log(_ordinal_table(GRID[:, None], cuts, lsd))))
            if anchor is not None:
                out -= float(np.sum(anc.T * np.log(_ordinal_table(GRID[:, None], cuts, np.exp(x[kc + 3])))))
            return out

        x0 = np.concatenate(
            [
                [self.cuts_[0]],
                np.log(np.diff(self.cuts_)),
                [self.lean_],
                np.log([self.q_sd_, max(self.q_stale_, 1e-3), self.label_sd_]),
                np.log([self.anchor_sd_]) if anchor is not None else [],
            ]
        )
        res = minimize(nll, x0, method="L-BFGS-B", options={"maxiter": 5})
        x = res.x
        self.cuts_ = x[0] + np.concatenate([[0.0], np.cumsum(np.exp(x[1 : kc - 1]))])
        sds = np.exp(x[kc : kc + 3])
        self.lean_, self.q_sd_, self.q_stale_, self.label_sd_ = (
            float(x[kc - 1]),
            float(sds[0]),
            float(sds[1]),
            float(sds[2]),
        )
        if anchor is not None:
            self.anchor_sd_ = float(np.exp(x[kc + 3]))
        self.__dict__.pop("_plan_cache", None)  # the next E-step reads tables of the new parameters

    def _m_step_correlated(self, inp: PosteriorInputs, U: np.ndarray, w: np.ndarray, mom: np.ndarray) -> None:
        """The emissions with one residual covariance across measures (ECM): every measure's coefficients by
        generalised least squares given the current covariance, then the covariance given them. A row missing a
        measure weighs its observed block by that block's inverse, and enters the covariance with the missing
        residuals imputed from the observed ones (their conditional mean, plus the conditional covariance)."""
        k_meas = inp.measures.shape[1]
        pw = np.concatenate([[p_ for p_, _ in t] for t in self.emission_terms_]).astype(int)
        rr = np.concatenate([[r_ for _, r_ in t] for t in self.emission_terms_]).astype(int)
        kk = np.concatenate([np.full(len(t), k) for k, t in enumerate(self.emission_terms_)])
        cov = self.emission_cov_
        assert cov is not None  # set by `fit` when the residuals are correlated
        seen = np.isfinite(inp.measures)
        y = np.nan_to_num(inp.measures, nan=0.0)
        patterns = [pattern for pattern in _patterns(seen) if any(pattern)]
        A = np.zeros((len(pw), len(pw)))
        bvec = np.zeros(len(pw))
        for pattern in patterns:
            o = np.array(pattern)
            rows = (seen == o).all(axis=1)
            P = np.zeros((k_meas, k_meas))
            P[np.ix_(o, o)] = np.linalg.inv(cov[np.ix_(o, o)])
            Ug, mg, yg = U[rows], mom[rows], y[rows]
            gram = np.stack([(Ug * mg[:, p : p + 1]).T @ Ug for p in range(5)])  # (power, R, R)
            cross = np.stack([(mg[:, p : p + 1] * yg).T @ Ug for p in range(3)])  # (power, measure, R)
            A += P[kk[:, None], kk[None, :]] * gram[pw[:, None] + pw[None, :], rr[:, None], rr[None, :]]
            bvec += np.sum(P[kk] * cross[pw, :, rr], axis=1)
        beta = np.linalg.solve(A + 1e-6 * np.eye(len(pw)), bvec)
        start = np.cumsum([0] + [len(t) for t in self.emission_terms_])
        self.emission_ = [np.asarray(beta[start[k] : start[k + 1]], dtype=float) for k in range(k_meas)]
        coefs = []
        for k, terms in enumerate(self.emission_terms_):
            coef = np.zeros((3, U.shape[1]))
            for (p_, r_), b in zip(terms, self.emission_[k], strict=True):
                coef[p_, r_] += b
            coefs.append(coef)
        r = self._residuals(inp, U, coefs)
        S = np.zeros((k_meas, k_meas))
        for pattern in _patterns(seen):
            o = np.array(pattern)
            rows = (seen == o).all(axis=1)
            rg, wg = r[rows], w[rows]
            if not o.all():  # impute the missing residuals from the observed ones under the current covariance
                m_ = ~o
                reg = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, m_)]) if o.any() else np.zeros((0, m_.sum()))
                rg = rg.copy()
                rg[:, :, m_] = rg[:, :, o] @ reg
                cond = np.zeros((k_meas, k_meas))
                cond[np.ix_(m_, m_)] = cov[np.ix_(m_, m_)] - cov[np.ix_(m_, o)] @ reg
                S += rows.sum() * cond
            S += np.einsum("ng,ngk,ngl->kl", wg, rg, rg)
        S /= len(w)
        self.emission_cov_ = S + 1e-6 * np.eye(k_meas)
        self.emission_sd_ = np.sqrt(np.diag(self.emission_cov_))

    # -- scoring -----------------------------------------------------------------------------------
    def transform(self, raw: np.ndarray, X: np.ndarray) -> np.ndarray:
        """(n, classes) P(class | profile, questionnaire, behaviour) for the rows of the model matrix `X`."""
        w = self._loglik(self.inputs(raw, X), temperature=getattr(self, "temperature_", 1.0))
        w -= w.max(axis=1, keepdims=True)  # `_weights(ll)`, in place (ll is ours): the same operations
        np.exp(w, out=w)
        w /= w.sum(axis=1, keepdims=True)
        p = np.maximum(w @ self._plan().class_mass, _EPS)
        return p / p.sum(axis=1, keepdims=True)

    def _plan(self) -> _ScoringPlan:
        """What scoring needs from the fitted parameters, computed once (one customer at a time is the serving
        path): log P(stated | a) per staleness bin, each measure's coefficients by power of a, the class mass.
        Built lazily, so a posterior pickled before this existed scores the same; each M-step drops it."""
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            nb = len(STALE_BINS) + 1
            stated = np.stack(
                [
                    np.log(self._ordinal(GRID - self.lean_, self.cuts_, float(self._stated_sd(np.array([b]))[0])))
                    for b in range(nb)
                ]
            )  # (bin, G, class)
            width = 1 + len(self.cov_mean_) + self.n_classes_ - 1 + len(self.profile_mean_)  # `_row_design`'s
            coefs = []
            for k, terms in enumerate(self.emission_terms_):
                coef = np.zeros((3, width))
                for (pw, r), b in zip(terms, self.emission_[k], strict=True):
                    coef[pw, r] += b
                coefs.append(coef)
            whiten = None
            cov = getattr(self, "emission_cov_", None)  # absent in a posterior pickled before it existed
            if cov is not None:
                whiten = {}
                for pattern in itertools.product([False, True], repeat=len(cov)):
                    if any(pattern):
                        o = np.array(pattern)
                        chol = np.linalg.cholesky(cov[np.ix_(o, o)])
                        whiten[pattern] = (np.linalg.inv(chol), 2.0 * float(np.sum(np.log(np.diag(chol)))))
            sd = np.asarray(self.emission_sd_, dtype=np.float64)
            plan = _ScoringPlan(
                stated=stated,
                coefs=coefs,
                class_mass=self._class_mass(),
                emission_sd=sd,
                log_emission_sd=np.array([np.log(self.emission_sd_[k]) for k in range(len(sd))], dtype=np.float64),
                whiten=whiten,
            )
            self.__dict__["_plan_cache"] = plan
        return plan

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_plan_cache", None)
        state.pop("_input_plan_cache", None)
        return state
