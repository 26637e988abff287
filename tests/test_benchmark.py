"""The benchmark script runs end to end (on a tiny model: this checks the script, not speed)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import torch

from gpt_helpers import GPTConfig, GPTModel

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generation.py"


def load_script():
    """The benchmark script as a module, for its helper functions."""
    spec = importlib.util.spec_from_file_location("bench_generation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_script_runs_and_prints_the_ratios():
    args = ["--tiny", "--repeats", "1", "--naive-repeats", "1", "--new-tokens", "5"]
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # GPT-2, the Qwen3 family, then the families of notebooks 11-13 (DeepSeek-V3 compares two prompts)
    assert out.count("greedy continuations identical (5 tokens): True") == 5
    for line in [
        "ours cached / Hugging Face tokens/s:",
        "ours cached / naive loop tokens/s:",
        "forward (1, 1024): Hugging Face time / ours:",
        "forward (8, 256): Hugging Face time / ours:",
        "Qwen3 ours cached / Hugging Face tokens/s:",
        "Qwen3 forward (1, 512): Hugging Face time / ours:",
        "ours cached / ceiling tokens/s:",
        "Hugging Face cached / ceiling tokens/s:",
        "int8 greedy continuation equal to float32's for the first",
        "int8 cached / int8 ceiling tokens/s:",
        "int8 cached / Hugging Face float32:",
        "int8 cached / ours float32:",
        "DeepSeek-V3 ours cached / transformers tokens/s",
        "Gemma 3 ours cached / transformers tokens/s:",
        "Qwen3-Next ours cached / transformers tokens/s:",
    ]:
        assert line in out, out
    # the ceiling printed is the bandwidth printed over the bytes per token printed
    bandwidth = float(re.search(r"memory read bandwidth: ([\d.]+) GiB/s", out).group(1))
    per_token = float(re.search(r"weights read per generated token \(batch 1, float32\): ([\d.]+) MiB", out).group(1))
    ceiling = float(re.search(r"ceiling: [\d.]+ GiB/s / [\d.]+ MiB = ([\d.]+) tokens/s", out).group(1))
    assert abs(ceiling - bandwidth * 1024 / per_token) <= 0.01 * ceiling + 0.1


def test_weight_bytes_per_token_counts_what_one_decoding_step_reads():
    bench = load_script()
    cfg = GPTConfig.from_preset("gpt2").with_(qkv_bias=True, tie_weights=True)  # GPT-2 small, as released
    with torch.device("meta"):  # shapes only, no memory
        tied, untied = GPTModel(cfg), GPTModel(cfg.with_(tie_weights=False))
    # notebook 07: the blocks, the final LayerNorm and the 50257 x 768 head are 123,653,376 floats;
    # each embedding lookup adds one row of 768 (token and position)
    assert bench.weight_bytes_per_token(tied) == 4 * (123_653_376 + 2 * 768)
    # untied, the head is its own matrix of the same size, and the token table is only looked up
    assert bench.weight_bytes_per_token(untied) == 4 * (123_653_376 + 2 * 768)
    # attention reads, per earlier position, one key and one value row of 768 floats in each of 12 blocks
    assert bench.kv_cache_bytes_per_position(tied) == 2 * 12 * 768 * 4


def test_each_run_gets_the_bandwidth_measured_just_before_and_after_it():
    bench = load_script()
    order = []
    readings = iter(range(100, 200, 10))  # the probe reads 100, 110, 120, ... in turn

    def probe():
        order.append("probe")
        return next(readings)

    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    runs = bench.timed_rounds(fns, repeats=2, warmup=0, probe=probe)
    assert order == ["probe", "a", "probe", "b", "probe"] * 2
    assert len(runs["a"]) == len(runs["b"]) == 2
    # round 1 reads 100 | a | 110 | b | 120, round 2 reads 130 | a | 140 | b | 150
    assert runs["bandwidth a"] == [105, 135] and runs["bandwidth b"] == [115, 145]


def test_int8_bytes_per_token_counts_the_int8_weights_scales_and_float_rest():
    from gpt_helpers import quantize_int8_

    bench = load_script()
    cfg = GPTConfig.from_preset("gpt2").with_(qkv_bias=True, tie_weights=True)
    torch.manual_seed(0)
    model = quantize_int8_(GPTModel(cfg))
    per_block_weights = 4 * 768 * 768 + 2 * 768 * 3072  # W_q, W_k, W_v, out_proj, the two FFN layers: 1 byte each
    per_block_rows = 4 * 768 + 3072 + 768  # output rows of those layers: one float32 scale and one bias each
    blocks = 12 * (per_block_weights + per_block_rows * 4 * 2)
    head = 50257 * 768 + 50257 * 4  # int8 rows and their scales; the head has no bias
    norms = (12 * 2 + 1) * 2 * 768 * 4  # LayerNorm scale and shift, float32
    rows = 768 * 4 + (768 + 4)  # one float32 position row; one int8 token row with its scale
    assert bench.int8_bytes_per_token(model) == blocks + head + norms + rows
