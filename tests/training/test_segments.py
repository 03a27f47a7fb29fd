"""Business segments (rule table, YAML edge), risk gap, churn drivers and the ordinal risk calibrator."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from core.errors import InputError
from training.model import OrdinalCalibrator
from training.segments import (
    DEFAULT_DRIVERS,
    DEFAULT_SCHEME,
    DriverConfig,
    load_scheme,
    risk_gap,
    rule_table,
    segment_labels,
)


def _hand_built():
    """Every combination of the three dimensions the default scheme reads, plus rows with a gap."""
    tiers, risks, depths = (
        ["mass", "affluent", "hnw"],
        ["conservative", "balanced", "aggressive"],
        [
            "basic",
            "multi_product",
            "ecosystem",
        ],
    )
    rows = [(t, r, "family_growth", d) for t in tiers for r in risks for d in depths]
    rows += [(None, "balanced", "retirement", "basic"), ("hnw", None, "retirement", "ecosystem")]
    return [np.array(col, dtype=object) for col in zip(*rows, strict=True)]


def test_default_scheme_follows_its_rule_table():
    tier, risk, stage, depth = _hand_built()
    got = DEFAULT_SCHEME.assign(tier, risk, stage, depth)
    for t, r, d, seg in zip(tier[:-2], risk[:-2], depth[:-2], got[:-2], strict=True):
        asset = "wealth" if t in ("affluent", "hnw") else "mass"
        appetite = "growth" if r in ("balanced", "aggressive") else "steady"
        contribution = "loyal" if d in ("multi_product", "ecosystem") else "light"
        assert seg == f"{asset}_{appetite}_{contribution}", (t, r, d)
    assert list(got[-2:]) == ["unclassified", "unclassified"]  # a dimension unknown: no rule matches
    assert len(set(got[:-2])) == 8
    table = rule_table()
    assert table.count("\n") == 8 + 2  # header, separator, eight rules, the default row
    assert "| wealth_growth_loyal | affluent, hnw | balanced, aggressive | any | multi_product, ecosystem |" in table


def test_first_matching_rule_wins_and_yaml_round_trip(tmp_path):
    f = tmp_path / "seg.yaml"
    f.write_text(
        "name: two\nsegments:\n"
        "  - {name: private, tiers: [hnw]}\n"
        "  - {name: retirees, lifecycle: [retirement]}\n"
        "default: rest\n"
    )
    scheme = load_scheme(f)
    tier = np.array(["hnw", "mass", "mass"], dtype=object)
    stage = np.array(["retirement", "retirement", "young_professional"], dtype=object)
    none = np.array([None] * 3, dtype=object)
    assert list(scheme.assign(tier, none, stage, none)) == ["private", "retirees", "rest"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segments:\n  - {name: x, tiers: [platinum]}\n", "segments.0"),
        ("segments:\n  - {name: x, colour: red}\n", "colour"),
        ("segments: []\n", "segments"),
        ("segments:\n  - {name: a}\n  - {name: a}\n", "repeat"),
        ("segments: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_bad_mapping_file_is_input_error_naming_the_field(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_scheme(f)
    assert str(f) in str(err.value)


def test_bad_mapping_file_is_exit_2_from_the_cli(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("segments:\n  - {name: x, risk: [reckless]}\n")
    res = CliRunner().invoke(
        app,
        ["score", "--features", str(tmp_path / "f.parquet"), "--out", str(tmp_path / "o.parquet")]
        + ["--segments", str(f), "--json"],
    )
    assert res.exit_code == 2
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert "reckless" in summary["error"] and "bad.yaml" in summary["error"]
    assert not (tmp_path / "o.parquet").exists()


def test_risk_gap_and_segment_labels():
    revealed = np.array(["aggressive", "conservative", "balanced", None], dtype=object)
    stated = np.array(["conservative", "aggressive", "balanced", "balanced"], dtype=object)
    np.testing.assert_array_equal(risk_gap(revealed, stated), [2.0, -2.0, 0.0, np.nan])
    seg = segment_labels(
        np.array(["hnw"], dtype=object),
        np.array(["balanced"], dtype=object),
        np.array([None], dtype=object),
        np.array(["basic"], dtype=object),
    )
    assert list(seg) == ["hnw/balanced/unknown/basic"]


def test_driver_families_by_pattern():
    assert DEFAULT_DRIVERS.family_of("views_complaints_90d") == "service_incidents"
    assert DEFAULT_DRIVERS.family_of("login_count_trend_90d") == "disengagement"
    assert DEFAULT_DRIVERS.family_of("deposit_rate_change_3m") == "rate_gap"
    assert DEFAULT_DRIVERS.family_of("views_mortgage_30d") == "life_event"
    assert DEFAULT_DRIVERS.family_of("age") == "other"
    with pytest.raises(ValueError, match="not driver names"):
        DriverConfig(families={"weather": ["*"]})


def test_ordinal_calibrator_keeps_the_ranking_and_recovers_the_classes():
    rng = np.random.default_rng(0)
    appetite = rng.normal(size=5_000)
    y = np.searchsorted([-0.5, 0.8], appetite + 0.5 * rng.normal(size=appetite.size))
    p_top = 1 / (1 + np.exp(-(2.0 * appetite - 1.0)))  # a monotone score of the appetite
    raw = np.column_stack([1 - p_top, p_top])
    cal = OrdinalCalibrator().fit(raw, y, k=3)
    proba = cal.transform(raw)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert cal.cuts_[0] > cal.cuts_[1] and cal.slope_ > 0
    order = np.argsort(p_top)
    assert (np.diff(proba[order, 2]) >= -1e-12).all()  # P(top class) is monotone in the score
    assert (np.diff(proba[order, 0]) <= 1e-12).all()
    # every class is predicted where it is most common, and the class shares match
    pred = proba.argmax(axis=1)
    assert set(pred) == {0, 1, 2}
    np.testing.assert_allclose(proba.mean(axis=0), np.bincount(y) / len(y), atol=0.02)
    assert (pred == y).mean() > 0.7


def test_classification_summary_counts_and_crosstab():
    import pandas as pd

    from training.scoring import class_counts, classification_summary, questionnaire_vs_revealed

    scores = pd.DataFrame(
        {
            "tier": ["mass", "mass", "hnw"],
            "risk_appetite": ["aggressive", "balanced", "aggressive"],
            "stated_risk": ["conservative", "balanced", None],
            "lifecycle_stage": ["retirement", "retirement", "family_growth"],
            "relationship_depth": ["basic", "ecosystem", "basic"],
            "business_segment": ["mass_growth_light", "mass_growth_loyal", "wealth_growth_light"],
        }
    )
    counts = class_counts(scores)
    assert counts["tier"] == {"hnw": 1, "mass": 2} and counts["lifecycle_stage"]["retirement"] == 2
    table = questionnaire_vs_revealed(scores)
    assert list(table.columns) == ["conservative", "balanced", "aggressive"]
    assert table.loc["conservative", "aggressive"] == 1 and table.loc["unknown", "aggressive"] == 1
    assert table.loc["balanced", "balanced"] == 1 and "conservative" in classification_summary(scores)


def test_segment_parts_reads_back_what_segment_labels_writes():
    from training.segments import segment_parts

    tier, risk = np.array(["mass", None], dtype=object), np.array(["balanced", "aggressive"], dtype=object)
    life, depth = np.array(["retirement", "family_growth"], dtype=object), np.array(["basic", None], dtype=object)
    parts = segment_parts(pd.Series(segment_labels(tier, risk, life, depth)))
    assert parts.to_dict("records") == [
        {"tier": "mass", "risk": "balanced", "lifecycle": "retirement", "depth": "basic"},
        {"tier": "unknown", "risk": "aggressive", "lifecycle": "family_growth", "depth": "unknown"},
    ]
    assert segment_parts(pd.Series(["mass/balanced"])).isna().all(axis=None)  # not a four-part label
    rebuilt = segment_labels(*(parts[c].to_numpy(object) for c in ("tier", "risk", "lifecycle", "depth")))
    assert rebuilt.tolist() == segment_labels(tier, risk, life, depth).tolist()
