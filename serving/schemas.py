"""Request and response models of the HTTP API, generated from the feature registry.

One declaration per feature (`features.registry`) feeds the feature table, this request
model and the drift columns, so the API can never drift from what the models were trained on.

Input rules (documented in the OpenAPI schema, enforced by pydantic before any model runs):
- every feature is optional; a missing or `null` feature is scored as missing, exactly as a
  missing value in the feature table is during training (NaN, LightGBM's missing branch);
- numbers are strict: JSON numbers only (no strings, no booleans), finite (NaN/Infinity are
  rejected), `int` features take whole numbers (`3` or `3.0`, not `3.5`), and values must lie
  within the feature's bounds when the registry declares them;
- booleans are JSON `true`/`false`;
- categories must be one of the registry's categories: an unknown category is **rejected**
  (400, naming the field and the allowed values) rather than silently scored as missing,
  because at the API boundary it is almost always a caller's typo or a stale vocabulary;
- unknown fields are rejected (`extra="forbid"`), as are empty batches and batches over
  `Settings.max_batch` customers.

The same rules, column-wise, are `features.requests.table_to_columns` (`/score_arrow`, batch
scoring).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, create_model
from pydantic_core import PydanticCustomError

from features.requests import MAX_CUSTOMER_ID, MAX_SAFE_INT, FeatureLike, bounds, is_whole, summarise_errors

__all__ = ["MAX_CUSTOMER_ID", "MAX_SAFE_INT", "FeatureLike", "summarise_errors"]


def _whole(value: float) -> float:
    if not is_whole(value):
        raise PydanticCustomError("multiple_of", "Input should be a multiple of 1 (a whole number)")
    return value


def feature_annotation(feature: FeatureLike) -> Any:
    """The pydantic type of one feature (always optional: `None` means missing)."""
    description = (feature.description or "").strip() or feature.name
    window = getattr(feature, "window", None)
    if window:
        description = f"{description} (window: {window})"
    limits: dict[str, Any] = dict(bounds(feature))
    inner: Any
    if feature.dtype == "float":
        inner = Annotated[float, Field(strict=True, allow_inf_nan=False, **limits)]
    elif feature.dtype == "int":
        # Whole numbers, stored as float64 in feature tables: accept 3 and 3.0, reject 3.5 and
        # 1e-15. `multiple_of=1` documents it in the schema, but pydantic checks it with a
        # tolerance; `_whole` is the exact rule the columns follow.
        inner = Annotated[
            float, Field(strict=True, allow_inf_nan=False, multiple_of=1, **limits), AfterValidator(_whole)
        ]
        description = f"{description} Whole number."
    elif feature.dtype == "bool":
        inner = StrictBool
    elif feature.dtype == "category":
        categories = tuple(feature.categories or ())
        if not categories:
            raise ValueError(f"category feature {feature.name!r} declares no categories")
        inner = Literal[categories]
    else:
        raise ValueError(f"feature {feature.name!r} has unsupported dtype {feature.dtype!r}")
    return Annotated[inner | None, Field(default=None, description=description)]


CustomerId = Annotated[
    int,
    Field(strict=True, ge=0, le=MAX_CUSTOMER_ID, description="The bank's customer id (int64).", examples=[1001]),
]


def customer_model(features: Sequence[FeatureLike]) -> type[BaseModel]:
    """`Customer`: `customer_id` plus every feature as an optional, typed field."""
    fields: dict[str, Any] = {"customer_id": (CustomerId, ...)}
    for feature in features:
        if feature.name in fields:
            raise ValueError(f"duplicate feature {feature.name!r}")
        fields[feature.name] = (feature_annotation(feature), None)
    return create_model(
        "Customer",
        __config__=ConfigDict(extra="forbid", title="Customer"),
        __doc__="One customer's features. Missing or null features are scored as missing.",
        **fields,
    )


def score_request_model(customer: type[BaseModel], max_batch: int) -> type[BaseModel]:
    """`ScoreRequest`: `{"customers": [...], "explain": false, "top_k": 3}` (1 to `max_batch` customers)."""
    return create_model(
        "ScoreRequest",
        __config__=ConfigDict(extra="forbid", title="ScoreRequest"),
        # a field tuple built at runtime: the stubs' TypeForm cannot express it (the code is pydantic's documented use)
        customers=(  # type: ignore[arg-type]
            Annotated[  # type: ignore[maybe-unrecognized-str-typeform]
                list[customer],  # type: ignore[valid-type]
                Field(min_length=1, max_length=max_batch, description=f"1 to {max_batch} customers."),
            ],
            ...,
        ),
        explain=(StrictBool, Field(default=False, description="Add the top reasons of each prediction.")),
        top_k=(Annotated[int, Field(strict=True, ge=1, le=20)], Field(default=3, description="Reasons per model.")),
    )


def score_ids_request_model(max_batch: int) -> type[BaseModel]:
    """`ScoreIdsRequest`: `{"customer_ids": [...], "explain": false, "top_k": 3}` (1 to `max_batch` ids)."""
    return create_model(
        "ScoreIdsRequest",
        __config__=ConfigDict(extra="forbid", title="ScoreIdsRequest"),
        # a field tuple built at runtime: the stubs' TypeForm cannot express it (the code is pydantic's documented use)
        customer_ids=(  # type: ignore[arg-type]
            Annotated[  # type: ignore[maybe-unrecognized-str-typeform]
                list[CustomerId],
                Field(min_length=1, max_length=max_batch, description=f"1 to {max_batch} customer ids."),
            ],
            ...,
        ),
        explain=(StrictBool, Field(default=False, description="Add the top reasons of each prediction.")),
        top_k=(Annotated[int, Field(strict=True, ge=1, le=20)], Field(default=3, description="Reasons per model.")),
    )


# --- responses -----------------------------------------------------------------------------


class Reason(BaseModel):
    """One driver of a prediction, from LightGBM's per-prediction contributions (raw score units;
    positive = towards the predicted class, or towards churn)."""

    feature: str
    value: float | str | None = Field(description="The feature's value as scored (null = missing).")
    contribution: float


class TierScore(BaseModel):
    label: str = Field(description="Predicted value tier at the horizon (mass / affluent / hnw).")
    probabilities: dict[str, float] = Field(description="Calibrated probability per tier.")
    upgrade_probability: float | None = Field(
        default=None, description="Probability of a tier above the current one (null when the current tier is unknown)."
    )


class ChurnScore(BaseModel):
    probability: float = Field(description="Calibrated probability of churn within the horizon.")
    flag: bool = Field(description="Probability above the model's decision threshold.")
    driver: str | None = Field(
        default=None,
        description="For a flagged customer, why they are likely to leave (rate_gap / service_incidents / "
        "disengagement / life_event / other), from the churn model's contributions by feature family.",
    )


class RiskScore(BaseModel):
    label: str = Field(
        description="Risk appetite revealed by behaviour: conservative / balanced / aggressive, learned from "
        "customers free to act on their appetite."
    )
    probabilities: dict[str, float] = Field(description="Calibrated probability per risk class of the model.")
    hidden_aggressive: bool = Field(
        description="Rated conservative but behaves like an aggressive investor: a candidate for a "
        "suitability re-assessment (never an automatic product push)."
    )
    stated: str | None = Field(default=None, description="The questionnaire's risk class at T (null if unknown).")
    gap: int | None = Field(
        default=None,
        description="Revealed class minus stated class, -2..+2 (positive: more appetite than the questionnaire says).",
    )


class CustomerScore(BaseModel):
    customer_id: int
    tier: TierScore
    churn: ChurnScore
    risk_appetite: RiskScore
    lifecycle_stage: str | None = Field(default=None, description="Life-cycle stage from the features at T.")
    relationship_depth: str | None = Field(default=None, description="basic / multi_product / ecosystem at T.")
    segment: str = Field(description="The four-dimensional class tier/risk/lifecycle/depth.")
    business_segment: str = Field(description="The bank's own class (configured scheme; default eight classes).")
    next_action: str
    reasons: dict[str, list[Reason]] | None = Field(
        default=None, description="Top reasons per model (`tier`, `churn`, `risk`), when `explain` is true."
    )


class ModelVersions(BaseModel):
    tier: str
    churn: str
    risk: str


class ScoreResponse(BaseModel):
    request_id: str
    versions: ModelVersions
    results: list[CustomerScore]


class ItemError(BaseModel):
    index: int = Field(description="Position of the id in the request.")
    customer_id: int
    error: str


class ScoreIdsResponse(BaseModel):
    request_id: str
    versions: ModelVersions
    as_of: str | None = Field(default=None, description="As-of date of the feature table scored.")
    results: list[CustomerScore]
    errors: list[ItemError] = Field(description="Ids that could not be scored, with the reason.")


class ModelInfo(BaseModel):
    task: str
    name: str = Field(description="Registered model name in MLflow.")
    version: str = Field(description="MLflow model version being served.")
    aliases: list[str]
    bento_tag: str = Field(description="Tag of the model in the BentoML model store.")
    run_id: str | None = None
    trained_at: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    compiled: bool = Field(
        default=False, description="Predicting with the trees compiled to native code (verified against LightGBM)."
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


# --- request -> frame -------------------------------------------------------------------------


def customers_to_columns(
    customers: Sequence[BaseModel], features: Sequence[FeatureLike]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Customer ids and one array per feature, typed as the model reads the feature table.

    Floats, ints and bools become float64 with NaN for missing (what LightGBM sees: bools
    as 1/0, exactly as the booster reads a bool column of the feature table); categories
    object arrays of strings with None for missing (the model artefact applies its own
    category map). One 2-D conversion for all numeric features keeps this cheap for big batches.
    """
    numeric = [f.name for f in features if f.dtype != "category"]
    categorical = [f.name for f in features if f.dtype == "category"]
    rows = [c.__dict__ for c in customers]
    n = len(rows)
    ids = np.fromiter((r["customer_id"] for r in rows), dtype=np.int64, count=n)
    columns: dict[str, np.ndarray] = {}
    if numeric:
        get = itemgetter(*numeric)
        matrix = np.array(list(map(get, rows)), dtype=np.float64).reshape(n, len(numeric))
        columns.update(zip(numeric, np.ascontiguousarray(matrix.T)))
    if categorical:
        get = itemgetter(*categorical)
        cats = np.empty((n, len(categorical)), dtype=object)
        cats[:] = np.array(list(map(get, rows)), dtype=object).reshape(n, len(categorical))
        columns.update(zip(categorical, cats.T.copy()))
    return ids, {f.name: columns[f.name] for f in features}
