"""The package tree shows the course: subpackages per part, no import cycles, old import paths still work."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import gpt_helpers

PACKAGE = Path(gpt_helpers.__file__).resolve().parent
FAMILY_PROTOCOL = {"MODEL_CLASS", "config_from_hf", "state_dict_from_hf"}
SUBPACKAGES = {"gpt2", "text", "training", "families", "checkpoints", "inside", "speed"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """gpt_helpers modules that `path` imports at module level (lazy imports inside functions do not count)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
    return found


def test_every_module_sits_in_a_part_of_the_course():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {"__init__", "__main__", "cli", "plotting"}, f"modules outside the subpackages: {sorted(top)}"
    subs = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subs == SUBPACKAGES


def test_no_import_cycles_between_modules():
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        if path.name == "__init__.py":
            continue  # a package's __init__ re-exports its modules; the modules themselves must not form a cycle
        graph[name] = {t for t in _imports(path) if t in modules and not modules[t].name == "__init__.py"}

    def visit(node, stack):
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(node) :], node]))
        for nxt in graph.get(node, ()):
            visit(nxt, [*stack, node])

    for node in graph:
        visit(node, [])


def test_old_flat_module_paths_still_import():
    from gpt_helpers.weights import load_gpt2_safetensors  # noqa: F401 (the README's import before 2026-12)

    for old, module in gpt_helpers._OLD_MODULE_PATHS.items():
        assert importlib.import_module(f"gpt_helpers.{old}") is module
        assert getattr(gpt_helpers, old) is module


def test_every_top_level_name_comes_from_a_subpackage():
    for name in gpt_helpers.__all__:
        obj = getattr(gpt_helpers, name)
        home = getattr(obj, "__module__", None)
        if home is not None:  # classes and functions; constants have no __module__
            assert home.split(".")[1] in SUBPACKAGES | {"plotting"}, f"gpt_helpers.{name} lives in {home}"


def test_subpackages_reexport_their_modules():
    for sub in SUBPACKAGES:
        package = importlib.import_module(f"gpt_helpers.{sub}")
        for path in (PACKAGE / sub).glob("[!_]*.py"):
            module = importlib.import_module(f"gpt_helpers.{sub}.{path.stem}")
            # the loader protocol of checkpoints/hf.py (FAMILY_MODULES) has the same names in every family module
            names = [n for n in module.__all__ if n not in FAMILY_PROTOCOL]
            missing = [n for n in names if getattr(package, n, None) is not getattr(module, n)]
            assert not missing, f"gpt_helpers.{sub} does not re-export {missing} from {path.name}"
