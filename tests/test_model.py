"""Building blocks and GPTModel: numerics, shapes, parameter counts, bad input."""

import math

import pytest
import torch
from helpers import TINY, tiny_model

from gpt_helpers import (
    GELU,
    FeedForward,
    GPTConfig,
    GPTModel,
    LayerNorm,
    MultiHeadAttention,
    TransformerBlock,
    count_parameters,
    model_size_mib,
    parameter_breakdown,
)


def test_layer_norm_matches_torch():
    x = torch.randn(2, 5, 16) * 3 + 1
    ours, ref = LayerNorm(16), torch.nn.LayerNorm(16)
    with torch.no_grad():
        ours.scale.copy_(torch.randn(16))
        ours.shift.copy_(torch.randn(16))
        ref.weight.copy_(ours.scale)
        ref.bias.copy_(ours.shift)
    torch.testing.assert_close(ours(x), ref(x))
    out = LayerNorm(16)(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)


def test_gelu_matches_torch_tanh():
    x = torch.linspace(-8, 8, 2001)
    torch.testing.assert_close(GELU()(x), torch.nn.functional.gelu(x, approximate="tanh"))
    # and stays within 1e-3 of the exact x * Phi(x)
    assert (GELU()(x) - torch.nn.functional.gelu(x)).abs().max() < 1e-3


def test_feed_forward_shape_and_params():
    cfg = GPTConfig()
    ff = FeedForward(cfg)
    assert ff(torch.randn(2, 3, 768)).shape == (2, 3, 768)
    assert count_parameters(ff) == 4_722_432 == 2 * 4 * 768**2 + 4 * 768 + 768


def test_attention_matches_explicit_masked_softmax():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_in=12, d_out=12, context_length=8, dropout=0.0, num_heads=3, qkv_bias=True).eval()
    x = torch.randn(2, 6, 12)
    b, t, _ = x.shape

    def heads(y):
        return y.view(b, t, 3, 4).transpose(1, 2)

    q, k, v = heads(mha.W_query(x)), heads(mha.W_key(x)), heads(mha.W_value(x))
    scores = q @ k.transpose(-2, -1) / math.sqrt(4)
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1), float("-inf"))
    ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, 12)
    torch.testing.assert_close(mha(x), mha.out_proj(ctx))


def test_attention_is_causal():
    model = tiny_model()
    a = torch.randint(0, TINY.vocab_size, (1, 10))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % TINY.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(model(a)[:, :7], model(b)[:, :7])
        assert not torch.allclose(model(a)[:, 7:], model(b)[:, 7:])


def test_qkv_are_distinct_matrices():
    mha = MultiHeadAttention(8, 8, 4, 0.0, 2)
    assert len({id(mha.W_query.weight), id(mha.W_key.weight), id(mha.W_value.weight)}) == 3
    assert not torch.equal(mha.W_query.weight, mha.W_key.weight)


def test_block_keeps_shape_and_counts():
    cfg = GPTConfig()
    block = TransformerBlock(cfg)
    assert block(torch.randn(2, 4, 768)).shape == (2, 4, 768)
    assert count_parameters(block.att) == 2_360_064
    assert count_parameters(block.ff) == 4_722_432


def test_model_output_shape():
    model = tiny_model()
    assert model(torch.randint(0, TINY.vocab_size, (3, 7))).shape == (3, 7, TINY.vocab_size)


def test_blocks_do_not_share_weights():
    model = tiny_model(TINY.with_(n_layers=3))
    w = [blk.att.W_query.weight for blk in model.trf_blocks]
    assert len({id(p) for p in w}) == 3 and not torch.equal(w[0], w[1])


def test_position_embeddings_are_learned():
    model = tiny_model()
    assert model.pos_emb.weight.requires_grad
    assert any(p is model.pos_emb.weight for p in model.parameters())


def test_weight_tying_is_one_parameter():
    model = tiny_model(TINY.with_(tie_weights=True))
    assert model.out_head.weight is model.tok_emb.weight
    untied = count_parameters(tiny_model())
    assert count_parameters(model) == untied - TINY.vocab_size * TINY.emb_dim
    # a gradient step on the head moves the embedding too, because they are the same tensor
    ids = torch.randint(0, TINY.vocab_size, (2, 5))
    model(ids).sum().backward()
    assert model.tok_emb.weight.grad is model.out_head.weight.grad


