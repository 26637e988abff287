"""Multi-head latent attention (MLA) of DeepSeek-V2/V3 and its latent cache (notebook 11).

What is where: `LayerMLACache` / `MLACache` hold, per layer and position, the normalized latent and the shared
RoPE key (kv_lora_rank + qk_rope_head_dim values) and nothing else; `MultiHeadLatentAttention` projects down to
that latent, up to per-head keys and values, and for decoding computes attention in latent space instead
("absorbed": the key up-projection folded into the query, the value up-projection applied after the softmax).
YaRN RoPE scaling lives in yarn.py, the whole DeepSeek-V3 model in deepseek_v3.py.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .rms_norm import RMSNorm
from .rope import apply_rope

__all__ = ["LayerMLACache", "MLACache", "deinterleave", "MultiHeadLatentAttention"]


class LayerMLACache:
    """The cached entries of one MLA layer: per position the latent, then the rotated shared key, in one buffer."""

    def __init__(self, entries: torch.Tensor, kv_lora_rank: int):
        self.entries = entries  # (B, max_len, kv_lora_rank + qk_rope_head_dim)
        self.kv_lora_rank = kv_lora_rank
        self.length = 0  # positions filled so far

    @property
    def capacity(self) -> int:
        """How many positions the buffer can hold."""
        return self.entries.shape[1]

    def append(self, new: torch.Tensor) -> torch.Tensor:
        """Write the entries (B, T, kv_lora_rank + qk_rope_head_dim) of T new positions; return all of them."""
        end = self.length + new.shape[1]
        if end > self.capacity:
            raise ValueError(
                f"MLA cache is full: it holds {self.capacity} positions, {self.length} are used and "
                f"{new.shape[1]} more were given; reset() it or make a larger cache"
            )
        if new.shape[0] != self.entries.shape[0]:
            raise ValueError(
                f"MLA cache was made for batch size {self.entries.shape[0]}, got {new.shape[0]}; "
                "make a cache per batch size"
            )
        self.entries[:, self.length : end] = new  # copied into the buffer allocated once
        self.length = end
        return self.entries[:, :end]  # (B, end, kv_lora_rank + qk_rope_head_dim)

    @property
    def latent(self) -> torch.Tensor:
        """The normalized latents c of the filled positions: (B, length, kv_lora_rank)."""
        return self.entries[:, : self.length, : self.kv_lora_rank]

    @property
    def rope_key(self) -> torch.Tensor:
        """The rotated shared RoPE keys of the filled positions: (B, length, qk_rope_head_dim)."""
        return self.entries[:, : self.length, self.kv_lora_rank :]


class MLACache:
    """One LayerMLACache per block: (kv_lora_rank + qk_rope_head_dim) values per layer and position."""

    def __init__(
        self, n_layers, batch_size, max_len, kv_lora_rank, qk_rope_head_dim, *, dtype=torch.float32, device=None
    ):
        shape = (batch_size, max_len, kv_lora_rank + qk_rope_head_dim)
        self.layers = [
            LayerMLACache(torch.empty(shape, dtype=dtype, device=device), kv_lora_rank) for _ in range(n_layers)
        ]

    @property
    def length(self) -> int:
        """Number of positions already cached."""
        return self.layers[0].length

    @property
    def capacity(self) -> int:
        """Number of positions the cache can hold."""
        return self.layers[0].capacity

    @property
    def nbytes(self) -> int:
        """Bytes the cache's tensors hold (allocated for its whole capacity)."""
        return sum(layer.entries.numel() * layer.entries.element_size() for layer in self.layers)

    def reset(self) -> None:
        """Forget all cached positions (the buffers are kept and reused)."""
        for layer in self.layers:
            layer.length = 0


def deinterleave(x: torch.Tensor) -> torch.Tensor:
    """Reorder features (x0, x1, x2, x3, ...) to (x0, x2, ..., x1, x3, ...): pairs (2i, 2i+1) -> (i, i + d/2)."""
    # DeepSeek's checkpoints rotate adjacent features together; the course's apply_rope pairs i with i + d/2
    return x.unflatten(-1, (-1, 2)).transpose(-1, -2).flatten(-2)


