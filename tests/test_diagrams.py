"""Diagrams are SVG images rendered from Mermaid sources; they are current, linked and readable.

Needs no browser: the staleness check compares the sha256 that tools/render_diagrams.py
records in each SVG with the hash of its source and render settings.
"""

import importlib.util
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from notebook_sync import ROOT

_spec = importlib.util.spec_from_file_location("render_diagrams", ROOT / "tools" / "render_diagrams.py")
render_diagrams = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_diagrams)

# JupyterLab 4.6 in a 1400 px wide window shows a Markdown cell's content about 880 px wide and
# scales wider images down to it (max-width: 100%); GitHub's README column is about as wide.
DISPLAY_WIDTH = 880
MAX_DISPLAY_HEIGHT = 880  # a laptop screen
MIN_LABEL_PX = 12

SOURCES = render_diagrams.all_sources()
SVGS = sorted(p for d in render_diagrams.DIAGRAM_DIRS if d.is_dir() for p in d.glob("*.svg"))
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
MARKDOWN_FILES = sorted(p for p in ROOT.glob("*.md")) + sorted((ROOT / "docs").rglob("*.md"))

IMAGE_MD = re.compile(r"!\[(?P<alt>[^\]]*)\]\(\s*<?(?P<src>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE_HTML = re.compile(r"<img\b[^>]*>", re.I)
MERMAID_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*mermaid\b", re.M | re.I)


def rel(path: Path) -> str:
    """Path relative to the repository, for messages."""
    return path.relative_to(ROOT).as_posix()


def markdown_documents():
    """(name, base directory, markdown text, cell attachments) for every notebook Markdown cell and top-level .md."""
    for nb in NOTEBOOKS:
        for i, cell in enumerate(json.loads(nb.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "markdown":
                yield f"{rel(nb)} cell {i}", nb.parent, "".join(cell["source"]), cell.get("attachments", {})
    for md in MARKDOWN_FILES:
        yield rel(md), md.parent, md.read_text(encoding="utf-8"), {}


def strip_code(text: str) -> str:
    """Markdown text without fenced code blocks and inline code spans (examples, not images)."""
    text = re.sub(r"^\s{0,3}(`{3,}|~{3,}).*?^\s{0,3}\1\s*$", "", text, flags=re.M | re.S)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text, flags=re.S)


def images(text: str):
    """(alt, src) of every Markdown or HTML image in a Markdown text, outside code."""
    text = strip_code(text)
    for m in IMAGE_MD.finditer(text):
        yield m.group("alt"), m.group("src")
    for tag in IMAGE_HTML.findall(text):
        src = re.search(r"\bsrc\s*=\s*[\"']([^\"']*)[\"']", tag, re.I)
        alt = re.search(r"\balt\s*=\s*[\"']([^\"']*)[\"']", tag, re.I)
        yield (alt.group(1) if alt else ""), (src.group(1) if src else "")


DOCUMENTS = list(markdown_documents())


def test_there_are_diagrams():
    assert SOURCES, "no diagram sources found"
    assert (ROOT / "docs" / "figures" / "course_map.mmd") in SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=[rel(p) for p in SOURCES])
def test_svg_is_rendered_from_the_current_source(source):
    svg = source.with_suffix(".svg")
    fix = f"run: python tools/render_diagrams.py {rel(source)}"
    assert svg.exists(), f"{rel(svg)} is missing; {fix}"
    recorded = render_diagrams.recorded_hash(svg)
    assert recorded, f"{rel(svg)} records no source hash (not written by tools/render_diagrams.py); {fix}"
    assert recorded == render_diagrams.source_hash(source), f"{rel(svg)} is older than its source; {fix}"


@pytest.mark.parametrize("svg", SVGS, ids=[rel(p) for p in SVGS])
def test_svg_has_a_source(svg):
    assert svg.with_suffix(".mmd").exists(), f"{rel(svg)} has no Mermaid source beside it"


@pytest.mark.parametrize("svg", SVGS, ids=[rel(p) for p in SVGS])
def test_svg_is_readable_as_an_image(svg):
    text = svg.read_text(encoding="utf-8")
    name = rel(svg)
    assert "<foreignObject" not in text, f"{name}: HTML labels in <foreignObject> do not show in an <img>"
    assert re.search(r"<text\b", text), f"{name}: no <text> labels"
    assert "<script" not in text.lower(), f"{name}: contains a script"
    assert not re.search(r"(?:href|src)\s*=\s*[\"']https?:", text), f"{name}: refers to a remote resource"
    root = re.search(r"<svg\b[^>]*>", text).group(0)
    _, _, vb_width, vb_height = render_diagrams.view_box(text)
    width = float(re.search(r'\swidth="([\d.]+)"', root).group(1))
    height = float(re.search(r'\sheight="([\d.]+)"', root).group(1))
    assert abs(width - vb_width) <= 1 and abs(height - vb_height) <= 1, f"{name}: intrinsic size differs from viewBox"
    assert "Noto Sans CJK SC" in re.search(r"font-family:([^;]*)", text).group(1), f"{name}: no CJK font first"

    scale = min(1.0, DISPLAY_WIDTH / vb_width)
    shown_height = vb_height * scale
    assert shown_height <= MAX_DISPLAY_HEIGHT, (
        f"{name}: shown {vb_width * scale:.0f}x{shown_height:.0f} px, taller than {MAX_DISPLAY_HEIGHT} px; "
        "lay it out left to right (flowchart LR) or split it"
    )
    # Every font size the SVG declares, except Mermaid's tooltip (HTML, never drawn in an image).
    sizes = [
        float(size)
        for rule in text.split("}")
        if "mermaidTooltip" not in rule
        for size in re.findall(r"font-size\s*[:=]\s*[\"']?([\d.]+)px", rule)
    ]
    assert sizes, f"{name}: declares no font size"
    smallest = min(sizes) * scale
    assert smallest >= MIN_LABEL_PX, (
        f"{name}: {vb_width:.0f} px wide, shown at {scale:.0%}: labels {smallest:.1f} px < {MIN_LABEL_PX} px; "
        "make it narrower"
    )


@pytest.mark.parametrize("source", SOURCES, ids=[rel(p) for p in SOURCES])
def test_diagram_is_shown_somewhere(source):
    target = source.with_suffix(".svg").resolve()
    shown = [
        name
        for name, base, text, _ in DOCUMENTS
        for _, src in images(text)
        if not urlsplit(src).scheme and (base / unquote(urlsplit(src).path)).resolve() == target
    ]
    assert shown, f"{rel(source)}: no notebook or README shows {target.name}"


def test_no_mermaid_blocks_in_markdown():
    found = [name for name, _, text, _ in DOCUMENTS if MERMAID_FENCE.search(text)]
    assert not found, (
        "Mermaid blocks show as code on GitHub, nbviewer and in VS Code; move each to notebooks/figures/NN_name.mmd, "
        f"link the rendered .svg, and run tools/render_diagrams.py: {found}"
    )


def test_local_images_exist_and_have_alt_text():
    problems = []
    for name, base, text, attachments in DOCUMENTS:
        for alt, src in images(text):
            parts = urlsplit(src)
            if not alt.strip():
                problems.append(f"{name}: image {src!r} has no alt text")
            if parts.scheme == "attachment":
                if unquote(parts.path) not in attachments:
                    problems.append(f"{name}: missing attachment {src!r}")
            elif parts.scheme in {"http", "https"} or src.startswith("//"):
                problems.append(f"{name}: remote image {src!r}")
            elif parts.scheme == "data":
                continue
            elif not src or not (base / unquote(parts.path)).is_file():
                problems.append(f"{name}: image {src!r} does not exist")
    assert not problems, "\n".join(problems)


def test_course_map_lists_every_notebook():
    course_map = (ROOT / "docs" / "figures" / "course_map.mmd").read_text(encoding="utf-8")
    labels = re.findall(r'\["([^"]*)"\]', course_map)
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number = nb.name[:2]
        assert any(label.startswith(f"{number} ") for label in labels), f"the course map has no box for {nb.name}"
    chapters = sorted({p.name.split("_")[0] for p in (ROOT / "notebooks" / "exercises").glob("ch*_*.ipynb")})
    for chapter in chapters:
        assert chapter in course_map, f"the course map does not mention exercises/{chapter}_*"


def test_node_lock_file_pins_the_renderer_and_names_no_registry():
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    pinned = render_diagrams.mermaid_cli_version()
    assert lock["packages"]["node_modules/@mermaid-js/mermaid-cli"]["version"] == pinned
    resolved = [name for name, entry in lock["packages"].items() if "resolved" in entry]
    # .npmrc sets omit-lockfile-registry-resolved, so npm records no download addresses.
    assert not resolved, f"package-lock.json records download addresses (check .npmrc): {resolved[:3]}"
