"""Gated DeltaNet and Qwen3-Next: the delta rule's two forms, the layer's pieces, the hybrid cache, HF equivalence."""

import json
from dataclasses import replace

import pytest
import torch
from transformers.models.qwen3_next import modeling_qwen3_next as hf_q3n

from gpt_helpers import count_parameters, generate
from gpt_helpers.checkpoints.hf import load_hf_checkpoint
from gpt_helpers.families.gated_deltanet import (
    DeltaNetState,
    GatedDeltaNet,
    GatedRMSNorm,
    ShortConvolution,
    gated_delta_rule_chunked,
    gated_delta_rule_recurrent,
    l2_normalize,
)
from gpt_helpers.families.qwen3_next import (
    FULL_ATTENTION,
    LINEAR_ATTENTION,
    QWEN3_NEXT_80B_A3B,
    Qwen3NextCache,
    Qwen3NextConfig,
    Qwen3NextModel,
    ZeroCenteredRMSNorm,
    config_from_hf,
    hybrid_layer_types,
    qwen3_next_cache_nbytes,
    state_dict_from_hf,
)

N_LAYERS = 5  # two linear-attention runs around one full-attention layer: 3 + 1 + 1
TINY_HF = {
    "vocab_size": 101,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": N_LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 12,  # d_v != d_k: a transposed state would not fit
    "linear_conv_kernel_dim": 4,
    "mlp_only_layers": list(range(N_LAYERS)),  # every MLP dense
    "max_position_embeddings": 10_100,
    "partial_rotary_factor": 0.25,
    "rope_theta": 10_000.0,
    "tie_word_embeddings": False,
}


def hf_qwen3_next(seed=0, **changes):
    """A random transformers Qwen3NextForCausalLM with dense MLPs, norms and decay parameters perturbed."""
    from transformers import Qwen3NextConfig as HFQwen3NextConfig
    from transformers import Qwen3NextForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(seed)
    model = Qwen3NextForCausalLM(HFQwen3NextConfig(**(TINY_HF | changes))).eval()
    with torch.no_grad():  # the norms start at 0 (or 1) and dt_bias at 1: perturb them so a mis-mapped one shows
        for name, p in model.named_parameters():
            if "norm" in name or "dt_bias" in name or "A_log" in name:
                p.add_(0.3 * torch.randn_like(p))
            elif name.endswith("mlp.gate.weight") or name.endswith("shared_expert_gate.weight"):
                p.normal_(0, 0.5)  # routers and shared-expert gates start near 0: every expert alike
    return model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen3_next")
    hf = hf_qwen3_next()
    hf.save_pretrained(folder)
    return hf, load_hf_checkpoint(folder), folder


# MoE MLPs in layers 0, 1, 3, 4 (layer 2 listed in mlp_only_layers stays dense): 8 experts, 2 per token, gated shared
TINY_MOE = dict(
    mlp_only_layers=[2],
    num_experts=8,
    num_experts_per_tok=2,
    moe_intermediate_size=16,
    shared_expert_intermediate_size=24,
    norm_topk_prob=True,
)


@pytest.fixture(scope="module")
def moe_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen3_next_moe")
    hf = hf_qwen3_next(seed=1, **TINY_MOE)
    hf.save_pretrained(folder)
    return hf, load_hf_checkpoint(folder), folder


