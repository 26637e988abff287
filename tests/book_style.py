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


# ---- chapter 5 bonus code: Llama 3.2 and Qwen3 --------------------------------------------------------------
# The book's standalone Llama 3.2 and Qwen3 models (ch05/07_gpt_to_llama, ch05/11_qwen3) take a dict with the keys
# vocab_size, context_length, emb_dim, n_heads, n_layers, hidden_dim, n_kv_groups, rope_base, dtype and, for
# Llama 3.2, rope_freq (factor, low_freq_factor, high_freq_factor, original_context_length) and optionally
# orig_context_length (the base is then rescaled by context_length / orig_context_length); for Qwen3 head_dim
# (None: emb_dim // n_heads) and qk_norm. Modules: tok_emb, trf_blocks (a ModuleList), final_norm, out_head; each
# block has att (W_query, W_key, W_value, out_proj, q_norm and k_norm for Qwen3), ff (fc1 = gate, fc2 = up,
# fc3 = down), norm1, norm2. Llama's norms are torch.nn.RMSNorm (gamma "weight", eps 1e-5), Qwen3's its own
# RMSNorm (gamma "scale", eps 1e-6). cos and sin are non-persistent buffers. Below: those names, our own code.


class BookQwenRMSNorm(nn.Module):
    """RMSNorm in float32 with its gamma named scale."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.float32)
        out = x32 / torch.sqrt(x32.square().mean(-1, keepdim=True) + self.eps) * self.scale
        return out.to(x.dtype)


def book_inverse_frequencies(head_dim: int, base: float, rope_freq: dict | None) -> torch.Tensor:
    """theta_i = base^(-2i/d), then Llama 3's piecewise rescaling, written one frequency at a time."""
    out = []
    for i in range(head_dim // 2):
        f = base ** (-2 * i / head_dim)
        if rope_freq is not None:
            wavelen = 2 * math.pi / f
            n = rope_freq["original_context_length"]
            lo, hi, factor = rope_freq["low_freq_factor"], rope_freq["high_freq_factor"], rope_freq["factor"]
            if wavelen > n / lo:
                f = f / factor
            elif wavelen >= n / hi:
                t = (n / wavelen - lo) / (hi - lo)
                f = (1 - t) * f / factor + t * f
        out.append(f)
    return torch.tensor(out, dtype=torch.float64)


class BookGQA(nn.Module):
    """Grouped-query attention with RoPE applied as a complex multiplication of (x[i], x[i + d/2])."""

    def __init__(self, d_in: int, num_heads: int, num_kv_groups: int, head_dim: int, qk_norm: bool):
        super().__init__()
        self.h, self.g, self.d = num_heads, num_kv_groups, head_dim
        self.W_query = nn.Linear(d_in, num_heads * head_dim, bias=False)
        self.W_key = nn.Linear(d_in, num_kv_groups * head_dim, bias=False)
        self.W_value = nn.Linear(d_in, num_kv_groups * head_dim, bias=False)
        self.out_proj = nn.Linear(num_heads * head_dim, d_in, bias=False)
        self.q_norm = BookQwenRMSNorm(head_dim) if qk_norm else None
        self.k_norm = BookQwenRMSNorm(head_dim) if qk_norm else None

    @staticmethod
    def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        z = torch.complex(x[..., :half].double(), x[..., half:].double()) * torch.polar(torch.ones_like(angles), angles)
        return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.W_query(x).view(b, t, self.h, self.d).transpose(1, 2)
        k = self.W_key(x).view(b, t, self.g, self.d).transpose(1, 2)
        v = self.W_value(x).view(b, t, self.g, self.d).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self.rotate(q, angles[:t]), self.rotate(k, angles[:t])
        k, v = k.repeat_interleave(self.h // self.g, dim=1), v.repeat_interleave(self.h // self.g, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d)
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        mixed = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, self.h * self.d)
        return self.out_proj(mixed)


class BookSwiGLU(nn.Module):
    """fc3(silu(fc1(x)) * fc2(x))."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.fc1 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False)
        self.fc2 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False)
        self.fc3 = nn.Linear(cfg["hidden_dim"], cfg["emb_dim"], bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(nn.functional.silu(self.fc1(x)) * self.fc2(x))


class BookLlamaQwenBlock(nn.Module):
    """norm1 -> att -> add, norm2 -> ff -> add."""

    def __init__(self, cfg: dict, head_dim: int, qwen: bool):
        super().__init__()
        self.att = BookGQA(
            cfg["emb_dim"], cfg["n_heads"], cfg["n_kv_groups"], head_dim, qk_norm=bool(cfg.get("qk_norm"))
        )
        self.ff = BookSwiGLU(cfg)
        norm = (lambda: BookQwenRMSNorm(cfg["emb_dim"])) if qwen else (lambda: nn.RMSNorm(cfg["emb_dim"], eps=1e-5))
        self.norm1, self.norm2 = norm(), norm()

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        x = x + self.att(self.norm1(x), angles)
        return x + self.ff(self.norm2(x))


class BookLlamaQwen(nn.Module):
    """The book's Llama 3.2 (a dict without "qk_norm") or Qwen3 (a dict with it), in float32."""

    def __init__(self, cfg: dict):
        super().__init__()
        qwen = "qk_norm" in cfg
        head_dim = cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"]
        base = cfg["rope_base"]
        if cfg.get("orig_context_length", cfg["context_length"]) != cfg["context_length"]:
            base = base * cfg["context_length"] / cfg["orig_context_length"]
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.trf_blocks = nn.ModuleList(BookLlamaQwenBlock(cfg, head_dim, qwen) for _ in range(cfg["n_layers"]))
        self.final_norm = BookQwenRMSNorm(cfg["emb_dim"]) if qwen else nn.RMSNorm(cfg["emb_dim"], eps=1e-5)
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        inv = book_inverse_frequencies(head_dim, base, cfg.get("rope_freq"))
        angles = torch.arange(cfg["context_length"], dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("angles", angles, persistent=False)  # not in the state_dict, as the book's cos/sin

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(ids)
        for block in self.trf_blocks:
            x = block(x, self.angles)
        return self.out_head(self.final_norm(x))
