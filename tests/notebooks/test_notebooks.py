"""Notebooks are thin and run in the test suite, in order, on a small bank (STYLE §9).

Each `.ipynb` is paired with a jupytext percent-format `.py` (the file to review and edit; sync
with `jupytext --sync notebooks/*.py`); their cells must agree. The notebooks assert what they
show, so an error cell is a failed claim, not only a crash."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_every_notebook_is_paired_with_its_text_file():
    import jupytext

    for path in NOTEBOOKS:
        text = path.with_suffix(".py")
        assert text.is_file(), f"{path.name} has no jupytext pair {text.name}"
        paired, notebook = jupytext.read(text), nbformat.read(path, as_version=4)
        assert [(c.cell_type, c.source) for c in paired.cells] == [(c.cell_type, c.source) for c in notebook.cells], (
            f"{path.name} and {text.name} differ: run `jupytext --sync notebooks/{text.name}`"
        )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_notebooks_run_in_order(monkeypatch, tmp_path):
    assert NOTEBOOKS, "no notebooks found"
    monkeypatch.setenv("NB_CUSTOMERS", "1500")
    monkeypatch.setenv("NB_TRIALS", "3")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        errors = [
            o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
        ]
        assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