def random_rule_inputs(b=2, h=3, t=150, d_k=8, d_v=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = l2_normalize(torch.randn(b, h, t, d_k, generator=gen)) * d_k**-0.5
    k = l2_normalize(torch.randn(b, h, t, d_k, generator=gen))
    v = torch.randn(b, h, t, d_v, generator=gen)
    g = -torch.rand(b, h, t, generator=gen)  # log decay in (-1, 0]
    beta = torch.rand(b, h, t, generator=gen)
    state = torch.randn(b, h, d_v, d_k, generator=gen)
    return q, k, v, g, beta, state


# ---- the delta rule -------------------------------------------------------------------------------------------


def test_delta_rule_overwrites_what_was_wrong():
    """beta = 1, no decay, a unit key: after one step the state recalls exactly the new value for that key."""
    k = l2_normalize(torch.tensor([3.0, 4.0]))
    state = torch.tensor([[1.0, 2.0], [0.5, -1.0]])  # (d_v, d_k): some old memory
    v = torch.tensor([[-2.0, 7.0]])
    q = k.view(1, 1, 1, 2)
    out, new = gated_delta_rule_recurrent(
        q, k.view(1, 1, 1, 2), v.view(1, 1, 1, 2), torch.zeros(1, 1, 1), torch.ones(1, 1, 1), state.view(1, 1, 2, 2)
    )
    torch.testing.assert_close(new[0, 0] @ k, v[0])
    torch.testing.assert_close(out[0, 0, 0], v[0])
    # directions orthogonal to k are untouched
    ortho = torch.tensor([-0.8, 0.6])
    torch.testing.assert_close(new[0, 0] @ ortho, state @ ortho)


def test_decay_shrinks_the_state():
    q, k, v, g, beta, state = random_rule_inputs(t=1)
    _, decayed = gated_delta_rule_recurrent(q, k, v, g, torch.zeros_like(beta), state)  # beta 0: no write
    torch.testing.assert_close(decayed, state * g[..., None].exp())


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 200])
def test_chunked_equals_recurrent(chunk_size):
    q, k, v, g, beta, state = random_rule_inputs()
    out_r, state_r = gated_delta_rule_recurrent(q, k, v, g, beta, state)
    out_c, state_c = gated_delta_rule_chunked(q, k, v, g, beta, state, chunk_size=chunk_size)
    torch.testing.assert_close(out_c, out_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state_c, state_r, atol=1e-5, rtol=1e-5)


def test_rules_equal_transformers_torch_reference():
    """transformers' functions take (B, T, H, d), scale q themselves and store the state transposed (d_k, d_v)."""
    q, k, v, g, beta, state = random_rule_inputs()
    d_k = q.shape[-1]
    bthd = [x.transpose(1, 2) for x in (q * d_k**0.5, k, v, g, beta)]
    ours, our_state = gated_delta_rule_chunked(q, k, v, g, beta, state)
    for fn in (hf_q3n.torch_chunk_gated_delta_rule, hf_q3n.torch_recurrent_gated_delta_rule):
        out, last = fn(
            *bthd[:3], g=bthd[3], beta=bthd[4], initial_state=state.transpose(-1, -2), output_final_state=True
        )
        torch.testing.assert_close(out.transpose(1, 2), ours, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(last.transpose(-1, -2), our_state, atol=1e-5, rtol=1e-5)


def test_chunked_rejects_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        gated_delta_rule_chunked(*random_rule_inputs(t=4)[:5], chunk_size=0)


# ---- the layer's pieces ---------------------------------------------------------------------------------------


def test_short_convolution_matches_transformers_and_steps():
    torch.manual_seed(0)
    conv = ShortConvolution(6, kernel_size=4)
    x = torch.randn(2, 9, 6)  # (B, T, C)
    full, past = conv(x)
    ref = hf_q3n.causal_conv1d_fn(x.transpose(1, 2), conv.weight.squeeze(1), None, activation="silu")
    torch.testing.assert_close(full, ref.transpose(1, 2))
    torch.testing.assert_close(past, x[:, -3:].transpose(1, 2))  # the last kernel - 1 inputs
    # the same outputs in pieces, carrying the K - 1 past inputs
    state, pieces = None, []
    for piece in (x[:, :2], x[:, 2:3], x[:, 3:9]):
        out, state = conv(piece, state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


def test_norms_match_transformers():
    torch.manual_seed(0)
    x, z = torch.randn(3, 5, 12), torch.randn(3, 5, 12)
    ours, ref = GatedRMSNorm(12, eps=1e-6), hf_q3n.Qwen3NextRMSNormGated(12, eps=1e-6)
    zc, zc_ref = ZeroCenteredRMSNorm(12, eps=1e-6), hf_q3n.Qwen3NextRMSNorm(12, eps=1e-6)
    with torch.no_grad():
        ours.scale.normal_()
        ref.weight.copy_(ours.scale)
        zc.offset.normal_()
        zc_ref.weight.copy_(zc.offset)
    torch.testing.assert_close(ours(x, z), ref(x, z))
    torch.testing.assert_close(zc(x), zc_ref(x))
    assert torch.equal(ZeroCenteredRMSNorm(12)(x), x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_in_proj_reordering_matches_transformers_split(pair):
    """Our single in_proj (q | k | v | z | b | a) gives the tensors transformers' grouped layout gives."""
    hf, ours, _ = pair
    x = torch.randn(2, 3, 32)
    hf_layer, our_layer = hf.model.layers[0].linear_attn, ours.trf_blocks[0].att
    with torch.no_grad():
        expected = hf_layer.fix_query_key_value_ordering(hf_layer.in_proj_qkvz(x), hf_layer.in_proj_ba(x))
        got = our_layer.in_proj(x).split(our_layer.split_sizes, dim=-1)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e.reshape(2, 3, -1))


def test_gated_deltanet_layer_matches_transformers(pair):
    hf, ours, _ = pair
    x = torch.randn(2, 70, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.trf_blocks[1].att(x), hf.model.layers[1].linear_attn(x), atol=1e-5, rtol=1e-5)


# ---- the model against transformers ---------------------------------------------------------------------------


def test_config_from_saved_checkpoint(pair):
    _, ours, folder = pair
    cfg = ours.cfg
    saved = json.loads((folder / "config.json").read_text())
    assert cfg.layer_types == tuple(saved["layer_types"]) == hybrid_layer_types(N_LAYERS)
    assert cfg.layer_types == (LINEAR_ATTENTION,) * 3 + (FULL_ATTENTION, LINEAR_ATTENTION)
    assert (cfg.rotary_dim, cfg.head_dim, cfg.linear_value_head_dim) == (4, 16, 12)


def test_logits_equal_transformers(pair):
    hf, ours, _ = pair
    ids = torch.randint(0, 101, (2, 150))  # more than two chunks of 64
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_parameter_count_equals_transformers(pair):
    hf, ours, _ = pair
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())


def test_greedy_decoding_equals_transformers_generate(pair):
    hf, ours, _ = pair
    prompt = torch.randint(0, 101, (2, 70))
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=30, do_sample=False, pad_token_id=0)
    assert torch.equal(generate(ours, prompt, 30), expected)


