"""Causal multi-head attention and its key/value cache (notebooks 04 and 07)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MultiHeadAttention", "LayerKVCache", "KVCache"]


def _check_sizes(**sizes) -> None:
    """Raise a one-line error unless every size is an int >= 1 (bool is rejected)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


class LayerKVCache:
    """Keys and values of one attention layer, stored in tensors allocated once."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = keys  # (B, H, max_len, head_dim)
        self.values = values  # (B, H, max_len, head_dim)
        self.length = 0  # positions filled so far

    @property
    def capacity(self) -> int:
        """How many positions the preallocated tensors can hold."""
        return self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes the key and value tensors hold (all capacity positions, filled or not)."""
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values))

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new keys/values (B, H, T, head_dim) after the stored ones; return all of them."""
        batch, heads, _, head_dim = self.keys.shape
        if k.shape[0] != batch:
            raise ValueError(f"KV cache was made for batch size {batch}, got {k.shape[0]}; make a cache per batch size")
        if k.dim() != 4 or k.shape != v.shape or k.shape[1] != heads or k.shape[3] != head_dim:
            raise ValueError(
                f"KV cache holds keys and values of shape ({batch}, {heads}, T, {head_dim}), got keys "
                f"{tuple(k.shape)} and values {tuple(v.shape)}; make it with KVCache.for_model(model, batch_size)"
            )
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(
                f"KV cache is full: it holds {self.capacity} positions, {self.length} are used and "
                f"{k.shape[2]} more were given; reset() it or make a larger cache"
            )
        # copy into the preallocated tensors: no new memory per generated token
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """One LayerKVCache per Transformer block, for a given batch size and length."""

    def __init__(self, n_layers, batch_size, n_heads, head_dim, max_len, *, dtype=torch.float32, device=None):
        _check_sizes(n_layers=n_layers, batch_size=batch_size, n_heads=n_heads, head_dim=head_dim, max_len=max_len)
        shape = (batch_size, n_heads, max_len, head_dim)
        try:
            self.layers = [
                LayerKVCache(
                    torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device)
                )
                for _ in range(n_layers)
            ]
        except RuntimeError as err:  # the allocator names its C++ source; say what to change instead
            gib = 2 * n_layers * math.prod(shape) * torch.empty(0, dtype=dtype).element_size() / 2**30
            raise ValueError(
                f"a KV cache of {n_layers} layers x 2 x {shape} needs {gib:,.1f} GiB, which could not be allocated "
                f"({type(err).__name__}); use a smaller batch_size or max_len"
            ) from None

    @classmethod
    def for_model(cls, model: nn.Module, batch_size: int, max_len: int | None = None) -> KVCache:
        """Make an empty cache that fits `model`.

        A model that defines `make_cache(batch_size, max_len)` builds its own cache (another model family's
        layout); the result is returned as is, so `make_cache` must not call `for_model`. Otherwise `model` is a
        GPTModel, or any model with `tok_emb` whose `cfg` gives n_layers, n_heads (or n_kv_heads with
        grouped-query attention), head_dim and context_length.
        """
        cfg = getattr(model, "cfg", None)
        if not hasattr(cfg, "context_length"):
            raise TypeError(f"model must have a cfg with context_length (e.g. a GPTModel), got {type(model).__name__}")
        max_len = cfg.context_length if max_len is None else max_len
        _check_sizes(batch_size=batch_size, max_len=max_len)
        if max_len > cfg.context_length:
            raise ValueError(f"max_len must be in [1, context_length={cfg.context_length}], got {max_len}")
        make_cache = getattr(model, "make_cache", None)
        if callable(make_cache):
            return make_cache(batch_size, max_len)
        # keys/values are stored per key/value head: (B, n_kv_heads, max_len, head_dim); with grouped-query
        # attention several query heads share one; GPTModel has one per query head (n_kv_heads = n_heads)
        n_kv_heads = getattr(cfg, "n_kv_heads", cfg.n_heads)
        param = model.tok_emb.weight
        return cls(cfg.n_layers, batch_size, n_kv_heads, cfg.head_dim, max_len, dtype=param.dtype, device=param.device)

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
        """Bytes the key and value tensors of all layers hold."""
        return sum(layer.nbytes for layer in self.layers)

    def reset(self) -> None:
        """Forget all cached positions (the tensors are kept and reused)."""
        for layer in self.layers:
            layer.length = 0


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with separate query, key and value projections."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias=False):
        super().__init__()
        sizes = {"d_in": d_in, "d_out": d_out, "context_length": context_length, "num_heads": num_heads}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MultiHeadAttention: {name} must be a positive int, got {value!r}")
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"MultiHeadAttention: dropout must be a rate in [0, 1), got {dropout!r}")
        if not isinstance(qkv_bias, bool):
            raise TypeError(f"MultiHeadAttention: qkv_bias must be True or False, got {qkv_bias!r}")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.dropout = dropout
        # three distinct matrices: W_q, W_k and W_v are not shared
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes the heads back together

    def forward(self, x: torch.Tensor, kv_cache: LayerKVCache | None = None) -> torch.Tensor:
        d_in = self.W_query.in_features
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"MultiHeadAttention expects a float tensor, got {got}")
        if x.dim() != 3 or x.shape[-1] != d_in:
            raise ValueError(f"MultiHeadAttention expects shape (batch, tokens, {d_in}), got {tuple(x.shape)}")
        b, t, _ = x.shape  # (B, T, d_in)
        # (B, T, d_out) -> (B, T, H, head_dim) -> (B, H, T, head_dim)
        q = self.W_query(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.W_key(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.W_value(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        past = 0
        if kv_cache is not None:  # generation: reuse the keys/values of earlier positions
            past = kv_cache.length
            k, v = kv_cache.append(k, v)  # (B, H, past + T, head_dim)

        dropout_p = self.dropout if self.training else 0.0
        if past == 0:
            # softmax(q k^T / sqrt(head_dim) + causal mask) v: one fused kernel when dropout_p == 0; on CPU,
            # dropout_p > 0 (train mode) takes PyTorch's step-by-step path (matmul, softmax, dropout, matmul)
            ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif t == 1:
            # a single new query comes last, so it may see every cached position
            ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            # query i sits at position past + i and sees positions 0 .. past + i
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

        ctx = ctx.transpose(1, 2).reshape(b, t, self.d_out)  # (B, H, T, hd) -> (B, T, d_out)
        return self.out_proj(ctx)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The book's MultiHeadAttention keeps its causal mask as a buffer "mask" (1 above the diagonal), so the
        # book's state_dicts carry it. It holds no learned values and is_causal=True does its job here: drop it.
        # Any other "mask" would change the model, so it stays and a strict load reports it as unexpected.
        mask = state_dict.get(prefix + "mask")
        if mask is not None and mask.dim() == 2 and torch.equal(mask.bool(), torch.ones_like(mask).bool().triu(1)):
            del state_dict[prefix + "mask"]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
