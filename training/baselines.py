"""Stated baselines, fitted on the model's training rows and scored on the same test rows.

- `logistic`: scikit-learn logistic regression (ridge for regression) on median-imputed,
  standardised numeric features and one-hot categoricals;
- `persistence`: the class stays what `column` says now (future tier = current tier); its
  probabilities are the training transition matrix P(future | current), so the predicted
  class is the current one whenever tiers are sticky;
- `heuristic`: a hand-written score (mean percentile rank of named columns), turned into
  probabilities by binning it on the training rows;
- `prior`: training class frequencies / mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import InputError
from training.spec import BaselineSpec
from training.tune import PLAIN_LGBM


class Baseline:
    kind: str
    description: str

    def predict_proba(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, X: pd.DataFrame, extras: pd.DataFrame, class_index: int) -> np.ndarray:
        """A ranking score for one class (used for hidden-aggressive and upgrade rankings)."""
        return self.predict_proba(X, extras)[:, class_index]


def _column(name: str, X: pd.DataFrame, extras: pd.DataFrame) -> pd.Series:
    if name in X.columns:
        return X[name]
    if name in extras.columns:
        return extras[name]
    raise InputError(f"baseline column {name!r} is neither a feature nor in keep_columns")


class LogisticBaseline(Baseline):
    kind = "logistic"

    def __init__(self, task_kind: str, categorical: list[str], seed: int):
        self.task_kind = task_kind
        self.categorical = categorical
        self.seed = seed
        self.description = "logistic regression, standardised numeric features (median-imputed) + one-hot categoricals"

    def fit(self, X: pd.DataFrame, y: np.ndarray, weight: np.ndarray | None) -> LogisticBaseline:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        numeric = [c for c in X.columns if c not in self.categorical]
        cat = [c for c in X.columns if c in self.categorical]
        pre = ColumnTransformer(
            [
                (
                    "num",
                    Pipeline(
                        [
                            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                            ("scale", StandardScaler()),
                        ]
                    ),
                    numeric,
                ),
                (
                    "cat",
                    Pipeline(
                        [
                            ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=5)),
                        ]
                    ),
                    cat,
                ),
            ]
        )
        est = Ridge(alpha=1.0) if self.task_kind == "regression" else LogisticRegression(max_iter=2000, C=1.0)
        self.pipe_ = Pipeline([("pre", pre), ("model", est)])
        Xc = self._clean(X)
        self.pipe_.fit(Xc, y if self.task_kind == "regression" else y.astype(int), model__sample_weight=weight)
        return self

    def _clean(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        for c in X.columns:
            if c in self.categorical:
                X[c] = X[c].astype(object).where(X[c].notna(), "(missing)").astype(str)
            else:
                X[c] = pd.to_numeric(X[c], errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
        return X

    def predict_proba(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        Xc = self._clean(X)
        if self.task_kind == "regression":
            return self.pipe_.predict(Xc)
        return self.pipe_.predict_proba(Xc)


class PersistenceBaseline(Baseline):
    kind = "persistence"

    def __init__(self, column: str, classes: list[str]):
        self.column = column
        self.classes = classes
        self.description = (
            f"persistence: target = current {column!r} (probabilities from the training transition matrix)"
        )

    def fit(self, X: pd.DataFrame, extras: pd.DataFrame, y: np.ndarray) -> PersistenceBaseline:
        k = len(self.classes)
        current = self._current(X, extras)
        counts = np.ones((k + 1, k))  # Laplace; row k = current value unknown
        for c, t in zip(current, y.astype(int), strict=True):
            counts[c, t] += 1
        # The predicted class is the current class: put the argmax there whatever the counts say.
        self.transition_ = counts / counts.sum(axis=1, keepdims=True)
        return self

    def _current(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.classes)}
        vals = _column(self.column, X, extras).astype(object)
        return np.array([lookup.get(str(v), len(self.classes)) for v in vals], dtype=int)

    def predict_proba(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        current = self._current(X, extras)
        proba = self.transition_[current].copy()
        known = current < len(self.classes)
        # Persistence: the current class is the prediction; keep the transition probabilities but
        # make sure the argmax lands on the current class.
        rows = np.where(known)[0]
        top = proba[rows].max(axis=1)
        proba[rows, current[known]] = np.maximum(proba[rows, current[known]], top + 1e-6)
        return proba / proba.sum(axis=1, keepdims=True)


class HeuristicBaseline(Baseline):
    kind = "heuristic"

    def __init__(self, columns: list[str], negative: list[str], bins: int, task_kind: str, n_classes: int):
        self.columns = columns
        self.negative = negative
        self.bins = bins
        self.task_kind = task_kind
        self.n_classes = n_classes
        signed = [*columns, *(f"-{c}" for c in negative)]
        self.description = f"heuristic: mean percentile rank of {signed}, binned into {bins} score bins"

    def raw_score(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        parts = []
        for c, sign in [*((c, 1.0) for c in self.columns), *((c, -1.0) for c in self.negative)]:
            v = pd.to_numeric(_column(c, X, extras), errors="coerce").to_numpy(dtype=float)
            ref = self.sorted_[c]
            r = np.searchsorted(ref, np.nan_to_num(v, nan=-np.inf), side="right") / max(len(ref), 1)
            parts.append(r if sign > 0 else 1.0 - r)
        return np.mean(parts, axis=0)

    def fit(self, X: pd.DataFrame, extras: pd.DataFrame, y: np.ndarray) -> HeuristicBaseline:
        self.sorted_ = {}
        for c in [*self.columns, *self.negative]:
            v = pd.to_numeric(_column(c, X, extras), errors="coerce").to_numpy(dtype=float)
            self.sorted_[c] = np.sort(np.nan_to_num(v, nan=-np.inf))
        s = self.raw_score(X, extras)
        self.edges_ = np.unique(np.quantile(s, np.linspace(0, 1, self.bins + 1)[1:-1]))
        b = np.digitize(s, self.edges_)
        nb = len(self.edges_) + 1
        if self.task_kind == "regression":
            self.table_ = np.array([y[b == i].mean() if (b == i).any() else y.mean() for i in range(nb)])
        else:
            counts = np.ones((nb, self.n_classes))
            for i, t in zip(b, y.astype(int), strict=True):
                counts[i, t] += 1
            self.table_ = counts / counts.sum(axis=1, keepdims=True)
        return self

    def predict_proba(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        return self.table_[np.digitize(self.raw_score(X, extras), self.edges_)]

    def score(self, X: pd.DataFrame, extras: pd.DataFrame, class_index: int) -> np.ndarray:
        return self.raw_score(X, extras)


class PriorBaseline(Baseline):
    kind = "prior"
    description = "training class frequencies (or mean)"

    def __init__(self, task_kind: str, n_classes: int):
        self.task_kind = task_kind
        self.n_classes = n_classes

    def fit(self, y: np.ndarray, weight: np.ndarray | None) -> PriorBaseline:
        if self.task_kind == "regression":
            self.value_ = np.average(y, weights=weight)
        else:
            self.value_ = np.bincount(y.astype(int), weights=weight, minlength=self.n_classes)
            self.value_ = self.value_ / self.value_.sum()
        return self

    def predict_proba(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        if self.task_kind == "regression":
            return np.full(len(X), self.value_)
        return np.tile(self.value_, (len(X), 1))


def fit_baseline(
    spec: BaselineSpec,
    *,
    task_kind: str,
    classes: list[str] | None,
    categorical: list[str],
    X: pd.DataFrame,
    extras: pd.DataFrame,
    y: np.ndarray,
    weight: np.ndarray | None,
    seed: int,
) -> Baseline:
    """Fit the spec's baseline on the training rows."""
    k = len(classes) if classes else 0
    if spec.kind == "logistic":
        return LogisticBaseline(task_kind, categorical, seed).fit(X, y, weight)
    if spec.kind == "persistence":
        if not spec.column or task_kind != "multiclass":
            raise InputError("baseline.kind 'persistence' needs baseline.column and a multiclass target")
        return PersistenceBaseline(spec.column, classes or []).fit(X, extras, y)
    if spec.kind == "heuristic":
        if not spec.columns and not spec.negative:
            raise InputError("baseline.kind 'heuristic' needs baseline.columns")
        return HeuristicBaseline(spec.columns, spec.negative, spec.bins, task_kind, k).fit(X, extras, y)
    return PriorBaseline(task_kind, k).fit(y, weight)


