"""The model artefact: `TabularModel` (pure prediction core) wrapped once in an MLflow pyfunc.

`TabularModel` carries everything needed to go from a raw feature frame to calibrated
probabilities: the feature order, the category maps (string → code, unknown → NaN; the
booster was trained on these codes, so LightGBM never sees pandas categories and the
"categorical_feature do not match" trap of LightGBM #5244 cannot happen), the LightGBM
booster, the calibrator, the class labels and the decision thresholds.

Serving unwraps the pyfunc once (`training.registry.load_champion`) and calls the core
directly; `matrix` + `proba_from_matrix` are the hot path (numpy only).
"""

from __future__ import annotations

import math
import operator
import weakref
from collections.abc import Mapping
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from scipy.special import expit as _expit  # once here, not per call (single-customer requests, #18)

from core.errors import InputError

_EPS = 1e-6
# A multiclass calibrator reads the probabilities down to float64's range: at the 1e-6 floor every mass
# customer of a tier model boosted to P(upgrade) ~ 1e-9 got one calibrated P(upgrade), which tied 90% of
# them and put them all above the one affluent-to-HNW upgrader (demo bank: upgrade AUC 0.994 raw, 0.814
# calibrated; docs/decisions/tier-model.md "Calibration").
_TAIL = 1e-300
_ONE = 1.0 - 2.0**-52  # the largest float64 below 1: logit stays finite


def _clip(x: np.ndarray, low: float, high: float | None = None) -> np.ndarray:
    """`np.clip(x, low, high)` as the two ufuncs it applies (the same values, NaN stays NaN): the
    `np.clip` wrapper costs more than the arithmetic on a single customer's row (#18)."""
    x = np.maximum(x, low)
    return x if high is None else np.minimum(x, high)


def _missing_low(v: np.ndarray) -> np.ndarray:
    """`np.nan_to_num(v, nan=-np.inf)`, skipped when every value is finite (then it is `v` itself)."""
    return v if np.isfinite(v).all() else np.nan_to_num(v, nan=-np.inf)


def _logit(p: np.ndarray, eps: float = _EPS) -> np.ndarray:
    p = _clip(p, eps, min(1 - eps, _ONE))
    return np.log(p) - np.log1p(-p)


class Calibrator:
    """Maps raw scores to calibrated probabilities; per class one-vs-rest for multiclass, then normalised.

    `sigmoid` (Platt on the logit) keeps the ranking, so AUC is unchanged; `isotonic` is a
    step function stored as interpolation knots. `temperature` is softmax(log p / T) with one T
    for every class (fitted by weighted log-likelihood): each row keeps its predicted class and every
    odds ratio becomes (raw odds)^(1/T), so, unlike a slope per class, the odds of one class in one
    row compare with another class's in another row as before (the tier model's upgrade score pools
    P(affluent) of mass customers with P(hnw) of affluent ones; docs/decisions/tier-model.md).
    """

    def __init__(self, method: str = "sigmoid"):
        self.method = method

    def fit(self, proba: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        proba = np.atleast_2d(proba)
        k = proba.shape[1]
        self.n_classes_ = k
        self.floor_ = _TAIL  # binary too: see `_floor`
        self.params_: list[tuple[np.ndarray, np.ndarray] | tuple[float, float]] = []
        if self.method == "temperature":
            self.temperature_ = _fit_temperature(proba, np.asarray(y, dtype=int), weight)
            return self
        cols = [1] if k == 2 else list(range(k))
        for c in cols:
            target = (y == c).astype(int)
            if target.min() == target.max():  # a class absent from the calibration rows: identity
                self.params_.append((1.0, 0.0) if self.method == "sigmoid" else (np.array([0.0, 1.0]),) * 2)
                continue
            if self.method == "sigmoid":
                lr = LogisticRegression(C=1e6, max_iter=1000)
                lr.fit(self._z(proba[:, c]).reshape(-1, 1), target, sample_weight=weight)
                self.params_.append((float(lr.coef_[0, 0]), float(lr.intercept_[0])))
            else:
                iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
                iso.fit(proba[:, c], target, sample_weight=weight)
                self.params_.append((np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)))
        return self

    def _floor(self) -> float:
        """The probability floor before the logit: `_TAIL` for every calibrator fitted now, so the tail of
        the scores keeps its order (at a 1e-6 floor every churn customer the booster put below 1e-6 got one
        calibrated score: 86-92% of them tied before lambda_l2 was bounded, #18). A binary calibrator
        pickled before `floor_` existed was fitted on 1e-6-floored logits and keeps that floor, so a
        stored model scores as it did."""
        floor = getattr(self, "floor_", None)
        if floor is not None:
            return floor
        return _EPS if getattr(self, "n_classes_", 2) == 2 else _TAIL

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_slopes_cache", None)
        return state

    def _slopes(self) -> tuple[np.ndarray, np.ndarray]:
        """The sigmoid parameters of every class as two float64 rows (slopes, intercepts), built once."""
        cached = self.__dict__.get("_slopes_cache")
        if cached is None or cached[0] is not self.params_:
            a, b = (np.array([float(prm[i]) for prm in self.params_], dtype=np.float64) for i in (0, 1))
            cached = self.__dict__["_slopes_cache"] = (self.params_, a, b)
        return cached[1], cached[2]

    def _z(self, p: np.ndarray) -> np.ndarray:
        return _logit(p, self._floor())

    def _one(self, p: np.ndarray, params) -> np.ndarray:
        if self.method == "sigmoid":
            a, b = params
            return _expit(a * self._z(p) + b)
        xs, ys = params
        return np.interp(p, xs, ys)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        if self.method == "temperature":
            return _softmax(_log_floor(np.atleast_2d(proba)) / self.temperature_)
        # Columns written into one preallocated array: `np.column_stack` costs more than the
        # arithmetic for the one-customer requests of the service (#18); the values are the same.
        if self.n_classes_ == 2:
            p1 = _clip(self._one(proba[:, 1], self.params_[0]), 0.0, 1.0)
            two = np.empty((len(p1), 2), dtype=np.result_type(p1, 1.0))
            two[:, 0] = 1.0 - p1
            two[:, 1] = p1
            return two
        if (
            self.method == "sigmoid"
            and proba.dtype == np.float64  # float32 stays float32 class by class (Python-float parameters)
            and proba.ndim == 2
            and proba.shape[1] == len(self.params_)
        ):
            # every class at once on the (n, classes) block: element by element the same operations as
            # `_one` per column (a, b broadcast by column), in a few numpy calls instead of a few per class (#18)
            slope, intercept = self._slopes()
            out = _expit(slope * self._z(proba) + intercept)
        else:
            cols = [self._one(proba[:, c], prm) for c, prm in enumerate(self.params_)]
            out = np.empty((len(proba), len(cols)), dtype=np.result_type(*cols))
            for c, col in enumerate(cols):
                out[:, c] = col
        out = _clip(out, _TAIL)
        return out / out.sum(axis=1, keepdims=True)


