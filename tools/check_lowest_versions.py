#!/usr/bin/env python3
"""Check that the lowest versions pyproject.toml allows really work: install them and run the unit tests.

pyproject.toml declares a lower bound (`name>=X`) for every dependency of gpt_helpers, extras
included. This script makes a fresh venv with uv, installs the package with all its extras
(`uv pip install --resolution lowest-direct -e .[extra,...]`) plus pytest at the version
requirements.txt pins, checks that each declared dependency came out at exactly its lower bound (so
the bound is what was tested, not something newer a resolver picked), and runs the package's unit
tests there with `python -m pytest tests`. It also resolves a plain `pip install .` for Linux x86_64
and checks that it still brings PyPI's CUDA build of torch (nvidia-* packages), as README.md says.

Which tests run: every tests/test_*.py except the repository tests in REPOSITORY_TESTS below (they
check notebooks, diagrams, the glossary, style and the browser view with the pinned course
environment; they test the course, not the package's dependency bounds, and .ci/run runs them in the
main step), and test files that import, at module level, a package the course uses but gpt_helpers
does not declare (transformers, for instance; found by reading each file's imports). A test that
imports such a package inside its own code stops at that import here: tools/lowest_versions_plugin.py
reports it as "not run here: needs <module>" (only if the import is in tests/ or benchmarks/, never
in gpt_helpers),
and any other failure fails the check. The output lists every file and test that did not run and why.

PyPI's old torch wheels for Linux are CUDA builds: torch 2.5.0 and its nvidia-* packages are a
2.7 GiB download. uv keeps them in its cache (`uv cache dir`; default ~/.cache/uv, or UV_CACHE_DIR),
which lives outside the clone, so repeated runs on one machine link the files from the cache instead
of downloading them. The venv (about 6 GiB) is deleted at the end.

Needs uv (pinned in requirements-dev.txt) and access to the package index.
Usage: python tools/check_lowest_versions.py [--uv PATH] [--python PYTHON] [--keep DIR] [pytest args...]
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# tests/ files that check the repository rather than the package, with the tool each needs
REPOSITORY_TESTS = {
    "test_benchmark.py": "benchmarks/bench_generation.py, which times against transformers",
    "test_browser.py": "Chromium and playwright: the rendered notebooks",
    "test_diagrams.py": "the mermaid renderer (npm) and the committed SVGs",
    "test_exercises.py": "nbformat: the exercise notebooks",
    "test_glossary.py": "the notebooks' prose against GLOSSARY.md",
    "test_nbval_float_tolerance.py": "nbval: the course's nbval patch",
    "test_notebook_sync.py": "the notebooks' taught cells against gpt_helpers",
    "test_repo.py": "ruff, git and the repository's files",
}


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lower_bounds(pyproject: Path) -> tuple[dict[str, str], list[str]]:
    """({name: lower bound} of every dependency and extra, [extra names]); every one must have `>=X`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = sorted(project.get("optional-dependencies", {}))
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", requirement)
        if not match:
            raise ValueError(f"pyproject.toml: {requirement!r} has no lower bound; declare it as 'name>=X'")
        bounds[canonical(match[1])] = match[2]
    return bounds, extras


def requires_python(pyproject: Path) -> str:
    """pyproject's requires-python, e.g. '>=3.11'."""
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["requires-python"]


def pinned(requirements: Path, name: str) -> str:
    """The `name==X` line of requirements.txt."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        if canonical(line.split("==")[0].strip()) == canonical(name) and "==" in line:
            return line.strip()
    raise ValueError(f"{requirements.name} pins no version of {name}")


def dev_only_modules(requirements: Path, declared: set[str]) -> list[str]:
    """Import names of what requirements.txt installs beyond gpt_helpers' declared dependencies."""
    names = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name = canonical(line.split("==")[0])
            if name not in declared:
                names.append(name.replace("-", "_"))
    return names


