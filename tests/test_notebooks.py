"""Every notebook in notebooks/ runs top to bottom (quick settings) and stores no outputs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory) -> Path:
    """One default-data cache shared by the notebooks of this module."""
    return tmp_path_factory.mktemp("notebook-data")


def test_the_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_load_nwb.ipynb",
        "02_fit_mmvm.ipynb",
        "03_impute_missing_animal.ipynb",
        "04_decode.ipynb",
        "05_place_cells.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, data_cache: Path, monkeypatch, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "stored outputs"
    assert "NEUROVAMP_NOTEBOOK_QUICK" in code[0].source
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 4

    # the notebooks ask for the kernel scripts/setup.sh registers ("neurovamp"); here it is this
    # interpreter, found first on a private JUPYTER_PATH (the user's kernels are not consulted)
    assert notebook.metadata.kernelspec.name == "neurovamp"
    spec = tmp_path / "jupyter" / "kernels" / "neurovamp" / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                "display_name": "neurovamp (tests)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("NEUROVAMP_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("NEUROVAMP_DATA", str(data_cache))
    start = time.perf_counter()
    client = NotebookClient(notebook, timeout=300, kernel_name="neurovamp",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    elapsed = time.perf_counter() - start
    errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # no widget warnings (tqdm's notebook bars need ipywidgets, which the test extra installs)
    streams = "".join(o.get("text", "") for cell in code for o in cell.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert "IProgress not found" not in streams and "TqdmWarning" not in streams
    # every figure is followed, before the next code cell, by prose that says how to read it
    cells = notebook.cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and any(o.get("data", {}).get("image/png") for o in cell.get("outputs", [])):
            assert i + 1 < len(cells) and cells[i + 1].cell_type == "markdown", f"figure of cell {i} not explained"
    # figures were drawn (every notebook shows at least one plot)
    assert any(o.get("data", {}).get("image/png") for cell in code for o in cell.get("outputs", []))
    assert elapsed < 120, f"{path.name} took {elapsed:.0f} s in quick mode"