def _log_floor(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(p, dtype=np.float64), _TAIL, None))


def _fit_temperature(proba: np.ndarray, y: np.ndarray, weight: np.ndarray | None) -> float:
    """The T in [0.05, 20] minimising the weighted log loss of softmax(log p / T) on held-out rows."""
    from scipy.optimize import minimize_scalar

    z = _log_floor(proba)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    rows = np.arange(len(y))

    def nll(t: float) -> float:
        s = z / t
        s = s - s.max(axis=1, keepdims=True)
        logp = s[rows, y] - np.log(np.exp(s).sum(axis=1))
        return -float(np.sum(w * logp) / w.sum())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


class OrdinalCalibrator:
    """Three (or more) ordered classes from ONE appetite score: cumulative logits (proportional odds).

    P(class >= j) = sigmoid(a * logit(p) + b_j) for j = 1..k-1 with b_1 > b_2 > ..., where `p` is the
    booster's P(top class). One slope keeps P(top class) monotone in `p`, so ranking by it (hidden
    aggressive) is the binary model's ranking; the cut points place balanced between the two ends.
    Fitted by maximum likelihood on the validation rows' class indices.
    """

    method = "ordinal"

    def fit(self, proba: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, k: int = 3) -> OrdinalCalibrator:
        from scipy.optimize import minimize

        z = _logit(np.atleast_2d(proba)[:, 1])
        y = np.asarray(y, dtype=int)
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
        self.n_classes_ = k

        def nll(theta: np.ndarray) -> float:
            p = self._proba(z, theta[0], self._cuts(theta[1:]))
            return -float(np.sum(w * np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))) / w.sum()

        # start: slope 1, cut points at the training shares
        shares = np.bincount(y, weights=w, minlength=k)[::-1].cumsum()[::-1][1:] / w.sum()
        b0 = _logit(np.clip(shares, 0.02, 0.98)) - np.median(z)
        start = np.concatenate([[1.0, b0[0]], np.log(np.clip(-np.diff(b0), 1e-3, None))])
        res = minimize(nll, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9})
        self.slope_, self.cuts_ = float(res.x[0]), self._cuts(res.x[1:]).tolist()
        return self

    @staticmethod
    def _cuts(free: np.ndarray) -> np.ndarray:
        """b_1, then each next cut lower by a positive step (exp keeps them ordered)."""
        return free[0] - np.concatenate([[0.0], np.cumsum(np.exp(free[1:]))])

    @staticmethod
    def _proba(z: np.ndarray, slope: float, cuts: np.ndarray) -> np.ndarray:
        at_least = 1.0 / (1.0 + np.exp(-(slope * z[:, None] + cuts[None, :])))  # P(y >= j), j = 1..k-1
        upper = np.column_stack([np.ones(len(z)), at_least])
        lower = np.column_stack([at_least, np.zeros(len(z))])
        return np.clip(upper - lower, 0.0, 1.0)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """`_proba` then the `_EPS` floor and normalisation, in one preallocated array (the service's
        one-customer requests, #18): P(class j) = P(y >= j) - P(y >= j + 1), clipped to [_EPS, 1]."""
        z = _logit(np.atleast_2d(proba)[:, 1])
        at_least = 1.0 / (1.0 + np.exp(-(self.slope_ * z[:, None] + np.asarray(self.cuts_)[None, :])))
        p = np.empty((len(z), at_least.shape[1] + 1), dtype=np.float64)
        p[:, 0] = 1.0 - at_least[:, 0]
        p[:, 1:-1] = at_least[:, :-1] - at_least[:, 1:]
        p[:, -1] = at_least[:, -1] - 0.0
        # clip to [0, 1] then floor at _EPS, as one clip (the same values: 0 < _EPS < 1, NaN stays NaN)
        p = _clip(p, _EPS, 1.0)
        return p / p.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class RankPrior:
    """A fixed starting score that the trees of a binary model correct (`boost_from_baseline` in a spec).

    The score is the heuristic baseline's: the mean percentile rank of some numeric features (1 - rank
    for `negative` ones), each rank taken against the TRAINING rows' values, as a logit. The reference
    values are carried here (as sorted unique values with cumulative shares, so a rank is exactly the
    share of training values <= x, missing values counted as -inf like `HeuristicBaseline`), so
    `clientlens score`, serving and training apply the same transform. The booster was trained with
    this margin as LightGBM `init_score`; `TabularModel.raw_from_matrix` adds it back.
    """

    EPS = 1e-3  # ranks are clipped to [EPS, 1 - EPS] before the logit

    def __init__(
        self,
        columns: list[str],
        signs: list[float],
        index: list[int],
        values: list[np.ndarray],
        shares: list[np.ndarray],
    ):
        self.columns = list(columns)
        self.signs = [float(s) for s in signs]
        self.index = [int(i) for i in index]
        self.values = [np.asarray(v, dtype=np.float64) for v in values]
        self.shares = [np.asarray(c, dtype=np.float64) for c in shares]

    @classmethod
    def fit(
        cls, X: np.ndarray, features: list[str], columns: list[str], negative: list[str] | None = None
    ) -> RankPrior:
        """Reference values from the training matrix `X` (columns in `features` order)."""
        names = [*columns, *(negative or [])]
        missing = [c for c in names if c not in features]
        if missing:
            raise InputError(f"prior columns {missing} are not model features")
        index = [features.index(c) for c in names]
        values, shares = [], []
        for j in index:
            v = np.nan_to_num(np.asarray(X[:, j], dtype=np.float64), nan=-np.inf)
            u, counts = np.unique(v, return_counts=True)
            values.append(u)
            shares.append(np.concatenate([[0.0], np.cumsum(counts)]) / max(len(v), 1))
        signs = [1.0] * len(columns) + [-1.0] * len(negative or [])
        return cls(names, signs, index, values, shares)

    @property
    def description(self) -> str:
        signed = [c if s > 0 else f"-{c}" for c, s in zip(self.columns, self.signs, strict=True)]
        return f"logit of the mean percentile rank of {signed} (training rows)"

    def ranks(self, X: np.ndarray) -> np.ndarray:
        """(n, k) percentile ranks of the prior's columns (1 - rank for negative ones)."""
        out = np.empty((len(X), len(self.index)), dtype=np.float64)
        for m, (j, u, c, s) in enumerate(zip(self.index, self.values, self.shares, self.signs, strict=True)):
            v = _missing_low(np.asarray(X[:, j], dtype=np.float64))
            r = c[u.searchsorted(v, side="right")]
            out[:, m] = r if s > 0 else 1.0 - r
        return out

    @classmethod
    def _margin_of_ranks(cls, ranks: np.ndarray) -> np.ndarray:
        return _logit(_clip(ranks.mean(axis=1), cls.EPS, 1 - cls.EPS))

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The starting score (log-odds) of each row of the model matrix `X`."""
        if len(X) == 1 and 1 <= len(self.index) < 8:
            return self._margin_of_one(X)
        return self._margin_of_ranks(self.ranks(X))

    def _margin_of_one(self, X: np.ndarray) -> np.ndarray:
        """`margin` of one row with Python floats (a single customer's request, #18): the same ranks, and their
        mean summed in order from 0.0, as numpy's reduction sums a row of fewer than 8 values (8 or more: it
        sums in 8 lanes), so the same bits (tests/training/test_model.py)."""
        row = X[0]
        ranks = []
        for j, u, c, s in zip(self.index, self.values, self.shares, self.signs, strict=True):
            v = float(row[j])
            r = float(c[u.searchsorted(v if v == v else -np.inf, side="right")])
            ranks.append(r if s > 0 else 1.0 - r)
        total = 0.0
        for r in ranks:
            total += r
        mean = total / len(ranks)
        return _logit(np.array([min(max(mean, self.EPS), 1 - self.EPS)]))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, k) exact Shapley values of the prior's columns, against a median customer (every rank
        0.5, margin 0): they sum to `margin(X)`, so reasons stay additive with the trees' contributions."""
        from math import factorial

        r = self.ranks(X)
        n, k = r.shape
        value = {}
        for mask in range(1 << k):
            value[mask] = self._margin_of_ranks(np.where([bool((mask >> m) & 1) for m in range(k)], r, 0.5))
        phi = np.zeros((n, k))
        for m in range(k):
            for mask in range(1 << k):
                if (mask >> m) & 1:
                    continue
                size = bin(mask).count("1")
                w = factorial(size) * factorial(k - size - 1) / factorial(k)
                phi[:, m] += w * (value[mask | (1 << m)] - value[mask])
        return phi


