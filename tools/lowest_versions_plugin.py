"""pytest plugin for tools/check_lowest_versions.py: a test that needs a course-only package is reported as not run.

The lowest-versions venv holds gpt_helpers' declared dependencies and pytest only. A test that
imports a package the course installs but gpt_helpers does not declare (transformers, say: the
equivalence tests' reference) fails there with ModuleNotFoundError. This plugin reports exactly
those as skipped, "not run here: needs <module>", so the summary counts them apart. Only an import
written in the repository's own scripts and tests (tests/, benchmarks/) counts: if gpt_helpers
imported such a package, that is a missing dependency, and the failure stays a failure, as does
every other one. LOWEST_VERSIONS_DEV_ONLY lists the import names, comma-separated;
LOWEST_VERSIONS_ROOT is the repository, LOWEST_VERSIONS_PACKAGE the package folder inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEV_ONLY = {name for name in os.environ.get("LOWEST_VERSIONS_DEV_ONLY", "").split(",") if name}
ROOT = Path(os.environ.get("LOWEST_VERSIONS_ROOT", ".")).resolve()
PACKAGE = Path(os.environ.get("LOWEST_VERSIONS_PACKAGE", "gpt_helpers")).resolve()


def import_site(excinfo: pytest.ExceptionInfo) -> Path | None:
    """The file whose import statement raised (the innermost frame outside importlib)."""
    for entry in reversed(excinfo.traceback):
        path = Path(str(entry.path))
        if "importlib" not in str(entry.path) and path.is_file():
            return path.resolve()
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a failure caused by a test or script importing a course-only package into a 'not run' report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.excinfo is None or not call.excinfo.errisinstance(ModuleNotFoundError):
        return
    module = (call.excinfo.value.name or "").split(".")[0]
    site = import_site(call.excinfo)
    outside_package = site is not None and site.is_relative_to(ROOT) and not site.is_relative_to(PACKAGE)
    if module in DEV_ONLY and outside_package:
        report.outcome = "skipped"
        _, line, _ = item.location
        report.longrepr = (str(item.path), (line or 0) + 1, f"not run here: needs {module} (not a dependency)")