class LgbmDefaultBaseline(Baseline):
    """`baseline_lgbm_default`: LightGBM with 300 trees, learning rate 0.03 and 15 leaves on the same rows
    the model refits on, categoricals as pandas `category` columns (their categories fixed from the whole
    table, so train and test codes agree). It is reported beside the task's own baseline; the tuned model
    should never lose to it."""

    kind = "lgbm_default"
    description = "LightGBM 300 trees, learning rate 0.03, 15 leaves, categoricals as category dtype"

    def __init__(
        self, task_kind: str, categories: dict[str, list[str]], seed: int, threads: int = 1, n_classes: int = 2
    ):
        self.task_kind = task_kind
        self.n_classes = n_classes
        self.categories = categories
        self.seed = seed
        self.threads = threads

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c in X.columns:
            if c in self.categories:
                values = X[c].astype(object).where(X[c].notna(), None)
                out[c] = pd.Categorical([None if v is None else str(v) for v in values], categories=self.categories[c])
            else:
                out[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
        return pd.DataFrame(out, index=X.index)

    def fit(self, X: pd.DataFrame, y: np.ndarray, weight: np.ndarray | None) -> LgbmDefaultBaseline:
        import lightgbm as lgb

        common: dict[str, Any] = {**PLAIN_LGBM, "random_state": self.seed, "n_jobs": self.threads, "verbose": -1}
        if self.task_kind == "regression":
            self.model_ = lgb.LGBMRegressor(**common)
            self.model_.fit(self._frame(X), y, sample_weight=weight)
        else:
            self.model_ = lgb.LGBMClassifier(**common)
            self.model_.fit(self._frame(X), y.astype(int), sample_weight=weight)
        return self

    def predict_proba(self, X: pd.DataFrame, extras: pd.DataFrame) -> np.ndarray:
        if self.task_kind == "regression":
            return np.asarray(self.model_.predict(self._frame(X)))
        proba = self.model_.predict_proba(self._frame(X))
        full = np.zeros((len(X), max(self.n_classes, proba.shape[1])))
        full[:, self.model_.classes_.astype(int)] = proba  # a class absent from training gets 0
        return full


def fit_lgbm_default(
    *,
    task_kind: str,
    categories: dict[str, list[str]],
    X: pd.DataFrame,
    y: np.ndarray,
    weight: np.ndarray | None,
    seed: int,
    threads: int = 1,
    n_classes: int = 2,
) -> LgbmDefaultBaseline:
    """Fit `baseline_lgbm_default` on the rows the model refits on (every non-test row)."""
    return LgbmDefaultBaseline(task_kind, categories, seed, threads, n_classes).fit(X, y, weight)
