"""The Llama 3 / Qwen3 pieces: RMSNorm, RoPE, SwiGLU, grouped-query attention, the config and the model."""

import math
from dataclasses import FrozenInstanceError

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gpt_helpers import KVCache, count_parameters, generate, generate_text_simple, optimize_for_inference
from gpt_helpers.families.gqa import GroupedQueryAttention
from gpt_helpers.families.llama_qwen import (
    LlamaQwenConfig,
    LlamaQwenModel,
    llama_qwen_config_from_book,
    llama_qwen_parameter_breakdown,
    rename_book_keys,
)
from gpt_helpers.families.rms_norm import RMSNorm
from gpt_helpers.families.rope import Llama3RopeScaling, RoPE, apply_rope, llama3_scaled_frequencies, rope_frequencies
from gpt_helpers.families.swiglu import SwiGLUFeedForward

SMALL = LlamaQwenConfig(
    vocab_size=97,
    context_length=48,
    emb_dim=32,
    n_heads=4,
    n_kv_heads=2,
    head_dim=16,
    n_layers=2,
    hidden_dim=80,
    rope_scaling=Llama3RopeScaling(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context_length=16),
    qk_norm=True,
)


def small_model(cfg=SMALL, seed=0):
    torch.manual_seed(seed)
    model = LlamaQwenModel(cfg).eval()
    with torch.no_grad():  # norms start at 1: perturb them so every one of them matters
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.add_(0.2 * torch.randn_like(p))
    return model


# ---- RMSNorm -------------------------------------------------------------------------------------------------


def test_rms_norm_matches_torch():
    norm = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.scale.copy_(torch.rand(16) + 0.5)
    reference = nn.RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        reference.weight.copy_(norm.scale)
    x = torch.randn(2, 5, 16) * 3 + 1
    torch.testing.assert_close(norm(x), reference(x))
    assert count_parameters(norm) == 16  # scale only, no shift