REFERENCE = {
    # preset: (total, tied, MB float32 of the total)
    "gpt2": (163_009_536, 124_412_160, 621.83),
    "gpt2-medium": (406_212_608, 354_749_440, 1549.58),
    "gpt2-large": (838_220_800, 773_891_840, 3197.56),
    "gpt2-xl": (1_637_792_000, 1_557_380_800, 6247.68),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_counts_on_meta(name):
    total, tied, mb = REFERENCE[name]
    parts = parameter_breakdown(GPTConfig.from_preset(name))
    assert parts["total"] == total
    assert parameter_breakdown(GPTConfig.from_preset(name, tie_weights=True))["total"] == tied
    assert round(model_size_mib(total), 2) == mb
    assert parts["output_head"] == parts["token_embedding"]


def test_124m_materialised_matches_meta_count():
    model = GPTModel(GPTConfig())
    assert count_parameters(model) == 163_009_536
    assert count_parameters(GPTModel(GPTConfig(tie_weights=True))) == 124_412_160


def test_constructible_on_meta():
    with torch.device("meta"):
        model = GPTModel(GPTConfig.from_preset("gpt2-xl"))
    assert model.tok_emb.weight.is_meta
    out = model(torch.zeros(1, 4, dtype=torch.long, device="meta"))
    assert out.shape == (1, 4, 50257)


# ---- bad input -------------------------------------------------------------------------


def test_model_rejects_non_config():
    with pytest.raises(TypeError, match=r"GPTModel expects a GPTConfig \(or the book's dict config\), got str"):
        GPTModel("gpt2")
    with pytest.raises(ValueError, match=r"GPTConfig.from_dict: missing key\(s\) 'vocab_size'"):
        GPTModel({"emb_dim": 8})


def test_float_ids():
    with pytest.raises(TypeError, match="must be an integer tensor"):
        tiny_model()(torch.zeros(1, 3))


def test_list_ids():
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        tiny_model()([[1, 2, 3]])


@pytest.mark.parametrize("shape", [(3,), (1, 2, 3)])
def test_ids_not_2d(shape):
    with pytest.raises(ValueError, match=r"must be 2-D with shape \(batch, seq_len\)"):
        tiny_model()(torch.zeros(shape, dtype=torch.long))


def test_empty_ids():
    with pytest.raises(ValueError, match="empty"):
        tiny_model()(torch.zeros(1, 0, dtype=torch.long))


@pytest.mark.parametrize("bad", [-1, TINY.vocab_size, TINY.vocab_size + 5])
def test_ids_out_of_vocab(bad):
    ids = torch.tensor([[1, bad, 2]])
    with pytest.raises(ValueError, match=rf"token id {bad} is outside the vocabulary \[0, {TINY.vocab_size}\)"):
        tiny_model()(ids)


def test_too_long_for_context():
    ids = torch.zeros(1, TINY.context_length + 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"longer than context_length=16.*last 16 tokens"):
        tiny_model()(ids)


# ---- the book's chapter-4 model: dict config, state_dict with causal-mask buffers ----------------

BOOK_CFG = {
    "vocab_size": 61,
    "context_length": 12,
    "emb_dim": 24,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def _book_model(cfg=BOOK_CFG, seed=4):
    from book_style import BookGPT

    torch.manual_seed(seed)
    model = BookGPT(cfg).eval()
    with torch.no_grad():  # the default init leaves the norms at 1/0: perturb them so the copy is tested
        for name, p in model.named_parameters():
            if name.endswith(("scale", "shift")):
                p.add_(0.1 * torch.randn_like(p))
    return model


def test_model_accepts_the_books_dict_config():
    model = GPTModel(BOOK_CFG)
    assert model.cfg == GPTConfig.from_dict(BOOK_CFG)
    assert count_parameters(model) == count_parameters(GPTModel(GPTConfig.from_dict(BOOK_CFG)))


def test_state_dict_names_are_the_books_except_the_masks():
    book_keys = set(_book_model().state_dict())
    masks = {f"trf_blocks.{i}.att.mask" for i in range(BOOK_CFG["n_layers"])}
    assert masks <= book_keys
    assert set(GPTModel(BOOK_CFG).state_dict()) == book_keys - masks


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_load_state_dict_from_the_books_model(qkv_bias):
    cfg = {**BOOK_CFG, "qkv_bias": qkv_bias}
    book = _book_model(cfg)
    ours = GPTModel(cfg).eval()
    result = ours.load_state_dict(book.state_dict())  # strict (the default)
    assert not result.missing_keys and not result.unexpected_keys
    ids = torch.randint(0, cfg["vocab_size"], (3, cfg["context_length"]))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), book(ids), atol=1e-5, rtol=1e-5)


