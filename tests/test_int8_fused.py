"""The lean int8 decoding step (speed/fused.py Int8FusedBlock): same outputs as the taught int8 layers."""

import copy

import pytest
import torch

from gpt_helpers import GPTConfig, GPTModel, KVCache, generate, optimize_for_inference
from gpt_helpers.speed import fused
from gpt_helpers.speed.fused import Int8FusedBlock, stack_int8_qkv_
from gpt_helpers.speed.int8 import Int8Linear, int8_weight_bytes, load_int8_model, quantize_int8_, save_int8_model

TINY = GPTConfig(
    vocab_size=96, context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0, qkv_bias=True, tie_weights=True
)


def pair(cfg=TINY, seed=0):
    """A GPTModel quantized by the taught quantize_int8_ and a copy made fast by optimize_for_inference('int8')."""
    torch.manual_seed(seed)
    model = GPTModel(cfg).eval()
    with torch.no_grad():  # perturb biases and norms away from their init, so each one matters
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    taught = quantize_int8_(copy.deepcopy(model))
    fast = optimize_for_inference(copy.deepcopy(model), weights="int8")
    return taught, fast


def step_logits(model, ids, steps):
    """Prefill ids, then feed the greedy token `steps` times: the logits of every step, (steps + 1, vocab)."""
    cache = KVCache.for_model(model, ids.shape[0])
    out = []
    with torch.no_grad():
        logits = model(ids, cache)[:, -1]
        out.append(logits)
        for _ in range(steps):
            logits = model(logits.argmax(-1, keepdim=True), cache)[:, -1]
            out.append(logits)
    return torch.stack(out)


def test_blocks_become_int8_fused_blocks_with_qkv_in_one_buffer():
    taught, fast = pair()
    assert all(type(b) is Int8FusedBlock for b in fast.trf_blocks)
    att = fast.trf_blocks[0].att
    q, k, v = (lin.qweight for lin in (att.W_query, att.W_key, att.W_value))
    assert q.untyped_storage().data_ptr() == k.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()
    assert k.data_ptr() == q.data_ptr() + q.numel() and v.data_ptr() == k.data_ptr() + k.numel()
    assert int8_weight_bytes(fast) == int8_weight_bytes(taught)  # views: nothing stored twice
    for name, t in taught.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[name], t, rtol=0, atol=0)


@pytest.mark.parametrize("batch", [1, 3])
def test_lean_step_equals_the_taught_int8_layers(batch, monkeypatch):
    taught, fast = pair()
    ids = torch.randint(0, TINY.vocab_size, (batch, 5), generator=torch.Generator().manual_seed(1))
    calls = []
    monkeypatch.setattr(fused, "_int8_rows", lambda *a, _f=fused._int8_rows: calls.append(1) or _f(*a))
    got = step_logits(fast, ids, steps=20)
    want = step_logits(taught, ids, steps=20)
    # the same kernels on the same rows: Q, K and V in one product give the same columns as three products
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert len(calls) == 20 * TINY.n_layers * 4  # the lean step ran at every decoding step (4 products a block)


def test_generate_gives_the_taught_int8_tokens():
    taught, fast = pair(seed=3)
    ids = torch.tensor([[5, 17, 42]])
    assert torch.equal(generate(fast, ids, 25), generate(taught, ids, 25))


def test_in_place_load_state_dict_is_followed():
    """Loading other weights in place (copy_) must reach the lean step and every cached bfloat16 scale."""
    taught, fast = pair(seed=0)
    other, _ = pair(seed=5)
    ids = torch.tensor([[1, 2, 3, 4]])
    step_logits(fast, ids, 3)  # fills the cached layouts and scales
    fast.load_state_dict(other.state_dict())
    torch.testing.assert_close(step_logits(fast, ids, 10), step_logits(other, ids, 10), rtol=1e-6, atol=1e-6)


def test_int8_linear_scale_cache_follows_new_scales():
    lin = Int8Linear.from_linear(torch.nn.Linear(64, 32, bias=False))
    x = torch.randn(1, 64)
    with torch.no_grad():
        before = lin(x)
        lin.scale.mul_(2)  # in place, as load_state_dict does
        after = lin(x)
    torch.testing.assert_close(after, 2 * before, rtol=2**-7, atol=1e-6)


def test_assigned_weights_fall_back_to_the_taught_forward():
    taught, fast = pair(seed=0)
    other, _ = pair(seed=7)
    fast.load_state_dict(copy.deepcopy(other.state_dict()), assign=True)  # new tensors: Q/K/V no longer share
    ids = torch.tensor([[9, 8, 7]])
    assert fused._stacked_int8_qkv(fast.trf_blocks[0].att) is None
    torch.testing.assert_close(step_logits(fast, ids, 6), step_logits(other, ids, 6), rtol=1e-6, atol=1e-6)


def test_save_and_load_of_the_fast_model(tmp_path):
    taught, fast = pair(seed=2)
    path = save_int8_model(fast, tmp_path / "fast-int8.safetensors")
    loaded = load_int8_model(path)
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    torch.testing.assert_close(step_logits(loaded, ids, 8), step_logits(taught, ids, 8), rtol=1e-6, atol=1e-6)


def test_shapes_the_lean_step_cannot_take_keep_the_taught_forward():
    # emb_dim 48: not a multiple of 32, so Int8Linear itself uses the dequantized path
    cfg = GPTConfig(vocab_size=64, context_length=16, emb_dim=48, n_heads=4, n_layers=1, drop_rate=0.0)
    taught, fast = pair(cfg)
    assert type(fast.trf_blocks[0]) is not Int8FusedBlock
    ids = torch.tensor([[1, 2]])
    torch.testing.assert_close(step_logits(fast, ids, 4), step_logits(taught, ids, 4), rtol=1e-6, atol=1e-6)


def test_stack_int8_qkv_refuses_other_modules():
    with pytest.raises(TypeError, match="MultiHeadAttention"):
        stack_int8_qkv_(torch.nn.Linear(2, 2))
