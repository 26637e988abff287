"""use_fused_kernels and optimize_for_inference: the same model, the same outputs, shared parameters."""

import copy
import math

import pytest
import torch
from helpers import TINY, tiny_model
from torch import nn
from torch.nn import functional as F

from gpt_helpers import KVCache, generate
from gpt_helpers.gpt2.attention import MultiHeadAttention
from gpt_helpers.gpt2.block import TransformerBlock
from gpt_helpers.gpt2.feed_forward import GELU
from gpt_helpers.gpt2.normalization import LayerNorm
from gpt_helpers.speed import fused as fused_module
from gpt_helpers.speed.fused import (
    FusedBlock,
    FusedGELU,
    FusedLayerNorm,
    SplitLinear,
    column_major_,
    optimize_for_inference,
    stack_qkv_,
    use_fused_kernels,
)


def test_fused_model_matches_taught_model():
    taught = tiny_model(TINY.with_(tie_weights=True))
    with torch.no_grad():  # non-trivial scale/shift so the LayerNorm parameters matter
        for m in taught.modules():
            if isinstance(m, LayerNorm):
                m.scale.add_(0.3 * torch.randn_like(m.scale))
                m.shift.add_(0.3 * torch.randn_like(m.shift))
    fused = use_fused_kernels(copy.deepcopy(taught))
    kinds = [type(m) for m in fused.modules()]
    assert LayerNorm not in kinds and GELU not in kinds
    assert kinds.count(FusedLayerNorm) == 2 * TINY.n_layers + 1 and kinds.count(FusedGELU) == TINY.n_layers
    ids = torch.randint(0, TINY.vocab_size, (2, TINY.context_length))
    with torch.no_grad():
        torch.testing.assert_close(fused(ids), taught(ids), atol=1e-5, rtol=1e-5)
    assert torch.equal(generate(fused, ids[:, :3], 20), generate(taught, ids[:, :3], 20))
    assert fused.state_dict().keys() == taught.state_dict().keys()
    assert fused.out_head.weight is fused.tok_emb.weight


def test_parameters_are_shared_not_copied():
    model = tiny_model()
    scale = model.trf_blocks[0].norm1.scale
    use_fused_kernels(model)
    assert model.trf_blocks[0].norm1.scale is scale
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_model().parameters())


DEFAULT_MIN_BYTES = SplitLinear.min_bytes  # read before the fixture below lowers it


@pytest.fixture(autouse=True)
def split_small_layers(monkeypatch):
    """Let SplitLinear split the small layers of these tests (by default only weights >= min_bytes split)."""
    monkeypatch.setattr(SplitLinear, "min_bytes", 0)


