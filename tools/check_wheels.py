#!/usr/bin/env python3
"""Check that requirements.txt installs from wheels alone on every Python x platform the README names.

For each Python version and platform this resolves requirements.txt (without its `-e .` line, plus
the dependencies pyproject.toml declares for gpt_helpers) with
`uv pip compile --only-binary :all: --python-version V --python-platform P`, so a package that has
no wheel there (only a source distribution) fails the check. It prints one table row per
combination: the result, the number of packages, the download size of the wheels the resolution
picked (from the sizes the index reports) and how many nvidia-* packages came along (the CUDA
build of torch). Exit code 0 only if every combination resolves.

Needs uv (pinned in requirements-dev.txt) and network access to the package index; it installs
nothing. Usage: python tools/check_wheels.py [--uv PATH] [--requirements FILE] [--python 3.12 ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
# uv's names for the targets the README promises; macOS 14 is the oldest that torch 2.13 has wheels for
PLATFORMS = {
    "x86_64-manylinux_2_28": "Linux x86_64",
    "aarch64-manylinux_2_28": "Linux aarch64",
    "aarch64-apple-darwin": "macOS 14+ arm64",
    "x86_64-pc-windows-msvc": "Windows x86_64",
}
MACOS_TARGET = "14.0"


def requirements_without_editable(requirements: Path, pyproject: Path) -> str:
    """requirements.txt minus `-e ...` lines, plus gpt_helpers' own dependencies from pyproject.toml."""
    kept = [line for line in requirements.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("-e")]
    own = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return "\n".join([*kept, "# gpt_helpers' own dependencies (pyproject.toml)", *own]) + "\n"


def wheel_download_bytes(lock: Path) -> tuple[int, int, int]:
    """(packages, bytes of the wheels picked, nvidia-* packages) of a pylock.toml written by uv."""
    packages = tomllib.loads(lock.read_text(encoding="utf-8"))["packages"]
    total = 0
    for package in packages:
        wheels = package.get("wheels", [])
        if not wheels:
            raise ValueError(f"{package['name']} has no wheel in the resolution")
        # uv keeps only wheels that fit the target; where several fit, prefer a platform-specific one
        specific = [w for w in wheels if not w["url"].endswith("-none-any.whl")]
        total += int((specific or wheels)[0].get("size", 0))
    nvidia = sum(1 for p in packages if p["name"].startswith("nvidia-"))
    return len(packages), total, nvidia


def resolve(uv: str, requirements: Path, python: str, platform: str, workdir: Path) -> tuple[bool, str, tuple]:
    """Run one wheel-only resolution; return (ok, message, (packages, bytes, nvidia))."""
    out = workdir / f"{python}-{platform}"
    out.mkdir()
    lock = out / "pylock.toml"  # uv writes the PEP 751 lock format for this name: it carries wheel sizes
    env = dict(os.environ)
    if platform.endswith("apple-darwin"):
        env["MACOSX_DEPLOYMENT_TARGET"] = MACOS_TARGET
    cmd = [uv, "pip", "compile", str(requirements), "--only-binary", ":all:", "--python-version", python]
    cmd += ["--python-platform", platform, "--quiet", "--no-header", "-o", str(lock)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        return False, " / ".join(lines[:3])[:300] or f"uv exited with {result.returncode}", ()
    try:
        return True, "ok", wheel_download_bytes(lock)
    except (ValueError, KeyError, tomllib.TOMLDecodeError) as err:
        return False, f"unexpected lock file from uv: {err}", ()


def main(argv: list[str] | None = None) -> int:
    """Resolve every combination, print the table, return 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv"), help="the uv executable (default: uv on PATH)")
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--python", nargs="+", default=PYTHONS, help=f"Python versions (default {PYTHONS})")
    parser.add_argument("--platform", nargs="+", default=list(PLATFORMS), choices=list(PLATFORMS))
    args = parser.parse_args(argv)
    if not args.uv:
        parser.error("uv not found: pip install -r requirements-dev.txt (or pass --uv PATH)")

    failures = 0
    uv_version = subprocess.check_output([args.uv, "--version"], text=True).strip()
    print(f"Wheel-only resolution of {args.requirements.name} with {uv_version}")
    print(f"{'Python':<7} {'platform':<24} {'result':<7} {'packages':>8} {'download':>11} {'nvidia-*':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        requirements = workdir / "requirements-wheels.txt"
        requirements.write_text(requirements_without_editable(args.requirements, ROOT / "pyproject.toml"))
        combos = [(python, platform) for python in args.python for platform in args.platform]
        # the resolutions wait on the network, not the CPU: run a few at once (uv's cache is safe to share)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(lambda c: resolve(args.uv, requirements, c[0], c[1], workdir), combos)
            for (python, platform), (ok, message, counts) in zip(combos, results, strict=True):
                if ok:
                    n, size, nvidia = counts
                    row = f"{'ok':<7} {n:>8} {size / 1024**3:>7.2f} GiB {nvidia:>8}"
                    print(f"{python:<7} {PLATFORMS[platform]:<24} {row}")
                else:
                    failures += 1
                    print(f"{python:<7} {PLATFORMS[platform]:<24} {'FAILED':<7} {message}")
                sys.stdout.flush()
    total = len(args.python) * len(args.platform)
    verdict = "" if not failures else f"; {failures} FAILED"
    print(f"{total - failures} of {total} combinations resolve from wheels alone{verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
