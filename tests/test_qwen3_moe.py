"""Qwen3-MoE (families/qwen3_moe.py): loading transformers' checkpoints, equal logits and greedy tokens, errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from gpt_helpers import KVCache, count_parameters, generate, stream_generate
from gpt_helpers.checkpoints.hf import load_hf_checkpoint, model_from_hf_config
from gpt_helpers.families.llama_qwen import LlamaQwenConfig
from gpt_helpers.families.moe import MoEFeedForward, MoESettings
from gpt_helpers.families.qwen3_moe import Qwen3MoeConfig, Qwen3MoeModel, config_from_hf, state_dict_from_hf
from gpt_helpers.speed.cost import QWEN3_30B_A3B

VOCAB = 97
TINY = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=40,
    moe_intermediate_size=12,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    num_experts=8,
    num_experts_per_tok=2,
    max_position_embeddings=128,
    rope_theta=10_000.0,
)
# layer 1 dense (mlp_only_layers), renormalised weights; then every second layer MoE, raw weights, a tied head
VARIANTS = {
    "dense_layer_1": dict(mlp_only_layers=[1], norm_topk_prob=True),
    "sparse_step_2_tied": dict(decoder_sparse_step=2, norm_topk_prob=False, tie_word_embeddings=True),
}


def hf_qwen3_moe(seed=0, **changes):
    """A random transformers Qwen3MoeForCausalLM, norms and routers perturbed from their init."""
    from transformers import Qwen3MoeConfig as HFQwen3MoeConfig
    from transformers import Qwen3MoeForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    model = Qwen3MoeForCausalLM(HFQwen3MoeConfig(**(TINY | changes))).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))  # RMSNorms start at 1
            elif name.endswith("mlp.gate.weight"):
                p.normal_(0, 0.5)  # routers start near 0: every expert alike
    return model


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request, tmp_path_factory):
    hf = hf_qwen3_moe(**VARIANTS[request.param])
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return hf, load_hf_checkpoint(folder), folder


def test_loaded_model_has_moe_where_transformers_has(pair):
    hf, ours, _ = pair
    assert isinstance(ours, Qwen3MoeModel) and not ours.training
    ours_moe = [isinstance(block.ff, MoEFeedForward) for block in ours.trf_blocks]
    hf_moe = [type(layer.mlp).__name__ == "Qwen3MoeSparseMoeBlock" for layer in hf.model.layers]
    assert ours_moe == hf_moe and any(hf_moe) and not all(hf_moe)
    assert ours.cfg.moe.norm_topk_prob == hf.config.norm_topk_prob
    assert ours.cfg.tie_weights == (ours.out_head.weight is ours.tok_emb.weight)


def test_parameter_count_equals_transformers(pair):
    hf, ours, _ = pair
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())


def test_equal_logits(pair):
    hf, ours, _ = pair
    ids = torch.randint(0, VOCAB, (3, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)
    moe_blocks = [block for block in ours.trf_blocks if isinstance(block.ff, MoEFeedForward)]
    loads = [torch.bincount(block.ff.last_experts.flatten(), minlength=8) for block in moe_blocks]
    assert all((load > 0).sum() >= 4 for load in loads)  # routers perturbed: tokens spread over several experts


def test_equal_greedy_tokens_with_the_cache(pair):
    hf, ours, _ = pair
    prompt = torch.randint(1, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, min_new_tokens=30, do_sample=False
        )
    assert isinstance(KVCache.for_model(ours, 2, 40), KVCache)
    assert torch.equal(generate(ours, prompt, 30), expected)  # generate() builds the KVCache itself
    streamed = [int(t) for t in stream_generate(ours, prompt[1:], 8)]
    assert streamed == expected[1, 9:17].tolist()


def test_chunked_prefill_and_steps_equal_full_forward(pair):
    _, ours, _ = pair
    ids = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(3))
    cache = KVCache.for_model(ours, 2, 30)
    with torch.no_grad():
        full = ours(ids)
        pieces = [ours(ids[:, a:b], cache=cache) for a, b in ((0, 12), (12, 13), (13, 27))]
        pieces += [ours(ids[:, i : i + 1], cache=cache) for i in range(27, 30)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_fused_in_memory_layout_loads_too(pair):
    """transformers keeps experts fused (gate_up_proj) in memory; its state_dict maps to the same weights."""
    hf, ours, _ = pair
    mapped = state_dict_from_hf(hf.state_dict(), ours.cfg)
    own = ours.state_dict()
    assert set(mapped) == set(own) - ({"out_head.weight"} if ours.cfg.tie_weights else set())
    for key, value in mapped.items():
        assert torch.equal(value, own[key]), key


def test_bfloat16_load_runs(pair):
    _, _, folder = pair
    model = load_hf_checkpoint(folder, dtype=torch.bfloat16)
    ids = torch.randint(0, VOCAB, (1, 5))
    with torch.no_grad():
        assert model(ids).dtype == torch.bfloat16
    assert generate(model, ids, 3).shape == (1, 8)


def test_published_config_counts_like_transformers_on_meta():
    from transformers import AutoConfig, AutoModelForCausalLM

    model = model_from_hf_config(QWEN3_30B_A3B, device="meta")
    cfg = model.cfg
    assert (cfg.moe.n_experts, cfg.moe.top_k, cfg.moe.hidden_dim, cfg.moe.layers) == (128, 8, 768, tuple(range(48)))
    assert cfg.moe.norm_topk_prob and cfg.qk_norm and (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim) == (32, 4, 128)
    with torch.device("meta"):
        theirs = AutoModelForCausalLM.from_config(AutoConfig.for_model(**QWEN3_30B_A3B))
    assert count_parameters(model) == sum(p.numel() for p in theirs.parameters()) == 30_532_122_624


# ---- bad input ------------------------------------------------------------------------------------------------


def _config(folder):
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_experts_per_tok": 9}, r"top_k \(9\) must be at most the number of experts \(8\)"),
        ({"num_local_experts": 0}, "config.json has no experts"),
        ({"decoder_sparse_step": 0}, "decoder_sparse_step must be a positive int"),
        ({"mlp_only_layers": "1"}, "mlp_only_layers must be a list"),
        ({"moe_intermediate_size": None}, "no 'moe_intermediate_size'"),
        ({"model_type": "qwen3"}, "reads qwen3_moe config.json files"),
        ({"attention_bias": True}, "attention_bias=true"),
    ],
)
def test_config_problems(pair, change, message):
    _, _, folder = pair
    config = _config(folder)
    assert "num_local_experts" in config  # what transformers 5 writes; the published files say num_experts
    with pytest.raises(ValueError, match=message) as err:
        config_from_hf(config | change)
    assert "\n" not in str(err.value)


def test_published_key_num_experts_is_read(pair):
    _, ours, folder = pair
    config = _config(folder)
    config["num_experts"] = config.pop("num_local_experts")
    assert config_from_hf(config) == ours.cfg


def test_config_validation(pair):
    _, ours, _ = pair
    cfg = ours.cfg
    with pytest.raises(ValueError, match=r"moe.layers must lie in \[0, 3\]"):
        cfg.with_(moe=replace(cfg.moe, layers=(0, 4)))
    with pytest.raises(ValueError, match="no shared expert"):
        cfg.with_(moe=replace(cfg.moe, shared_hidden_dim=8))
    with pytest.raises(TypeError, match="must be a MoESettings"):
        cfg.with_(moe={"n_experts": 8})
    with pytest.raises(ValueError, match="sorted and without repeats"):
        MoESettings(layers=(2, 1), n_experts=8, top_k=2, hidden_dim=4)
    dense = LlamaQwenConfig(**{f: getattr(cfg, f) for f in LlamaQwenConfig.__dataclass_fields__})
    with pytest.raises(TypeError, match="expects a Qwen3MoeConfig"):
        Qwen3MoeModel(dense)
    assert isinstance(cfg, Qwen3MoeConfig) and isinstance(cfg, LlamaQwenConfig)


def _copy_with(folder, tmp_path, change):
    from safetensors.torch import load_file, save_file

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    tensors = load_file(target / "model.safetensors")
    change(tensors)
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("model.layers.3.mlp.experts.7.gate_proj.weight"), "missing 'model.layers.3.mlp.experts.7"),
        (lambda t: t.pop("model.layers.3.mlp.gate.weight"), r"missing \['model.layers.3.mlp.gate.weight'\]"),
        (lambda t: t.update({"model.layers.3.mlp.experts.8.up_proj.weight": torch.zeros(12, 32)}), "unexpected"),
        (
            lambda t: t.update({"model.layers.3.mlp.experts.2.down_proj.weight": torch.zeros(32, 11)}),
            r"shape mismatch for 'model.layers.3.mlp.experts.2.down_proj.weight': \(32, 11\), expert 0's is \(32, 12\)",
        ),
    ],
)
def test_bad_checkpoints(pair, tmp_path, change, message):
    _, _, folder = pair
    with pytest.raises(ValueError, match=message) as err:
        load_hf_checkpoint(_copy_with(folder, tmp_path, change))
    assert "\n" not in str(err.value)


def test_benchmark_runs_on_a_tiny_model():
    """benchmarks/family_qwen3_moe.py: equal logits and greedy tokens, then timings (tiny: checks the script)."""
    import importlib.util
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "family_qwen3_moe.py"
    spec = importlib.util.spec_from_file_location("family_qwen3_moe", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("family_qwen3_moe", module)
    spec.loader.exec_module(module)
    result = module.run(repeats=1, tiny=True, new_tokens=3)
    assert result["logits_max_abs_diff"] < 1e-4 and result["same_tokens"]
    assert set(result["tokens_per_s"]) == {"ours", "hf"} and all(v > 0 for v in result["tokens_per_s"].values())
