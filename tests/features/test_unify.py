"""`clientlens unify`: linkage scored against the truth, survivorship, completion, bad sources, the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from core.errors import InputError
from features.sources import write_sources
from features.unify import (
    FieldRule,
    UnifyConfig,
    golden_records,
    load_config,
    load_sources,
    naive_clusters,
    pairwise_scores,
    standardise,
)

runner = CliRunner()


# ---------------------------------------------------------------- pure pieces


def test_pairwise_scores_on_a_hand_count():
    # truth: {a,b,c} {d}; predicted: {a,b} {c,d} -> TP 1 (a-b), predicted 2, true 3
    s = pairwise_scores(np.array([1, 1, 2, 2]), np.array(["x", "x", "x", "y"]))
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert pairwise_scores(np.arange(3), np.array([0, 0, 1]))["recall"] == 0.0


def test_standardise_and_naive_rule():
    recs = pd.DataFrame(
        {
            "unique_id": ["a:1", "b:1", "c:1", "d:1"],
            "first_name": ["Anne-Marie", "ANNEMARIE ", "Anne", None],
            "last_name": ["O'Neil", "oneil", "Oneil", "Oneil"],
            "birth_date": pd.to_datetime(["1980-01-02", "1980-01-02", "1980-01-02", "1980-01-02"]),
            "phone": ["+44 7700 900123", "07700900123", "(07700) 900-123", None],
            "email": ["A@X.COM", "a@x.com", "nope", None],
            "postcode": ["sw1a1aa", "SW1A 1AA", None, "x"],
        }
    )
    std = standardise(recs)
    assert std["first_name"].tolist()[:2] == ["annemarie", "annemarie"]
    assert std["phone"].nunique() == 1
    assert std["email"].tolist()[:2] == ["a@x.com", "a@x.com"] and pd.isna(std["email"][2])
    assert std["postcode"].tolist()[:2] == ["SW1A 1AA", "SW1A 1AA"]
    naive = naive_clusters(std)
    assert naive[0] == naive[1] != naive[2]
    assert naive[3].startswith("solo:")  # no first name: the naive rule cannot place it


def _records():
    ts = pd.Timestamp
    return pd.DataFrame(
        {
            "source_system": ["core_banking", "wealth", "cards", "core_banking"],
            "record_id": ["1", "W1", "C1", "2"],
            "customer_id": [1, 1, 1, 2],
            "updated_on": [ts("2020-01-01"), ts("2024-01-01"), ts("2023-01-01"), ts("2024-05-01")],
            "postcode": ["AB1 2CD", "EF3 4GH", None, "ZZ9 9ZZ"],
            "last_name": ["Smith", "Smiht", "Smith", "Jones"],
            "income_band": ["low", None, "middle", None],
            "income_band_on": [ts("2015-01-01"), pd.NaT, ts("2023-01-01"), pd.NaT],
        }
    )


def test_survivorship_recency_trust_vote_and_staleness():
    recs = _records()
    cfg = UnifyConfig(
        fields={
            "postcode": FieldRule(policy="recency"),
            "last_name": FieldRule(policy="vote"),
            "income_band": FieldRule(as_of="income_band_on", stale_after_days=365),
        }
    )
    g = golden_records(recs, recs["customer_id"], cfg, pd.Timestamp("2024-06-30")).set_index("customer_id")
    assert g.loc[1, "postcode"] == "EF3 4GH" and g.loc[1, "postcode_from"] == "wealth"  # newest record
    assert g.loc[1, "last_name"] == "Smith"  # two of three records agree, against the newest
    assert g.loc[1, "income_band"] == "middle"  # declared 2023, not at 2015 onboarding
    assert g.loc[1, "income_band_age_days"] == (pd.Timestamp("2024-06-30") - pd.Timestamp("2023-01-01")).days
    assert bool(g.loc[1, "income_band_stale"]) is True
    assert pd.isna(g.loc[2, "income_band"])  # nobody holds it: left for completion
    trust = UnifyConfig(fields={"postcode": FieldRule(policy="trust")})
    g2 = golden_records(recs, recs["customer_id"], trust, pd.Timestamp("2024-06-30")).set_index("customer_id")
    assert g2.loc[1, "postcode"] == "AB1 2CD"  # core banking is trusted most by default


def test_config_from_yaml_and_bad_config(tmp_path):
    good = tmp_path / "u.yaml"
    good.write_text("match_threshold: 0.95\nfields:\n  phone: {policy: trust}\n")
    assert load_config(good).match_threshold == 0.95
    bad = tmp_path / "bad.yaml"
    bad.write_text("match_threshold: 2\n")
    with pytest.raises(InputError, match="match_threshold"):
        load_config(bad)


# ---------------------------------------------------------------- bad sources


@pytest.fixture(scope="module")
def small_sources(tmp_path_factory):
    from features.simulate import simulate

    base = tmp_path_factory.mktemp("unify")
    simulate(base / "raw", customers=600, months=12, seed=11)
    write_sources(base / "raw", base / "sources", seed=11)
    return base


def _broken_copy(small_sources, tmp_path, system, change):
    src = tmp_path / "sources"
    shutil.copytree(small_sources / "sources", src)
    path = src / f"{system}.parquet"
    if change == "unreadable":
        path.write_bytes(b"PAR1 not really parquet")
    else:
        frame = pd.read_parquet(path)
        change(frame).to_parquet(path, index=False)
    return src


@pytest.mark.parametrize(
    ("system", "change", "rule"),
    [
        ("wealth", lambda f: f.drop(columns=["client_ref"]), "id column present"),
        ("cards", lambda f: f.assign(card_account=f["card_account"].where(f.index > 2, "CC1")), "unique"),
        ("core_banking", "unreadable", "core_banking"),
    ],
)
def test_bad_sources_exit_2_name_file_and_rule_and_write_nothing(small_sources, tmp_path, system, change, rule):
    src = _broken_copy(small_sources, tmp_path, system, change)
    out = tmp_path / "out"
    result = runner.invoke(app, ["unify", "--sources", str(src), "--out", str(out), "--json"])
    assert result.exit_code == 2, result.output
    err = json.loads(result.output.strip().splitlines()[-1])["error"]
    assert f"{system}.parquet" in err and rule in err, err
    assert not out.exists()
    with pytest.raises(InputError):
        load_sources(src, UnifyConfig())


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_unify_end_to_end_links_well_completes_and_meets_the_contract(small_sources, tmp_path):
    from features.contract import validate_frame, validate_raw

    out = tmp_path / "unified"
    result = runner.invoke(
        app,
        [
            "unify",
            "--sources",
            str(small_sources / "sources"),
            "--raw",
            str(small_sources / "raw"),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    # Linkage against the truth crosswalk, and against the naive rule on the same records.
    assert summary["f1"] >= 0.97, summary
    assert summary["f1"] - summary["naive_f1"] >= 0.10, summary
    comp = summary["completion"]
    assert comp["imputed"] > 0 and comp["accuracy"] > comp["most_common_baseline"], comp

    customers = pd.read_parquet(out / "customers.parquet")
    validate_frame("customers", customers)
    assert customers["customer_id"].is_unique
    assert {"income_band_age_days", "income_band_stale", "income_band_imputed", "risk_assessed_on"} <= set(
        customers.columns
    )
    assert customers["income_band"].notna().all()
    crosswalk = pd.read_parquet(out / "crosswalk.parquet")
    n_records = sum(len(pd.read_parquet(small_sources / "sources" / f"{s}.parquet")) for s in summary["records"])
    assert len(crosswalk) == n_records and set(crosswalk["customer_id"]) == set(customers["customer_id"])

    # The feature pipeline's contract reads the unified table in place of the clean one.
    raw = tmp_path / "raw"
    shutil.copytree(small_sources / "raw", raw)
    customers.to_parquet(raw / "customers.parquet", index=False)
    checked = validate_raw(raw)
    assert checked.rows["customers"] == len(customers)

    page = (out / "unify_report.html").read_text()
    for section in ("Match weights", "Clusters", "Completeness", "Staleness", "Least-sure clusters"):
        assert section in page
    assert page.count("data:image/png;base64") >= 2


def test_two_cifs_with_behaviour_are_never_one_customer():
    from features.unify import Linkage, assign_customer_ids, split_anchored_clusters

    recs = pd.DataFrame(
        {
            "unique_id": ["core_banking:1", "core_banking:2", "wealth:W", "cards:C"],
            "behaviour_key": [1, 2, -1, -1],
        }
    )
    clusters = pd.Series(["k"] * 4, index=recs["unique_id"])  # one chained cluster
    edges = pd.DataFrame(
        {
            "unique_id_l": ["core_banking:1", "wealth:W", "core_banking:2"],
            "unique_id_r": ["wealth:W", "core_banking:2", "cards:C"],
            "match_probability": [0.99, 0.93, 0.97],
            "match_weight": [9.0, 5.0, 7.0],
        }
    )
    new, n_split = split_anchored_clusters(recs, Linkage(clusters, edges, {}), np.array([1, 2]), 0.9)
    assert n_split == 1
    ids = assign_customer_ids(recs, new, max_cif=2).tolist()
    assert ids == [1, 2, 1, 2]  # W goes with its strongest link (CIF 1); C with CIF 2
    same, none = split_anchored_clusters(recs, Linkage(clusters, edges, {}), np.array([1]), 0.9)
    assert none == 0 and same.equals(clusters)
