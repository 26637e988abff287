"""The Llama 3 / Qwen3 family: GPT-2's decoder with RMSNorm, RoPE, SwiGLU and GQA (notebook 09)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..gpt2.attention import KVCache, LayerKVCache
from ..gpt2.model import check_token_ids, count_parameters
from .gqa import GroupedQueryAttention
from .rms_norm import RMSNorm
from .rope import Llama3RopeScaling, RoPE
from .swiglu import SwiGLUFeedForward

__all__ = ["LlamaQwenConfig", "LlamaQwenBlock", "LlamaQwenModel", "llama_qwen_parameter_breakdown"]


@dataclass(frozen=True)
class LlamaQwenConfig:
    """Hyper-parameters of a Llama 3 / Qwen3 style model, validated on creation."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_kv_heads: int  # key/value heads; n_heads / n_kv_heads query heads share each one (GQA)
    head_dim: int  # features per head; need not be emb_dim // n_heads (Qwen3-0.6B: 128, not 1024 // 16)
    n_layers: int
    hidden_dim: int  # width of the SwiGLU feed-forward network
    rope_theta: float = 10_000.0
    rope_scaling: Llama3RopeScaling | None = None
    qk_norm: bool = False  # RMSNorm on each head's queries and keys (Qwen3)
    norm_eps: float = 1e-6
    tie_weights: bool = False

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_kv_heads", "head_dim", "n_layers")
        for name in (*sizes, "hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"LlamaQwenConfig.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value <= 0:
                raise ValueError(f"LlamaQwenConfig.{name} must be positive, got {value}")
        if self.n_heads % self.n_kv_heads != 0:
            divisors = [d for d in range(1, self.n_heads + 1) if self.n_heads % d == 0]
            raise ValueError(
                f"LlamaQwenConfig.n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}) "
                f"so every key/value head serves the same number of query heads; pick n_kv_heads from {divisors}"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"LlamaQwenConfig.head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"LlamaQwenConfig.{name} must be a positive number, got {value!r}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, Llama3RopeScaling):
            raise TypeError(
                "LlamaQwenConfig.rope_scaling must be None or a Llama3RopeScaling, "
                f"got {type(self.rope_scaling).__name__}"
            )
        for name in ("qk_norm", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"LlamaQwenConfig.{name} must be True or False, got {getattr(self, name)!r}")

    def with_(self, **changes) -> LlamaQwenConfig:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)


class LlamaQwenBlock(nn.Module):
    """RMSNorm -> grouped-query attention -> shortcut, then RMSNorm -> SwiGLU -> shortcut."""

    def __init__(self, cfg: LlamaQwenConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.att = GroupedQueryAttention(
            emb_dim=cfg.emb_dim,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_kv_heads,
            head_dim=cfg.head_dim,
            qk_norm=cfg.qk_norm,
            norm_eps=cfg.norm_eps,
        )
        self.norm2 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.ff = SwiGLUFeedForward(cfg.emb_dim, cfg.hidden_dim)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: LayerKVCache | None = None
    ) -> torch.Tensor:
        # x: (B, T, C); the same Pre-norm layout as GPT-2's TransformerBlock, without dropout
        shortcut = x
        x = self.att(self.norm1(x), cos, sin, kv_cache=kv_cache) + shortcut
        shortcut = x
        x = self.ff(self.norm2(x)) + shortcut
        return x  # (B, T, C)


class LlamaQwenModel(nn.Module):
    """Token embedding, N blocks (positions enter through RoPE inside attention), final RMSNorm, output head."""

    def __init__(self, cfg: LlamaQwenConfig):
        super().__init__()
        if not isinstance(cfg, LlamaQwenConfig):
            raise TypeError(
                f"LlamaQwenModel expects a LlamaQwenConfig, got {type(cfg).__name__}; "
                "build one with LlamaQwenConfig(...)"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)  # no position embedding: RoPE replaces it
        self.rope = RoPE(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)  # shared by all blocks
        self.trf_blocks = nn.ModuleList(LlamaQwenBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight  # weight tying, as in notebook 05

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        check_token_ids(in_idx, self.cfg.vocab_size)
        batch_size, seq_len = in_idx.shape  # (B, T)
        start = 0 if cache is None else cache.length  # position of the first new token
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:])"
            )
        x = self.tok_emb(in_idx)  # (B, T, C)
        cos, sin = self.rope(torch.arange(start, start + seq_len, device=in_idx.device))  # (T, head_dim) each
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cos, sin, kv_cache=None if cache is None else cache.layers[i])
        x = self.final_norm(x)
        return self.out_head(x)  # logits: (B, T, vocab_size)


def llama_qwen_parameter_breakdown(cfg: LlamaQwenConfig) -> dict[str, int]:
    """Parameters per component, counted on the meta device so no weights are allocated."""
    with torch.device("meta"):
        model = LlamaQwenModel(cfg)
    block = model.trf_blocks[0]
    qk_norms = 2 * cfg.head_dim if cfg.qk_norm else 0  # q_norm and k_norm live inside the attention module
    parts = {
        "token_embedding": model.tok_emb.weight.numel(),
        "attention": cfg.n_layers * (count_parameters(block.att) - qk_norms),
        "feed_forward": cfg.n_layers * count_parameters(block.ff),
        "norms": cfg.n_layers * (count_parameters(block.norm1) + count_parameters(block.norm2) + qk_norms)
        + count_parameters(model.final_norm),
        "output_head": 0 if cfg.tie_weights else model.out_head.weight.numel(),
    }
    parts["total"] = count_parameters(model)
    if sum(v for k, v in parts.items() if k != "total") != parts["total"]:
        raise AssertionError("parameter breakdown does not add up to the model's total")
    return parts
