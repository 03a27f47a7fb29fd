"""What every benchmark records about the machine it ran on, so its numbers can be read."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def machine() -> dict:
    """nproc, memory, CPU model, Python and the 1-minute load (the machine may be shared)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def median_ms(fn: Callable[[], object], reps: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median milliseconds of `reps` calls of `fn` on `clock`, after one untimed warm-up call.

    `time.perf_counter` (default) is wall time; `time.thread_time` is CPU time of this thread,
    which other processes on a shared machine inflate less (but which misses work done on other
    threads)."""
    fn()
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        times.append((clock() - t) * 1000)
    return float(statistics.median(times))