def test_chunked_prefill_and_steps_equal_full_forward(pair):
    _, ours, _ = pair
    ids = torch.randint(0, 101, (2, 90))
    cache = ours.make_cache(2, 90)
    with torch.no_grad():
        full = ours(ids)
        pieces = [ours(ids[:, a:b], cache=cache) for a, b in ((0, 40), (40, 41), (41, 85))]
        pieces += [ours(ids[:, i : i + 1], cache=cache) for i in range(85, 90)]  # then token by token
    assert cache.length == 90
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-4, rtol=1e-4)
    cache.reset()
    assert cache.length == 0 and all(layer.length == 0 for layer in cache.layers)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids[:, :10], cache=cache), full[:, :10], atol=1e-4, rtol=1e-4)


def test_generation_helpers_use_the_family_cache(pair):
    """KVCache.for_model hands over to make_cache; stream_generate runs unchanged and gives generate's tokens."""
    from gpt_helpers import KVCache, stream_generate

    _, ours, _ = pair
    cache = KVCache.for_model(ours, 2, 50)
    assert isinstance(cache, Qwen3NextCache) and cache.layers[3].capacity == 50
    prompt = torch.randint(0, 101, (1, 20))
    streamed = torch.cat([torch.as_tensor(t).view(1, -1) for t in stream_generate(ours, prompt, 8)], dim=1)
    assert torch.equal(streamed.view(-1), generate(ours, prompt, 8)[0, 20:])


def test_generation_past_the_context_resets_the_state(pair):
    """Past context_length, generate resets the cache and re-reads the window: the same as no cache at all."""
    _, ours, _ = pair
    short = Qwen3NextModel(ours.cfg.with_(context_length=24)).eval()
    short.load_state_dict(ours.state_dict())
    prompt = torch.randint(0, 101, (2, 10))
    assert torch.equal(generate(short, prompt, 30), generate(short, prompt, 30, use_cache=False))


