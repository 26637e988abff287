"""Sliding-window attention: the banded causal mask, a ring-buffer cache for local layers (notebook 12)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..gpt2.attention import LayerKVCache
from .gqa import GroupedQueryAttention
from .rms_norm import RMSNorm
from .rope import apply_rope

__all__ = ["sliding_window_mask", "RingKVCache", "SlidingWindowAttention"]


def sliding_window_mask(
    query_positions: torch.Tensor, key_positions: torch.Tensor, window: int | None = None
) -> torch.Tensor:
    """True where a query may see a key: the key is not later, and (with a window) less than `window` back."""
    distance = query_positions[:, None] - key_positions[None, :]  # (Tq, Tk): how far back each key lies
    allowed = distance >= 0  # causal: never a later position
    if window is not None:
        allowed &= distance < window  # the query itself and the window - 1 positions before it
    return allowed


class RingKVCache:
    """Keys and values of one local layer in `slots` rows reused in turn: position p is stored in row p % slots."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = keys  # (B, G, slots, head_dim)
        self.values = values  # (B, G, slots, head_dim)
        self.length = 0  # positions seen so far (it grows past `slots`; the rows do not)

    @property
    def slots(self) -> int:
        """How many positions the ring holds at most: the window."""
        return self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes the key and value tensors hold; fixed, however far generation goes."""
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values))

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Store new keys/values (B, G, T, head_dim); return the keys and values the T queries may see, and positions.

        With T = 1 the positions are None: every returned key lies in the newest query's window (the ring holds
        exactly the last `slots` positions, in rotated order, which attention does not care about).
        """
        if k.shape[0] != self.keys.shape[0]:
            raise ValueError(
                f"ring cache was made for batch size {self.keys.shape[0]}, got {k.shape[0]}; "
                "make a cache per batch size"
            )
        start, t, slots = self.length, k.shape[2], self.slots
        if t == 1:
            # decoding: overwrite the row of position start - slots, which has just left the window
            row = start % slots
            self.keys[:, :, row] = k[:, :, 0]
            self.values[:, :, row] = v[:, :, 0]
            self.length = start + 1
            filled = min(self.length, slots)  # rows 0 .. filled - 1 are in use
            return self.keys[:, :, :filled], self.values[:, :, :filled], None
        # several new tokens (a prompt, or a chunk of one): the earlier ones still need the cached positions,
        # so return the kept past in order, then the new tokens, and write the ring only after copying
        past = min(start, slots)
        past_rows = torch.arange(start - past, start, device=k.device) % slots  # oldest first
        keys = torch.cat((self.keys[:, :, past_rows], k), dim=2)  # (B, G, past + T, head_dim)
        values = torch.cat((self.values[:, :, past_rows], v), dim=2)
        kept = min(t, slots)  # only the last `slots` new positions can be seen later
        new_rows = torch.arange(start + t - kept, start + t, device=k.device) % slots
        self.keys[:, :, new_rows] = k[:, :, t - kept :]
        self.values[:, :, new_rows] = v[:, :, t - kept :]
        self.length = start + t
        return keys, values, torch.arange(start - past, start + t, device=k.device)


class SlidingWindowAttention(GroupedQueryAttention):
    """Grouped-query attention in which each query sees only the last `window` positions (None: all of them)."""

    def __init__(
        self,
        emb_dim: int,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        window: int | None = None,
        scale: float | None = None,
        qk_norm: bool = False,
        norm_eps: float = 1e-6,
        norm_class: type[nn.Module] = RMSNorm,
    ):
        super().__init__(emb_dim, n_heads, n_kv_heads, head_dim, qk_norm=False, norm_eps=norm_eps)
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be a positive int (or None for global attention), got {window!r}")
        self.window = window
        self.scale = scale  # None: 1 / sqrt(head_dim), as in every earlier model of the course
        # QK-norm with the family's own RMSNorm (Gemma 3's multiplies by 1 + weight)
        self.q_norm = norm_class(head_dim, eps=norm_eps) if qk_norm else None
        self.k_norm = norm_class(head_dim, eps=norm_eps) if qk_norm else None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: RingKVCache | LayerKVCache | None = None,
    ) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, C); cos, sin: (T, head_dim) for the positions of these T tokens
        q = self.W_query(x).view(b, t, self.n_heads, self.head_dim)  # (B, T, H, hd)
        k = self.W_key(x).view(b, t, self.n_kv_heads, self.head_dim)  # (B, T, G, hd)
        v = self.W_value(x).view(b, t, self.n_kv_heads, self.head_dim)  # (B, T, G, hd)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = apply_rope(q.transpose(1, 2), cos, sin)  # (B, H, T, hd)
        k = apply_rope(k.transpose(1, 2), cos, sin)  # (B, G, T, hd); cached already rotated
        v = v.transpose(1, 2)  # (B, G, T, hd)

        start = 0 if kv_cache is None else kv_cache.length  # position of the first new token
        key_positions = torch.arange(start, start + t, device=x.device)
        if isinstance(kv_cache, RingKVCache):
            # a ring keeps only its last `slots` positions: that is right only if slots is the window (or the
            # ring never fills); any other ring would silently drop keys still in the window or keep stale ones
            too_small = kv_cache.slots < (self.window or 0) and start + t > kv_cache.slots
            if self.window is None or kv_cache.slots > self.window or too_small:
                raise ValueError(
                    f"a RingKVCache of {kv_cache.slots} rows does not fit this layer (window={self.window}): "
                    "give a local layer a ring of `window` rows and a global layer a LayerKVCache"
                )
            k, v, key_positions = kv_cache.update(k, v)  # only what the window can still reach
        elif kv_cache is not None:  # a growing cache: global layers (or a local layer, masked below)
            k, v = kv_cache.append(k, v)  # (B, G, start + T, hd)
            key_positions = torch.arange(start + t, device=x.device)

        mask, causal = None, False
        if key_positions is None:
            pass  # one new token and a ring: every key returned is in its window
        elif start == 0 and (self.window is None or t <= self.window):
            causal = True  # no key is farther back than the window: the plain causal mask
        elif t > 1 or self.window is not None:
            query_positions = torch.arange(start, start + t, device=x.device)
            mask = sliding_window_mask(query_positions, key_positions, self.window)  # (T, keys)
        # else: one new token, global attention: it sees every cached position
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=self.scale, enable_gqa=True
        )
        ctx = ctx.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)  # (B, T, H * hd)
        return self.out_proj(ctx)  # (B, T, C)
