"""GLOSSARY.md is the one list of terms: prose never uses a name it lists under 不要用."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from notebook_sync import ROOT

GLOSSARY = ROOT / "GLOSSARY.md"
DIAGRAM_ONLY = "（仅图）"
CJK = r"[\u3400-\u9fff]"
# ASCII punctuation touching a Chinese character: Chinese prose uses full-width ，。：；？！（）
ASCII_PUNCT = re.compile(rf"{CJK}[,;:!?(]|[,;:!?)]{CJK}|{CJK}\.(?=\s|$)")


@dataclass(frozen=True)
class Variant:
    """A name not to use, the glossary term to use instead, and where the rule applies."""

    text: str
    term: str
    diagrams_only: bool

    def pattern(self) -> re.Pattern:
        """Latin variants match as whole words; Chinese ones anywhere."""
        word = re.escape(self.text)
        return re.compile(rf"(?<![A-Za-z]){word}(?![A-Za-z])" if self.text.isascii() else word)


def glossary_rows() -> list[list[str]]:
    """The cells of every row of the glossary table (header and rule excluded)."""
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert rows and rows[0][:3] == ["中文", "English", "不要用"], "GLOSSARY.md table header changed"
    return rows[1:]


def glossary_terms() -> list[str]:
    """Every preferred Chinese term ('A / B' rows give two)."""
    return [term.strip() for row in glossary_rows() for term in row[0].split("/") if term.strip()]


def glossary_variants() -> list[Variant]:
    """Every name listed under 不要用."""
    variants = []
    for row in glossary_rows():
        for item in filter(None, (v.strip() for v in row[2].split("、"))):
            only = item.endswith(DIAGRAM_ONLY)
            variants.append(Variant(item.removesuffix(DIAGRAM_ONLY), row[0], only))
    return variants


def prose_of_markdown(text: str) -> str:
    """Markdown without code, math, HTML tags, link targets and images' paths."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]*\$", " ", text)
    text = re.sub(r"<[^>\n]*>", " ", text)
    text = re.sub(r"\]\([^)\s]*\)", "]", text)
    return re.sub(r"https?://\S+", " ", text)


def prose_of_mermaid(text: str) -> str:
    """The labels of a Mermaid source: comments and styling lines removed."""
    keep = [
        line
        for line in text.splitlines()
        if not re.match(r"\s*(%%|classDef\b|class\b|style\b|linkStyle\b|flowchart\b|graph\b)", line)
    ]
    return "\n".join(keep)


def without_quotes(text: str) -> str:
    """Text with “quoted mentions” and > block quotes (the study note's words) blanked out."""
    text = re.sub(r"(?m)^\s*>.*$", lambda m: " " * len(m.group()), text)
    return re.sub(r"“[^”\n]*”", lambda m: " " * len(m.group()), text)


def violations(prose: str, *, diagram: bool, terms: list[str], variants: list[Variant]) -> list[str]:
    """Uses of variants and ASCII punctuation in Chinese prose, as short descriptions."""
    prose = without_quotes(prose)
    covered = [(m.start(), m.end()) for term in terms for m in re.finditer(re.escape(term), prose)]
    found = []
    # longer variants first, so 笔记本 is reported once, not also as 笔记
    for variant in sorted(variants, key=lambda v: -len(v.text)):
        if variant.diagrams_only and not diagram:
            continue
        for m in variant.pattern().finditer(prose):
            if any(start <= m.start() and m.end() <= end for start, end in covered):
                continue  # part of a preferred term (笔记 inside 学习笔记) or of a longer variant
            covered.append((m.start(), m.end()))
            context = prose[max(0, m.start() - 12) : m.end() + 12].replace("\n", " ")
            found.append(f"uses “{variant.text}” (use “{variant.term}”): …{context}…")
    for m in ASCII_PUNCT.finditer(prose):
        context = prose[max(0, m.start() - 12) : m.end() + 12].replace("\n", " ")
        found.append(f"ASCII punctuation {m.group()!r} in Chinese prose: …{context}…")
    return found


def prose_sources() -> list[tuple[str, str, bool]]:
    """(place, prose, is_diagram) for every notebook Markdown cell, diagram source and the README."""
    sources = []
    for nb in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        for i, cell in enumerate(json.loads(nb.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                place = f"{nb.relative_to(ROOT)} cell {i}"
                sources.append((place, prose_of_markdown(text), False))
                for block in re.findall(r"```mermaid(.*?)```", text, flags=re.S):
                    sources.append((place + " (mermaid)", prose_of_mermaid(block), True))
    for mmd in sorted((ROOT / "notebooks" / "figures").glob("*.mmd")) + sorted(ROOT.glob("docs/**/*.mmd")):
        # the course map lists the code each notebook adds (LayerNorm, FeedForward): class names are
        # allowed there as in prose; the concept diagrams in notebooks/figures use the Chinese terms
        is_concept_diagram = mmd.name != "course_map.mmd"
        sources.append(
            (str(mmd.relative_to(ROOT)), prose_of_mermaid(mmd.read_text(encoding="utf-8")), is_concept_diagram)
        )
    sources.append(("README.md", prose_of_markdown((ROOT / "README.md").read_text(encoding="utf-8")), False))
    return sources


SOURCES = prose_sources()


@pytest.mark.parametrize(("place", "prose", "diagram"), SOURCES, ids=[s[0] for s in SOURCES])
def test_prose_uses_glossary_terms(place, prose, diagram):
    problems = violations(prose, diagram=diagram, terms=glossary_terms(), variants=glossary_variants())
    assert not problems, f"{place}:\n" + "\n".join(problems)


def test_glossary_is_consistent():
    """No term is listed twice, and no variant is another row's preferred term."""
    terms = glossary_terms()
    assert len(terms) == len(set(terms)), "a term appears in two rows of GLOSSARY.md"
    clashes = {v.text for v in glossary_variants()} & set(terms)
    assert not clashes, f"listed both as a term and as a variant: {sorted(clashes)}"


def test_checker_catches_variants_and_spares_mentions():
    """Guards the guard: a use is flagged; a quoted mention, a longer term and code are not."""
    terms, variants = glossary_terms(), glossary_variants()

    def check(markdown: str, diagram: bool = False) -> list[str]:
        return violations(prose_of_markdown(markdown), diagram=diagram, terms=terms, variants=variants)

    assert check("模型用跳跃连接保留信息。")
    assert check("模型用掩码多头注意力。")
    assert check("权重共 472 MB。")
    assert check("这里有一个问题,需要解决。")
    assert not check("学习笔记里的“跳跃连接”就是残差连接。")
    assert not check("学习笔记写道：\n\n> 嵌入向量 + 位置编码\n")
    assert not check("正如学习笔记所说，权重共 472 MiB。")
    assert not check("调用 `nn.Dropout` 与 `F.layer_norm`，见 $x_{MB}$。")
    assert not check("LayerNorm 的公式")  # class names may appear in prose ...
    assert check("LayerNorm", diagram=True)  # ... but diagrams use the Chinese term
