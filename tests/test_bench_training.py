"""benchmarks/bench_training.py --tiny: the training-step benchmark runs and checks equal losses before timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training.py"


def test_training_benchmark_runs_on_a_tiny_model():
    import transformers  # noqa: F401  (the script's reference; not a gpt_helpers dependency)

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--repeats", "1", "--batch-size", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    # it compares before it times: both of ours must match Hugging Face's loss and gradients
    assert out.count("same loss and gradients as Hugging Face") == 2, out
    for name in ("ours (pretrain)", "ours (as taught)", "Hugging Face"):
        assert f"{name}" in out and "tokens/s" in out, out
    assert "ours (pretrain) / Hugging Face tokens/s" in out, out
