"""Notebook 16: parameter counts equal transformers', FLOPs equal the counter's, and the roofline file is sound."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.utils import logging

from gpt_helpers import (
    DEEPSEEK_V3_CONFIG,
    QWEN3_30B_A3B,
    QWEN3_NEXT_80B_A3B,
    KVCache,
    arithmetic_intensity,
    attainable_flops,
    attention_shape,
    counted_flops,
    expected_distinct_experts,
    forward_flops,
    model_from_hf_config,
    parameter_counts,
    parameter_formula,
    ridge_intensity,
)
from gpt_helpers.checkpoints.hf import HF_CONFIGS

logging.set_verbosity_error()
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "roofline.py"
RESULT = ROOT / "benchmarks" / "results" / "roofline.json"

PUBLISHED = {
    "gpt2": HF_CONFIGS["openai-community/gpt2"],
    "qwen3-0.6b": HF_CONFIGS["Qwen/Qwen3-0.6B"],
    "llama-3.2-1b": HF_CONFIGS["meta-llama/Llama-3.2-1B"],
    "qwen3-30b-a3b": QWEN3_30B_A3B,
    "qwen3-next-80b-a3b": QWEN3_NEXT_80B_A3B,
    "deepseek-v3": DEEPSEEK_V3_CONFIG,
}
# (total, active without the looked-up embedding), counted once with transformers 5.24 on the meta device
KNOWN = {
    "gpt2": (124_439_808, 123_653_376),
    "qwen3-30b-a3b": (30_532_122_624, 3_041_867_776),
    "qwen3-next-80b-a3b": (79_674_391_296, 3_563_764_480),
    "deepseek-v3": (671_026_404_352, 36_625_603_584),
}


def routed(config: dict) -> tuple[int, int]:
    """(routed experts per MoE layer, experts per token) of a config.json."""
    return config.get("n_routed_experts", config.get("num_experts", 0)), config.get("num_experts_per_tok", 0)


def hf_counts(config: dict) -> dict:
    """parameter_counts of transformers' model for a config.json, built on the meta device."""
    config = {key: value for key, value in config.items() if key != "quantization_config"}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    return parameter_counts(model, *routed(config))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_counts_equal_transformers_and_the_formula(name):
    config = PUBLISHED[name]
    theirs = hf_counts(config)
    assert theirs == parameter_formula(config)
    if name in KNOWN:
        assert (theirs["total"], theirs["active"]) == KNOWN[name]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_counts_of_the_course_models(name):
    config = PUBLISHED[name]
    shapes = {key: value for key, value in config.items() if key != "quantization_config"}  # fp8 storage
    ours = parameter_counts(model_from_hf_config(shapes, device="meta"), *routed(config))
    assert ours == parameter_formula(config)


VARIANTS = [
    QWEN3_30B_A3B | {"tie_word_embeddings": True, "num_hidden_layers": 4},
    QWEN3_30B_A3B | {"mlp_only_layers": [0, 3], "num_hidden_layers": 5},
    QWEN3_30B_A3B | {"decoder_sparse_step": 2, "num_hidden_layers": 5},
    DEEPSEEK_V3_CONFIG | {"first_k_dense_replace": 0, "num_hidden_layers": 3, "n_shared_experts": 2},
    DEEPSEEK_V3_CONFIG | {"num_hidden_layers": 5, "q_lora_rank": None},
    QWEN3_NEXT_80B_A3B | {"num_hidden_layers": 8, "mlp_only_layers": [1, 6], "num_experts_per_tok": 4},
    HF_CONFIGS["openai-community/gpt2"] | {"n_layer": 3, "n_inner": 1000},
]


@pytest.mark.parametrize("config", VARIANTS, ids=range(len(VARIANTS)))
def test_formula_equals_transformers_on_changed_configs(config):
    assert hf_counts(config) == parameter_formula(config)


