"""The behaviour family's kernel (`features.build.window_counts`) and the benchmark's subset built on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import DAY_NS, window_counts


def _naive(cust, ts, group, weights, n, n_groups, t_end, edges):
    count = np.zeros((len(edges), n_groups, n), dtype=np.int64)
    total = np.zeros((len(edges), n_groups, n))
    for c, t, g, w in zip(cust, ts, group, weights, strict=True):
        for i, e in enumerate(sorted(edges)):
            if g >= 0 and t_end - e * DAY_NS <= t < t_end:
                count[i, g, c] += 1
                total[i, g, c] += w
    return count, total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_counts_equals_a_row_by_row_count(seed):
    rng = np.random.default_rng(seed)
    n, n_groups, rows = 7, 5, 3_000
    t_end = pd.Timestamp("2025-06-30").value + DAY_NS
    edges = (30, 90, 180)
    cust = rng.integers(0, n, rows).astype(np.int32)
    # around every window edge, beyond the largest window and after t_end (both must be ignored)
    ts = t_end - rng.integers(-5 * DAY_NS, 200 * DAY_NS, rows)
    ts[:30] = t_end - np.repeat([30, 90, 180], 10) * DAY_NS + np.tile([-1, 0, 1, -1, 0, 1, -1, 0, 1, 0], 3)
    group = rng.integers(-1, n_groups, rows)  # -1: left out
    weights = rng.normal(100, 50, rows)
    count, total = window_counts(cust, ts, group, n, n_groups, t_end, edges, weights)
    want_count, want_total = _naive(cust, ts, group, weights, n, n_groups, t_end, edges)
    np.testing.assert_array_equal(count, want_count)
    np.testing.assert_allclose(total, want_total, rtol=1e-12, atol=1e-9)
    count_only, none = window_counts(cust, ts, group, n, n_groups, t_end, edges)
    assert none is None
    np.testing.assert_array_equal(count_only, want_count)


def test_benchmark_subset_equals_duckdb_on_every_group(sim_raw):
    """`benchmarks.bench_features`: the pipeline's subset (reader + kernel) holds DuckDB's rows and numbers."""
    from benchmarks.bench_features import WINDOWS, check_agreement, duckdb_subset, subset_partition
    from features.panel import data_dates, raw_paths

    _, last = data_dates(raw_paths(sim_raw))
    ours = pd.concat(
        [subset_partition(str(sim_raw), lo, hi, str(last), False) for lo, hi in [(1, 700), (701, 2000)]],
        ignore_index=True,
    )
    _, duck = duckdb_subset(sim_raw, last, threads=1)
    keys = ["customer_id", "direction", "category"]
    duck = duck.to_pandas().astype({"direction": str, "category": str}).sort_values(keys, ignore_index=True)
    ours = ours.astype({"direction": str, "category": str}).sort_values(keys, ignore_index=True)
    assert len(ours) == len(duck) > 10_000
    pd.testing.assert_frame_equal(ours[keys], duck[keys])
    for w in WINDOWS:
        np.testing.assert_allclose(ours[f"sum_{w}d"], duck[f"sum_{w}d"].fillna(0), rtol=1e-9, atol=1e-6)
        np.testing.assert_array_equal(ours[f"count_{w}d"], duck[f"count_{w}d"])
    duck_table = pa_table(duck)
    assert check_agreement(duck_table, ours)
    # the benchmark's own check notices a wrong number
    ours.loc[5, "sum_90d"] += 1.0
    assert not check_agreement(duck_table, ours)


def pa_table(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def test_read_ahead_reads_the_next_item_while_building_this_one():
    """`features.panel.read_ahead` (the one-process build): results in order, the next read overlapping."""
    import threading

    from features.panel import read_ahead

    started = {i: threading.Event() for i in range(4)}

    def read(i):
        started[i].set()
        return i * 10

    def build(i, data):
        if i + 1 < 4:  # without read-ahead the next read would only start after this returns
            assert started[i + 1].wait(10), f"read of item {i + 1} did not start while item {i} was built"
        return data + i

    done = []
    assert read_ahead([0, 1, 2, 3], read, build, lambda: done.append(1)) == [0, 11, 22, 33]
    assert len(done) == 4 and read_ahead([], read, build) == []


def test_read_ahead_raises_a_read_error_in_item_order():
    from core.errors import InputError
    from features.panel import read_ahead

    built = []

    def read(i):
        if i == 2:
            raise InputError("transactions.amount: rule 'finite' fails")
        return i

    with pytest.raises(InputError, match="finite"):
        read_ahead([0, 1, 2, 3], read, lambda i, data: built.append(data))
    assert built == [0, 1]
