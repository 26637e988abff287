"""Remove stored widget state from executed notebooks, so a page without a kernel shows the text fallback.

`jupyter nbconvert --execute` stores every ipywidgets control twice: its state in `metadata.widgets`
and a widget-view output in the cell. GitHub, nbviewer and a JupyterLab that has not run the cell
then show empty space or frozen controls that look live. After this script a cell keeps its
text/plain output (notebook 10 prints "[交互控件：...]") and its static figure; running the cell
in JupyterLab brings the controls back. tests/test_notebook_widgets.py checks the result.

    python tools/strip_widget_state.py notebooks/10_look_inside.ipynb
"""

import sys
from pathlib import Path

import nbformat

WIDGET_MIMES = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")


def strip_widget_state(nb: nbformat.NotebookNode) -> int:
    """Drop metadata.widgets and the widget mime types of every output; return how many outputs changed."""
    nb.metadata.pop("widgets", None)
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if any(mime in data for mime in WIDGET_MIMES):
                for mime in WIDGET_MIMES:
                    data.pop(mime, None)
                changed += 1
    return changed


def main(paths: list[str]) -> None:
    """Strip the widget state of each notebook in place."""
    if not paths:
        raise SystemExit("usage: python tools/strip_widget_state.py NOTEBOOK.ipynb [...]")
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        changed = strip_widget_state(nb)
        nbformat.write(nb, path)
        print(f"{path}: widget state removed from {changed} outputs")


if __name__ == "__main__":
    main(sys.argv[1:])