def test_load_state_dict_stays_strict_about_everything_else():
    sd = _book_model().state_dict()
    ours = GPTModel(BOOK_CFG)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\).*"trf_blocks.0.att.extra"'):
        ours.load_state_dict({**sd, "trf_blocks.0.att.extra": torch.zeros(2)})
    with pytest.raises(RuntimeError, match=r'Missing key\(s\).*"final_norm.shift"'):
        ours.load_state_dict({k: v for k, v in sd.items() if k != "final_norm.shift"})
    # a "mask" that is not the causal mask would change the model: it is not silently dropped
    not_causal = torch.ones(BOOK_CFG["context_length"], BOOK_CFG["context_length"]).tril(1)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\).*"trf_blocks.1.att.mask"'):
        ours.load_state_dict({**sd, "trf_blocks.1.att.mask": not_causal})
    result = ours.load_state_dict({**sd, "trf_blocks.1.att.mask": not_causal}, strict=False)
    assert result.unexpected_keys == ["trf_blocks.1.att.mask"]


def test_loading_does_not_change_the_callers_state_dict():
    sd = _book_model().state_dict()
    keys = list(sd)
    GPTModel(BOOK_CFG).load_state_dict(sd)
    assert list(sd) == keys  # the masks are dropped from PyTorch's copy, not from the caller's dict


def test_our_state_dict_loads_into_the_books_model_with_its_own_masks():
    """The other direction: the book's model keeps its mask buffer, so a non-strict load fills the rest."""
    ours = GPTModel(BOOK_CFG).eval()
    book = _book_model()
    result = book.load_state_dict(ours.state_dict(), strict=False)
    assert set(result.missing_keys) == {f"trf_blocks.{i}.att.mask" for i in range(BOOK_CFG["n_layers"])}
    assert not result.unexpected_keys
    ids = torch.randint(0, BOOK_CFG["vocab_size"], (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), book(ids), atol=1e-5, rtol=1e-5)


# ---- bad input for the building blocks and the helpers: one-line errors ------------------------

from gpt_helpers import ExampleDeepNeuralNetwork, KVCache, layer_gradient_means  # noqa: E402


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value), "the error message should fit on one line"


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.float16, torch.bool])
def test_ids_of_a_dtype_embedding_cannot_take(dtype):
    with pytest.raises(TypeError, match=rf"integer tensor \(torch.long\), got dtype {dtype}; use ids.long\(\)") as e:
        tiny_model()(torch.zeros(1, 3, dtype=dtype))
    _one_line(e)


def test_int32_ids_are_fine():
    ids = torch.randint(0, TINY.vocab_size, (2, 5))
    model = tiny_model().eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids.int()), model(ids))


def test_empty_batch():
    with pytest.raises(ValueError, match=r"the batch is empty \(batch size 0\); give at least one sequence"):
        tiny_model()(torch.zeros(0, 3, dtype=torch.long))


def test_cache_that_does_not_fit():
    model = tiny_model()
    ids = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"cache must be a KVCache with one layer per block \(2\), got list"):
        model(ids, cache=[])
    other = KVCache.for_model(tiny_model(TINY.with_(n_layers=1)), 1)
    with pytest.raises(ValueError, match=r"one layer per block \(2\), got KVCache; make it with KVCache.for_model"):
        model(ids, cache=other)


@pytest.mark.parametrize("emb_dim", [0, -1, 2.5, True, "8"])
def test_layer_norm_size(emb_dim):
    with pytest.raises(ValueError, match="LayerNorm: emb_dim must be a positive int"):
        LayerNorm(emb_dim)


@pytest.mark.parametrize("eps", [-1e-5, float("nan"), float("inf"), "1e-5"])
def test_layer_norm_eps(eps):
    with pytest.raises(ValueError, match="LayerNorm: eps must be a small non-negative float"):
        LayerNorm(8, eps=eps)


def test_layer_norm_input():
    norm = LayerNorm(8)
    with pytest.raises(
        ValueError, match=r"LayerNorm\(8\) normalizes the last dim, which must be 8; got shape \(2, 5\)"
    ):
        norm(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        norm(torch.tensor(1.0))
    with pytest.raises(TypeError, match="LayerNorm expects a float tensor, got dtype torch.int64"):
        norm(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="LayerNorm expects a float tensor, got list"):
        norm([0.0] * 8)


def test_gelu_and_feed_forward_input():
    with pytest.raises(TypeError, match="GELU expects a torch.Tensor, got list"):
        GELU()([1.0, 2.0])
    ff = FeedForward(TINY)
    with pytest.raises(ValueError, match=rf"last dim to be emb_dim={TINY.emb_dim}, got shape \(1, 2, 7\)"):
        ff(torch.randn(1, 2, 7))
    with pytest.raises(TypeError, match="FeedForward expects a float tensor, got dtype torch.int64"):
        ff(torch.ones(1, 2, TINY.emb_dim, dtype=torch.long))


BOOK_SMALL = {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1}


def test_blocks_take_the_books_dict_and_reject_other_configs():
    book = {**BOOK_SMALL, "drop_rate": 0.0, "qkv_bias": False}
    assert count_parameters(FeedForward(book)) == count_parameters(FeedForward(GPTConfig.from_dict(book)))
    assert count_parameters(TransformerBlock(book)) == count_parameters(TransformerBlock(GPTConfig.from_dict(book)))
    with pytest.raises(TypeError, match=r"TransformerBlock expects a GPTConfig \(or the book's dict config\), got int"):
        TransformerBlock(16)
    with pytest.raises(ValueError, match=r"GPTConfig.from_dict: missing key\(s\) 'drop_rate', 'qkv_bias'"):
        FeedForward(BOOK_SMALL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 0}, "num_heads must be a positive int, got 0"),
        ({"d_in": 8.0}, "d_in must be a positive int, got 8.0"),
        ({"context_length": True}, "context_length must be a positive int, got True"),
        ({"num_heads": 3}, r"d_out \(8\) must be divisible by num_heads \(3\)"),
        ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\), got 1.0"),
        ({"dropout": float("nan")}, r"dropout must be a rate in \[0, 1\), got nan"),
    ],
)
def test_attention_arguments(kwargs, message):
    args = {"d_in": 8, "d_out": 8, "context_length": 4, "dropout": 0.0, "num_heads": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**args)


