"""Run an exercise notebook's cells in a plain namespace (no kernel), for the tests of its self-checks.

Outside IPython get_ipython() is None, so the notebooks' one-line error display is not installed and a failing
self-check raises its AssertionError into the test. Used by tests/test_ch09_exercises.py and
tests/test_exercises_ch11.py, ch13 (and open to the later chapters' tests):

    code, checks = code_and_checks("ch13", "solutions")   # code cells in order, self-checks by exercise id
    namespace = solve("ch13")                               # every code cell but the self-checks, run once
    assert "自检 13.1 通过" in run_source(checks["13.1"], dict(namespace))
"""

from __future__ import annotations

import contextlib
import io

from test_exercises import CHECK, first_line, load

__all__ = ["code_and_checks", "run_source", "solve"]


def run_source(source: str, namespace: dict) -> str:
    """Execute one cell's source in `namespace`; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<notebook cell>", "exec"), namespace)
    return out.getvalue()


def code_and_checks(chapter: str, kind: str) -> tuple[list[str], dict[str, str]]:
    """The code cells that are not self-checks, in order, and the self-check cells by exercise id."""
    code, checks = [], {}
    for cell in load(chapter, kind).cells:
        if cell.cell_type == "code":
            match = CHECK.match(first_line(cell))
            if match:
                checks[match.group(1)] = cell.source
            else:
                code.append(cell.source)
    return code, checks


def solve(chapter: str, kind: str = "solutions") -> tuple[dict, dict[str, str]]:
    """The namespace after every code cell of the notebook but the self-checks, and the self-checks by id."""
    code, checks = code_and_checks(chapter, kind)
    namespace: dict = {}
    for source in code:
        run_source(source, namespace)
    return namespace, checks