def test_rms_norm_keeps_dtype_and_computes_in_float32():
    norm = RMSNorm(8).to(torch.bfloat16)
    x = torch.randn(3, 8).to(torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    expected = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


# ---- RoPE ----------------------------------------------------------------------------------------------------


def test_rope_frequencies_formula():
    inv = rope_frequencies(8, theta_base=100.0)
    torch.testing.assert_close(inv, torch.tensor([1.0, 100 ** (-2 / 8), 100 ** (-4 / 8), 100 ** (-6 / 8)]))
    with pytest.raises(ValueError, match="head_dim must be a positive even int"):
        rope_frequencies(7)


def test_rope_is_a_rotation_of_pairs():
    """Each pair (x[i], x[i + d/2]) turns by position * inv_freq[i]; lengths are kept."""
    head_dim, pos = 8, 5
    rope = RoPE(head_dim, theta_base=100.0)
    cos, sin = rope(torch.tensor([pos]))
    x = torch.randn(1, 1, 1, head_dim)
    y = apply_rope(x, cos, sin)
    for i, freq in enumerate(rope_frequencies(head_dim, 100.0).tolist()):
        a, b = x[0, 0, 0, i].item(), x[0, 0, 0, i + head_dim // 2].item()
        angle = pos * freq
        c, s = math.cos(angle), math.sin(angle)
        assert y[0, 0, 0, i].item() == pytest.approx(a * c - b * s, abs=1e-5)
        assert y[0, 0, 0, i + head_dim // 2].item() == pytest.approx(b * c + a * s, abs=1e-5)
    torch.testing.assert_close(y.norm(), x.norm())


def test_rope_scores_depend_only_on_relative_position():
    rope = RoPE(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        cos_m, sin_m = rope(torch.tensor([m]))
        cos_n, sin_n = rope(torch.tensor([n]))
        return (apply_rope(q, cos_m, sin_m) * apply_rope(k, cos_n, sin_n)).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_llama3_scaling_matches_transformers():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaling = Llama3RopeScaling(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context_length=8192)
    config = LlamaConfig(
        hidden_size=2048,
        num_attention_heads=32,
        head_dim=64,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    expected, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    ours = llama3_scaled_frequencies(rope_frequencies(64, 500000.0), scaling)
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)
    plain = rope_frequencies(64, 500000.0)
    assert torch.equal(ours[:4], plain[:4])  # fast pairs unchanged
    torch.testing.assert_close(ours[-4:], plain[-4:] / 32)  # slow pairs slowed down by the factor


def test_llama3_scaling_validation():
    with pytest.raises(ValueError, match="low_freq_factor < high_freq_factor"):
        Llama3RopeScaling(low_freq_factor=4.0, high_freq_factor=1.0)
    with pytest.raises(ValueError, match="factor must be a positive finite number"):
        Llama3RopeScaling(factor=0)


# ---- SwiGLU --------------------------------------------------------------------------------------------------


def test_swiglu_formula_and_parameter_count():
    ff = SwiGLUFeedForward(12, 32)
    x = torch.randn(2, 3, 12)
    w1, w3, w2 = ff.gate.weight, ff.up.weight, ff.down.weight
    expected = (F.silu(x @ w1.T) * (x @ w3.T)) @ w2.T
    torch.testing.assert_close(ff(x), expected)
    assert count_parameters(ff) == 3 * 12 * 32


# ---- grouped-query attention ---------------------------------------------------------------------------------


def _reference_attention(att: GroupedQueryAttention, x, cos, sin):
    """Plain attention with each key/value head repeated for its group of query heads."""
    b, t, _ = x.shape
    q = att.W_query(x).view(b, t, att.n_heads, att.head_dim)
    k = att.W_key(x).view(b, t, att.n_kv_heads, att.head_dim)
    v = att.W_value(x).view(b, t, att.n_kv_heads, att.head_dim).transpose(1, 2)
    if att.q_norm is not None:
        q, k = att.q_norm(q), att.k_norm(k)
    q, k = apply_rope(q.transpose(1, 2), cos, sin), apply_rope(k.transpose(1, 2), cos, sin)
    group = att.n_heads // att.n_kv_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(att.head_dim)
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    ctx = torch.softmax(scores, dim=-1) @ v
    return att.out_proj(ctx.transpose(1, 2).reshape(b, t, -1))


@pytest.mark.parametrize(("n_heads", "n_kv_heads", "qk_norm"), [(4, 4, False), (4, 2, True), (6, 1, False)])
def test_gqa_matches_repeated_heads(n_heads, n_kv_heads, qk_norm):
    att = GroupedQueryAttention(24, n_heads, n_kv_heads, head_dim=10, qk_norm=qk_norm)
    if qk_norm:
        with torch.no_grad():
            att.q_norm.scale.add_(0.3 * torch.randn(10))
            att.k_norm.scale.add_(0.3 * torch.randn(10))
    x = torch.randn(2, 7, 24)
    cos, sin = RoPE(10)(torch.arange(7))
    with torch.no_grad():
        torch.testing.assert_close(att(x, cos, sin), _reference_attention(att, x, cos, sin))
    kv = n_kv_heads * 10
    assert count_parameters(att) == 24 * n_heads * 10 * 2 + 24 * kv * 2 + (20 if qk_norm else 0)


def test_gqa_rejects_uneven_groups():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        GroupedQueryAttention(24, 4, 3, head_dim=8)


# ---- config --------------------------------------------------------------------------------------------------


def test_config_validation():
    with pytest.raises(ValueError, match=r"n_heads \(4\) must be a multiple of n_kv_heads \(3\).*\[1, 2, 4\]"):
        SMALL.with_(n_kv_heads=3)
    with pytest.raises(TypeError, match="hidden_dim must be an int"):
        SMALL.with_(hidden_dim=80.0)
    with pytest.raises(ValueError, match="n_layers must be positive"):
        SMALL.with_(n_layers=0)
    with pytest.raises(ValueError, match="head_dim must be even"):
        SMALL.with_(head_dim=15)
    with pytest.raises(ValueError, match="rope_theta must be a positive finite number"):
        SMALL.with_(rope_theta=-1.0)
    with pytest.raises(TypeError, match="rope_scaling must be None or a Llama3RopeScaling"):
        SMALL.with_(rope_scaling={"factor": 8.0})
    with pytest.raises(TypeError, match="qk_norm must be True or False"):
        SMALL.with_(qk_norm=1)
    with pytest.raises(FrozenInstanceError):
        SMALL.n_layers = 3
    with pytest.raises(ValueError, match="the config dict has no 'vocab_size'"):
        LlamaQwenModel({"emb_dim": 32})
    assert hash(SMALL) == hash(SMALL.with_())  # frozen and hashable, rope_scaling included


# ---- the model -----------------------------------------------------------------------------------------------


def test_forward_shapes_and_checks():
    model = small_model()
    ids = torch.randint(0, SMALL.vocab_size, (3, 10))
    assert model(ids).shape == (3, 10, SMALL.vocab_size)
    with pytest.raises(ValueError, match="longer than context_length=48"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        model(ids.float())


def test_no_position_embedding_but_order_matters():
    """Without a position embedding, RoPE alone makes the output depend on where tokens stand."""
    model = small_model()
    assert not any("pos" in name for name, _ in model.named_parameters())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0, -1], model(ids.flip(1))[0, -1])


def test_kv_cache_holds_key_value_heads_only():
    model = small_model()
    cache = KVCache.for_model(model, batch_size=2)
    assert cache.layers[0].keys.shape == (2, SMALL.n_kv_heads, SMALL.context_length, SMALL.head_dim)


def test_cached_logits_equal_full_recomputation():
    model = small_model()
    seq = torch.randint(0, SMALL.vocab_size, (2, 30))
    cache = KVCache.for_model(model, batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(model(seq[:, :8], cache=cache), model(seq[:, :8]))
        for end in range(9, 27):
            torch.testing.assert_close(model(seq[:, end - 1 : end], cache=cache)[:, -1], model(seq[:, :end])[:, -1])
        torch.testing.assert_close(model(seq[:, 26:30], cache=cache), model(seq)[:, 26:30])  # a block of 4


def test_generate_with_and_without_cache():
    model = small_model()
    prompt = torch.randint(0, SMALL.vocab_size, (2, 4))
    expected = generate_text_simple(model, prompt, 30, context_size=SMALL.context_length)
    assert torch.equal(generate(model, prompt, 30), expected)
    assert torch.equal(generate(model, prompt, 30, use_cache=False), expected)


def test_optimize_for_inference_keeps_outputs():
    model = small_model(SMALL.with_(tie_weights=True))
    ids = torch.randint(0, SMALL.vocab_size, (2, 12))
    prompt = ids[:, :3]
    with torch.no_grad():
        reference = model(ids)
    tokens = generate(model, prompt, 20)
    optimize_for_inference(model)
    assert model.out_head.weight is model.tok_emb.weight
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference)
    assert torch.equal(generate(model, prompt, 20), tokens)


def test_weight_tying_and_breakdown():
    untied, tied = llama_qwen_parameter_breakdown(SMALL), llama_qwen_parameter_breakdown(SMALL.with_(tie_weights=True))
    v, c, n, hd = SMALL.vocab_size, SMALL.emb_dim, SMALL.n_layers, SMALL.head_dim
    assert untied["token_embedding"] == untied["output_head"] == v * c
    assert tied["output_head"] == 0 and tied["total"] == untied["total"] - v * c
    attention = c * SMALL.n_heads * hd * 2 + c * SMALL.n_kv_heads * hd * 2
    assert untied["attention"] == n * attention
    assert untied["feed_forward"] == n * 3 * c * SMALL.hidden_dim
    assert untied["norms"] == n * (2 * c + 2 * hd) + c
    assert untied["total"] == count_parameters(small_model())
    model = LlamaQwenModel(SMALL.with_(tie_weights=True))
    assert model.out_head.weight is model.tok_emb.weight


# ---- the book's chapter 5 bonus code: dict configs and state_dicts (tests/book_style.py) -----------------------

BOOK_LLAMA = {  # the keys of the book's LLAMA32_CONFIG_1B, small sizes
    "vocab_size": 101,
    "context_length": 40,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "hidden_dim": 48,
    "n_kv_groups": 2,
    "rope_base": 500_000.0,
    "dtype": torch.float32,
    "rope_freq": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_context_length": 16},
}
BOOK_QWEN = {  # the keys of the book's QWEN_CONFIG_06_B, small sizes
    "vocab_size": 101,
    "context_length": 40,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "hidden_dim": 48,
    "head_dim": 16,
    "qk_norm": True,
    "n_kv_groups": 2,
    "rope_base": 1_000_000.0,
    "dtype": torch.float32,
}


def book_model(cfg: dict, seed: int = 0):
    from book_style import BookLlamaQwen

    torch.manual_seed(seed)
    book = BookLlamaQwen(cfg).eval()
    with torch.no_grad():  # gammas start at 1: perturb them so a norm that is not loaded would show
        for name, p in book.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return book


@pytest.mark.parametrize(
    "book_cfg",
    [
        BOOK_LLAMA,
        BOOK_LLAMA | {"orig_context_length": 160},  # the book's rescale_theta: base * 40 / 160
        BOOK_QWEN,
        BOOK_QWEN | {"head_dim": None},  # None: emb_dim // n_heads
    ],
    ids=["llama", "llama-rescaled-base", "qwen3", "qwen3-head-dim-none"],
)
def test_book_dict_config_and_state_dict(book_cfg):
    book = book_model(book_cfg)
    ours = LlamaQwenModel(book_cfg).eval()
    state = book.state_dict()
    assert any(".ff.fc1." in k for k in state) and ("final_norm.weight" in state) is ("qk_norm" not in book_cfg)
    result = ours.load_state_dict(state)  # strict: every book name is renamed, nothing left over
    assert not result.missing_keys and not result.unexpected_keys
    assert set(state) == set(book.state_dict()), "load_state_dict must not change the caller's dict"
    ids = torch.randint(0, book_cfg["vocab_size"], (2, 33))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), book(ids), atol=1e-5, rtol=1e-5)
    qwen = "qk_norm" in book_cfg
    assert ours.cfg.qk_norm is qwen and ours.cfg.norm_eps == (1e-6 if qwen else 1e-5)
    assert ours.cfg.n_kv_heads == 2 and ours.cfg.head_dim == (book_cfg.get("head_dim") or 8)
    assert not ours.cfg.tie_weights
    assert (ours.cfg.rope_scaling is None) is qwen


def test_book_config_fields():
    cfg = llama_qwen_config_from_book(BOOK_LLAMA | {"orig_context_length": 160})
    assert cfg.rope_theta == 500_000.0 * 40 / 160 and cfg.rope_scaling == Llama3RopeScaling(32.0, 1.0, 4.0, 16)
    assert llama_qwen_config_from_book(BOOK_QWEN) == LlamaQwenConfig(
        vocab_size=101, context_length=40, emb_dim=32, n_heads=4, n_kv_heads=2, head_dim=16, n_layers=2,
        hidden_dim=48, rope_theta=1_000_000.0, qk_norm=True, norm_eps=1e-6,
    )  # fmt: skip
    with torch.device("meta"):
        half = LlamaQwenModel(BOOK_QWEN | {"dtype": torch.bfloat16})
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}  # the book builds in its dict's dtype
    original = dict(BOOK_LLAMA, orig_context_length=160)
    llama_qwen_config_from_book(original)
    assert original["rope_base"] == 500_000.0  # the caller's dict is not changed (the book's code changes it)