def test_attention_qkv_bias_and_input():
    with pytest.raises(TypeError, match="qkv_bias must be True or False, got 1"):
        MultiHeadAttention(8, 8, 4, 0.0, 2, qkv_bias=1)
    mha = MultiHeadAttention(8, 8, 4, 0.0, 2)
    for bad in (torch.randn(3, 8), torch.randn(1, 3, 7)):
        with pytest.raises(ValueError, match=r"expects shape \(batch, tokens, 8\), got"):
            mha(bad)
    with pytest.raises(TypeError, match="MultiHeadAttention expects a float tensor, got dtype torch.int64"):
        mha(torch.ones(1, 3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expects shape \(batch, tokens, 32\), got \(3, 32\)"):
        TransformerBlock(TINY)(torch.randn(3, TINY.emb_dim))  # a block without the batch dim


def test_counting_helpers_reject_bad_input():
    with pytest.raises(TypeError, match="count_parameters expects an nn.Module, got list"):
        count_parameters([torch.zeros(3)])
    for bad in (-1, 1.5e8, True, "124M"):
        with pytest.raises(ValueError, match="n_params must be a non-negative int"):
            model_size_mib(bad)
    for bad in (0, -4, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match=r"bytes_per_param must be positive \(4 for float32\)"):
            model_size_mib(1000, bad)
    assert model_size_mib(2**20, 0.5) == 0.5  # half a byte per parameter (4-bit) is fine
    with pytest.raises(TypeError, match=r"GPTModel expects a GPTConfig \(or the book's dict config\), got str"):
        parameter_breakdown("gpt2")


@pytest.mark.parametrize("sizes", [[], [3], [3, 0], [3, 2.5], [3, True], "33", None])
def test_example_network_sizes(sizes):
    with pytest.raises(ValueError, match="layer_sizes must list at least two positive ints"):
        ExampleDeepNeuralNetwork(sizes, use_shortcut=True)


def test_example_network_flag_and_input():
    with pytest.raises(TypeError, match="use_shortcut must be True or False, got 'no'"):
        ExampleDeepNeuralNetwork([3, 3, 1], use_shortcut="no")
    net = ExampleDeepNeuralNetwork((3, 3, 1), use_shortcut=True)  # a tuple is fine
    with pytest.raises(ValueError, match=r"expects shape \(\.\.\., 3\), got \(1, 4\)"):
        net(torch.randn(1, 4))
    with pytest.raises(TypeError, match="ExampleDeepNeuralNetwork expects a float tensor, got dtype torch.int64"):
        net(torch.ones(1, 3, dtype=torch.long))


def test_layer_gradient_means_bad_input():
    torch.manual_seed(0)
    net = ExampleDeepNeuralNetwork([3, 3, 1], use_shortcut=True)
    x = torch.tensor([[1.0, 0.0, -1.0]])
    with pytest.raises(ValueError, match=r"target has shape \(2, 2\), the model's output \(1, 1\)"):
        layer_gradient_means(net, x, torch.zeros(2, 2))  # mse_loss would broadcast it with a mere warning
    with pytest.raises(TypeError, match="target must be a float tensor, got list"):
        layer_gradient_means(net, x, [0.0])
    with pytest.raises(ValueError, match="x holds NaN or inf"):
        layer_gradient_means(net, torch.tensor([[1.0, float("nan"), 0.0]]), torch.zeros(1, 1))
    net.layers[0][0].weight.requires_grad_(False)
    with pytest.raises(ValueError, match=r"no gradient reached layers.0.0.weight; is requires_grad off\?"):
        layer_gradient_means(net, x, torch.zeros(1, 1))
