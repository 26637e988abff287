"""use_fused_kernels and optimize_for_inference: the same model, the same outputs, shared parameters."""

import copy
import math

import pytest
import torch
from helpers import TINY, tiny_model
from torch import nn
from torch.nn import functional as F

from gpt_helpers import generate
from gpt_helpers.feed_forward import GELU
from gpt_helpers.fused import (
    FusedGELU,
    FusedLayerNorm,
    SplitLinear,
    column_major_,
    optimize_for_inference,
    use_fused_kernels,
)
from gpt_helpers.normalization import LayerNorm


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


def test_optimized_model_saves_and_loads(tmp_path, two_threads):
    from gpt_helpers import load_model, save_model

    fast = optimize_for_inference(tiny_model(TINY.with_(tie_weights=True)))
    path = save_model(fast, tmp_path / "fast.safetensors")  # column-major weights are saved contiguous
    loaded = load_model(path)
    ids = torch.randint(0, TINY.vocab_size, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), fast(ids), atol=1e-5, rtol=1e-5)
