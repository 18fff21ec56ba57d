"""examples/quickstart.ipynb runs top to bottom in a fresh kernel (nbclient) and shows what it promises."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_shows_the_view_inline(tmp_path: Path, monkeypatch) -> None:
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    nb = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    root = str(Path(__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the plot cell shows a figure"
    frames = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}) and "<table" in o["data"]["text/html"]]
    assert len(frames) >= 3, "extract's summary, the head ranking and show's ranking as DataFrames"
    page = (tmp_path / "quickstart.html").read_text(encoding="utf-8")
    inline = [o["data"]["text/html"] for o in outputs if "srcdoc=" in o.get("data", {}).get("text/html", "")]
    assert len(inline) == 1 and html.unescape(re.search(r'srcdoc="([^"]*)"', inline[0]).group(1)) == page
