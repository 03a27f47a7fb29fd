"""Task specs: shipped specs load, bad specs fail with the field named (exit 2 from the CLI)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from core.errors import InputError
from training.data import prepare, split
from training.spec import SPECS_DIR, TASKS_DIR, builtin_spec, load_spec, resolve_source, spec_from_dict


@pytest.mark.parametrize(
    "path", sorted(SPECS_DIR.glob("*.yaml")) + sorted(TASKS_DIR.glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    if path.parent == SPECS_DIR:
        assert spec.source_path().is_file(), spec.source_path()


def test_real_specs_resolve_relative_to_spec_file_and_env_override(monkeypatch, tmp_path):
    spec = load_spec(SPECS_DIR / "bankchurners.yaml")
    assert spec.source_path().parts[-3:] == ("data", "bankchurners", "BankChurners.csv")
    monkeypatch.setenv("CLIENTLENS_SHARED_DATA", str(tmp_path))
    assert resolve_source(spec.source, SPECS_DIR) == tmp_path / "bankchurners" / "BankChurners.csv"


def test_builtin_spec_sources_the_feature_folder(tmp_path):
    spec = builtin_spec("churn", tmp_path)
    assert spec.source_path() == (tmp_path / "panel.parquet").resolve()
    with pytest.raises(InputError, match="unknown task"):
        builtin_spec("nope", tmp_path)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "source": "a.csv", "target": {"column": "y", "kind": "trinary"}}, "target.kind"),
        ({"name": "x", "source": "a.csv", "target": {"kind": "binary"}}, "target"),
        ({"name": "x", "source": "a.csv", "target": {"column": "y", "kind": "binary"}}, "positive"),
        ({"name": "x", "target": {"column": "y", "kind": "regression"}}, "source"),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "regression"},
                "split": {"kind": "time"},
            },
            "time_column",
        ),
        ({"name": "x", "source": "a.csv", "target": {"column": "y", "kind": "regression"}, "colour": 1}, "colour"),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "regression"},
                "split": {"test_size": 2},
            },
            "split.test_size",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "binary", "positive": "b", "classes": ["b", "a"]},
            },
            "positive class last",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "binary", "positive": 1, "classes": ["a", "b", "c"]},
            },
            "two distinct classes",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "multiclass"},
                "tuning": {"monotone": {"a": 1}},
            },
            "binary or regression",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "regression"},
                "features": ["a"],
                "tuning": {"monotone": {"b": 1}},
            },
            "not in `features`",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "regression"},
                "tuning": {"monotone": {"a": 2}},
            },
            "tuning.monotone",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "regression"},
                "boost_from_baseline": True,
                "baseline": {"kind": "heuristic", "columns": ["a"]},
            },
            "binary, ordinal or multiclass target",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "multiclass"},
                "boost_from_baseline": True,
                "baseline": {"kind": "heuristic", "columns": ["a"]},
            },
            "persistence",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "multiclass"},
                "features": ["a"],
                "boost_from_baseline": True,
                "baseline": {"kind": "persistence", "column": "tier"},
            },
            "must be a model feature",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "multiclass"},
                "boost_from_baseline": True,
                "baseline": {"kind": "persistence", "column": "tier"},
                "prior_strength": 0,
            },
            "prior_strength",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "binary", "positive": 1},
                "boost_from_baseline": True,
            },
            "heuristic",
        ),
        (
            {
                "name": "x",
                "source": "a.csv",
                "target": {"column": "y", "kind": "binary", "positive": 1},
                "features": ["a"],
                "boost_from_baseline": True,
                "baseline": {"kind": "heuristic", "columns": ["a", "b"]},
            },
            "must be model",
        ),
    ],
)
def test_bad_spec_names_the_field(data, field, tmp_path):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        spec_from_dict(data, base_dir=tmp_path)


def test_missing_target_column_names_the_field(tmp_path):
    frame = pd.DataFrame({"a": range(50), "b": [0, 1] * 25})
    spec = spec_from_dict(
        {"name": "x", "source": "t.csv", "target": {"column": "nope", "kind": "binary", "positive": 1}},
        base_dir=tmp_path,
    )
    with pytest.raises(InputError, match="target.column.*nope"):
        prepare(frame, spec)
    spec = spec_from_dict(
        {"name": "x", "source": "t.csv", "target": {"column": "b", "kind": "binary", "positive": 7}}, base_dir=tmp_path
    )
    with pytest.raises(InputError, match="target.positive"):
        prepare(frame, spec)


def test_group_split_keeps_groups_together(tmp_path):
    frame = pd.DataFrame({"g": [i // 5 for i in range(500)], "x": range(500), "y": [i % 2 for i in range(500)]})
    spec = spec_from_dict(
        {
            "name": "x",
            "source": "t.csv",
            "group": "g",
            "split": {"kind": "group"},
            "target": {"column": "y", "kind": "binary", "positive": 1},
        },
        base_dir=tmp_path,
    )
    prep = prepare(frame, spec)
    assert "g" not in prep.features
    sp = split(prep, seed=1)
    sets = [set(prep.groups[idx]) for idx in (sp.train, sp.valid, sp.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(sp.train) + len(sp.valid) + len(sp.test) == 500


def test_time_split_is_out_of_time(panel_and_truth, tmp_path):
    panel, _ = panel_and_truth
    spec = builtin_spec("churn", tmp_path)
    prep = prepare(panel, spec)
    sp = split(prep, seed=0)
    assert (
        prep.times[sp.train].max()
        < prep.times[sp.valid].min()
        <= prep.times[sp.valid].max()
        < prep.times[sp.test].min()
    )
    assert "as_of" not in prep.features and "tier_future" not in prep.features


def test_cli_bad_spec_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsource: a.csv\ntarget: {column: y, kind: binary}\n")
    result = CliRunner().invoke(app, ["train", "--spec", str(bad), "--json"])
    assert result.exit_code == 2
    assert "positive" in result.output
    frame = tmp_path / "t.csv"
    pd.DataFrame({"a": range(40), "b": [0, 1] * 20}).to_csv(frame, index=False)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\nsource: t.csv\ntarget: {column: missing, kind: binary, positive: 1}\n")
    result = CliRunner().invoke(app, ["train", "--spec", str(spec), "--json"])
    assert result.exit_code == 2
    assert "target.column" in result.output


def test_cli_spec_reads_a_relative_source_from_features_when_given(tmp_path):
    """`train --spec FILE --features DIR`: a relative `source` is read from DIR (as a built-in task's
    `panel.parquet` is); without --features, from the spec file's folder; a missing one is exit 2 naming both."""
    specs, feats = tmp_path / "specs", tmp_path / "feats"
    specs.mkdir(), feats.mkdir()
    pd.DataFrame({"a": range(40), "b": [0, 1] * 20}).to_parquet(feats / "panel.parquet", index=False)
    spec = specs / "mine.yaml"
    spec.write_text("name: mine\nsource: panel.parquet\ntarget: {column: missing, kind: binary, positive: 1}\n")
    result = CliRunner().invoke(app, ["train", "--spec", str(spec), "--json"])
    assert result.exit_code == 2
    assert "field source: 'panel.parquet' not found at" in result.output
    assert f"the spec file's folder {specs}" in result.output and "--features DIR" in result.output
    # with --features the table is found and read: the next error is the spec's own (its target column)
    result = CliRunner().invoke(app, ["train", "--spec", str(spec), "--features", str(feats), "--json"])
    assert result.exit_code == 2 and "not found" not in result.output
    assert "missing" in result.output
    result = CliRunner().invoke(app, ["train", "--spec", str(spec), "--features", str(specs), "--json"])
    assert result.exit_code == 2 and f"read from --features {specs}" in result.output
