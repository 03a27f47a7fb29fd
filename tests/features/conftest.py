"""Fixtures shared by the features tests (and by anyone needing a small simulated bank)."""

from __future__ import annotations

from pathlib import Path

import pytest

SIM_CUSTOMERS = 2_000
SIM_MONTHS = 18
SIM_SEED = 7


@pytest.fixture(scope="session")
def sim_raw(tmp_path_factory) -> Path:
    """A small simulated bank (2,000 customers x 18 months, seed 7): the raw folder's Path.

    Session-scoped and read-only: tests must not write into it. About a second to build.
    Holds customers/holdings/transactions/events/market/truth `.parquet`.
    """
    from features.simulate import simulate

    out = tmp_path_factory.mktemp("sim_raw")
    simulate(out, customers=SIM_CUSTOMERS, months=SIM_MONTHS, seed=SIM_SEED)
    return out
