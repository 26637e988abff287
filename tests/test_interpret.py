"""attention_weights and logit_lens read a model without changing it; train_zen_model repeats notebook 08."""

import copy

import pytest
import torch
from helpers import TINY, tiny_model
from torch import nn

from gpt_helpers import (
    ZEN_CONFIG,
    GPTModel,
    MultiHeadAttention,
    attention_weights,
    get_gpt2_tokenizer,
    logit_lens,
    optimize_for_inference,
    token_labels,
    train_zen_model,
)

CONFIGS = {"untied": TINY, "tied": TINY.with_(tie_weights=True, qkv_bias=True)}


@pytest.fixture(params=sorted(CONFIGS))
def model(request):
    return tiny_model(CONFIGS[request.param])


@pytest.fixture
def idx():
    return torch.randint(0, TINY.vocab_size, (2, 11))


def all_hooks(model: nn.Module) -> list:
    """Every forward hook of every submodule (kwargs variants and always-called flags included)."""
    found = []
    for module in model.modules():
        for name in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_forward_hooks_with_kwargs",
            "_forward_pre_hooks_with_kwargs",
            "_forward_hooks_always_called",
            "_backward_hooks",
        ):
            found.extend(getattr(module, name, {}).values())
    return found


def split_heads(t: torch.Tensor, att: MultiHeadAttention) -> torch.Tensor:
    b, n, _ = t.shape
    return t.view(b, n, att.num_heads, att.head_dim).transpose(1, 2)  # (B, H, T, head_dim)


def block_inputs(model: GPTModel, idx: torch.Tensor) -> list[torch.Tensor]:
    """The residual stream before each block and after the last one, computed by hand (eval mode)."""
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(idx.shape[1]))
    streams = [x]
    for block in model.trf_blocks:
        x = block(x)
        streams.append(x)
    return streams


def test_attention_weights_are_causal_probabilities(model, idx):
    weights = attention_weights(model, idx)
    t = idx.shape[1]
    assert weights.shape == (TINY.n_layers, 2, TINY.n_heads, t, t)
    assert weights.dtype == torch.float32 and not weights.requires_grad
    assert (weights >= 0).all()
    # float32 softmax rows: each sums to 1 up to float32 rounding (a few 1e-7), whatever the CPU's kernels
    ones = torch.ones(TINY.n_layers, 2, TINY.n_heads, t).double()
    torch.testing.assert_close(weights.double().sum(-1), ones, rtol=0, atol=1e-6)
    future = torch.ones(t, t, dtype=torch.bool).triu(diagonal=1)
    assert (weights[..., future] == 0).all(), "a position must not attend to later positions"
    assert (weights[..., ~future] > 0).all(), "softmax gives every visible position some weight"
    assert (weights[..., 0, 0] == 1).all(), "the first position can only look at itself"


def test_attention_weights_are_the_ones_the_model_used(model, idx):
    """weights @ values, merged and projected, gives exactly what each attention module output."""
    weights = attention_weights(model, idx)
    with torch.no_grad():
        for layer, (block, x) in enumerate(zip(model.trf_blocks, block_inputs(model, idx), strict=False)):
            att, h = block.att, block.norm1(x)
            v = split_heads(att.W_value(h), att)  # (B, H, T, head_dim)
            ctx = (weights[layer] @ v).transpose(1, 2).reshape(h.shape[0], h.shape[1], att.d_out)
            torch.testing.assert_close(att.out_proj(ctx), att(h))


def test_attention_weights_match_hand_computed_softmax(model, idx):
    weights = attention_weights(model, idx)
    with torch.no_grad():
        for layer, (block, x) in enumerate(zip(model.trf_blocks, block_inputs(model, idx), strict=False)):
            att, h = block.att, block.norm1(x)
            q, k = split_heads(att.W_query(h), att).double(), split_heads(att.W_key(h), att).double()
            scores = q @ k.transpose(2, 3) / att.head_dim**0.5
            t = idx.shape[1]
            scores = scores + torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
            torch.testing.assert_close(weights[layer].double(), scores.softmax(-1), rtol=1e-5, atol=1e-6)


def test_logit_lens_reads_every_stream(model, idx):
    lens = logit_lens(model, idx)
    assert lens.shape == (TINY.n_layers + 1, 2, idx.shape[1], TINY.vocab_size)
    assert not lens.requires_grad
    with torch.no_grad():
        assert torch.equal(lens[-1], model(idx)), "the last entry is the model's own logits"
        for i, x in enumerate(block_inputs(model, idx)):
            torch.testing.assert_close(lens[i], model.out_head(model.final_norm(x)))
    assert not torch.allclose(lens[0], lens[-1]), "the blocks change the prediction"


