"""Find the code a notebook teaches and compare it with gpt_helpers, by syntax tree."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^# Same code as (gpt_helpers/(?:\w+/)?\w+\.py)\b")


@dataclass
class TaughtDef:
    """One class or function defined in a marked notebook cell."""

    notebook: str
    module: str
    name: str
    node: ast.AST


def taught_definitions(notebook: Path) -> list[TaughtDef]:
    """Top-level classes/functions of every cell whose first line is the sync marker."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        match = MARKER.match(source)
        if not match:
            continue
        for node in ast.parse(source).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                found.append(TaughtDef(notebook.name, match.group(1), node.name, node))
    return found


def module_definition(module: str, name: str) -> ast.AST | None:
    """The top-level class/function `name` of a gpt_helpers module, or None."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return node
    return None


def drift(taught: TaughtDef) -> str | None:
    """None when the notebook's definition equals the package's, else a description."""
    other = module_definition(taught.module, taught.name)
    if other is None:
        return f"{taught.notebook}: {taught.name} is not defined in {taught.module}"
    if ast.dump(taught.node) != ast.dump(other):
        return (
            f"{taught.notebook}: {taught.name} differs from {taught.module}; "
            "edit both so the taught code and the package stay one source of truth"
        )
    return None
