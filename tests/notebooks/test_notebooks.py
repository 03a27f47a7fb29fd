"""Notebooks are thin and run in the test suite, in order, on a small bank (STYLE §9)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
def test_notebooks_run_in_order(monkeypatch, tmp_path):
    assert NOTEBOOKS, "no notebooks found"
    monkeypatch.setenv("NB_CUSTOMERS", "1500")
    monkeypatch.setenv("NB_TRIALS", "3")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
