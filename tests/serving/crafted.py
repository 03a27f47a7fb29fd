"""Crafted and mutated `/score_arrow` bodies (shared by the unit, service and fuzz tests)."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa

from features.registry import FEATURES
from serving.arrow_io import to_arrow_stream

CATEGORY = next(f for f in FEATURES if f.dtype == "category")


def patched_string_offset() -> bytes:
    """A one-row `{customer_id, <category>}` stream whose string end offset says 0x7FFFFFF0:
    reading the value without validation reads 2 GiB past the buffer (a segfault)."""
    value = CATEGORY.categories[0]
    body = bytearray(to_arrow_stream(pa.table({"customer_id": pa.array([1], pa.int64()), CATEGORY.name: [value]})))
    at = bytes(body).rfind(struct.pack("<ii", 0, len(value)), 0, bytes(body).find(value.encode()))
    assert at > 0
    body[at + 4 : at + 8] = struct.pack("<i", 0x7FFFFFF0)
    return bytes(body)


def bad_utf8_field_name() -> bytes:
    body = bytearray(to_arrow_stream(pa.table({"customer_id": pa.array([1], pa.int64()), "zzzz": [1.0]})))
    body[bytes(body).find(b"zzzz")] = 0xFF
    return bytes(body)


def dictionary_index_out_of_range() -> bytes:
    """Dictionary-encoded categories whose second index (77) points past a 2-entry dictionary."""
    codes = pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), pa.array(list(CATEGORY.categories[:2])))
    body = bytearray(to_arrow_stream(pa.table({"customer_id": pa.array([1, 2], pa.int64()), CATEGORY.name: codes})))
    at = bytes(body).rfind(struct.pack("<ii", 1, 0))
    body[at + 4 : at + 8] = struct.pack("<i", 77)
    return bytes(body)


def two_streams() -> bytes:
    one = to_arrow_stream(pa.table({"customer_id": pa.array([1, 2], pa.int64())}))
    return one + to_arrow_stream(pa.table({"customer_id": pa.array([3], pa.int64())}))


def valid_stream(rng: np.random.Generator, rows: int = 3) -> bytes:
    """A valid body: a few customers with one feature of each kind (string, bool, numbers)."""
    boolean = next(f for f in FEATURES if f.dtype == "bool")
    number = next(f for f in FEATURES if f.dtype == "float")
    table = pa.table(
        {
            "customer_id": pa.array(rng.integers(0, 10**6, rows), pa.int64()),
            CATEGORY.name: pa.array([str(c) for c in rng.choice(list(CATEGORY.categories), rows)]),
            boolean.name: pa.array(rng.random(rows) < 0.5),
            number.name: pa.array(np.abs(rng.normal(size=rows))),
        }
    )
    return to_arrow_stream(table)


def mutated_streams(n: int, seed: int = 0) -> list[bytes]:
    """`n` valid streams with 1 to 4 random bytes overwritten, or truncated, or a 32-bit word
    replaced by a large value (what a patched offset or length looks like)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = bytearray(valid_stream(rng, int(rng.integers(1, 5))))
        kind = rng.integers(0, 3)
        if kind == 0:
            for at in rng.integers(0, len(body), int(rng.integers(1, 5))):
                body[at] = int(rng.integers(0, 256))
        elif kind == 1:
            at = int(rng.integers(0, len(body) - 4)) & ~3
            body[at : at + 4] = struct.pack("<I", int(rng.choice([0x7FFFFFF0, 0xFFFFFFFF, 0x80000000, 1 << 20])))
        else:
            body = body[: int(rng.integers(1, len(body)))]
        out.append(bytes(body))
    return out