def test_tied_head_is_read_through_the_embedding():
    model = tiny_model(CONFIGS["tied"])
    assert model.out_head.weight is model.tok_emb.weight
    ids = torch.tensor([[5, 6, 7]])
    lens = logit_lens(model, ids)
    with torch.no_grad():
        emb = model.tok_emb(ids) + model.pos_emb(torch.arange(3))
        torch.testing.assert_close(lens[0], model.final_norm(emb) @ model.tok_emb.weight.T)


@pytest.mark.parametrize("reader", [attention_weights, logit_lens], ids=["attention_weights", "logit_lens"])
def test_reading_leaves_the_model_as_it_was(model, idx, reader):
    model.train()
    model.trf_blocks[1].eval()  # a mixed state must come back as it was, module by module
    modes = [m.training for m in model.modules()]
    state = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        before = model.eval()(idx)
    model.train()
    model.trf_blocks[1].eval()

    reader(model, idx)

    assert all_hooks(model) == [], "hooks left behind"
    assert [m.training for m in model.modules()] == modes, "train/eval modes changed"
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), f"{name} changed"
    with torch.no_grad():
        assert torch.equal(model.eval()(idx), before), "logits changed after the call"


@pytest.mark.parametrize("reader", [attention_weights, logit_lens], ids=["attention_weights", "logit_lens"])
def test_hooks_are_removed_when_the_forward_pass_fails(model, idx, reader):
    model.train()

    def broken(*args, **kwargs):
        raise RuntimeError("block broke")

    model.trf_blocks[1].forward = broken  # fails after the first block's hooks have fired
    with pytest.raises(RuntimeError, match="block broke"):
        reader(model, idx)
    assert all_hooks(model) == []
    assert all(m.training for m in model.modules()), "train mode must be restored after an error"


def test_works_on_a_model_prepared_for_inference(idx):
    model = tiny_model()
    expected_weights, expected_lens = attention_weights(model, idx), logit_lens(model, idx)
    fast = optimize_for_inference(copy.deepcopy(model))
    torch.testing.assert_close(attention_weights(fast, idx), expected_weights, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logit_lens(fast, idx), expected_lens, rtol=1e-4, atol=1e-4)


