"""pytest plugin for tools/check_lowest_versions.py: a test that needs a course-only package is reported as not run.

The lowest-versions venv holds gpt_helpers' declared dependencies and pytest only. A test that
imports a package the course installs but gpt_helpers does not declare (transformers, say: the
equivalence tests' reference) fails there with ModuleNotFoundError. This plugin reports exactly
those as skipped, "not run here: needs <module>", so the summary counts them apart; every other
failure stays a failure. LOWEST_VERSIONS_DEV_ONLY lists the import names, comma-separated.
"""

from __future__ import annotations

import os

import pytest

DEV_ONLY = {name for name in os.environ.get("LOWEST_VERSIONS_DEV_ONLY", "").split(",") if name}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a failure caused by importing a course-only package into a 'not run' report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.excinfo is None or not call.excinfo.errisinstance(ModuleNotFoundError):
        return
    module = (call.excinfo.value.name or "").split(".")[0]
    if module in DEV_ONLY:
        report.outcome = "skipped"
        path, line, _ = item.location
        report.longrepr = (str(item.path), (line or 0) + 1, f"not run here: needs {module} (not a dependency)")
