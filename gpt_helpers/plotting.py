"""Plot defaults shared by the notebooks: a CJK font so Chinese labels render."""

from __future__ import annotations

from importlib import resources

__all__ = ["setup_plotting"]


def _find_cjk_font() -> str | None:
    """Path of NotoSansCJK-Regular.ttc shipped by the noto-cjk-sans-otc package, if installed."""
    try:
        path = resources.files("noto_cjk_sans_otc") / "NotoSansCJK-Regular.ttc"
    except ModuleNotFoundError:
        return None
    return str(path) if path.is_file() else None


def setup_plotting(dpi: int = 100) -> None:
    """Register the Noto CJK font with matplotlib and set the course's plot defaults."""
    import matplotlib
    from matplotlib import font_manager

    path = _find_cjk_font()
    if path is None:
        raise RuntimeError(
            "NotoSansCJK-Regular.ttc not found; install the course requirements "
            "(pip install -r requirements.txt, or pip install 'gpt-helpers[plots]') so Chinese labels can be drawn"
        )
    font_manager.fontManager.addfont(path)
    matplotlib.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "DejaVu Sans"]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK font has no U+2212 minus glyph
    matplotlib.rcParams["figure.dpi"] = dpi
    matplotlib.rcParams["savefig.dpi"] = dpi
    matplotlib.rcParams["svg.hashsalt"] = "gpt-from-scratch"
