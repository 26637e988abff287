"""Render the course's Mermaid diagrams (``*.mmd``) to SVG images shown by relative links.

Sources live beside their images: ``notebooks/figures/NN_name.mmd`` -> ``NN_name.svg`` and
``docs/figures/*.mmd`` for the README. Rendering needs Node.js, the packages pinned in
``package.json`` (``PUPPETEER_SKIP_DOWNLOAD=1 npm ci``) and Chromium (``/usr/bin/chromium``
or ``$CHROMIUM``). Checking needs neither: every SVG records the sha256 of its source and of
the render settings, and ``tests/test_diagrams.py`` compares it.

    python tools/render_diagrams.py            # render every source
    python tools/render_diagrams.py FILE.mmd   # render some
    python tools/render_diagrams.py --stale    # render only sources whose SVG is missing or stale
    python tools/render_diagrams.py --check    # render all into a temp dir; fail on errors or stale SVGs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIAGRAM_DIRS = [ROOT / "notebooks" / "figures", ROOT / "docs" / "figures"]

# Fonts with CJK glyphs first (Debian/Ubuntu fonts-noto-cjk, Google Fonts, macOS, Windows), so a
# viewer never falls back to a Latin-only font that draws Chinese as boxes.
FONT_FAMILY = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif'
FONT_SIZE_PX = 16

# htmlLabels off: labels become SVG <text>, not HTML inside <foreignObject>, which image viewers
# (an SVG shown through <img>) and many converters do not draw.
MERMAID_CONFIG = {
    "theme": "default",
    "htmlLabels": False,
    "flowchart": {"htmlLabels": False, "curve": "basis", "padding": 12, "wrappingWidth": 600},
    "fontFamily": FONT_FAMILY,
    "themeVariables": {"fontFamily": FONT_FAMILY, "fontSize": f"{FONT_SIZE_PX}px"},
    # Opaque edge-label backgrounds: the default (half transparent) lets a line cross the text.
    "themeCSS": ".edgeLabel rect { opacity: 1; fill: #f0f0f0; }",
    "deterministicIds": True,
    "deterministicIDSeed": "gpt-from-scratch",
}

# Flags Chromium needs on a machine without a display or network (as root in CI: no sandbox).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Bump when the post-processing below changes the SVG it writes.
POSTPROCESS_VERSION = 1

HASH_RE = re.compile(r"<!-- Rendered from (\S+) by tools/render_diagrams\.py; sha256 ([0-9a-f]{64})\. ")


def mermaid_cli_version() -> str:
    """The exact @mermaid-js/mermaid-cli version pinned in package.json."""
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    return package["dependencies"]["@mermaid-js/mermaid-cli"]


def source_hash(source: Path) -> str:
    """sha256 of a diagram source (line endings normalised) together with every render setting."""
    return text_hash(source.read_bytes().decode("utf-8"))


def text_hash(text: str) -> str:
    """sha256 of a diagram's Mermaid text (line endings normalised) together with every render setting."""
    settings = {
        "mermaid": MERMAID_CONFIG,
        "mermaid-cli": mermaid_cli_version(),
        "postprocess": POSTPROCESS_VERSION,
    }
    payload = json.dumps(settings, sort_keys=True, ensure_ascii=False) + "\n" + text.replace("\r\n", "\n")
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def recorded_hash(svg: Path) -> str | None:
    """The source hash written into an SVG by this script, or None."""
    match = HASH_RE.search(svg.read_text(encoding="utf-8")[:500])
    return match.group(2) if match else None


def all_sources() -> list[Path]:
    """Every diagram source, sorted."""
    return sorted(p for d in DIAGRAM_DIRS if d.is_dir() for p in d.glob("*.mmd"))


def view_box(svg_text: str) -> tuple[float, float, float, float]:
    """The (x, y, width, height) of the root <svg> element's viewBox."""
    root = re.search(r"<svg\b[^>]*>", svg_text).group(0)
    return tuple(float(v) for v in re.search(r'viewBox="([^"]+)"', root).group(1).split())


def postprocess(raw: str, source: Path, text: str) -> str:
    """Give the SVG an intrinsic pixel size, drop the max-width style, and record the hash of the rendered text."""
    if "<foreignObject" in raw:
        raise RuntimeError(f"{source.name}: the SVG contains <foreignObject> (HTML labels); keep htmlLabels off")
    if "<text" not in raw:
        raise RuntimeError(f"{source.name}: the SVG has no <text> labels")
    _, _, width, height = view_box(raw)
    root = re.search(r"<svg\b[^>]*>", raw).group(0)
    new_root = re.sub(r'\swidth="[^"]*"', "", root)
    new_root = re.sub(r'\sheight="[^"]*"', "", new_root)
    new_root = re.sub(r"max-width:\s*[\d.]+px;\s*", "", new_root)
    # Intrinsic size = viewBox size: viewers scale a wide diagram down to the column, never a small one up.
    new_root = new_root.replace("<svg ", f'<svg width="{math.ceil(width)}" height="{math.ceil(height)}" ', 1)
    body = raw.replace(root, new_root, 1)
    rel = source.relative_to(ROOT).as_posix()
    header = (
        f"<!-- Rendered from {rel} by tools/render_diagrams.py; sha256 {text_hash(text)}. "
        "Edit the .mmd and re-render; do not edit this file. -->\n"
    )
    return header + body.rstrip() + "\n"


