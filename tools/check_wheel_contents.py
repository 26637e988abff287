#!/usr/bin/env python3
"""Build gpt_helpers' wheel and check that it holds exactly the package's modules, data files and licences.

The expected list comes from the source tree: every .py file under gpt_helpers/ (all subpackages)
and every file in gpt_helpers/data/; the wheel's .dist-info must hold METADATA (with
License-Expression: Apache-2.0 and both License-File entries), WHEEL, RECORD, entry_points.txt,
top_level.txt and the two licence files under licenses/. Anything more (a module deleted from the
source but left in a stale build/lib, say) or less (a subpackage without __init__.py, a data file
not declared as package data) fails the check, and the script prints the wheel's file list.

The wheel is built with `uv build --wheel` from a copy of the working tree as it is (build/ and
dist/ included, .git and venvs left out), so a leftover build/ in a developer's tree is caught and
the tree itself is not touched. setuptools is held at the lowest version [build-system] allows
(a build constraint), so that bound is tested too. Needs uv (pinned in requirements-dev.txt) and
access to the package index. Usage: python tools/check_wheel_contents.py [--uv PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gpt_helpers"
LICENSE_FILES = ["LICENSE", "gpt_helpers/data/LICENSE-GPT2.txt"]
SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache")


def expected_package_files(root: Path) -> set[str]:
    """Every module of the package (all subpackages) and every data file, as wheel paths."""
    package = root / PACKAGE
    modules = {p for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    data = {p for p in (package / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return {p.relative_to(root).as_posix() for p in modules | data}


def lowest_build_requirements(pyproject: Path) -> list[str]:
    """[build-system] requires with each `name>=X` turned into `name==X`."""
    requires = tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]["requires"]
    pins = []
    for requirement in requires:
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", requirement)
        if not match:
            raise ValueError(f"[build-system] requires {requirement!r}: declare it as 'name>=X'")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def problems(names: list[str], root: Path) -> list[str]:
    """What is wrong with a wheel holding these files (empty list: nothing)."""
    dist_info = [n for n in names if n.split("/")[0].endswith(".dist-info")]
    package = {n for n in names if n not in dist_info}
    expected = expected_package_files(root)
    found = []
    found += [f"in the wheel but not in the source tree: {n}" for n in sorted(package - expected)]
    found += [f"in the source tree but not in the wheel: {n}" for n in sorted(expected - package)]
    folders = {n.split("/")[0] for n in dist_info}
    if len(folders) != 1:
        return [*found, f"expected one .dist-info folder, found {sorted(folders)}"]
    (folder,) = folders
    want = {"METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt"}
    want |= {f"licenses/{name}" for name in LICENSE_FILES}
    got = {n.removeprefix(folder + "/") for n in dist_info}
    found += [f"{folder}: unexpected {n}" for n in sorted(got - want)]
    found += [f"{folder}: missing {n}" for n in sorted(want - got)]
    return found


def metadata_problems(metadata: str, pyproject: Path) -> list[str]:
    """Licence and dependency fields of METADATA that do not match pyproject.toml."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    headers = metadata.split("\n\n", 1)[0].splitlines()
    found = []
    if f"License-Expression: {project['license']}" not in headers:
        found.append(f"METADATA has no 'License-Expression: {project['license']}'")
    for name in LICENSE_FILES:
        if f"License-File: {name}" not in headers:
            found.append(f"METADATA has no 'License-File: {name}'")
    requires = [h.removeprefix("Requires-Dist: ").replace(" ", "") for h in headers if h.startswith("Requires-Dist:")]
    for dep in project["dependencies"]:
        if dep.replace(" ", "") not in requires:
            found.append(f"METADATA does not require {dep}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Build the wheel from a copy of the tree and compare its files with the source tree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv") or "uv", help="the uv executable")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temp dir)")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="wheel-contents-"))
    try:
        src, out = work / "src", work / "dist"
        shutil.copytree(ROOT, src, ignore=SKIP)  # the expected list comes from this copy too
        leftover_build = (src / "build").exists()  # before the build below makes one
        constraints = work / "build-constraints.txt"
        pins = lowest_build_requirements(ROOT / "pyproject.toml")
        constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
        cmd = [args.uv, "build", "--wheel", "--quiet", "--out-dir", str(out), "--build-constraint", str(constraints)]
        print("+", " ".join([*cmd, str(src)]), f"({', '.join(pins)})", flush=True)
        if subprocess.run([*cmd, str(src)]).returncode:
            print(f"FAIL: the wheel does not build with {', '.join(pins)}")
            return 1
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != 1:
            print(f"FAIL: expected one wheel, found {[w.name for w in wheels]}")
            return 1
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = sorted(n for n in wheel.namelist() if not n.endswith("/"))
            metadata = next((wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA")), "")
        print(f"{wheels[0].name}: {len(names)} files")
        for name in names:
            print(f"  {name}")
        found = problems(names, src) + metadata_problems(metadata, src / "pyproject.toml")
        if leftover_build and found:
            found.append("build/ exists in the working tree: delete it (a stale build/lib ships deleted modules)")
        if found:
            print("FAIL:", *found, sep="\n  ")
            return 1
        print(
            f"ok: the wheel holds exactly the {len(expected_package_files(src))} files of {PACKAGE}/ and both licences"
        )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
