"""The feature registry: declarations, schema validation, generated docs, serving model, drift mapping."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from core.errors import InputError
from features import registry, vocab
from features.build import build_features
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
    registry.validate_feature_frame(frame)
    bad = frame.copy()
    bad.loc[0, "tier"] = "platinum"
    with pytest.raises(InputError, match=r"'tier'.*one of"):
        registry.validate_feature_frame(bad)
    bad = frame.copy()
    bad.loc[0, "deposit_share"] = 1.5
    with pytest.raises(InputError, match=r"'deposit_share'.*<= 1"):
        registry.validate_feature_frame(bad)
    bad = frame.copy()
    bad.loc[1, "txn_count_30d"] = 2.5
    with pytest.raises(InputError, match=r"'txn_count_30d'.*whole numbers"):
        registry.validate_feature_frame(bad)
    with pytest.raises(InputError, match=r"'aum'.*missing"):
        registry.validate_feature_frame(frame.drop(columns=["aum"]))
    with pytest.raises(InputError, match="tier_future"):
        registry.validate_feature_frame(frame, labels=True)


def test_docs_are_generated_from_the_registry():
    """docs/FEATURES.md is current: regenerate with `uv run python -m features.registry --markdown > docs/FEATURES.md`."""
    assert DOC.read_text() == registry.to_markdown()
    for name in registry.feature_names():
        assert f"`{name}`" in registry.to_markdown()


def test_request_model_accepts_feature_rows_and_rejects_bad_values():
    model = registry.request_model()
    frame = build_features(toy_raw(4, n_customers=3), "2025-03-31")
    row = frame.drop(columns=["as_of"]).iloc[0].to_dict()
    row = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
    parsed = model(**row)
    assert parsed.tier == row["tier"]
    with pytest.raises(ValidationError):
        model(**{**row, "tier": "platinum"})
    with pytest.raises(ValidationError):
        model(**{**row, "unknown_feature": 1})
    with pytest.raises(ValidationError):
        model(**{**row, "aum": -1.0})  # declared bounds: AUM is never negative
    assert registry.feature("aum_high_risk_share").upper == 1.0


def test_drift_columns_and_arrow_schema():
    cols = registry.drift_columns()
    assert "tier" in cols["categorical"] and "aum" in cols["numerical"]
    schema = registry.arrow_schema(labels=True)
    assert schema.names[:2] == ["customer_id", "as_of"] and schema.names[-3:] == list(registry.LABELS)
    empty = registry.empty_feature_frame(2)
    assert list(empty.columns) == registry.feature_names() and empty["aum"].isna().all()
    assert isinstance(empty, pd.DataFrame)


def test_cli_prints_markdown(capsys):
    assert registry.main(["--markdown"]) == 0
    assert capsys.readouterr().out == registry.to_markdown()
