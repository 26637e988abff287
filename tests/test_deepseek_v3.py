"""DeepSeek-V3: multi-head latent attention, its latent cache, YaRN, MoE layers, and equality with transformers."""

import json
import math
import shutil

import pytest
import torch

from gpt_helpers.checkpoints.hf import load_hf_checkpoint
from gpt_helpers.families.deepseek_v3 import (
    DEEPSEEK_V3_CONFIG,
    DeepSeekV3Config,
    DeepSeekV3Model,
    config_from_hf,
    state_dict_from_hf,
)
from gpt_helpers.families.mla import MLACache, MultiHeadLatentAttention, deinterleave
from gpt_helpers.families.rope import RoPE
from gpt_helpers.families.yarn import (
    YarnRoPE,
    YarnRopeScaling,
    yarn_attention_factor,
    yarn_frequencies,
    yarn_mscale,
    yarn_softmax_scale,
)
from gpt_helpers.gpt2.attention import KVCache
from gpt_helpers.text.generation import generate, generate_text_simple

VOCAB = 211
# two tiny layouts: low-rank queries + YaRN + biases + an eps other than the latent norms' 1e-6, and plain
# queries + no scaling + tied head + non-interleaved RoPE, so each switch of the loader is exercised
VARIANTS = {
    "lora_yarn_bias": dict(
        q_lora_rank=24,
        attention_bias=True,
        rms_norm_eps=1e-5,
        rope_scaling={
            "type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 16,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
        },
    ),
    "plain_q_tied": dict(q_lora_rank=None, tie_word_embeddings=True, rope_interleave=False, rope_theta=500.0),
    # one dense layer, then two MoE layers: 8 experts in 4 groups, 2 groups kept, 2 experts per token, 2 shared
    "moe_groups": dict(
        n_layers=3,
        first_k_dense_replace=1,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_group=4,
        topk_group=2,
        n_shared_experts=2,
        moe_intermediate_size=16,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
        q_lora_rank=24,
    ),
}


def _quiet():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def hf_deepseek(seed=0, n_layers=2, **changes):
    """A random DeepseekV3ForCausalLM (dense unless changes say otherwise), norms, biases and routers perturbed."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    _quiet()
    torch.manual_seed(seed)
    shapes = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=n_layers)
    shapes |= dict(num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16, qk_rope_head_dim=8)
    shapes |= dict(qk_nope_head_dim=12, v_head_dim=10, max_position_embeddings=64, first_k_dense_replace=n_layers)
    config = DeepseekV3Config(**(shapes | changes), pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = DeepseekV3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.add_(0.2 * torch.randn_like(p))  # random init leaves every RMSNorm at 1
            elif name.endswith(".bias"):
                p.normal_(0, 0.1)  # and every bias at 0
            elif name.endswith("mlp.gate.weight"):
                p.normal_(0, 0.5)  # routers start near 0: every score ~0.5, the choice decided by rounding
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0, 0.3)  # starts at 0: a bias that were ignored or mis-mapped would not show
    return model


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request, tmp_path_factory):
    hf = hf_deepseek(**VARIANTS[request.param])
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return hf, load_hf_checkpoint(folder), folder


def greedy(model, prompt, n, chunks=(None,)):
    """Greedy tokens with the model's MLACache: the prompt fed in `chunks` (sizes; None = the rest), then 1 by 1."""
    cache = model.make_cache(prompt.shape[0], prompt.shape[1] + n)
    start, logits = 0, None
    with torch.no_grad():
        for size in chunks:
            end = prompt.shape[1] if size is None else start + size
            logits = model(prompt[:, start:end], cache=cache)
            start = end
        out = [prompt]
        for _ in range(n):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            logits = model(nxt, cache=cache)
    return torch.cat(out, dim=1)


def test_loaded_config_and_type(pair):
    hf, ours, _ = pair
    assert isinstance(ours, DeepSeekV3Model) and not ours.training
    c = hf.config
    assert (ours.cfg.kv_lora_rank, ours.cfg.qk_rope_head_dim, ours.cfg.q_lora_rank) == (16, 8, c.q_lora_rank)
    assert ours.cfg.tie_weights == (ours.out_head.weight is ours.tok_emb.weight)
    assert ours.cfg.softmax_scale == pytest.approx(hf.model.layers[0].self_attn.scaling, rel=1e-12)


def test_parameter_count_equals_transformers(pair):
    hf, ours, _ = pair
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())


