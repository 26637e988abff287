"""The code each notebook teaches is the code gpt_helpers exports (one source of truth)."""

import ast
import copy
from pathlib import Path

import pytest
from notebook_sync import ROOT, TaughtDef, drift, taught_definitions

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TAUGHT = [t for nb in NOTEBOOKS for t in taught_definitions(nb)]

# What each notebook must teach in a synced cell (a notebook may teach more).
EXPECTED = {
    "01_layer_norm.ipynb": {"LayerNorm"},
    "02_gelu_feed_forward.ipynb": {"GELU", "FeedForward"},
    "03_shortcut_connections.ipynb": {"ExampleDeepNeuralNetwork", "layer_gradient_means"},
    "04_transformer_block.ipynb": {"MultiHeadAttention", "TransformerBlock"},
    "05_gpt_model.ipynb": {"GPTModel", "count_parameters", "parameter_breakdown"},
    "06_decoding.ipynb": {"generate_text_simple", "text_to_token_ids", "token_ids_to_text"},
    "07_kv_cache_and_sampling.ipynb": {"LayerKVCache", "KVCache", "top_k_filter", "top_p_filter"},
    "08_why_training_matters.ipynb": {
        "TokenWindowDataset",
        "create_dataloader",
        "calc_loss_batch",
        "calc_loss_loader",
        "train_model",
        "save_model",
        "load_model",
    },
    "09_gpt2_to_llama_qwen3.ipynb": {
        "RMSNorm",
        "rope_frequencies",
        "rotate_half",
        "apply_rope",
        "RoPE",
        "Llama3RopeScaling",
        "llama3_scaled_frequencies",
        "SwiGLUFeedForward",
        "GroupedQueryAttention",
        "LlamaQwenConfig",
        "LlamaQwenBlock",
        "LlamaQwenModel",
        "llama_qwen_parameter_breakdown",
    },
    "10_look_inside.ipynb": {"attention_weights", "logit_lens", "token_labels"},
    "11_latent_attention.ipynb": {
        "LayerMLACache",
        "MLACache",
        "deinterleave",
        "MultiHeadLatentAttention",
        "YarnRopeScaling",
        "yarn_mscale",
        "yarn_frequencies",
        "yarn_attention_factor",
        "yarn_softmax_scale",
        "YarnRoPE",
        "DeepSeekV3Config",
        "DeepSeekV3Block",
        "DeepSeekV3Model",
    },
    "12_sliding_window_attention.ipynb": {
        "sliding_window_mask",
        "RingKVCache",
        "SlidingWindowAttention",
        "GemmaRMSNorm",
        "GeGLUFeedForward",
        "LinearScaledRoPE",
        "gemma3_layer_types",
        "Gemma3Config",
        "Gemma3Block",
        "Gemma3Cache",
        "Gemma3Model",
        "gemma3_kv_cache_bytes",
    },
    "13_gated_deltanet.ipynb": {
        "l2_normalize",
        "gated_delta_rule_recurrent",
        "gated_delta_rule_chunked",
        "ShortConvolution",
        "GatedRMSNorm",
        "DeltaNetState",
        "GatedDeltaNet",
        "_plain_in_proj",
        "ZeroCenteredRMSNorm",
        "apply_partial_rope",
        "GatedAttention",
        "hybrid_layer_types",
        "Qwen3NextConfig",
        "Qwen3NextBlock",
        "Qwen3NextCache",
        "Qwen3NextModel",
        "qwen3_next_cache_nbytes",
    },
    "14_int8_weights.ipynb": {
        "quantize_per_row",
        "dequantize_per_row",
        "Int8Linear",
        "Int8Embedding",
        "quantize_int8_",
    },
    "15_mixture_of_experts.ipynb": {
        "check_routing_sizes",
        "softmax_topk_routing",
        "deepseek_routing",
        "SwiGLUExperts",
        "MoEFeedForward",
        "load_balancing_loss",
        "expert_load",
        "update_routing_bias_",
        "train_moe_balance",
    },
    "16_what_a_token_costs.ipynb": {
        "parameter_counts",
        "attention_shape",
        "forward_flops",
        "counted_flops",
        "arithmetic_intensity",
        "attainable_flops",
        "ridge_intensity",
        "expected_distinct_experts",
    },
}


@pytest.mark.parametrize("notebook", sorted(EXPECTED))
def test_notebook_teaches_expected_code(notebook):
    """Each notebook carries a synced cell for what it teaches."""
    path = ROOT / "notebooks" / notebook
    assert path.is_file(), f"{notebook} is missing"
    names = {t.name for t in taught_definitions(path)}
    assert EXPECTED[notebook] <= names, (
        f"{notebook} does not teach {sorted(EXPECTED[notebook] - names)} in a synced cell"
    )


@pytest.mark.parametrize("taught", TAUGHT, ids=[f"{t.notebook}:{t.name}" for t in TAUGHT])
def test_taught_code_matches_package(taught):
    """The notebook's definition and the package's are the same syntax tree."""
    problem = drift(taught)
    assert problem is None, problem


def test_each_definition_taught_once():
    """A class is taught in one notebook only; later notebooks import it."""
    seen = {}
    for t in TAUGHT:
        key = (t.module, t.name)
        assert key not in seen, f"{t.name} is taught in both {seen[key]} and {t.notebook}"
        seen[key] = t.notebook


def test_drift_is_detected():
    """Changing one line of a taught definition makes the check fail (guards the guard)."""
    assert TAUGHT, "no synced cells found"
    original = TAUGHT[0]
    changed = copy.deepcopy(original.node)
    # replace the body's last statement with `pass`: a one-line change
    target = changed.body[-1] if isinstance(changed, ast.FunctionDef) else changed.body[-1].body
    if isinstance(target, list):
        target[-1] = ast.Pass()
    else:
        changed.body[-1] = ast.Pass()
    assert drift(TaughtDef(original.notebook, original.module, original.name, changed)) is not None
    assert Path(ROOT / original.module).is_file()
