"""The feature registry: declarations, names shared with the builder, generated docs, schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import InputError
from features import reference, registry, vocab
from features.build import build_features, feature_columns, prepare
from tests.features.frames import validate_feature_frame
from tests.features.toydata import toy_raw

DOC = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"


def test_declarations_are_well_formed():
    names = registry.feature_names()
    assert len(names) == len(set(names))
    # The cap keeps the request model and drift report readable; raised from 150 for the 16 long-window
    # (180/365-day) behaviour features the latent-risk model needs (training/tasks/risk.yaml).
    assert 80 <= len(names) <= 175
    for feat in registry.FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", feat.name), feat.name
        assert feat.description.strip() and feat.window.strip()
        assert set(feat.sources) <= set(vocab.TABLES), feat.name
    assert set(registry.categorical_features()) | set(registry.numerical_features()) == set(names)
    assert not set(registry.categorical_features()) & set(registry.numerical_features())
    # other stages rely on these columns
    for name in ("tier", "stated_risk", "aum"):
        assert name in names
    assert registry.categories_of("tier") == vocab.TIERS
    assert registry.categories_of("stated_risk") == vocab.RISK_CLASSES
    with pytest.raises(ValueError, match="not categorical"):
        registry.categories_of("aum")
    with pytest.raises(KeyError, match="unknown feature"):
        registry.feature("f17")
    assert {registry.feature(n).family for n in names} == set(registry.FAMILIES)


def test_a_category_feature_needs_categories():
    with pytest.raises(ValueError, match="categories"):
        registry.Feature("x", "category", "profile", "static", "no categories")


def test_validate_feature_frame_names_column_and_rule():
    frame = build_features(toy_raw(4, n_customers=6), "2025-03-31")
    validate_feature_frame(frame)
    bad = frame.copy()
    bad.loc[0, "tier"] = "platinum"
    with pytest.raises(InputError, match=r"'tier'.*one of"):
        validate_feature_frame(bad)
    bad = frame.copy()
    bad.loc[0, "deposit_share"] = 1.5
    with pytest.raises(InputError, match=r"'deposit_share'.*<= 1"):
        validate_feature_frame(bad)
    bad = frame.copy()
    bad.loc[1, "txn_count_30d"] = 2.5
    with pytest.raises(InputError, match=r"'txn_count_30d'.*whole numbers"):
        validate_feature_frame(bad)
    with pytest.raises(InputError, match=r"'aum'.*missing"):
        validate_feature_frame(frame.drop(columns=["aum"]))
    with pytest.raises(InputError, match="tier_future"):
        validate_feature_frame(frame, labels=True)


def test_docs_are_generated_from_the_registry():
    """docs/FEATURES.md is current: regenerate with `uv run python -m features.reference --markdown > docs/FEATURES.md`."""
    assert DOC.read_text() == reference.to_markdown()
    for name in registry.feature_names():
        assert f"`{name}`" in reference.to_markdown()


def test_declared_bounds_and_drift_columns_and_arrow_schema():
    assert registry.feature("aum_high_risk_share").upper == 1.0
    assert registry.feature("aum").lower == 0.0  # AUM is never negative
    assert "tier" in registry.categorical_features() and "aum" in registry.numerical_features()
    schema = registry.arrow_schema(labels=True)
    assert schema.names[:2] == ["customer_id", "as_of"] and schema.names[-len(registry.LABELS) :] == list(
        registry.LABELS
    )
    assert schema.names[2 : -len(registry.LABELS)] == registry.feature_names()


def test_the_builder_computes_exactly_the_declared_features():
    """Every declared name is computed and nothing else is: a name spelled differently in the builder
    and the registry would leave a declared column all NaN (and a computed one thrown away)."""
    prep = prepare(toy_raw(5, n_customers=10))
    assert prep.missing_tables == []
    cols, active = feature_columns(prep, "2025-03-31")
    assert active.any()
    assert set(cols) == set(registry.feature_names())
    # without events the event features are not computed, and still every computed name is declared
    tables = toy_raw(5, n_customers=10)
    cols_no_events, _ = feature_columns(prepare({**tables, "events": None}), "2025-03-31")
    assert set(cols_no_events) == set(registry.feature_names()) - set(registry.features_needing({"events"}))


def test_a_name_the_registry_does_not_declare_fails_the_build(monkeypatch):
    """The build itself refuses drift between the two (not only this suite): drop one declaration."""
    declared = [f for f in registry.FEATURES if f.name != "digital_txn_share_90d"]
    monkeypatch.setattr(registry, "FEATURES", declared)
    with pytest.raises(RuntimeError, match=r"computed but not declared \['digital_txn_share_90d'\]"):
        build_features(toy_raw(5, n_customers=4), "2025-03-31")


def test_names_are_spelled_by_the_registry():
    assert registry.windowed("txn_count", 90) == "txn_count_90d"
    assert registry.flow("in", "salary", 30) == "inflow_salary_30d"
    assert registry.flow("out", "brokerage", 365) == "outflow_brokerage_365d"
    assert registry.trend("login_count", 30) == "login_count_trend_30d"
    assert registry.monthly("aum_change", 3) == "aum_change_3m"
    assert registry.aum_in_risk_level("R4") == "aum_r4"
    for name in (registry.flow("out", "fx", 90), registry.topic_views("pension", 30), registry.days_since_last("txn")):
        registry.feature(name)  # declared


def test_cli_prints_markdown(capsys):
    assert reference.main(["--markdown"]) == 0
    assert capsys.readouterr().out == reference.to_markdown()


def test_the_registry_imports_no_other_feature_module():
    """No cycle: the builder and the labels import the registry, never the other way round."""
    import subprocess
    import sys

    code = "import sys, features.registry; print(sorted(m for m in sys.modules if m.startswith('features.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['features.registry', 'features.vocab']"
