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

Fitted by EM on a grid of `a`; a customer's class probabilities are the posterior mass of `a` between the
cuts given the profile, the questionnaire and the behaviour (never the label: scoring has none). Each stated
group's class mix follows from the questionnaire's measurement model rather than from the labelled rows.
Everything needed to score is carried here (pickled inside `training.model.TabularModel`), so training,
batch scoring and serving compute the same posterior from the same feature matrix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr

log = logging.getLogger(__name__)

_EPS = 1e-6
GRID = np.linspace(-6.0, 6.0, 121)
MAX_FIT_ROWS = 12_000
STALE_BINS = np.array([1.0, 2.0, 4.0, 7.0, 12.0])  # years since the questionnaire: bin edges
# Standardised profile and covariate values are bounded so a row's log-likelihood cannot overflow (an age of
# 8e307 made every grid value -inf and the probabilities NaN: found by the serving fuzz test). No real row
# comes near it, so every real row scores exactly as before.
Z_MAX = 1e6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _ordinal_table(a: np.ndarray, cuts: np.ndarray, sd: np.ndarray | float) -> np.ndarray:
    """P(class j | a) along a new last axis: `a` and `sd` broadcast against each other (last axis 1)."""
    c = ndtr((cuts - a) / sd)  # (..., k - 1)
    ones = np.ones(c.shape[:-1] + (1,))
    return np.clip(np.concatenate([c, ones], axis=-1) - np.concatenate([ones * 0, c], axis=-1), 1e-12, None)


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
    ):
        self.booster_stated, self.booster_profile = booster_stated, booster_profile
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
    def _profile_raw(self, X: np.ndarray) -> np.ndarray:
        cols = []
        for j in self.profile_index:
            v = X[:, j]
            if j in self.profile_levels:  # one-hot of the category codes (first level and unknown = 0)
                for level in range(1, self.profile_levels[j]):
                    cols.append((v == level).astype(float))
            else:
                cols.append(np.nan_to_num(v, nan=0.0))
        return np.column_stack(cols) if cols else np.zeros((len(X), 0))

    def inputs(self, raw: np.ndarray, X: np.ndarray) -> PosteriorInputs:
        prof = np.minimum(np.maximum((self._profile_raw(X) - self.profile_mean_) / self.profile_sd_, -Z_MAX), Z_MAX)
        score = _logit(np.atleast_2d(raw)[:, 1])
        meas = [score] + [np.log1p(np.clip(X[:, j], 0, None)) for j in self.measure_index]
        cov = [np.log1p(np.nan_to_num(np.clip(X[:, j], 0, None), nan=0.0)) for j in self.covariate_index]
        covariates = (
            np.minimum(np.maximum((np.column_stack(cov) - self.cov_mean_) / self.cov_sd_, -Z_MAX), Z_MAX)
            if cov
            else np.zeros((len(X), 0))
        )
        code = X[:, self.stated_index]
        ok = np.isfinite(code) & (code >= 0) & (code < len(self.stated_codes))
        stated = np.full(len(X), -1)
        stated[ok] = self.stated_codes[code[ok].astype(int)]
        years = np.zeros(len(X)) if self.age_index is None else np.nan_to_num(X[:, self.age_index], nan=0.0) / 365.25
        return PosteriorInputs(
            profile=np.column_stack([np.ones(len(X)), prof]),
            measures=np.column_stack(meas),
            covariates=covariates,
            stated=stated,
            stale_bin=np.searchsorted(STALE_BINS, np.clip(years, 0, None)),
        )

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

    def _loglik(self, inp: PosteriorInputs, label: np.ndarray | None = None) -> np.ndarray:
        """(n, G) log joint density of each row's observations and each grid value of the appetite, from the
        cached `_plan()` tables (fitting drops them after each M-step). `label` only when fitting: scoring
        has none."""
        plan = self._plan()
        mu = inp.profile @ self.theta_
        ll = -0.5 * (GRID[None, :] - mu[:, None]) ** 2
        rows = inp.stated >= 0  # the questionnaire: log P(stated | a), by staleness bin
        if rows.any():
            ll[rows] += plan.stated[inp.stale_bin[rows], :, inp.stated[rows]]
        if label is not None:
            table = self._ordinal(GRID, self.cuts_, self.label_sd_)
            rows = label >= 0
            ll[rows] += np.log(table[:, label[rows]]).T
        U = self._row_design(inp)
        for k, coef in enumerate(plan.coefs):
            y = inp.measures[:, k]
            seen = np.isfinite(y)
            by_power = U[seen] @ coef.T
            mean = by_power[:, :1] + by_power[:, 1:2] * GRID[None, :] + by_power[:, 2:3] * GRID[None, :] ** 2
            ll[seen] += -0.5 * ((y[seen, None] - mean) / self.emission_sd_[k]) ** 2 - np.log(self.emission_sd_[k])
        return ll

    def _row_design(self, inp: PosteriorInputs) -> np.ndarray:
        """(n, R) row terms of the emissions: 1, covariates, stated-group dummies, profile."""
        dummies = np.column_stack([(inp.stated == j).astype(float) for j in range(self.n_classes_ - 1)])
        return np.column_stack([np.ones(len(inp.stated)), inp.covariates, dummies, inp.profile[:, 1:]])

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
    def fit(self, raw: np.ndarray, X: np.ndarray, label: np.ndarray, iterations: int = 60) -> AppetitePosterior:
        """EM on every row given (labelled or not); `label` is the revealed class index, -1 where unknown.
        Above `MAX_FIT_ROWS` rows a fixed-seed random sample is used (a few dozen parameters)."""
        if len(X) > MAX_FIT_ROWS:
            keep = np.sort(np.random.default_rng(0).choice(len(X), MAX_FIT_ROWS, replace=False))
            raw, X, label = np.atleast_2d(raw)[keep], X[keep], np.asarray(label)[keep]
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
        self.__dict__.pop("_plan_cache", None)  # tables of an earlier fit
        prev = -np.inf
        for it in range(iterations):
            ll = self._loglik(inp, label)
            m = ll.max(axis=1, keepdims=True)
            total = float(np.sum(m[:, 0] + np.log(np.exp(ll - m).sum(axis=1))))
            w = self._weights(ll)
            self._m_step(inp, label, w)
            if it > 5 and total - prev < 1e-5 * len(X):  # per row: the class probabilities have settled
                break
            prev = total
        self.loglik_ = total
        self.iterations_ = it + 1
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

    def _m_step(self, inp: PosteriorInputs, label: np.ndarray, w: np.ndarray) -> None:
        ea = w @ GRID
        # prior mean: least squares of E[a] on the profile (unit residual variance fixes the scale)
        self.theta_ = np.linalg.lstsq(inp.profile, ea, rcond=None)[0]
        # behaviour emissions: weighted least squares over (row, grid) pairs via the moments of a
        mom = np.column_stack([w @ GRID**p for p in range(5)])
        U = self._row_design(inp)
        for k in range(inp.measures.shape[1]):
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

        years = np.concatenate([[0.5], (STALE_BINS[:-1] + STALE_BINS[1:]) / 2, [STALE_BINS[-1] + 3]])
        stated_counts = counts.transpose(1, 2, 0)  # (bin, G, class)

        def nll(x: np.ndarray) -> float:
            cuts = x[0] + np.concatenate([[0.0], np.cumsum(np.exp(x[1 : kc - 1]))])
            lean, qsd, qst, lsd = x[kc - 1], np.exp(x[kc]), np.exp(x[kc + 1]), np.exp(x[kc + 2])
            sd = np.sqrt(qsd**2 + qst**2 * years)[:, None, None]  # (bin, 1, 1)
            table = _ordinal_table(GRID[None, :, None] - lean, cuts, sd)  # (bin, G, class)
            out = -float(np.sum(stated_counts * np.log(table)))
            return out - float(np.sum(lab.T * np.log(_ordinal_table(GRID[:, None], cuts, lsd))))

        x0 = np.concatenate(
            [
                [self.cuts_[0]],
                np.log(np.diff(self.cuts_)),
                [self.lean_],
                np.log([self.q_sd_, max(self.q_stale_, 1e-3), self.label_sd_]),
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
        self.__dict__.pop("_plan_cache", None)  # the next E-step reads tables of the new parameters

    # -- scoring -----------------------------------------------------------------------------------
    def transform(self, raw: np.ndarray, X: np.ndarray) -> np.ndarray:
        """(n, classes) P(class | profile, questionnaire, behaviour) for the rows of the model matrix `X`."""
        w = self._weights(self._loglik(self.inputs(raw, X)))
        p = np.clip(w @ self._plan().class_mass, _EPS, None)
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
            plan = _ScoringPlan(stated=stated, coefs=coefs, class_mass=self._class_mass())
            self.__dict__["_plan_cache"] = plan
        return plan

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_plan_cache", None)
        return state
