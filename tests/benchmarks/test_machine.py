"""`benchmarks.machine.median_ms`: the one timing loop of the benchmarks, on the clock it is given."""

from __future__ import annotations

import time

import pytest

from benchmarks.machine import median_ms


def test_median_ms_warms_up_once_and_takes_the_median_on_the_given_clock():
    calls = []
    durations = iter([0.0, 0.003, 0.001, 0.010])  # seconds; the first call is the untimed warm-up
    now = [0.0]

    def clock() -> float:
        return now[0]

    def fn() -> None:
        calls.append(1)
        now[0] += next(durations)

    assert median_ms(fn, 3, clock=clock) == pytest.approx(3.0)  # median of 3, 1 and 10 ms
    assert len(calls) == 4


def test_median_ms_on_thread_time_does_not_count_sleeping():
    assert median_ms(lambda: time.sleep(0.02), 3, clock=time.thread_time) < 10
    assert median_ms(lambda: time.sleep(0.02), 3) >= 19