def chromium_path() -> str:
    """The Chromium binary to drive: $CHROMIUM, else the Debian package's."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        sys.exit(f"error: Chromium not found at {path}; install it (Debian: apt-get install chromium) or set CHROMIUM")
    return path


def render(pairs: list[tuple[Path, Path]]) -> None:
    """Render each (source, target) pair; targets get the post-processed SVG."""
    if not (ROOT / "node_modules" / "@mermaid-js" / "mermaid-cli").is_dir():
        sys.exit("error: @mermaid-js/mermaid-cli is not installed; run: PUPPETEER_SKIP_DOWNLOAD=1 npm ci")
    with tempfile.TemporaryDirectory() as tmp:
        # Render a snapshot of each source and hash that same text, so an edit made while rendering
        # leaves the SVG stale (detected) rather than recording the new hash over the old picture.
        texts = [src.read_bytes().decode("utf-8") for src, _ in pairs]
        snapshots = [Path(tmp) / f"{i}.mmd" for i in range(len(pairs))]
        for snapshot, text in zip(snapshots, texts, strict=True):
            snapshot.write_text(text, encoding="utf-8")
        raw_paths = [Path(tmp) / f"{i}.svg" for i in range(len(pairs))]
        job = {
            "puppeteer": {"executablePath": chromium_path(), "headless": True, "args": CHROMIUM_ARGS},
            "mermaid": MERMAID_CONFIG,
            "files": [[str(snapshot), str(raw)] for snapshot, raw in zip(snapshots, raw_paths, strict=True)],
        }
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        result = subprocess.run(["node", str(ROOT / "tools" / "render_diagrams.mjs"), str(job_path)], cwd=ROOT)
        if result.returncode:
            sys.exit("error: rendering failed (see above)")
        for (src, target), raw, text in zip(pairs, raw_paths, texts, strict=True):
            partial = target.with_name(target.name + ".partial")
            partial.write_text(postprocess(raw.read_text(encoding="utf-8"), src, text), encoding="utf-8")
            partial.replace(target)


def check(sources: list[Path]) -> int:
    """Render into a temp dir (so the renderer is known to work) and compare recorded hashes, not bytes."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [(src, Path(tmp) / f"{i}.svg") for i, src in enumerate(sources)]
        render(pairs)
        for src, fresh in pairs:
            committed = src.with_suffix(".svg")
            rel = src.relative_to(ROOT).as_posix()
            if not committed.exists():
                problems.append(f"{rel}: no SVG; run python tools/render_diagrams.py {rel}")
            elif recorded_hash(committed) != recorded_hash(fresh):
                problems.append(f"{rel}: the SVG is stale; run python tools/render_diagrams.py {rel}")
            else:
                old = view_box(committed.read_text(encoding="utf-8"))[2:]
                new = view_box(fresh.read_text(encoding="utf-8"))[2:]
                if any(abs(a - b) > 0.05 * b for a, b in zip(old, new, strict=True)):
                    # Same source, other fonts or another browser build: worth knowing, not a failure.
                    print(
                        f"note: {rel}: renders here at {new[0]:.0f}x{new[1]:.0f}, committed {old[0]:.0f}x{old[1]:.0f}"
                    )
    print(f"rendered {len(pairs)} diagrams with Chromium; {len(problems)} stale or missing")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: render all, some, the stale ones, or check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, help=".mmd files (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stale", action="store_true", help="render only missing or stale SVGs")
    mode.add_argument("--check", action="store_true", help="render into a temp dir; fail if any committed SVG is stale")
    args = parser.parse_args(argv)

    sources = [p.resolve() for p in args.sources] or all_sources()
    for src in sources:
        if src.suffix != ".mmd" or not src.is_file():
            sys.exit(f"error: {src} is not a .mmd file")
    if not sources:
        print("no diagram sources found")
        return 0

    if args.check:
        return check(sources)

    if args.stale:
        sources = [s for s in sources if recorded_hash_or_none(s.with_suffix(".svg")) != source_hash(s)]
    if not sources:
        print("every SVG is up to date")
        return 0
    render([(src, src.with_suffix(".svg")) for src in sources])
    for src in sources:
        print(f"rendered {src.relative_to(ROOT).as_posix()} -> {src.with_suffix('.svg').name}")
    return 0


def recorded_hash_or_none(svg: Path) -> str | None:
    """recorded_hash for an existing SVG, None when it is missing."""
    return recorded_hash(svg) if svg.exists() else None


if __name__ == "__main__":
    raise SystemExit(main())
