"""Grouped-query attention (GQA) with RoPE and optional QK-norm, as in Llama 3 and Qwen3 (notebook 09)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..gpt2.attention import LayerKVCache
from .rms_norm import RMSNorm
from .rope import apply_rope

__all__ = ["GroupedQueryAttention"]


class GroupedQueryAttention(nn.Module):
    """Causal self-attention where groups of query heads share one key/value head; no biases."""

    def __init__(
        self,
        emb_dim: int,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        qk_norm: bool = False,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        sizes = {"emb_dim": emb_dim, "n_heads": n_heads, "n_kv_heads": n_kv_heads, "head_dim": head_dim}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GroupedQueryAttention: {name} must be a positive int, got {value!r}")
        if not isinstance(qk_norm, bool):
            raise TypeError(f"GroupedQueryAttention: qk_norm must be True or False, got {qk_norm!r}")
        if n_heads % n_kv_heads != 0:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = head_dim
        self.W_query = nn.Linear(emb_dim, n_heads * head_dim, bias=False)
        self.W_key = nn.Linear(emb_dim, n_kv_heads * head_dim, bias=False)  # fewer heads: a smaller matrix
        self.W_value = nn.Linear(emb_dim, n_kv_heads * head_dim, bias=False)
        self.out_proj = nn.Linear(n_heads * head_dim, emb_dim, bias=False)
        # QK-norm (Qwen3): RMSNorm over each head's query and key, shared by all heads
        self.q_norm = RMSNorm(head_dim, eps=norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps=norm_eps) if qk_norm else None

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: LayerKVCache | None = None
    ) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.W_query.in_features:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"GroupedQueryAttention expects x of shape (B, T, {self.W_query.in_features}), got {got}")
        b, t, _ = x.shape  # (B, T, C); cos, sin: (T, head_dim) for the positions of these T tokens
        q = self.W_query(x).view(b, t, self.n_heads, self.head_dim)  # (B, T, H, hd)
        k = self.W_key(x).view(b, t, self.n_kv_heads, self.head_dim)  # (B, T, G, hd)
        v = self.W_value(x).view(b, t, self.n_kv_heads, self.head_dim)  # (B, T, G, hd)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)  # normalized per head, before the rotation
        # heads first, then rotate queries and keys by their positions (values are not rotated)
        q = apply_rope(q.transpose(1, 2), cos, sin)  # (B, H, T, hd)
        k = apply_rope(k.transpose(1, 2), cos, sin)  # (B, G, T, hd)
        v = v.transpose(1, 2)  # (B, G, T, hd)

        past = 0
        if kv_cache is not None:  # the cache stores the G key/value heads only, already rotated
            past = kv_cache.length
            k, v = kv_cache.append(k, v)  # (B, G, past + T, hd)

        # enable_gqa: query head h reads key/value head h // (H / G), as if each were repeated H / G times
        if past == 0:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        elif t == 1:
            ctx = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # the newest query sees everything
        else:
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

        ctx = ctx.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)  # (B, T, H * hd)
        return self.out_proj(ctx)  # (B, T, C)