def test_equal_logits(pair):
    hf, ours, _ = pair
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_equal_greedy_tokens_with_the_cache(pair):
    hf, ours, _ = pair
    prompt = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, min_new_tokens=30, do_sample=False
        )
    assert torch.equal(greedy(ours, prompt, 30), expected)


def test_generate_runs_unchanged_on_the_latent_cache(pair):
    """KVCache.for_model hands out the model's MLACache, so generate() needs no change; past the window too."""
    hf, ours, _ = pair
    assert isinstance(KVCache.for_model(ours, 2, 10), MLACache)
    prompt = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    assert torch.equal(generate(ours, prompt, 30), greedy(ours, prompt, 30))
    # a 12-token window: the cache is reset and refilled whenever it is full, as notebook 07 does
    assert torch.equal(generate(ours, prompt, 20, 12), generate_text_simple(ours, prompt, 20, 12))


def test_chunked_prefill_equals_the_full_forward_pass(pair):
    _, ours, _ = pair
    ids = torch.randint(0, VOCAB, (2, 21), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = ours(ids)
        cache = ours.make_cache(2, 21)
        pieces = [ours(ids[:, a:b], cache=cache) for a, b in [(0, 8), (8, 15), (15, 21)]]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 21


@pytest.mark.parametrize("absorb", [True, False])
def test_absorbed_and_expanded_decoding_agree(pair, absorb):
    """Decoding in latent space and re-expanding every cached latent give the same greedy tokens and logits."""
    _, ours, _ = pair
    prompt = torch.randint(3, VOCAB, (1, 5), generator=torch.Generator().manual_seed(4))
    reference = greedy(ours, prompt, 20)
    try:
        for block in ours.trf_blocks:
            block.att.absorb = absorb
        assert torch.equal(greedy(ours, prompt, 20, chunks=(2, 2, None)), reference)
    finally:
        for block in ours.trf_blocks:
            block.att.absorb = True


def test_absorbed_path_equals_the_plain_path():
    torch.manual_seed(0)
    att = MultiHeadLatentAttention(32, 4, 16, 12, 8, 10, softmax_scale=0.3, q_lora_rank=20).eval()
    x = torch.randn(2, 9, 32)
    cos, sin = RoPE(8)(torch.arange(9))
    with torch.no_grad():
        q_nope, q_rope = att.queries(x, cos, sin)
        entries = att.compress(x, cos, sin)
        for past in (0, 4, 8):  # the last `9 - past` queries against all 9 positions
            plain = att.plain_attention(q_nope[:, :, past:], q_rope[:, :, past:], entries, past)
            absorbed = att.absorbed_attention(q_nope[:, :, past:], q_rope[:, :, past:], entries, past)
            torch.testing.assert_close(absorbed, plain, atol=1e-6, rtol=1e-5)
        # the absorbed path really is another computation: break W_UV's head order and it no longer agrees
        w = att.W_value_up.weight.data
        att.W_value_up.weight.data = w.view(4, 10, 16).flip(0).reshape(40, 16)
        broken = att.absorbed_attention(q_nope[:, :, 4:], q_rope[:, :, 4:], entries, 4)
        att.W_value_up.weight.data = w
        assert (broken - att.plain_attention(q_nope[:, :, 4:], q_rope[:, :, 4:], entries, 4)).abs().max() > 1e-3


def test_cache_holds_the_latent_and_the_rope_key_only(pair):
    _, ours, _ = pair
    cfg = ours.cfg
    cache = ours.make_cache(3, 50)
    assert isinstance(cache, MLACache) and cache.length == 0 and cache.capacity == 50
    per_token_per_layer = cfg.kv_lora_rank + cfg.qk_rope_head_dim  # 16 + 8 values
    assert cache.nbytes == cfg.n_layers * 3 * 50 * per_token_per_layer * 4  # float32
    assert cache.nbytes == sum(t.numel() * t.element_size() for layer in cache.layers for t in [layer.entries])
    ids = torch.randint(0, VOCAB, (3, 6))
    with torch.no_grad():
        ours(ids, cache=cache)
    assert cache.length == 6
    layer = cache.layers[0]
    assert layer.latent.shape == (3, 6, cfg.kv_lora_rank) and layer.rope_key.shape == (3, 6, cfg.qk_rope_head_dim)
    # the cached latent is the normalized down-projection; the RoPE key the rotated shared key
    att = ours.trf_blocks[0].att
    with torch.no_grad():
        x = ours.trf_blocks[0].norm1(ours.tok_emb(ids))
        latent = att.W_kv_down(x)[..., : cfg.kv_lora_rank]
        torch.testing.assert_close(layer.latent, att.latent_norm(latent))
    cache.reset()
    assert cache.length == 0 and cache.nbytes == cfg.n_layers * 3 * 50 * per_token_per_layer * 4
    # bfloat16 model, bfloat16 cache: half the bytes
    half = DeepSeekV3Model(cfg).to(torch.bfloat16).make_cache(3, 50)
    assert half.nbytes * 2 == cache.nbytes


def test_cache_matches_transformers_cached_latent(pair):
    """transformers' cache holds the same latents and rotated keys (in its (B, 1, T, d) layout)."""
    hf, ours, _ = pair
    ids = torch.randint(0, VOCAB, (1, 6))
    with torch.no_grad():
        theirs = hf(ids, use_cache=True).cache
        cache = ours.make_cache(1, 6)
        ours(ids, cache=cache)
    layer = theirs.layers[1]
    torch.testing.assert_close(cache.layers[1].latent, layer.keys[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cache.layers[1].rope_key, layer.values[:, 0], atol=1e-5, rtol=1e-5)


def test_cache_errors(pair):
    _, ours, _ = pair
    cache = ours.make_cache(1, 4)
    with torch.no_grad():
        ours(torch.zeros(1, 3, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="MLA cache is full"):
            ours(torch.zeros(1, 2, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="batch size 1, got 2"):
            ours(torch.zeros(2, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_len"):
        ours.make_cache(1, ours.cfg.context_length + 1)
    with pytest.raises(TypeError, match="MLACache"):
        ours(torch.zeros(1, 1, dtype=torch.long), cache=object())
    with pytest.raises(ValueError, match="context_length"):
        ours(torch.zeros(1, ours.cfg.context_length + 1, dtype=torch.long))


def test_deinterleave():
    x = torch.arange(8.0)
    assert deinterleave(x).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


# DeepSeek-V3's published config.json, made dense and unquantized so that config_from_hf accepts it
PUBLISHED_DENSE = {k: v for k, v in DEEPSEEK_V3_CONFIG.items() if k != "quantization_config"}
PUBLISHED_DENSE["first_k_dense_replace"] = DEEPSEEK_V3_CONFIG["num_hidden_layers"]

# --- YaRN ---------------------------------------------------------------------------------------------------------

PUBLISHED_YARN = YarnRopeScaling(
    factor=40, original_context_length=4096, beta_fast=32, beta_slow=1, mscale=1.0, mscale_all_dim=1.0
)


def _transformers_yarn(rope_scaling: dict, dim: int, theta: float):
    from transformers import DeepseekV3Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    _quiet()
    config = DeepseekV3Config(
        rope_scaling=dict(rope_scaling), rope_theta=theta, qk_rope_head_dim=dim, max_position_embeddings=163840
    )
    return ROPE_INIT_FUNCTIONS["yarn"](config)


@pytest.mark.parametrize(
    "rope_scaling",
    [
        DEEPSEEK_V3_CONFIG["rope_scaling"],
        {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 2048, "truncate": False},
        {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512, "mscale": 0.7, "mscale_all_dim": 1.0},
    ],
)
def test_yarn_equals_transformers(rope_scaling):
    inv_freq, attention_factor = _transformers_yarn(rope_scaling, 64, 10_000.0)
    cfg = config_from_hf(PUBLISHED_DENSE | {"rope_scaling": rope_scaling})
    theta, scaling = cfg.rope_theta, cfg.rope_scaling
    assert theta == 10_000.0
    assert torch.equal(yarn_frequencies(64, theta, scaling), inv_freq)
    assert yarn_attention_factor(scaling) == pytest.approx(attention_factor, rel=1e-12)


def test_published_yarn_numbers():
    freqs = yarn_frequencies(64, 10_000.0, PUBLISHED_YARN)
    plain = 1.0 / 10_000.0 ** (torch.arange(0, 64, 2, dtype=torch.float64) / 64)
    ratio = plain / freqs.double()
    # pairs turning at least 32 times in 4096 positions keep their speed, those under one turn are 40 times slower
    assert torch.allclose(ratio[:10], torch.ones(10, dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(ratio[23:], torch.full((9,), 40.0, dtype=torch.float64), rtol=1e-6)
    assert yarn_mscale(40, 1.0) == pytest.approx(0.1 * math.log(40) + 1)
    assert yarn_attention_factor(PUBLISHED_YARN) == 1.0  # mscale = mscale_all_dim: cos and sin unchanged
    assert yarn_softmax_scale(192, PUBLISHED_YARN) == pytest.approx(192**-0.5 * (0.1 * math.log(40) + 1) ** 2)
    assert yarn_softmax_scale(192, None) == 192**-0.5


def test_published_softmax_scale_equals_transformers():
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Attention

    _quiet()
    with torch.device("meta"):
        theirs = DeepseekV3Attention(DeepseekV3Config(**PUBLISHED_DENSE), layer_idx=0)
    cfg = config_from_hf(PUBLISHED_DENSE)
    assert cfg.softmax_scale == pytest.approx(theirs.scaling, rel=1e-12)


def test_yarn_rope_scales_cos_and_sin_by_the_attention_factor():
    scaling = YarnRopeScaling(factor=4.0, original_context_length=64)  # no mscale: factor 0.1 ln 4 + 1
    cos, sin = YarnRoPE(16, 10_000.0, scaling)(torch.arange(5))
    assert cos[0, 0].item() == pytest.approx(0.1 * math.log(4) + 1, rel=1e-6)
    torch.testing.assert_close(cos.pow(2) + sin.pow(2), torch.full((5, 16), yarn_attention_factor(scaling) ** 2))


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"factor": 0}, "factor must be a positive number"),
        ({"beta_fast": 1, "beta_slow": 2}, "beta_slow < beta_fast"),
        ({"mscale": -1.0}, "mscale must be None or a number >= 0"),
        ({"truncate": 1}, "truncate must be True or False"),
    ],
)
def test_yarn_settings_are_checked(change, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        YarnRopeScaling(**change)


# --- configs and loading errors -----------------------------------------------------------------------------------


def test_published_config_has_moe_layers():
    with pytest.raises(ValueError, match="fp8-quantized"):
        config_from_hf(DEEPSEEK_V3_CONFIG)
    published = {k: v for k, v in DEEPSEEK_V3_CONFIG.items() if k != "quantization_config"}
    moe = config_from_hf(published).moe
    assert moe.layers == tuple(range(3, 61)) and (moe.n_experts, moe.top_k, moe.hidden_dim) == (256, 8, 2048)
    assert (moe.routing, moe.n_group, moe.topk_group, moe.routed_scaling_factor) == ("deepseek", 8, 4, 2.5)
    assert moe.shared_hidden_dim == 2048 and moe.norm_topk_prob
    dense = config_from_hf(PUBLISHED_DENSE)
    assert dense.moe is None
    assert (dense.kv_lora_rank, dense.qk_rope_head_dim, dense.n_layers, dense.q_lora_rank) == (512, 64, 61, 1536)
    assert dense.rope_scaling == PUBLISHED_YARN


def test_published_parameter_count_equals_transformers_on_meta():
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    _quiet()
    published = {k: v for k, v in DEEPSEEK_V3_CONFIG.items() if k != "quantization_config"}
    with torch.device("meta"):
        ours = DeepSeekV3Model(config_from_hf(published))
        theirs = DeepseekV3ForCausalLM(DeepseekV3Config(**published))
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == 671_026_404_352


def test_attention_parameters_equal_transformers_at_the_published_size():
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Attention

    _quiet()
    cfg = config_from_hf(PUBLISHED_DENSE)
    with torch.device("meta"):
        theirs = DeepseekV3Attention(DeepseekV3Config(**PUBLISHED_DENSE), layer_idx=0)
        ours = DeepSeekV3Model(cfg.with_(n_layers=1, vocab_size=8)).trf_blocks[0].att
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == 187_107_328


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            {"first_k_dense_replace": 1, "n_routed_experts": 6, "num_experts_per_tok": 2},
            r"n_group \(\d+\) must divide the number of experts \(6\)",
        ),
        ({"first_k_dense_replace": 1, "topk_group": 9}, r"topk_group \(9\) must be at most n_group"),
        ({"first_k_dense_replace": 1, "num_experts_per_tok": 300}, r"top_k \(300\) must be at most"),
        ({"first_k_dense_replace": 1, "scoring_func": "softmax"}, "scoring_func='softmax'; only 'sigmoid'"),
        ({"first_k_dense_replace": 1, "moe_layer_freq": 2}, "moe_layer_freq=2"),
        ({"first_k_dense_replace": 1, "n_shared_experts": 0}, "n_shared_experts must be an int >= 1"),
        ({"first_k_dense_replace": -1}, "first_k_dense_replace must be an int >= 0"),
        ({"num_key_value_heads": 2}, "must equal num_attention_heads"),
        ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "'linear' .* not supported"),
        ({"kv_lora_rank": None}, "no 'kv_lora_rank'"),
        ({"qk_rope_head_dim": 7}, "must be even"),
        ({"quantization_config": {"quant_method": "fp8"}}, "fp8-quantized"),
    ],
)
def test_config_problems(pair, change, pattern):
    _, _, folder = pair
    config = json.loads((folder / "config.json").read_text())
    with pytest.raises((ValueError, TypeError), match=pattern) as excinfo:
        config_from_hf(config | change)
    assert "\n" not in str(excinfo.value)


def _copy_with(folder, tmp_path, change):
    from safetensors.torch import load_file, save_file

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    tensors = load_file(target / "model.safetensors")
    change(tensors)
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda t: t.pop("model.layers.1.self_attn.kv_b_proj.weight"), "missing .*kv_b_proj"),
        (lambda t: t.pop("model.layers.0.self_attn.kv_a_layernorm.weight"), "missing .*kv_a_layernorm"),
        (lambda t: t.update({"model.layers.1.mlp.experts.99.up_proj.weight": torch.zeros(1)}), "unexpected .*experts"),
        (
            lambda t: t.update({"model.layers.0.self_attn.kv_b_proj.weight": torch.zeros(3, 16)}),
            "shape mismatch for 'model.layers.0.self_attn.kv_b_proj.weight'",
        ),
        (
            lambda t: t.update({"model.layers.0.self_attn.kv_a_proj_with_mqa.weight": torch.zeros(23, 48)}),
            "shape mismatch",
        ),
    ],
)
def test_bad_checkpoints(pair, tmp_path, change, pattern):
    _, _, folder = pair
    with pytest.raises(ValueError, match=pattern) as excinfo:
        load_hf_checkpoint(_copy_with(folder, tmp_path, change))
    assert "\n" not in str(excinfo.value)


