"""Weight-only int8: quantization error bounds, the int8 product, tying, saving, fallbacks (speed/int8.py)."""

import pytest
import torch
from torch.nn import functional as F

from gpt_helpers import GPTConfig, GPTModel, LlamaQwenConfig, LlamaQwenModel, generate
from gpt_helpers.speed.int8 import (
    Int8Embedding,
    Int8Linear,
    dequantize_per_row,
    int8_weight_bytes,
    load_int8_model,
    quantize_int8_,
    quantize_per_row,
    save_int8_model,
)

TINY = GPTConfig(
    vocab_size=96, context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0, qkv_bias=True, tie_weights=True
)


def test_per_row_error_is_at_most_half_a_step():
    w = torch.randn(48, 64) * torch.logspace(-3, 1, 48)[:, None]  # rows of very different sizes
    q, scale = quantize_per_row(w)
    assert q.dtype == torch.int8 and scale.shape == (48,)
    assert int(q.abs().max()) == 127  # each row's largest |w| maps to 127
    err = (dequantize_per_row(q, scale) - w).abs()
    assert (err <= scale[:, None] / 2 * (1 + 1e-6)).all()


def test_zero_rows_stay_zero_and_bad_weights_are_refused():
    w = torch.randn(4, 8)
    w[2] = 0
    q, scale = quantize_per_row(w)
    assert (q[2] == 0).all() and scale[2] == 0
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize_per_row(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="2-D float weight"):
        quantize_per_row(torch.ones(3))
    with pytest.raises(ValueError, match="2-D float weight"):
        quantize_per_row(torch.ones(2, 2, dtype=torch.int64))


@pytest.mark.parametrize("rows", [1, 3, 16, 40])
def test_int8_linear_equals_the_dequantized_product_within_bfloat16_rounding(rows):
    linear = torch.nn.Linear(96, 80)
    fast = Int8Linear.from_linear(linear)
    x = torch.randn(rows, 96)
    with torch.no_grad():
        y = fast(x)
        ref = F.linear(x, fast.dequantized_weight(), linear.bias)
        # activations, scales and the output are rounded to bfloat16 (8 significant bits each)
        bound = 2**-7 * (x.abs() @ fast.dequantized_weight().abs().T) + 2**-8 * ref.abs() + 1e-6
    assert y.dtype == torch.float32 and y.shape == (rows, 80)
    assert ((y - ref).abs() <= bound).all()
    assert ((y - ref).abs() > 0).any()  # the int8 kernel ran, not the float fallback


def test_fallback_paths_give_the_dequantized_product():
    odd = Int8Linear.from_linear(torch.nn.Linear(24, 8))  # 24 features: the kernel is not used
    x = torch.randn(2, 24)
    with torch.no_grad():
        torch.testing.assert_close(odd(x), F.linear(x, odd.dequantized_weight(), odd.bias))
    layer = Int8Linear.from_linear(torch.nn.Linear(64, 8))
    x = torch.randn(3, 64, requires_grad=True)
    y = layer(x)  # autograd on: the float path, so gradients reach the input
    y.sum().backward()
    torch.testing.assert_close(x.grad, layer.dequantized_weight().sum(0).expand(3, 64))
    with pytest.raises(TypeError, match="float inputs"):
        layer(torch.ones(1, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="64 features"):
        layer(torch.ones(1, 63))


def test_quantized_gpt_model_keeps_one_tied_copy_and_a_quarter_of_the_bytes():
    model = GPTModel(TINY).eval()
    float_bytes = int8_weight_bytes(model)
    ids = torch.randint(0, TINY.vocab_size, (2, 10))
    with torch.no_grad():
        ref = model(ids)
    quantize_int8_(model)
    assert isinstance(model.tok_emb, Int8Embedding) and model.tok_emb.head[0] is model.out_head
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    # tiny model: the float32 position embedding and norms weigh more than in GPT-2, so the bound is looser here
    assert int8_weight_bytes(model) <= 0.35 * float_bytes
    with torch.no_grad():
        out = model(ids)
    assert (out - ref).abs().max() < 0.05 * ref.std()
    with pytest.raises(RuntimeError, match="cannot be trained"):
        model.train()
    with pytest.raises(ValueError, match="already quantized"):
        quantize_int8_(model)


def test_gpt2_124m_int8_weights_are_at_most_30_percent_of_float32():
    cfg = GPTConfig.from_preset("gpt2", drop_rate=0.0).with_(tie_weights=True, qkv_bias=True)
    torch.manual_seed(0)
    model = GPTModel(cfg)
    float_bytes = int8_weight_bytes(model)
    quantize_int8_(model)
    assert int8_weight_bytes(model) <= 0.30 * float_bytes


def test_save_and_load_round_trip(tmp_path):
    model = quantize_int8_(GPTModel(TINY))
    path = save_int8_model(model, tmp_path / "tiny-int8.safetensors")
    again = load_int8_model(path)  # tensors read from the file at odd offsets: realigned before the kernel
    ids = torch.randint(0, TINY.vocab_size, (1, 12))
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))
    assert again.tok_emb.head[0] is again.out_head
    with pytest.raises(TypeError, match="quantized with quantize_int8_"):
        save_int8_model(GPTModel(TINY), tmp_path / "float.safetensors")


def test_generate_runs_on_the_int8_model_with_and_without_cache():
    model = quantize_int8_(GPTModel(TINY))
    ids = torch.randint(0, TINY.vocab_size, (2, 5))
    cached = generate(model, ids, 12)
    naive = generate(model, ids, 12, use_cache=False)
    assert torch.equal(cached, naive)


def test_llama_qwen_family_quantizes_too():
    cfg = LlamaQwenConfig(
        vocab_size=64, context_length=32, emb_dim=64, n_heads=4, n_kv_heads=2, head_dim=16, hidden_dim=128,
        n_layers=2, qk_norm=True, tie_weights=True,
    )  # fmt: skip
    model = LlamaQwenModel(cfg).eval()
    ids = torch.randint(0, 64, (1, 9))
    with torch.no_grad():
        ref = model(ids)
        out = quantize_int8_(model)(ids)
    assert isinstance(model.tok_emb, Int8Embedding)
    assert (out - ref).abs().max() < 0.05 * ref.std()


def test_optimize_for_inference_int8_and_its_bad_inputs():
    from gpt_helpers import optimize_for_inference

    model = GPTModel(TINY).eval()
    ids = torch.randint(0, TINY.vocab_size, (1, 7))
    with torch.no_grad():
        ref = model(ids)
        out = optimize_for_inference(model, weights="int8")(ids)
    assert isinstance(model.out_head, Int8Linear) and isinstance(model.tok_emb, Int8Embedding)
    assert (out - ref).abs().max() < 0.05 * ref.std()
    with pytest.raises(ValueError, match="'float32' or 'int8'"):
        optimize_for_inference(GPTModel(TINY), weights="int4")
    with pytest.raises(ValueError, match="already changed"):
        quantize_int8_(optimize_for_inference(GPTModel(TINY)))