def test_bfloat16_runs_and_keeps_the_state_in_float32(pair):
    _, ours, _ = pair
    model = Qwen3NextModel(ours.cfg).to(torch.bfloat16).eval()
    cache = model.make_cache(1, 20)
    with torch.no_grad():
        logits = model(torch.randint(0, 101, (1, 12)), cache=cache)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert cache.layers[0].recurrent.dtype == torch.float32 and cache.layers[0].conv.dtype == torch.bfloat16
    assert cache.layers[3].keys.dtype == torch.bfloat16


# ---- the cache: a fixed-size state beside the full-attention layers' keys and values ------------------------


def test_state_is_the_same_size_at_100_and_10000_positions(pair):
    _, ours, _ = pair
    cfg = ours.cfg
    cache = ours.make_cache(1, 10_000)
    states = [layer for layer in cache.layers if isinstance(layer, DeltaNetState)]
    shapes = [(s.conv.shape, s.recurrent.shape, s.conv.data_ptr(), s.recurrent.data_ptr()) for s in states]
    ids = torch.randint(0, 101, (1, 10_000))
    with torch.no_grad():
        ours(ids[:, :100], cache=cache)
        at_100 = cache.state_nbytes
        ours(ids[:, 100:], cache=cache)  # 9,900 more positions
    assert cache.length == 10_000
    assert cache.state_nbytes == at_100 == qwen3_next_cache_nbytes(cfg, 0, dtype=torch.float32)["state"]
    assert [(s.conv.shape, s.recurrent.shape, s.conv.data_ptr(), s.recurrent.data_ptr()) for s in states] == shapes
    # per linear layer: (2 * 2 * 8 + 4 * 12) conv channels * 3 past inputs + 4 heads * 12 * 8, float32
    assert at_100 == 4 * ((2 * 2 * 8 + 4 * 12) * 3 + 4 * 12 * 8) * 4
    # only the full-attention layer's keys and values scale with the positions
    small, large = ours.make_cache(1, 100), ours.make_cache(1, 10_000)
    assert small.state_nbytes == large.state_nbytes
    assert large.kv_nbytes == 100 * small.kv_nbytes == 10_000 * 2 * 2 * 16 * 4


def test_cache_bytes_equal_formula_for_the_published_config():
    cfg = config_from_hf(QWEN3_NEXT_80B_A3B | {"mlp_only_layers": list(range(48))})  # the cache does not see the MLP
    for n in (1, 1024):
        cache = Qwen3NextCache(cfg, 1, n, dtype=torch.bfloat16)
        formula = qwen3_next_cache_nbytes(cfg, n)
        assert (cache.state_nbytes, cache.kv_nbytes, cache.nbytes) == (
            formula["state"],
            formula["kv"],
            formula["total"],
        )
    # 36 linear layers: (2 * 16 * 128 + 32 * 128) channels * 3 bf16 + 32 * 128 * 128 float32; 12 full layers
    assert formula["state"] == 36 * (8192 * 3 * 2 + 32 * 128 * 128 * 4)
    assert formula["kv_per_position"] == 12 * 2 * 2 * 256 * 2


def test_published_config_facts():
    cfg = config_from_hf(QWEN3_NEXT_80B_A3B | {"mlp_only_layers": list(range(48))})
    assert cfg.layer_types == (LINEAR_ATTENTION,) * 3 + (FULL_ATTENTION,) * 1 + cfg.layer_types[4:]
    assert cfg.layer_types.count(FULL_ATTENTION) == 12 and cfg.layer_types[3::4] == (FULL_ATTENTION,) * 12
    assert (cfg.linear_n_key_heads, cfg.linear_n_value_heads, cfg.linear_key_head_dim, cfg.conv_kernel) == (
        16,
        32,
        128,
        4,
    )
    assert (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.rotary_dim) == (16, 2, 256, 64)