def test_state_dict_split_of_kv_b_proj(pair):
    hf, ours, _ = pair
    cfg = ours.cfg
    mapped = state_dict_from_hf(hf.state_dict(), cfg)
    assert set(mapped) == set(ours.state_dict()) - ({"out_head.weight"} if cfg.tie_weights else set())
    fused = hf.model.layers[0].self_attn.kv_b_proj.weight.view(cfg.n_heads, -1, cfg.kv_lora_rank)
    torch.testing.assert_close(
        mapped["trf_blocks.0.att.W_key_up.weight"].view(cfg.n_heads, -1, cfg.kv_lora_rank),
        fused[:, : cfg.qk_nope_head_dim],
    )
    torch.testing.assert_close(
        mapped["trf_blocks.0.att.W_value_up.weight"].view(cfg.n_heads, -1, cfg.kv_lora_rank),
        fused[:, cfg.qk_nope_head_dim :],
    )


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"kv_lora_rank": 0}, "kv_lora_rank must be positive"),
        ({"q_lora_rank": 2.0}, "q_lora_rank must be an int"),
        ({"rope_scaling": "yarn"}, "rope_scaling must be None or a YarnRopeScaling"),
        ({"rope_interleave": 1}, "rope_interleave must be True or False"),
    ],
)
def test_model_config_is_checked(change, pattern):
    cfg = DeepSeekV3Config(
        vocab_size=10, context_length=8, emb_dim=8, n_heads=2, n_layers=1, hidden_dim=8, kv_lora_rank=4,
        qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=2,
    )  # fmt: skip
    with pytest.raises((TypeError, ValueError), match=pattern):
        cfg.with_(**change)
    with pytest.raises(TypeError, match="expects a DeepSeekV3Config"):
        DeepSeekV3Model({"emb_dim": 8})


def test_benchmark_runs_on_a_tiny_model():
    """benchmarks/family_deepseek_v3.py: equal logits and tokens first, then the timings (tiny: checks the script)."""
    import importlib.util
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "family_deepseek_v3.py"
    spec = importlib.util.spec_from_file_location("family_deepseek_v3", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("family_deepseek_v3", module)
    spec.loader.exec_module(module)
    result = module.run(repeats=1, tiny=True, new_tokens=3)
    assert result["logits_max_abs_diff"] < 1e-4 and result["new_tokens"] == 3
    for figures in result["by_prompt"].values():
        assert set(figures["tokens_per_s"]) == {"hf", "taught", "fast", "expanded"}
        # transformers expands the prompt and then every cached position again at each step; ours the prompt once
        assert figures["positions_expanded_layer0"]["hf"] > figures["positions_expanded_layer0"]["ours"]
