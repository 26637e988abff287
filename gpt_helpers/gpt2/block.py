"""The Pre-LN Transformer block (notebook 04)."""

from __future__ import annotations

import torch
from torch import nn

from .attention import LayerKVCache, MultiHeadAttention
from .config import GPTConfig
from .feed_forward import FeedForward
from .normalization import LayerNorm

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """LayerNorm -> masked attention -> dropout -> shortcut, then LayerNorm -> FFN -> dropout -> shortcut."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        cfg = GPTConfig.ensure(cfg, "TransformerBlock")  # the book passes its dict config
        self.att = MultiHeadAttention(
            d_in=cfg.emb_dim,
            d_out=cfg.emb_dim,
            context_length=cfg.context_length,
            dropout=cfg.drop_rate,
            num_heads=cfg.n_heads,
            qkv_bias=cfg.qkv_bias,
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, kv_cache: LayerKVCache | None = None) -> torch.Tensor:
        # x: (B, T, C); both sub-layers keep the shape, so the shortcut can add
        shortcut = x
        x = self.att(self.norm1(x), kv_cache=kv_cache)  # Pre-LN: normalize before the sub-layer
        x = self.drop_shortcut(x) + shortcut

        shortcut = x
        x = self.ff(self.norm2(x))
        x = self.drop_shortcut(x) + shortcut
        return x  # (B, T, C)
