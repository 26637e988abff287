"""Gemma 3: sliding-window attention, the ring-buffer cache and the model equal transformers' Gemma3ForCausalLM."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpt_helpers import KVCache, count_parameters, generate, generate_text_simple
from gpt_helpers.checkpoints.hf import load_hf_checkpoint, model_from_hf_config
from gpt_helpers.families.gemma3 import (
    GEMMA3_1B_CONFIG,
    Gemma3Cache,
    Gemma3Config,
    Gemma3Model,
    GemmaRMSNorm,
    config_from_hf,
    gemma3_kv_cache_bytes,
    gemma3_layer_types,
    state_dict_from_hf,
)
from gpt_helpers.families.sliding_window import RingKVCache, SlidingWindowAttention, sliding_window_mask
from gpt_helpers.gpt2.attention import LayerKVCache

VOCAB = 211
WINDOW = 8


def _quiet():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def hf_gemma3(seed=0, tie=True, **changes):
    """A random Gemma3ForCausalLM: 7 layers (layer 5 global), window 8, GQA, linear RoPE scaling, logit softcap."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    _quiet()
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=7,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        sliding_window=WINDOW,
        query_pre_attn_scalar=24,  # not head_dim: a scale of 1 / sqrt(head_dim) would show
        rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0,
        rope_scaling={"rope_type": "linear", "factor": 4.0},
        final_logit_softcapping=3.0,  # small, so the cap really bends the logits
        tie_word_embeddings=tie,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = Gemma3ForCausalLM(Gemma3TextConfig(**(settings | changes))).eval()
    # random init leaves every Gemma RMSNorm weight at 0 (multiplier 1): perturb them so a mis-mapped one shows
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    model.generation_config.eos_token_id = None  # greedy runs compare every step, so generate() must not stop early
    return model


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma3")
    hf = hf_gemma3()
    hf.save_pretrained(folder)
    return hf, folder, load_hf_checkpoint(folder)


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma3_untied")
    hf = hf_gemma3(seed=1, tie=False, num_hidden_layers=4, sliding_window=5, final_logit_softcapping=None)
    hf.save_pretrained(folder)
    return hf, folder, load_hf_checkpoint(folder)


# ---- the banded mask and the layer pattern, as transformers defines them ----------------------------------------


@pytest.mark.parametrize("window", [1, 3, 8])
def test_mask_is_transformers_sliding_window(window):
    from transformers.masking_utils import sliding_window_causal_mask_function

    allowed = sliding_window_causal_mask_function(window)
    q, k = torch.arange(20), torch.arange(20)
    expected = allowed(torch.tensor(0), torch.tensor(0), q[:, None], k[None, :])  # (20, 20), broadcast
    mask = sliding_window_mask(q, k, window)
    assert torch.equal(mask, expected)
    assert mask.sum(dim=1).max() == window  # a query sees itself and window - 1 earlier positions
    assert torch.equal(sliding_window_mask(q, k), torch.ones(20, 20, dtype=torch.bool).tril())


@pytest.mark.parametrize(("n_layers", "pattern"), [(26, 6), (7, 6), (12, 3), (4, 1)])
def test_layer_types_as_transformers_derives_them(n_layers, pattern):
    from transformers import Gemma3TextConfig

    _quiet()
    hf = Gemma3TextConfig(num_hidden_layers=n_layers, sliding_window_pattern=pattern)
    kinds = {"sliding_attention": "local", "full_attention": "global"}
    assert gemma3_layer_types(n_layers, pattern) == tuple(kinds[t] for t in hf.layer_types)


def test_gemma_rms_norm_multiplies_by_one_plus_weight():
    norm = GemmaRMSNorm(6)
    with torch.no_grad():
        norm.scale.copy_(torch.linspace(-0.5, 0.5, 6))
    x = torch.randn(2, 3, 6)
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * (1 + norm.scale)
    torch.testing.assert_close(norm(x), expected)


# ---- the model against transformers ---------------------------------------------------------------------------


