"""A GPT written for the tests with the module and buffer names of the book's chapter-4 GPTModel.

Raschka, "Build a Large Language Model (From Scratch)", chapter 4, names its parts tok_emb, pos_emb,
drop_emb, trf_blocks (an nn.Sequential), final_norm (scale, shift), out_head; each block has att
(W_query, W_key, W_value, out_proj, dropout and a causal-mask buffer "mask"), ff.layers (Linear, GELU,
Linear), norm1, norm2 and drop_shortcut; the config is a plain dict. This file reproduces those names
only, with its own code, so state_dicts and call forms can be tested without the book's code.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class BookLayerNorm(nn.Module):
    """Layer normalization with parameters named scale and shift."""

    def __init__(self, dim: int):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=-1, keepdim=True)
        spread = centred.pow(2).mean(dim=-1, keepdim=True)  # biased variance
        return self.scale * centred * torch.rsqrt(spread + self.eps) + self.shift


class BookGELU(nn.Module):
    """The tanh approximation of GELU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + torch.tanh(inner))


class BookAttention(nn.Module):
    """Causal multi-head attention that keeps its mask as a persistent buffer named "mask"."""

    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["emb_dim"]
        self.heads = cfg["n_heads"]
        self.W_query = nn.Linear(d, d, bias=cfg["qkv_bias"])
        self.W_key = nn.Linear(d, d, bias=cfg["qkv_bias"])
        self.W_value = nn.Linear(d, d, bias=cfg["qkv_bias"])
        self.out_proj = nn.Linear(d, d)
        self.dropout = nn.Dropout(cfg["drop_rate"])
        n = cfg["context_length"]
        # 1 where a query must not look (future positions), stored with the weights
        self.register_buffer("mask", torch.ones(n, n).triu(diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def split(z):  # (B, T, d) -> (B, heads, T, d / heads)
            return z.reshape(b, t, self.heads, d // self.heads).permute(0, 2, 1, 3)

        q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(self.mask[:t, :t].bool(), float("-inf"))
        weights = self.dropout(scores.softmax(dim=-1))
        mixed = torch.einsum("bhqk,bhkd->bhqd", weights, v).permute(0, 2, 1, 3).reshape(b, t, d)
        return self.out_proj(mixed)


class BookFeedForward(nn.Module):
    """Expand to 4x, GELU, project back; the three steps sit in .layers."""

    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(d, 4 * d), BookGELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class BookBlock(nn.Module):
    """Pre-LN block: norm1 -> att -> drop_shortcut -> add, norm2 -> ff -> drop_shortcut -> add."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.att = BookAttention(cfg)
        self.ff = BookFeedForward(cfg)
        self.norm1 = BookLayerNorm(cfg["emb_dim"])
        self.norm2 = BookLayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class BookGPT(nn.Module):
    """The whole model, configured by a plain dict as in the book."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[BookBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = BookLayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop_emb(self.tok_emb(ids) + self.pos_emb(positions))
        return self.out_head(self.final_norm(self.trf_blocks(x)))