class TransitionPrior:
    """A multiclass model's fixed starting score: log P(future class | current class), so the trees learn
    only the change (`boost_from_baseline` with a `persistence` baseline, the tier task).

    The table is the persistence baseline's training transition matrix (Laplace-smoothed counts of
    future class given the current one, `training.baselines.PersistenceBaseline`); a row whose current
    class is missing or unseen starts at the training class shares. `column` is a categorical model
    feature (the current tier); `codes[c]` is the class index of its category code `c` (-1: not a
    class). Carried in the model, so training (`init_score`), `clientlens score` and serving add the
    same margin (`TabularModel.raw_from_matrix`).
    """

    ALPHA = 1.0  # Laplace pseudo-count per cell, as PersistenceBaseline

    def __init__(
        self,
        column: str,
        index: int,
        codes: list[int],
        log_transition: np.ndarray,
        log_share: np.ndarray,
        strength: float = 1.0,
    ):
        self.columns = [column]
        self.index = [int(index)]
        self.codes = [int(c) for c in codes]
        self.log_transition = np.asarray(log_transition, dtype=np.float64)  # (k + 1, k); row k: current unknown
        self.log_share = np.asarray(log_share, dtype=np.float64)  # (k,) training class shares
        # The margin is strength x log P: P ** strength, renormalised by the softmax (a tempered prior). At 1 a
        # stayer's hessian p(1 - p) is ~0.003, so trees barely rank among stayers (upgrade AUC fell to 0.87 at 4k).
        self.strength = float(strength)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        features: list[str],
        categories: Mapping[str, list[str]],
        column: str,
        classes: list[str],
        strength: float = 1.0,
    ) -> TransitionPrior:
        """The transition table from the training matrix `X` (features order) and class indices `y`."""
        if column not in categories:
            raise InputError(f"prior column {column!r} is not a categorical model feature")
        lookup = {c: i for i, c in enumerate(classes)}
        codes = [lookup.get(str(v), -1) for v in categories[column]]
        k = len(classes)
        prior = cls(column, features.index(column), codes, np.zeros((k + 1, k)), np.zeros(k), strength)
        current, y = prior.current(X), np.asarray(y, dtype=int)
        counts = np.full((k + 1, k), cls.ALPHA)
        np.add.at(counts, (current, y), 1.0)
        share = np.bincount(y, minlength=k) + cls.ALPHA
        counts[k] = share  # current class unknown: the training class shares
        prior.log_transition = np.log(counts / counts.sum(axis=1, keepdims=True))
        prior.log_share = np.log(share / share.sum())
        return prior

    @property
    def description(self) -> str:
        return (
            f"{self.strength:g} x log P(future class | current {self.columns[0]!r}), "
            "the training transition matrix (Laplace)"
        )

    def current(self, X: np.ndarray) -> np.ndarray:
        """(n,) class index of each row's current class; k where it is missing or not a class."""
        k = self.log_transition.shape[1]
        if len(X) == 1:  # one customer (#18): the same rule on one Python float, without ~8 numpy calls
            one = float(X[0, self.index[0]])
            at = int(one) if math.isfinite(one) and 0 <= one < len(self.codes) else len(self.codes)
            cls = self.codes[at] if at < len(self.codes) else -1
            return np.array([k if cls < 0 else cls], dtype=np.int64)
        code = np.asarray(X[:, self.index[0]], dtype=np.float64)
        table = np.append(np.asarray(self.codes, dtype=np.int64), -1)
        ok = np.isfinite(code) & (code >= 0) & (code < len(self.codes))
        out = table[np.where(ok, code, len(self.codes)).astype(np.int64)]
        return np.where(out < 0, k, out)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """(n, k) starting scores (strength x log-probabilities) of each row of the model matrix `X`."""
        return self.strength * self.log_transition[self.current(X)]

    def contributions(self, X: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """(n, 1) the current class's share of the explained class `chosen`: strength x (log P(chosen | current)
        minus log P(chosen)), i.e. how much more (or less) likely the current tier makes that class."""
        rows = np.arange(len(X))
        return (self.margin(X)[rows, chosen] - self.strength * self.log_share[chosen])[:, None]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TabularModel:
    """Feature list + category maps + booster + calibrator + classes + thresholds (+ an optional prior).

    - `predict_proba(frame) -> (n, classes)` calibrated; binary gives `[1-p, p]`; `ordinal` (a binary
      booster for the top class + `OrdinalCalibrator`) gives one column per ordered class.
    - `predict(frame)`: class labels (binary: 0/1 at `thresholds['positive']`), regression values.
    - `reasons(frame, top_k)`: top contributions per row from LightGBM `pred_contrib`.
    """

    def __init__(
        self,
        *,
        task: str,
        kind: str,
        features: list[str],
        categories: dict[str, list[str]],
        booster: Any,
        calibrator: Calibrator | None,
        classes: list[str] | None,
        thresholds: dict[str, float] | None = None,
        metadata: dict[str, Any] | None = None,
        prior: RankPrior | TransitionPrior | None = None,
    ):
        self.task = task
        self.kind = kind
        self.features = list(features)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.booster = booster
        self.calibrator = calibrator
        self.classes = list(classes) if classes else None
        self.thresholds = dict(thresholds or {})
        self.metadata = dict(metadata or {})
        # The booster learned corrections to this fixed score (binary/ordinal: `RankPrior`, multiclass:
        # `TransitionPrior`); None for most models.
        self.prior = prior
        self._predictor = None
        self._build_lookups()

    # -- pickling: keep the booster as its text model (portable across LightGBM builds) -------------
    def _build_lookups(self) -> None:
        self._lookup = {c: {v: float(i) for i, v in enumerate(cats)} for c, cats in self.categories.items()}
        self._index: dict[str, pd.Index] = {}  # built lazily by `_codes`
        # `_small_matrix`: (the features list it was built for, [(feature, its category look-up or None)],
        # a getter of all feature columns at once, [(position, look-up)] of the categorical ones)
        self._feature_lookups: tuple | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("booster", "_lookup", "_index", "_predictor", "_feature_lookups", "_features_cache")
        }
        state["booster_model"] = self.booster.model_to_string()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import lightgbm as lgb

        model = state.pop("booster_model")
        state.setdefault("prior", None)  # models pickled before priors existed
        self.__dict__.update(state)
        self.booster = lgb.Booster(model_str=model)
        self._predictor = None
        self._build_lookups()

    # -- preprocessing ------------------------------------------------------------------------------
    @property
    def categorical(self) -> list[str]:
        return list(self.categories)

    def matrix(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Raw features (a frame or a mapping of column → array) to the float matrix the booster was trained on."""
        # a dict holding every feature (a request's columns): one set comparison instead of a look-up per feature
        covered = type(data) is dict and data.keys() >= self._feature_set()
        missing = [] if covered else [f for f in self.features if f not in data]
        if missing:
            raise InputError(f"model {self.task}: missing feature column(s) {missing[:10]}")
        n = len(data[self.features[0]])
        if n <= 32:
            X = self._small_matrix(data)
            if X is not None:
                return X
        return self._column_matrix(data)

    def _feature_set(self) -> frozenset[str]:
        cached = self.__dict__.get("_features_cache")
        if cached is None or cached[0] is not self.features:
            cached = self.__dict__["_features_cache"] = (self.features, frozenset(self.features))
        return cached[1]

    def _column_matrix(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """`matrix` one feature at a time: the general path (and the reference `_small_matrix` is tested
        against). A column that does not convert as a whole is coerced with `pd.to_numeric` (junk -> NaN)."""
        n = len(data[self.features[0]])
        X = np.empty((n, len(self.features)), dtype=np.float64)
        for j, f in enumerate(self.features):
            col = data[f]
            lookup = self._lookup.get(f)
            if lookup is not None:
                values = np.asarray(col, dtype=object)
                if n <= 32:
                    X[:, j] = [lookup.get(_as_key(v), np.nan) for v in values]
                else:
                    X[:, j] = self._codes(f, values, lookup)
                continue
            try:
                X[:, j] = np.asarray(col, dtype=np.float64)
            except (TypeError, ValueError):
                X[:, j] = pd.to_numeric(pd.Series(np.asarray(col, dtype=object)), errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return X

    def _small_matrix(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray | None:
        """`matrix` for a few rows (a single customer's request, #18) as ONE float conversion of the
        columns instead of one per feature: each value goes through the same float64 conversion as
        `np.asarray(col, dtype=np.float64)`, category codes through the same `lookup.get(_as_key(v))`.
        None when some column does not convert as a whole (`matrix` then takes its per-column path,
        which coerces that column with `pd.to_numeric`)."""
        cached = self._feature_lookups
        if cached is None or cached[0] is not self.features:
            pairs = [(f, self._lookup.get(f)) for f in self.features]
            coded = [(j, lookup) for j, (_f, lookup) in enumerate(pairs) if lookup is not None]
            cached = self._feature_lookups = (self.features, pairs, operator.itemgetter(*self.features), coded)
        pairs = cached[1]
        if len(data[self.features[0]]) == 1:  # one customer: one list of scalars, converted at once
            got = cached[2](data)
            columns = got if len(pairs) > 1 else (got,)
            if set(map(type, columns)) == {np.ndarray}:
                row = [col[0] for col in columns]
            else:  # e.g. Series: by position, as `np.asarray(col)` reads them
                row = [col[0] if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)[0] for col in columns]
            for j, lookup in cached[3]:
                row[j] = lookup.get(_as_key(row[j]), np.nan)
            try:
                one = np.array([row], dtype=np.float64)
            except (TypeError, ValueError):
                return None
            return one if one.shape == (1, len(pairs)) else None
        columns = []
        for f, lookup in pairs:
            col = data[f]
            if lookup is None:
                columns.append(col)
            else:
                columns.append([lookup.get(_as_key(v), np.nan) for v in np.asarray(col, dtype=object)])
        try:
            block = np.array(columns, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if block.ndim != 2:  # a ragged or nested value: leave it to the per-column path
            return None
        return np.ascontiguousarray(block.T)

    def _codes(self, feature: str, values: np.ndarray, lookup: dict[Any, float]) -> np.ndarray:
        """Category codes of an object array, vectorised: a hash look-up of the exact strings
        (`Index.get_indexer`), then the per-value rule of `_as_key` for the misses only
        (missing values, unknown categories, non-string values), so the result is exactly
        `lookup.get(_as_key(v), NaN)` for every value."""
        index = self._index.get(feature)
        if index is None:
            index = self._index[feature] = pd.Index(self.categories[feature], dtype=object)
        if not index.is_unique:  # duplicated categories: the dict keeps the last code
            return np.array([lookup.get(_as_key(v), np.nan) for v in values], dtype=np.float64)
        pos = index.get_indexer(values)
        codes = pos.astype(np.float64)
        miss = np.flatnonzero(pos < 0)
        if len(miss):
            codes[miss] = [lookup.get(_as_key(v), np.nan) for v in values[miss]]
        return codes

    def frame_for(self, matrix: np.ndarray) -> pd.DataFrame:
        """Inverse of `matrix` for display: codes back to category strings."""
        out = pd.DataFrame(matrix, columns=self.features)
        for c, cats in self.categories.items():
            codes = out[c].to_numpy()
            out[c] = [cats[int(v)] if v == v else None for v in codes]
        return out

    # -- prediction ---------------------------------------------------------------------------------
    def use_predictor(self, predictor: Any) -> None:
        """Predict with `predictor(X)` (a compiled copy of the booster, `serving.compiled`) instead of
        `Booster.predict`; it must return exactly what `Booster.predict(X)` returns. `None` reverts.
        Not pickled: a loaded model always starts on its booster."""
        self._predictor = predictor

    @property
    def predictor(self) -> Any:
        """The function predicting in place of `Booster.predict` (`use_predictor`), or None."""
        return self._predictor

    def raw_from_matrix(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated model output: (n, classes) probabilities, or (n,) for regression.

        With a prior (binary), the booster's log-odds plus the prior's margin: the booster was trained
        with that margin as its `init_score`, which LightGBM does not store in the model (multiclass:
        `_raw_with_transition_prior`)."""
        if isinstance(self.prior, TransitionPrior):
            return self._raw_with_transition_prior(X)
        if self.prior is not None and self._predictor is None:
            raw = _sigmoid(self.booster.predict(X, raw_score=True, num_threads=1) + self.prior.margin(X))
        else:
            raw = self._predictor(X) if self._predictor is not None else self.booster.predict(X, num_threads=1)
            if self.prior is not None:  # a compiled predictor returns Booster.predict's probabilities
                p = np.asarray(raw, dtype=np.float64)
                with np.errstate(divide="ignore"):
                    raw = _sigmoid(np.log(p) - np.log1p(-p) + self.prior.margin(X))
        if self.kind in ("binary", "ordinal"):
            raw = np.asarray(raw)
            low = 1.0 - raw
            two = np.empty((len(raw), 2), dtype=np.result_type(low, raw))  # = column_stack([low, raw]), cheaper
            two[:, 0] = low
            two[:, 1] = raw
            return two
        return raw

    def _raw_with_transition_prior(self, X: np.ndarray) -> np.ndarray:
        """Multiclass with a `TransitionPrior`: softmax(booster raw scores + the prior's log-probabilities).

        A compiled predictor returns Booster.predict's softmax probabilities `p`; log(p) is the raw score
        less a per-row constant, which softmax ignores, so both paths give the same probabilities."""
        assert isinstance(self.prior, TransitionPrior)
        if self._predictor is None:
            raw = np.asarray(self.booster.predict(X, raw_score=True, num_threads=1), dtype=np.float64)
        else:
            with np.errstate(divide="ignore"):
                raw = np.log(np.asarray(self._predictor(X), dtype=np.float64))
        return _softmax(raw.reshape(len(X), -1) + self.prior.margin(X))

    def proba_from_matrix(self, X: np.ndarray) -> np.ndarray:
        return self.calibrate(self.raw_from_matrix(X), X)

    def calibrate(self, raw: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The calibrator applied to `raw` (`raw_from_matrix(X)`, or held-out scores of the same rows
        in training): the one place that knows a calibrator may read the matrix too (the risk
        posterior, `training.appetite.AppetitePosterior`, reads the questionnaire from `X`, #12).
        Regression, or no calibrator: `raw` unchanged."""
        if self.kind == "regression" or self.calibrator is None:
            return raw
        if getattr(self.calibrator, "needs_matrix", False):
            posterior: Any = self.calibrator
            return posterior.transform(raw, X)
        return self.calibrator.transform(raw)

    def predict_proba(self, frame: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        if self.kind == "regression":
            raise InputError(f"model {self.task}: a regression model has no probabilities")
        return self.proba_from_matrix(self.matrix(frame))

    def labels_from_proba(self, proba: np.ndarray) -> np.ndarray:
        if self.kind == "binary":
            return (proba[:, 1] >= self.thresholds.get("positive", 0.5)).astype(int)
        return np.asarray(self.classes, dtype=object)[np.argmax(proba, axis=1)]

    def predict(self, frame: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        X = self.matrix(frame)
        if self.kind == "regression":
            return self.raw_from_matrix(X)
        return self.labels_from_proba(self.proba_from_matrix(X))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions as a frame: `prediction` plus `proba` (binary) or `proba_<class>` (multiclass)."""
        X = self.matrix(frame)
        if self.kind == "regression":
            return pd.DataFrame({"prediction": self.raw_from_matrix(X)}, index=frame.index)
        proba = self.proba_from_matrix(X)
        out = {"prediction": self.labels_from_proba(proba)}
        if self.kind == "binary":
            out["proba"] = proba[:, 1]
        else:
            out.update({f"proba_{c}": proba[:, i] for i, c in enumerate(self.classes or [])})
        return pd.DataFrame(out, index=frame.index)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, features) contributions to the explained class's raw score: LightGBM's `pred_contrib`
        for the predicted class (multiclass) or the positive one, plus a prior's share (Shapley)."""
        contrib = np.asarray(self.booster.predict(X, pred_contrib=True, num_threads=1))
        nf = len(self.features)
        chosen = None
        if self.kind == "multiclass":  # ordinal: one booster score, contributions towards the top class
            k = len(self.classes or [])
            contrib = contrib.reshape(len(X), k, nf + 1)
            chosen = np.argmax(self.proba_from_matrix(X), axis=1)
            contrib = contrib[np.arange(len(X)), chosen, :]
        contrib = contrib[:, :nf]
        if isinstance(self.prior, TransitionPrior) and chosen is not None:  # the current tier's share
            contrib = contrib.copy()
            contrib[:, self.prior.index[0]] += self.prior.contributions(X, chosen)[:, 0]
        elif isinstance(self.prior, RankPrior):  # the prior's margin, split over its columns (Shapley, additive)
            contrib = contrib.copy()
            np.add.at(contrib, (slice(None), self.prior.index), self.prior.contributions(X))  # type: ignore[arg-type]  # numpy's stubs omit tuple-of-slice indices
        return contrib

    def leaf_indices(self, X: np.ndarray) -> np.ndarray:
        """(n, trees) int64: the leaf each row reaches in each tree (LightGBM's `pred_leaf`)."""
        return np.asarray(self.booster.predict(X, pred_leaf=True, num_threads=1), dtype=np.int64).reshape(len(X), -1)

    def grouped_contributions(
        self,
        X: np.ndarray,
        groups: np.ndarray,
        n_groups: int,
        *,
        exact: bool = False,
        leaves: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, n_groups) contributions to the explained class's raw score summed by feature group
        (`groups[j]` = group of feature j, -1 = left out).

        `exact`: TreeSHAP summed by group, as `contributions` (LightGBM `pred_contrib`) summed by group,
        computed from per-leaf tables (`training.treeshap`, 5-10x cheaper per row; tested against
        `pred_contrib`; a row whose split decisions do not reproduce LightGBM's `pred_leaf` falls back to
        `pred_contrib`). Otherwise the trees' path (Saabas) attributions: 50-100x cheaper per row (a
        gather of per-leaf tables, `PathAttribution`), the same total per row (both add up to the raw
        score less the trees' expected value), but not the same split between groups;
        `training.segments.churn_drivers` falls back to `exact` where the path vote is close (#18,
        benchmarks/bench_drivers.py). Either way the prior's exact share is added. Multiclass models
        always use `pred_contrib`. `leaves`: `leaf_indices(X)` when the caller has it already."""
        groups = np.asarray(groups, dtype=np.int64)
        if self.kind == "multiclass":
            return group_columns(self.contributions(X), groups, n_groups)
        if leaves is None:
            leaves = self.leaf_indices(X)
        if exact:
            from training.treeshap import grouped_treeshap

            out = grouped_treeshap(self.booster, X, leaves, groups, n_groups)
        else:
            out = path_attribution(self.booster).grouped(leaves, groups, n_groups)
        if isinstance(self.prior, RankPrior):  # the prior's margin, exact Shapley over its columns
            prior_groups = groups[self.prior.index]
            keep = prior_groups >= 0
            share = self.prior.contributions(X)
            for m in np.flatnonzero(keep):
                out[:, prior_groups[m]] += share[:, m]
        return out

    def reasons(self, frame: pd.DataFrame | Mapping[str, Any], top_k: int = 3, *, matrix: np.ndarray | None = None):
        """Per row, the `top_k` features by |contribution| to the predicted class (raw score units).

        Each reason is `{"feature", "value", "contribution"}`; multiclass reasons explain the
        predicted class, binary ones the positive class (positive contribution = more likely).
        """
        X = self.matrix(frame) if matrix is None else matrix
        contrib = self.contributions(X)
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top_k]
        out = []
        for i in range(len(X)):
            row = []
            for j in order[i]:
                f = self.features[j]
                v = X[i, j]
                if f in self.categories:
                    value: Any = self.categories[f][int(v)] if v == v else None
                else:
                    value = None if v != v else float(v)
                row.append({"feature": f, "value": value, "contribution": float(contrib[i, j])})
            out.append(row)
        return out

    def importance(self) -> pd.Series:
        gain = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.features).sort_values(ascending=False)


def group_columns(contrib: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-feature columns (`contrib`, rows x features) summed into `n_groups` columns: feature j adds to
    group `groups[j]`; a negative group drops the feature (the churn drivers' families, training.segments)."""
    out = np.zeros((len(contrib), n_groups))
    for j in np.flatnonzero(groups >= 0):
        out[:, groups[j]] += contrib[:, j]
    return out


class PathAttribution:
    """Saabas path attributions of a LightGBM booster, precomputed per leaf from its tree dump.

    A row's attribution in one tree: along its root-to-leaf path, each split's feature gets the change
    in the node's expected value (leaf values weighted by training counts, TreeSHAP's expectation).
    Per tree they sum to the leaf value less the root's expectation, so summed over the trees they add
    up to the raw score less the bias, as `pred_contrib` does. Scoring a row is then a gather of its
    leaves' precomputed vectors (`Booster.predict(pred_leaf=True)`), with no per-row tree walk.
    """

    def __init__(self, booster: Any):
        trees = booster.dump_model()["tree_info"]
        paths: list[dict[int, list[tuple[int, float]]]] = [_leaf_paths(t["tree_structure"]) for t in trees]
        self.offsets = np.cumsum([0, *(len(p) for p in paths)])[:-1]
        depth = max([len(path) for p in paths for path in p.values()] + [1])
        n_leaves = int(sum(len(p) for p in paths))
        self.features = np.zeros((n_leaves, depth), dtype=np.int64)
        self.deltas = np.zeros((n_leaves, depth))  # padding: feature 0, delta 0 (adds nothing)
        for offset, leaves in zip(self.offsets, paths, strict=True):
            for leaf, path in leaves.items():
                for k, (f, d) in enumerate(path):
                    self.features[offset + leaf, k], self.deltas[offset + leaf, k] = f, d
        self._tables: dict[tuple[int, bytes], np.ndarray] = {}

    def table(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """(leaves, n_groups): each leaf's path attribution summed by feature group (cached per grouping)."""
        key = (n_groups, groups.tobytes())
        table = self._tables.get(key)
        if table is None:
            g = groups[self.features]
            table = np.zeros((len(self.features), n_groups + 1))  # last column: features left out
            rows = np.broadcast_to(np.arange(len(self.features))[:, None], g.shape)
            np.add.at(table, (rows, np.where(g >= 0, g, n_groups)), self.deltas)
            table = self._tables.setdefault(key, np.ascontiguousarray(table[:, :n_groups]))
        return table

    def grouped(self, leaves: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """(n, n_groups) attributions of rows given their (n, trees) leaf indices."""
        return self.table(groups, n_groups)[leaves + self.offsets[None, :]].sum(axis=1)


def _leaf_paths(root: dict[str, Any]) -> dict[int, list[tuple[int, float]]]:
    """{leaf index: [(split feature, change in expected value), ...] along its path} of one dumped tree."""
    if "leaf_index" in root:
        return {int(root["leaf_index"]): []}
    expected: dict[int, tuple[float, float]] = {}

    def expectation(node: dict[str, Any]) -> tuple[float, float]:
        if "leaf_index" in node:
            return float(node["leaf_value"]), float(node.get("leaf_count", 0))
        (vl, cl), (vr, cr) = expectation(node["left_child"]), expectation(node["right_child"])
        count = cl + cr
        value = (vl * cl + vr * cr) / count if count > 0 else (vl + vr) / 2
        expected[id(node)] = (value, count)
        return value, count

    expectation(root)
    out: dict[int, list[tuple[int, float]]] = {}
    stack: list[tuple[dict[str, Any], list[tuple[int, float]]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if "leaf_index" in node:
            out[int(node["leaf_index"])] = path
            continue
        here, feature = expected[id(node)][0], int(node["split_feature"])
        for side in ("left_child", "right_child"):
            child = node[side]
            value = float(child["leaf_value"]) if "leaf_index" in child else expected[id(child)][0]
            stack.append((child, [*path, (feature, value - here)]))
    return out


_PATHS: weakref.WeakKeyDictionary[Any, PathAttribution] = weakref.WeakKeyDictionary()


def path_attribution(booster: Any) -> PathAttribution:
    """The booster's `PathAttribution`, built once per booster (serving builds it at model load)."""
    paths = _PATHS.get(booster)
    if paths is None:
        paths = _PATHS.setdefault(booster, PathAttribution(booster))
    return paths


def register_path_attribution(booster: Any, paths: PathAttribution) -> None:
    """Make `paths` the booster's `PathAttribution` (tables built elsewhere for this booster, e.g. read back
    from `serving.models_store`'s store), so `path_attribution(booster)` returns it instead of building."""
    if not isinstance(paths, PathAttribution):
        raise TypeError(f"expected a PathAttribution, got {type(paths).__name__}")
    _PATHS[booster] = paths


def _as_key(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    return v if isinstance(v, str) else str(v)


class ClientlensPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]  # mlflow.pyfunc re-exports it lazily
    """The one registered artefact: a pyfunc whose `core` is the `TabularModel`.

    `predict` returns `prediction` and probability columns; serving should call `core`. Its input is
    hinted `pd.DataFrame`, a hint MLflow infers no schema from (the signature is given at logging) and
    validates nothing by; without a hint MLflow warned at every import that one should be added.
    """

    def __init__(self, core: TabularModel):
        self.core = core

    def predict(self, context, model_input: pd.DataFrame, params=None):
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.core.predict_frame(frame)