def test_config_read_from_config_json(gemma, untied):
    cfg = gemma[2].cfg
    assert cfg.layer_types == ("local",) * 5 + ("global", "local")
    assert (cfg.sliding_window, cfg.n_kv_heads, cfg.head_dim, cfg.query_pre_attn_scalar) == (WINDOW, 2, 16, 24.0)
    assert (cfg.rope_local_theta, cfg.rope_theta, cfg.rope_scaling_factor) == (10_000.0, 1_000_000.0, 4.0)
    assert cfg.final_logit_softcap == 3.0 and cfg.tie_weights
    assert gemma[2].out_head.weight is gemma[2].tok_emb.weight
    assert not untied[2].cfg.tie_weights and untied[2].cfg.final_logit_softcap is None


@pytest.mark.parametrize("which", ["gemma", "untied"])
def test_equal_logits(which, gemma, untied):
    hf, _, ours = {"gemma": gemma, "untied": untied}[which]
    assert isinstance(ours, Gemma3Model) and not ours.training
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())
    ids = torch.randint(0, VOCAB, (2, 60))  # far longer than the window
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("prompt_len", "new"), [(5, 40), (13, 30)])
def test_generation_past_the_window_equals_transformers(gemma, prompt_len, new):
    """Prompt 5 (< window 8) or 13 (> window), then far past the window: ring cache, no cache, transformers."""
    hf, _, ours = gemma
    prompt = torch.randint(2, VOCAB, (2, prompt_len))
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, do_sample=False, pad_token_id=0
        )
    assert expected.shape == (2, prompt_len + new)
    assert torch.equal(generate(ours, prompt, new), expected)
    assert torch.equal(generate(ours, prompt, new, use_cache=False), expected)


def test_untied_generation_equals_transformers(untied):
    hf, _, ours = untied
    prompt = torch.randint(2, VOCAB, (1, 4))
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=25, do_sample=False, pad_token_id=0
        )
    assert torch.equal(generate(ours, prompt, 25), expected)


def test_bfloat16_logits_close_to_transformers(gemma):
    """In bfloat16 the norms compute in float32 and sqrt(C) is rounded to bfloat16, as in transformers."""
    hf, folder, _ = gemma
    ours = load_hf_checkpoint(folder, dtype=torch.bfloat16)
    hf16 = hf_gemma3().to(torch.bfloat16)
    ids = torch.randint(0, VOCAB, (1, 30))
    with torch.no_grad():
        got, expected = ours(ids).float(), hf16(ids).logits.float()
    assert ours.tok_emb.weight.dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0.05)


# ---- the ring-buffer cache ------------------------------------------------------------------------------------


def _full_cache(model, batch_size, max_len):
    """A Gemma3Cache whose local layers keep every position (LayerKVCache): the banded mask does the windowing."""
    cache = model.make_cache(batch_size, max_len)
    for i, layer in enumerate(cache.layers):
        if isinstance(layer, RingKVCache):
            b, g, _, hd = layer.keys.shape
            cache.layers[i] = LayerKVCache(torch.empty(b, g, max_len, hd), torch.empty(b, g, max_len, hd))
    return cache


