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
from itertools import chain
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
        # Field order of the struct: `customer_id`, then the features in registry order, which is the
        # order clients (and `to_request_rows`) send them: msgspec matches each key against the next
        # field first, so a struct in the body's order decodes in about half the time of one in any
        # other order (#18). Keys in another order are still decoded, only slower.
        self.numeric = [f.name for f in self.features if f.dtype != "category"]
        self.categorical = [f.name for f in self.features if f.dtype == "category"]
        self._numeric_at = [1 + i for i, f in enumerate(self.features) if f.dtype != "category"]
        self._categorical_at = [1 + i for i, f in enumerate(self.features) if f.dtype == "category"]
        self.whole = np.array([f.dtype == "int" for f in self.features if f.dtype != "category"], dtype=bool)
        # The numeric fields as runs of adjacent struct fields (dst column, first field, length): each run is
        # converted from a view of the object block, with no copy of the objects first (#18).
        self._numeric_runs: list[tuple[int, int, int]] = []
        for column, at in enumerate(self._numeric_at):
            if self._numeric_runs and sum(self._numeric_runs[-1][1:]) == at:
                dst, first, length = self._numeric_runs[-1]
                self._numeric_runs[-1] = (dst, first, length + 1)
            else:
                self._numeric_runs.append((column, at, 1))
        fields: list[tuple[str, Any, Any] | tuple[str, Any]] = [
            ("customer_id", Annotated[int, msgspec.Meta(ge=0, le=MAX_CUSTOMER_ID)])
        ]
        fields += [(f.name, _field_type(f), None) for f in self.features]
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
        self._width = 1 + len(self.features)

    def decode(self, body: bytes) -> Decoded | None:
        """The request's ids and feature columns (as `customers_to_columns` types them), or None
        when the body is not a valid request (the pydantic path then explains why)."""
        try:
            request: Any = self._decoder.decode(body)  # the struct generated in __init__
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        customers = request.customers
        n, w = len(customers), self._width
        # One object block, a row per customer (customer_id + features in registry order):
        # `fromiter` over the flat values does no per-element shape discovery, as `np.array` of
        # tuples would. Converted to floats row by row, the order msgspec allocated the values in:
        # column by column the conversion reads them scattered over the heap, ~2x slower (#18); and
        # straight from views of the block (`_numeric_runs`), not from a copy of the numeric objects.
        flat = chain.from_iterable(map(msgspec.structs.astuple, customers))
        block = np.fromiter(flat, dtype=object, count=n * w).reshape(n, w)
        ids = block[:, 0].astype(np.int64)
        columns: dict[str, np.ndarray] = {}
        if self.numeric:
            # None becomes NaN (a missing value) and true/false 1/0, exactly as in `customers_to_columns`.
            by_row = np.empty((n, len(self.numeric)))
            for dst, first, length in self._numeric_runs:
                by_row[:, dst : dst + length] = block[:, first : first + length]  # the cast `astype` does
            if np.isinf(by_row).any():  # out-of-range numbers (1e400): pydantic names them
                return None
            matrix = np.ascontiguousarray(by_row.T)  # (features, customers): each column contiguous
            whole = matrix[self.whole]
            if ((whole != np.floor(whole)) & ~np.isnan(whole)).any():  # 3.5 or 1e-15 for a whole-number feature
                return None
            columns.update(zip(self.numeric, matrix))
        if self.categorical:
            columns.update(zip(self.categorical, np.ascontiguousarray(block[:, self._categorical_at].T)))
        return Decoded(ids, {f.name: columns[f.name] for f in self.features}, request.explain, request.top_k)