def module_level_imports(test_file: Path, modules: list[str], seen: set[Path] | None = None) -> list[str]:
    """Which of these modules a test file imports at module level, itself or through a module beside it."""
    seen = set() if seen is None else seen
    seen.add(test_file)
    found = []
    for node in ast.parse(test_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for root in (name.split(".")[0] for name in names):
            local = test_file.parent / f"{root}.py"  # e.g. `from test_exercises import load`
            if root in modules:
                found.append(root)
            elif local.is_file() and local not in seen:
                found += module_level_imports(local, modules, seen)
    return sorted(set(found))


def same_version(a: str, b: str) -> bool:
    """1.26 and 1.26.0 are the same release."""

    def parts(v: str) -> list[str]:
        p = v.split(".")
        while len(p) > 1 and p[-1] == "0":
            p.pop()
        return p

    return parts(a) == parts(b)


def plain_install_pulls_cuda(uv: str, pyproject: Path) -> tuple[str, int]:
    """(torch version, nvidia-* packages) that a plain `pip install .` resolves to on Linux x86_64, Python 3.11."""
    cmd = [uv, "pip", "compile", str(pyproject), "--python-version", "3.11", "--quiet", "--no-header"]
    cmd += ["--python-platform", "x86_64-manylinux_2_28", "--no-annotate"]
    pins = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout.split()
    torch = next((p.split("==")[1] for p in pins if p.startswith("torch==")), "missing")
    return torch, sum(1 for p in pins if p.startswith("nvidia-"))


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, echoing it."""
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Install the lowest allowed versions into a fresh venv and run the unit tests there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv") or "uv", help="the uv executable")
    parser.add_argument("--python", default=sys.executable, help="the interpreter for the venv")
    parser.add_argument("--keep", type=Path, help="make the venv here and keep it (default: a temp dir, deleted)")
    args, pytest_args = parser.parse_known_args(argv)

    pyproject, requirements = ROOT / "pyproject.toml", ROOT / "requirements.txt"
    bounds, extras = lower_bounds(pyproject)
    test_tools = [pinned(requirements, "pytest")]
    # what the venv holds: the declared dependencies, the package itself and the test tools
    in_venv = {*bounds, "gpt-helpers", *(canonical(tool.split("==")[0]) for tool in test_tools)}
    dev_only = dev_only_modules(requirements, in_venv)

    workdir = Path(tempfile.mkdtemp(prefix="lowest-versions-"))
    venv = args.keep or workdir / "venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    start = time.monotonic()
    try:
        cache = subprocess.run([args.uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
        print(f"uv cache: {cache}")
        if run([args.uv, "venv", "--quiet", "--python", args.python, str(venv)]).returncode:
            return 1
        # the lowest Python too: requires-python's bound (README: "on Python 3.11")
        lowest_python = re.fullmatch(r">=\s*(\d+\.\d+)", requires_python(pyproject))
        got = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not lowest_python or got != lowest_python[1]:
            want = lowest_python[1] if lowest_python else requires_python(pyproject)
            print(f"FAIL: the venv has Python {got}; requires-python's lower bound is {want}: pass --python {want}")
            return 1
        package = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
        install = [args.uv, "pip", "install", "--python", str(python), "--resolution", "lowest-direct"]
        if run([*install, "-e", package, *test_tools]).returncode:
            print("FAIL: the lowest versions pyproject.toml allows do not install")
            return 1
        installed_s = time.monotonic() - start

        freeze = subprocess.run(
            [args.uv, "pip", "freeze", "--python", str(python)], capture_output=True, text=True, check=True
        ).stdout
        installed = {}
        for line in freeze.splitlines():
            if "==" in line:
                name, version = line.split("==", 1)
                installed[canonical(name)] = version.strip()
        wrong = []
        print(f"{'dependency':<20} {'declared':<12} installed")
        for name, bound in bounds.items():
            got = installed.get(name, "missing")
            print(f"{name:<20} >={bound:<10} {got}")
            if not same_version(got, bound):
                wrong.append(f"{name}: declared >={bound}, the lowest resolution installed {got}")
        if wrong:
            print("FAIL: the lowest resolution did not install the declared lower bounds:", *wrong, sep="\n  ")
            return 1

        # README: a plain `pip install .` on Linux takes PyPI's CUDA build of torch too
        torch, nvidia = plain_install_pulls_cuda(args.uv, pyproject)
        print(f"plain install on Linux x86_64 resolves torch {torch} with {nvidia} nvidia-* packages")
        if not nvidia:
            print("FAIL: README says a plain install pulls the CUDA build of torch on Linux; it no longer does")
            return 1

        tests = ROOT / "tests"
        unknown = sorted(set(REPOSITORY_TESTS) - {p.name for p in tests.glob("test_*.py")})
        if unknown:
            print(f"FAIL: REPOSITORY_TESTS names files that do not exist: {unknown}")
            return 1
        skipped = dict(REPOSITORY_TESTS)
        for path in sorted(tests.glob("test_*.py")):
            needs = module_level_imports(path, dev_only)
            if path.name not in skipped and needs:
                skipped[path.name] = f"imports {', '.join(needs)} at module level (not a dependency)"
        print("not run here (.ci/run runs them in the course's environment):")
        for name, why in skipped.items():
            print(f"  tests/{name}: {why}")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tools"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["LOWEST_VERSIONS_DEV_ONLY"] = ",".join(dev_only)
        env["LOWEST_VERSIONS_ROOT"], env["LOWEST_VERSIONS_PACKAGE"] = str(ROOT), str(ROOT / "gpt_helpers")
        # empty caches: tiktoken caches every file it reads (also local ones) under the system temp dir,
        # and a copy cached by a newer tiktoken hides that 0.8-0.11 need blobfile to read them
        for var in ("TIKTOKEN_CACHE_DIR", "MPLCONFIGDIR"):
            (workdir / var.lower()).mkdir()
            env[var] = str(workdir / var.lower())
        # --confcutdir: the root conftest.py loads the course's nbval patch, which needs nbval
        cmd = [str(python), "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "-p", "lowest_versions_plugin"]
        cmd += ["--confcutdir", str(tests), *(f"--ignore={tests / name}" for name in skipped), *pytest_args]
        result = run(cmd, cwd=ROOT, env=env)
        print(f"lowest versions: install {installed_s:.0f} s, total {time.monotonic() - start:.0f} s")
        if result.returncode:
            print("FAIL: the unit tests fail with the lowest versions pyproject.toml allows")
        return result.returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
