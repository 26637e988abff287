"""Stored notebooks carry no widget state: without a kernel a page shows the static figure and the text fallback.

`jupyter nbconvert --execute` stores ipywidgets controls (metadata.widgets and widget-view outputs);
GitHub then shows an empty area and nbviewer or a fresh JupyterLab frozen controls. After executing
a notebook with controls, run `python tools/strip_widget_state.py NOTEBOOK.ipynb`.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
WIDGET_MIMES = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")
FALLBACK = "[交互控件：在 JupyterLab 里运行这个单元格之后才能拖动]"
FIX = "run: python tools/strip_widget_state.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_widget_state_is_stored(path):
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state in its metadata; {FIX} {path.name}"
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            found = [mime for mime in WIDGET_MIMES if mime in output.get("data", {})]
            assert not found, f"{path.name} cell {index} stores a widget output {found}; {FIX} {path.name}"


def test_every_live_figure_has_its_static_fallback():
    """Notebook 10: each cell that shows controls stores the text line and the figure drawn with the defaults."""
    nb = nbformat.read(ROOT / "notebooks" / "10_look_inside.ipynb", as_version=4)
    live = [c for c in nb.cells if c.cell_type == "code" and re.search(r"^show_live\(", c.source, re.MULTILINE)]
    assert len(live) == 3, "the sampling, attention and logit-lens controls"
    for cell in live:
        texts = [o.data.get("text/plain", "") for o in cell.outputs if o.output_type == "display_data"]
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert texts[0] == FALLBACK, texts
        assert len(pngs) == 1, "the figure drawn with the default values"


def test_strip_widget_state_removes_both_kinds():
    import importlib.util

    spec = importlib.util.spec_from_file_location("strip_widget_state", ROOT / "tools" / "strip_widget_state.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {WIDGET_MIMES[1]: {"state": {}}}
    view = {WIDGET_MIMES[0]: {"model_id": "abc"}, "text/plain": FALLBACK}
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=view)]))
    assert tool.strip_widget_state(nb) == 1
    assert "widgets" not in nb.metadata
    assert dict(nb.cells[0].outputs[0].data) == {"text/plain": FALLBACK}
