"""notebooks/explore.ipynb executes top to bottom against the bundled samples (so it cannot rot)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        "strip the outputs before committing (nbstripout, or Jupyter: Edit > Clear Outputs of All Cells)"


def test_notebook_executes(samples_home, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("TALKINDEX_NOTEBOOK_HOME", str(samples_home))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError with the failing cell and its traceback

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "<a href='file://" in html and "#t=" in html, "hits table with playable deep links"
    assert any("image/png" in o.get("data", {}) for o in outputs), "the timeline plot"
    assert "best hit contains the answer" in "".join(o.get("text", "") for o in outputs)
