"""Greedy decoding, the KV cache and sampling."""

import pytest
import torch
from helpers import TINY, tiny_model

from gpt_helpers import (
    KVCache,
    apply_temperature,
    generate,
    generate_text_simple,
    stream_generate,
    top_k_filter,
    top_p_filter,
)

V, CTX = TINY.vocab_size, TINY.context_length


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_generate_text_simple_appends(model):
    idx = torch.tensor([[1, 2, 3]])
    out = generate_text_simple(model, idx, max_new_tokens=5, context_size=CTX)
    assert out.shape == (1, 8) and torch.equal(out[:, :3], idx)
    # each new token is the argmax of the model's last-position logits
    for t in range(3, 8):
        with torch.no_grad():
            assert out[0, t] == model(out[:, :t])[0, -1].argmax()


def test_generate_text_simple_crops_context(model):
    idx = torch.randint(0, V, (2, CTX))
    out = generate_text_simple(model, idx, max_new_tokens=10, context_size=CTX)  # would fail without cropping
    assert out.shape == (2, CTX + 10)
    with torch.no_grad():
        assert out[1, -1] == model(out[1:, -CTX - 1 : -1])[0, -1].argmax()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"max_new_tokens": -1}, "max_new_tokens must be an int >= 0"),
        ({"context_size": 0}, "context_size must be an int >= 1"),
        ({"idx": torch.tensor([1, 2])}, "idx must be a 2-D tensor"),
    ],
)
def test_generate_text_simple_bad_args(model, bad, match):
    args = {"idx": torch.tensor([[1]]), "max_new_tokens": 2, "context_size": CTX} | bad
    with pytest.raises(ValueError, match=match):
        generate_text_simple(model, **args)


# ---- KV cache ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "prompt_len", "new"),
    [(1, 1, 10), (3, 4, 8), (2, CTX - 1, 6), (2, CTX, 5), (1, 3, 3 * CTX)],  # the last ones cross the context
)
def test_cached_greedy_equals_uncached(model, batch, prompt_len, new):
    idx = torch.randint(0, V, (batch, prompt_len))
    expected = generate_text_simple(model, idx, new, context_size=CTX)
    assert torch.equal(generate(model, idx, new, use_cache=True), expected)
    assert torch.equal(generate(model, idx, new, use_cache=False), expected)


def test_cached_greedy_with_smaller_context_size(model):
    idx = torch.randint(0, V, (2, 3))
    expected = generate_text_simple(model, idx, 20, context_size=6)
    assert torch.equal(generate(model, idx, 20, context_size=6), expected)


def test_cache_is_sized_to_the_generation_not_the_context(model, monkeypatch):
    """A short generation allocates prompt + new positions, not context_length (long-context models)."""
    sizes = []
    original = KVCache.for_model.__func__

    def spy(cls, model_, batch_size, max_len=None):
        sizes.append(max_len)
        return original(cls, model_, batch_size, max_len)

    monkeypatch.setattr(KVCache, "for_model", classmethod(spy))
    idx = torch.randint(0, V, (1, 3))
    expected = generate_text_simple(model, idx, 4, context_size=CTX)
    assert torch.equal(generate(model, idx, 4), expected)
    assert torch.equal(generate(model, idx, 2 * CTX)[:, :7], expected)  # a long run still gets the whole window
    assert sizes == [3 + 4, CTX]