@pytest.mark.parametrize(
    ("change", "error", "pattern"),
    [
        ({"n_kv_group": 2}, ValueError, r"unknown key 'n_kv_group' \(did you mean 'n_kv_groups'\?\)"),
        ({"n_kv_heads": 2}, ValueError, "gives both 'n_kv_groups' and 'n_kv_heads'"),
        ({"hidden_dim": None}, TypeError, "hidden_dim must be an int"),
        ({"rope_freq": {"factor": 8.0}}, ValueError, "rope_freq must have exactly the keys"),
        ({"rope_freq": {**BOOK_LLAMA["rope_freq"], "factor": float("nan")}}, ValueError, "factor must be a positive"),
        ({"window_size": 8}, ValueError, "window_size=8 .* not supported"),
        ({"dtype": "bfloat16"}, TypeError, "dtype must be a floating torch.dtype"),
        ({"n_heads": 5}, ValueError, r"emb_dim \(32\) must be a multiple of n_heads \(5\)"),
        ({"orig_context_length": 0}, ValueError, "orig_context_length must be a positive int"),
        ({"rope_base": float("inf")}, ValueError, "rope_theta must be a positive finite number"),
    ],
)
def test_book_config_errors(change, error, pattern):
    with pytest.raises(error, match=pattern):
        LlamaQwenModel(BOOK_LLAMA | change)