class MultiHeadLatentAttention(nn.Module):
    """Causal attention whose keys and values come from one small latent per position (DeepSeek-V3's MLA)."""

    def __init__(
        self,
        emb_dim: int,
        n_heads: int,
        kv_lora_rank: int,
        qk_nope_head_dim: int,
        qk_rope_head_dim: int,
        v_head_dim: int,
        softmax_scale: float,
        q_lora_rank: int | None = None,
        rope_interleave: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.n_heads = n_heads
        self.kv_lora_rank = kv_lora_rank
        self.qk_nope_head_dim = qk_nope_head_dim
        self.qk_rope_head_dim = qk_rope_head_dim
        self.v_head_dim = v_head_dim
        self.softmax_scale = softmax_scale  # 1 / sqrt(nope + rope), with YaRN's correction (yarn.py)
        self.rope_interleave = rope_interleave
        self.q_lora_rank = q_lora_rank
        self.absorb = True  # decode in latent space; False re-expands every cached position at every step
        qk_head_dim = qk_nope_head_dim + qk_rope_head_dim
        if q_lora_rank is None:  # queries straight from the hidden state
            self.W_query = nn.Linear(emb_dim, n_heads * qk_head_dim, bias=False)
        else:  # low-rank queries: down to q_lora_rank, RMSNorm, up to every head
            self.W_query_down = nn.Linear(emb_dim, q_lora_rank, bias=bias)
            self.query_norm = RMSNorm(q_lora_rank, eps=1e-6)  # DeepSeek-V3 fixes this eps at 1e-6
            self.W_query_up = nn.Linear(q_lora_rank, n_heads * qk_head_dim, bias=False)
        # down: hidden state -> (latent, shared RoPE key); these kv_lora_rank + qk_rope_head_dim values get cached
        self.W_kv_down = nn.Linear(emb_dim, kv_lora_rank + qk_rope_head_dim, bias=bias)
        self.latent_norm = RMSNorm(kv_lora_rank, eps=1e-6)
        # up: latent -> per-head keys (the part without position) and values
        self.W_key_up = nn.Linear(kv_lora_rank, n_heads * qk_nope_head_dim, bias=False)  # W_UK
        self.W_value_up = nn.Linear(kv_lora_rank, n_heads * v_head_dim, bias=False)  # W_UV
        self.out_proj = nn.Linear(n_heads * v_head_dim, emb_dim, bias=bias)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if self.rope_interleave:
            x = deinterleave(x)
        return apply_rope(x, cos, sin)

    def queries(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head queries split in two: (B, H, T, qk_nope_head_dim) without position, (B, H, T, rope dim) rotated."""
        b, t, _ = x.shape  # (B, T, C)
        if self.q_lora_rank is None:
            q = self.W_query(x)
        else:
            q = self.W_query_up(self.query_norm(self.W_query_down(x)))
        q = q.view(b, t, self.n_heads, -1).transpose(1, 2)  # (B, H, T, nope + rope)
        q_nope, q_rope = q.split([self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        return q_nope, self._rotate(q_rope, cos, sin)

    def compress(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """What each position caches: its normalized latent and its rotated RoPE key, (B, T, rank + rope)."""
        latent, rope_key = self.W_kv_down(x).split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        return torch.cat((self.latent_norm(latent), self._rotate(rope_key, cos, sin)), dim=-1)

    def plain_attention(self, q_nope, q_rope, entries, past: int) -> torch.Tensor:
        """Expand every position's latent to per-head keys and values, then attend as usual: (B, H, T, v_head_dim)."""
        b, h, t, _ = q_nope.shape
        s = entries.shape[1]  # positions attended to: past + T
        latent, rope_key = entries.split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_nope = self.W_key_up(latent).view(b, s, h, self.qk_nope_head_dim).transpose(1, 2)  # (B, H, S, nope)
        v = self.W_value_up(latent).view(b, s, h, self.v_head_dim).transpose(1, 2)  # (B, H, S, v_head_dim)
        k_rope = rope_key.unsqueeze(1).expand(b, h, s, self.qk_rope_head_dim)  # one RoPE key shared by all heads
        q = torch.cat((q_nope, q_rope), dim=-1)  # (B, H, T, nope + rope)
        k = torch.cat((k_nope, k_rope), dim=-1)  # (B, H, S, nope + rope)
        if past == 0:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.softmax_scale)
        mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(diagonal=past)  # query i sees 0 .. past + i
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.softmax_scale)

    def absorbed_attention(self, q_nope, q_rope, entries, past: int) -> torch.Tensor:
        """Attention in latent space: W_UK folded into the queries, W_UV applied after the softmax: (B, H, T, v)."""
        b, h, t, _ = q_nope.shape
        w_uk = self.W_key_up.weight.view(h, self.qk_nope_head_dim, self.kv_lora_rank)  # (H, nope, rank)
        w_uv = self.W_value_up.weight.view(h, self.v_head_dim, self.kv_lora_rank)  # (H, v_head_dim, rank)
        # q_nope . (W_UK c) = (W_UK^T q_nope) . c: each head's query moves into latent space
        q_latent = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)  # (B, H, T, rank)
        q = torch.cat((q_latent, q_rope), dim=-1)  # (B, H, T, rank + rope): scored against the cache as it is
        # every head reads the same keys (the entries) and values (the latents): one key/value head for all H
        # query heads, so the H * T queries become rows of a single head and nothing is repeated or expanded
        q = q.reshape(b, 1, h * t, -1)  # (B, 1, H * T, rank + rope)
        keys = entries.unsqueeze(1)  # (B, 1, S, rank + rope)
        values = entries[..., : self.kv_lora_rank].unsqueeze(1)  # (B, 1, S, rank)
        if t == 1:  # one new query sees every cached position
            ctx = F.scaled_dot_product_attention(q, keys, values, scale=self.softmax_scale)
        else:
            mask = torch.ones(t, entries.shape[1], dtype=torch.bool, device=q.device).tril(diagonal=past)
            ctx = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask.repeat(h, 1), scale=self.softmax_scale)
        ctx = ctx.view(b, h, t, self.kv_lora_rank)  # (B, H, T, rank): a weighted mean of latents per head
        return torch.einsum("bhtr,hvr->bhtv", ctx, w_uv)  # (B, H, T, v_head_dim): W_UV after the softmax

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: LayerMLACache | None = None):
        b, t, _ = x.shape  # (B, T, C); cos, sin: (T, qk_rope_head_dim) for the positions of these T tokens
        q_nope, q_rope = self.queries(x, cos, sin)
        entries = self.compress(x, cos, sin)  # (B, T, rank + rope)
        past = 0
        if kv_cache is not None:
            past = kv_cache.length
            entries = kv_cache.append(entries)  # (B, past + T, rank + rope)
        if past > 0 and self.absorb:
            ctx = self.absorbed_attention(q_nope, q_rope, entries, past)
        else:  # the prompt: expanding T latents once costs no more than attending to them
            ctx = self.plain_attention(q_nope, q_rope, entries, past)
        ctx = ctx.transpose(1, 2).reshape(b, t, self.n_heads * self.v_head_dim)  # (B, T, H * v_head_dim)
        return self.out_proj(ctx)  # (B, T, C)