def test_dense_parameter_count_equals_transformers_on_meta():
    """The published shapes with every MLP dense: our model and transformers' count the same parameters."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = QWEN3_NEXT_80B_A3B | {"mlp_only_layers": list(range(48))}
    with torch.device("meta"):
        ours = Qwen3NextModel(config_from_hf(config))
        hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())


# ---- mixture-of-experts MLPs ----------------------------------------------------------------------------------


def test_moe_layers_follow_mlp_only_layers(moe_pair):
    from gpt_helpers.families.moe import MoEFeedForward

    hf, ours, _ = moe_pair
    assert ours.cfg.moe.layers == (0, 1, 3, 4) and ours.cfg.moe.shared_expert_gate
    ours_moe = [isinstance(block.ff, MoEFeedForward) for block in ours.trf_blocks]
    hf_moe = [type(layer.mlp).__name__ == "Qwen3NextSparseMoeBlock" for layer in hf.model.layers]
    assert ours_moe == hf_moe == [True, True, False, True, True]
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())
    ids = torch.randint(0, 101, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours(ids)
    moe_blocks = [block for block in ours.trf_blocks if isinstance(block.ff, MoEFeedForward)]
    load = sum(torch.bincount(block.ff.last_experts.flatten(), minlength=8) for block in moe_blocks)
    assert (load > 0).sum() >= 4  # the routers spread tokens: several experts are exercised


def test_moe_logits_equal_transformers(moe_pair):
    hf, ours, _ = moe_pair
    ids = torch.randint(0, 101, (2, 80), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_moe_greedy_decoding_equals_transformers_generate(moe_pair):
    from gpt_helpers import KVCache, stream_generate

    hf, ours, _ = moe_pair
    prompt = torch.randint(1, 101, (2, 30), generator=torch.Generator().manual_seed(5))  # no 0: the pad id
    with torch.no_grad():
        mask = torch.ones_like(prompt)
        expected = hf.generate(prompt, attention_mask=mask, max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert isinstance(KVCache.for_model(ours, 2, 50), Qwen3NextCache)
    assert torch.equal(generate(ours, prompt, 20), expected)
    streamed = [int(t) for t in stream_generate(ours, prompt[:1], 6)]
    assert streamed == expected[0, 30:36].tolist()


def test_published_moe_parameter_count_equals_transformers_on_meta():
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        ours = Qwen3NextModel(config_from_hf(QWEN3_NEXT_80B_A3B))
        hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(**QWEN3_NEXT_80B_A3B))
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters()) == 79_674_391_296
    moe = ours.cfg.moe
    assert (moe.n_experts, moe.top_k, moe.hidden_dim, moe.shared_hidden_dim) == (512, 10, 512, 512)
    assert moe.layers == tuple(range(48))


def test_moe_checkpoint_problems(moe_pair, tmp_path):
    from safetensors.torch import load_file

    _, _, folder = moe_pair
    tensors = load_file(folder / "model.safetensors")
    cfg = config_from_hf(json.loads((folder / "config.json").read_text()))
    broken = dict(tensors)
    broken.pop("model.layers.3.mlp.experts.5.down_proj.weight")
    with pytest.raises(ValueError, match=r"^checkpoint is missing 'model.layers.3.mlp.experts.5.down_proj.weight'"):
        state_dict_from_hf(broken, cfg)
    broken = dict(tensors)
    broken.pop("model.layers.0.mlp.shared_expert_gate.weight")
    with pytest.raises(ValueError, match="missing .*shared_expert_gate"):
        state_dict_from_hf(broken, cfg)
    with pytest.raises(ValueError, match="unexpected .*experts"):  # config.json says fewer experts than the file
        state_dict_from_hf(tensors, cfg.with_(moe=replace(cfg.moe, n_experts=4)))


# ---- bad input ------------------------------------------------------------------------------------------------


def test_moe_config_settings():
    dense = config_from_hf(TINY_HF | {"model_type": "qwen3_next", "mlp_only_layers": [], "num_experts": 0})
    assert dense.n_layers == N_LAYERS and dense.moe is None
    every_other = config_from_hf(TINY_HF | TINY_MOE | {"model_type": "qwen3_next", "decoder_sparse_step": 2})
    assert every_other.moe.layers == (1, 3)  # (i + 1) % 2 == 0, and layer 2 is not among them anyway
    for change, message in (
        ({"num_experts_per_tok": 9}, r"top_k \(9\) must be at most the number of experts \(8\)"),
        ({"num_experts": -1}, "num_experts must be an int >= 0"),
        ({"decoder_sparse_step": 0}, "decoder_sparse_step must be a positive int"),
    ):
        with pytest.raises(ValueError, match=message) as err:
            config_from_hf(TINY_HF | TINY_MOE | {"model_type": "qwen3_next"} | change)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "qwen3"}, "qwen3_next"),
        ({"hidden_act": "gelu"}, "silu"),
        ({"attention_bias": True}, "biases"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "RoPE scaling"),
        ({"num_hidden_layers": None}, "num_hidden_layers"),
    ],
)
def test_config_from_hf_errors(change, message):
    with pytest.raises(ValueError, match=message):
        config_from_hf(TINY_HF | {"model_type": "qwen3_next"} | change)


def test_config_validation():
    cfg = config_from_hf(TINY_HF | {"model_type": "qwen3_next"})
    assert isinstance(cfg, Qwen3NextConfig)
    with pytest.raises(ValueError, match="layer_types"):
        cfg.with_(layer_types=(LINEAR_ATTENTION,) * 4)
    with pytest.raises(ValueError, match="'attention'"):
        cfg.with_(layer_types=("attention",) * N_LAYERS)
    with pytest.raises(ValueError, match="linear_n_value_heads"):
        cfg.with_(linear_n_value_heads=3)
    with pytest.raises(ValueError, match="rotary_dim"):
        cfg.with_(rotary_dim=5)
    with pytest.raises(TypeError, match="emb_dim"):
        cfg.with_(emb_dim=32.0)
    with pytest.raises(TypeError, match="Qwen3NextConfig"):
        Qwen3NextModel({"emb_dim": 32})
    with pytest.raises(ValueError, match="n_value_heads"):
        GatedDeltaNet(32, 3, 4, 8, 8)


def test_state_dict_errors(pair):
    hf, ours, _ = pair
    sd = hf.state_dict()
    with pytest.raises(ValueError, match="missing.*in_proj_ba"):
        state_dict_from_hf({k: v for k, v in sd.items() if "layers.0.linear_attn.in_proj_ba" not in k}, ours.cfg)
    with pytest.raises(ValueError, match="unexpected.*experts"):
        state_dict_from_hf(sd | {"model.layers.0.mlp.experts.gate_up_proj": torch.zeros(1)}, ours.cfg)
    bad = dict(sd)
    bad["model.layers.1.linear_attn.in_proj_qkvz.weight"] = torch.zeros(5, 32)
    with pytest.raises(ValueError, match="shape mismatch.*in_proj_qkvz"):
        state_dict_from_hf(bad, ours.cfg)
    bad = dict(sd)
    bad["model.layers.3.self_attn.q_proj.weight"] = torch.zeros(64, 32)
    with pytest.raises(ValueError, match="shape mismatch.*q_proj"):
        state_dict_from_hf(bad, ours.cfg)
    # the published checkpoint's multi-token-prediction tensors are skipped, as transformers skips them
    assert state_dict_from_hf(sd | {"mtp.fc.weight": torch.zeros(2, 2)}, ours.cfg).keys() == ours.state_dict().keys()


def test_cache_errors(pair):
    _, ours, _ = pair
    with pytest.raises(ValueError, match="context_length"):
        ours.make_cache(1, 20_000)
    with pytest.raises(ValueError, match="batch_size"):
        ours.make_cache(0, 10)
    with pytest.raises(TypeError, match="Qwen3NextCache"):
        ours(torch.zeros(1, 3, dtype=torch.long), cache=object())
    cache = ours.make_cache(1, 8)
    with torch.no_grad(), pytest.raises(ValueError, match="full"):
        ours(torch.zeros(1, 9, dtype=torch.long), cache=cache)