def test_cached_logits_match_full_forward_every_step(model):
    ids = torch.randint(0, V, (2, CTX))
    cache = KVCache.for_model(model, batch_size=2)
    with torch.no_grad():
        full = model(ids)
        prefill = model(ids[:, :5], cache=cache)  # 5 positions at once
        torch.testing.assert_close(prefill, full[:, :5], atol=1e-5, rtol=1e-5)
        for t in range(5, CTX):  # then one position per step
            step = model(ids[:, t : t + 1], cache=cache)
            torch.testing.assert_close(step[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
        assert cache.length == CTX


def test_cache_chunked_prefill_uses_offset_mask(model):
    ids = torch.randint(0, V, (1, 12))
    cache = KVCache.for_model(model, batch_size=1)
    with torch.no_grad():
        full = model(ids)
        model(ids[:, :4], cache=cache)
        chunk = model(ids[:, 4:9], cache=cache)  # several new queries after cached ones
    torch.testing.assert_close(chunk, full[:, 4:9], atol=1e-5, rtol=1e-5)


def test_cache_overflow_and_batch_errors(model):
    cache = KVCache.for_model(model, batch_size=1, max_len=4)
    with torch.no_grad():
        model(torch.zeros(1, 4, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="KV cache is full"):
            model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
        cache.reset()
        assert cache.length == 0
        with pytest.raises(ValueError, match="made for batch size 1, got 2"):
            model(torch.zeros(2, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_len must be in"):
        KVCache.for_model(model, batch_size=1, max_len=CTX + 1)


def test_cache_position_past_context_is_rejected(model):
    cache = KVCache.for_model(model, batch_size=1)
    with torch.no_grad():
        model(torch.zeros(1, CTX - 2, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="longer than context_length"):
            model(torch.zeros(1, 3, dtype=torch.long), cache=cache)


def test_cache_buffers_are_not_reallocated(model):
    cache = KVCache.for_model(model, batch_size=1)
    ptr = cache.layers[0].keys.data_ptr()
    with torch.no_grad():
        for t in range(6):
            model(torch.tensor([[t]]), cache=cache)
    assert cache.layers[0].keys.data_ptr() == ptr and cache.length == 6


def test_each_call_starts_a_fresh_cache(model):
    idx = torch.randint(0, V, (1, 3))
    first = generate(model, idx, 12)
    assert torch.equal(generate(model, idx, 12), first)
    other = generate(model, torch.randint(0, V, (1, 5)), 4)  # different prompt in between
    assert other.shape == (1, 9)
    assert torch.equal(generate(model, idx, 12), first)


def test_generate_restores_training_mode():
    model = tiny_model().train()
    generate(model, torch.tensor([[1]]), 2)
    assert model.training


# ---- sampling ---------------------------------------------------------------------------


def test_temperature_zero_is_greedy(model):
    idx = torch.randint(0, V, (2, 3))
    assert torch.equal(generate(model, idx, 6, temperature=0), generate_text_simple(model, idx, 6, CTX))


def test_apply_temperature():
    logits = torch.tensor([[1.0, 2.0, 4.0]])
    torch.testing.assert_close(apply_temperature(logits, 2.0), logits / 2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_temperature(logits, 0.0)


def test_top_k_filter_keeps_k():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0, 2.5]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).sum() == 2 and torch.isfinite(out[0, [1, 4]]).all()
    assert torch.equal(top_k_filter(logits, 99), logits)


def test_top_p_filter_keeps_smallest_set():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = lambda p: torch.isfinite(top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert kept(0.5) == [True, False, False, False]
    assert kept(0.79) == [True, True, False, False]
    assert kept(0.9) == [True, True, True, False]
    assert kept(1.0) == [True, True, True, True]
    assert kept(0.01) == [True, False, False, False]  # the most likely token always stays


def test_seed_reproducible_and_different(model):
    idx = torch.randint(0, V, (2, 3))
    a = generate(model, idx, 20, temperature=1.0, seed=1)
    assert torch.equal(a, generate(model, idx, 20, temperature=1.0, seed=1))
    assert not torch.equal(a, generate(model, idx, 20, temperature=1.0, seed=2))
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(a, generate(model, idx, 20, temperature=1.0, generator=gen))


def test_sampling_cached_equals_uncached(model):
    idx = torch.randint(0, V, (2, 3))
    kw = {"temperature": 0.9, "top_k": 10, "top_p": 0.9, "seed": 5}
    assert torch.equal(generate(model, idx, 3 * CTX, **kw), generate(model, idx, 3 * CTX, use_cache=False, **kw))


def test_top_k_one_is_greedy(model):
    idx = torch.randint(0, V, (1, 3))
    assert torch.equal(generate(model, idx, 8, temperature=2.0, top_k=1, seed=0), generate(model, idx, 8))


def test_eos_stops_generation(model):
    idx = torch.randint(0, V, (1, 3))
    greedy = generate(model, idx, 10)
    eos = int(greedy[0, 5])  # the third generated token: pretend it is end-of-text
    out = generate(model, idx, 10, eos_id=eos)
    first = (greedy[0, 3:] == eos).nonzero()[0].item() + 3
    assert torch.equal(out, greedy[:, : first + 1])


def test_eos_pads_finished_rows(model):
    idx = torch.randint(0, V, (2, 3))
    greedy = generate(model, idx, 8)
    eos = int(greedy[0, 4])
    out = generate(model, idx, 8, eos_id=eos)
    row0 = out[0, 3:].tolist()
    first = row0.index(eos)
    assert all(t == eos for t in row0[first:])


def test_stream_yields_tokens_one_by_one(model):
    idx = torch.randint(0, V, (1, 2))
    steps = list(stream_generate(model, idx, 7))
    assert len(steps) == 7 and all(s.shape == (1, 1) for s in steps)
    assert torch.equal(torch.cat([idx, *steps], dim=1), generate(model, idx, 7))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": -0.5}, "temperature must be a number >= 0"),
        ({"top_k": 0}, "top_k must be an int >= 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"context_size": CTX + 1}, "exceeds the model's context_length"),
        ({"seed": 1, "generator": torch.Generator()}, "either generator or seed"),
    ],
)
def test_bad_sampling_args(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, torch.tensor([[1]]), 2, **kwargs)


# ---- the caller's modes are its own while it iterates (issue 9) --------------------------


def test_stream_leaves_grad_mode_and_training_mode_to_the_caller():
    model = tiny_model().train()
    seen = []
    for token in stream_generate(model, torch.tensor([[1, 2]]), 3):
        # the loop body is the caller's code: its grad mode, not the generator's inference mode
        seen.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled(), model.training))
        assert not token.is_inference()
        # the yielded ids are normal tensors: usable in a computation that is differentiated
        loss = model.tok_emb(token).pow(2).sum()
        loss.backward()
        assert model.tok_emb.weight.grad is not None
    assert seen == [(True, False, True)] * 3


def test_stream_keeps_the_callers_no_grad():
    model = tiny_model()
    with torch.no_grad():
        for _ in stream_generate(model, torch.tensor([[1]]), 2):
            assert not torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert torch.is_grad_enabled()


def test_stream_gives_same_tokens_when_the_caller_changes_modes(model):
    """What the caller does between steps (train mode, gradients) does not change the tokens."""
    dropout_model = tiny_model(TINY.with_(drop_rate=0.5))
    idx = torch.randint(0, V, (1, 3))
    expected = generate(dropout_model, idx, 6)
    tokens = []
    for i, token in enumerate(stream_generate(dropout_model, idx, 6)):
        dropout_model.train(i % 2 == 0)  # e.g. a training step between two tokens: dropout on, then off
        tokens.append(token)
    assert torch.equal(torch.cat([idx, *tokens], dim=1), expected)
    assert not dropout_model.training  # the caller's last choice (i = 5) stands


# ---- the book's call forms ------------------------------------------------------------------


def test_generate_takes_context_size_positionally_as_the_book_does(model):
    idx = torch.randint(0, V, (2, 6))
    positional = generate(model, idx, 10, 4)
    assert torch.equal(positional, generate(model, idx, 10, context_size=4))
    # the book's chapter-4 loop: greedy, cropping to the last context_size tokens
    assert torch.equal(positional, generate_text_simple(model, idx, 10, 4))
    assert not torch.equal(positional, generate(model, idx, 10))  # a smaller window does change the result


def test_generate_book_keywords_sample_like_the_books_loop(model):
    """The book's chapter-5 call: generate(model=, idx=, max_new_tokens=, context_size=, top_k=, temperature=)."""
    idx = torch.randint(0, V, (1, 3))
    torch.manual_seed(7)
    ours = generate(model=model, idx=idx, max_new_tokens=8, context_size=CTX, top_k=5, temperature=1.4)
    # the same steps written out: top-k, then temperature, softmax, one draw from the global RNG
    torch.manual_seed(7)
    ref = idx
    for _ in range(8):
        with torch.no_grad():
            logits = model(ref[:, -CTX:])[:, -1, :]
        kth = torch.topk(logits, 5).values[:, -1:]
        logits = torch.where(logits < kth, torch.tensor(float("-inf")), logits) / 1.4
        ref = torch.cat([ref, torch.multinomial(torch.softmax(logits, dim=-1), 1)], dim=1)
    assert torch.equal(ours, ref)


# ---- bad inputs: one-line errors from our code, not torch's (issue 17) ---------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": float("nan")}, ValueError, "temperature must be a number >= 0 and finite .* got nan"),
        ({"temperature": float("inf"), "top_k": 2}, ValueError, "temperature must be .* finite .* got inf"),
        ({"temperature": "1"}, ValueError, "temperature must be a number"),
        ({"temperature": 1.0, "top_p": float("nan")}, ValueError, r"top_p must be in \(0, 1\] or None, got nan"),
        ({"eos_id": V}, ValueError, rf"eos_id must be a token id in \[0, {V}\) or None, got {V}"),
        ({"eos_id": -1}, ValueError, r"eos_id must be a token id in \[0, 97\)"),
        ({"eos_id": True}, ValueError, "eos_id must be a token id .* got True"),
        ({"eos_id": 1.0}, ValueError, "eos_id must be a token id .* got 1.0"),
        ({"temperature": 1.0, "seed": 1.5}, ValueError, "seed must be an int"),
        ({"temperature": 1.0, "seed": True}, ValueError, "seed must be an int"),
        ({"temperature": 1.0, "seed": 2**70}, ValueError, "seed must be an int"),
        ({"temperature": 1.0, "generator": 5}, TypeError, "generator must be a torch.Generator, got int"),
        ({"use_cache": "no"}, TypeError, "use_cache must be True or False, got 'no'"),
    ],
)
def test_bad_generate_args_in_one_line(model, kwargs, match, error):
    """NaN/inf temperature, NaN top_p, out-of-range or bool eos_id, bad seeds and generators."""
    for run in (generate, lambda *a, **k: next(stream_generate(*a, **k))):
        with pytest.raises(error, match=match) as info:
            run(model, torch.tensor([[1, 2]]), 3, **kwargs)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("idx", "error", "match"),
    [
        (torch.tensor([[1.0, 2.0]]), TypeError, "idx must hold integer token ids .* got dtype torch.float32"),
        (torch.tensor([[True]]), TypeError, "idx must hold integer token ids .* got dtype torch.bool"),
        (torch.zeros(1, 0, dtype=torch.long), ValueError, r"idx is empty \(shape \(1, 0\)\)"),
        (torch.zeros(0, 3, dtype=torch.long), ValueError, r"idx is empty \(shape \(0, 3\)\)"),
    ],
)
def test_bad_token_ids_in_one_line(model, idx, error, match):
    """Float ids were cast to long silently; empty prompts reached the cache or the model."""
    for run in (generate, lambda m, i, n: generate_text_simple(m, i, n, CTX)):
        with pytest.raises(error, match=match):
            run(model, idx, 3)


