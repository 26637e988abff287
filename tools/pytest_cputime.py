"""A pytest plugin that records CPU time (user+sys) and wall time per test item, kernels included.

Why: the machine is shared, so wall-clock times are noisy; CPU seconds per file say where the test
run's work goes. Each item's figure is this process's CPU time (all threads) plus the CPU time of
child processes that ended during the item (a notebook's Jupyter kernel is stopped, and so counted,
in the teardown of the notebook's last cell).

Usage (works with and without xdist; one JSON-lines file per process, appended item by item;
use a new directory for each run):
    CPUTIME_DIR=/tmp/cpu PYTHONPATH=tools python -m pytest -p pytest_cputime ...
    python tools/cputime_report.py /tmp/cpu
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest


def _children_cpu() -> float:
    """User+sys seconds of the child processes that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Measure one item: setup, call and teardown (the teardown may stop a notebook's kernel)."""
    wall0, self0, child0 = time.time(), time.process_time(), _children_cpu()
    yield
    wall1, self1, child1 = time.time(), time.process_time(), _children_cpu()
    _write(
        {
            "nodeid": item.nodeid,
            "file": item.nodeid.split("::")[0],
            "start": wall0,
            "wall": wall1 - wall0,
            "cpu_self": self1 - self0,
            "cpu_children": child1 - child0,
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        }
    )


def _write(record: dict) -> None:
    """Append one record to $CPUTIME_DIR/<worker>.jsonl at once (an interrupted run keeps what it measured)."""
    out_dir = os.environ.get("CPUTIME_DIR")
    if not out_dir:
        return
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / f"{record['worker']}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