@pytest.fixture
def two_threads():
    """Run with two intra-op threads, so SplitLinear has two slabs to split into."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bmm_calls(monkeypatch):
    """Count torch.bmm calls, to see which path SplitLinear took."""
    calls = []
    real_bmm = torch.bmm

    def counting_bmm(*args, **kwargs):
        calls.append(args[0].shape)
        return real_bmm(*args, **kwargs)

    monkeypatch.setattr(torch, "bmm", counting_bmm)
    return calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("shape", "split"), [((1, 1, 64), True), ((3, 5, 64), True), ((17, 64), False)])
def test_split_linear_matches_linear(two_threads, bmm_calls, bias, shape, split):
    plain = nn.Linear(64, 40, bias=bias)
    fast = SplitLinear(64, 40, bias=bias)
    fast.load_state_dict(plain.state_dict())
    column_major_(fast.weight)
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), atol=1e-6, rtol=1e-5)
    assert fast(x).shape == (*shape[:-1], 40)
    # up to max_rows rows take the split path: one bmm with a slab of 32 input features per thread
    assert bmm_calls == ([(2, math.prod(shape[:-1]), 32)] * 2 if split else [])


def test_split_linear_splits_only_weights_worth_it(two_threads, bmm_calls, monkeypatch):
    monkeypatch.setattr(SplitLinear, "min_bytes", DEFAULT_MIN_BYTES)
    assert DEFAULT_MIN_BYTES == 4 * 2**20
    for d_out, split in [(2048, False), (4096, True)]:  # 256 x 2048 floats are 2 MiB, x 4096 are 4 MiB
        fast = SplitLinear(256, d_out)
        column_major_(fast.weight)
        x = torch.randn(1, 256)
        bmm_calls.clear()
        with torch.no_grad():
            torch.testing.assert_close(fast(x), F.linear(x, fast.weight, fast.bias))
        assert bmm_calls == ([(2, 1, 128)] if split else [])


def test_split_linear_falls_back_when_it_cannot_split(two_threads, bmm_calls):
    x = torch.randn(1, 1, 63)
    plain = nn.Linear(63, 10)
    fast = SplitLinear(63, 10)
    fast.load_state_dict(plain.state_dict())
    column_major_(fast.weight)
    torch.testing.assert_close(fast(x), plain(x))  # 63 input features do not split in two
    with pytest.raises(RuntimeError, match="cannot be multiplied"):  # wrong width: F.linear's own error
        fast(torch.ones(1, 62))
    fast_rm = SplitLinear(64, 10)  # row-major weight: no contiguous slabs
    ones = torch.ones(1, 64)
    torch.testing.assert_close(fast_rm(ones), F.linear(ones, fast_rm.weight, fast_rm.bias))
    column_major_(fast_rm.weight)  # now it could split, but with one thread there is nothing to split over
    torch.set_num_threads(1)  # the two_threads fixture restores the count afterwards
    torch.testing.assert_close(fast_rm(ones), F.linear(ones, fast_rm.weight, fast_rm.bias))
    assert bmm_calls == []


def test_split_linear_gradients_match(two_threads):
    plain = nn.Linear(64, 24)
    fast = SplitLinear(64, 24)
    fast.load_state_dict(plain.state_dict())
    column_major_(fast.weight)
    x = torch.randn(2, 64)
    plain(x).square().sum().backward()
    fast(x).square().sum().backward()
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad)
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad)


def test_column_major_keeps_parameter_values_and_shape():
    weight = nn.Parameter(torch.randn(5, 3))
    values = weight.detach().clone()
    column_major_(weight)
    assert weight.shape == (5, 3) and weight.stride() == (1, 5) and weight.t().is_contiguous()
    assert torch.equal(weight, values)
    with pytest.raises(ValueError, match="2-D weight"):
        column_major_(nn.Parameter(torch.randn(5)))


@pytest.mark.parametrize("tie", [True, False])
def test_optimize_for_inference_same_model_same_outputs(two_threads, tie):
    taught = tiny_model(TINY.with_(tie_weights=tie)).train()
    params_before = dict(taught.named_parameters())
    fast = optimize_for_inference(copy.deepcopy(taught))
    assert not fast.training
    kinds = [type(m) for m in fast.modules()]
    assert nn.Linear not in kinds and kinds.count(SplitLinear) == 6 * TINY.n_layers + 1
    assert FusedLayerNorm in kinds and FusedGELU in kinds
    assert TransformerBlock not in kinds and kinds.count(FusedBlock) == TINY.n_layers
    assert fast.state_dict().keys() == taught.state_dict().keys()
    assert (fast.out_head.weight is fast.tok_emb.weight) == tie
    assert fast.out_head.weight.stride() == (1, TINY.vocab_size)
    taught.eval()
    ids = torch.randint(0, TINY.vocab_size, (3, TINY.context_length))
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), taught(ids), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast(ids[:, :1]), taught(ids[:, :1]), atol=1e-5, rtol=1e-5)
    # cached generation (one row per step: the split path) runs past context_length
    assert torch.equal(generate(fast, ids[:, :3], 30), generate(taught, ids[:, :3], 30))
    assert torch.equal(generate(fast, ids[:, :3], 30), generate(taught, ids[:, :3], 30, use_cache=False))

    # in place on the model itself: the same Parameter objects, now column-major
    optimize_for_inference(taught)
    params_after = dict(taught.named_parameters())
    assert params_after.keys() == params_before.keys()
    assert all(params_after[name] is p for name, p in params_before.items())
    assert taught.trf_blocks[0].ff.layers[0].weight.t().is_contiguous()


def test_optimized_model_still_loads_and_trains(two_threads):
    fast = optimize_for_inference(tiny_model(seed=1))
    source = tiny_model(seed=2)
    fast.load_state_dict(source.state_dict())
    assert fast.out_head.weight.stride() == (1, TINY.vocab_size)  # copy_ keeps the layout
    ids = torch.randint(0, TINY.vocab_size, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), source(ids), atol=1e-5, rtol=1e-5)
    fast.train()
    loss = fast(ids).logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None for p in fast.parameters())


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_optimized_model_saves_and_loads(tmp_path, two_threads, qkv_bias):
    from gpt_helpers import load_model, save_model

    fast = optimize_for_inference(tiny_model(TINY.with_(tie_weights=True, qkv_bias=qkv_bias)))
    path = save_model(fast, tmp_path / "fast.safetensors")  # column-major weights are saved contiguous
    loaded = load_model(path)
    ids = torch.randint(0, TINY.vocab_size, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), fast(ids), atol=1e-5, rtol=1e-5)


# ---- the stacked Q/K/V buffer and the lean decoding step (FusedBlock) ----


def test_stack_qkv_keeps_parameters_and_shares_one_buffer():
    att = MultiHeadAttention(d_in=32, d_out=24, context_length=8, dropout=0.0, num_heads=4, qkv_bias=True)
    linears = (att.W_query, att.W_key, att.W_value)
    params = [p for lin in linears for p in (lin.weight, lin.bias)]
    values = [p.detach().clone() for p in params]
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        before = att(x)
    stack_qkv_(att)
    after = [p for lin in linears for p in (lin.weight, lin.bias)]
    assert all(a is b for a, b in zip(after, params, strict=True))  # the same Parameter objects
    assert all(torch.equal(p, v) for p, v in zip(params, values, strict=True))  # same values and shapes
    # one storage: W_q^T | W_k^T | W_v^T side by side in a (32, 72) buffer, biases back to back
    w_t = att.W_query.weight.t()
    assert w_t.untyped_storage().data_ptr() == att.W_value.weight.untyped_storage().data_ptr()
    assert w_t.untyped_storage().nbytes() == 32 * 72 * 4  # nothing stored twice
    stacked = w_t.as_strided((32, 72), (72, 1))
    torch.testing.assert_close(stacked, torch.cat([lin.weight.t() for lin in linears], dim=1), rtol=0, atol=0)
    biases = att.W_query.bias.as_strided((72,), (1,))
    torch.testing.assert_close(biases, torch.cat([lin.bias for lin in linears]), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(att(x), before)
    stack_qkv_(att)  # a second call keeps the buffer
    assert att.W_query.weight.t().untyped_storage().data_ptr() == w_t.untyped_storage().data_ptr()


@pytest.fixture
def decode_calls(monkeypatch):
    """Record, per block call, whether the lean step computed the result (True) or the taught forward ran."""
    calls = []
    real_step = FusedBlock._decode_step
    real_attention = MultiHeadAttention.forward

    def step(self, x, cache):
        y = real_step(self, x, cache)
        if y is not None:
            calls.append(True)
        return y

    def taught_attention(self, x, kv_cache=None):
        calls.append(False)
        return real_attention(self, x, kv_cache=kv_cache)

    monkeypatch.setattr(FusedBlock, "_decode_step", step)
    monkeypatch.setattr(MultiHeadAttention, "forward", taught_attention)
    return calls


def step_by_step(model, ids, steps=6):
    """Last-position logits of a prefill on ids, then of `steps` single tokens fed with the cache: (B, 1 + steps, V)."""
    cache = KVCache.for_model(model, ids.shape[0])
    new = torch.randint(0, model.cfg.vocab_size, (ids.shape[0], steps), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        out = [model(ids, cache=cache)[:, -1]]
        out += [model(new[:, i : i + 1], cache=cache)[:, -1] for i in range(steps)]
    return torch.stack(out, dim=1)


PREFILL_THEN_LEAN = [False] * TINY.n_layers + [True] * 6 * TINY.n_layers  # per block call, see step_by_step


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("tie", "qkv_bias", "batch"), [(True, True, 1), (False, False, 3), (False, True, 2)])
def test_decode_step_matches_taught_model(decode_calls, threads, tie, qkv_bias, batch):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        taught = tiny_model(TINY.with_(tie_weights=tie, qkv_bias=qkv_bias))
        with torch.no_grad():  # non-trivial LayerNorm parameters and biases
            for name, p in taught.named_parameters():
                if "norm" in name or "bias" in name:
                    p.add_(0.3 * torch.randn_like(p))
        fast = optimize_for_inference(copy.deepcopy(taught))
        ids = torch.randint(0, TINY.vocab_size, (batch, 4))
        expected = step_by_step(taught, ids)
        decode_calls.clear()
        torch.testing.assert_close(step_by_step(fast, ids), expected, atol=1e-5, rtol=1e-5)
        assert decode_calls == PREFILL_THEN_LEAN  # the prefill: taught forward; each new token: the lean step
        # greedy generation: identical tokens, also past context_length (the cache is reset and refilled)
        prompt = ids[:, :3]
        assert torch.equal(generate(fast, prompt, 30), generate(taught, prompt, 30))
    finally:
        torch.set_num_threads(before)


def test_decode_step_falls_back_to_the_taught_forward(decode_calls):
    taught = tiny_model(TINY.with_(qkv_bias=True))
    fast = optimize_for_inference(copy.deepcopy(taught))
    ids = torch.randint(0, TINY.vocab_size, (2, 4))
    expected = step_by_step(taught, ids)
    cache = KVCache.for_model(fast, 2)
    with torch.no_grad():
        fast(ids, cache=cache)
    for mode in ["grad", "train"]:  # autograd on, or training mode (dropout): the taught forward
        fast.train(mode == "train")
        decode_calls.clear()
        with torch.set_grad_enabled(mode == "grad"):
            fast(ids[:, :1], cache=cache)
        assert decode_calls == [False] * TINY.n_layers
    fast.eval()
    # a deepcopy clones each Parameter on its own: Q/K/V share no buffer, the taught forward, same numbers
    copied = copy.deepcopy(fast)
    decode_calls.clear()
    torch.testing.assert_close(step_by_step(copied, ids), expected, atol=1e-5, rtol=1e-5)
    assert decode_calls and not any(decode_calls)
    # .to(float64) makes new tensors: the taught forward, in float64
    wide = copy.deepcopy(fast).to(torch.float64)
    expected = step_by_step(taught.to(torch.float64), ids)
    decode_calls.clear()
    torch.testing.assert_close(step_by_step(wide, ids), expected)
    assert decode_calls and not any(decode_calls)


def test_decode_step_follows_new_weights(decode_calls):
    cfg = TINY.with_(qkv_bias=True)
    fast = optimize_for_inference(tiny_model(cfg, seed=1))
    ids = torch.randint(0, TINY.vocab_size, (1, 4))
    # load_state_dict copies into the shared buffer: the lean step keeps running, on the new values
    other = tiny_model(cfg, seed=2)
    fast.load_state_dict(other.state_dict())
    expected = step_by_step(other, ids)
    decode_calls.clear()
    torch.testing.assert_close(step_by_step(fast, ids), expected, atol=1e-5, rtol=1e-5)
    assert decode_calls == PREFILL_THEN_LEAN
    # assign=True puts the given tensors in place: no shared buffer any more, the taught forward runs
    third = tiny_model(cfg, seed=3)
    fast.load_state_dict(copy.deepcopy(third).state_dict(), assign=True)
    expected = step_by_step(third, ids)
    decode_calls.clear()
    torch.testing.assert_close(step_by_step(fast, ids), expected, atol=1e-5, rtol=1e-5)
    assert decode_calls and not any(decode_calls)
    # a training step changes the Parameters in place: the shared buffer has the new values
    trained = optimize_for_inference(tiny_model(cfg, seed=4)).train()
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.5)
    trained(ids).logsumexp(-1).mean().backward()
    optimizer.step()
    reference = tiny_model(cfg)
    reference.load_state_dict(trained.eval().state_dict())
    expected = step_by_step(reference, ids)
    decode_calls.clear()
    torch.testing.assert_close(step_by_step(trained, ids), expected, atol=1e-5, rtol=1e-5)
    assert decode_calls == PREFILL_THEN_LEAN


def test_decode_step_cache_errors_are_the_taught_ones():
    fast = optimize_for_inference(tiny_model())
    ids = torch.randint(0, TINY.vocab_size, (2, 4))
    with torch.inference_mode():
        full = KVCache.for_model(fast, 2, max_len=4)
        fast(ids, cache=full)
        with pytest.raises(ValueError, match="KV cache is full"):
            fast(ids[:, :1], cache=full)
        other_batch = KVCache.for_model(fast, 3)
        fast(torch.randint(0, TINY.vocab_size, (3, 2)), cache=other_batch)
        with pytest.raises(ValueError, match="made for batch size 3"):
            fast(ids[:, :1], cache=other_batch)


def test_only_blocks_the_lean_step_computes_exactly_are_fused():
    taught = tiny_model()
    taught.trf_blocks[1].ff.layers[1] = nn.ReLU()  # not the GELU the lean step applies
    fast = optimize_for_inference(copy.deepcopy(taught))
    assert [type(b) for b in fast.trf_blocks] == [FusedBlock, TransformerBlock]
    ids = torch.randint(0, TINY.vocab_size, (2, 4))
    torch.testing.assert_close(step_by_step(fast, ids), step_by_step(taught, ids), atol=1e-5, rtol=1e-5)


# ---- bad inputs: a TypeError naming what is expected, not an AttributeError (issue 17) -------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: optimize_for_inference("gpt2"), r"expected an nn.Module \(e.g. a GPTModel\), got str"),
        (lambda: fused_module.use_fused_kernels(None), "expected an nn.Module .* got NoneType"),
        (lambda: fused_module.column_major_("weight"), r"column_major_ expects a weight tensor .* got str"),
        (lambda: fused_module.stack_qkv_(torch.nn.Linear(2, 2)), "stack_qkv_ expects a MultiHeadAttention .* Linear"),
        (lambda: fused_module.FusedBlock(torch.nn.Linear(2, 2)), "FusedBlock wraps a TransformerBlock, got Linear"),
    ],
)
def test_wrong_objects_are_named(call, match):
    with pytest.raises(TypeError, match=match):
        call()