def test_a_model_that_is_not_one_is_named():
    with pytest.raises(TypeError, match="model must be an nn.Module with a cfg giving context_length"):
        generate("gpt2", torch.tensor([[1]]), 2)


@pytest.mark.parametrize(("func", "arg"), [(apply_temperature, float("nan")), (apply_temperature, float("inf"))])
def test_apply_temperature_rejects_nan_and_inf(func, arg):
    """nan would make every logit nan (multinomial's RuntimeError); inf flattens every row to 0."""
    with pytest.raises(ValueError, match="temperature must be > 0 and finite"):
        func(torch.zeros(1, 3), arg)
    with pytest.raises(TypeError, match="temperature must be a number, got str"):
        apply_temperature(torch.zeros(1, 3), "2")


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True, None])
def test_top_k_filter_rejects_bad_k(top_k):
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        top_k_filter(torch.zeros(1, 3), top_k)


@pytest.mark.parametrize("top_p", [float("nan"), 0, -1, 1.5, "0.5", True])
def test_top_p_filter_rejects_bad_p(top_p):
    """nan used to keep every token silently (every comparison with nan is False)."""
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        top_p_filter(torch.tensor([[1.0, 2.0, 3.0]]), top_p)


def test_huge_max_new_tokens_streams_in_bounded_memory(model, monkeypatch):
    """max_new_tokens = 10**12 used to allocate prompt + 10**12 ids up front (the allocator's error)."""
    sizes = []
    real_empty = torch.empty

    def spy(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch, "empty", spy)
    stream = stream_generate(model, torch.tensor([[1, 2, 3]]), 10**12)
    first = [next(stream) for _ in range(3 * CTX)]  # crosses the buffer's wrap-around several times
    monkeypatch.undo()
    assert max(sizes) <= 2 * CTX * TINY.emb_dim  # no tensor larger than the KV cache's
    expected = generate_text_simple(model, torch.tensor([[1, 2, 3]]), 3 * CTX, CTX)
    assert torch.equal(torch.cat([torch.tensor([[1, 2, 3]]), *first], dim=1), expected)


@pytest.mark.parametrize("context_size", [1, 2, 5])
@pytest.mark.parametrize("use_cache", [True, False])
def test_the_kept_window_matches_generate_text_simple_for_any_context(model, context_size, use_cache):
    """The bounded token buffer wraps around every context_size + 1 steps: results are unchanged."""
    idx = torch.randint(0, V, (2, 7))  # the prompt is longer than the small windows
    expected = generate_text_simple(model, idx, 25, context_size)
    assert torch.equal(generate(model, idx, 25, context_size, use_cache=use_cache), expected)
