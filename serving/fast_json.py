"""`POST /score` bodies decoded straight to columns with msgspec: the fast path for valid requests.

The pydantic request model (`serving.schemas`) builds one Python object per customer and field
before `customers_to_columns` turns them into arrays; for a 1,000-customer batch that is most of
the request's time. `FastRequests.decode` reads the same JSON with a msgspec decoder generated
from the same feature registry, with the same rules (strict types, no unknown fields, whole
numbers, bounds, categories, 1 to `max_batch` customers), and builds the arrays column-wise.

It only ever *accepts*: a body it cannot accept, for any reason, gives `None`, and the service
then hands the untouched body to the pydantic path, which answers (200, or the 400 naming every
field and reason exactly as before). So the error messages are pydantic's, and the fast path
can be no looser than the API as long as everything it accepts pydantic accepts with the same
values; `tests/serving/test_fast_json.py` checks that on valid, invalid and mutated bodies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from features.requests import MAX_CUSTOMER_ID, FeatureLike, bounds


@dataclass(frozen=True)
class Decoded:
    ids: np.ndarray
    columns: dict[str, np.ndarray]
    explain: bool
    top_k: int


def _field_type(feature: FeatureLike) -> Any:
    if feature.dtype in ("float", "int"):
        limits = bounds(feature)
        return Annotated[float, msgspec.Meta(ge=limits.get("ge"), le=limits.get("le"))] | None
    if feature.dtype == "bool":
        return bool | None
    if feature.dtype == "category":
        return Literal[tuple(feature.categories or ())] | None
    raise ValueError(f"feature {feature.name!r} has unsupported dtype {feature.dtype!r}")


class FastRequests:
    """A msgspec decoder of `ScoreRequest` bodies for `features` (see the module docstring)."""

    def __init__(self, features: Sequence[FeatureLike], max_batch: int) -> None:
        self.features = list(features)
        # Field order of the struct: customer_id, the numeric features, then the categories, so
        # one tuple per customer slices into an id, a float block and an object block.
        self.numeric = [f.name for f in self.features if f.dtype != "category"]
        self.categorical = [f.name for f in self.features if f.dtype == "category"]
        self.whole = np.array([f.dtype == "int" for f in self.features if f.dtype != "category"], dtype=bool)
        by_name = {f.name: f for f in self.features}
        fields: list[tuple[str, Any, Any] | tuple[str, Any]] = [
            ("customer_id", Annotated[int, msgspec.Meta(ge=0, le=MAX_CUSTOMER_ID)])
        ]
        fields += [(name, _field_type(by_name[name]), None) for name in [*self.numeric, *self.categorical]]
        customer = msgspec.defstruct("Customer", fields, kw_only=True, forbid_unknown_fields=True, gc=False)
        request = msgspec.defstruct(
            "ScoreRequest",
            [
                ("customers", Annotated[list[customer], msgspec.Meta(min_length=1, max_length=max_batch)]),  # type: ignore[valid-type]
                ("explain", bool, False),
                ("top_k", Annotated[int, msgspec.Meta(ge=1, le=20)], 3),
            ],
            kw_only=True,
            forbid_unknown_fields=True,
        )
        self._decoder = msgspec.json.Decoder(request)
        self._k = len(self.numeric)

    def decode(self, body: bytes) -> Decoded | None:
        """The request's ids and feature columns (as `customers_to_columns` types them), or None
        when the body is not a valid request (the pydantic path then explains why)."""
        try:
            request: Any = self._decoder.decode(body)  # the struct generated in __init__
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        rows = [msgspec.structs.astuple(c) for c in request.customers]
        n, k = len(rows), self._k
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        columns: dict[str, np.ndarray] = {}
        if k:
            # None becomes NaN (a missing value), exactly as in `customers_to_columns`.
            matrix = np.array([r[1 : k + 1] for r in rows], dtype=np.float64).reshape(n, k)
            present = ~np.isnan(matrix)
            if np.isinf(matrix).any():  # out-of-range numbers: pydantic names them
                return None
            fraction = matrix[:, self.whole] != np.floor(matrix[:, self.whole])
            if (fraction & present[:, self.whole]).any():  # 3.5 for a whole-number feature
                return None
            columns.update(zip(self.numeric, np.ascontiguousarray(matrix.T)))
        if self.categorical:
            cats = np.empty((n, len(self.categorical)), dtype=object)
            cats[:] = np.array([r[k + 1 :] for r in rows], dtype=object).reshape(n, len(self.categorical))
            columns.update(zip(self.categorical, cats.T.copy()))
        return Decoded(ids, {f.name: columns[f.name] for f in self.features}, request.explain, request.top_k)