def test_book_config_missing_key_and_wrong_type():
    with pytest.raises(ValueError, match="the config dict has no 'n_kv_heads'"):
        llama_qwen_config_from_book({k: v for k, v in BOOK_LLAMA.items() if k != "n_kv_groups"})
    with pytest.raises(TypeError, match="expected the book's dict config, got list"):
        llama_qwen_config_from_book([("emb_dim", 32)])
    with pytest.raises(TypeError, match=r"expects a LlamaQwenConfig \(or the book's dict config\), got int"):
        LlamaQwenModel(42)


def test_rename_book_keys_leaves_our_names_and_clashes_alone():
    ours = small_model().state_dict()
    assert rename_book_keys(dict(ours)) == []  # our own state_dict: nothing to rename
    clash = {"trf_blocks.0.ff.fc1.weight": torch.zeros(1), "trf_blocks.0.ff.gate.weight": torch.ones(1)}
    assert rename_book_keys(clash) == [] and len(clash) == 2  # both names given: a strict load reports it
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*ff\.fc1\.weight"):
        small_model().load_state_dict(dict(ours) | {"trf_blocks.0.ff.fc1.weight": ours["trf_blocks.0.ff.gate.weight"]})


# ---- bad inputs: one-line errors naming the problem and the fix ------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: RMSNorm(0), ValueError, "emb_dim must be a positive int"),
        (lambda: RMSNorm(True), ValueError, "emb_dim must be a positive int"),
        (lambda: RMSNorm(8.0), ValueError, "emb_dim must be a positive int"),
        (lambda: RMSNorm(8, eps=float("nan")), ValueError, "eps must be a small positive number"),
        (lambda: RMSNorm(8, eps=0), ValueError, "eps must be a small positive number"),
        (lambda: RMSNorm(8)(torch.ones(2, 7)), ValueError, r"RMSNorm\(8\) got a tensor of shape \(2, 7\)"),
        (lambda: RMSNorm(8)(torch.ones(2, 8, dtype=torch.long)), TypeError, "floating-point tensor, got torch.int64"),
        (lambda: RMSNorm(8)([1.0] * 8), TypeError, "floating-point tensor, got list"),
        (lambda: rope_frequencies(0), ValueError, "positive even int, got 0"),
        (lambda: rope_frequencies(16.0), ValueError, "positive even int, got 16.0"),
        (lambda: rope_frequencies(16, float("nan")), ValueError, "theta_base must be a positive finite number"),
        (lambda: rope_frequencies(16, -1.0), ValueError, "theta_base must be a positive finite number"),
        (lambda: RoPE(15), ValueError, "positive even int, got 15"),
        (lambda: RoPE(16, 10_000.0, {"factor": 8.0}), TypeError, "scaling must be None or a Llama3RopeScaling"),
        (lambda: RoPE(16)(torch.arange(4.0)), TypeError, "1-D integer tensor of positions"),
        (lambda: RoPE(16)(torch.arange(4).view(2, 2)), TypeError, "1-D integer tensor of positions"),
        (lambda: RoPE(16)(torch.tensor([-1, 0])), ValueError, "positions must be >= 0, got -1"),
        (lambda: RoPE(16)([0, 1]), TypeError, "1-D integer tensor of positions"),
        (lambda: Llama3RopeScaling(factor=float("inf")), ValueError, "factor must be a positive finite number"),
        (lambda: Llama3RopeScaling(original_context_length=True), ValueError, "must be a positive finite number"),
        (lambda: llama3_scaled_frequencies(rope_frequencies(16), None), TypeError, "must be a Llama3RopeScaling"),
        (lambda: llama3_scaled_frequencies([1.0], Llama3RopeScaling()), TypeError, "1-D float tensor"),
        (lambda: apply_rope(torch.ones(1, 2, 5, 16), *RoPE(16)(torch.arange(4))), ValueError, r"\(T, head_dim\)"),
        (lambda: apply_rope(torch.ones(1, 2, 4, 8), *RoPE(16)(torch.arange(4))), ValueError, r"\(T, head_dim\)"),
        (lambda: apply_rope(torch.ones(1, 1, 4, 16).long(), *RoPE(16)(torch.arange(4))), TypeError, "float tensor"),
        (lambda: SwiGLUFeedForward(8, 0), ValueError, "hidden_dim must be a positive int"),
        (lambda: SwiGLUFeedForward(8.5, 16), ValueError, "emb_dim must be a positive int"),
        (lambda: GroupedQueryAttention(32, 4, 0, 8), ValueError, "n_kv_heads must be a positive int, got 0"),
        (lambda: GroupedQueryAttention(32, 4, 2, 8, qk_norm="yes"), TypeError, "qk_norm must be True or False"),
        (lambda: GroupedQueryAttention(32, 4, 2, 8)(torch.ones(2, 5, 31), None, None), ValueError, r"\(B, T, 32\)"),
        (lambda: GroupedQueryAttention(32, 4, 2, 8)(torch.ones(5, 32), None, None), ValueError, r"\(B, T, 32\)"),
        (lambda: SMALL.with_(rope_theta=float("nan")), ValueError, "rope_theta must be a positive finite number"),
        (lambda: SMALL.with_(norm_eps=float("inf")), ValueError, "norm_eps must be a positive finite number"),
        (lambda: SMALL.with_(vocab_size=True), TypeError, "vocab_size must be an int"),
        (lambda: llama_qwen_parameter_breakdown({"emb_dim": 32}), TypeError, "expects a LlamaQwenConfig, got dict"),
        (lambda: rename_book_keys([("ff.fc1.weight", 1)]), TypeError, "expects a state_dict"),
        (lambda: rename_book_keys({}, prefix=None), TypeError, "and a str prefix"),
    ],
)
def test_bad_inputs_to_the_pieces(make, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("ids", "kwargs", "error", "pattern"),
    [
        (torch.zeros(0, 4, dtype=torch.long), {}, ValueError, "batch size 0"),
        (torch.zeros(2, 0, dtype=torch.long), {}, ValueError, "empty"),
        (torch.zeros(2, 4), {}, TypeError, "integer tensor"),
        (torch.tensor([[1, 97]]), {}, ValueError, r"token id 97 is outside the vocabulary \[0, 97\)"),
        (torch.tensor([[-1, 3]]), {}, ValueError, "token id -1 is outside"),
        (torch.tensor([1, 2]), {}, ValueError, "must be 2-D"),
        ([[1, 2]], {}, TypeError, "must be a torch.Tensor"),
        (torch.tensor([[1, 2]]), {"cache": "cache"}, ValueError, "cache must be a KVCache for this model"),
    ],
)
def test_bad_inputs_to_the_model(ids, kwargs, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        small_model()(ids, **kwargs)
    assert "\n" not in str(info.value)


def test_cache_of_another_model_is_refused():
    other = LlamaQwenModel(SMALL.with_(n_layers=3))
    with pytest.raises(ValueError, match="cache must be a KVCache for this model"):
        small_model()(torch.tensor([[1, 2]]), cache=KVCache.for_model(other, batch_size=1))
