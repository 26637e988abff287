"""KVCache: sizes from the config (query or key/value heads), nbytes, models with their own cache, bad sizes."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gpt_helpers import GPTConfig, GPTModel, KVCache


def test_for_model_uses_n_heads_of_a_gpt_model():
    """GPTModel has one key/value head per query head."""
    cfg = GPTConfig(vocab_size=50, context_length=8, emb_dim=16, n_heads=4, n_layers=2, drop_rate=0.0)
    cache = KVCache.for_model(GPTModel(cfg), batch_size=3)
    assert len(cache.layers) == 2
    assert cache.layers[0].keys.shape == cache.layers[1].values.shape == (3, 4, 8, 4)  # (B, H, max_len, head_dim)


def test_for_model_uses_n_kv_heads_when_the_config_has_it():
    """With grouped-query attention the cache holds n_kv_heads heads, not n_heads."""
    cfg = SimpleNamespace(n_layers=3, n_heads=8, n_kv_heads=2, head_dim=16, context_length=32)
    model = nn.Module()
    model.cfg = cfg
    model.tok_emb = nn.Embedding(10, 128, dtype=torch.float64)
    cache = KVCache.for_model(model, batch_size=1, max_len=5)
    assert len(cache.layers) == 3
    assert cache.layers[0].keys.shape == (1, 2, 5, 16)  # (B, n_kv_heads, max_len, head_dim)
    assert cache.layers[0].keys.dtype == torch.float64  # follows the model's parameters


def test_nbytes_counts_every_key_and_value_element():
    """nbytes = 2 tensors x layers x B x H x max_len x head_dim x bytes per element."""
    cache = KVCache(3, 2, 4, 8, 5, dtype=torch.bfloat16)
    assert cache.layers[0].nbytes == 2 * 2 * 4 * 5 * 8 * 2 == 1280
    assert cache.nbytes == 3 * 1280 == 3840
    cfg = GPTConfig(vocab_size=50, context_length=8, emb_dim=16, n_heads=4, n_layers=2, drop_rate=0.0)
    cache = KVCache.for_model(GPTModel(cfg), batch_size=3, max_len=6)  # float32: 4 bytes
    assert cache.nbytes == 2 * 2 * 3 * 4 * 6 * 4 * 4 == 4608
    cache.layers[0].append(torch.zeros(3, 4, 2, 4), torch.zeros(3, 4, 2, 4))
    assert cache.nbytes == 4608  # the tensors are allocated up front: filling them changes nothing


class _ModelWithItsOwnCache(nn.Module):
    """A stand-in for another model family: it builds its own cache object."""

    def __init__(self):
        super().__init__()
        self.cfg = SimpleNamespace(n_layers=1, n_heads=2, head_dim=4, context_length=16)
        self.tok_emb = nn.Embedding(10, 8)
        self.calls = []

    def make_cache(self, batch_size, max_len):
        self.calls.append((batch_size, max_len))
        return SimpleNamespace(length=0, nbytes=0, reset=lambda: None)


def test_for_model_returns_the_models_own_cache_when_it_has_make_cache():
    """for_model hands over to model.make_cache(batch_size, max_len), max_len defaulting to the context."""
    model = _ModelWithItsOwnCache()
    cache = KVCache.for_model(model, 2, max_len=5)
    assert not isinstance(cache, KVCache) and cache.length == 0
    KVCache.for_model(model, batch_size=1)
    assert model.calls == [(2, 5), (1, 16)]
    assert isinstance(
        KVCache.for_model(GPTModel(GPTConfig(vocab_size=10, context_length=4, emb_dim=8, n_heads=2, n_layers=1)), 1),
        KVCache,
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        ({"batch_size": True}, TypeError, "batch_size must be an int, got bool True"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an int, got float 2.0"),
        ({"batch_size": 1, "max_len": 17}, ValueError, r"max_len must be in \[1, context_length=16\], got 17"),
        ({"batch_size": 1, "max_len": 0}, ValueError, "max_len must be at least 1, got 0"),
        ({"batch_size": 1, "max_len": 4.0}, TypeError, "max_len must be an int, got float 4.0"),
    ],
)
def test_for_model_rejects_bad_sizes_in_one_line(kwargs, error, message):
    """Bad sizes are rejected before any model code runs, for every kind of model."""
    model = _ModelWithItsOwnCache()
    with pytest.raises(error, match=f"^{message}$"):
        KVCache.for_model(model, **kwargs)
    assert model.calls == []


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 1, 2, 4, 8), ValueError, "n_layers must be at least 1, got 0"),  # .length used to be an IndexError
        ((1, 1, 2, 4, -1), ValueError, "max_len must be at least 1, got -1"),
        ((1.0, 1, 2, 4, 8), TypeError, "n_layers must be an int, got float 1.0"),
        ((1, 1, True, 4, 8), TypeError, "n_heads must be an int, got bool True"),
        ((2, 1, 1, 1, 10**13), ValueError, r"a KV cache of 2 layers x 2 x \(1, 1, 10000000000000, 1\) needs "),
    ],
)
def test_constructor_rejects_bad_sizes_in_one_line(args, error, message):
    """Zero, negative, float, bool and unallocatable sizes: one line from our code, not the allocator's."""
    with pytest.raises(error, match=message) as info:
        KVCache(*args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("k", "v"),
    [
        (torch.zeros(1, 3, 1, 4), torch.zeros(1, 3, 1, 4)),  # 3 heads, the cache has 2
        (torch.zeros(1, 2, 1, 5), torch.zeros(1, 2, 1, 5)),  # head_dim 5, the cache has 4
        (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)),  # no position axis
        (torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 2, 4)),  # keys and values of different lengths
    ],
)
def test_append_rejects_keys_and_values_of_another_shape(k, v):
    """A cache made for another model used to fail deep inside the copy with torch's broadcast error."""
    layer = KVCache(1, 1, 2, 4, 8).layers[0]
    with pytest.raises(ValueError, match=r"KV cache holds keys and values of shape \(1, 2, T, 4\), got keys"):
        layer.append(k, v)
    assert layer.length == 0  # nothing was written


def test_for_model_names_a_model_without_a_config():
    with pytest.raises(TypeError, match="model must have a cfg with context_length"):
        KVCache.for_model("gpt2", 1)