def test_ring_cache_equals_recomputing_with_the_mask(gemma):
    """Token by token far past the window: the ring gives the logits of a full forward pass and of a full cache."""
    _, _, ours = gemma
    ids = torch.randint(0, VOCAB, (2, 45))
    ring, full = ours.make_cache(2, 45), _full_cache(ours, 2, 45)
    with torch.no_grad():
        reference = ours(ids)  # (B, 45, V): one pass, banded mask on the local layers
        for t in range(45):
            step = ids[:, t : t + 1]
            torch.testing.assert_close(ours(step, cache=ring)[:, 0], reference[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(ours(step, cache=full)[:, 0], reference[:, t], atol=1e-5, rtol=1e-5)
    assert ring.length == 45 and all(layer.slots == WINDOW for layer in ring.layers if isinstance(layer, RingKVCache))


@pytest.mark.parametrize("cuts", [(5, 19), (3, 4, 30), (20,), (8, 16, 24)])
def test_chunked_prefill_equals_the_full_forward(gemma, cuts):
    """The prompt fed through the cache in pieces (some longer than the window, some crossing it)."""
    _, _, ours = gemma
    ids = torch.randint(0, VOCAB, (2, 40))
    bounds = [0, *cuts, 40]
    cache = ours.make_cache(2, 50)
    with torch.no_grad():
        reference = ours(ids)
        pieces = [ours(ids[:, a:b], cache=cache) for a, b in zip(bounds, bounds[1:], strict=False)]
        torch.testing.assert_close(torch.cat(pieces, dim=1), reference, atol=1e-5, rtol=1e-5)
        # and decoding continues from it exactly as from a one-piece prompt
        nxt = torch.randint(0, VOCAB, (2, 1))
        torch.testing.assert_close(
            ours(nxt, cache=cache)[:, 0], ours(torch.cat((ids, nxt), 1))[:, -1], atol=1e-5, rtol=1e-5
        )


def test_local_layers_stop_growing_at_the_window(gemma):
    _, _, ours = gemma
    cfg = ours.cfg
    small, large = ours.make_cache(1, 50), ours.make_cache(1, 250)
    one_position = 2 * cfg.n_kv_heads * cfg.head_dim * 4  # a key and a value in float32
    for kind, a, b in zip(cfg.layer_types, small.layers, large.layers, strict=True):
        if kind == "local":
            assert a.nbytes == b.nbytes == WINDOW * one_position
        else:
            assert (a.nbytes, b.nbytes) == (50 * one_position, 250 * one_position)
    assert large.nbytes == gemma3_kv_cache_bytes(cfg, 250, bytes_per_value=4)
    # generating 200 tokens leaves every tensor where it was: nothing is reallocated
    before = [(layer.keys.data_ptr(), layer.nbytes) for layer in large.layers]
    generated = generate(ours, torch.randint(2, VOCAB, (1, 5)), 200)
    assert generated.shape == (1, 205)
    with torch.no_grad():
        for t in range(205):
            ours(generated[:, t : t + 1], cache=large)
    assert large.length == 205 and [(layer.keys.data_ptr(), layer.nbytes) for layer in large.layers] == before
    assert large.nbytes == gemma3_kv_cache_bytes(cfg, 250, bytes_per_value=4)  # fixed at make_cache time


def test_generation_longer_than_context_size(gemma):
    """stream_generate's full-window path (reset, recompute the last context_size tokens) works with the rings."""
    _, _, ours = gemma
    assert isinstance(KVCache.for_model(ours, 1, 20), Gemma3Cache)
    prompt = torch.randint(2, VOCAB, (2, 5))
    expected = generate_text_simple(ours, prompt, 30, context_size=12)
    assert torch.equal(generate(ours, prompt, 30, context_size=12), expected)


def test_cache_smaller_than_the_window(gemma):
    """max_len < window: the ring has max_len rows and never wraps."""
    _, _, ours = gemma
    ids = torch.randint(0, VOCAB, (1, 6))
    cache = ours.make_cache(1, 6)
    assert all(layer.keys.shape[2] == 6 for layer in cache.layers)
    with torch.no_grad():
        steps = torch.cat([ours(ids[:, t : t + 1], cache=cache) for t in range(6)], dim=1)
        torch.testing.assert_close(steps, ours(ids), atol=1e-5, rtol=1e-5)
    assert cache.nbytes == gemma3_kv_cache_bytes(ours.cfg, 6, bytes_per_value=4)


def test_reset_forgets_and_reuses(gemma):
    _, _, ours = gemma
    ids = torch.randint(0, VOCAB, (1, 12))
    cache = ours.make_cache(1, 20)
    with torch.no_grad():
        first = ours(ids, cache=cache)
        cache.reset()
        assert cache.length == 0
        torch.testing.assert_close(ours(ids, cache=cache), first)


def test_ring_attention_alone_equals_masked_attention():
    """The attention layer with a ring equals the same layer on the whole sequence with the banded mask."""
    torch.manual_seed(0)
    att = SlidingWindowAttention(32, 4, 2, 8, window=3, scale=0.3).eval()
    x = torch.randn(2, 11, 32)
    positions = torch.arange(11).float()[:, None] * torch.tensor([1.0, 0.1, 0.01, 0.001])
    cos, sin = torch.cat((positions, positions), -1).cos(), torch.cat((positions, positions), -1).sin()
    ring = RingKVCache(torch.zeros(2, 2, 3, 8), torch.zeros(2, 2, 3, 8))
    with torch.no_grad():
        full = att(x, cos, sin)
        steps = torch.cat([att(x[:, t : t + 1], cos[t : t + 1], sin[t : t + 1], kv_cache=ring) for t in range(11)], 1)
    torch.testing.assert_close(steps, full, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    ("window", "slots", "steps"),
    [(4, 6, 1), (4, 3, 4), (None, 4, 1)],
    ids=["more rows than the window", "fewer rows, wrapping", "a ring on a global layer"],
)
def test_ring_that_does_not_fit_the_layer_is_refused(window, slots, steps):
    """A ring of other than `window` rows would drop keys still in the window (or keep stale ones): refused."""
    att = SlidingWindowAttention(32, 4, 2, 8, window=window).eval()
    ring = RingKVCache(torch.zeros(1, 2, slots, 8), torch.zeros(1, 2, slots, 8))
    cos, sin = torch.ones(1, 8), torch.zeros(1, 8)
    with torch.no_grad(), pytest.raises(ValueError, match=r"RingKVCache of \d+ rows does not fit this layer"):
        for _ in range(steps):
            att(torch.randn(1, 1, 32), cos, sin, kv_cache=ring)


def test_ring_with_fewer_rows_is_fine_until_it_would_wrap():
    """A ring smaller than the window (Gemma3Cache with max_len < window) is right as long as it never wraps."""
    torch.manual_seed(0)
    att = SlidingWindowAttention(32, 4, 2, 8, window=8).eval()
    x = torch.randn(1, 5, 32)
    cos, sin = torch.ones(5, 8), torch.zeros(5, 8)
    ring = RingKVCache(torch.zeros(1, 2, 5, 8), torch.zeros(1, 2, 5, 8))
    with torch.no_grad():
        steps = torch.cat([att(x[:, t : t + 1], cos[t : t + 1], sin[t : t + 1], kv_cache=ring) for t in range(5)], 1)
        torch.testing.assert_close(steps, att(x, cos, sin), atol=1e-6, rtol=1e-6)


# ---- Gemma 3 1B as published -----------------------------------------------------------------------------------


def test_published_1b_config():
    cfg = config_from_hf(GEMMA3_1B_CONFIG)
    assert (cfg.n_layers, cfg.sliding_window, cfg.emb_dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim) == (
        26,
        512,
        1152,
        4,
        1,
        256,
    )
    assert [i for i, kind in enumerate(cfg.layer_types) if kind == "global"] == [5, 11, 17, 23]
    assert (cfg.rope_local_theta, cfg.rope_theta, cfg.rope_scaling_factor) == (10_000.0, 1_000_000.0, 1.0)
    assert cfg.final_logit_softcap is None and cfg.tie_weights and cfg.context_length == 32_768


def test_published_1b_parameters_equal_transformers():
    from transformers import AutoConfig, AutoModelForCausalLM

    _quiet()
    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(**GEMMA3_1B_CONFIG))
    ours = model_from_hf_config(GEMMA3_1B_CONFIG, device="meta")
    assert all(p.is_meta for p in ours.parameters())
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters()) == 999_885_952
    converted = state_dict_from_hf(hf.state_dict(), ours.cfg)
    assert converted.keys() == ours.state_dict().keys() - {"out_head.weight"}


