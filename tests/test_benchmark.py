"""The benchmark script runs end to end (on a tiny model: this checks the script, not speed)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generation.py"


def test_benchmark_script_runs_and_prints_the_ratios():
    args = ["--tiny", "--repeats", "1", "--naive-repeats", "1", "--new-tokens", "5"]
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("greedy continuations identical (5 tokens): True") == 2  # GPT-2, then the Qwen3 family
    for line in [
        "ours cached / Hugging Face tokens/s:",
        "ours cached / naive loop tokens/s:",
        "forward (1, 1024): Hugging Face time / ours:",
        "forward (8, 256): Hugging Face time / ours:",
        "Qwen3 ours cached / Hugging Face tokens/s:",
        "Qwen3 forward (1, 512): Hugging Face time / ours:",
    ]:
        assert line in out, out