def test_active_counts_follow_the_conventions():
    """DeepSeek-V3's 37B leaves the looked-up embedding out; Qwen3-30B-A3B's 3.3B counts it."""
    ds, q30 = parameter_formula(DEEPSEEK_V3_CONFIG), parameter_formula(QWEN3_30B_A3B)
    assert round(ds["active"] / 1e9) == 37 and round(ds["active_with_embedding"] / 1e9) == 38
    assert round(q30["active_with_embedding"] / 1e8) == 34 and round(q30["active"] / 1e8) == 30
    # tied: the token table is the head (a matmul), nothing is "only looked up" but GPT-2's position table
    gpt2 = parameter_formula(HF_CONFIGS["openai-community/gpt2"])
    assert gpt2["embedding"] == 1024 * 768 and gpt2["head"] == 50257 * 768
    assert parameter_formula(HF_CONFIGS["Qwen/Qwen3-0.6B"])["embedding"] == 0


def test_parameter_counts_errors():
    model = model_from_hf_config(QWEN3_30B_A3B | {"num_hidden_layers": 1}, device="meta")
    with pytest.raises(ValueError, match="pass the number of routed experts"):
        parameter_counts(model)  # experts present, n_experts not given
    with pytest.raises(ValueError, match="not a multiple of n_experts=7"):
        parameter_counts(model, 7, 2)
    with pytest.raises(ValueError, match="0 <= top_k <= n_experts"):
        parameter_counts(model, 4, 5)
    with pytest.raises(ValueError, match="model_type 'mamba' is not one of"):
        parameter_formula({"model_type": "mamba"})


SMALL = {
    "dense": HF_CONFIGS["openai-community/gpt2"] | dict(n_embd=32, n_layer=2, n_head=4, n_positions=64, n_ctx=64),
    "moe": QWEN3_30B_A3B
    | dict(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        moe_intermediate_size=8,
        num_experts=6,
        num_experts_per_tok=2,
        max_position_embeddings=64,
    ),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_flop_formula_equals_the_counter(name):
    config = SMALL[name]
    torch.manual_seed(0)
    model = model_from_hf_config(config).eval()
    counts = parameter_formula(config)
    assert parameter_counts(model, *routed(config)) == counts
    att = attention_shape(config)
    idx = torch.randint(0, config["vocab_size"], (2, 20))
    counted = counted_flops(model, idx)  # prefill of 2 sequences
    assert counted == 2 * forward_flops(counts["active_matrix"], att, 20, 0, causal=False)
    assert counted > 2 * forward_flops(counts["active_matrix"], att, 20, 0, causal=True)
    cache = KVCache.for_model(model, 2, max_len=21)
    with torch.no_grad():
        model(idx, cache=cache)
    assert counted_flops(model, idx[:, -1:], cache=cache) == 2 * forward_flops(counts["active_matrix"], att, 1, 20)


def test_forward_flops_by_hand_and_errors():
    att = dict(layers=2, heads=3, qk_dim=4, v_dim=5)
    # 3 tokens after 10 cached: keys seen 11 + 12 + 13 = 36; per key 2 * 3 * (4 + 5) = 54 per layer
    assert forward_flops(100, att, 3, 10) == 2 * 100 * 3 + 2 * 54 * 36
    assert forward_flops(100, att, 3, 10, causal=False) == 2 * 100 * 3 + 2 * 54 * 3 * 13
    with pytest.raises(ValueError, match="n_tokens >= 1"):
        forward_flops(100, att, 0, 10)
    # Qwen3-Next: only the full-attention layers (every fourth) grow with the context
    assert attention_shape(QWEN3_NEXT_80B_A3B) == dict(layers=12, heads=16, qk_dim=256, v_dim=256)
    assert attention_shape(DEEPSEEK_V3_CONFIG) == dict(layers=61, heads=128, qk_dim=192, v_dim=128)


def test_expected_distinct_experts():
    import itertools

    assert expected_distinct_experts(128, 8, 1) == pytest.approx(8)
    assert expected_distinct_experts(128, 8, 0) == 0
    pairs = list(itertools.combinations(range(5), 2))
    exact = sum(len(set(a) | set(b) | set(c)) for a in pairs for b in pairs for c in pairs) / len(pairs) ** 3
    assert expected_distinct_experts(5, 2, 3) == pytest.approx(exact)
    values = [expected_distinct_experts(32, 2, b) for b in range(1, 200)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)) and values[-1] < 32
    with pytest.raises(ValueError, match="0 < top_k <= n_experts"):
        expected_distinct_experts(4, 5, 1)


