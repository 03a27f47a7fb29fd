"""Simulated source systems: three systems' records of one bank, messy the way real ones are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.sources import CROSSWALK_FILE, ID_COLUMNS, PROFILE_FILE, SYSTEMS, build_sources, write_sources


@pytest.fixture(scope="module")
def built(sim_raw):
    customers = pd.read_parquet(sim_raw / "customers.parquet")
    return customers, build_sources(customers, pd.Timestamp("2025-06-30"), seed=3)


def test_same_seed_same_sources(sim_raw, built):
    customers, (systems, crosswalk, _) = built
    again, cw2, _ = build_sources(customers, pd.Timestamp("2025-06-30"), seed=3)
    for s in SYSTEMS:
        pd.testing.assert_frame_equal(systems[s], again[s])
    pd.testing.assert_frame_equal(crosswalk, cw2)
    other, _, _ = build_sources(customers, pd.Timestamp("2025-06-30"), seed=4)
    assert not other["wealth"]["first_name"].equals(systems["wealth"]["first_name"])


def test_every_record_in_the_crosswalk_and_ids_unique_per_system(built):
    customers, (systems, crosswalk, profile) = built
    assert len(crosswalk) == sum(len(f) for f in systems.values())
    for s in SYSTEMS:
        ids = systems[s][ID_COLUMNS[s]]
        assert ids.is_unique
        assert set(ids.astype(str)) == set(crosswalk.loc[crosswalk.source_system == s, "record_id"])
    # Core banking holds every customer under its CIF (the behaviour tables' key).
    core = crosswalk[crosswalk.source_system == "core_banking"]
    assert set(customers["customer_id"]) <= set(core["record_id"].astype(int))
    assert set(profile["customer_id"]) == set(customers["customer_id"])


def test_systems_disagree_realistically(built):
    customers, (systems, crosswalk, profile) = built
    p = profile.set_index("customer_id")
    dupes = crosswalk.groupby(["source_system", "customer_id"]).size()
    assert (dupes > 1).sum() > 0, "duplicates within a system"
    for s in SYSTEMS:
        f = systems[s]
        cid = crosswalk.loc[crosswalk.source_system == s].set_index("record_id")["customer_id"]
        true = p.loc[cid.reindex(f[ID_COLUMNS[s]].astype(str)).to_numpy()]
        name_differs = (f["last_name"].str.lower().to_numpy() != true["last_name"].str.lower().to_numpy()).mean()
        phone_differs = (f["phone"].to_numpy() != true["phone"].to_numpy()).mean()
        assert 0.01 < name_differs < 0.25, (s, name_differs)
        assert 0.05 < phone_differs < 0.6, (s, phone_differs)  # format variants, old numbers, gaps
        assert f["phone"].isna().any() and f["income_band"].isna().any()
        stale_band = f["income_band"].notna() & (f["income_band"].to_numpy() != true["income_band"].to_numpy())
        assert stale_band.mean() > 0.03, (s, "some declared income bands are out of date")
    # Core banking keeps old questionnaires that wealth management has replaced.
    core = systems["core_banking"]
    assert (core["risk_assessed_on"] == core["onboard_date"]).mean() > 0.05


def test_write_sources_and_simulate_flag(tmp_path):
    from clientlens.cli import app

    out = tmp_path / "raw"
    result = CliRunner().invoke(
        app, ["simulate", "--customers", "300", "--months", "6", "--out", str(out), "--source-systems", "--json"]
    )
    assert result.exit_code == 0, result.output
    for name in (*(f"{s}.parquet" for s in SYSTEMS), CROSSWALK_FILE, PROFILE_FILE):
        assert (out / "sources" / name).exists(), name
    summary = write_sources(out, tmp_path / "again", seed=7)
    assert summary["customers"] == 300
    a = pd.read_parquet(out / "sources" / "wealth.parquet")
    b = pd.read_parquet(tmp_path / "again" / "wealth.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert np.issubdtype(pd.read_parquet(out / "sources" / "core_banking.parquet")["cif"].dtype, np.integer)
