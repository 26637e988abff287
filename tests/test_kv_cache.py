"""KVCache.for_model sizes the cache from the model's config (query heads or key/value heads)."""

from types import SimpleNamespace

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