def test_roofline_helpers():
    assert attainable_flops(0.5, 100.0, 20.0) == 10.0 and attainable_flops(50, 100.0, 20.0) == 100.0
    assert ridge_intensity(100.0, 20.0) == 5.0
    assert arithmetic_intensity(10.0, 4) == 2.5
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="must be a finite positive number"):
            attainable_flops(1.0, bad, 10.0)
    with pytest.raises(ValueError, match="bytes_read must be"):
        arithmetic_intensity(1.0, 0)


def check_roofline_schema(result: dict, quick: bool) -> None:
    """The keys and the internal consistency of a benchmarks/roofline.py result."""
    assert result["schema_version"] == 1 and result["quick"] is quick
    assert result["command"].startswith("python benchmarks/roofline.py")
    for key in ("cpu", "cores", "threads", "torch", "memory_gib", "load_average_before"):
        assert key in result["machine"], key
    assert result["peak_matmul"]["flops_best"] >= result["peak_matmul"]["flops_median"] > 0
    assert result["read_bandwidth"]["bytes_best"] >= result["read_bandwidth"]["bytes_median"] > 0
    assert set(result["configs"]) == {"dense", "moe"}
    points = result["points"]
    for model in ("dense", "moe"):
        prefill = [p for p in points if p["model"] == model and p["kind"] == "prefill"]
        decode = [p for p in points if p["model"] == model and p["kind"] == "decode"]
        assert len(prefill) >= 2 and len(decode) >= 2, model
        assert all(p["batch"] == 1 and p["context"] == 0 for p in prefill)
        assert all(p["new_tokens"] == 1 and p["context"] == result["context"] for p in decode)
    for p in points:
        assert p["flops"] == p["formula_flops"] > 0, p  # the run checked the formula against the counter
        assert p["intensity"] == pytest.approx(p["flops"] / p["bytes"])
        assert p["flops_per_second"] == pytest.approx(p["flops"] / p["seconds"])
        assert p["bytes"] >= p["weight_bytes"] + p["kv_bytes"] and p["weight_bytes"] > 0
        assert (p["kv_bytes"] > 0) == (p["kind"] == "decode")  # prefill runs without a cache
        n_layers = result["configs"][p["model"]].get("num_hidden_layers", 0) if p["model"] == "moe" else 0
        assert len(p["distinct_experts"]) == n_layers
        if p["model"] == "moe":
            k = result["configs"]["moe"]["num_experts_per_tok"]
            assert all(
                k <= d <= min(result["configs"]["moe"]["num_experts"], k * p["batch"] * p["new_tokens"])
                for d in p["distinct_experts"]
            )


def test_committed_roofline_result():
    """The file notebook 16 reads: a full (not --quick) run, with its text beside it."""
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    check_roofline_schema(result, quick=False)
    text = RESULT.with_suffix(".txt").read_text(encoding="utf-8")
    assert result["command"] in text and result["date"] in text


def test_roofline_script_runs_quick(tmp_path):
    out = tmp_path / "roofline.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output", str(out)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    check_roofline_schema(json.loads(out.read_text(encoding="utf-8")), quick=True)
    assert out.with_suffix(".txt").is_file() and "ridge point" in run.stdout
