"""Repository hygiene: CI runs the README's command, notebooks are stored cleanly, style holds."""

import inspect
import json
import re
import subprocess
import sys

import pytest
from notebook_sync import ROOT

import gpt_helpers

NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def readme_test_command() -> str:
    """The command in the README's code block that runs the tests."""
    commands = re.findall(r"^(python -m pytest .*)$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    assert commands, "README.md states no test command"
    assert len(set(commands)) == 1, f"README.md states different test commands: {set(commands)}"
    return commands[0]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines()]
    assert readme_test_command() in lines, ".ci/run does not run the README's test command"
    assert "set -euo pipefail" in lines, ".ci/run must stop at the first failing step"
    assert "pip install --quiet -r requirements.txt" in ci


def test_torch_is_pinned_to_the_cpu_wheel():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "torch==2.13.0" in lines
    assert "-e ." in lines


def test_no_registry_hosts_named():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    pattern = re.compile(r"pypi\.org|pythonhosted\.org|deb\.debian\.org|registry\.npmjs\.org")
    for name in tracked:
        path = ROOT / name
        if path.is_file() and path.suffix in {".py", ".md", ".txt", ".toml", ".cfg", ".ipynb", ""}:
            assert not pattern.search(path.read_text(encoding="utf-8", errors="ignore")), (
                f"{name} names a registry host"
            )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_cleanly(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    counts = [c["execution_count"] for c in cells if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), "run the notebook top to bottom in a fresh kernel"
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        assert not re.search(r"!\[[^\]]*\]\(https?://|<img[^>]+src=[\"']https?://", source), f"cell {i}: remote image"
        if cell["cell_type"] == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
            assert not errors or "raises-exception" in tags, f"cell {i}: stored error output"
            assert cell["outputs"] or not source.strip() or cell["execution_count"], f"cell {i}: never executed"


def test_public_objects_have_docstrings():
    for name in gpt_helpers.__all__:
        obj = getattr(gpt_helpers, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert (obj.__doc__ or "").strip(), f"gpt_helpers.{name} has no docstring"


def test_ruff_clean():
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run([*ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([*ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