class NoCourseAttention(nn.Module):
    """Embeddings and a head, with PyTorch's own attention in between."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 10)

    def forward(self, idx):
        x = self.emb(idx)
        return self.head(self.att(x, x, x, need_weights=False)[0])


def test_model_without_the_course_attention_gets_a_clear_error():
    other = NoCourseAttention()
    with pytest.raises(TypeError, match="no gpt_helpers.MultiHeadAttention module"):
        attention_weights(other, torch.tensor([[1, 2, 3]]))
    with pytest.raises(TypeError, match="needs a GPTModel-like model with trf_blocks"):
        logit_lens(other, torch.tensor([[1, 2, 3]]))
    assert all_hooks(other) == []
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        attention_weights("gpt2", torch.tensor([[1, 2, 3]]))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ([[1, 2, 3]], TypeError, "must be a torch.Tensor"),
        (torch.tensor([[1.0, 2.0]]), TypeError, "integer tensor"),
        (torch.tensor([1, 2, 3]), ValueError, r"ids.unsqueeze\(0\)"),
        (torch.zeros(1, 0, dtype=torch.long), ValueError, "empty"),
        (torch.tensor([[1, 97]]), ValueError, "outside the vocabulary"),
        (torch.zeros(1, 17, dtype=torch.long), ValueError, "context_length=16"),
    ],
    ids=["list", "float", "1-D", "empty", "out-of-vocab", "too-long"],
)
@pytest.mark.parametrize("reader", [attention_weights, logit_lens], ids=["attention_weights", "logit_lens"])
def test_bad_token_ids_get_clear_errors(reader, bad, error, message):
    model = tiny_model()
    with pytest.raises(error, match=message):
        reader(model, bad)
    assert all_hooks(model) == []


def test_token_labels_are_readable():
    tok = get_gpt2_tokenizer()
    ids = tok.encode("Beautiful is\n better\t中爱")
    labels = token_labels(torch.tensor(ids))
    assert labels[:7] == ["Beaut", "iful", "␣is", "⏎", "␣better", r"\t", "中"]
    # 爱 is three byte-level tokens, none of them a whole character: each shows its byte
    assert labels[7:] == [r"\xe7", r"\x88", r"\xb1"]
    assert token_labels(ids) == labels  # a list works as well as a tensor


def test_train_zen_model_is_repeatable_and_leaves_the_caller_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    run = train_zen_model(num_steps=3, num_threads=2 if threads == 1 else 1)
    assert torch.equal(torch.rand(3), expected_next), "the caller's random numbers changed"
    assert torch.get_num_threads() == threads
    assert run.model.cfg == ZEN_CONFIG and not run.model.training
    assert len(run.history) == 3 and run.history[0] > 10  # about ln(50257) before any learning
    again = train_zen_model(num_steps=3, num_threads=2 if threads == 1 else 1)
    assert again.history == run.history
    other_seed = train_zen_model(num_steps=3, seed=1)
    assert other_seed.history != run.history
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        train_zen_model(num_steps=0)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (torch.zeros(0, 3, dtype=torch.long), ValueError, "batch size 0"),
        (torch.tensor([[1, 2]], dtype=torch.uint8), TypeError, r"torch.uint8; use ids.long\(\)"),
        (torch.tensor([[1, 2]], dtype=torch.int16), TypeError, r"use ids.long\(\)"),
        (torch.tensor([[True, False]]), TypeError, "integer tensor"),
        (torch.tensor([[-1, 2]]), ValueError, "token id -1 is outside the vocabulary"),
    ],
    ids=["zero-batch", "uint8", "int16", "bool", "negative"],
)
@pytest.mark.parametrize("reader", [attention_weights, logit_lens], ids=["attention_weights", "logit_lens"])
def test_more_bad_token_ids_get_clear_errors(reader, bad, error, message):
    model = tiny_model()
    with pytest.raises(error, match=message):
        reader(model, bad)
    assert all_hooks(model) == []


def test_readers_take_int32_ids_and_work_on_llama_qwen_for_the_lens():
    model = tiny_model()
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(attention_weights(model, ids.int()), attention_weights(model, ids))
    from gpt_helpers import LlamaQwenConfig, LlamaQwenModel

    cfg = LlamaQwenConfig(
        vocab_size=50, context_length=16, emb_dim=16, n_heads=2, n_kv_heads=1, head_dim=8, n_layers=2, hidden_dim=32
    )
    llama = LlamaQwenModel(cfg).eval()
    lens = logit_lens(llama, ids)  # its blocks read and write one residual stream too
    with torch.no_grad():
        torch.testing.assert_close(lens[-1], llama(ids))
    with pytest.raises(TypeError, match="LlamaQwenModel has no gpt_helpers.MultiHeadAttention"):
        attention_weights(llama, ids)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ([50257], ValueError, r"token id 50257 is outside the tokenizer's vocabulary \[0, 50257\)"),
        ([-1], ValueError, "token id -1 is outside"),
        ([2**70], ValueError, "is outside the tokenizer's vocabulary"),
        (torch.tensor([7, 50300]), ValueError, "token id 50300 is outside"),
        ([1.5], TypeError, "token ids must be ints, got float 1.5"),
        (["a"], TypeError, "got str 'a'"),
        ([None], TypeError, "got NoneType None"),
        ([True], TypeError, "got bool True"),
        ([[1, 2]], TypeError, "give a flat list of ints"),
        ("abc", TypeError, r"for text use tokenizer.encode\(text\) first"),
        (5, TypeError, "got int"),
        (torch.tensor([1.0]), TypeError, "integer tensor, got dtype torch.float32"),
        (torch.tensor([True]), TypeError, "integer tensor, got dtype torch.bool"),
    ],
    ids=[
        "past-vocab", "negative", "huge", "tensor-past-vocab", "float", "str-item", "None", "bool", "nested",
        "text", "int", "float-tensor", "bool-tensor",
    ],
)  # fmt: skip
def test_token_labels_bad_inputs_get_clear_errors(bad, error, message):
    with pytest.raises(error, match=message):
        token_labels(bad)


def test_token_labels_takes_any_integer_sequence():
    import numpy as np

    assert token_labels([]) == []
    assert token_labels(np.array([40, 50256])) == ["I", "<|endoftext|>"]  # numpy ints are ints
    assert token_labels(torch.tensor([[40], [50256]])) == ["I", "<|endoftext|>"]  # any tensor shape, flattened
    assert token_labels(torch.tensor([40], dtype=torch.int32)) == ["I"]
    with pytest.raises(TypeError, match="tokenizer must be a tiktoken Encoding"):
        token_labels([1], tokenizer="gpt2")