@pytest.mark.parametrize("n", [4096, 32_768])
def test_published_1b_cache_bytes_measured_equal_formula(n):
    cfg = config_from_hf(GEMMA3_1B_CONFIG)
    cache = Gemma3Cache(cfg, 1, n, dtype=torch.bfloat16, device="meta")  # shapes only
    assert cache.nbytes == gemma3_kv_cache_bytes(cfg, n)
    per_position = 2 * 1 * 256 * 2  # key + value, one key/value head of 256, bfloat16
    assert gemma3_kv_cache_bytes(cfg, n) == per_position * (4 * n + 22 * 512)
    every_layer_global = cfg.with_(layer_types=("global",) * 26)
    assert Gemma3Cache(every_layer_global, 1, n, dtype=torch.bfloat16, device="meta").nbytes == per_position * 26 * n


# ---- bad input: one-line errors naming the fix -----------------------------------------------------------------


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model_type": "gemma3"}, "multimodal"),
        ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"),
        ({"use_bidirectional_attention": True}, "bidirectional"),
        ({"attention_bias": True}, "attention_bias"),
        ({"hidden_activation": "silu"}, "gelu_pytorch_tanh"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 8.0}}, "yarn"),
        ({"layer_types": ["sliding_attention"] * 3}, "num_hidden_layers=26"),
        ({"layer_types": ["chunked_attention"] * 26}, "chunked_attention"),
        ({"num_hidden_layers": None}, "num_hidden_layers"),
        ({"sliding_window_pattern": 0}, "pattern"),
    ],
)
def test_bad_configs(change, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        config_from_hf(GEMMA3_1B_CONFIG | change)
    _one_line(excinfo)


def _resave(folder, tmp_path, change):
    target = tmp_path / "ckpt"
    shutil.copytree(folder, target)
    tensors = load_file(target / "model.safetensors")
    change(tensors)
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.pop("model.layers.2.pre_feedforward_layernorm.weight"), "missing"),
        (lambda t: t.update(extra=torch.zeros(2)), "unexpected"),
        (lambda t: t.update({"model.layers.0.self_attn.k_norm.weight": torch.zeros(8)}), "shape mismatch"),
        (lambda t: t.update({"lm_head.weight": torch.zeros(VOCAB, 64)}), "tie_word_embeddings"),
    ],
)
def test_bad_checkpoints(gemma, tmp_path, change, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        load_hf_checkpoint(_resave(gemma[1], tmp_path, change))
    _one_line(excinfo)


def test_config_with_more_layers_than_the_weights(gemma, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(gemma[1], target)
    config = json.loads((target / "config.json").read_text())
    config["num_hidden_layers"], config["layer_types"] = 8, config["layer_types"] + ["sliding_attention"]
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing") as excinfo:
        load_hf_checkpoint(target)
    _one_line(excinfo)


def test_bad_model_inputs(gemma):
    _, _, ours = gemma
    with pytest.raises(TypeError, match="make_cache") as excinfo:
        ours(torch.zeros(1, 3, dtype=torch.long), cache=object())
    _one_line(excinfo)
    with pytest.raises(ValueError, match="context_length=256") as excinfo:
        ours(torch.zeros(1, 257, dtype=torch.long))
    _one_line(excinfo)
    with pytest.raises(ValueError, match="at most context_length"):
        ours.make_cache(1, 300)
    with pytest.raises(ValueError, match="batch size 1"):
        ring = ours.make_cache(1, 10)
        with torch.no_grad():
            ours(torch.zeros(2, 3, dtype=torch.long), cache=ring)
    with pytest.raises(ValueError, match="max_len"):
        Gemma3Cache(ours.cfg, 1, 0)
    local_only = Gemma3Model(ours.cfg.with_(layer_types=("local",) * 7))
    small = local_only.make_cache(1, 5)  # rings of 5 rows: a 6th position would overwrite one still in the window
    with torch.no_grad():
        local_only(torch.zeros(1, 5, dtype=torch.long), cache=small)
        with pytest.raises(ValueError, match="cache is full") as excinfo:
            local_only(torch.zeros(1, 1, dtype=torch.long), cache=small)
    _one_line(excinfo)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"layer_types": ("local",) * 3}, ValueError, "gemma3_layer_types"),
        ({"layer_types": ("local", "middle")}, ValueError, "middle"),
        ({"sliding_window": 0}, ValueError, "sliding_window"),
        ({"n_kv_heads": 3}, ValueError, "multiple"),
        ({"final_logit_softcap": -1.0}, ValueError, "final_logit_softcap"),
        ({"head_dim": 7}, ValueError, "even"),
    ],
)
def test_bad_config_fields(change, error, match):
    good = dict(
        vocab_size=10,
        context_length=16,
        emb_dim=8,
        n_heads=2,
        n_kv_heads=1,
        head_dim=4,
        n_layers=2,
        hidden_dim=12,
        sliding_window=4,
        layer_types=("local", "global"),
    )
    Gemma3Config(**good)
    with pytest.raises(error, match=match) as excinfo:
        Gemma3Config(**(good | change))
    _one_line(excinfo)
    with pytest.raises(ValueError, match="window must be a positive int"):
        SlidingWindowAttention(8, 2, 1, 4, window=0)
