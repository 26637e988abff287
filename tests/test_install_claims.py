"""What pyproject's extras promise works with what they install (also at their lowest versions).

tools/check_lowest_versions.py runs these with the lowest versions pyproject.toml allows: the
`plots` extra must draw Chinese labels, the `download` extra must find a cached checkpoint.
"""

import json
import os
import subprocess
import sys
import warnings

from notebook_sync import ROOT


def test_plots_extra_draws_chinese_labels():
    """setup_plotting() finds Noto Sans CJK SC in the .ttc, and drawing Chinese text misses no glyph."""
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from gpt_helpers.plotting import setup_plotting

    saved = dict(matplotlib.rcParams)
    try:
        setup_plotting()
        path = font_manager.findfont("Noto Sans CJK SC", fallback_to_default=False)
        assert path.endswith("NotoSansCJK-Regular.ttc"), path
        fig = Figure()
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_title("层归一化之后：均值与方差")
        ax.set_xlabel("词元位置")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.canvas.draw()
        missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
        assert not missing, missing[:3]
    finally:
        matplotlib.rcParams.update(saved)


def test_download_extra_finds_a_cached_checkpoint(tmp_path):
    """download_gpt2_safetensors goes through huggingface_hub's cache; offline it returns the cached file."""
    snapshot = tmp_path / "models--openai-community--gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (snapshot / "model.safetensors").write_bytes(b"not read here")
    (tmp_path / "models--openai-community--gpt2" / "refs").mkdir()
    (tmp_path / "models--openai-community--gpt2" / "refs" / "main").write_text("0" * 40)
    code = (
        "import sys; from gpt_helpers import download_gpt2_safetensors; "
        "print(download_gpt2_safetensors('gpt2', cache_dir=sys.argv[1]))"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")  # read by huggingface_hub at import: a fresh process
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(snapshot / "model.safetensors")
